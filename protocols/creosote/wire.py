"""What every part of creosote's wire shares: its port, sizes, addresses, and the ping probe."""

from __future__ import annotations

import re

from protocols.errors import LocalProtocolError, RemoteProtocolError

DEFAULT_PORT = 7739
MAX_UDP_PAYLOAD = 65507  # 65535 - 8 (UDP header) - 20 (IPv4 header): the largest datagram one sendto can carry
RECEIVE_BUFFER = 65535  # receive into this much: the largest UDP payload (65,527 bytes over IPv6) fits whole
DEFAULT_SPEW_DATAGRAM = 1400  # below a 1500-byte Ethernet MTU after IP/UDP headers: no IP fragmentation

PING = b"\x00creosote:ping"
PONG_PREFIX = b"creosote:pong records="

Address = tuple[str, int]

# --------------------------------------------------------------------------- probe


def is_ping(datagram: bytes) -> bool:
    """True for the health probe, which the sink answers and does not record."""
    return datagram == PING


def pong(records: int) -> bytes:
    """The probe's answer, carrying how many records the sink has made."""
    if records < 0:
        raise LocalProtocolError("record count cannot be negative")
    return PONG_PREFIX + str(records).encode("ascii") + b"\n"


def parse_pong(datagram: bytes) -> int:
    """The record count from a pong; ``RemoteProtocolError`` if it is not one."""
    match = re.fullmatch(rb"creosote:pong records=(\d{1,20})\n?", datagram)
    if match is None:
        raise RemoteProtocolError(f"not a creosote pong: {datagram[:60]!r}")
    return int(match.group(1))
