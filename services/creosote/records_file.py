"""The records file: JSON lines appended in batches, rotated by size so that no sender can fill a disk.

Records go to ``records.jsonl``. When the next line would take it past
``max_bytes``, it is renamed ``records.jsonl.1`` (the ``.1`` before it becomes
``.2``, and so on) and a new ``records.jsonl`` is begun; of ``keep`` files in
all, the oldest is discarded and what it held counted (``rotated`` event
lines). So at most ``keep`` x ``max_bytes`` are on disk (16 MiB x 4 by
default), as long as no record alone is longer than ``max_bytes``: one that is
fills a file of its own. At the defaults none is: the longest record, a 1 MiB
message of control characters, is a line of at most 12.6 MB.

Before, the file grew without bound: a flood of valid syslog lines, which is
all a sink is for, could fill the host's disk through the lab's named volume.

Every line flushed is on disk when ``flush`` returns (in the page cache: a
killed sink loses nothing already flushed), and rotation only renames whole
files, so a reader sees each record whole, in exactly one file, until its file
is discarded. ``cat records.jsonl.3 records.jsonl.2 records.jsonl.1
records.jsonl`` reads every kept record, oldest first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from common.errors import TestbedError
from common.eventlog import EventLog

DEFAULT_MAX_BYTES = 16 * 2**20  # per file
DEFAULT_KEEP = 4  # files, the one being written included
FLUSH_DELAY = 0.1  # a record reaches the file at most this long after it arrived
IDLE_FLUSH = 0.01  # ... or as soon as the socket has been quiet this long
MAX_BATCH = 1000  # lines held before a flush regardless of time
# ... or this many bytes: a 64 KiB datagram of control characters in syslog is a 786 kB line (text and
# message, six bytes for each byte), and 1000 of them would have been 786 MB held.
MAX_BATCH_BYTES = 2**20
WRITE_BUFFER = 256 * 1024  # the file's buffer: writelines() fills it line by line (see JsonlWriter.__init__)
_COUNT_BLOCK = 2**20  # the discarded file is read this much at a time to count its records


class LogFileError(TestbedError):
    """The JSON Lines file cannot be opened."""


class JsonlWriter:
    """Append lines to a file in batches, each line on disk within ``FLUSH_DELAY``; rotate it by size.

    A batch is written when the oldest unwritten line is ``FLUSH_DELAY`` old,
    when no line came for ``IDLE_FLUSH``, or when ``MAX_BATCH`` lines or
    ``MAX_BATCH_BYTES`` bytes wait. A write error (disk full) drops the batch
    with an event line: the sink goes on. See the module for rotation.
    """

    def __init__(
        self, path: Path, *, log: EventLog, max_bytes: int = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP
    ) -> None:
        if max_bytes < 1 or keep < 1:
            raise ValueError(f"a records file needs max_bytes and keep of at least 1, not {max_bytes} and {keep}")
        self.path = path
        self.max_bytes, self.keep = max_bytes, keep
        self.rotations = 0
        self.discarded_records = 0  # lines in the files rotation discarded
        self.discarded_bytes = 0
        self._log = log
        self._lines: list[bytes] = []  # encoded, each with its newline: the quota counts bytes on disk
        self._bytes = 0
        self._first = self._last = 0.0
        self._closed = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file: BinaryIO | None = self._open()
        except OSError as exc:
            raise LogFileError(f"cannot open log file {path}: {exc.strerror or exc}") from exc

    def numbered(self, n: int) -> Path:
        """The file ``n`` rotations old: the path itself for 0, ``records.jsonl.n`` after."""
        return self.path if n == 0 else self.path.with_name(f"{self.path.name}.{n}")

    def add(self, line: str, now: float) -> None:
        """Queue one line (without newline) received at monotonic time ``now``."""
        if not self._lines:
            self._first = now
        self._last = now
        encoded = (line + "\n").encode()
        self._lines.append(encoded)
        self._bytes += len(encoded)
        if len(self._lines) >= MAX_BATCH or self._bytes >= MAX_BATCH_BYTES:
            self.flush()

    def timeout(self, now: float) -> float | None:
        """Seconds until the batch is due, ``None`` when nothing waits."""
        if not self._lines:
            return None
        return max(0.0, min(self._first + FLUSH_DELAY, self._last + IDLE_FLUSH) - now)

    def tick(self, now: float) -> None:
        """Write the batch if it is due."""
        if self.timeout(now) == 0.0:
            self.flush()

    def flush(self) -> None:
        """Write every queued line now, rotating before any line that would pass ``max_bytes``."""
        # Taken first: an interrupted flush never writes twice.
        lines, batch_bytes, self._lines, self._bytes = self._lines, self._bytes, [], 0
        written = 0
        try:
            if self._file is None:  # a rotation could not open the new file: try again
                self._file = self._open()
            file = self._file
            # The file's real size, not a count of what this writer wrote: it may have been there before
            # (a restart), or been truncated (scripts/bench empties it between trials).
            size = os.fstat(file.fileno()).st_size
            if size + batch_bytes > self.max_bytes:  # checked line by line only when the batch may not fit
                for i, line in enumerate(lines):
                    if size and size + len(line) > self.max_bytes:
                        file.writelines(lines[written:i])
                        file.flush()
                        written = i
                        file = self._rotate()
                        size = 0
                    size += len(line)
            file.writelines(lines[written:])
            file.flush()
        except OSError as exc:
            dropped = len(lines) - written
            self._log.limited("write_error", path=str(self.path), dropped=dropped, error=exc.strerror or str(exc))

    def close(self) -> None:
        """Flush and close the file; say what rotation discarded, if it discarded anything."""
        if self._closed:
            return
        self._closed = True
        self.flush()
        if self._file is not None:
            self._file.close()
        if self.rotations:
            self._log(
                "records_file",
                file=str(self.path),
                rotations=self.rotations,
                discarded_records=self.discarded_records,
                discarded_bytes=self.discarded_bytes,
            )

    def _open(self) -> BinaryIO:
        # A 256 KiB buffer that writelines() fills line by line: joining a batch into one string first
        # allocated megabytes per flush, and their page faults tripled the cost of a line.
        return self.path.open("ab", buffering=WRITE_BUFFER)

    def _rotate(self) -> BinaryIO:
        """Shift every file one number up, discarding the oldest; a new, empty file to write."""
        assert self._file is not None
        self._file.close()
        self._file = None  # if what follows fails, the next flush opens the file again
        oldest = self.numbered(self.keep - 1)
        records, size = _count_records(oldest)
        oldest.unlink(missing_ok=True)
        for n in range(self.keep - 2, -1, -1):
            if self.numbered(n).exists():
                os.replace(self.numbered(n), self.numbered(n + 1))
        self.rotations += 1
        self.discarded_records += records
        self.discarded_bytes += size
        self._log.limited(
            "rotated",
            file=str(self.path),
            keep=self.keep,
            discarded_records=records,
            discarded_bytes=size,
            total_discarded_records=self.discarded_records,
            total_discarded_bytes=self.discarded_bytes,
        )
        self._file = self._open()
        return self._file


def _count_records(path: Path) -> tuple[int, int]:
    """Lines and bytes in ``path`` (0 and 0 when there is none): what discarding it costs."""
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            lines = sum(block.count(b"\n") for block in iter(lambda: file.read(_COUNT_BLOCK), b""))
    except FileNotFoundError:
        return 0, 0
    return lines, size
