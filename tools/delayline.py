"""``python3 -m tools.delayline``: a netem-style delay line on an NFQUEUE, for kernels without ``sch_netem``.

An iptables rule hands packets to the queue (``-j NFQUEUE --queue-num N --queue-bypass``); this
process holds each one until its delay is due. Stdlib only: it runs inside the node image, in a
sidecar that shares the node's network namespace and holds ``CAP_NET_ADMIN`` (and ``CAP_NET_RAW``)
for it.

How a packet is held depends on where it comes from:

* a packet this host sends itself is **copied** (copy mode PACKET), its original dropped at once, and
  the copy sent again from a raw socket when due, with a firewall mark (``--mark``) the caller's
  rules let through. Holding the original instead would keep it charged to its socket, and TCP
  Small Queues would then let a flow have two packets in the air per delay (about 2 Mbit/s at
  20 ms; netem avoids it by orphaning what it holds, which userspace cannot do);
* a forwarded packet (a router node's), or one larger than its interface's MTU (IP fragments it
  later), is held by the kernel, and accepted (``NF_ACCEPT``) when due. ``--no-resend`` holds every
  packet so, with ``CAP_NET_ADMIN`` alone.

The protocol is nfnetlink_queue (``linux/netfilter/nfnetlink_queue.h``); the layering follows the
project's sans-IO style: :class:`DelayLine` turns received netlink bytes into verdict bytes and
packets to send, and knows no sockets; :func:`run` is the thin adapter around them.

What it does on purpose:

* jitter never reorders packets unless ``--reorder`` is given (a packet is never due before the
  one queued ahead of it; netem reorders by default, which surprises TCP tests);
* loss by ``NF_DROP`` with a seeded RNG, for reproducible runs (``lab.impair`` leaves loss to the
  iptables ``statistic`` match instead, so a delay line is needed only for delay);
* verdicts go out batched: one ``NFQNL_MSG_VERDICT_BATCH`` when they cover a prefix of the queue,
  else many verdicts in one ``send``;
* a big receive buffer and ``NETLINK_NO_ENOBUFS``: when the socket overflows the kernel drops
  the packet (like a full netem queue) and we keep going instead of failing every ``recv``;
* on SIGTERM/SIGINT it lets go of what it still holds (at once: a stopping delay line must not eat
  packets), unbinds the queue and exits 0. The iptables rules belong to the caller and stay.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from common.argtypes import int_in, non_negative_float

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
IPV6_HDRINCL = 36  # linux/in6.h
SIOCGIFMTU = 0x8921
DEFAULT_MARK = 0x7E57  # on the packets we send again, so the caller's rule lets them pass

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


T = TypeVar("T")


class Schedule(Generic[T]):
    """When each held packet is due: a heap of (due time, arrival number, item).

    Delays are drawn uniformly from ``delay ± jitter`` (floored at 0). Without ``reorder`` a packet
    is never due before the one that arrived ahead of it, so jitter stretches gaps instead of
    swapping packets; the due packets are then always the oldest ones, in arrival order. (When
    packets come closer together than the jitter, that skews their delays up a little.)
    """

    def __init__(
        self,
        *,
        delay: float,
        jitter: float = 0.0,
        loss: float = 0.0,
        reorder: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        if delay < 0 or jitter < 0 or not 0 <= loss <= 1:
            raise ValueError("delay and jitter must be >= 0 and loss within 0..1")
        self.delay = delay
        self.jitter = jitter
        self.loss = loss
        self.reorder = reorder
        self._rng = rng or random.Random()
        self._heap: list[tuple[float, int, T]] = []
        self._arrivals = 0
        self._last_due = float("-inf")
        self.late_max = 0.0  # seconds the latest release came after its due time
        self.late_over_1ms = 0  # releases more than 1 ms late (a busy CPU, not the schedule)

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, item: T, now: float) -> bool:
        """Hold a packet that arrived at ``now``; False means drop it now (loss) instead."""
        if self.loss and self._rng.random() < self.loss:
            return False
        wait = self.delay
        if self.jitter:
            wait = max(0.0, wait + self._rng.uniform(-self.jitter, self.jitter))
        due = now + wait
        if not self.reorder:
            due = max(due, self._last_due)
            self._last_due = due
        self._arrivals += 1
        heapq.heappush(self._heap, (due, self._arrivals, item))
        return True

    def next_due(self) -> float | None:
        """When the earliest held packet is due, or None if nothing is held."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[T]:
        """The packets due at ``now``, earliest first."""
        due: list[T] = []
        while self._heap and self._heap[0][0] <= now:
            when, _arrival, item = heapq.heappop(self._heap)
            due.append(item)
            late = now - when
            if late > 0.001 and late != float("inf"):
                self.late_over_1ms += 1
                self.late_max = max(self.late_max, late)
        return due

    def pop_all(self) -> list[T]:
        """Every held packet, earliest first (used when stopping)."""
        return self.pop_due(float("inf"))


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


