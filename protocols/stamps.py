"""Time stamps that busy servers format for every message, formatted once per second.

A server stamps thousands of lines or records a second with a text that only
changes once a second (``time.ctime``, the date and time of an ISO 8601 stamp):
``PerSecond`` formats it when the second changes and hands back the same text
until then.
"""

from __future__ import annotations

from collections.abc import Callable


class PerSecond:
    """``PerSecond(fmt)(second)`` is ``fmt(second)``, computed once per distinct second in a row."""

    def __init__(self, fmt: Callable[[int], str]) -> None:
        self._fmt = fmt
        self._cache: tuple[int, str] | None = None  # one tuple: a thread never sees one second's text for another

    def __call__(self, second: int) -> str:
        cached = self._cache
        if cached is not None and cached[0] == second:
            return cached[1]
        text = self._fmt(second)
        self._cache = (second, text)
        return text
