"""nfnetlink_queue on the wire (``linux/netfilter/nfnetlink_queue.h``): messages built and parsed, no sockets."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

# linux/netlink.h
NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
SO_RCVBUFFORCE = 33  # asm-generic/socket.h: like SO_RCVBUF but past rmem_max, with CAP_NET_ADMIN
NLM_F_REQUEST = 0x01
NLM_F_ACK = 0x04
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLA_TYPE_MASK = 0x3FFF  # drops NLA_F_NESTED and NLA_F_NET_BYTEORDER

# linux/netfilter/nfnetlink.h, nfnetlink_queue.h, netfilter.h
NFNL_SUBSYS_QUEUE = 3
NFNETLINK_V0 = 0
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQNL_MSG_VERDICT_BATCH = 3
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_IFINDEX_INDEV = 5
NFQA_IFINDEX_OUTDEV = 6
NFQA_PAYLOAD = 10
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQNL_COPY_META = 1
NFQNL_COPY_PACKET = 2
NFQA_CFG_F_GSO = 0x04  # META mode reads no payloads: the kernel may hand us GSO packets unsegmented
NF_DROP = 0
NF_ACCEPT = 1
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid (host byte order)
_NFGENMSG = struct.Struct("!BBH")  # family, version, res_id (big-endian: the queue number)
_NLATTR = struct.Struct("=HH")  # len, type
_VERDICT_HDR = struct.Struct("!II")  # verdict, packet id
_PACKET_HDR = struct.Struct("!IHB")  # packet id, hw_protocol, hook

MAX_SEND = 32 * 1024  # verdicts per sendmsg stay far below the socket's send buffer


class NetlinkError(OSError):
    """The kernel refused a request (an ``NLMSG_ERROR`` with a non-zero code)."""


def _align(n: int) -> int:
    return (n + 3) & ~3


def nlattr(attr_type: int, data: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    length = _NLATTR.size + len(data)
    return _NLATTR.pack(length, attr_type) + data + b"\0" * (_align(length) - length)


def nlmsg(msg_type: int, flags: int, seq: int, payload: bytes) -> bytes:
    """One netlink message: header plus payload, padded to 4 bytes."""
    length = _NLMSGHDR.size + len(payload)
    return _NLMSGHDR.pack(length, msg_type, flags, seq, 0) + payload + b"\0" * (_align(length) - length)


def message_seq(message: bytes) -> int:
    """The sequence number in the header of a netlink message we built."""
    return int(_NLMSGHDR.unpack_from(message)[3])


def queue_type(msg: int) -> int:
    """The nlmsg_type of an nfnetlink_queue message."""
    return (NFNL_SUBSYS_QUEUE << 8) | msg


def config_message(
    queue: int,
    *,
    seq: int,
    command: int | None = None,
    copy_mode: int | None = None,
    copy_range: int = 0,
    maxlen: int | None = None,
    flags: int | None = None,
) -> bytes:
    """An ``NFQNL_MSG_CONFIG`` request (with ``NLM_F_ACK``, so the kernel says whether it worked)."""
    attrs = b""
    if command is not None:
        # struct nfqnl_msg_config_cmd { u8 command; u8 pad; be16 pf; }: pf is ignored by BIND since 3.8
        attrs += nlattr(NFQA_CFG_CMD, struct.pack("!BBH", command, 0, socket.AF_UNSPEC))
    if copy_mode is not None:
        # struct nfqnl_msg_config_params { be32 copy_range; u8 copy_mode; } __packed
        attrs += nlattr(NFQA_CFG_PARAMS, struct.pack("!IB", copy_range, copy_mode))
    if maxlen is not None:
        attrs += nlattr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen))
    if flags is not None:
        attrs += nlattr(NFQA_CFG_FLAGS, struct.pack("!I", flags))
        attrs += nlattr(NFQA_CFG_MASK, struct.pack("!I", flags))
    payload = _NFGENMSG.pack(socket.AF_UNSPEC, NFNETLINK_V0, queue) + attrs
    return nlmsg(queue_type(NFQNL_MSG_CONFIG), NLM_F_REQUEST | NLM_F_ACK, seq, payload)


def verdict_message(queue: int, packet_id: int, verdict: int, *, seq: int, batch: bool = False) -> bytes:
    """A verdict for one packet, or with ``batch`` for every queued packet with an id up to ``packet_id``."""
    payload = _NFGENMSG.pack(socket.AF_UNSPEC, NFNETLINK_V0, queue)
    payload += nlattr(NFQA_VERDICT_HDR, _VERDICT_HDR.pack(verdict, packet_id))
    kind = NFQNL_MSG_VERDICT_BATCH if batch else NFQNL_MSG_VERDICT
    return nlmsg(queue_type(kind), NLM_F_REQUEST, seq, payload)


@dataclass(frozen=True)
class Message:
    """One netlink message as received: its header fields and payload."""

    msg_type: int
    flags: int
    seq: int
    payload: bytes


def parse_messages(data: bytes) -> Iterator[Message]:
    """Split a received datagram into netlink messages; a truncated tail is ignored."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, msg_type, flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            return
        yield Message(msg_type, flags, seq, data[offset + _NLMSGHDR.size : offset + length])
        offset += _align(length)


