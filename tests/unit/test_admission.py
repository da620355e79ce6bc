"""The admission policy (services.admission) with made-up times: no sockets, no clock."""

from __future__ import annotations

import importlib
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.admission import (
    IDLE,
    LINE_DEADLINE,
    Admission,
    Clock,
    Rules,
    Verdict,
    deadline_message,
    half_of,
)
from services.launch import chosen_limits, stream_parser
from services.runners import Limits
from services.upper import BY_MODEL

LINES = Rules(max_clients=4, per_source=2, idle_timeout=60.0, line_deadline=10.0, grace=1.0)
BYTES = Rules(max_clients=4, per_source=2, idle_timeout=60.0, line_deadline=None, grace=1.0)


# -- one connection's clock ---------------------------------------------------


def test_a_trickled_line_expires_at_its_deadline_whatever_trickles_in() -> None:
    clock = Clock(LINES, "10.0.0.1", now=0.0)
    for second in range(1, 10):  # a byte a second: each resets the idle timer, none the line's deadline
        clock.received(b"x", now=float(second))
    assert clock.due() == (11.0, LINE_DEADLINE)  # the line began at 1.0
    assert clock.expired(10.9) is None
    assert clock.expired(11.0) == LINE_DEADLINE
    assert clock.idle(11.0) == 11.0  # and it never made progress


def test_a_finished_line_is_progress_and_what_follows_it_starts_the_next() -> None:
    clock = Clock(LINES, "10.0.0.1", now=0.0)
    clock.received(b"half", now=1.0)
    clock.received(b" done\nnext", now=2.0)
    assert (clock.last_progress, clock.line_started) == (2.0, 2.0)
    clock.received(b" line\n", now=3.0)
    assert (clock.last_progress, clock.line_started) == (3.0, None)
    assert clock.due() == (63.0, IDLE)  # no line begun: only the idle timeout


def test_eof_changes_nothing() -> None:
    clock = Clock(LINES, "10.0.0.1", now=0.0)
    clock.received(b"", now=5.0)
    assert (clock.last_io, clock.last_progress, clock.line_started) == (0.0, 0.0, None)


def test_a_byte_stream_has_no_deadline_and_every_byte_is_progress() -> None:
    clock = Clock(BYTES, "10.0.0.1", now=0.0)
    clock.received(b"no newline, ever", now=30.0)
    assert (clock.last_progress, clock.line_started) == (30.0, None)
    assert clock.due() == (90.0, IDLE)


def test_output_taken_counts_against_the_idle_timeout_but_is_no_progress() -> None:
    clock = Clock(LINES, "10.0.0.1", now=0.0)
    clock.sent(now=50.0)
    assert clock.due() == (110.0, IDLE)
    assert clock.idle(50.0) == 50.0


def test_an_idle_timeout_nearer_than_the_deadline_wins() -> None:
    rules = Rules(max_clients=1, per_source=1, idle_timeout=2.0, line_deadline=10.0)
    clock = Clock(rules, "10.0.0.1", now=0.0)
    clock.received(b"x", now=1.0)
    assert clock.due() == (3.0, IDLE)


def test_the_deadline_message_names_the_deadline() -> None:
    assert deadline_message(10.0) == b"error: line not completed within 10 s, closing\n"
    assert deadline_message(0.5) == b"error: line not completed within 0.5 s, closing\n"


# -- the rules ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"max_clients": 0}, "max_clients"),
        ({"per_source": 0}, "per_source"),
        ({"per_source": 5}, "per_source"),
        ({"idle_timeout": 0.0}, "idle_timeout"),
        ({"line_deadline": -1.0}, "line_deadline"),
        ({"grace": -0.1}, "grace"),
    ],
)
def test_wrong_rules_are_refused_by_name(fields: dict[str, float], named: str) -> None:
    base: dict[str, float | None] = {"max_clients": 4, "per_source": 2, "idle_timeout": 1.0, "line_deadline": 1.0}
    with pytest.raises(ValueError, match=named):
        Rules(**{**base, **fields})  # type: ignore[arg-type]


def test_the_default_share_is_half_and_at_least_one() -> None:
    assert (half_of(1024), half_of(3), half_of(1)) == (512, 1, 1)


