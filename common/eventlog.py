"""One line per event, ``<UTC time> <server> <event> key=value…``, on stdout.

``docker compose logs`` then reads like a timeline, and tests wait for ``ready``.

Values come from the network (a datagram's text, a peer's words), and the lines
reach a terminal through ``docker logs``: a value with a space, ``"``, ``=``, or
any character a terminal acts on is quoted, and those characters are escaped
(``\\n``, ``\\x1b``, ``\\u202e``), so no line can move the cursor, retitle the
window, ring the bell, reorder the text it shows (bidi overrides) or break in two.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from typing import TextIO

_log_lock = threading.Lock()

# The event a server logs once every socket of it listens. `lab up` takes that line for ready: Docker's
# first health check would come a start interval later and cost an exec (docker/compose waits for it).
READY = "ready"

# What a terminal acts on rather than shows: C0 controls (ESC starts an escape sequence, BEL rings), DEL,
# C1 controls (U+009B is a one-character CSI), the bidi marks, embeddings, overrides and isolates that
# reorder what is shown (Trojan Source, CVE-2021-42574), and the line and paragraph separators.
_UNSAFE = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
_ESCAPE = re.compile(f"[{_UNSAFE}]")
_NEEDS_QUOTES = re.compile(f'[ "={_UNSAFE}]')
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def _quote(value: object) -> str:
    """A value as it appears after ``key=``: bare when safe, else quoted with every unsafe character escaped."""
    text = str(value)
    if text and _NEEDS_QUOTES.search(text) is None:
        return text
    return '"' + _ESCAPE.sub(_escaped, text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def format_event(server: str, event: str, fields: dict[str, object], *, now: float | None = None) -> str:
    """Render one log line (pure, for tests)."""
    when = time.time() if now is None else now  # one reading: the stamp and its milliseconds must agree
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when))
    millis = int((when % 1) * 1000)
    parts = [f"{stamp}.{millis:03d}Z", server, event]
    parts += [f"{key}={_quote(value)}" for key, value in fields.items()]
    return " ".join(parts)


def says_ready(line: str, server: str) -> bool:
    """Whether one log line is ``server``'s ready event (``<time> <server> ready key=value…``)."""
    parts = line.split(" ", 3)
    return len(parts) >= 3 and parts[1] == server and parts[2] == READY


# Per kind of event a peer can cause once per datagram (creosote's bad_datagram, incomplete, relay...).
# 50,000 malformed datagrams made a line each before there was a limit: 9.5 MB of log in the lab, 7.75 MB
# on loopback (tests/local/test_creosote_local.py measures what is left: a few kB).
EVENT_LINES_PER_SECOND = 10


class LineBudget:
    """At most ``per_second`` lines of each kind in each whole second of a clock; the rest are counted.

    Pure (the caller passes the time): ``roll`` closes the counts of a second
    once ``now`` is past it, ``allow`` says whether one more line of a kind may
    be shown in the current second and counts it either way.
    """

    def __init__(self, per_second: int) -> None:
        if per_second < 0:
            raise ValueError(f"per_second must not be negative, not {per_second}")
        self.per_second = per_second
        self.second = 0  # the second the counts are for
        self.shown: dict[str, int] = {}
        self.held: dict[str, int] = {}  # lines counted and not shown

    def roll(self, now: float) -> tuple[dict[str, int], dict[str, int]] | None:
        """When ``now`` is past the counted second: its (shown, held) counts if any line was held, and a new second.

        Kinds that held nothing back are left out of both.
        """
        second = int(now)
        if second == self.second:
            return None
        held = {kind: count for kind, count in self.held.items() if count}
        shown = {kind: self.shown.get(kind, 0) for kind in held}
        self.second, self.shown, self.held = second, {}, {}
        return (shown, held) if held else None

    def allow(self, kind: str, now: float) -> bool:
        """Count one line of ``kind`` at ``now`` (in the current second: ``roll`` first); may it be shown?"""
        shown = self.shown.get(kind, 0)
        if shown < self.per_second:
            self.shown[kind] = shown + 1
            return True
        self.held[kind] = self.held.get(kind, 0) + 1
        return False


class EventLog:
    """Writes event lines for one server; safe from threads and forked children.

    ``connection`` events (connect/disconnect) from loopback peers are left out
    unless ``log_loopback``: inside a container those are the health checks, and
    a line every two seconds per service would drown what users do.

    ``limited`` is for events a peer can cause as often as it sends: at most
    ``per_second`` lines of each kind a second, and one ``not_shown`` line a
    second counting, by kind, the lines held back in the second before.
    """

    def __init__(
        self,
        server: str,
        *,
        stream: TextIO | None = None,
        log_loopback: bool = False,
        per_second: int = EVENT_LINES_PER_SECOND,
    ) -> None:
        self.server = server
        self._stream = stream
        self.log_loopback = log_loopback
        self._deferred: list[str] = []
        self._budget = LineBudget(per_second)
        self._budget_lock = threading.Lock()

    def connection(self, event: str, peer: str, **fields: object) -> None:
        """Log a per-connection event, unless it is a loopback peer's and those are muted."""
        if self.log_loopback or not _is_loopback(peer):
            self(event, peer=peer, **fields)

    def __call__(self, event: str, **fields: object) -> None:
        line = format_event(self.server, event, fields)
        with _log_lock:
            self._write(line + "\n")

    def limited(self, event: str, /, *, now: float | None = None, **fields: object) -> None:
        """Log an event a peer can cause at will, within the budget of its kind; ``now`` is monotonic seconds."""
        when = time.monotonic() if now is None else now
        with self._budget_lock:
            summary = self._budget.roll(when)
            shown = self._budget.allow(event, when)
        if summary is not None:
            self._summarise(summary[1])
        if shown:
            self(event, **fields)

    def tick(self, now: float | None = None) -> None:
        """Write the ``not_shown`` line of a second that has ended, without waiting for its kind's next event."""
        with self._budget_lock:
            summary = self._budget.roll(time.monotonic() if now is None else now)
        if summary is not None:
            self._summarise(summary[1])

    def end_second(self) -> None:
        """Write the ``not_shown`` line of the second being counted now, as if it had ended (at shutdown)."""
        self.tick(self._budget.second + 1)

    def _summarise(self, held: dict[str, int]) -> None:
        self("not_shown", per_second=self._budget.per_second, **held)

    def defer(self, event: str, **fields: object) -> None:
        """Queue an event line until ``flush`` (or the next line written at once: order is kept).

        For events that come thousands of times a second (creosote's records): a
        write per line costs the server a system call each and the container
        runtime's copiers (containerd-shim, dockerd) as much again; scripts/bench
        measured that at ~0.6 of a core for 30,000 lines/s.
        """
        line = format_event(self.server, event, fields)
        with _log_lock:
            self._deferred.append(line)

    @property
    def deferred(self) -> int:
        """Lines queued by ``defer`` and not yet written."""
        return len(self._deferred)

    def flush(self) -> None:
        """Write the deferred lines now, in one write."""
        with _log_lock:
            self._write("")

    def _write(self, text: str) -> None:
        """Write the deferred lines, then ``text``; the caller holds ``_log_lock``."""
        if self._deferred:
            text = "\n".join(self._deferred) + "\n" + text
            self._deferred.clear()
        if not text:
            return
        stream = self._stream if self._stream is not None else sys.stdout
        try:
            stream.write(text)
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass  # stdout gone (closed pipe): logging must never kill a server


def _is_loopback(peer: str) -> bool:
    return peer.startswith(("127.", "[::1]"))
