"""Chunks and hops: how ``spew`` frames a long message in datagrams, and how redirectors count hops."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from protocols.creosote.wire import MAX_UDP_PAYLOAD
from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.framing import chunks

# --------------------------------------------------------------------------- chunks

CHUNK_MAGIC = b"\x00creosote1 "
MAX_CHUNKS = 65535
MAX_MSG_ID = 2**64 - 1
_MAX_HEADER = len(CHUNK_MAGIC) + 16 + 1 + 5 + 1 + 5 + 1  # magic, 16 hex digits, " ", i, "/", n, "\n"
_CHUNK_HEADER = re.compile(rb"([0-9a-f]{1,16}) (0|[1-9][0-9]{0,4})/([1-9][0-9]{0,4})")


@dataclass(frozen=True, slots=True)
class Chunk:
    """Chunk ``index`` (from 0) of ``total`` of message ``msg_id``."""

    msg_id: int
    index: int
    total: int
    payload: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.msg_id <= MAX_MSG_ID:
            raise LocalProtocolError(f"message id {self.msg_id} is not a 64-bit unsigned number")
        if not 0 <= self.index < self.total <= MAX_CHUNKS:
            raise LocalProtocolError(f"chunk {self.index}/{self.total} is out of range (0 <= i < n <= {MAX_CHUNKS})")

    def header(self) -> bytes:
        """The header line that precedes the payload on the wire."""
        return _chunk_header(self.msg_id, self.index, self.total)


def _chunk_header(msg_id: int, index: int, total: int) -> bytes:
    return CHUNK_MAGIC + f"{msg_id:x} {index}/{total}\n".encode("ascii")


def encode_chunks(message: bytes, msg_id: int, max_datagram: int) -> list[bytes]:
    """Cut ``message`` into chunk datagrams of at most ``max_datagram`` bytes, header included."""
    if not 0 <= msg_id <= MAX_MSG_ID:
        raise LocalProtocolError(f"message id {msg_id} is not a 64-bit unsigned number")
    if not _MAX_HEADER < max_datagram <= MAX_UDP_PAYLOAD:
        raise LocalProtocolError(f"max_datagram must be in {_MAX_HEADER + 1}..{MAX_UDP_PAYLOAD}, not {max_datagram}")
    pieces = chunks(message, _chunk_room(len(message), msg_id, max_datagram))
    return [_chunk_header(msg_id, i, len(pieces)) + piece for i, piece in enumerate(pieces)]


def _chunk_room(length: int, msg_id: int, max_datagram: int) -> int:
    """Payload bytes per chunk: the header grows with the digits of n, which depends on the room."""
    total = 1
    while True:
        room = max_datagram - len(_chunk_header(msg_id, total - 1, total))
        needed = max(1, math.ceil(length / room))
        if needed > MAX_CHUNKS:
            raise LocalProtocolError(f"a {length}-byte message needs more than {MAX_CHUNKS} chunks")
        if needed <= total:  # fewer chunks never means longer headers, so every header fits
            return room
        total = needed


def decode_chunk(datagram: bytes) -> Chunk | None:
    """The chunk in ``datagram``; ``None`` if it is a plain datagram.

    Raises ``RemoteProtocolError`` when the datagram starts like a chunk but its
    header is malformed.
    """
    if not datagram.startswith(CHUNK_MAGIC):
        return None
    end = datagram.find(b"\n", len(CHUNK_MAGIC), _MAX_HEADER)
    if end < 0:
        raise RemoteProtocolError(f"chunk header without end of line: {datagram[:_MAX_HEADER]!r}")
    match = _CHUNK_HEADER.fullmatch(datagram, len(CHUNK_MAGIC), end)
    if match is None:
        raise RemoteProtocolError(f"malformed chunk header: {datagram[:end]!r}")
    msg_id, index, total = int(match.group(1), 16), int(match.group(2)), int(match.group(3))
    if not index < total <= MAX_CHUNKS:
        raise RemoteProtocolError(f"chunk {index}/{total} is out of range (0 <= i < n <= {MAX_CHUNKS})")
    return Chunk(msg_id, index, total, datagram[end + 1 :])


def frame_message(message: bytes, msg_id: int, max_datagram: int) -> list[bytes]:
    """The datagrams for one message: itself if it fits and cannot be mistaken, else chunks."""
    looks_like_ours = message.startswith(b"\x00creosote")  # a chunk header or the probe
    if len(message) <= max_datagram and not looks_like_ours:
        return [message]
    return encode_chunks(message, msg_id, max_datagram)


# --------------------------------------------------------------------------- redirector hops

HOP_MAGIC = b"\x00creosote-hops "
# Redirectors a datagram may pass. topology/relay.yaml chains two; eight leaves room for longer chains
# and bounds a loop's echo to eight sends of each datagram.
MAX_HOPS = 8
_HOP_COUNT = re.compile(rb"([1-9])\n")  # one digit: MAX_HOPS is below 10, and a hop line keeps its length


class HopLimitExceeded(RemoteProtocolError):
    """A datagram has passed ``MAX_HOPS`` redirectors: they are in a loop, or the chain is too long."""


def split_hops(datagram: bytes) -> tuple[int, bytes]:
    """How many redirectors ``datagram`` passed (0 if it has no hop line) and what it carries.

    Raises ``RemoteProtocolError`` for a datagram that starts like a hop line
    but is not a valid one.
    """
    if not datagram.startswith(HOP_MAGIC):
        return 0, datagram
    match = _HOP_COUNT.match(datagram, len(HOP_MAGIC))
    if match is None:
        raise RemoteProtocolError(f"malformed hop line: {datagram[: len(HOP_MAGIC) + 4]!r}")
    return int(match.group(1)), datagram[match.end() :]


def add_hop(datagram: bytes, *, max_hops: int = MAX_HOPS) -> bytes:
    """What a redirector sends on: ``datagram`` with a hop line counting one more redirector.

    Raises ``HopLimitExceeded`` when it has passed ``max_hops`` already.
    """
    if not 1 <= max_hops <= 9:
        raise LocalProtocolError(f"max_hops must be 1..9 (one digit on the wire), not {max_hops}")
    hops, payload = split_hops(datagram)
    if hops >= max_hops:
        raise HopLimitExceeded(f"passed {hops} redirectors already (at most {max_hops}): a loop?")
    return HOP_MAGIC + b"%d\n" % (hops + 1) + payload
