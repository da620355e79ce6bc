"""The line server (protocols.upper): every line gets one line back, ``[<ctime>] <LINE UPPER-CASED>``.

The checks send lines the ways TCP may deliver them (one at a time, several in
one segment, one line in several), which a server that takes one ``recv`` for
one line cannot follow; an over-long line and bytes that are not UTF-8, which
it must survive; and a second client while the first one says nothing, which an
iterative server without timeouts never gets to.
"""

from __future__ import annotations

import re
import time

from clients.check.core import Check, CheckFailed, Context, Suite, Target, show
from clients.check.wire import Stream
from protocols.upper import PORT, parse_answer

TEXTS = ["hello", "Grüße aus Köln", "x" * 3000, "", "tab\there"]
LONG_LINE = 100_000  # bytes: past any sensible line cap, and far past one recv
HALF_LINE_WINDOW = 0.3  # s in which half a line must get no answer
_CTIME = re.compile(r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}")


def judge(reply: bytes, text: str) -> None:
    """``CheckFailed`` unless ``reply`` is ``[<ctime>] TEXT`` for the line ``text``."""
    expected = f"[<ctime>] {text.upper()}"
    try:
        stamp, body = parse_answer(reply.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CheckFailed(f"not an answer: {show(reply)}", expected=expected) from None
    if body != text.upper():
        raise CheckFailed(f"the answer to {show(text.encode())} says {show(body.encode())}", expected=expected)
    if not _CTIME.fullmatch(stamp):
        raise CheckFailed(f"the stamp [{stamp}] is not a ctime() date", expected="[Sun Nov 22 02:42:19 2026] ...")


def reply(stream: Stream, text: str) -> None:
    """Read the reply to the line ``text`` and judge it."""
    judge(stream.line(expecting=f"answer to {show(text.encode(), limit=24)}"), text)


def exchange(target: Target, lines: list[bytes], *, timeout: float = 10.0) -> list[bytes]:
    """Send ``lines`` (each ending in \\n) in one write, read one reply line per line.

    For tests that know their server's exact words (``error: line longer than ...``).
    """
    context = Context(target, timeout=timeout, deadline=time.monotonic() + 3 * timeout, budget=3 * timeout)
    with Stream(context) as stream:
        stream.send(b"".join(lines))
        return [stream.line(expecting=f"reply {i} of {len(lines)}") for i in range(1, len(lines) + 1)]


def one_line(context: Context) -> str | None:
    with Stream(context) as stream:
        stream.send(b"hello\n")
        reply(stream, "hello")
    return None


def each_line(context: Context) -> str | None:
    """Lines one at a time, each answered before the next: ASCII, UTF-8, 3000 bytes, empty, a tab."""
    with Stream(context) as stream:
        for text in TEXTS:
            stream.send(text.encode() + b"\n")
            reply(stream, text)
    return None


def coalesced(context: Context) -> str | None:
    """The same lines in one write: one reply each, in order."""
    with Stream(context) as stream:
        stream.send(b"".join(text.encode() + b"\n" for text in TEXTS))
        for text in TEXTS:
            reply(stream, text)
    return None


def split_line(context: Context) -> str | None:
    """Half a line gets no answer; the rest, a byte at a time, completes it: one answer, SLOW."""
    with Stream(context) as stream:
        stream.send(b"sl")
        early = stream.maybe_line(HALF_LINE_WINDOW)
        if early is not None:
            raise CheckFailed(
                f"answered half a line ({show(early)}): one recv is not one line",
                expected="no answer until the line's \\n arrives",
            )
        for byte in b"ow\r\n":
            stream.send(bytes([byte]))
        reply(stream, "slow")
    return None


def _still_serves(context: Context) -> None:
    with Stream(context, who="new") as stream:
        stream.send(b"after\n")
        try:
            reply(stream, "after")
        except CheckFailed as exc:
            raise CheckFailed(f"a new client is not served after that: {exc.detail}", expected=exc.expected) from exc


def _survives(context: Context, bad: bytes, what: str, *, whole: bool) -> str:
    """Send ``bad`` then a good line: refused (an error line, or a close) or answered, then serving on.

    ``whole``: an answer must be to the whole line (a piece of it means the server framed by ``recv``).
    """
    with Stream(context) as stream:
        stream.send(bad + b"still here\n")
        first = stream.line_or_eof(expecting=f"answer to {what} (an error line, or the line upper-cased)")
        if first is None:
            outcome = f"closed the connection on {what}"
        else:
            try:
                _stamp, body = parse_answer(first.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                outcome = f"refused {what}: {show(first, limit=60)}"
            else:
                expected_body = bad[:-1].decode("utf-8", errors="replace").upper()
                if body == "STILL HERE":
                    raise CheckFailed(f"no answer to {what}, only to the line after it", expected="one line for each")
                if whole and body != expected_body:
                    raise CheckFailed(
                        f"answered {len(body.encode())} of the {len(bad) - 1} bytes of {what}: "
                        "one recv is not one line",
                        expected="one answer for the whole line, or an error line",
                    )
                outcome = f"answered {what}"
            after = stream.line_or_eof(expecting="answer to the next line, still here")
            if after is not None:
                judge(after, "still here")
    _still_serves(context)
    return outcome


def long_line(context: Context) -> str | None:
    return _survives(context, b"a" * LONG_LINE + b"\n", f"a {LONG_LINE}-byte line", whole=True)


def bad_utf8(context: Context) -> str | None:
    return _survives(context, b"\xff\xfe\n", "a line that is not UTF-8", whole=False)


def silent_client(context: Context) -> str | None:
    """While one client says nothing and another sent half a line, a third is answered at once."""
    with Stream(context, who="silent") as silent, Stream(context, who="half") as half:
        silent.note("(connected, says nothing)")
        half.send(b"half a line without its end")
        with Stream(context, who="third") as third:
            third.send(b"are you there?\n")
            try:
                reply(third, "are you there?")
            except CheckFailed as exc:
                raise CheckFailed(
                    f"{exc.detail} while other clients were connected but silent: the server waits on a "
                    "silent client (one client at a time, with no timeout?)",
                    expected="every client served while others say nothing",
                ) from exc
    return None


SUITE = Suite(
    "upper",
    PORT,
    (
        Check("upper.one-line", one_line, "a line gets one answer: [<ctime>] LINE UPPER-CASED"),
        Check("upper.each-line", each_line, "lines one at a time (ASCII, UTF-8, 3000 B, empty, tab) each answered"),
        Check("upper.coalesced", coalesced, "the same lines in one write: one answer each, in order"),
        Check("upper.split-line", split_line, "half a line gets no answer; the line sent a byte at a time gets one"),
        Check("upper.long-line", long_line, f"a {LONG_LINE}-byte line is refused or answered once; no crash"),
        Check("upper.bad-utf8", bad_utf8, "a line that is not UTF-8 is refused or answered; no crash"),
        Check("upper.silent-client", silent_client, "a client is served while others stay silent"),
    ),
)
