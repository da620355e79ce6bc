"""Raw mode (``--raw``): each datagram one line of the records file, as it came; nothing else.

The leanest work a sink can do with a datagram: no syslog parsing, no JSON, no
reassembly of ``spew`` chunks (a chunk is a line like any other), nothing per
datagram on stdout (the probe's count says how many). The bench compares it
with rsyslog writing ``%rawmsg%`` lines (``bench/peers/rsyslog/raw.conf``).
"""

from __future__ import annotations

from services.creosote.records_file import JsonlWriter
from services.creosote.sink import Datagram


class RawLines:
    """Each datagram one line of the file: bytes that are not UTF-8 as ``\\xNN``, line breaks as ``\\n``/``\\r``."""

    def __init__(self, writer: JsonlWriter) -> None:
        self.count = 0
        self._writer = writer

    def handle(self, datagram: Datagram) -> None:
        """Queue the datagram's line."""
        line = datagram.data.decode("utf-8", "backslashreplace")
        if "\n" in line or "\r" in line:  # one datagram stays one line
            line = line.replace("\r", "\\r").replace("\n", "\\n")
        self.count += 1
        self._writer.add(line, datagram.now)

    def timeout(self, now: float) -> float | None:
        """When the writer's batch is due."""
        return self._writer.timeout(now)

    def tick(self, now: float) -> None:
        """Write the batch if it is due."""
        self._writer.tick(now)

    def close(self) -> None:
        """Flush and close the file."""
        self._writer.close()