# -- admission, by example ------------------------------------------------------


def fill(admission: Admission, sources: list[str], now: float) -> list[Clock]:
    clocks = []
    for source in sources:
        verdict = admission.admit(source, now)
        assert verdict.admitted is not None and verdict.victim is None
        clocks.append(verdict.admitted)
    return clocks


def test_free_slots_are_anyones_one_source_may_fill_the_server() -> None:
    """Through a Docker host port every client has the proxy's address: a share must not be a wall."""
    admission = Admission(LINES)
    fill(admission, ["proxy"] * 4, now=0.0)
    assert (len(admission), admission.held_by("proxy")) == (4, 4)


def test_a_full_server_closes_the_longest_idle_for_a_newcomer() -> None:
    admission = Admission(LINES)
    a, b, c, d = fill(admission, ["proxy"] * 4, now=0.0)
    for clock in (a, c, d):
        clock.received(b"busy\n", now=4.0)
    verdict = admission.admit("proxy", now=5.0)
    assert verdict.victim is b and verdict.admitted is not None
    assert b not in admission and len(admission) == 4


def test_a_full_server_whose_clients_all_progressed_within_the_grace_refuses() -> None:
    admission = Admission(LINES)
    clocks = fill(admission, ["proxy"] * 4, now=0.0)
    for clock in clocks:
        clock.received(b"busy\n", now=4.5)
    assert admission.admit("proxy", now=5.0) == Verdict(None)
    assert len(admission) == 4


def test_a_trickler_is_first_to_go_however_fast_it_trickles() -> None:
    admission = Admission(LINES)
    talker, trickler, *rest = fill(admission, ["proxy"] * 4, now=0.0)
    for tenth in range(1, 50):  # a byte every 0.1 s, the last at 4.9: never silent, never a line
        trickler.received(b"x", now=tenth / 10)
    for second in range(1, 5):
        for clock in (talker, *rest):
            clock.received(b"a line\n", now=float(second))
    assert admission.admit("proxy", now=5.0).victim is trickler


def test_a_source_at_its_share_only_displaces_itself() -> None:
    admission = Admission(LINES)
    mine = fill(admission, ["attacker"] * 2, now=0.0)
    others = fill(admission, ["client1", "client2"], now=0.0)
    for clock in mine:
        clock.received(b"busy\n", now=9.5)  # the attacker's are the busiest; the others idle since 0
    assert admission.admit("attacker", now=10.0) == Verdict(None)  # not one of the idle others
    assert all(clock in admission for clock in others)
    verdict = admission.admit("attacker", now=20.0)  # its own, once idle past the grace
    assert verdict.victim is mine[0] and admission.held_by("attacker") == 2


def test_a_newcomer_under_its_share_takes_back_a_borrowed_slot_at_once() -> None:
    admission = Admission(LINES)
    crowd = fill(admission, ["proxy"] * 4, now=0.0)
    for clock in crowd:
        clock.received(b"busy\n", now=4.9)  # all within the grace
    verdict = admission.admit("10.0.0.7", now=5.0)
    assert verdict.victim is crowd[0] and verdict.admitted is not None
    assert (admission.held_by("proxy"), admission.held_by("10.0.0.7")) == (3, 1)
    verdict = admission.admit("10.0.0.8", now=5.0)  # the crowd still holds more than its share
    assert verdict.victim is crowd[1]
    assert admission.admit("10.0.0.9", now=5.0) == Verdict(None)  # at its share, busy: nobody else to close


def test_release_is_idempotent_and_frees_the_slot() -> None:
    admission = Admission(LINES)
    first, *_ = fill(admission, ["a", "a", "b", "b"], now=0.0)
    admission.release(first)
    admission.release(first)
    assert (len(admission), admission.held_by("a")) == (3, 1)
    assert admission.admit("c", now=0.0).victim is None


# -- admission, by property -----------------------------------------------------

