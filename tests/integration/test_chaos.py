"""Fault schedules on the default lab: every checker passes, the faults were felt, and the lab is put back whole.

``examples/chaos/short.yaml`` (12 s) partitions the room from its clients, kills and
pauses servers, delays, drops and disconnects, with all four workloads running. Then
every node must be healthy again and no sidecar of the run left. The same run, stopped
with Ctrl-C half-way through from the command line, must heal the lab just the same.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from common.waiting import wait_until
from lab import engine, model, readiness
from lab.chaos import History, ScheduleError, check
from lab.engine import PROJECT_LABEL
from lab.topology_fixture import TopologyLab

pytestmark = [pytest.mark.docker, pytest.mark.alone, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
SHORT = ROOT / "examples" / "chaos" / "short.yaml"


@pytest.fixture
def default_lab(topology: Callable[..., TopologyLab]) -> TopologyLab:
    return topology("topology/default.yaml")  # one lab for the module: the fixture keeps it


def extras(lab: TopologyLab) -> list[str]:
    """Containers labelled with the lab that Compose does not run: sidecars, markers, the chaos run's own."""
    found = engine.labelled({model.LAB_LABEL: lab.project}) + engine.labelled({model.LAB_LABEL: lab.name})
    return sorted(str(c.name) for c in found if PROJECT_LABEL not in c.labels)


def assert_whole(lab: TopologyLab, history: History) -> None:
    """Every node healthy; one the run paused may still carry the engine's stale mark, if its own check passed."""
    probed = set(history.end["probed"])
    paused = {s["node"] for s in history.steps if s["do"] == "pause"}
    assert probed <= paused, (probed, paused)  # only a pause excuses the engine's verdict
    marked = f"running ({readiness.UNPROBED_SINCE_PAUSED})"
    rows = lab.status()
    states = [(r.node, r.state) for r in rows]
    assert rows and all(s == "running (healthy)" or (n in probed and s == marked) for n, s in states), states
    assert lab.changes() == []
    assert extras(lab) == []  # the chaos run's host and workloads carry the lab's label too


def test_a_short_schedule_with_every_workload_passes_every_checker(default_lab: TopologyLab, tmp_path: Path) -> None:
    with default_lab.faults(SHORT, seed=7, history=tmp_path / "history.jsonl") as history:
        pass
    verdicts = check(history)
    assert [v.checker for v in verdicts] == ["chat", "creosote", "echo", "threaded"]
    for verdict in verdicts:
        assert verdict.ok, verdict
    assert [s["result"] for s in history.steps] == ["ok"] * 8, history.steps
    assert history.end["healthy"] == history.end["nodes"] and history.end["sidecars_left"] == []
    assert_whole(default_lab, history)
    # The faults were felt, and excused only where the checkers allow it:
    marks = {v.checker: {outcome for _, outcome in v.marks} for v in verdicts}
    assert "excused" in marks["creosote"], verdicts[1]  # datagrams sent while the sink was killed
    assert "error" in marks["echo"], verdicts[2]  # exchanges while echo was killed
    assert history.events("creosote", "flushed"), "no snapshot of the file before creosote was killed"
    # What was written line by line is the history itself.
    assert History.read(tmp_path / "history.jsonl").entries == history.entries


def test_ctrl_c_half_way_through_heals_the_lab(default_lab: TopologyLab, tmp_path: Path) -> None:
    saved = tmp_path / "stopped.jsonl"
    command = [sys.executable, "-m", "lab.cli", "chaos", "run", str(SHORT), "-t", default_lab.name, "--seed", "7",
               "--history", str(saved)]  # fmt: skip
    with subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=os.environ.copy()) as process:  # fmt: skip
        assert process.stdout is not None
        seen: list[str] = []

        def applied() -> bool:
            line = process.stdout.readline() if process.stdout else ""
            seen.append(line)
            return "+ kill creosote" in line or process.poll() is not None

        wait_until(applied, timeout=120, what="the kill of creosote to be applied", interval=0)
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=180)
    assert process.returncode == 130, "".join(seen) + out
    stopped = History.read(saved)
    assert stopped.end["aborted"] is True
    assert all(s.get("end") is not None for s in stopped.steps)  # every step begun was undone
    assert len(stopped.steps) < 8  # it stopped early: the later steps never began
    assert_whole(default_lab, stopped)


def test_a_node_the_lab_lacks_is_named_at_its_line_before_anything_starts(default_lab: TopologyLab,
                                                                           tmp_path: Path) -> None:  # fmt: skip
    schedule = tmp_path / "typo.yaml"
    schedule.write_text("duration: 5s\nsteps:\n  - {at: 1s, for: 1s, do: kill, node: ecco}\n")
    with pytest.raises(ScheduleError) as caught, default_lab.faults(schedule, workloads="none"):
        pytest.fail("the block ran")
    assert str(caught.value) == (
        f"{schedule}:3: steps[0].node: no node 'ecco' runs in lab {default_lab.name}; "
        "write one of: chat, creosote, daytime, doctor, echo, threaded"
    )
    assert extras(default_lab) == []
