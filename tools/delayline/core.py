"""The delay line without its sockets (sans-IO): netlink bytes in; verdict bytes and packets to send again out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tools.delayline.netlink import (
    ETH_P_IP,
    ETH_P_IPV6,
    NF_ACCEPT,
    NF_DROP,
    NFQNL_MSG_PACKET,
    NLMSG_ERROR,
    Queued,
    error_code,
    parse_messages,
    parse_packet,
    queue_type,
    verdict_message,
)
from tools.delayline.schedule import Schedule

# A held packet: its id, and the copy to send again (None: the kernel holds it, we accept it when due).
Held = tuple[int, bytes | None, int]
Resend = tuple[int, bytes, int]  # (ethertype, IP packet, output ifindex)

# What holding one copy costs this process beside its bytes: the bytes object's header, the held
# tuple, the schedule's heap entry and its numbers. tracemalloc in the node image's Python 3.11
# measured 253 bytes for 64-byte packets and 246 for 1472-byte ones (2026-12-02). Charged to the
# budget, so that a flood of tiny packets cannot hold several times the budget in overhead.
HELD_OVERHEAD = 256
OVERFLOW_REPORT_EVERY = 1.0  # seconds: at most one ``overflow`` line a second, while a flood lasts


@dataclass
class Stats:
    """Counters reported when the delay line stops."""

    received: int = 0
    accepted: int = 0  # held by the kernel, accepted when due
    resent: int = 0  # copied, dropped at once, sent again when due
    dropped: int = 0  # lost on purpose (--loss-pct)
    errors: int = 0
    max_held: int = 0  # packets held at once, at most
    max_held_bytes: int = 0  # what they were charged against the budget, at most
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
    # Each copy is charged its length plus HELD_OVERHEAD.
    max_bytes: int = 48 << 20
    held_bytes: int = 0
    overflow_reported: int = 0  # stats.overflow when the last ``overflow_news`` was given
    _reported_at: float = float("-inf")
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
                if copy is not None and self.held_bytes + len(copy) + HELD_OVERHEAD > self.max_bytes:
                    self.stats.overflow += 1
                    drops.append(packet.pid)
                elif not self.schedule.add((packet.pid, copy, packet.outdev or 0), now):
                    self.stats.dropped += 1
                    drops.append(packet.pid)
                elif copy is not None:
                    self.held_bytes += len(copy) + HELD_OVERHEAD
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
        self.stats.max_held_bytes = max(self.stats.max_held_bytes, self.held_bytes)
        if not drops:
            return b""
        if not self._originals:
            # Nothing of ours is left in the kernel's queue: one batch verdict drops exactly these.
            return verdict_message(self.queue, max(drops), NF_DROP, seq=self.next_seq(), batch=True)
        return b"".join(verdict_message(self.queue, pid, NF_DROP, seq=self.next_seq()) for pid in drops)

    def overflow_news(self, now: float, *, every: float = OVERFLOW_REPORT_EVERY) -> int | None:
        """How many packets the budget dropped since the last news, if any and ``every`` seconds have passed.

        The count in the ``stopped`` line comes too late for anyone watching a flood: this lets the
        runner say so while it lasts, without a line per packet.
        """
        fresh = self.stats.overflow - self.overflow_reported
        if not fresh or now - self._reported_at < every:
            return None
        self.overflow_reported, self._reported_at = self.stats.overflow, now
        return fresh

    def release(self, now: float) -> tuple[bytes, list[Resend]]:
        """Verdicts (accept) and packets to send again, for everything due at ``now``."""
        return self._release(self.schedule.pop_due(now))

    def drain(self) -> tuple[bytes, list[Resend]]:
        """Everything still held, at once (stopping)."""
        return self._release(self.schedule.pop_all())

    def _release(self, held: list[Held]) -> tuple[bytes, list[Resend]]:
        self.held_bytes -= sum(len(copy) + HELD_OVERHEAD for _pid, copy, _outdev in held if copy is not None)
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
