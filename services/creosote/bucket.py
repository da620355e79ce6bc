"""Bucket mode: every datagram becomes a record; chunked messages are put back together first.

Each record is one JSON line in the records file (``records_file``) and one
``record`` event line on stdout, within a budget when there is a file.
"""

from __future__ import annotations

from dataclasses import asdict, replace

from common.eventlog import EventLog, LineBudget
from protocols.creosote import (
    SEVERITY_NAMES,
    Address,
    Incomplete,
    LossCounts,
    Message,
    Reassembler,
    Record,
    RecordValues,
    decode_chunk,
    json_line,
    make_message_record,
    plain_json,
    record_values,
    split_hops,
)
from protocols.errors import RemoteProtocolError
from services.common import peer_name
from services.creosote.records_file import FLUSH_DELAY, IDLE_FLUSH, MAX_BATCH, JsonlWriter
from services.creosote.sink import Datagram

LOSS_REPORT_INTERVAL = 10.0
LOSS_REPORT_MIN_INTERVAL = 1.0  # a message given up on is reported this soon, but not once per tick under a flood
PREVIEW_CHARS = 120  # of a record's text on stdout; the file keeps it whole
# With a log file, at most this many ``record`` lines a second reach stdout; the rest are counted in
# one ``records`` line a second. Nobody reads 30,000 lines a second, and formatting them was a third
# of the sink's time per record (scripts/bench, py-spy). Without a file, stdout is the record: all go.
RECORD_LINES_PER_SECOND = 100


class Bucket:
    """Bucket mode: every datagram becomes a record, chunked messages are reassembled."""

    def __init__(self, *, log: EventLog, writer: JsonlWriter | None, reassembler: Reassembler) -> None:
        self.count = 0
        self._log = log
        self._writer = writer
        self._reassembler = reassembler
        self._report_at = 0.0
        self._reported_at = -LOSS_REPORT_MIN_INTERVAL
        self._report_now = False  # a message was given up on: report without waiting the full interval
        self._reported: dict[Address, LossCounts] = {}
        self._stdout_first: float | None = None  # monotonic time of the oldest record line not yet written
        self._stdout_last = 0.0
        self._record_lines = LineBudget(RECORD_LINES_PER_SECOND)  # only with a file: it keeps every record

    def handle(self, datagram: Datagram) -> None:
        """Record a plain datagram, or feed a chunk to the reassembler (a redirector's hop line taken off)."""
        _hops, data = split_hops(datagram.data)
        if len(data) < len(datagram.data):
            datagram = replace(datagram, data=data, size=datagram.size - (len(datagram.data) - len(data)))
        chunk = decode_chunk(datagram.data)
        if chunk is None:
            values = record_values(datagram.data, datagram.source, datagram.received, size=datagram.size)
            self._emit(values, datagram, plain=plain_json(datagram.data))
            return
        if datagram.size > len(datagram.data):
            raise RemoteProtocolError("chunk cut short by the receive buffer (raise --max-datagram)")
        for event in self._reassembler.feed(chunk, datagram.source, datagram.now):
            if isinstance(event, Message):
                self._emit(make_message_record(event, datagram.received).values(), datagram)
            else:
                self._log_incomplete(event, datagram.now)

    def timeout(self, now: float) -> float | None:
        """When the writer or the deferred record lines next need a flush."""
        file_wait = self._writer.timeout(now) if self._writer else None
        waits = [w for w in (file_wait, self._stdout_due(now)) if w is not None]
        return min(waits) if waits else None

    def tick(self, now: float) -> None:
        """Flush, expire stale partial messages, report loss when it changed."""
        self._roll_record_lines(now)
        if self._writer:
            self._writer.tick(now)
        if self._stdout_due(now) == 0.0:
            self._flush_stdout()
        for incomplete in self._reassembler.expire(now):
            self._log_incomplete(incomplete, now)
        if now >= self._report_at or (self._report_now and now >= self._reported_at + LOSS_REPORT_MIN_INTERVAL):
            self._report_loss(now)
            self._reported_at, self._report_at = now, now + LOSS_REPORT_INTERVAL

    def close(self) -> None:
        """Report the last loss counts and flush the file."""
        self._roll_record_lines(self._record_lines.second + 1)
        self._report_loss(None)
        self._flush_stdout()
        if self._writer:
            self._writer.close()

    def _emit(self, values: RecordValues, datagram: Datagram, *, plain: bool = False) -> None:
        """Count a record, queue its JSON line, and its stdout line if the budget lets it.

        The ``Record`` itself is built only for a stdout line: with a file, at most
        ``RECORD_LINES_PER_SECOND`` a second need one (``record_values``).
        """
        self.count += 1
        if self._writer:
            self._writer.add(json_line(values, plain=plain), datagram.now)
            self._roll_record_lines(datagram.now)
            if not self._record_lines.allow("record", datagram.now):
                return
        # Record lines reach stdout in batches, on the JSON Lines file's schedule (see EventLog.defer).
        self._log.defer("record", **summary(Record(*values)))
        if self._stdout_first is None:
            self._stdout_first = datagram.now
        self._stdout_last = datagram.now
        if self._log.deferred >= MAX_BATCH:
            self._flush_stdout()

    def _roll_record_lines(self, now: float) -> None:
        """Once ``now`` is past the second being counted: say how many records it held back from stdout."""
        summary = self._record_lines.roll(now)
        if summary is not None and self._writer:
            shown, held = summary
            self._log("records", shown=shown["record"], not_shown=held["record"], file=str(self._writer.path))

    def _stdout_due(self, now: float) -> float | None:
        """Seconds until the deferred record lines are due (as ``JsonlWriter.timeout``), None if none wait."""
        if self._stdout_first is None:
            return None
        return max(0.0, min(self._stdout_first + FLUSH_DELAY, self._stdout_last + IDLE_FLUSH) - now)

    def _flush_stdout(self) -> None:
        self._stdout_first = None
        self._log.flush()

    def _log_incomplete(self, incomplete: Incomplete, now: float) -> None:
        self._report_now = True
        self._log.limited(
            "incomplete",
            now=now,
            source=peer_name(incomplete.source),
            msg=f"{incomplete.msg_id:x}",
            chunks=f"{incomplete.have}/{incomplete.total}",
            reason=incomplete.reason,
        )

    def _report_loss(self, now: float | None) -> None:
        """One ``loss`` line per source whose anomaly counts changed since the last report (within the budget)."""
        self._report_now = False
        current = self._reassembler.by_source()
        for source, counts in current.items():
            previous = self._reported.get(source, LossCounts())
            if replace(counts, completed=0) != replace(previous, completed=0):
                self._log.limited("loss", now=now, source=peer_name(source), **asdict(counts))
        self._reported = current


def summary(record: Record) -> dict[str, object]:
    """The fields of a record's stdout line: the key ones, text cut to ``PREVIEW_CHARS``."""
    fields: dict[str, object] = {"peer": peer_name((record.source_host, record.source_port)), "size": record.size}
    if record.chunks is not None:
        fields["chunks"] = record.chunks
    if record.truncated:
        fields["truncated"] = "yes"
    if record.format is not None and record.severity is not None:
        fields.update(format=record.format, severity=SEVERITY_NAMES[record.severity])
        if record.app_name:
            fields["app"] = record.app_name
    text = record.message if record.message is not None else record.text
    if text is None:
        fields["base64"] = _preview(record.base64 or "")
    else:
        fields["text"] = _preview(text)
    return fields


def _preview(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"
