"""Creosote, the UDP log sink ("Mr. Creosote"): it swallows every datagram.

    python -m services.creosote [--port 7739] [--log-file PATH [--raw]] [--redirect HOST:PORT]

Bucket mode (the default) turns each datagram, or each message reassembled from
``spew`` chunks, into a record: one ``record`` event line on stdout and, with
``--log-file``, one JSON line in the file, flushed within 100 ms. Redirector
mode relays every datagram to ``--redirect``, behind a hop line counting the
redirectors it has passed (``protocols.creosote.add_hop``): past ``MAX_HOPS``
it is dropped, so redirectors in a loop stop. Raw mode (``--raw``) writes each
datagram to ``--log-file`` as the line it came as and does nothing else: the
leanest work, the one to compare with a syslog daemon writing raw lines. All
answer the probe
``\\x00creosote:ping``. No datagram, whatever its size or bytes, stops the loop:
it becomes a record or a counted ``bad_datagram`` event.

The socket loop (``Sink``) knows nothing of records; a handler (``Bucket`` or
``Relay``) does the work, so tests can run either in a thread and stop it.
"""

from __future__ import annotations

import argparse
import errno
import select
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TextIO

from common.argtypes import port_number, positive_float, positive_int
from common.errors import TestbedError
from common.eventlog import EventLog, LineBudget
from protocols.creosote import (
    DEFAULT_PORT,
    RECEIVE_BUFFER,
    SEVERITY_NAMES,
    Address,
    HopLimitExceeded,
    Incomplete,
    LossCounts,
    Message,
    Reassembler,
    Record,
    add_hop,
    decode_chunk,
    is_ping,
    make_message_record,
    make_record,
    pong,
    split_hops,
)
from protocols.errors import RemoteProtocolError
from services.common import Stopped, base_parser, bind_udp, peer_name, raise_on_signals, run_main

SERVER = "creosote"
DEFAULT_RCVBUF = 4 * 2**20  # a burst of spew chunks must not overflow the kernel's queue
MAX_TICK = 0.2  # longest blocking receive: bounds how long stop() and expiry wait
FLUSH_DELAY = 0.1  # a record reaches the file at most this long after it arrived
IDLE_FLUSH = 0.01  # ... or as soon as the socket has been quiet this long
MAX_BATCH = 1000  # lines held before a flush regardless of time
# ... or this many characters: a 64 KiB datagram of control characters in syslog is a 786 kB line (text
# and message, six characters for each byte), and 1000 of them would have been 786 MB held.
MAX_BATCH_CHARS = 2**20
WRITE_BUFFER = 256 * 1024  # the log file's buffer (see JsonlWriter)
LOSS_REPORT_INTERVAL = 10.0
LOSS_REPORT_MIN_INTERVAL = 1.0  # a message given up on is reported this soon, but not once per tick under a flood
PREVIEW_CHARS = 120  # of a record's text on stdout; the file keeps it whole
# With a log file, at most this many ``record`` lines a second reach stdout; the rest are counted in
# one ``records`` line a second. Nobody reads 30,000 lines a second, and formatting them was a third
# of the sink's time per record (scripts/bench, py-spy). Without a file, stdout is the record: all go.
RECORD_LINES_PER_SECOND = 100
TICK_EVERY = 0.001  # the handler's timers (flushes, expiry) are looked at this often under load
RESOLVE_RETRY = 1.0  # seconds between attempts to resolve a relay target that failed
RESOLVE_TTL = 30.0  # re-resolve a working target this often: a container may come back elsewhere
_TRANSIENT = {errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH}  # ICMP echoes
_OVERLOAD = {errno.ENOBUFS, errno.ENOMEM}
# MSG_TRUNC: Linux returns a datagram's real length even when it exceeds the buffer. A plain int:
# or-ing the enum flags on every receive costs more than the flag test itself.
_RECV_FLAGS = int(socket.MSG_TRUNC | socket.MSG_DONTWAIT)

SockAddr = tuple[Any, ...]  # what recvfrom returns and sendto takes: 2-tuple (IPv4) or 4-tuple (IPv6)