def parse_attrs(data: bytes) -> dict[int, bytes]:
    """Netlink attributes by type (flags masked off); the last one wins if a type repeats."""
    attrs: dict[int, bytes] = {}
    offset = 0
    while offset + _NLATTR.size <= len(data):
        length, attr_type = _NLATTR.unpack_from(data, offset)
        if length < _NLATTR.size or offset + length > len(data):
            break
        attrs[attr_type & NLA_TYPE_MASK] = data[offset + _NLATTR.size : offset + length]
        offset += _align(length)
    return attrs


@dataclass(frozen=True)
class Queued:
    """A packet the kernel queued: its id, and (in copy mode) what it takes to send it again."""

    pid: int
    hw_protocol: int = 0  # the ethertype: 0x0800 IPv4, 0x86DD IPv6
    indev: int | None = None  # set for forwarded packets only
    outdev: int | None = None
    payload: bytes | None = None  # the IP packet, in copy mode


def parse_packet(message: Message) -> Queued:
    """The fields of an ``NFQNL_MSG_PACKET`` we use."""
    attrs = parse_attrs(message.payload[_NFGENMSG.size :])
    header = attrs.get(NFQA_PACKET_HDR)
    if header is None or len(header) < _PACKET_HDR.size:
        raise ValueError("NFQNL_MSG_PACKET without a packet header")
    pid, hw_protocol, _hook = _PACKET_HDR.unpack_from(header)
    indev, outdev = attrs.get(NFQA_IFINDEX_INDEV), attrs.get(NFQA_IFINDEX_OUTDEV)
    return Queued(
        pid,
        hw_protocol,
        None if indev is None else int.from_bytes(indev[:4], "big"),
        None if outdev is None else int.from_bytes(outdev[:4], "big"),
        attrs.get(NFQA_PAYLOAD),
    )


def packet_id(message: Message) -> int:
    """The packet id of an ``NFQNL_MSG_PACKET`` message."""
    return parse_packet(message).pid


def error_code(message: Message) -> tuple[int, int]:
    """(errno, seq of the request) of an ``NLMSG_ERROR``; errno 0 is an acknowledgement."""
    (code,) = struct.unpack_from("=i", message.payload)
    seq = _NLMSGHDR.unpack_from(message.payload, 4)[3] if len(message.payload) >= 4 + _NLMSGHDR.size else 0
    return -code, seq


def packet_message(
    queue: int,
    pid: int,
    *,
    seq: int = 0,
    hook: int = 4,
    hw_protocol: int = ETH_P_IP,
    indev: int | None = None,
    outdev: int | None = None,
    payload: bytes | None = None,
) -> bytes:
    """What the kernel sends for a queued packet; for tests and for reading the format."""
    data = _NFGENMSG.pack(socket.AF_INET, NFNETLINK_V0, queue)
    data += nlattr(NFQA_PACKET_HDR, _PACKET_HDR.pack(pid, hw_protocol, hook))
    if indev is not None:
        data += nlattr(NFQA_IFINDEX_INDEV, struct.pack("!I", indev))
    if outdev is not None:
        data += nlattr(NFQA_IFINDEX_OUTDEV, struct.pack("!I", outdev))
    if payload is not None:
        data += nlattr(NFQA_PAYLOAD, payload)
    return nlmsg(queue_type(NFQNL_MSG_PACKET), 0, seq, data)


def chunks(data: bytes, limit: int = MAX_SEND) -> Iterator[bytes]:
    """Split concatenated netlink messages into sends of at most ``limit`` bytes, on message bounds."""
    start = 0
    while start < len(data):
        end = start
        while end < len(data):
            (length,) = struct.unpack_from("=I", data, end)
            step = _align(length)
            if end > start and end + step - start > limit:
                break
            end += step
        yield data[start:end]
        start = end
