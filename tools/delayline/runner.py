"""The thin adapter around ``DelayLine``: the netlink socket, the raw sockets, signals and the loop."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import socket
import struct
import sys
import time

from tools.delayline.core import DelayLine, Resend
from tools.delayline.netlink import (
    ETH_P_IP,
    ETH_P_IPV6,
    NETLINK_NETFILTER,
    NETLINK_NO_ENOBUFS,
    NFQA_CFG_F_GSO,
    NFQNL_CFG_CMD_BIND,
    NFQNL_CFG_CMD_UNBIND,
    NFQNL_COPY_META,
    NFQNL_COPY_PACKET,
    SO_RCVBUFFORCE,
    SOL_NETLINK,
    NetlinkError,
    chunks,
    config_message,
    message_seq,
)

IPV6_HDRINCL = 36  # linux/in6.h
SIOCGIFMTU = 0x8921
DEFAULT_MARK = 0x7E57  # on the packets we send again, so the caller's rule lets them pass


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
    seq = message_seq(message)
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
            now = time.monotonic()
            _send(sock, sender, line.release(now))
            if (fresh := line.overflow_news(now)) is not None:
                log("overflow", dropped=fresh, total=line.stats.overflow, held=len(sched),
                    held_bytes=line.held_bytes, budget=line.max_bytes)  # fmt: skip
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
        max_held_bytes=stats.max_held_bytes,
        budget=line.max_bytes,
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
