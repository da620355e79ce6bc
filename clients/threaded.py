"""``python -m clients.threaded``: talk to the upper-case line server, or load it.

Three ways to use it:

* lines from the arguments or standard input, replies printed (a session by hand);
* ``--sessions N``: N concurrent connections, each sending ``--lines`` lines,
  every reply checked, latency percentiles reported (exit 1 on any error);
* ``--reconnect``: one long session that survives server restarts, saying what
  happened and reconnecting with backoff.
"""

from __future__ import annotations

import contextlib
import random
import socket
import string
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from clients.common import ClientError, client_parser, connect, connect_with_backoff, read_line, run_client
from protocols.framing import LineBuffer
from protocols.upper import PORT, parse_answer


def check_reply(sent: str, reply: bytes) -> None:
    """Raise ``ClientError`` unless ``reply`` is the server's answer to ``sent``."""
    try:
        _, text = parse_answer(reply.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ClientError(f"unexpected reply {reply[:80]!r}") from exc
    if text != sent.upper():
        raise ClientError(f"reply {text[:40]!r} is not {sent.upper()[:40]!r}")


def exchange(sock: socket.socket, lines: LineBuffer, text: str) -> bytes:
    """Send one line, return the reply line (``ClientError`` if the server closed)."""
    sock.sendall(text.encode() + b"\n")
    reply = read_line(sock, lines)
    if reply is None:
        raise ClientError("the server closed the connection")
    return reply


@dataclass
class LoadReport:
    """What ``--sessions`` measured."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def run_load(host: str, port: int, *, sessions: int, lines: int, size: int, timeout: float) -> LoadReport:
    """Open ``sessions`` connections at once, then send ``lines`` lines on each, checking every reply."""
    report = LoadReport()
    start = threading.Barrier(sessions + 1)

    def session(index: int) -> None:
        rng = random.Random(index)
        sock: socket.socket | None = None
        try:
            sock = connect(host, port, timeout=timeout)
        except ClientError as exc:
            with report.lock:
                report.errors.append(str(exc))
        with contextlib.suppress(threading.BrokenBarrierError):
            start.wait(timeout)
        if sock is None:
            return
        buffer = LineBuffer(max_line=size * 4 + 128)
        try:
            with sock:
                for _ in range(lines):
                    text = "".join(rng.choices(string.ascii_lowercase, k=size))
                    began = time.perf_counter()
                    check_reply(text, exchange(sock, buffer, text))
                    with report.lock:
                        report.latencies.append(time.perf_counter() - began)
        except (ClientError, OSError) as exc:
            with report.lock:
                report.errors.append(f"session {index}: {exc}")

    threading.stack_size(256 * 1024)
    workers = [threading.Thread(target=session, args=(i,), daemon=True) for i in range(sessions)]
    for worker in workers:
        worker.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        start.wait(timeout * 4)
    for worker in workers:
        worker.join()
    return report


def run_reconnecting(host: str, port: int, *, lines: int, interval: float, timeout: float) -> int:
    """Send ``lines`` lines, one every ``interval`` s, riding out server restarts."""
    say = print
    sent_ok = 0
    sock: socket.socket | None = None
    buffer = LineBuffer()
    while sent_ok < lines:
        if sock is None:
            sock = connect_with_backoff(host, port, timeout=timeout, attempts=20, say=lambda t: say(t, flush=True))
            buffer = LineBuffer()
            say(f"connected to {host}:{port}", flush=True)
        text = f"line {sent_ok + 1}"
        try:
            reply = exchange(sock, buffer, text)
            check_reply(text, reply)
        except (ClientError, OSError) as exc:
            say(f"connection lost ({exc}); reconnecting", flush=True)
            sock.close()
            sock = None
            continue
        say(reply.decode(), flush=True)
        sent_ok += 1
        time.sleep(interval)
    if sock is not None:
        sock.close()
    return 0


def run_interactive(host: str, port: int, texts: Sequence[str], *, timeout: float) -> int:
    """Send each text as a line and print each reply."""
    with connect(host, port, timeout=timeout) as sock:
        buffer = LineBuffer()
        for text in texts:
            print(exchange(sock, buffer, text).decode("utf-8", errors="replace"), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = client_parser(
        "threaded", "Client of the upper-case line server (threaded and its cousins).", host="threaded", port=PORT
    )
    parser.add_argument("line", nargs="*", help="lines to send (default: standard input)")
    parser.add_argument("--sessions", type=int, help="load mode: this many concurrent connections")
    parser.add_argument("--lines", type=int, default=10, help="lines per session in load/reconnect mode (default: 10)")
    parser.add_argument("--size", type=int, default=64, help="bytes per line in load mode (default: 64)")
    parser.add_argument("--reconnect", action="store_true", help="one long session that reconnects with backoff")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between lines with --reconnect")
    args = parser.parse_args(argv)
    if args.sessions is not None:
        if args.sessions < 1 or args.lines < 1 or args.size < 1:
            parser.error("--sessions, --lines and --size must be at least 1")
        began = time.perf_counter()
        report = run_load(
            args.host, args.port, sessions=args.sessions, lines=args.lines, size=args.size, timeout=args.timeout
        )
        elapsed = time.perf_counter() - began
        ok = len(report.latencies)
        print(
            f"sessions={args.sessions} replies_ok={ok} errors={len(report.errors)} "
            f"rate={ok / elapsed:.0f}/s p50={report.percentile(0.5) * 1000:.2f}ms "
            f"p99={report.percentile(0.99) * 1000:.2f}ms"
        )
        for error in report.errors[:10]:
            print(f"error: {error}", file=sys.stderr)
        return 1 if report.errors else 0
    if args.reconnect:
        return run_reconnecting(args.host, args.port, lines=args.lines, interval=args.interval, timeout=args.timeout)
    texts = args.line or [line.rstrip("\n") for line in sys.stdin]
    return run_interactive(args.host, args.port, texts, timeout=args.timeout)


if __name__ == "__main__":
    sys.exit(run_client(main))