@dataclass(frozen=True, slots=True)
class Datagram:
    """One received datagram and when it came."""

    data: bytes
    reply_to: SockAddr
    size: int  # its real length: more than len(data) when the receive buffer cut it short
    received: float  # epoch seconds, for the record
    now: float  # monotonic seconds, for timeouts

    @property
    def source(self) -> Address:
        """``(host, port)`` of the sender."""
        return str(self.reply_to[0]), int(self.reply_to[1])


class Handler(Protocol):
    """What the socket loop drives: bucket or relay."""

    count: int  # records made or datagrams relayed; reported by the probe

    def handle(self, datagram: Datagram) -> None:
        """Process one datagram (may raise ``TestbedError`` for a bad one)."""

    def timeout(self, now: float) -> float | None:
        """Seconds until ``tick`` has work to do, ``None`` if it has none pending."""

    def tick(self, now: float) -> None:
        """Do time-driven work: flushing, expiry, reports."""

    def close(self) -> None:
        """Finish pending work (flush); called once the loop ends."""


# --------------------------------------------------------------------------- the loop


class Sink:
    """The UDP loop: receive, answer the probe, hand every other datagram to ``handler``.

    ``serve_forever`` runs until ``stop`` (from any thread, noticed within
    ``MAX_TICK``) or until ``Stopped`` arrives from a signal handler; either way
    the handler is closed, so buffered records are flushed.
    """

    def __init__(self, sock: socket.socket, handler: Handler, *, log: EventLog, buffer_size: int) -> None:
        self._sock = sock
        self._handler = handler
        self._log = log
        self._buffer = memoryview(bytearray(buffer_size))  # reused: the payload copy is the only allocation
        self._poller = select.poll()  # waits only when the queue is empty (see _receive)
        self._poller.register(sock, select.POLLIN)
        self._stopping = threading.Event()
        self._closed = False
        self.errors = 0
        host, port = sock.getsockname()[:2]
        self.address: Address = (str(host), int(port))  # the real port when bound to port 0

    @property
    def handler(self) -> Handler:
        """What handles the datagrams: a ``Bucket`` or a ``Relay``."""
        return self._handler

    def serve_forever(self) -> None:
        """Receive and handle datagrams until stopped."""
        next_tick = 0.0
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                if now >= next_tick:  # not per datagram: at 30,000/s the timers would cost a tenth
                    self._handler.tick(now)
                    self._log.tick(now)
                    next_tick = now + TICK_EVERY
                datagram = self._receive()
                if datagram is not None:
                    self._dispatch(datagram)
        finally:
            self._handler.close()

    def stop(self) -> None:
        """Ask ``serve_forever`` to return; safe from any thread."""
        self._stopping.set()

    def close(self) -> None:
        """Close the handler and the socket; log the final counts."""
        if self._closed:
            return
        self._closed = True
        self._handler.close()
        self._sock.close()
        self._log.end_second()
        self._log("stopped", count=self._handler.count, errors=self.errors)

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _receive(self) -> Datagram | None:
        # Non-blocking first: under load the queue is never empty, and one recvfrom per datagram is
        # all it costs. A socket timeout would add a poll() before, and settimeout() an ioctl, to
        # every datagram (scripts/bench measured them at ~15 % of the sink's time per record).
        try:
            size, reply_to = self._sock.recvfrom_into(self._buffer, 0, _RECV_FLAGS)
        except BlockingIOError:
            wait = self._handler.timeout(time.monotonic())
            wait = MAX_TICK if wait is None else min(max(wait, 0.001), MAX_TICK)
            if not self._poller.poll(wait * 1000):
                return None
            try:
                size, reply_to = self._sock.recvfrom_into(self._buffer, 0, _RECV_FLAGS)
            except BlockingIOError:
                return None
            except OSError as exc:
                self._survive(exc)
                return None
        except OSError as exc:
            self._survive(exc)
            return None
        data = self._buffer[: min(size, len(self._buffer))].tobytes()
        return Datagram(data, reply_to, size, time.time(), time.monotonic())

    def _survive(self, exc: OSError) -> None:
        """Log a receive error that a later datagram may not have; re-raise any other."""
        if exc.errno not in _TRANSIENT | _OVERLOAD:
            raise exc
        self._log.limited("receive_error", error=exc.strerror or str(exc))
        if exc.errno in _OVERLOAD:
            self._stopping.wait(0.1)  # the kernel is short of memory: give it a moment (trio does the same)

    def _dispatch(self, datagram: Datagram) -> None:
        if is_ping(datagram.data):
            self._answer_ping(datagram.reply_to)
            return
        try:
            self._handler.handle(datagram)
        except TestbedError as exc:
            self._count_error("bad_datagram", datagram, exc)
        except Stopped:
            raise
        except Exception as exc:
            # A sink must outlive its own bugs on hostile input; the event line makes the bug visible.
            self._count_error("internal_error", datagram, exc)

    def _answer_ping(self, reply_to: SockAddr) -> None:
        try:
            self._sock.sendto(pong(self._handler.count), reply_to)
        except OSError as exc:
            self._log.limited("pong_error", peer=peer_name(reply_to), error=exc.strerror or str(exc))

    def _count_error(self, event: str, datagram: Datagram, exc: Exception) -> None:
        self.errors += 1
        self._log.limited(
            event,
            now=datagram.now,
            peer=peer_name(datagram.reply_to),
            size=datagram.size,
            error=f"{type(exc).__name__}: {exc}",
        )