SOURCES = ["proxy", "10.0.0.2", "10.0.0.3"]
ops = st.lists(
    st.tuples(
        st.sampled_from(["admit", "admit", "progress", "release"]),
        st.integers(0, len(SOURCES) - 1),
        st.floats(0.0, 1.5, allow_nan=False),  # time to this step
        st.integers(0, 1000),  # which connection a progress or release is for
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(ops, st.integers(1, 6), st.integers(1, 6))
def test_admission_keeps_its_promises(steps: list[tuple[str, int, float, int]], cap: int, share: int) -> None:
    rules = Rules(max_clients=cap, per_source=min(share, cap), idle_timeout=60.0, line_deadline=10.0, grace=1.0)
    admission = Admission(rules)
    held: list[Clock] = []
    now = 0.0
    for kind, source_index, step, pick in steps:
        now += step
        if kind == "progress" and held:
            held[pick % len(held)].received(b"line\n", now)
        elif kind == "release" and held:
            admission.release(held.pop(pick % len(held)))
        elif kind == "admit":
            source = SOURCES[source_index]
            before = Counter(clock.source for clock in held)
            was_full = len(held) >= cap
            verdict = admission.admit(source, now)
            check_verdict(verdict, source, now, held, before, was_full, rules)
            if verdict.victim is not None:
                held.remove(verdict.victim)
            if verdict.admitted is not None:
                held.append(verdict.admitted)
        assert len(admission) == len(held) <= cap  # never more than the cap
        assert all(clock in admission for clock in held)


def check_verdict(
    verdict: Verdict, source: str, now: float, held: list[Clock], before: Counter[str], was_full: bool, rules: Rules
) -> None:
    """Each promise of the module docstring, checked against the connections held before the newcomer."""
    share = rules.per_source
    if not was_full:
        assert verdict.admitted is not None and verdict.victim is None, "a free slot is anyone's"
        return
    mine = [clock for clock in held if clock.source == source]
    borrowed = [clock for clock in held if before[clock.source] > share]
    if before[source] >= share:  # at its share: only its own, idle past the grace
        candidates, grace = mine, rules.grace
    elif borrowed:  # under its share: a borrowed slot first, grace or not
        candidates, grace = borrowed, 0.0
    else:
        candidates, grace = held, rules.grace
    eligible = [clock for clock in candidates if clock.idle(now) >= grace]
    if verdict.admitted is None:
        assert verdict.victim is None
        assert not eligible, "refused though a connection could have been closed"
        return
    victim = verdict.victim
    assert victim is not None, "a full server admitted without closing anyone"
    assert victim in eligible
    assert victim.last_progress == min(clock.last_progress for clock in candidates), "not the longest-idle"
    after = before[source] + 1 - (victim.source == source)
    assert after <= max(before[source], share), "a full server let a source grow past its share"


# -- the command lines ----------------------------------------------------------


def test_the_share_follows_the_cap_and_the_options_override_the_defaults() -> None:
    limits = {model: Limits(clients, idle) for model, (_, clients, idle) in BY_MODEL.items()}
    parser = stream_parser("upper", "test", port=9000, model="threaded", limits=limits)
    default = chosen_limits(limits, parser.parse_args([])).rules
    assert (default.max_clients, default.per_source, default.line_deadline) == (1024, 512, 10.0)
    small = chosen_limits(limits, parser.parse_args(["--max-clients", "20", "--line-deadline", "1.5"])).rules
    assert (small.max_clients, small.per_source, small.line_deadline) == (20, 10, 1.5)
    assert chosen_limits(limits, parser.parse_args(["--per-source", "3"])).rules.per_source == 3


@pytest.mark.parametrize(
    ("module", "argv", "message"),
    [
        ("services.upper", ["--max-clients", "4", "--per-source", "5"], "--per-source 5 is more than the 4 clients"),
        ("services.upper", ["--line-deadline", "0"], "--line-deadline: 0 must be greater than 0"),
        ("services.upper", ["--per-source", "0"], "--per-source: 0 must be at least 1"),
        ("services.echo", ["--line-deadline", "3"], "--line-deadline: this server serves bytes, not lines"),
        ("services.chat", ["--max-clients", "4", "--per-source", "5"], "--per-source 5 is more than the 4 members"),
        ("services.chat", ["--line-deadline", "-1"], "--line-deadline: -1 must be greater than 0"),
    ],
)
def test_wrong_options_exit_2_with_a_line_that_names_them(
    module: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in last and "Traceback" not in last, last
