"""Creosote (protocols.creosote), the UDP log sink: the probe, syslog datagrams recorded, spew chunks reassembled.

A sink answers nothing but its probe, so the checks watch its record count:
``\\0creosote:ping`` gets ``creosote:pong records=N``. A datagram sent before a
ping reaches a sink before that ping (one socket, one queue), so the count
after it shows what the datagram did. Another sender logging at the same time
can add records, so the checks want "at least one more", and name the other
sender when a count is off.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from datetime import UTC, datetime

from clients.check.core import Check, CheckFailed, Context, Suite, Target, resolve, show
from clients.check.wire import Datagrams
from clients.spew import Spewer
from clients.spew import ping as ping_sink
from common.errors import TestbedError
from protocols.creosote import DEFAULT_PORT, DEFAULT_SPEW_DATAGRAM, PING, encode_chunks, parse_pong
from protocols.errors import RemoteProtocolError

CHUNKED_MESSAGE = 12_000  # bytes: nine chunks of the default 1400-byte datagram
POLL_EVERY = 0.05  # s between pings while waiting for a record to show


def count(context: Context, datagrams: Datagrams) -> int:
    """The sink's record count, from one ping."""
    datagrams.send(PING)
    pong = datagrams.receive(expecting="creosote:pong records=N")
    try:
        return parse_pong(pong)
    except TestbedError as exc:
        raise CheckFailed(str(exc), expected="creosote:pong records=N") from exc


def wait_for_records(context: Context, datagrams: Datagrams, before: int, *, what: str) -> int:
    """Ping until the count passes ``before``; the count then. ``CheckFailed`` after a timeout."""
    waited = context.window()
    end = time.monotonic() + waited
    while True:
        now = count(context, datagrams)
        if now > before:
            return now
        if time.monotonic() >= end:
            raise CheckFailed(
                f"records={now} after {what}, as before: not recorded within {context.seconds(waited)}",
                expected=f"records={before + 1} or more",
            )
        context.pause(POLL_EVERY)


def _records_one(context: Context, datagram: bytes, what: str) -> str:
    with Datagrams(context) as datagrams:
        before = count(context, datagrams)
        datagrams.send(datagram)
        after = wait_for_records(context, datagrams, before, what=what)
    return f"records {before} -> {after}"


def reach(target: Target, timeout: float) -> None:
    """First contact: a pong, or at least no silence (something else answering is a check's business)."""
    resolve(target)
    with contextlib.suppress(RemoteProtocolError):
        ping_sink(target.host, target.udp, timeout=timeout)


def ping(context: Context) -> str | None:
    """The probe gets a pong, and pongs are not records: two pings in a row give the same count (or more)."""
    with Datagrams(context) as datagrams:
        counts = [count(context, datagrams) for _ in range(3)]
    if counts != sorted(counts):
        raise CheckFailed(f"the count went down: records={counts}", expected="a count that only grows")
    if counts[1] - counts[0] == counts[2] - counts[1] == 1:
        raise CheckFailed(f"records={counts} for three pings: each ping became a record", expected="the same count")
    return f"records={counts[-1]}"


def rfc3164(context: Context) -> str | None:
    stamp = datetime.now(UTC).strftime("%b %e %H:%M:%S")
    message = f"<13>{stamp} checker check[{os.getpid()}]: an RFC 3164 record {secrets.token_hex(4)}"
    return _records_one(context, message.encode(), "an RFC 3164 datagram")


def rfc5424(context: Context) -> str | None:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    message = (
        f'<165>1 {stamp} checker check {os.getpid()} ID47 [check@32473 run="{secrets.token_hex(4)}"] '
        "\ufeffan RFC 5424 record"
    )
    return _records_one(context, message.encode(), "an RFC 5424 datagram")


def _one_record_for(context: Context, datagrams: Datagrams, before: int, chunks: int, what: str) -> str:
    after = wait_for_records(context, datagrams, before, what=what)
    settled = count(context, datagrams)  # a sink that records chunk by chunk may still be counting
    if settled - before == chunks and chunks > 1:
        raise CheckFailed(
            f"records {before} -> {settled} for one message of {chunks} chunks: each chunk became a record",
            expected=f"records={before + 1}: the chunks reassembled into one message",
        )
    if settled - before != 1:
        raise CheckFailed(
            f"records {before} -> {settled} for one message (another sender logging now? run the check again)",
            expected=f"records={before + 1}",
        )
    return f"{chunks} chunks, records {before} -> {after}"


def spew_chunks(context: Context) -> str | None:
    """A message too long for one datagram, sent as spew chunks: one record."""
    message = f"a long message {secrets.token_hex(4)} ".encode() + b"z" * CHUNKED_MESSAGE
    with Datagrams(context) as datagrams:
        before = count(context, datagrams)
        with Spewer(context.target.host, context.target.udp) as spewer:
            chunks = spewer.send(message)
        context.transcript.note(f"> {len(message)} B in {chunks} spew chunks {show(message)}")
        return _one_record_for(context, datagrams, before, chunks, "a chunked message")


def spew_reordered(context: Context) -> str | None:
    """The same chunks last to first (UDP may reorder): still one record."""
    message = f"a reordered message {secrets.token_hex(4)} ".encode() + b"r" * CHUNKED_MESSAGE
    pieces = encode_chunks(message, secrets.randbits(64), DEFAULT_SPEW_DATAGRAM)
    with Datagrams(context) as datagrams:
        before = count(context, datagrams)
        for piece in reversed(pieces):
            datagrams.send(piece, record=False)
        context.transcript.note(f"> {len(message)} B in {len(pieces)} chunks, last to first {show(pieces[-1])}")
        return _one_record_for(context, datagrams, before, len(pieces), "a chunked message sent last to first")


SUITE = Suite(
    "creosote",
    DEFAULT_PORT,
    (
        Check("creosote.ping", ping, "\\0creosote:ping gets creosote:pong records=N; pings are not records"),
        Check("creosote.rfc3164", rfc3164, "an RFC 3164 syslog datagram is recorded"),
        Check("creosote.rfc5424", rfc5424, "an RFC 5424 syslog datagram is recorded"),
        Check("creosote.spew-chunks", spew_chunks, "a message in spew chunks is one record"),
        Check("creosote.spew-reordered", spew_reordered, "its chunks last to first: still one record"),
    ),
    reach,
)