# --------------------------------------------------------------------------- bucket mode


class LogFileError(TestbedError):
    """The JSON Lines file cannot be opened."""


class JsonlWriter:
    """Append lines to a file in batches, each line on disk within ``FLUSH_DELAY``.

    A batch is written when the oldest unwritten line is ``FLUSH_DELAY`` old,
    when no line came for ``IDLE_FLUSH``, or when ``MAX_BATCH`` lines or
    ``MAX_BATCH_CHARS`` characters wait. A
    write error (disk full) drops the batch with an event line: the sink goes on.
    """

    def __init__(self, path: Path, *, log: EventLog) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # A 256 KiB buffer that writelines() fills line by line: joining a batch into one string
            # first allocated megabytes per flush, and their page faults tripled the cost of a line.
            self._file: TextIO = path.open("a", encoding="utf-8", buffering=WRITE_BUFFER)
        except OSError as exc:
            raise LogFileError(f"cannot open log file {path}: {exc.strerror or exc}") from exc
        self.path = path
        self._log = log
        self._lines: list[str] = []
        self._chars = 0
        self._first = self._last = 0.0

    def add(self, line: str, now: float) -> None:
        """Queue one line (without newline) received at monotonic time ``now``."""
        if not self._lines:
            self._first = now
        self._last = now
        self._lines.append(line + "\n")
        self._chars += len(line)
        if len(self._lines) >= MAX_BATCH or self._chars >= MAX_BATCH_CHARS:
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
        """Write every queued line now."""
        lines, self._lines, self._chars = self._lines, [], 0  # taken first: an interrupted flush never writes twice
        if not lines:
            return
        try:
            self._file.writelines(lines)
            self._file.flush()
        except OSError as exc:
            self._log.limited("write_error", path=str(self.path), dropped=len(lines), error=exc.strerror or str(exc))

    def close(self) -> None:
        """Flush and close the file."""
        if not self._file.closed:
            self.flush()
            self._file.close()


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
            self._emit(make_record(datagram.data, datagram.source, datagram.received, size=datagram.size), datagram)
            return
        if datagram.size > len(datagram.data):
            raise RemoteProtocolError("chunk cut short by the receive buffer (raise --max-datagram)")
        for event in self._reassembler.feed(chunk, datagram.source, datagram.now):
            if isinstance(event, Message):
                self._emit(make_message_record(event, datagram.received), datagram)
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

    def _emit(self, record: Record, datagram: Datagram) -> None:
        self.count += 1
        if self._writer:
            self._writer.add(record.to_json(), datagram.now)
            self._roll_record_lines(datagram.now)
            if not self._record_lines.allow("record", datagram.now):
                return
        # Record lines reach stdout in batches, on the JSON Lines file's schedule (see EventLog.defer).
        self._log.defer("record", **summary(record))
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


