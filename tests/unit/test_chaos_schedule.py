"""Fault schedules: the shipped files load; every mistake is one line naming file, line, field and fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lab.chaos.schedule import Schedule, ScheduleError, Step, load, load_text
from lab.model import Impairment

ROOT = Path(__file__).resolve().parents[2]
SCHEDULES = sorted((ROOT / "examples" / "chaos").glob("*.yaml"))


def problems(text: str) -> list[str]:
    """Every problem line the loader reports for ``text`` (read as ``bad.yaml``)."""
    with pytest.raises(ScheduleError) as caught:
        load_text(textwrap.dedent(text), source="bad.yaml")
    return [str(p) for p in caught.value.problems]


def one_problem(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("path", SCHEDULES, ids=lambda p: p.name)
def test_the_shipped_schedules_load(path: Path) -> None:
    schedule = load(path)
    assert schedule.steps or schedule.random is not None
    assert all(step.end_ms <= schedule.duration_ms for step in schedule.steps)


def test_the_issue_example_reads_as_written() -> None:
    schedule = load_text(
        textwrap.dedent("""\
        duration: 40s
        steps:
          - {at: 2s, for: 4s, do: delay, node: echo, delay: 100ms}
          - {at: 8s, for: 4s, do: partition, between: [chat, client]}
        random:
          every: 5s
          for: [1s, 3s]
          do: [delay, loss, kill, pause, partition]
          nodes: [chat, creosote, echo, threaded]
        """),
        source="issue.yaml",
    )
    assert schedule.duration_ms == 40_000
    assert schedule.steps[0] == Step(2000, 4000, "delay", ("echo",), None, Impairment(delay_ms=100),
                                     origin="steps[0]", line=3)  # fmt: skip
    assert schedule.steps[1].nodes == ("chat", "client") and schedule.steps[1].line == 4
    assert schedule.random is not None
    assert schedule.random.every_ms == 5000 and schedule.random.for_ms == (1000, 3000)
    assert schedule.random.nodes == ("chat", "creosote", "echo", "threaded")
    assert schedule.random.line == 5  # the random: key, where a drawn step points


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("duration: 10s\nsteps:\n  - {at: 1s, for: 1s, do: dealy, node: echo}\n",
         "bad.yaml:3: steps[0].do: unknown action 'dealy'; write 'delay' instead"),
        ("duration: 10s\nsteps:\n  - {at: 1s, for: 1s, do: partition, node: echo}\n",
         "bad.yaml:3: steps[0].node: do: partition takes between:, not node:; write between: [A, B]"),
        ("duration: 10s\nsteps:\n  - {at: 1s, for: 1s, do: partition, between: [echo]}\n",
         "bad.yaml:3: steps[0].between: a partition has two different sides"),
        ("duration: 10s\nsteps:\n  - {at: 1s, for: 1s, do: partition, between: [echo, echo]}\n",
         "bad.yaml:3: steps[0].between: a partition has two different sides"),
        ("duration: 10s\nsteps:\n  - {at: 12s, for: 1s, do: kill, node: echo}\n",
         "bad.yaml:3: steps[0].at: 12s is not before the end (10s)"),
        ("duration: 10s\nsteps:\n  - {at: 8s, for: 4s, do: kill, node: echo}\n",
         "bad.yaml:3: steps[0].for: the step ends at 12s, after the schedule (10s); write for: 2s or less"),
        ("duration: 10s\nsteps:\n  - {at: 1s, for: 1s, do: delay, node: echo, delay: 100}\n",
         "bad.yaml:3: steps[0].delay: '100' is not a duration; write a duration like 80ms"),
        ("duration: 10s\nsteps:\n  - {at: 1s, for: 1s, do: delay, node: echo}\n",
         "bad.yaml:3: steps[0]: do: delay needs delay:; add delay: like 100ms"),
        ("duration: 10s\nsteps:\n  - {at: 1s, for: 1s, do: loss, node: echo, loss: 5%, delay: 1ms}\n",
         "bad.yaml:3: steps[0].delay: do: loss takes loss: only; write a step of do: delay"),
        ("duration: 10s\nsteps:\n  - {at: 1s, for: 1s, do: kill, node: echo, loss: 5%}\n",
         "bad.yaml:3: steps[0].loss: do: kill takes no loss:"),
        ("duration: 10s\nsteps:\n  - {at: 1s, for: 1s, do: delay, node: echo, delay: 20s}\n",
         "bad.yaml:3: steps[0].delay: 20000ms is more than 10s"),
        ("duration: 10s\nsteps:\n  - {at: 1s, for: 1s, do: rate, node: echo, rate: 10mbps}\n",
         "bad.yaml:3: steps[0].rate: '10mbps' is not a rate in bits; tc reads mbps as megabytes"),
        ("duration: 10s\nsteps:\n  - {at: 1s, for: 1s, do: kill, node: client}\n",
         "bad.yaml:3: steps[0].node: client is the host the workloads run on; do: kill would stop them"),
        ("duration: 10s\nsteps:\n  - {at: 1s, for: 0s, do: pause, node: echo}\n",
         "bad.yaml:3: steps[0].for: for: 0 undoes do: pause at once"),
        ("duration: 10s\nsteps:\n  - {at: 1s, for: 1s, do: pause, node: Echo}\n",
         "bad.yaml:3: steps[0].node: 'Echo' is not allowed here; write a node's name"),
        ("duration: 10s\nsteps:\n  - {at: 1s, for: 1s, do: kill, node: echo, network: lab}\n",
         "bad.yaml:3: steps[0].network: do: kill acts on the whole node"),
        ("duration: 10s\nstpes: []\n", "bad.yaml:2: stpes: unknown key; write 'steps' instead"),
        ("steps:\n  - {at: 1s, for: 1s, do: kill, node: echo}\n", "bad.yaml:1: (top): 'duration' is missing"),
        ("duration: 10s\n", "bad.yaml:1: (top): nothing to do; add steps:"),
        ("duration: 10s\nrandom: {every: 2s, for: [3s, 1s], do: [kill], nodes: [echo]}\n",
         "bad.yaml:2: random.for: the low end is above the high end"),
        ("duration: 10s\nrandom: {every: 2s, for: 1s, do: [kill], nodes: [echo, client]}\n",
         "bad.yaml:2: random.nodes: client is the host the workloads run on"),
        ("duration: 10s\nrandom: {every: 2s, for: 1s, do: [explode], nodes: [echo]}\n",
         "bad.yaml:2: random.do: unknown action 'explode'"),
        ("duration: 10s\nrandom: {every: 0s, for: 1s, do: [kill], nodes: [echo]}\n",
         "bad.yaml:2: random.every: every: 0 would never stop"),
        ("duration: 10s\nrandom: {every: 2s, for: 1s, do: [loss], nodes: [echo], loss: [5%, 120%]}\n",
         "bad.yaml:2: random.loss: '120%' is not a percentage"),
    ],
)  # fmt: skip
def test_a_mistake_is_one_line_with_file_line_field_and_fix(text: str, expected: str) -> None:
    assert one_problem(text).startswith(expected)


def test_every_mistake_is_reported_in_one_pass_in_file_order() -> None:
    found = problems("""\
        duration: 10s
        steps:
          - {at: 1s, for: 1s, do: dealy, node: echo}
          - {at: 1s, for: 1s, do: kill, node: echo, loss: 5%}
          - {at: 20s, for: 1s, do: pause, node: chat}
        """)
    assert [p.split(":")[1] for p in found] == ["3", "4", "5"], found


def test_overlapping_steps_on_one_node_are_refused_at_the_later_ones_line() -> None:
    found = one_problem("""\
        duration: 20s
        steps:
          - {at: 2s, for: 4s, do: delay, node: echo, delay: 100ms}
          - {at: 5s, for: 2s, do: kill, node: echo}
        """)
    assert found == (
        "bad.yaml:4: steps[1]: overlaps steps[0] (line 3) on echo; start it at 6s or later, or act on another node"
    )


def test_steps_that_touch_or_share_no_node_may_meet() -> None:
    schedule = load_text(
        textwrap.dedent("""\
        duration: 20s
        steps:
          - {at: 2s, for: 4s, do: delay, node: echo, delay: 100ms}
          - {at: 6s, for: 2s, do: kill, node: echo}
          - {at: 2s, for: 4s, do: partition, between: [chat, client]}
          - {at: 3s, for: 4s, do: partition, between: [threaded, client]}
        """),
        source="ok.yaml",
    )
    assert len(schedule.steps) == 4


@pytest.mark.parametrize(
    ("a", "b", "conflict"),
    [
        (Step(0, 1000, "delay", ("echo",)), Step(999, 1000, "kill", ("echo",)), True),
        (Step(0, 1000, "delay", ("echo",)), Step(1000, 1000, "kill", ("echo",)), False),
        (Step(0, 1000, "delay", ("echo",)), Step(500, 1000, "kill", ("chat",)), False),
        (Step(0, 1000, "partition", ("chat", "client")), Step(500, 1000, "partition", ("echo", "client")), False),
        (Step(0, 1000, "partition", ("chat", "client")), Step(500, 1000, "partition", ("client", "chat")), True),
        (Step(0, 1000, "partition", ("chat", "client")), Step(500, 1000, "delay", ("client",)), True),
        (Step(500, 0, "restart", ("chat",)), Step(0, 1000, "pause", ("chat",)), True),
    ],
)  # fmt: skip
def test_conflicts_are_overlaps_in_time_on_a_common_node(a: Step, b: Step, conflict: bool) -> None:
    assert a.conflicts(b) is conflict
    assert b.conflicts(a) is conflict


def test_a_client_of_another_name_is_the_workloads_host() -> None:
    text = "duration: 10s\nclient: clients\nsteps:\n  - {at: 1s, for: 1s, do: pause, node: clients}\n"
    assert one_problem(text).startswith("bad.yaml:4: steps[0].node: clients is the host the workloads run on")
    schedule = load_text(text.replace("pause", "delay, delay: 10ms"), source="ok.yaml")
    assert isinstance(schedule, Schedule) and schedule.client == "clients"


def test_a_missing_file_is_a_problem_at_line_1(tmp_path: Path) -> None:
    with pytest.raises(ScheduleError) as caught:
        load(tmp_path / "nope.yaml")
    assert str(caught.value).startswith(f"{tmp_path / 'nope.yaml'}:1: (file): cannot read it")
