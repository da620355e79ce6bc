"""What every workload shares: its options, its events as JSON lines, and how it is told to stop.

A workload is a client that keeps talking to one server while a fault schedule
runs, and prints one JSON object per line for everything it saw::

    {"event": "send", "seq": 17, "mono": 10234.512931, "wall": 1764300000.123456}

``mono`` is ``time.monotonic()``: CLOCK_MONOTONIC is not namespaced by Docker,
so the host's runner and every container on the machine read the same clock, and
an event lines up with the faults the runner applied. ``wall`` is epoch time, for
people. The runner stops a workload with SIGTERM: it stops starting exchanges,
finishes (or drains) what is under way, prints ``done`` and exits 0. Anything it
did not expect ends it with a ``crashed`` event and exit 1, which fails its checker:
a workload that dies quietly must not pass.

Workloads are well-behaved clients: every line is sent whole at once, and no
connection sits idle for more than a send interval.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TextIO

CONNECT_TIMEOUT = 2.0  # seconds; a partition swallows the SYN, so connect() waits this long and says so
FIRST_BACKOFF = 0.2
MAX_BACKOFF = 1.0  # after a fault ends, a client is back within about this long


class Events:
    """Prints events as JSON lines, whole lines at a time, from any thread."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out or sys.stdout
        self._lock = threading.Lock()

    def emit(self, event: str, *, at: float | None = None, **fields: Any) -> None:
        """One event line, timed now, or at ``at`` (a ``time.monotonic()`` taken before the thing happened)."""
        now = time.monotonic()
        wall = time.time() - (now - at if at is not None else 0.0)
        entry = {"event": event, **fields, "mono": round(at if at is not None else now, 6), "wall": round(wall, 6)}
        line = json.dumps(entry, ensure_ascii=True) + "\n"
        with self._lock:
            self._out.write(line)
            self._out.flush()


class Stop:
    """Set by SIGTERM (the runner's "the schedule is over"), SIGINT, or ``--max-seconds`` passing.

    Lock-free on purpose: a signal handler runs in the main thread between two
    bytecodes, possibly while that thread holds a lock inside ``Event.wait``;
    ``Event.set`` from there waits on that same lock forever. A workload hung
    so after SIGTERM and was killed. Here the handler sets a flag and writes a
    byte to a pipe, and ``wait`` sleeps in ``select`` on the pipe, which that
    byte wakes in every thread (it is never read, so it stays readable).
    """

    def __init__(self, max_seconds: float) -> None:
        self._stopped = False
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._deadline = time.monotonic() + max_seconds

    def install(self) -> None:
        """Stop on SIGTERM and SIGINT (call from the main thread)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.set())

    def set(self) -> None:
        if not self._stopped:
            self._stopped = True
            with contextlib.suppress(BlockingIOError):  # a full pipe is readable already
                os.write(self._wake_write, b"!")

    def is_set(self) -> bool:
        if not self._stopped and time.monotonic() >= self._deadline:
            self.set()  # the runner is gone: a workload never outlives it by much
        return self._stopped

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` (between attempts, never instead of a readiness check); True if stopped."""
        if not self._stopped:
            select.select([self._wake_read], [], [], max(0.0, min(seconds, self._deadline - time.monotonic())))
        return self.is_set()


class Resolver:
    """A server's address, looked up again each time, or the last one found when the lookup fails.

    Docker's DNS forgets a container while it is stopped or cut off a network, and
    comes back on its own; the address itself usually stays. A client that resolves
    once would miss a server that moved; one that only resolves would report a
    name error where a connect could have worked.
    """

    def __init__(self, host: str, port: int, *, kind: socket.SocketKind = socket.SOCK_STREAM) -> None:
        self.host, self.port, self.kind = host, port, kind
        self.last: tuple[str, int] | None = None

    def address(self) -> tuple[str, int]:
        try:
            found = socket.getaddrinfo(self.host, self.port, socket.AF_INET, self.kind)
            self.last = (str(found[0][4][0]), int(found[0][4][1]))
        except OSError:
            if self.last is None:
                raise
        return self.last

    def connect(self) -> socket.socket:
        """A TCP connection to the server, within ``CONNECT_TIMEOUT``."""
        return socket.create_connection(self.address(), timeout=CONNECT_TIMEOUT)


class Backoff:
    """Waits between reconnections: doubling from ``FIRST_BACKOFF`` up to ``MAX_BACKOFF``, reset on success."""

    def __init__(self) -> None:
        self.delay = FIRST_BACKOFF

    def reset(self) -> None:
        self.delay = FIRST_BACKOFF

    def wait(self, stop: Stop) -> bool:
        stopped = stop.wait(self.delay)
        self.delay = min(self.delay * 2, MAX_BACKOFF)
        return stopped


def parser(name: str, description: str, *, port: int, interval: float) -> argparse.ArgumentParser:
    """``--host``, ``--port``, ``--tag``, ``--interval`` and ``--max-seconds``, shared by every workload."""
    parser = argparse.ArgumentParser(prog=f"python -m clients.workloads.{name}", description=description)
    parser.add_argument("--host", default=name, help="the server's name or address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=port, help="its port (default: %(default)s)")
    parser.add_argument("--tag", required=True, help="the run's tag, in what is sent so a run finds its own")
    parser.add_argument("--interval", type=float, default=interval,
                        help="seconds between operations (default: %(default)s)")  # fmt: skip
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="stop after this long, should nobody stop it (default: %(default)s)")  # fmt: skip
    return parser


def describe(exc: BaseException) -> str:
    """An error as one short phrase: ``timeout``, ``ConnectionRefusedError``, ``EOF``."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def run(main: Callable[[argparse.Namespace, Events, Stop], None], build: Callable[[], argparse.ArgumentParser],
        argv: Sequence[str] | None = None) -> int:  # fmt: skip
    """Parse, install the stop signals, run ``main``; ``done`` and 0, or ``crashed`` and 1."""
    args = build().parse_args(argv)
    events = Events()
    stop = Stop(args.max_seconds)
    stop.install()
    try:
        main(args, events, stop)
    except Exception as exc:  # a workload's own bug must show in the history, not vanish
        events.emit("crashed", what=describe(exc), traceback=traceback.format_exc()[-2000:])
        return 1
    events.emit("done")
    return 0
