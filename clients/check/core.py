"""The checker's core: a check, what it saw (its transcript), its result, and a run bounded in time.

A check is a named function of a ``Context``: it talks to the server through the
context (``clients.check.wire``), which records every exchange in a bounded
``Transcript`` and gives every wait a timeout that never passes the check's
deadline. It returns an optional note on success and raises ``CheckFailed`` to
fail; ``run_checks`` turns each into a ``Result`` and never lets one check's
trouble stop the others.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from clients.common import ClientError, connect
from common.errors import TestbedError

SHOWN_BYTES = 48  # of one payload in a transcript entry; the rest is counted, not shown
HEAD_ENTRIES = 8  # a transcript keeps its first entries...
TAIL_ENTRIES = 8  # ...and its last ones; those between are counted

# Bytes as text a terminal shows safely: printable ASCII as it is, the usual escapes, \xNN otherwise.
_ESCAPED = [chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in range(256)]
_ESCAPED[ord("\\")] = "\\\\"
_ESCAPED[ord('"')] = '\\"'
for _byte, _text in {0x00: "\\0", 0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}.items():
    _ESCAPED[_byte] = _text


def show(data: bytes, *, limit: int = SHOWN_BYTES) -> str:
    """``data`` as a double-quoted, escaped string of at most ``limit`` bytes, then how many were left out."""
    text = '"' + "".join(_ESCAPED[b] for b in data[:limit]) + '"'
    if len(data) > limit:
        text += f"... (+{len(data) - limit} B)"
    return text


def clip(text: str, limit: int = 200) -> str:
    """``text``, cut to ``limit`` characters with a mark where it was cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def size(count: int) -> str:
    """A byte count as people read it: ``8 MiB``, ``1000 B``."""
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if count >= 1 << shift and count % (1 << shift) == 0:
            return f"{count >> shift} {unit}"
    return f"{count} B"


class CheckFailed(TestbedError):
    """The server did not do what the check expects; ``expected`` says what it should have done."""

    def __init__(self, detail: str, *, expected: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.expected = expected


class Transcript:
    """What a check sent and received, kept short: the first and last entries, the others counted."""

    def __init__(self) -> None:
        self._head: list[str] = []
        self._tail: deque[str] = deque(maxlen=TAIL_ENTRIES)
        self._left_out = 0
        self._lock = threading.Lock()  # a check may read and send from two threads

    def add(self, entry: str) -> None:
        """Record one line of the exchange."""
        with self._lock:
            if len(self._head) < HEAD_ENTRIES:
                self._head.append(entry)
                return
            if len(self._tail) == TAIL_ENTRIES:
                self._left_out += 1
            self._tail.append(entry)

    def sent(self, data: bytes, *, who: str = "") -> None:
        self.add(f"{who}> {len(data)} B {show(data)}")

    def received(self, data: bytes, *, who: str = "") -> None:
        self.add(f"{who}< {len(data)} B {show(data)}")

    def line(self, line: bytes, *, who: str = "") -> None:
        """A line received, shown without its terminator."""
        self.add(f"{who}< line {show(line, limit=SHOWN_BYTES * 2)}")

    def note(self, text: str, *, who: str = "") -> None:
        self.add(f"{who}  {text}" if who else text)

    def entries(self) -> list[str]:
        """The kept entries, with a marker where some were left out."""
        with self._lock:
            middle = [f"... {self._left_out} more entries ..."] if self._left_out else []
            return [*self._head, *middle, *self._tail]


@dataclass(frozen=True, slots=True)
class Target:
    """Where the server is: its host, its port, and its UDP port when that differs (published ports)."""

    host: str
    port: int
    udp_port: int | None = None

    @property
    def udp(self) -> int:
        """The UDP port: ``udp_port``, else the same number as the TCP port."""
        return self.port if self.udp_port is None else self.udp_port

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class Context:
    """One check's view of the target: its settings, its deadline and its transcript."""

    def __init__(self, target: Target, *, timeout: float, deadline: float, budget: float) -> None:
        self.target = target
        self.timeout = timeout  # the longest wait for any one answer
        self.deadline = deadline  # monotonic time by which the whole check must be done
        self.budget = budget
        self.transcript = Transcript()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def wait_for(self, limit: float | None = None) -> float:
        """How long the next wait may last: ``limit`` (default ``timeout``), never past the deadline."""
        left = self.remaining()
        if left <= 0:
            raise CheckFailed(f"ran out of time: the check's {self.budget:g} s are spent")
        return min(self.timeout if limit is None else limit, left)

    def window(self) -> float:
        """How long the next whole answer may take: the timeout, or what is left of the check if less."""
        return self.wait_for()

    def seconds(self, waited: float) -> str:
        """``5 s``, or ``0.4 s (all the check had left)`` when the deadline cut a wait short."""
        return f"{waited:.2g} s" + (" (all the check had left)" if waited < self.timeout else "")

    def pause(self, seconds: float) -> None:
        """Stay idle on purpose (a slow client, a quiet window), never past the deadline."""
        time.sleep(max(0.0, min(seconds, self.remaining())))


CheckFunction = Callable[[Context], str | None]


@dataclass(frozen=True, slots=True)
class Check:
    """A named check; ``budget`` is how many ``--timeout`` it may take in all."""

    name: str
    run: CheckFunction
    about: str
    budget: float = 3.0


def resolve(target: Target) -> None:
    """``ClientError`` saying where names resolve when ``target.host`` does not."""
    try:
        socket.getaddrinfo(target.host, target.port)
    except socket.gaierror as exc:
        raise ClientError(
            f"cannot resolve {target.host!r} ({exc.strerror}); lab hostnames resolve inside the lab network, "
            "from the host use 127.0.0.1 and the published port"
        ) from exc


def reach_tcp(target: Target, timeout: float) -> None:
    """The first contact with a TCP server: a connection, closed at once (``ClientError`` if none)."""
    resolve(target)
    connect(target.host, target.port, timeout=timeout).close()


@dataclass(frozen=True, slots=True)
class Suite:
    """One protocol's checks, the port its servers use by default, and how to make first contact.

    ``reach`` raises ``clients.common.ClientError`` when the target cannot be reached at all.
    """

    protocol: str
    default_port: int
    checks: tuple[Check, ...]
    reach: Callable[[Target, float], None] = reach_tcp

    def names(self) -> list[str]:
        return [check.name for check in self.checks]


@dataclass(frozen=True, slots=True)
class Result:
    """One check's outcome; ``detail`` says why it failed (or a short note when it passed)."""

    name: str
    passed: bool
    detail: str = ""
    transcript: tuple[str, ...] = ()
    seconds: float = 0.0

    def text(self) -> str:
        """``ok   name (0.01 s)``, or ``FAIL name: detail`` with the transcript indented below it."""
        if self.passed:
            note = f": {self.detail}" if self.detail else ""
            return f"ok   {self.name}{note} ({self.seconds:.2f} s)"
        return "\n".join([f"FAIL {self.name}: {self.detail}", *(f"       {entry}" for entry in self.transcript)])

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "detail": self.detail,
            "transcript": list(self.transcript),
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class Report:
    """Every check's result for one protocol and target; ``error`` when the target could not be reached."""

    protocol: str
    target: str
    udp_port: int | None
    results: tuple[Result, ...] = ()
    seconds: float = 0.0
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and all(result.passed for result in self.results)

    def failed(self) -> list[Result]:
        return [result for result in self.results if not result.passed]

    def summary(self) -> str:
        """The last line: how many passed, of how many, in how long."""
        if self.error is not None:
            return f"error: {self.error}"
        failed = len(self.failed())
        verdict = "all passed" if not failed else f"{failed} failed"
        return f"{self.protocol} at {self.target}: {len(self.results)} checks, {verdict} ({self.seconds:.1f} s)"

    def text(self) -> str:
        return "\n".join([*(result.text() for result in self.results), self.summary()])

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "target": self.target,
            "udp_port": self.udp_port,
            "passed": self.passed,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "checks": [result.to_json() for result in self.results],
        }


