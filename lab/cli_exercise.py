"""``lab exercise list|show|run|check``: the course's exercises as labs, over ``lab.exercises``.

``run`` brings an exercise's lab up, runs the reference steps, prints what was seen
beside why, and takes the lab down. ``check`` runs a learner's program in place of
the reference and exits 0 when every check passed, 1 when one failed (2: usage).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from lab import backends
from lab.cli import indented, say
from lab.cli_table import UsageError
from lab.exercises import checks, loader, runner
from lab.exercises.model import Exercise


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # `kill PID` takes the lab down too, as Ctrl-C does


def cmd_list(args: argparse.Namespace) -> int:
    found = loader.names()
    width = max((len(n) for n in found), default=0)
    for name in found:
        print(f"{name:<{width}}  {loader.load(loader.find(name)).summary}")
    return 0


def contract(exercise: Exercise) -> str:
    """What ``check`` runs and checks, in words."""
    solution = exercise.solution
    if solution is None:
        return f"{exercise.name} has no solution to check: lab exercise run {exercise.name} shows it."
    lines = [
        f"Your solution: a {solution.role}, run as: {solution.usage}",
        f"  {solution.contract}",
        f"  It runs in node {solution.node} in place of the reference ({solution.reference.name}), as the lab's",
        "  user, with no capabilities and a read-only root. What is checked:",
    ]
    for step in solution.steps:
        lines.append(f"  - {step.title}: {' '.join(step.run) or f'the log of {step.node}'} (on {step.node})")
        lines += [f"      {expect.claim}" for expect in step.expect]
    lines.append(f"Check yours: lab exercise check {exercise.name} --solution FILE")
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace) -> int:
    exercise = loader.load(loader.find(args.name))
    print(exercise.readme.read_text(encoding="utf-8").rstrip())
    print()
    print(contract(exercise))
    return 0


def _report(outcome: runner.Outcome) -> None:
    for text in outcome.transcripts:
        print(text)
        print()


def cmd_run(args: argparse.Namespace) -> int:
    exercise = loader.load(loader.find(args.name))
    return _run(args, exercise, None)


def cmd_check(args: argparse.Namespace) -> int:
    exercise = loader.load(loader.find(args.name))
    if exercise.solution is None:
        raise UsageError(f"{exercise.name} has no solution contract", "lab exercise list: udp-no-server, ... have one")
    if not args.solution.is_file():
        raise UsageError(f"no file {args.solution}", f"give your program: {exercise.solution.usage}")
    return _run(args, exercise, args.solution.resolve())


def _run(args: argparse.Namespace, exercise: Exercise, solution: Path | None) -> int:
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupted)
    what = f"your {solution.name}" if solution else "the reference steps"
    say(f"exercise {exercise.name}: {exercise.summary}")
    say(f"running {what}")
    files = backends.state_dir(args.state_dir)
    outcome = runner.run(exercise, files=files, solution=solution, name=args.name_lab, say=indented)
    print()
    _report(outcome)
    verdict = "PASSED" if outcome.passed else "FAILED"
    say(f"{exercise.name}: {verdict}: {checks.tally(outcome.verdicts)} ({time.monotonic() - started:.1f} s)")
    if not outcome.passed and solution is None:
        print("the reference steps did not show what this exercise expects: look at the transcript above",
              file=sys.stderr)  # fmt: skip
    return 0 if outcome.passed else 1


VERBS = {"list": cmd_list, "show": cmd_show, "run": cmd_run, "check": cmd_check}


def cmd_exercise(args: argparse.Namespace) -> int:
    return VERBS[args.exercise_verb](args)
