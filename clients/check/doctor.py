"""The doctor (protocols.doctor): a greeting, then exactly one answer line to every line; an empty line ends it.

The answers are the doctor's to choose (they are random), so the checks count
lines and judge their shape, not their words.
"""

from __future__ import annotations

from clients.check.core import Check, CheckFailed, Context, Suite, show
from clients.check.wire import Stream
from protocols.doctor import PORT

SENTENCES = ["I feel sad about my job", "My mother never calls me", "yes", "Why do you ask so many questions?"]
QUIET_WINDOW = 0.3  # s in which no answer nobody asked for may arrive


def _greeted(stream: Stream) -> bytes:
    greeting = stream.line(expecting="greeting")
    if not greeting.strip():
        raise CheckFailed("the greeting is an empty line", expected="a line of greeting as soon as we connect")
    return greeting


def _answer(stream: Stream, sentence: str) -> None:
    answer = stream.line(expecting=f"answer to {sentence!r}")
    if not answer.strip() or answer.startswith(b"error"):
        raise CheckFailed(f"the answer to {sentence!r} is {show(answer)}", expected="one line of the doctor's words")


def _nothing_more(stream: Stream, after: str) -> None:
    extra = stream.maybe_line(QUIET_WINDOW)
    if extra is not None:
        raise CheckFailed(f"another line after {after}: {show(extra)}", expected="exactly one answer per line")


def greeting(context: Context) -> str | None:
    with Stream(context) as stream:
        return show(_greeted(stream), limit=60)


def each_line(context: Context) -> str | None:
    """Lines one at a time: each gets one answer before the next is sent."""
    with Stream(context) as stream:
        _greeted(stream)
        for sentence in SENTENCES:
            stream.send(sentence.encode() + b"\n")
            _answer(stream, sentence)
        _nothing_more(stream, "the last answer")
    return None


def coalesced(context: Context) -> str | None:
    """Lines in one write: one answer each (a server that reads one ``recv`` as one message answers once)."""
    with Stream(context) as stream:
        _greeted(stream)
        stream.send(b"".join(sentence.encode() + b"\n" for sentence in SENTENCES))
        for number, sentence in enumerate(SENTENCES):
            try:
                _answer(stream, sentence)
            except CheckFailed as exc:
                raise CheckFailed(
                    f"{number} answer{'' if number == 1 else 's'} to {len(SENTENCES)} lines sent in one write: "
                    f"{exc.detail}",
                    expected=exc.expected or "one answer per line (a server that reads one recv as one message fails)",
                ) from exc
        _nothing_more(stream, f"{len(SENTENCES)} answers")
    return None


def split_line(context: Context) -> str | None:
    """Half a line gets no answer; its end completes it: one answer."""
    with Stream(context) as stream:
        _greeted(stream)
        stream.send(b"I am ")
        early = stream.maybe_line(QUIET_WINDOW)
        if early is not None:
            raise CheckFailed(f"answered half a line: {show(early)}", expected="no answer until the line's \\n arrives")
        stream.send(b"tired\n")
        _answer(stream, "I am tired")
        _nothing_more(stream, "the answer")
    return None


def quit_(context: Context) -> str | None:
    """An empty line: one farewell line, then the server closes."""
    with Stream(context) as stream:
        _greeted(stream)
        stream.send(b"\n")
        farewell = stream.line(expecting="farewell")
        stream.eof(after="the farewell")
    return show(farewell, limit=60)


SUITE = Suite(
    "doctor",
    PORT,
    (
        Check("doctor.greeting", greeting, "a greeting line on connect"),
        Check("doctor.each-line", each_line, "lines one at a time: one answer each"),
        Check("doctor.coalesced", coalesced, "lines in one write: one answer each"),
        Check("doctor.split-line", split_line, "half a line gets no answer; the whole line gets one"),
        Check("doctor.quit", quit_, "an empty line: a farewell, then the server closes"),
    ),
)
