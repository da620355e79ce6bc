"""Daytime (RFC 867): over TCP one ASCII line ending in CRLF, then the server closes; over UDP one answer per datagram.

RFC 867 fixes no syntax for the date, so the time check reads the formats
servers send in practice: the RFC's own suggestion (what ours sends),
``time.ctime()`` (the course's servers; local time, zone unknown), RFC 2822 and
ISO 8601.
"""

from __future__ import annotations

import email.utils
import os
import time
from datetime import UTC, datetime

from clients.check.core import Check, CheckFailed, Context, Suite, show
from clients.check.wire import Broken, Datagrams, Silent, Stream
from protocols.daytime import PORT, parse_daytime
from protocols.errors import RemoteProtocolError

TOLERANCE = 5.0  # seconds between the server's clock and ours that still count as "now"
MORE_WITHIN = 0.5  # after the line, how long to watch for more before judging it the only line
QUIET_WINDOW = 0.3  # after the UDP exchange, how long to watch for answers nobody asked for
_MAX_ZONE = 14 * 3600  # the widest UTC offset in use (UTC+14)


def read_answer(stream: Stream) -> tuple[bytes, bool]:
    """What the server sends on connect: up to and a little past its first line end; and whether it closed."""
    parts: list[bytes] = []
    waited = stream.context.window()
    end = time.monotonic() + waited
    while True:
        seen_line = any(b"\n" in part for part in parts)
        left = MORE_WITHIN if seen_line else end - time.monotonic()
        try:
            data = stream.recv(max(0.0, left), "reading the time")
        except Broken:
            if not seen_line:
                raise
            return _record(stream, b"".join(parts)), True  # a reset after the line: closed, if rudely
        except TimeoutError:
            if not seen_line:
                got = b"".join(parts)
                raise CheckFailed(
                    f"no whole line within {stream.context.seconds(waited)}" + (f" (got {show(got)})" if got else ""),
                    expected="one line ending in CRLF as soon as we connect",
                ) from None
            return _record(stream, b"".join(parts)), False
        if not data:
            return _record(stream, b"".join(parts)), True
        parts.append(data)
        if sum(map(len, parts)) > 4096:
            return _record(stream, b"".join(parts)), False


def _record(stream: Stream, answer: bytes) -> bytes:
    stream.context.transcript.received(answer)
    return answer


def judge_line(answer: bytes) -> None:
    """``CheckFailed`` unless ``answer`` is exactly one line of printable ASCII ending in CRLF."""
    expected = "exactly one line of printable ASCII ending in CRLF (\\r\\n)"
    if not answer:
        raise CheckFailed("the server closed without sending anything", expected=expected)
    if not answer.endswith(b"\n"):
        raise CheckFailed("the answer does not end with a line end", expected=expected)
    if not answer.endswith(b"\r\n"):
        raise CheckFailed("the line ends in a bare LF (\\n), not CRLF", expected=expected)
    lines = answer.count(b"\n")
    if lines != 1:
        raise CheckFailed(f"{lines} lines where RFC 867 sends one", expected=expected)
    if any(not 0x20 <= byte < 0x7F for byte in answer[:-2]):
        raise CheckFailed("the line holds bytes other than printable ASCII", expected=expected)


def read_time(answer: bytes) -> tuple[datetime, str]:
    """The date and time in a daytime answer and the name of its format; ``CheckFailed`` if none fits."""
    try:
        return parse_daytime(answer), "RFC 867's suggested format"
    except RemoteProtocolError:
        pass
    text = " ".join(answer.decode("ascii", errors="replace").split())
    try:
        return datetime.strptime(text, "%a %b %d %H:%M:%S %Y"), "ctime"
    except ValueError:
        pass
    try:
        return email.utils.parsedate_to_datetime(text), "RFC 2822"
    except (TypeError, ValueError, IndexError):
        pass
    try:
        return datetime.fromisoformat(text), "ISO 8601"
    except ValueError:
        pass
    raise CheckFailed(
        f"no date and time we can read in {show(answer)}",
        expected="a date and time as RFC 867 suggests, or as ctime, RFC 2822 or ISO 8601 write it",
    )


