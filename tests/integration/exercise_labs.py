"""Shared by the exercise modules: one exercise run on a lab of its own, named and labelled for this test run."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from lab.exercises import loader, runner
from lab.testing import RUN_ID, RUN_LABELS

EXERCISES = loader.EXERCISES
# The exercises' reference runs, in two modules of about 50 s each, so that the suite's workers
# (--dist loadfile: a module per worker) share them. Every exercise is in exactly one (a test says so).
RUN_GROUPS = {
    "test_exercises_run": (
        "creosote", "timeouts", "udp-no-server", "partial-reads", "client-aborts", "handshake", "unix-sockets",
    ),
    "test_exercises_run_servers": (
        "select-loop", "socketserver", "two-clients", "sendall", "listen-backlog", "address-in-use",
        "message-boundaries", "names", "port-and-address",
    ),
}  # fmt: skip
_serial = itertools.count(1)


def run(name: str, files: Path, *, solution: Path | None = None) -> runner.Outcome:
    """Run exercise ``name`` (its reference steps, or ``solution`` in place of the reference) and tear it down."""
    prefix = os.environ.get("TESTBED_LAB_PREFIX", "ex")[:14]  # a worktree's own prefix keeps parallel runs apart
    lab_name = f"{prefix}-{RUN_ID[:6]}-{next(_serial)}"
    exercise = loader.load(loader.find(name))
    return runner.run(exercise, files=files, solution=solution, name=lab_name, labels=tuple(RUN_LABELS.items()))


def transcript(outcome: runner.Outcome) -> str:
    return "\n\n".join(outcome.transcripts)
