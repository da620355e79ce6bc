"""Framing for byte streams and datagrams.

TCP is a stream: one ``recv`` may hold half a line or three lines (the pitfall of
the course examples, which took one ``recv`` for one message). ``LineBuffer``
collects bytes, hands back whole lines, and refuses to grow without bound.
"""

from __future__ import annotations

from collections.abc import Iterator

from protocols.errors import LineTooLong

DEFAULT_MAX_LINE = 4096


class LineBuffer:
    """Split a byte stream into ``\\n``-terminated lines, with a cap.

    ``feed`` adds bytes; ``next_line`` returns one line without its terminator
    (a trailing ``\\r`` is dropped too) or ``None`` when no whole line is there.
    A line longer than ``max_line`` raises ``LineTooLong`` once; the buffer then
    discards the rest of that line, so one over-long line does not end the
    conversation. Already-searched bytes are never scanned again.
    """

    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE) -> None:
        if max_line < 1:
            raise ValueError("max_line must be positive")
        self.max_line = max_line
        self._data = bytearray()
        self._searched = 0  # bytes of _data known to hold no b"\n"
        self._discarding = False  # inside an over-long line, dropping until its end
        self.eof = False

    def feed(self, data: bytes) -> None:
        """Add received bytes; ``b""`` means the peer closed its side."""
        if not data:
            self.eof = True
            return
        self._data += data

    def next_line(self) -> bytes | None:
        """Return the next whole line, ``None`` if there is none yet.

        Raises ``LineTooLong`` when the pending line exceeds the cap.
        """
        while True:
            end = self._data.find(b"\n", self._searched)
            if end < 0:
                self._searched = len(self._data)
                if self._discarding:
                    self._data.clear()
                    self._searched = 0
                    return None
                if len(self._data) > self.max_line:
                    self._data.clear()
                    self._searched = 0
                    self._discarding = True
                    raise LineTooLong(self.max_line)
                return None
            line = bytes(self._data[:end])
            del self._data[: end + 1]
            self._searched = 0
            if self._discarding:
                self._discarding = False
                continue
            if len(line) > self.max_line:
                raise LineTooLong(self.max_line)
            return line[:-1] if line.endswith(b"\r") else line

    def lines(self) -> Iterator[bytes]:
        """Yield every whole line now buffered (may raise ``LineTooLong``)."""
        while (line := self.next_line()) is not None:
            yield line

    @property
    def pending(self) -> int:
        """Bytes held that do not yet form a whole line."""
        return len(self._data)


def chunks(data: bytes, size: int) -> list[bytes]:
    """Cut ``data`` into pieces of at most ``size`` bytes (one ``b""`` for empty data)."""
    if size < 1:
        raise ValueError("size must be positive")
    if not data:
        return [b""]
    return [data[i : i + size] for i in range(0, len(data), size)]