class RawLines:
    """Raw mode: each datagram one line of the file, as it came; no parsing, no JSON, no reassembly.

    The bench compares it with rsyslog's raw template (``%rawmsg%``). Bytes that are
    not UTF-8 are written as ``\\xNN`` and line breaks as ``\\n``/``\\r``, so one datagram
    stays one line. Nothing per datagram reaches stdout: the probe's count says how many.
    """

    def __init__(self, writer: JsonlWriter) -> None:
        self.count = 0
        self._writer = writer

    def handle(self, datagram: Datagram) -> None:
        """Queue the datagram's line."""
        line = datagram.data.decode("utf-8", "backslashreplace")
        if "\n" in line or "\r" in line:
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


# --------------------------------------------------------------------------- redirector mode


class Resolver:
    """A relay target's address, resolved lazily, refreshed, never raising.

    In a Compose lab the target may not exist yet when the relay starts, or may
    come back with a new address: a failed lookup is retried every
    ``RESOLVE_RETRY`` seconds, and a good one is refreshed every ``RESOLVE_TTL``
    (keeping the old address if the refresh fails).
    """

    def __init__(self, host: str, port: int, *, family: int, log: EventLog) -> None:
        self.host, self.port = host, port
        self._family = family
        self._log = log
        self._address: SockAddr | None = None
        self._next_lookup = 0.0

    def resolve(self, now: float) -> SockAddr | None:
        """The target's socket address, or ``None`` while it does not resolve."""
        if now >= self._next_lookup:
            self._lookup(now)
        return self._address

    def _lookup(self, now: float) -> None:
        try:
            infos = socket.getaddrinfo(self.host, self.port, self._family, socket.SOCK_DGRAM)
        except (OSError, UnicodeError) as exc:  # gaierror is an OSError; an invalid name is a UnicodeError
            self._next_lookup = now + RESOLVE_RETRY
            self._log("resolve_error", target=f"{self.host}:{self.port}", error=str(exc), retry_in=RESOLVE_RETRY)
            return
        address = infos[0][4]
        if address != self._address:
            self._log("resolved", target=f"{self.host}:{self.port}", address=peer_name(address))
        self._address = address
        self._next_lookup = now + RESOLVE_TTL


class Relay:
    """Redirector mode: send every datagram on behind a hop line (``add_hop``), from the sink's own socket."""

    def __init__(self, sock: socket.socket, resolver: Resolver, *, log: EventLog) -> None:
        self.count = 0
        self.dropped = 0
        self.looped = 0  # of the dropped: past the hop limit
        self._sock = sock
        self._resolver = resolver
        self._log = log

    def handle(self, datagram: Datagram) -> None:
        """Relay one datagram; drop it (with an event) when that cannot work."""
        if datagram.size > len(datagram.data):
            raise RemoteProtocolError("datagram cut short by the receive buffer: not relayed (raise --max-datagram)")
        try:
            forwarded = add_hop(datagram.data)  # a malformed hop line raises: a bad datagram
        except HopLimitExceeded as exc:
            self.looped += 1
            self._drop(datagram, str(exc))
            return
        target = self._resolver.resolve(datagram.now)
        if target is None:
            self._drop(datagram, "target does not resolve")
        elif tuple(target[:2]) == datagram.source:
            # Two relays each other's target: caught at once, where the hop limit would take MAX_HOPS sends.
            self._drop(datagram, "came from the target: relaying it back would loop")
        else:
            self._send(datagram, forwarded, target)

    def timeout(self, now: float) -> float | None:
        """A relay has no timed work."""
        return None

    def tick(self, now: float) -> None:
        """A relay has no timed work."""

    def close(self) -> None:
        """Nothing is buffered."""

    def _send(self, datagram: Datagram, forwarded: bytes, target: SockAddr) -> None:
        try:
            self._sock.sendto(forwarded, target)
        except OSError as exc:
            self._drop(datagram, exc.strerror or str(exc))
            return
        self.count += 1
        self._log.limited(
            "relay", now=datagram.now, peer=peer_name(datagram.reply_to), to=peer_name(target), size=datagram.size
        )

    def _drop(self, datagram: Datagram, reason: str) -> None:
        self.dropped += 1
        self._log.limited(
            "relay_dropped", now=datagram.now, peer=peer_name(datagram.reply_to), size=datagram.size, reason=reason
        )


# --------------------------------------------------------------------------- assembly and CLI


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """Everything the command line decides."""

    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    log_file: Path | None = None
    raw: bool = False  # each datagram a line of log_file, nothing else (RawLines)
    redirect: Address | None = None
    max_datagram: int = RECEIVE_BUFFER
    rcvbuf: int = DEFAULT_RCVBUF
    reassembly_timeout: float = 5.0


