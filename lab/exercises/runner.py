"""Running an exercise on a real lab: up, each step in its node, every check judged, down (always).

The lab is the exercise's topology, under a name of its own; with a learner's
solution, that program replaces the reference in the solution's node (the same
``code:`` node, so the same hardening). The lab is torn down whatever happens:
a failed step, an error, Ctrl-C.
"""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from docker.models.containers import Container

from common.waiting import wait_until
from lab import backends, capture, engine, model, remap
from lab.api import RunningLab
from lab.backends import Say
from lab.backends.base import quiet
from lab.exercises import checks, packets
from lab.exercises.model import Exercise, Step
from lab.impair.sidecar import SIDECAR_LABEL

STOP_GRACE = 2  # seconds between timeout's TERM and its KILL for a step that will not end


@dataclass
class Outcome:
    """Every step's transcript and every check's verdict, in order."""

    transcripts: list[str] = field(default_factory=list)
    verdicts: list[checks.Verdict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)


def with_program(topology: model.Topology, node: str, program: Path) -> model.Topology:
    """The topology with ``program`` as ``node``'s code (its command's path to the reference pointing at it)."""
    member = topology.member(node)
    if member is None or member.program is None or member.program.code is None:
        raise ValueError(f"{node} is not a code: node of {topology.name}")
    old, new = f"{model.CODE_MOUNT}/{member.program.code.name}", f"{model.CODE_MOUNT}/{program.name}"
    command = None if member.command is None else tuple(word.replace(old, new) for word in member.command)
    replaced = dataclasses.replace(member, command=command, program=dataclasses.replace(member.program, code=program))
    return dataclasses.replace(topology, nodes=tuple(replaced if n.name == node else n for n in topology.nodes))


def staged(solution: Path, files: Path) -> Path:
    """A copy of the learner's file the node's user can read (their own may be private to them).

    Its path is absolute: the Compose file lives in ``files``, and a relative bind source would be read
    from there (``.lab/x/.lab/x/solution/...``), where Docker, finding nothing, makes an empty folder.
    """
    folder = files.resolve() / "solution"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    copy = folder / solution.name
    shutil.copyfile(solution, copy)
    copy.chmod(0o644)
    return copy


def run(exercise: Exercise, *, files: Path, solution: Path | None = None, name: str | None = None,
        labels: Sequence[tuple[str, str]] = (), say: Say = quiet) -> Outcome:  # fmt: skip
    """Bring the exercise's lab up, run its steps, judge them, and take the lab down.

    Without ``solution``: the reference steps, then the solution's steps against the
    reference program. With it: only the solution's steps, against ``solution``.
    """
    topology = exercise.topology
    steps: tuple[Step, ...] = exercise.steps + (exercise.solution.steps if exercise.solution else ())
    program = exercise.solution.reference if exercise.solution else None
    if solution is not None:
        if exercise.solution is None:
            raise ValueError(f"{exercise.name} has no solution contract (see lab exercise show {exercise.name})")
        program = staged(solution, files / (name or topology.name))
        topology = with_program(topology, exercise.solution.node, program)
        steps = exercise.solution.steps
    # Fixed subnets move to free ones: the same exercise may run twice on one engine (two learners, a test).
    lab_name = name or topology.name
    taken = engine.taken_subnets(engine.client())
    mapping = remap.free_subnets(remap.fixed_subnets(topology), taken, start=zlib.crc32(lab_name.encode()))
    topology = remap.relocate(topology, mapping, name=lab_name)
    topology = dataclasses.replace(topology, labels=tuple(labels))
    where = f"{model.CODE_MOUNT}/{program.name}" if program else ""
    lab = RunningLab(topology.project, backends.choose(), topology)
    outcome = Outcome()
    try:
        say(f"starting lab {topology.name} ({len(topology.members)} nodes)")
        lab = RunningLab.up(topology, files=files, say=say)
        for index, step in enumerate(steps, 1):
            say(f"step {index}/{len(steps)}: {step.title}")
            observed = perform(lab, step, where, files)
            verdicts = checks.judge_step(step, observed)
            outcome.verdicts += verdicts
            outcome.transcripts.append(checks.transcript(index, len(steps), step, observed, verdicts))
    finally:
        say(f"stopping lab {topology.name}")
        lab.down(files=files, volumes=True)
    return outcome


def perform(lab: RunningLab, step: Step, program: str, files: Path) -> checks.Observed:
    """Run one step (its command in its node, or read its node's log) and say what it did."""
    if not step.run:
        return checks.Observed(f"(the log of {step.node})", 0, lab.node(step.node).logs() + "\n", 0.0)
    argv = step.argv(program)
    if step.capture is not None:
        return _captured(lab, step, argv, files)
    return _timed(lab, step, argv)


def _timed(lab: RunningLab, step: Step, argv: Sequence[str]) -> checks.Observed:
    # timeout(1) inside the node: a step that never ends (the lesson of some exercises) is stopped there.
    bounded = ("timeout", "-k", str(STOP_GRACE), f"{step.timeout:g}", *argv)
    began = time.monotonic()
    ran = lab.exec(step.node, *bounded)
    seconds = time.monotonic() - began
    stopped = ran.code in (124, 137)  # timeout's own status for "I stopped it", TERM or KILL
    return checks.Observed(shlex.join(argv), ran.code, ran.output, seconds, stopped)


def _captured(lab: RunningLab, step: Step, argv: Sequence[str], files: Path) -> checks.Observed:
    """The command while the step's network is captured; its output, then the packets as a conversation."""
    assert step.capture is not None
    output = files / lab.name / f"{step.capture}-{int(time.time() * 1000)}.pcap"
    result: list[capture.Captured | BaseException] = []

    def capturing() -> None:
        try:
            result.append(lab.capture(step.capture or "", output, duration=step.timeout + 10))
        except BaseException as exc:  # re-raised in the caller's thread
            result.append(exc)

    thread = threading.Thread(target=capturing, name="capture", daemon=True)
    thread.start()
    ready = wait_until(lambda: _listening(lab.project) or (result[0] if result else None), timeout=30,
                       what=f"tcpdump listening on {step.capture}")  # fmt: skip
    if not isinstance(ready, Container):
        raise ready if isinstance(ready, BaseException) else RuntimeError("the capture ended before it began")
    sidecar = ready
    try:
        observed = _timed(lab, step, argv)
    finally:
        sidecar.kill(signal="SIGINT")  # timeout(1) passes it to tcpdump, which flushes the file and ends
        thread.join(timeout=30)
    found = result[0] if result else TimeoutError("the capture did not finish")
    if isinstance(found, BaseException):
        raise found
    names = _addresses(lab)
    conversation = packets.conversation(found.packets, names)
    return dataclasses.replace(observed, output=observed.output + "\ncaptured:\n" + "\n".join(conversation) + "\n")


def _listening(project: str) -> Container | None:
    """The capture sidecar of ``project`` once tcpdump says it listens."""
    for container in engine.labelled({model.LAB_LABEL: project, SIDECAR_LABEL: "capture"}, running_only=True):
        if "listening on" in engine.logs(container):
            return container
    return None


def _addresses(lab: RunningLab) -> dict[str, str]:
    """Each node's addresses by their names, so a capture reads as the lab's hosts talking."""
    names: dict[str, str] = {}
    assert lab.topology is not None
    for member in lab.topology.members:
        for network in member.networks:
            try:
                names[lab.node(member.name).address(network)] = member.name
            except engine.LabError:
                continue
    return names