# A held packet: its id, and the copy to send again (None: the kernel holds it, we accept it when due).
Held = tuple[int, bytes | None, int]
Resend = tuple[int, bytes, int]  # (ethertype, IP packet, output ifindex)


@dataclass
class Stats:
    """Counters reported when the delay line stops."""

    received: int = 0
    accepted: int = 0  # held by the kernel, accepted when due
    resent: int = 0  # copied, dropped at once, sent again when due
    dropped: int = 0  # lost on purpose (--loss-pct)
    errors: int = 0
    max_held: int = 0
    overflow: int = 0  # dropped: the held copies were at their byte budget
    last_error: int = 0


def _unknown_mtu(_ifindex: int) -> int:
    return 0


@dataclass
class DelayLine:
    """The delay line without its sockets (sans-IO): netlink bytes in; verdict bytes and packets out.

    With ``resend`` (copy mode), a packet this host sends itself is copied, its original dropped at
    once and the copy sent again when due. Holding the original would keep it charged to its socket,
    and TCP Small Queues would then allow a flow only two packets per delay: 2 Mbit/s at 20 ms. (netem
    avoids the same trap by orphaning the packets it holds, which userspace cannot do.) Forwarded
    packets (no socket), packets larger than their interface's MTU (not yet fragmented), and
    protocols in no ``families`` are held by the kernel instead and accepted when due.
    """

    queue: int
    schedule: Schedule[Held]
    resend: bool = False
    families: frozenset[int] = frozenset()  # ethertypes we can send again
    mtu_of: Callable[[int], int] = _unknown_mtu  # output ifindex -> MTU (0: unknown, hold instead)
    stats: Stats = field(default_factory=Stats)
    waiting: set[int] = field(default_factory=set)
    acks: dict[int, int] = field(default_factory=dict)
    # Copies held in this process: a UDP flood into a long delay OOM-killed a 96 MiB sidecar in about 5 s.
    # Past the budget a packet is dropped (a full queue, as a router's would), counted in stats.overflow.
    max_bytes: int = 48 << 20
    held_bytes: int = 0
    _originals: int = 0  # held by the kernel, awaiting our accept
    _seq: int = 0

    def next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return self._seq

    def _copy_of(self, packet: Queued) -> bytes | None:
        if not self.resend or packet.payload is None or packet.indev is not None or packet.outdev is None:
            return None
        if packet.hw_protocol not in self.families or len(packet.payload) > self.mtu_of(packet.outdev):
            return None
        return packet.payload

    def receive(self, data: bytes, now: float) -> bytes:
        """Take one received datagram; return the verdicts to send at once (drops)."""
        drops: list[int] = []
        for message in parse_messages(data):
            if message.msg_type == queue_type(NFQNL_MSG_PACKET):
                packet = parse_packet(message)
                self.stats.received += 1
                copy = self._copy_of(packet)
                if copy is not None and self.held_bytes + len(copy) > self.max_bytes:
                    self.stats.overflow += 1
                    drops.append(packet.pid)
                elif not self.schedule.add((packet.pid, copy, packet.outdev or 0), now):
                    self.stats.dropped += 1
                    drops.append(packet.pid)
                elif copy is not None:
                    self.held_bytes += len(copy)
                    drops.append(packet.pid)  # we send the copy later: the original goes now
                else:
                    self._originals += 1
            elif message.msg_type == NLMSG_ERROR:
                code, seq = error_code(message)
                if seq in self.waiting:  # an answer to a config request
                    self.waiting.discard(seq)
                    self.acks[seq] = code
                elif code:  # a verdict the kernel refused (say ENOENT: the packet is gone)
                    self.stats.errors += 1
                    self.stats.last_error = code
        self.stats.max_held = max(self.stats.max_held, len(self.schedule))
        if not drops:
            return b""
        if not self._originals:
            # Nothing of ours is left in the kernel's queue: one batch verdict drops exactly these.
            return verdict_message(self.queue, max(drops), NF_DROP, seq=self.next_seq(), batch=True)
        return b"".join(verdict_message(self.queue, pid, NF_DROP, seq=self.next_seq()) for pid in drops)

    def release(self, now: float) -> tuple[bytes, list[Resend]]:
        """Verdicts (accept) and packets to send again, for everything due at ``now``."""
        return self._release(self.schedule.pop_due(now))

    def drain(self) -> tuple[bytes, list[Resend]]:
        """Everything still held, at once (stopping)."""
        return self._release(self.schedule.pop_all())

    def _release(self, held: list[Held]) -> tuple[bytes, list[Resend]]:
        self.held_bytes -= sum(len(copy) for _pid, copy, _outdev in held if copy is not None)
        accept = [pid for pid, copy, _outdev in held if copy is None]
        resend = [(_ethertype(copy), copy, outdev) for _pid, copy, outdev in held if copy is not None]
        self.stats.resent += len(resend)
        self.stats.accepted += len(accept)
        self._originals -= len(accept)
        if not accept:
            return b"", resend
        if not self.schedule.reorder:
            # In order, the due originals are the oldest left in the kernel's queue (the copied ones
            # were dropped on arrival): one batch verdict (every queued id <= the last) covers them.
            return verdict_message(self.queue, accept[-1], NF_ACCEPT, seq=self.next_seq(), batch=True), resend
        verdicts = b"".join(verdict_message(self.queue, pid, NF_ACCEPT, seq=self.next_seq()) for pid in accept)
        return verdicts, resend


