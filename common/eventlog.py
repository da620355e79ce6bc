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


class EventLog:
    """Writes event lines for one server; safe from threads and forked children.

    ``connection`` events (connect/disconnect) from loopback peers are left out
    unless ``log_loopback``: inside a container those are the health checks, and
    a line every two seconds per service would drown what users do.
    """

    def __init__(self, server: str, *, stream: TextIO | None = None, log_loopback: bool = False) -> None:
        self.server = server
        self._stream = stream
        self.log_loopback = log_loopback
        self._deferred: list[str] = []

    def connection(self, event: str, peer: str, **fields: object) -> None:
        """Log a per-connection event, unless it is a loopback peer's and those are muted."""
        if self.log_loopback or not _is_loopback(peer):
            self(event, peer=peer, **fields)

    def __call__(self, event: str, **fields: object) -> None:
        line = format_event(self.server, event, fields)
        with _log_lock:
            self._write(line + "\n")

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
