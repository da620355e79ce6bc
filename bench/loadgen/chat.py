"""``chat``: the chat room and Redis pub/sub, the same fan-out, measured in alternating phases.

``--clients`` members join the chat room, and ``--clients`` - 1 subscribers plus
the publishers connect to Redis; ``--senders`` senders each keep one message in
flight, the next leaving once every recipient has the previous one. Receiver
workers (``--procs``) share the recipients; deliveries and their latency are
counted where they arrive.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.loadgen.common import NS, POLL, RECV_SIZE, resolve
from bench.stats import Histogram

MESSAGE = re.compile(rb"m (\d+) (\d+) (\d+) ")
GREETING_LINES = 4  # what the chat room sends each member on arrival (protocols.chat: the greeting)
# The chat server's announce grace (5 s) and one presence tick (1 s) after the last arrival, and a margin.
PRESENCE_SETTLE = 6.5
QUIET = 0.3  # ... and nothing arrived for this long


def chat_message(sender: int, seq: int, now_ns: int, size: int) -> bytes:
    """A message text (no newline) of ``size`` bytes carrying its sender, number and send time."""
    head = b"m %d %d %d " % (sender, seq, now_ns)
    return head + b"x" * max(size - len(head), 0)


def resp_publish(channel: bytes, message: bytes) -> bytes:
    """``PUBLISH channel message`` in RESP, as redis-cli would send it."""
    return b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(channel), channel, len(message), message)


@dataclass
class _Conn:
    sock: socket.socket
    target: str  # "chat" or "redis"
    role: str  # "member", "sub" or "pub"
    sender: int = -1  # which sender this socket is (members that send, publishers)
    buf: bytes = b""
    lines: int = 0  # setup: lines (chat) or subscribe confirmations (redis) seen


class Receiver:
    """Counts deliveries on a set of recipient sockets and says when a message has reached them all.

    Each process (the parent and every worker) owns one: per sender and target
    it knows how many of *its* sockets must get each message, and calls
    ``complete(sender, seq)`` when they have. Messages of one sender are
    strictly one after another, so a new ``seq`` means the previous message is
    done with (a shortfall is counted as undelivered).
    """

    def __init__(self, conns: dict[int, _Conn], senders: int, complete: Callable[[int, int], None]) -> None:
        self.conns = conns
        self.complete = complete
        self.expected: dict[str, list[int]] = {}
        for target in ("chat", "redis"):
            recipients = [c for c in conns.values() if c.target == target and c.role != "pub"]
            # In the chat room a sender does not get its own message.
            self.expected[target] = [
                len(recipients) - sum(1 for c in recipients if c.sender == s) for s in range(senders)
            ]
        self.seq = [0] * senders
        self.remaining = [0] * senders
        self.target = "chat"
        self.t0 = self.t1 = 0
        self.latency_us = Histogram()
        self.undelivered = 0
        self.cpu0: float | None = None
        self.cpu_s = 0.0

    def start(self, target: str, t0: int, t1: int) -> None:
        """A new phase: count deliveries received in [t0, t1)."""
        self.target, self.t0, self.t1 = target, t0, t1
        self.latency_us = Histogram()
        self.undelivered = 0
        self.cpu0, self.cpu_s = None, 0.0
        self.seq = [0] * len(self.seq)
        self.remaining = [0] * len(self.remaining)

    def tick(self, now: int) -> None:
        """Start and stop this process's CPU clock with the window."""
        if self.cpu0 is None and self.t0 <= now < self.t1:
            self.cpu0 = time.process_time()
        elif self.cpu0 is not None and now >= self.t1 and not self.cpu_s:
            self.cpu_s = time.process_time() - self.cpu0

    def handle(self, fd: int, now: int) -> None:
        """Read what arrived on ``fd`` (a socket of this receiver); ``now`` is the batch's clock."""
        conn = self.conns[fd]
        try:
            data = conn.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        if not data:
            raise ConnectionError(f"{conn.target} closed a connection ({conn.role})")
        if conn.role == "pub":
            return  # Redis's ":<receivers>" replies to PUBLISH
        if conn.buf:
            data = conn.buf + data
        cut = data.rfind(b"\n") + 1
        conn.buf = data[cut:]
        if not cut:
            return
        in_window = self.t0 <= now < self.t1
        expected = self.expected[self.target]
        seqs, remaining, record = self.seq, self.remaining, self.latency_us.record
        for sender_text, seq_text, sent_text in MESSAGE.findall(data, 0, cut):
            sender, seq = int(sender_text), int(seq_text)
            if in_window:
                record((now - int(sent_text)) // 1000)
            if seq != seqs[sender]:
                self.undelivered += remaining[sender]
                seqs[sender], remaining[sender] = seq, expected[sender]
            remaining[sender] -= 1
            if remaining[sender] == 0:
                self.complete(sender, seq)

    def result(self) -> dict[str, Any]:
        """This process's share of the phase."""
        return {"latency_us": self.latency_us.to_json(), "cpu_s": self.cpu_s, "undelivered": self.undelivered}


def _receiver_worker(receiver: Receiver, control: int, report: int) -> None:
    """A forked receiver: phases and stops come on ``control``, completions and results go to ``report``."""
    ep = select.epoll()
    ep.register(control, select.EPOLLIN)
    for fd in receiver.conns:
        ep.register(fd, select.EPOLLIN)
    receiver.complete = lambda sender, seq: os.write(report, b"c %d %d\n" % (sender, seq))  # type: ignore[assignment]
    pending = b""
    while True:
        events = ep.poll(POLL)
        now = time.perf_counter_ns()
        receiver.tick(now)
        for fd, _ in events:
            if fd != control:
                receiver.handle(fd, now)
                continue
            chunk = os.read(control, 4096)
            if not chunk:
                return  # the parent is gone
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                words = line.split()
                if words[0] == b"p":
                    receiver.start(words[1].decode(), int(words[2]), int(words[3]))
                elif words[0] == b"e":
                    os.write(report, b"r " + json.dumps(receiver.result()).encode() + b"\n")
                elif words[0] == b"q":
                    return


@dataclass
class _Phase:
    target: str
    messages: int = 0
    latency_us: Histogram = field(default_factory=Histogram)
    undelivered: int = 0
    window_s: float = 0.0
    cpu_s: float = 0.0
    busiest_cpu_s: float = 0.0  # the busiest process's: the senders' own, or one receiver's
    t0_ns: int = 0
    t1_ns: int = 0

    def to_json(self) -> dict[str, Any]:
        hist = self.latency_us
        return {
            "generator": "chat-python",
            "target": self.target,
            "t0_ns": self.t0_ns,
            "t1_ns": self.t1_ns,
            "deliveries": hist.total,
            "messages": self.messages,
            "window_s": round(self.window_s, 4),
            "deliveries_per_s": hist.total / self.window_s if self.window_s else 0.0,
            "p50_ms": hist.percentile(50) / 1000 if hist.total else None,
            "p95_ms": hist.percentile(95) / 1000 if hist.total else None,
            "p99_ms": hist.percentile(99) / 1000 if hist.total else None,
            "errors": self.undelivered,
            "loadgen_cpu_s": round(self.cpu_s, 4),
            "busiest_cpu_s": round(self.busiest_cpu_s, 4),
            "latency_us": hist.to_json(),
        }


class ChatLoad:
    """Both rooms (chat server and Redis), their members, the receiver workers and the phase loop."""

    CHANNEL = b"room"

    def __init__(self, *, clients: int, senders: int, size: int, timeout: float) -> None:
        self.clients, self.senders, self.size, self.timeout = clients, senders, size, timeout
        self.ep = select.epoll()
        self.conns: dict[int, _Conn] = {}
        self.send_socks: dict[str, list[socket.socket]] = {"chat": [], "redis": []}
        self.workers: list[tuple[int, int, int]] = []  # pid, control write end, report read end
        self.reports: dict[int, bytes] = {}  # report fd -> unparsed bytes
        self.results: list[dict[str, Any]] = []
        self.receiver: Receiver | None = None
        self.seq = [0] * senders
        self.sent_at = [0] * senders
        self.waiting = [0] * senders  # processes that have yet to see the sender's current message
        self.reporters: dict[str, int] = {}
        self.sending = False
        self.phase_target = "chat"
        self.phase_messages = 0  # messages completed in this phase (all recipients have them)
        self.last_read = 0.0  # setup: when something last arrived (monotonic s)

    def _connect(self, address: tuple[str, int], target: str, role: str, sender: int = -1) -> _Conn:
        sock = socket.create_connection(address, timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        conn = _Conn(sock, target, role, sender)
        self.conns[sock.fileno()] = conn
        self.ep.register(sock.fileno(), select.EPOLLIN)
        return conn

    def setup_chat(self, address: tuple[str, int]) -> float:
        """Join ``clients`` members; wait for every greeting, then for the room's presence notices to pass.

        The room tells the others of a member only when it first speaks or after
        a grace (``services.chat.ANNOUNCE_GRACE``, 5 s), and past a burst it
        counts arrivals into one line a second: so the setup waits out the grace
        and the next tick, not a line count, lest those notices land in a phase.
        """
        began = time.perf_counter()
        members = [self._connect(address, "chat", "member", i if i < self.senders else -1)
                   for i in range(self.clients)]
        self.send_socks["chat"] = [m.sock for m in members[: self.senders]]
        self._drain_until(lambda: all(m.lines >= GREETING_LINES for m in members), "chat setup")
        settled = time.monotonic() + PRESENCE_SETTLE
        self._drain_until(lambda: time.monotonic() >= settled and time.monotonic() - self.last_read >= QUIET,
                          "chat presence notices")
        return time.perf_counter() - began

    def setup_redis(self, address: tuple[str, int]) -> float:
        """Subscribe ``clients`` - 1 connections (the chat's fan-out), open the publishers."""
        began = time.perf_counter()
        subs = [self._connect(address, "redis", "sub") for _ in range(self.clients - 1)]
        for sub in subs:
            sub.sock.send(b"SUBSCRIBE %s\r\n" % self.CHANNEL)
        pubs = [self._connect(address, "redis", "pub", i) for i in range(self.senders)]
        self.send_socks["redis"] = [p.sock for p in pubs]
        self._drain_until(lambda: all(s.lines for s in subs), "redis setup")
        return time.perf_counter() - began

    def _drain_until(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not complete after {self.timeout:g} s")
            for fd, _ in self.ep.poll(POLL):
                conn = self.conns[fd]
                data = conn.sock.recv(RECV_SIZE)
                if not data:
                    raise ConnectionError(f"{what}: {conn.target} closed a connection")
                conn.lines += data.count(b"subscribe" if conn.role == "sub" else b"\n")
                self.last_read = time.monotonic()

    def split(self, procs: int) -> None:
        """Fork ``procs`` receiver workers and hand them the recipients; senders stay here.

        The kernel's receive path is most of a recipient's cost (measured: ~85 %
        system time), so more processes is what lets the generator outrun a server.
        """
        if procs == 0:
            mine, shares = dict(self.conns), []
        else:
            mine = {fd: c for fd, c in self.conns.items() if c.sender >= 0}
            others = sorted(fd for fd, c in self.conns.items() if c.sender < 0)
            shares = [others[i::procs] for i in range(procs)]
        for share in shares:
            control_r, control_w = os.pipe()
            report_r, report_w = os.pipe()
            conns = {fd: self.conns[fd] for fd in share}
            pid = os.fork()
            if pid == 0:
                status = 0
                try:
                    os.close(control_w)
                    os.close(report_r)
                    _receiver_worker(Receiver(conns, self.senders, lambda s, q: None), control_r, report_w)
                except BaseException:
                    status = 1
                finally:
                    os._exit(status)
            os.close(control_r)
            os.close(report_w)
            self.workers.append((pid, control_w, report_r))
            self.reports[report_r] = b""
            self.ep.register(report_r, select.EPOLLIN)
            for fd in share:
                self.ep.unregister(fd)  # the worker reads these now; the parent keeps the fd open, unread
        self.receiver = Receiver(mine, self.senders, self._complete)
        for target in ("chat", "redis"):
            # A worker reports a message done only if it holds recipients of that target.
            self.reporters[target] = sum(
                1 for share in [list(mine), *shares]
                if any(self.conns[fd].target == target and self.conns[fd].role != "pub" for fd in share)
            )

    def _send(self, target: str, sender: int) -> None:
        self.seq[sender] += 1
        now = time.perf_counter_ns()
        text = chat_message(sender, self.seq[sender], now, self.size)
        wire = text + b"\n" if target == "chat" else resp_publish(self.CHANNEL, text)
        self.sent_at[sender] = now
        self.waiting[sender] = self.reporters[target]
        self.send_socks[target][sender].send(wire)

    def _complete(self, sender: int, seq: int) -> None:
        if seq != self.seq[sender]:
            return  # a message given up on (stall) that completed after all
        self.waiting[sender] -= 1
        if self.waiting[sender] == 0:
            self.phase_messages += 1
            if self.sending:
                self._send(self.phase_target, sender)

    def _read_reports(self, fd: int) -> None:
        data = self.reports[fd] + os.read(fd, 65536)
        if not data:
            raise RuntimeError("a receiver worker died")
        lines = data.split(b"\n")
        self.reports[fd] = lines.pop()
        for line in lines:
            if line.startswith(b"c "):
                _, sender, seq = line.split()
                self._complete(int(sender), int(seq))
            elif line.startswith(b"r "):
                self.results.append(json.loads(line[2:]))

    def run_phase(self, target: str, *, warmup: float, duration: float) -> _Phase:
        """Keep every sender's one message in flight for ``warmup`` + ``duration`` s; measure the latter."""
        assert self.receiver is not None, "split() first"
        phase = _Phase(target)
        self.phase_target, self.phase_messages = target, 0
        start = time.perf_counter_ns()
        t0 = start + int(warmup * NS)
        t1 = t0 + int(duration * NS)
        self.receiver.start(target, t0, t1)
        for _, control_w, _ in self.workers:
            os.write(control_w, b"p %s %d %d\n" % (target.encode(), t0, t1))
        self.sending = True
        for sender in range(self.senders):
            self._send(target, sender)
        stall = int(self.timeout * NS)
        receiver, handle = self.receiver, self.receiver.handle
        counted_from = 0
        while True:
            events = self.ep.poll(POLL)
            now = time.perf_counter_ns()  # one read per batch: see bench.loadgen.upper._worker
            receiver.tick(now)
            if not counted_from and now >= t0:
                counted_from = self.phase_messages
            if self.sending and now >= t1:
                self.sending = False
                phase.window_s = (now - t0) / NS
                phase.t0_ns, phase.t1_ns = t0, now
                phase.messages = self.phase_messages - counted_from
            if not self.sending and not any(self.waiting):
                break
            for fd, _ in events:
                if fd in self.reports:
                    self._read_reports(fd)
                else:
                    handle(fd, now)
            for sender in range(self.senders):
                if self.waiting[sender] and now - self.sent_at[sender] > stall:
                    phase.undelivered += 1  # a recipient never got it: give up on it, go on
                    self.waiting[sender] = 0
                    if self.sending:
                        self._send(target, sender)
        # Collect every process's histogram and CPU time for the window.
        self.results = []
        for _, control_w, _ in self.workers:
            os.write(control_w, b"e\n")
        while len(self.results) < len(self.workers):
            for fd, _ in self.ep.poll(self.timeout):
                if fd in self.reports:
                    self._read_reports(fd)
                else:
                    handle(fd, time.perf_counter_ns())
        for part in [receiver.result(), *self.results]:
            phase.latency_us.merge(Histogram.from_json(part["latency_us"]))
            phase.cpu_s += part["cpu_s"]
            phase.busiest_cpu_s = max(phase.busiest_cpu_s, part["cpu_s"])
            phase.undelivered += part["undelivered"]
        return phase

    def close(self) -> None:
        """Stop the workers, close every connection."""
        for pid, control_w, report_r in self.workers:
            with contextlib.suppress(OSError):
                os.write(control_w, b"q\n")
                os.close(control_w)
            os.waitpid(pid, 0)
            os.close(report_r)
        self.workers.clear()
        for conn in self.conns.values():
            conn.sock.close()
        self.ep.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up both rooms, then alternate phases chat/redis (ABBA order), ``--rounds`` of each."""
    load = ChatLoad(clients=args.clients, senders=min(args.senders, args.clients), size=args.size,
                    timeout=args.timeout)
    try:
        setup: dict[str, float] = {}
        targets: list[str] = []
        if args.chat:
            host, port = args.chat.rsplit(":", 1)
            setup["chat"] = load.setup_chat((resolve(host), int(port)))
            targets.append("chat")
        if args.redis:
            host, port = args.redis.rsplit(":", 1)
            setup["redis"] = load.setup_redis((resolve(host), int(port)))
            targets.append("redis")
        load.split(args.procs)
        phases = []
        for round_ in range(args.rounds):
            for target in targets if round_ % 2 == 0 else targets[::-1]:
                phases.append(load.run_phase(target, warmup=args.warmup, duration=args.duration).to_json())
    finally:
        load.close()
    return {"clients": args.clients, "senders": load.senders, "size": args.size, "fanout": args.clients - 1,
            "procs": args.procs, "setup_s": setup, "phases": phases}
