"""The line protocol of ``threaded`` and its cousins.

For every line received, one line back: ``[<ctime>] <LINE UPPER-CASED>`` — the
course's thread-per-connection example, framed properly. Lines are UTF-8, end in
``\\n`` (a ``\\r`` before it is dropped) and are at most ``max_line`` bytes; a
bad line gets an ``error:`` line and the session goes on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from protocols.errors import LineTooLong
from protocols.framing import DEFAULT_MAX_LINE, LineBuffer
from protocols.session import Output
from protocols.stamps import PerSecond

PORT = 9000


def answer_line(line: bytes, *, now: float) -> bytes:
    """The reply to one line (without its terminator); pure."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return b"error: line is not valid UTF-8\n"
    return f"[{_ctime(now)}] {text.upper()}\n".encode()


def _ctime(now: float) -> str:
    """``time.ctime(now)``, formatted once per second: a busy server answers thousands of lines in each."""
    return _CTIME(math.floor(now))  # floor, as ctime rounds


_CTIME = PerSecond(time.ctime)


def parse_answer(line: str) -> tuple[str, str]:
    """Split a reply into its ctime stamp and its text; ``ValueError`` if malformed."""
    if not line.startswith("[") or "] " not in line:
        raise ValueError(f"not an upper-case reply: {line!r}")
    stamp, _, text = line[1:].partition("] ")
    return stamp, text


class UpperSession:
    """One client's session: line in, upper-cased line out."""

    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE, clock: Callable[[], float] = time.time) -> None:
        self._lines = LineBuffer(max_line=max_line)
        self._clock = clock

    def start(self) -> Output:
        return Output()

    def receive_data(self, data: bytes) -> Output:
        self._lines.feed(data)
        replies: list[bytes] = []
        while True:
            try:
                line = self._lines.next_line()
            except LineTooLong as exc:
                replies.append(f"error: {exc}\n".encode())
                continue
            if line is None:
                break
            replies.append(answer_line(line, now=self._clock()))
        return Output(b"".join(replies), close=not data)