def judge_time(answer: bytes) -> str:
    """How far the answer's time is from ours; ``CheckFailed`` past ``TOLERANCE`` (any time zone for zoneless ones)."""
    when, kind = read_time(answer)
    now = datetime.now(UTC)
    if when.tzinfo is not None:
        off = (when - now).total_seconds()
        if abs(off) > TOLERANCE:
            raise CheckFailed(f"the time is {off:+.0f} s from ours ({kind})", expected=f"within {TOLERANCE:g} s")
        return f"{kind}, {off:+.1f} s from our clock"
    off = (when - now.replace(tzinfo=None)).total_seconds()
    zone = round(off / 900) * 900  # time zones are whole quarter hours from UTC
    if abs(zone) > _MAX_ZONE or abs(off - zone) > TOLERANCE:
        raise CheckFailed(
            f"the time ({kind}, no zone) is {off:+.0f} s from our UTC clock: not now in any time zone",
            expected=f"within {TOLERANCE:g} s of now in some time zone",
        )
    return f"{kind}, local time UTC{zone / 3600:+g}, {off - zone:+.1f} s from our clock"


def tcp_one_line(context: Context) -> str | None:
    with Stream(context) as stream:
        answer, _closed = read_answer(stream)
    judge_line(answer)
    return None


def tcp_time(context: Context) -> str | None:
    with Stream(context) as stream:
        answer, _closed = read_answer(stream)
    return judge_time(answer[: answer.index(b"\n") + 1])  # the first line: judge_line judges the rest


def tcp_closes(context: Context) -> str | None:
    """The server closes within ``timeout`` of the connect, whatever it sent (RFC 867: "then closes")."""
    with Stream(context) as stream:
        began = time.monotonic()
        waited = context.window()
        end = began + waited
        got = b""
        while True:
            try:
                data = stream.recv(max(0.0, end - time.monotonic()), "waiting for the close")
            except TimeoutError:
                stream.context.transcript.received(got)
                raise CheckFailed(
                    f"the connection is still open {context.seconds(waited)} after the server sent its answer",
                    expected="the server closes the connection once it has sent the time",
                ) from None
            except Broken as exc:  # a reset is a close, if a rude one
                stream.note(f"< {exc.detail}")
                break
            if not data:
                break
            got += data
            if len(got) > 4096:
                raise CheckFailed("more than 4 KiB and still sending", expected="one line, then close")
        stream.context.transcript.received(got)
        stream.note("< EOF (the server closed)")
        return f"closed {time.monotonic() - began:.2f} s after connect"


def tcp_client_talks_first(context: Context) -> str | None:
    """A client that sends before it reads still gets the time: the server must not reset it away."""
    with Stream(context) as stream:
        stream.send(b"hello?\n" * 100)
        try:
            answer, _closed = read_answer(stream)
        except Broken as exc:
            if exc.reset:
                raise CheckFailed(
                    f"{exc.detail}: closing with our bytes unread made the kernel send RST, which can destroy "
                    "the answer before we read it (read, or drain after shutdown(SHUT_WR), before closing)",
                    expected="the time line, even though we spoke first",
                ) from exc
            raise
    judge_line(answer)
    return None


def _udp_exchange(datagrams: Datagrams, request: bytes) -> str:
    datagrams.send(request)
    answer = datagrams.receive(expecting="the time")
    judge_line(answer)
    return judge_time(answer)


def udp_any_datagram(context: Context) -> str | None:
    """A text question and 1000 random bytes each get one datagram with the time, and nothing more."""
    with Datagrams(context) as datagrams:
        note = ""
        for request in (b"what time is it?\n", os.urandom(1000)):
            note = _udp_exchange(datagrams, request)
        extra = datagrams.quiet(QUIET_WINDOW)
    if extra:
        raise CheckFailed(f"{len(extra)} more datagrams nobody asked for", expected="one answer per datagram")
    return note


def udp_empty_datagram(context: Context) -> str | None:
    with Datagrams(context) as datagrams:
        try:
            return _udp_exchange(datagrams, b"")
        except Silent as exc:
            raise CheckFailed(
                f"{exc.detail} (Docker's userland port proxy drops empty datagrams: from the host "
                "through a published port this fails whatever the server does; check from inside the lab)",
                expected="the time, in one datagram",
            ) from exc


SUITE = Suite(
    "daytime",
    PORT,
    (
        Check("daytime.tcp.one-line", tcp_one_line, "on connect: one line of printable ASCII ending in CRLF"),
        Check("daytime.tcp.time", tcp_time, f"the line holds the time, within {TOLERANCE:g} s of ours"),
        Check("daytime.tcp.closes", tcp_closes, "the server closes the connection after the line"),
        Check(
            "daytime.tcp.client-talks-first",
            tcp_client_talks_first,
            "a client that sends first still gets the time (no RST eats it)",
        ),
        Check("daytime.udp.any-datagram", udp_any_datagram, "any datagram gets one datagram with the time back"),
        Check("daytime.udp.empty-datagram", udp_empty_datagram, "an empty datagram gets the time too"),
    ),
)
