"""Event lines: what a peer sends cannot reach a terminal raw, and floods of one kind are counted, not printed."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.eventlog import READY, EventLog, LineBudget, format_event, says_ready

# Everything a terminal acts on: C0 (ESC, BEL, BS, VT, FF, the separators 0x1c-0x1e), DEL, C1 (0x9b is a
# one-character CSI), bidi controls (U+202E reverses what follows) and the Unicode line/paragraph separators.
UNSAFE = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))] + [
    "\u061c",
    "\u200e",
    "\u200f",
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
    "\u2028",
    "\u2029",
]


def value_of(line: str) -> str:
    """The text after ``text=`` in a formatted line (the value is the last field)."""
    return line.split(" text=", 1)[1]


@pytest.mark.parametrize("char", UNSAFE, ids=[f"U+{ord(c):04X}" for c in UNSAFE])
def test_no_unsafe_character_reaches_the_line(char: str) -> None:
    line = format_event("creosote", "record", {"text": f"a{char}b"}, now=0.0)
    assert char not in line
    assert line.isprintable()  # str.isprintable: no control, format (Cf) or separator character but space
    assert len(line.splitlines()) == 1


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("plain", "plain"),
        ("", '""'),
        ("two words", '"two words"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a=b", '"a=b"'),
        ("line\nbreak\r\ttab", '"line\\nbreak\\r\\ttab"'),
        ("\x1b]0;owned\x07", '"\\x1b]0;owned\\x07"'),  # OSC: set the window title, then BEL
        ("\x1b[2J", '"\\x1b[2J"'),  # clear the screen
        ("\x9b31m", '"\\x9b31m"'),  # C1 CSI
        ("abc\u202edcba", '"abc\\u202edcba"'),  # RIGHT-TO-LEFT OVERRIDE
        ("x\u2028y", '"x\\u2028y"'),
        ("back\\slash", "back\\slash"),  # bare values are shown as they are
        ("back\\slash here", '"back\\\\slash here"'),  # quoted ones escape the backslash, so escapes are unambiguous
        ("café ✓", '"café ✓"'),  # printable non-ASCII stays readable
    ],
)
def test_values_are_bare_or_quoted_and_escaped(value: str, shown: str) -> None:
    assert value_of(format_event("s", "e", {"text": value}, now=0.0)) == shown


@given(st.text())
def test_any_text_makes_one_printable_line(text: str) -> None:
    line = format_event("s", "e", {"text": text}, now=0.0)
    assert len(line.splitlines()) == 1
    assert not any(char in line for char in UNSAFE)


def test_the_escapes_can_be_read_back() -> None:
    text = 'ok \x1b[31m"red"\x07 \\ \u202e\u2029 é'
    quoted = value_of(format_event("s", "e", {"text": text}, now=0.0))
    assert quoted.startswith('"') and quoted.endswith('"')
    assert quoted[1:-1].encode("ascii", "backslashreplace").decode("unicode_escape") == text


# --------------------------------------------------------------------------- rate limits


def test_line_budget_counts_each_kind_in_each_second() -> None:
    budget = LineBudget(2)
    assert budget.roll(10.0) is None
    assert [budget.allow("bad", 10.1) for _ in range(5)] == [True, True, False, False, False]
    assert budget.allow("loss", 10.2)  # another kind has its own budget
    assert budget.roll(10.9) is None  # the same second
    assert budget.roll(11.0) == ({"bad": 2}, {"bad": 3})  # only kinds that held lines back
    assert budget.allow("bad", 11.0)
    assert budget.roll(12.5) is None  # nothing held in second 11


def test_limited_events_beyond_the_budget_are_summarised_once_a_second() -> None:
    stdout = io.StringIO()
    log = EventLog("creosote", stream=stdout, per_second=3)
    for i in range(1000):
        log.limited("bad_datagram", now=100.5, n=i)
    log.limited("incomplete", now=100.6, msg="a")
    log.tick(100.99)  # still second 100: no summary yet
    log.tick(101.0)
    log.tick(101.5)  # the summary is written once
    events = [line.split(" ", 2)[2] for line in stdout.getvalue().splitlines()]
    assert events == [
        "bad_datagram n=0",
        "bad_datagram n=1",
        "bad_datagram n=2",
        "incomplete msg=a",
        "not_shown per_second=3 bad_datagram=997",
    ]


def test_the_summary_comes_before_the_next_seconds_lines() -> None:
    stdout = io.StringIO()
    log = EventLog("creosote", stream=stdout, per_second=1)
    log.limited("relay", now=5.0, n=1)
    log.limited("relay", now=5.1, n=2)
    log.limited("relay", now=6.2, n=3)
    events = [line.split(" ", 2)[2] for line in stdout.getvalue().splitlines()]
    assert events == ["relay n=1", "not_shown per_second=1 relay=1", "relay n=3"]


def test_end_second_writes_the_summary_at_shutdown() -> None:
    stdout = io.StringIO()
    log = EventLog("creosote", stream=stdout, per_second=1)
    log.limited("relay", now=5.0, n=1)
    log.limited("relay", now=5.1, n=2)
    log.end_second()
    log.end_second()  # nothing more to say
    assert [line.split(" ", 2)[2] for line in stdout.getvalue().splitlines()] == [
        "relay n=1",
        "not_shown per_second=1 relay=1",
    ]


def test_a_flood_of_limited_events_stays_small() -> None:
    """50,000 bad datagrams in 5 s: 9.5 MB of lines before the limit; now a few lines a second."""
    stdout = io.StringIO()
    log = EventLog("creosote", stream=stdout)
    for i in range(50_000):
        log.limited("bad_datagram", now=1000 + i / 10_000, peer="192.0.2.1:5", size=41, error="malformed chunk header")
    log.tick(1006.0)
    assert len(stdout.getvalue().splitlines()) <= 5 * (10 + 1)
    assert sum(int(line.rsplit("=", 1)[1]) for line in stdout.getvalue().splitlines() if "not_shown" in line) == (
        50_000 - 5 * 10
    )


def test_the_ready_line_is_told_from_others_and_from_other_servers() -> None:
    line = format_event("daytime", READY, {"host": "0.0.0.0", "tcp": 13}, now=0.0)
    assert says_ready(line, "daytime")
    assert not says_ready(line, "echo")
    assert not says_ready(format_event("daytime", "stopped", {}, now=0.0), "daytime")
    assert not says_ready(format_event("daytime", "reply", {"text": "daytime ready"}, now=0.0), "daytime")
    assert not says_ready("daytime ready", "daytime")
