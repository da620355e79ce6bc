"""``python3 -m bench.loadgen {upper,udp,chat} ...``: load generators, one JSON object on stdout.

Standard library only; they run in client containers on the bench network.

* ``upper``: closed-loop line requests: ``--conns`` connections, one request in
  flight on each (no pipelining), every reply checked, latency per request
  measured with ``perf_counter_ns`` into a ``bench.stats.Histogram``. ``--procs``
  splits the connections over forked workers that measure the same window.
* ``udp``: datagrams of ``--size`` bytes paced at ``--rate`` per second for
  ``--duration`` seconds, counted exactly.
* ``chat``: ``--clients`` members in the chat room *and* ``--clients`` - 1
  subscribers plus the publishers on Redis, then alternating measurement phases
  on each (the same process, the same senders, the same fan-out): ``--senders``
  senders each keep one message in flight, the next leaves once every recipient
  has the previous one; deliveries and their latency are counted at the
  recipients.

Why epoll and raw sockets rather than asyncio or threads: per request the loop
costs one ``recv``, one ``send`` and a few dictionary look-ups, several times less
CPU than a coroutine or a thread switch, so the generator stays far from
saturation (each result reports its own CPU time to show it).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import random
import re
import select
import socket
import string
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.stats import Histogram

NS = 1_000_000_000
# 64 KiB, not more: a larger recv() allocation sits past glibc's mmap/trim thresholds and costs
# ~13 µs per call in page faults (measured), more than the receive itself.
RECV_SIZE = 65536
_POLL = 0.05  # seconds: how often the loops look at the clock when nothing arrives


def resolve(host: str) -> str:
    """One IPv4 address for ``host`` (resolved once, not per connection)."""
    return str(socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])


def _count(errors: dict[str, int], kind: str) -> None:
    errors[kind] = errors.get(kind, 0) + 1


# --------------------------------------------------------------------------- upper: closed-loop requests


@dataclass
class UpperResult:
    """What one worker (or, merged, all of them) measured."""

    conns: int = 0
    requests: int = 0  # replies completed inside the window
    window_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    starved: int = 0  # connections that got no reply inside the window (an iterative server's queue)
    setup_s: float = 0.0  # until every connection had its first reply (or failed)
    cpu_s: float = 0.0  # this generator's CPU time inside the window
    latency_us: Histogram = field(default_factory=Histogram)
    t0_ns: int = 0  # the window, CLOCK_MONOTONIC: the same clock on the host and in every container
    t1_ns: int = 0

    def merge(self, other: UpperResult) -> None:
        """Add another worker's numbers (same window)."""
        self.conns += other.conns
        self.requests += other.requests
        self.window_s = max(self.window_s, other.window_s)
        for kind, count in other.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + count
        self.starved += other.starved
        self.setup_s = max(self.setup_s, other.setup_s)
        self.cpu_s += other.cpu_s
        self.latency_us.merge(other.latency_us)
        self.t0_ns = min(self.t0_ns, other.t0_ns) if self.t0_ns else other.t0_ns
        self.t1_ns = max(self.t1_ns, other.t1_ns)

    def to_json(self) -> dict[str, Any]:
        """The JSON the bench script reads."""
        hist = self.latency_us
        return {
            "conns": self.conns,
            "requests": self.requests,
            "window_s": round(self.window_s, 4),
            "rps": self.requests / self.window_s if self.window_s else 0.0,
            "p50_ms": hist.percentile(50) / 1000 if hist.total else None,
            "p99_ms": hist.percentile(99) / 1000 if hist.total else None,
            "max_ms": hist.maximum / 1000 if hist.total else None,
            "errors": sum(self.errors.values()),
            "error_kinds": self.errors,
            "starved": self.starved,
            "setup_s": round(self.setup_s, 3),
            "loadgen_cpu_s": round(self.cpu_s, 4),
            "t0_ns": self.t0_ns,
            "t1_ns": self.t1_ns,
            "latency_us": hist.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UpperResult:
        """Rebuild a worker's result (sent to the parent through a pipe)."""
        return cls(
            conns=data["conns"],
            requests=data["requests"],
            window_s=data["window_s"],
            errors=dict(data["error_kinds"]),
            starved=data["starved"],
            setup_s=data["setup_s"],
            cpu_s=data["loadgen_cpu_s"],
            latency_us=Histogram.from_json(data["latency_us"]),
            t0_ns=data["t0_ns"],
            t1_ns=data["t1_ns"],
        )


def make_line(size: int, seed: int) -> bytes:
    """A request line of exactly ``size`` bytes, newline included: random lowercase letters."""
    rng = random.Random(seed)
    return "".join(rng.choices(string.ascii_lowercase, k=max(size - 1, 1))).encode() + b"\n"


def _upper_worker(
    address: tuple[str, int],
    conns: int,
    *,
    request: bytes,
    expect: bytes,
    duration: float,
    timeout: float,
    control: int,
    report: Callable[[str], None],
) -> UpperResult:
    """Run ``conns`` closed-loop connections; the window starts when ``control`` says "go".

    Protocol with the parent on ``control`` (a pipe): this worker reports
    ``ready`` (every connection answered once, or failed) through ``report``;
    the parent writes one byte when every worker is ready and the warm-up is
    over; the window runs ``duration`` seconds from then.
    """
    result = UpperResult(conns=conns)
    errors = result.errors
    hist = result.latency_us
    ep = select.epoll(conns + 2)
    ep.register(control, select.EPOLLIN)
    socks: dict[int, socket.socket] = {}
    sent_at: dict[int, int] = {}
    partial: dict[int, bytes] = {}
    answered: dict[int, int] = {}  # fd -> replies inside the window
    connecting: set[int] = set()
    began = time.perf_counter_ns()
    for _ in range(conns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            _count(errors, f"connect: {os.strerror(code)}")
            sock.close()
            continue
        fd = sock.fileno()
        socks[fd] = sock
        partial[fd] = b""
        answered[fd] = 0
        connecting.add(fd)
        ep.register(fd, select.EPOLLOUT)
    unready = set(socks)  # no first reply yet
    ready_sent = False
    measuring = draining = False
    t0 = t1 = drain_end = next_scan = 0
    cpu0 = 0.0

    def drop(fd: int, kind: str) -> None:
        _count(errors, kind)
        sock = socks.pop(fd)
        with contextlib.suppress(OSError, KeyError):
            ep.unregister(fd)
        sock.close()
        unready.discard(fd)
        connecting.discard(fd)
        sent_at.pop(fd, None)

    def send(fd: int) -> None:
        sent_at[fd] = time.perf_counter_ns()
        try:
            socks[fd].send(request)  # one small request in flight: the send buffer always takes it
        except OSError as exc:
            drop(fd, f"send: {exc.strerror or exc}")

    poll, perf = ep.poll, time.perf_counter_ns
    while True:
        events = poll(_POLL)
        # One clock read per batch: every reply in it had arrived by now, so the
        # time spent handling the batch's earlier replies is not charged to later ones.
        now = perf()
        if not ready_sent and (not unready or now - began > timeout * NS):
            result.setup_s = (now - began) / NS
            report("ready")
            ready_sent = True
        if measuring and now >= t1 and not draining:
            # The window is over: send nothing more, but read every reply still in flight, so
            # closing sends a FIN, not the RST a close with unread data would (an error to the server).
            result.cpu_s = time.process_time() - cpu0
            result.t0_ns, result.t1_ns = t0, t1
            result.window_s = (t1 - t0) / NS
            draining, drain_end = True, now + 2 * NS
        if draining and (not sent_at or now >= drain_end):
            break
        if now >= next_scan:
            # A request unanswered for --timeout is an error, as for any client: without this scan a
            # server that starves some connections (the thread-per-connection models at 1,000 do)
            # would only look slower, their requests completing unmeasured after the window.
            next_scan = now + NS // 4
            for fd, sent in list(sent_at.items()):
                if now - sent > timeout * NS:
                    drop(fd, "timeout")
        for fd, _ in events:
            if fd == control:
                os.read(control, 1)
                t0, measuring, cpu0 = now, True, time.process_time()
                t1 = t0 + int(duration * NS)
                continue
            if fd in connecting:
                code = socks[fd].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    drop(fd, f"connect: {os.strerror(code)}")
                    continue
                connecting.discard(fd)
                ep.modify(fd, select.EPOLLIN)
                send(fd)
                continue
            live = socks.get(fd)
            if live is None:
                continue
            try:
                data = live.recv(RECV_SIZE)
            except BlockingIOError:
                continue
            except OSError as exc:
                drop(fd, f"recv: {exc.strerror or exc}")
                continue
            if not data:
                drop(fd, "closed by server")
                continue
            if partial[fd]:
                data = partial[fd] + data
            if not data.endswith(b"\n"):
                partial[fd] = data
                continue
            partial[fd] = b""
            if not data.endswith(expect):
                drop(fd, "busy" if data.startswith(b"error: server busy") else "wrong reply")
                continue
            unready.discard(fd)
            if draining:
                del sent_at[fd]
                continue
            if measuring and now >= t0:
                hist.record((now - sent_at[fd]) // 1000)
                answered[fd] += 1
            send(fd)
    result.requests = hist.total
    now = perf()
    for fd in list(socks):
        if answered[fd] == 0:
            result.starved += 1
        if fd in sent_at and now - sent_at[fd] > timeout * NS:
            _count(errors, "timeout")  # still unanswered after the drain
        socks.pop(fd).close()
    ep.close()
    return result


def run_upper(args: argparse.Namespace) -> dict[str, Any]:
    """One run per ``--target`` (in the order given), or one to ``--host``:``--port``.

    Several targets in one invocation spare the bench a ``docker exec`` and an
    interpreter start per run; each run still has its own connections and window.
    """
    if not args.target:
        if not args.host or not args.port:
            raise RuntimeError("give --host and --port, or --target HOST:PORT")
        return run_upper_one(args, args.host, args.port)
    runs = []
    for target in args.target:
        host, _, port = target.rpartition(":")
        runs.append(run_upper_one(args, host, int(port)))
    return {"runs": runs}


def run_upper_one(args: argparse.Namespace, host: str, port: int) -> dict[str, Any]:
    """Fork ``--procs`` workers, release them together after the warm-up, merge their results."""
    address = (resolve(host), port)
    if args.mode == "ping":  # a trivial fast peer (Redis, inline PING): calibrates the generator itself
        request, expect = b"PING\r\n", b"+PONG\r\n"
    else:
        request = make_line(args.size, args.seed)
        expect = b"] " + request.upper()
    shares = [args.conns // args.procs + (1 if i < args.conns % args.procs else 0) for i in range(args.procs)]
    workers: list[tuple[int, int, int]] = []  # pid, control write end, report read end
    for share in shares:
        control_r, control_w = os.pipe()
        report_r, report_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # worker: never return into the parent's code
            status = 0
            try:
                os.close(control_w)
                os.close(report_r)
                pipe = os.fdopen(report_w, "w")

                def report(line: str, pipe: Any = pipe) -> None:
                    pipe.write(line + "\n")
                    pipe.flush()

                res = _upper_worker(
                    address, share, request=request, expect=expect, duration=args.duration,
                    timeout=args.timeout, control=control_r, report=report,
                )
                report(json.dumps(res.to_json()))
            except BaseException as exc:  # the parent must hear of it, not hang
                with contextlib.suppress(Exception):
                    report(json.dumps({"fatal": repr(exc)}))
                status = 1
            finally:
                os._exit(status)
        os.close(control_r)
        os.close(report_w)
        workers.append((pid, control_w, report_r))
    readers = [os.fdopen(r, "r") for _, _, r in workers]
    for reader in readers:
        if reader.readline().strip() != "ready":
            raise RuntimeError("a worker died during setup")
    time.sleep(args.warmup)  # a timed warm-up with every connection live, not a readiness wait
    for _, control_w, _ in workers:
        os.write(control_w, b"g")
    merged = UpperResult()
    fatal = []
    for (pid, control_w, _), reader in zip(workers, readers, strict=True):
        data = json.loads(reader.readline() or '{"fatal": "no result"}')
        os.waitpid(pid, 0)
        os.close(control_w)
        reader.close()
        if "fatal" in data:
            fatal.append(data["fatal"])
            continue
        merged.merge(UpperResult.from_json(data))
    if fatal:
        raise RuntimeError(f"worker failed: {fatal[0]}")
    out = merged.to_json()
    out.update(mode=args.mode, size=args.size, procs=args.procs, target=f"{host}:{port}")
    return out


# --------------------------------------------------------------------------- udp: paced datagrams


def syslog_datagram(size: int) -> bytes:
    """An RFC 5424 message of exactly ``size`` bytes (padded), parsed as syslog by both sinks."""
    head = b"<14>1 2026-01-01T00:00:00.000000Z loadgen bench - - - "
    if size < len(head) + 1:
        raise ValueError(f"a datagram needs at least {len(head) + 1} bytes")
    return head + b"x" * (size - len(head))


def _udp_worker(address: tuple[str, int], *, payload: bytes, rate: float, duration: float) -> dict[str, Any]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(address)  # connected UDP: no address handling per send
    send = sock.send
    perf = time.perf_counter_ns
    sent = errors = 0
    cpu0 = time.process_time()
    start = perf()
    end = start + int(duration * NS)
    per_ns = rate / NS
    while True:
        now = perf()
        if now >= end:
            break
        due = int((now - start) * per_ns) - sent
        if due <= 0:
            # Sleep until about the next datagram is due; the kernel's timer slack
            # makes short sleeps longer, which the next burst makes up for.
            time.sleep(min(max((sent + 1) / per_ns + start - now, 0) / NS, 0.0005))
            continue
        for _ in range(min(due, 1000)):
            try:
                send(payload)
                sent += 1
            except OSError:
                errors += 1
    stop = perf()
    cpu = time.process_time() - cpu0
    sock.close()
    return {"sent": sent, "send_errors": errors, "elapsed_s": (stop - start) / NS, "cpu_s": cpu,
            "t0_ns": start, "t1_ns": stop}


def run_udp(args: argparse.Namespace) -> dict[str, Any]:
    """Send with ``--procs`` forked senders, each at ``rate / procs``; report what was sent."""
    address = (resolve(args.host), args.port)
    payload = syslog_datagram(args.size)
    pids: list[tuple[int, int]] = []
    for _ in range(args.procs):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                os.close(r)
                res = _udp_worker(address, payload=payload, rate=args.rate / args.procs, duration=args.duration)
                os.write(w, json.dumps(res).encode())
            except BaseException:
                status = 1
            finally:
                os._exit(status)
        os.close(w)
        pids.append((pid, r))
    parts = []
    for pid, r in pids:
        with os.fdopen(r, "rb") as reader:
            raw = reader.read()
        os.waitpid(pid, 0)
        if not raw:
            raise RuntimeError("a sender died")
        parts.append(json.loads(raw))
    sent = sum(p["sent"] for p in parts)
    elapsed = max(p["elapsed_s"] for p in parts)
    return {
        "target": f"{args.host}:{args.port}",
        "size": args.size,
        "rate_asked": args.rate,
        "sent": sent,
        "send_errors": sum(p["send_errors"] for p in parts),
        "elapsed_s": round(elapsed, 4),
        "rate_sent": sent / elapsed if elapsed else 0.0,
        "loadgen_cpu_s": round(sum(p["cpu_s"] for p in parts), 4),
        "procs": args.procs,
        "t0_ns": min(p["t0_ns"] for p in parts),
        "t1_ns": max(p["t1_ns"] for p in parts),
    }


# --------------------------------------------------------------------------- chat: fan-out


MESSAGE = re.compile(rb"m (\d+) (\d+) (\d+) ")


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
        events = ep.poll(_POLL)
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
    t0_ns: int = 0
    t1_ns: int = 0

    def to_json(self) -> dict[str, Any]:
        hist = self.latency_us
        return {
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

    def _connect(self, address: tuple[str, int], target: str, role: str, sender: int = -1) -> _Conn:
        sock = socket.create_connection(address, timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        conn = _Conn(sock, target, role, sender)
        self.conns[sock.fileno()] = conn
        self.ep.register(sock.fileno(), select.EPOLLIN)
        return conn

    def setup_chat(self, address: tuple[str, int]) -> float:
        """Join ``clients`` members; wait until every greeting and join notice has arrived."""
        began = time.perf_counter()
        members = [self._connect(address, "chat", "member", i if i < self.senders else -1)
                   for i in range(self.clients)]
        self.send_socks["chat"] = [m.sock for m in members[: self.senders]]
        # Each member gets a 4-line greeting and one "joined" line per member after it.
        expected = 4 * self.clients + self.clients * (self.clients - 1) // 2
        self._drain_until(lambda: sum(m.lines for m in members) >= expected, "chat setup")
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
            for fd, _ in self.ep.poll(_POLL):
                conn = self.conns[fd]
                data = conn.sock.recv(RECV_SIZE)
                if not data:
                    raise ConnectionError(f"{what}: {conn.target} closed a connection")
                conn.lines += data.count(b"subscribe" if conn.role == "sub" else b"\n")

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
            events = self.ep.poll(_POLL)
            now = time.perf_counter_ns()  # one read per batch: see _upper_worker
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


def run_chat(args: argparse.Namespace) -> dict[str, Any]:
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


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    """The load generators' command line."""
    parser = argparse.ArgumentParser(prog="python3 -m bench.loadgen", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    upper = sub.add_parser("upper", help="closed-loop line requests to the upper-case server (or PING to Redis)")
    upper.add_argument("--host")
    upper.add_argument("--port", type=int)
    upper.add_argument("--target", action="append", metavar="HOST:PORT",
                       help="run once per target, in this order (repeatable); the result is {\"runs\": [...]}")
    upper.add_argument("--conns", type=int, default=10)
    upper.add_argument("--size", type=int, default=64, help="request line size in bytes, newline included")
    upper.add_argument("--duration", type=float, default=3.0)
    upper.add_argument("--warmup", type=float, default=0.5)
    upper.add_argument("--timeout", type=float, default=5.0, help="per-request timeout, and setup limit (s)")
    upper.add_argument("--procs", type=int, default=1)
    upper.add_argument("--mode", choices=("upper", "ping"), default="upper")
    upper.add_argument("--seed", type=int, default=1)

    udp = sub.add_parser("udp", help="paced datagrams")
    udp.add_argument("--host", required=True)
    udp.add_argument("--port", type=int, required=True)
    udp.add_argument("--size", type=int, default=100)
    udp.add_argument("--rate", type=float, required=True, help="datagrams per second")
    udp.add_argument("--duration", type=float, default=10.0)
    udp.add_argument("--procs", type=int, default=1)

    chat = sub.add_parser("chat", help="fan-out: the chat room and Redis pub/sub, alternating")
    chat.add_argument("--chat", metavar="HOST:PORT")
    chat.add_argument("--redis", metavar="HOST:PORT")
    chat.add_argument("--clients", type=int, default=10)
    chat.add_argument("--senders", type=int, default=10)
    chat.add_argument("--size", type=int, default=64, help="message text size in bytes")
    chat.add_argument("--duration", type=float, default=3.0)
    chat.add_argument("--warmup", type=float, default=0.5)
    chat.add_argument("--rounds", type=int, default=3)
    chat.add_argument("--timeout", type=float, default=60.0, help="setup limit and per-message limit (s)")
    chat.add_argument("--procs", type=int, default=1, help="receiver worker processes besides the sender (0: none)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one load generator and print its JSON result."""
    args = build_parser().parse_args(argv)
    if getattr(args, "procs", 1) < (0 if args.command == "chat" else 1):
        print("error: --procs is too small", file=sys.stderr)
        return 2
    runners = {"upper": run_upper, "udp": run_udp, "chat": run_chat}
    try:
        result = runners[args.command](args)
    except (OSError, RuntimeError, TimeoutError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