def run_check(check: Check, target: Target, *, timeout: float, deadline: float | None = None) -> Result:
    """Run one check within ``check.budget`` timeouts (and before ``deadline``, a monotonic time)."""
    began = time.monotonic()
    budget = check.budget * timeout
    end = began + budget if deadline is None else min(began + budget, deadline)
    context = Context(target, timeout=timeout, deadline=end, budget=budget)
    try:
        note = check.run(context)
    except CheckFailed as exc:
        if exc.expected:
            context.transcript.add(f"expected: {clip(exc.expected)}")
        return _failure(check, context, exc.detail, began)
    except TestbedError as exc:  # a protocol parser refused what the server sent
        return _failure(check, context, str(exc), began)
    except OSError as exc:
        return _failure(check, context, f"network error: {exc.strerror or exc}", began)
    except Exception as exc:  # a bug here must not hide the other checks' results
        return _failure(check, context, f"checker error {type(exc).__name__}: {exc} (a bug in the checker)", began)
    return Result(check.name, True, note or "", (), time.monotonic() - began)


def _failure(check: Check, context: Context, detail: str, began: float) -> Result:
    return Result(check.name, False, clip(detail, 400), tuple(context.transcript.entries()), time.monotonic() - began)


def run_checks(
    suite: Suite,
    target: Target,
    *,
    checks: Sequence[Check] | None = None,
    timeout: float = 5.0,
    deadline: float = 300.0,
    on_result: Callable[[Result], None] | None = None,
) -> Report:
    """Run ``checks`` (default: all of the suite's) one after another; the whole run ends by ``deadline`` s.

    A check that would start after the deadline is reported as failed, not run.
    """
    began = time.monotonic()
    end = began + deadline
    results: list[Result] = []
    for check in suite.checks if checks is None else checks:
        if time.monotonic() >= end:
            result = Result(check.name, False, f"not run: the run's {deadline:g} s deadline passed")
        else:
            result = run_check(check, target, timeout=timeout, deadline=end)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return Report(suite.protocol, str(target), target.udp_port, tuple(results), time.monotonic() - began)


def select(suite: Suite, patterns: Sequence[str]) -> list[Check]:
    """The suite's checks whose names match any pattern (``fnmatch``; the protocol prefix may be left out).

    Raises ``LookupError`` naming each pattern that matches nothing.
    """
    prefix = suite.protocol + "."
    full = [p if p.startswith(prefix) else prefix + p for p in patterns]
    unmatched = [p for p, f in zip(patterns, full, strict=True) if not any(fnmatchcase(n, f) for n in suite.names())]
    if unmatched:
        raise LookupError(f"no {suite.protocol} check is called {', '.join(unmatched)}")
    return [check for check in suite.checks if any(fnmatchcase(check.name, f) for f in full)]