def open_sink(config: SinkConfig, *, log: EventLog) -> Sink:
    """Bind the socket, build the handler, log ``ready``; the caller runs and closes the sink."""
    sock = bind_udp(config.host, config.port, rcvbuf=config.rcvbuf)
    try:
        handler = _make_handler(config, sock, log)
    except BaseException:
        sock.close()
        raise
    sink = Sink(sock, handler, log=log, buffer_size=config.max_datagram)
    mode = "redirect" if config.redirect else "raw" if config.raw else "bucket"
    got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    log("ready", host=sink.address[0], port=sink.address[1], mode=mode, rcvbuf=got, rcvbuf_requested=config.rcvbuf)
    if got < config.rcvbuf:  # Linux reports twice what was granted; less than asked means a cap
        log("rcvbuf_capped", requested=config.rcvbuf, got=got, hint="raise net.core.rmem_max")
    return sink


def _make_handler(config: SinkConfig, sock: socket.socket, log: EventLog) -> Handler:
    if config.redirect is not None:
        host, port = config.redirect
        return Relay(sock, Resolver(host, port, family=sock.family, log=log), log=log)
    writer = JsonlWriter(config.log_file, log=log) if config.log_file else None
    if config.raw and writer is not None:
        return RawLines(writer)
    return Bucket(log=log, writer=writer, reassembler=Reassembler(timeout=config.reassembly_timeout))


def host_and_port(text: str) -> Address:
    """argparse type: ``HOST:PORT`` or ``[IPv6]:PORT``."""
    host, colon, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (for example creosote:7739)")
    return host, port_number(port)


def datagram_buffer(text: str) -> int:
    """argparse type: a receive buffer size, 1 to 65535 bytes."""
    value = positive_int(text)
    if value > RECEIVE_BUFFER:
        raise argparse.ArgumentTypeError(f"{value} is more than a datagram can hold ({RECEIVE_BUFFER})")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m services.creosote``."""
    parser = base_parser(SERVER, "UDP log sink: records every datagram, or relays it.", port=DEFAULT_PORT)
    parser.add_argument("--log-file", type=Path, help="append records as JSON Lines to this file (bucket mode)")
    parser.add_argument(
        "--raw", action="store_true", help="write each datagram to --log-file as a line, nothing else (leanest)"
    )
    parser.add_argument(
        "--redirect", type=host_and_port, metavar="HOST:PORT", help="relay every datagram to HOST:PORT instead"
    )
    parser.add_argument(
        "--max-datagram",
        type=datagram_buffer,
        default=RECEIVE_BUFFER,
        help="receive buffer; longer datagrams are recorded as truncated (default: %(default)s)",
    )
    parser.add_argument(
        "--rcvbuf", type=positive_int, default=DEFAULT_RCVBUF, help="SO_RCVBUF to ask for (default: %(default)s)"
    )
    parser.add_argument(
        "--reassembly-timeout",
        type=positive_float,
        default=5.0,
        metavar="S",
        help="give up on a chunked message after S quiet seconds (default: %(default)s)",
    )
    return parser


def parse_config(argv: Sequence[str] | None = None) -> SinkConfig:
    """Parse the command line into a ``SinkConfig`` (exits with usage on errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.redirect and args.log_file:
        parser.error("--log-file records in bucket mode; a redirector (--redirect) records nothing")
    if args.raw and not args.log_file:
        parser.error("--raw writes lines to --log-file: give --log-file PATH too")
    return SinkConfig(
        host=args.host,
        port=args.port,
        log_file=args.log_file,
        raw=args.raw,
        redirect=args.redirect,
        max_datagram=args.max_datagram,
        rcvbuf=args.rcvbuf,
        reassembly_timeout=args.reassembly_timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sink until SIGTERM/SIGINT; 0 on a clean stop."""
    config = parse_config(argv)
    raise_on_signals()
    try:
        sink = open_sink(config, log=EventLog(SERVER))
    except LogFileError as exc:
        print(f"error: {exc} (is the directory mounted and writable?)", file=sys.stderr)
        return 1
    with sink:
        sink.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
