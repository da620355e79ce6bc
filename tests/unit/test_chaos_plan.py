"""Seeded plans: the same seed gives the same bytes, in any process; another seed gives another plan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from itertools import combinations
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.chaos.plan import expand, lines
from lab.chaos.schedule import IMPAIRMENTS, LIFE, load, load_text

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "examples" / "chaos" / "default.yaml"
SCHEDULE = load(DEFAULT)
SEEDS = st.integers(min_value=0, max_value=2**63)


@settings(deadline=None)  # each example reads the file again: 4 ms here, far more on a busy machine
@given(SEEDS)
def test_the_same_seed_gives_the_same_bytes(seed: int) -> None:
    assert lines(expand(SCHEDULE, seed)) == lines(expand(load(DEFAULT), seed))


def test_other_seeds_give_other_plans() -> None:
    plans = {lines(expand(SCHEDULE, seed)) for seed in range(200)}
    assert len(plans) == 200


def test_the_plan_is_the_same_bytes_in_another_process_with_another_hash_seed() -> None:
    def plan(hash_seed: str, seed: str) -> bytes:
        return subprocess.run(
            [sys.executable, "-m", "lab.cli", "chaos", "plan", str(DEFAULT), "--seed", seed],
            cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": hash_seed}, capture_output=True, check=True,
        ).stdout  # fmt: skip

    first = plan("1", "7")
    assert first == plan("2", "7") == lines(expand(SCHEDULE, 7)).encode()
    assert first != plan("1", "8")


@settings(max_examples=200, deadline=None)
@given(SEEDS)
def test_drawn_steps_keep_to_the_schedule(seed: int) -> None:
    spec = SCHEDULE.random
    assert spec is not None
    steps = expand(SCHEDULE, seed)
    assert [s.at_ms for s in steps] == sorted(s.at_ms for s in steps)
    assert set(SCHEDULE.steps) <= set(steps)  # every fixed step, whatever the seed
    for a, b in combinations(steps, 2):
        assert not a.conflicts(b), (a, b)
    for step in steps:
        assert step.at_ms >= 0 and step.end_ms <= SCHEDULE.duration_ms
        if step.origin != "random":
            continue
        assert step.do in spec.do and step.nodes[0] in spec.nodes
        assert step.for_ms <= spec.for_ms[1]
        assert step.for_ms >= spec.for_ms[0] or step.do in LIFE  # only a kill or pause may be cut at the end
        if step.do == "partition":
            assert step.nodes == (step.nodes[0], SCHEDULE.client)
        if step.do in IMPAIRMENTS:
            assert step.impairment is not None
            assert spec.range_of("delay")[0] <= step.impairment.delay_ms <= spec.range_of("delay")[1] or \
                step.do not in ("delay", "jitter")  # fmt: skip
            assert step.impairment.loss_pct <= spec.range_of("loss")[1]
        else:
            assert step.impairment is None


def test_a_schedule_without_random_steps_is_its_fixed_steps_for_any_seed() -> None:
    schedule = load_text("duration: 5s\nsteps:\n  - {at: 1s, for: 1s, do: kill, node: echo}\n", source="s.yaml")
    assert expand(schedule, 1) == expand(schedule, 2) == schedule.steps


def test_random_ranges_are_drawn_from_and_printed_in_the_files_units() -> None:
    schedule = load_text(
        textwrap.dedent("""\
        duration: 60s
        random: {every: 1s, for: [1s, 2s], do: [delay, loss, rate], nodes: [echo],
                 delay: [10ms, 20ms], loss: 50%, rate: [100kbit, 200kbit]}
        """),
        source="r.yaml",
    )
    printed = [json.loads(line) for line in lines(expand(schedule, 3)).splitlines()]
    assert printed and {p["do"] for p in printed} == {"delay", "loss", "rate"}
    for step in printed:
        if step["do"] == "delay":
            assert 10 <= float(step["delay"].removesuffix("ms")) <= 20
        elif step["do"] == "loss":
            assert step["loss"] == "50%"
        else:
            assert 100 <= float(step["rate"].removesuffix("kbit")) <= 200
        assert step["origin"] == "random" and step["line"] == 2


def test_a_plan_line_says_everything_the_runner_does() -> None:
    first = json.loads(lines(expand(SCHEDULE, 7)).splitlines()[0])
    assert first == {"index": 0, "at_ms": 2000, "for_ms": 5000, "do": "delay", "node": "echo", "delay": "100ms",
                     "origin": "steps[0]", "line": 14}  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 7, 2**40])
def test_the_cli_prints_the_plan_and_nothing_else(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    from lab.cli import main

    assert main(["chaos", "plan", str(DEFAULT), "--seed", str(seed)]) == 0
    out = capsys.readouterr().out
    assert out == lines(expand(SCHEDULE, seed))
