"""Event lines: what a peer sends cannot reach a terminal raw."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.eventlog import format_event

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
