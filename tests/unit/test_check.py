"""clients.check without a network: transcripts, results and reports, the run's time limits, and the pure judges."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from clients.check import SUITES, daytime, echo, upper
from clients.check.cli import parse_target
from clients.check.core import (
    HEAD_ENTRIES,
    TAIL_ENTRIES,
    Check,
    CheckFailed,
    CheckFunction,
    Context,
    Report,
    Result,
    Suite,
    Target,
    Transcript,
    clip,
    run_check,
    run_checks,
    select,
    show,
    size,
)
from protocols.daytime import format_daytime

TARGET = Target("127.0.0.1", 7)

# --------------------------------------------------------------------------- bytes as text


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        (b"hello", '"hello"'),
        (b"line\r\n", '"line\\r\\n"'),
        (b"\x00\t\x7f\xff", '"\\0\\t\\x7f\\xff"'),
        (b'say "hi" \\ bye', '"say \\"hi\\" \\\\ bye"'),
        ("Grüße".encode(), '"Gr\\xc3\\xbc\\xc3\\x9fe"'),
        (b"", '""'),
    ],
)
def test_bytes_are_shown_as_escaped_text(data: bytes, shown: str) -> None:
    assert show(data) == shown


def test_long_bytes_are_cut_and_counted() -> None:
    assert show(b"x" * 100, limit=4) == '"xxxx"... (+96 B)'
    assert show(b"\n" * 5, limit=2) == '"\\n\\n"... (+3 B)'


def test_sizes_read_as_people_write_them() -> None:
    assert [size(n) for n in (1, 1000, 1024, 65536, 8 << 20, 1025)] == [
        "1 B",
        "1000 B",
        "1 KiB",
        "64 KiB",
        "8 MiB",
        "1025 B",
    ]
    assert clip("abc", 10) == "abc" and clip("abcdefghijkl", 8) == "abcde..."


# --------------------------------------------------------------------------- transcripts


def test_transcript_entries_say_who_sent_what() -> None:
    transcript = Transcript()
    transcript.sent(b"hello\n")
    transcript.received(b"HELLO\r\n", who="bob ")
    transcript.line(b"* you are guest1")
    transcript.note("(reading nothing for 0.5 s)")
    transcript.note("> FIN", who="alice")
    assert transcript.entries() == [
        '> 6 B "hello\\n"',
        'bob < 7 B "HELLO\\r\\n"',
        '< line "* you are guest1"',
        "(reading nothing for 0.5 s)",
        "alice  > FIN",
    ]


def test_a_long_transcript_keeps_its_first_and_last_entries() -> None:
    transcript = Transcript()
    for number in range(100):
        transcript.note(f"entry {number}")
    entries = transcript.entries()
    assert len(entries) == HEAD_ENTRIES + 1 + TAIL_ENTRIES
    assert entries[:HEAD_ENTRIES] == [f"entry {n}" for n in range(HEAD_ENTRIES)]
    assert entries[HEAD_ENTRIES] == f"... {100 - HEAD_ENTRIES - TAIL_ENTRIES} more entries ..."
    assert entries[-TAIL_ENTRIES:] == [f"entry {n}" for n in range(100 - TAIL_ENTRIES, 100)]


# --------------------------------------------------------------------------- results and reports


def test_a_result_is_one_line_when_it_passed_and_a_transcript_when_it_failed() -> None:
    assert Result("echo.tcp.one-byte", True, seconds=0.0123).text() == "ok   echo.tcp.one-byte (0.01 s)"
    assert Result("chat.who", True, "2 here", seconds=0.5).text() == "ok   chat.who: 2 here (0.50 s)"
    failed = Result("echo.tcp.8-mib", False, "only 64 KiB of 8 MiB came back", ('> 8388608 B "..."', "< EOF"))
    assert failed.text() == (
        'FAIL echo.tcp.8-mib: only 64 KiB of 8 MiB came back\n       > 8388608 B "..."\n       < EOF'
    )


def test_a_report_sums_up_and_serialises() -> None:
    results = (Result("a.x", True, seconds=0.1), Result("a.y", False, "no", ("> 1 B",), 0.2))
    report = Report("a", "h:1", 2, results, 0.3)
    assert not report.passed and report.failed() == [results[1]]
    assert report.text().splitlines()[-1] == "a at h:1: 2 checks, 1 failed (0.3 s)"
    assert report.to_json() == {
        "protocol": "a",
        "target": "h:1",
        "udp_port": 2,
        "passed": False,
        "error": None,
        "seconds": 0.3,
        "checks": [
            {"name": "a.x", "passed": True, "detail": "", "transcript": [], "seconds": 0.1},
            {"name": "a.y", "passed": False, "detail": "no", "transcript": ["> 1 B"], "seconds": 0.2},
        ],
    }
    unreachable = Report("a", "h:1", None, error="h:1 refused the connection")
    assert not unreachable.passed and unreachable.summary() == "error: h:1 refused the connection"


def test_targets_name_themselves_and_their_udp_port() -> None:
    assert str(Target("::1", 7)) == "[::1]:7" and str(Target("echo", 7)) == "echo:7"
    assert Target("h", 7).udp == 7 and Target("h", 7, 32770).udp == 32770


# --------------------------------------------------------------------------- running checks


def _run(function: CheckFunction, budget: float = 3.0, timeout: float = 1.0) -> Result:
    return run_check(Check("t.check", function, "a test", budget), TARGET, timeout=timeout)


def test_a_check_passes_with_its_note() -> None:
    assert _run(lambda context: "fine").detail == "fine"


def test_a_failure_keeps_its_transcript_and_what_was_expected() -> None:
    def fails(context: Context) -> None:
        context.transcript.sent(b"hi\n")
        raise CheckFailed("no answer within 1 s", expected="one line back")

    result = _run(fails)
    assert not result.passed and result.detail == "no answer within 1 s"
    assert result.transcript == ('> 3 B "hi\\n"', "expected: one line back")


@pytest.mark.parametrize(
    ("error", "detail"),
    [
        (ConnectionResetError(104, "Connection reset by peer"), "network error: Connection reset by peer"),
        (KeyError("x"), "checker error KeyError: 'x' (a bug in the checker)"),
    ],
)
def test_any_other_error_fails_the_check_and_not_the_run(error: Exception, detail: str) -> None:
    def raises(context: Context) -> None:
        raise error

    assert _run(raises).detail == detail


def test_a_check_cannot_outlive_its_budget() -> None:
    def dawdles(context: Context) -> None:
        context.pause(10)  # cut short at the deadline
        context.wait_for()

    began = time.monotonic()
    result = _run(dawdles, budget=0.1, timeout=1.0)
    assert time.monotonic() - began < 1.0
    assert result.detail == "ran out of time: the check's 0.1 s are spent"


def test_checks_past_the_runs_deadline_are_reported_not_run() -> None:
    def slow(context: Context) -> None:
        context.pause(0.2)

    suite = Suite("t", 1, (Check("t.a", slow, "a"), Check("t.b", slow, "b")))
    report = run_checks(suite, TARGET, timeout=1.0, deadline=0.1)
    assert [r.passed for r in report.results] == [True, False]
    assert report.results[1].detail == "not run: the run's 0.1 s deadline passed"


def test_only_picks_checks_by_name_or_pattern() -> None:
    suite = SUITES["echo"]
    assert [c.name for c in select(suite, ["udp.*"])] == ["echo.udp.datagrams", "echo.udp.empty-datagram"]
    assert [c.name for c in select(suite, ["echo.tcp.8-mib", "tcp.one-byte"])] == [
        "echo.tcp.one-byte",
        "echo.tcp.8-mib",
    ]
    with pytest.raises(LookupError, match=r"no echo check is called tcp\.9-mib"):
        select(suite, ["tcp.9-mib"])


def test_every_check_name_is_unique_and_starts_with_its_protocol() -> None:
    for protocol, suite in SUITES.items():
        names = suite.names()
        assert len(names) == len(set(names))
        assert all(name.startswith(protocol + ".") for name in names)


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("127.0.0.1:7", Target("127.0.0.1", 7)),
        ("echo", Target("echo", 13)),
        ("[::1]:7007", Target("::1", 7007)),
        ("::1", Target("::1", 13)),
        ("[fe80::1]", Target("fe80::1", 13)),
    ],
)
def test_targets_parse(text: str, target: Target) -> None:
    assert parse_target(text, 13) == target


@pytest.mark.parametrize("text", [":7", "h:x", "h:0", "h:65536", "[::1", "[::1]7"])
def test_bad_targets_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_target(text, 13)


# --------------------------------------------------------------------------- the judges


def test_a_daytime_answer_is_one_crlf_line_of_ascii() -> None:
    daytime.judge_line(b"Tue Dec  2 15:41:00 2026\r\n")
    for bad, why in [
        (b"", "without sending anything"),
        (b"Tue Dec  2 15:41:00 2026", "does not end with a line end"),
        (b"Tue Dec  2 15:41:00 2026\n", "bare LF"),
        (b"Tue Dec  2 15:41:00 2026\nHave a nice day!\r\n", "2 lines"),
        ("Dienstag, 2. Dezember\r\n".encode("latin-1").replace(b"D", b"\xc4"), "printable ASCII"),
    ]:
        with pytest.raises(CheckFailed, match=why):
            daytime.judge_line(bad)


def test_the_daytime_formats_servers_send_are_read() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    assert daytime.judge_time(format_daytime(now)).startswith("RFC 867's suggested format")
    assert daytime.judge_time(now.strftime("%a %b %e %H:%M:%S %Y\r\n").encode()).startswith("ctime, local time UTC+0")
    local = now + timedelta(hours=5, minutes=30)  # a zoneless local time in UTC+5:30
    assert "UTC+5.5" in daytime.judge_time(local.strftime("%a %b %e %H:%M:%S %Y\r\n").encode())
    assert daytime.judge_time(now.strftime("%a, %d %b %Y %H:%M:%S +0000\r\n").encode()).startswith("RFC 2822")
    assert daytime.judge_time(now.isoformat().encode() + b"\r\n").startswith("ISO 8601")
    with pytest.raises(CheckFailed, match="from ours"):
        daytime.judge_time(format_daytime(now - timedelta(minutes=1)))
    with pytest.raises(CheckFailed, match="no date and time we can read"):
        daytime.judge_time(b"teatime\r\n")


def test_an_upper_answer_is_a_ctime_stamp_and_the_line_upper_cased() -> None:
    upper.judge("[Wed Dec  2 16:21:47 2026] GRÜSSE".encode(), "Grüße")
    with pytest.raises(CheckFailed, match="not an answer"):
        upper.judge(b"GRUSSE", "Grüße")
    with pytest.raises(CheckFailed, match="says"):
        upper.judge(b"[Wed Dec  2 16:21:47 2026] SL", "slow")
    with pytest.raises(CheckFailed, match="not a ctime"):
        upper.judge(b"[2026-12-02 16:21:47] SLOW", "slow")


def test_an_echo_mismatch_says_how_the_bytes_differ() -> None:
    sent = bytes(range(256)) * 4
    echo.compare(sent, sent)
    with pytest.raises(CheckFailed, match="only 256 B of 1 KiB came back"):
        echo.compare(sent, sent[:256])
    with pytest.raises(CheckFailed, match="100 B missing at byte 200, then the stream goes on"):
        echo.compare(sent, sent[:200] + sent[300:])
    with pytest.raises(CheckFailed, match="more than we sent"):
        echo.compare(sent, sent + b"x")
    with pytest.raises(CheckFailed, match="different from byte 1 on"):
        echo.compare(b"abc", b"aXc")