def _ethertype(packet: bytes) -> int:
    return ETH_P_IPV6 if packet and packet[0] >> 4 == 6 else ETH_P_IP


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


def log(event: str, **fields: object) -> None:
    """One event line on stdout, like the servers' (the caller waits for ``ready``)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    parts = [stamp, "delayline", event, *(f"{key}={value}" for key, value in fields.items())]
    print(" ".join(parts), flush=True)


def open_queue(line: DelayLine, *, maxlen: int, rcvbuf: int) -> socket.socket:
    """Open the netlink socket and bind the queue (needs CAP_NET_ADMIN in the namespace)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        sock.bind((0, 0))
        request(sock, line, config_message(line.queue, seq=line.next_seq(), command=NFQNL_CFG_CMD_BIND))
        if line.resend:
            # Whole packets, and no GSO flag: the kernel segments GSO packets and completes their
            # checksums before copying, so every copy is a finished packet we can send as it is.
            params = config_message(
                line.queue, seq=line.next_seq(), copy_mode=NFQNL_COPY_PACKET, copy_range=0xFFFF, maxlen=maxlen
            )
        else:
            params = config_message(
                line.queue, seq=line.next_seq(), copy_mode=NFQNL_COPY_META, maxlen=maxlen, flags=NFQA_CFG_F_GSO
            )
        request(sock, line, params)
    except BaseException:
        sock.close()
        raise
    return sock


def request(sock: socket.socket, line: DelayLine, message: bytes, *, timeout: float = 5.0) -> None:
    """Send a config request and wait for its acknowledgement; packets arriving meanwhile are held."""
    seq = _NLMSGHDR.unpack_from(message)[3]
    line.waiting.add(seq)
    sock.send(message)
    deadline = time.monotonic() + timeout
    while seq not in line.acks:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no answer from nfnetlink_queue to request {seq}")
        ready, _, _ = select.select([sock], [], [], remaining)
        if ready and (drops := line.receive(sock.recv(1 << 17), time.monotonic())):
            sock.send(drops)
    code = line.acks.pop(seq)
    if code:
        raise NetlinkError(code, os.strerror(code))


