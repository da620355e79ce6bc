"""A capture read as a conversation: who sent what to whom, with TCP's flags, one line per packet.

Pure: the packets come from ``lab.capture`` (its pcap reader), the names from the lab.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lab.capture import PROTOCOL_NAMES, Packet

FLAG_LETTERS = ((0x02, "SYN"), (0x10, "ACK"), (0x08, "PSH"), (0x01, "FIN"), (0x04, "RST"))


def flag_names(flags: int) -> str:
    """``SYN,ACK`` for 0x12: TCP's flags in the order a handshake shows them."""
    return ",".join(name for bit, name in FLAG_LETTERS if flags & bit) or "none"


def line(packet: Packet, names: Mapping[str, str]) -> str:
    """``client:40312 -> server:7 tcp SYN`` (or ``... tcp PSH,ACK 12 bytes``)."""

    def end(address: str, port: int | None) -> str:
        host = names.get(address, address)
        return host if port is None else f"{host}:{port}"

    kind = PROTOCOL_NAMES.get(packet.protocol, str(packet.protocol))
    text = f"{end(packet.src, packet.sport)} -> {end(packet.dst, packet.dport)} {kind}"
    if packet.flags is not None:
        text += f" {flag_names(packet.flags)}"
    if packet.payload:
        text += f" {packet.payload} bytes"
    return text


def conversation(packets: Sequence[Packet], names: Mapping[str, str]) -> list[str]:
    """Every packet between the lab's named hosts, one line each, in capture order."""
    return [line(p, names) for p in packets if p.src in names or p.dst in names]
