"""daytime, echo and upper protocol classes, without sockets."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import daytime, echo, upper
from protocols.errors import RemoteProtocolError
from protocols.stamps import PerSecond

WHEN = datetime(2026, 11, 22, 2, 42, 19, tzinfo=UTC)


def test_daytime_line_format() -> None:
    assert daytime.format_daytime(WHEN) == b"Sunday, November 22, 2026 02:42:19-UTC\r\n"


def test_daytime_converts_to_utc() -> None:
    local = WHEN.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert daytime.format_daytime(local) == daytime.format_daytime(WHEN)


def test_daytime_round_trip() -> None:
    assert daytime.parse_daytime(daytime.format_daytime(WHEN)) == WHEN


@pytest.mark.parametrize("bad", [b"", b"Sunday\r\n", b"Sunday, November 22, 2026 02:42:19-UTC\n", b"a\r\nb\r\n"])
def test_daytime_parse_rejects_garbage(bad: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        daytime.parse_daytime(bad)


def test_daytime_session_answers_and_closes() -> None:
    session = daytime.DaytimeSession(now=WHEN)
    out = session.start()
    assert out.close and out.data == daytime.format_daytime(WHEN)
    assert session.receive_data(b"ignored").close


def test_daytime_datagram_ignores_request() -> None:
    assert daytime.answer_datagram(b"\xff" * 100, now=WHEN) == daytime.format_daytime(WHEN)


@given(st.lists(st.binary(min_size=1, max_size=500), max_size=10))
def test_echo_session_mirrors_every_chunk(pieces: list[bytes]) -> None:
    session = echo.EchoSession()
    assert session.start().data == b""
    assert b"".join(session.receive_data(p).data for p in pieces) == b"".join(pieces)
    assert session.receive_data(b"").close


def test_upper_answer() -> None:
    now = 0.0
    assert upper.answer_line(b"hi there", now=now) == f"[{__import__('time').ctime(now)}] HI THERE\n".encode()


def test_upper_session_frames_lines_across_chunks() -> None:
    session = upper.UpperSession(clock=lambda: 0.0)
    assert session.receive_data(b"ab").data == b""
    out = session.receive_data(b"c\nd\n")
    replies = out.data.decode().splitlines()
    assert [upper.parse_answer(r)[1] for r in replies] == ["ABC", "D"]
    assert not out.close
    assert session.receive_data(b"").close


def test_upper_session_reports_bad_lines_and_goes_on() -> None:
    session = upper.UpperSession(max_line=8, clock=lambda: 0.0)
    out = session.receive_data(b"\xff\n" + b"y" * 20 + b"\nok\n")
    lines = out.data.decode().splitlines()
    assert lines[0] == "error: line is not valid UTF-8"
    assert lines[1] == "error: line longer than 8 bytes"
    assert upper.parse_answer(lines[2])[1] == "OK"


@given(st.binary(max_size=3000))
def test_upper_session_never_raises(data: bytes) -> None:
    session = upper.UpperSession(max_line=100)
    session.receive_data(data)
    session.receive_data(b"")


def test_parse_answer_rejects_other_lines() -> None:
    with pytest.raises(ValueError):
        upper.parse_answer("HELLO")


@pytest.mark.parametrize("now", [0.0, 0.999, 1.0, 59.5, -0.5, 1_764_650_000.25])
def test_the_reply_stamp_is_ctime_even_when_cached(now: float) -> None:
    # The stamp is formatted once per second and reused: it must still be ctime's for every time.
    assert upper.answer_line(b"x", now=now) == f"[{time.ctime(now)}] X\n".encode()
    assert upper.answer_line(b"x", now=now) == f"[{time.ctime(now)}] X\n".encode()


def test_per_second_formats_once_per_second_in_a_row() -> None:
    calls: list[int] = []

    def fmt(second: int) -> str:
        calls.append(second)
        return f"s{second}"

    stamp = PerSecond(fmt)
    assert [stamp(s) for s in (5, 5, 6, 6, 5)] == ["s5", "s5", "s6", "s6", "s5"]
    assert calls == [5, 6, 5]