class Sender:
    """Raw sockets that send copies again, marked so the caller's rules let them through."""

    def __init__(self, *, mark: int) -> None:
        self.sockets: dict[int, socket.socket] = {}
        self.errors = 0
        self.last_error = 0
        for ethertype, family in ((ETH_P_IP, socket.AF_INET), (ETH_P_IPV6, socket.AF_INET6)):
            try:
                raw = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW)  # needs CAP_NET_RAW
            except OSError:
                continue
            try:
                if family == socket.AF_INET6:
                    raw.setsockopt(socket.IPPROTO_IPV6, IPV6_HDRINCL, 1)
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)  # needs CAP_NET_ADMIN
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            except OSError:
                raw.close()
                continue
            self.sockets[ethertype] = raw
        self._mtus: dict[int, int] = {}

    @property
    def families(self) -> frozenset[int]:
        return frozenset(self.sockets)

    def mtu_of(self, ifindex: int) -> int:
        """The MTU of an interface of this namespace (0 if it cannot be read), cached."""
        if ifindex not in self._mtus:
            try:
                name = socket.if_indextoname(ifindex)
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    answer = fcntl.ioctl(probe, SIOCGIFMTU, struct.pack("16si20x", name.encode(), 0))
                self._mtus[ifindex] = struct.unpack_from("16si", answer)[1]
            except OSError:
                return 0  # not cached: an interface that appears later gets another look
        return self._mtus[ifindex]

    def send(self, packets: list[Resend]) -> None:
        for ethertype, packet, outdev in packets:
            raw = self.sockets[ethertype]
            try:
                if ethertype == ETH_P_IPV6:
                    raw.sendto(packet, (socket.inet_ntop(socket.AF_INET6, packet[24:40]), 0, 0, outdev))
                else:
                    raw.sendto(packet, (socket.inet_ntoa(packet[16:20]), 0))
            except OSError as exc:  # a full buffer or a vanished route loses the packet, as a link would
                self.errors += 1
                self.last_error = exc.errno or 0

    def close(self) -> None:
        for raw in self.sockets.values():
            raw.close()


def run(line: DelayLine, *, maxlen: int, rcvbuf: int, mark: int = DEFAULT_MARK) -> int:
    """Serve the queue until SIGTERM/SIGINT; return the exit code."""
    stop_r, stop_w = socket.socketpair()
    stop_r.setblocking(False)
    stop_w.setblocking(False)
    # The C-level handler writes to stop_w, so poll() wakes at once; the Python handler only
    # has to exist (PEP 475 would otherwise retry poll() until its timeout).
    signal.set_wakeup_fd(stop_w.fileno(), warn_on_full_buffer=False)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: None)
    sender = Sender(mark=mark)
    if line.resend and ETH_P_IP not in sender.families:
        log("notice", resend="off", why="no raw socket (needs CAP_NET_RAW); TCP from this node will be slow")
        line.resend = False
    line.families, line.mtu_of = sender.families, sender.mtu_of
    try:
        sock = open_queue(line, maxlen=maxlen, rcvbuf=rcvbuf)
    except OSError as exc:
        sender.close()
        hint = " (needs CAP_NET_ADMIN)" if exc.errno == errno.EPERM else ""
        hint = " (another process has bound this queue)" if exc.errno == errno.EBUSY else hint
        print(f"error: cannot bind queue {line.queue}: {exc.strerror or exc}{hint}", file=sys.stderr, flush=True)
        return 1
    sched = line.schedule
    log(
        "ready",
        queue=line.queue,
        delay_ms=f"{sched.delay * 1e3:g}",
        jitter_ms=f"{sched.jitter * 1e3:g}",
        loss_pct=f"{sched.loss * 100:g}",
        reorder=str(sched.reorder).lower(),
        resend=str(line.resend).lower(),
    )
    buffer = bytearray(1 << 17)
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    poller.register(stop_r, select.POLLIN)
    try:
        stopping = False
        while not stopping:
            due = sched.next_due()
            timeout_ms = -1 if due is None else max(0, int((due - time.monotonic()) * 1000 + 0.999))
            for fd, _events in poller.poll(timeout_ms):
                if fd == stop_r.fileno():
                    stopping = True
                else:
                    _read_available(sock, line, buffer)
            _send(sock, sender, line.release(time.monotonic()))
        _send(sock, sender, line.drain())
        with contextlib.suppress(OSError):  # best effort: closing the socket unbinds too
            sock.send(config_message(line.queue, seq=line.next_seq(), command=NFQNL_CFG_CMD_UNBIND))
    finally:
        sock.close()
        sender.close()
        stop_r.close()
        stop_w.close()
    stats = line.stats
    log(
        "stopped",
        received=stats.received,
        accepted=stats.accepted,
        resent=stats.resent,
        dropped=stats.dropped,
        max_held=stats.max_held,
        overflow=stats.overflow,
        late_over_1ms=sched.late_over_1ms,
        late_max_ms=f"{sched.late_max * 1e3:.1f}",
        errors=stats.errors,
        last_error=errno.errorcode.get(stats.last_error, stats.last_error),
        send_errors=sender.errors,
        last_send_error=errno.errorcode.get(sender.last_error, sender.last_error),
    )
    return 0


