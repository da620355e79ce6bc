"""LineBuffer and chunks: framing that survives any split of the stream."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import LineTooLong
from protocols.framing import LineBuffer, chunks

lines_strategy = st.lists(st.binary(max_size=50).map(lambda b: b.replace(b"\n", b"").rstrip(b"\r")), max_size=20)


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points:
        pieces.append(data[last:point])
        last = point
    pieces.append(data[last:])
    return [p for p in pieces if p]


@given(lines_strategy, st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_any_split_yields_the_same_lines(lines: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    buffer = LineBuffer(max_line=100)
    got: list[bytes] = []
    for piece in split_at(stream, cuts):
        buffer.feed(piece)
        got.extend(buffer.lines())
    assert got == lines
    assert buffer.pending == 0


def test_crlf_and_lf_both_end_a_line() -> None:
    buffer = LineBuffer()
    buffer.feed(b"one\r\ntwo\nthree")
    assert list(buffer.lines()) == [b"one", b"two"]
    assert buffer.pending == len(b"three")


def test_overlong_line_raises_once_then_the_next_line_works() -> None:
    buffer = LineBuffer(max_line=10)
    buffer.feed(b"x" * 25)
    with pytest.raises(LineTooLong):
        buffer.next_line()
    buffer.feed(b"y" * 1000)  # still the same over-long line: discarded quietly
    assert buffer.next_line() is None
    assert buffer.pending == 0  # memory stays bounded
    buffer.feed(b"zz\nok\n")
    assert buffer.next_line() == b"ok"


def test_overlong_line_that_arrives_whole() -> None:
    buffer = LineBuffer(max_line=5)
    buffer.feed(b"123456789\nfine\n")
    with pytest.raises(LineTooLong):
        buffer.next_line()
    assert buffer.next_line() == b"fine"


def test_eof_is_recorded() -> None:
    buffer = LineBuffer()
    buffer.feed(b"")
    assert buffer.eof


@given(st.binary(max_size=5000), st.integers(min_value=1, max_value=600))
def test_chunks_reassemble(data: bytes, size: int) -> None:
    pieces = chunks(data, size)
    assert b"".join(pieces) == data
    assert all(len(p) <= size for p in pieces)
    assert pieces
    assert all(pieces) or data == b""


def test_chunks_rejects_nonpositive_size() -> None:
    with pytest.raises(ValueError):
        chunks(b"abc", 0)
