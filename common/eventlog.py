"""One line per event, ``<UTC time> <server> <event> key=value…``, on stdout.

``docker compose logs`` then reads like a timeline, and tests wait for ``ready``.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

_log_lock = threading.Lock()


def _quote(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\r\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'
    return text


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