def _send(sock: socket.socket, sender: Sender, released: tuple[bytes, list[Resend]]) -> None:
    verdicts, packets = released
    for part in chunks(verdicts):
        sock.send(part)
    if packets:
        sender.send(packets)


def _read_available(sock: socket.socket, line: DelayLine, buffer: bytearray, *, limit: int = 4096) -> None:
    """Read what the socket holds (up to ``limit`` datagrams, so due packets are not starved)."""
    view = memoryview(buffer)
    for _ in range(limit):
        try:
            size = sock.recv_into(buffer, len(buffer), socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:  # only without NETLINK_NO_ENOBUFS: the kernel dropped some
                line.stats.errors += 1
                continue
            raise
        if drops := line.receive(bytes(view[:size]), time.monotonic()):
            sock.send(drops)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m tools.delayline",
        description="Delay (and optionally drop) the packets an iptables NFQUEUE rule sends to a queue.",
    )
    parser.add_argument(
        "--queue", type=int_in(0, 65535, "a queue number"), required=True, help="NFQUEUE number (0-65535)"
    )
    parser.add_argument("--delay-ms", type=non_negative_float, required=True, help="delay added to every packet")
    parser.add_argument("--jitter-ms", type=non_negative_float, default=0.0, help="uniform +/- variation of the delay")
    parser.add_argument("--loss-pct", type=non_negative_float, default=0.0, help="drop this percentage (NF_DROP)")
    parser.add_argument("--seed", type=int, help="seed for jitter and loss (default: random)")
    parser.add_argument("--reorder", action="store_true", help="let jitter reorder packets (as netem does)")
    parser.add_argument(
        "--no-resend",
        dest="resend",
        action="store_false",
        help="hold every packet in the kernel instead of sending copies (no CAP_NET_RAW needed; slow TCP)",
    )
    parser.add_argument(
        "--mark",
        type=int_in(1, 0xFFFFFFFF, "a mark", base=0),
        default=DEFAULT_MARK,
        help="fwmark of resent packets (default 0x7e57)",
    )
    parser.add_argument("--queue-maxlen", type=int, default=8192, help="packets the kernel holds (default 8192)")
    parser.add_argument("--rcvbuf", type=int, default=8 << 20, help="socket receive buffer in bytes (default 8 MiB)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.loss_pct > 100:
        parser.error("--loss-pct must be within 0-100")
    if args.queue_maxlen < 1:
        parser.error("--queue-maxlen must be at least 1")
    schedule: Schedule[Held] = Schedule(
        delay=args.delay_ms / 1e3,
        jitter=args.jitter_ms / 1e3,
        loss=args.loss_pct / 100,
        reorder=args.reorder,
        rng=random.Random(args.seed),
    )
    line = DelayLine(args.queue, schedule, resend=args.resend)
    return run(line, maxlen=args.queue_maxlen, rcvbuf=args.rcvbuf, mark=args.mark)


if __name__ == "__main__":
    sys.exit(main())
