"""``upper``: closed-loop line requests, one in flight per connection, over forked workers.

Each worker holds its share of ``--conns`` connections in one epoll loop;
every reply is checked against the request upper-cased, its latency recorded
into a ``bench.stats.Histogram``; the workers are released together after the
warm-up and measure the same window.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import random
import select
import socket
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.loadgen.common import NS, POLL, RECV_SIZE, count_error, resolve
from bench.stats import Histogram


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
    busiest_cpu_s: float = 0.0  # ... of its busiest process (one process is at most one core)
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
        self.busiest_cpu_s = max(self.busiest_cpu_s, other.busiest_cpu_s)
        self.latency_us.merge(other.latency_us)
        self.t0_ns = min(self.t0_ns, other.t0_ns) if self.t0_ns else other.t0_ns
        self.t1_ns = max(self.t1_ns, other.t1_ns)

    def to_json(self) -> dict[str, Any]:
        """The JSON the bench script reads."""
        hist = self.latency_us
        return {
            "generator": "upper-python",
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
            "busiest_cpu_s": round(self.busiest_cpu_s, 4),
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
            busiest_cpu_s=data.get("busiest_cpu_s", 0.0),
            latency_us=Histogram.from_json(data["latency_us"]),
            t0_ns=data["t0_ns"],
            t1_ns=data["t1_ns"],
        )


def make_line(size: int, seed: int) -> bytes:
    """A request line of exactly ``size`` bytes, newline included: random lowercase letters."""
    rng = random.Random(seed)
    return "".join(rng.choices(string.ascii_lowercase, k=max(size - 1, 1))).encode() + b"\n"


def _worker(
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
            count_error(errors, f"connect: {os.strerror(code)}")
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
        count_error(errors, kind)
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
        events = poll(POLL)
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
            result.cpu_s = result.busiest_cpu_s = time.process_time() - cpu0
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
            count_error(errors, "timeout")  # still unanswered after the drain
        socks.pop(fd).close()
    ep.close()
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One run per ``--target`` (in the order given), or one to ``--host``:``--port``.

    Several targets in one invocation spare the bench a ``docker exec`` and an
    interpreter start per run; each run still has its own connections and window.
    """
    if not args.target:
        if not args.host or not args.port:
            raise RuntimeError("give --host and --port, or --target HOST:PORT")
        return run_one(args, args.host, args.port)
    runs = []
    for target in args.target:
        host, _, port = target.rpartition(":")
        runs.append(run_one(args, host, int(port)))
    return {"runs": runs}


def run_one(args: argparse.Namespace, host: str, port: int) -> dict[str, Any]:
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

                res = _worker(
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

