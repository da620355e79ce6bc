"""An exercise of the course as data: the steps run in a lab's nodes and the observations they must show.

An exercise folder holds ``README.md`` (the question and why the answer is what it
is), ``exercise.yaml`` (read by ``lab.exercises.loader`` into the classes below),
a topology, and the programs its nodes run. Nothing here touches a socket or Docker:
``lab.exercises.checks`` judges what a step printed, ``lab.exercises.runner`` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab import model

KINDS = ("output", "absent", "exit", "within", "after")  # what an expectation looks at
PROGRAM_PLACEHOLDER = "{program}"  # in a solution step: where the program under test is, inside its node


@dataclass(frozen=True)
class Expect:
    """One observation a step must show: the claim in words, and what a failure means.

    ``kind`` picks what is looked at: ``output`` (a regular expression found in what the
    step printed), ``absent`` (one not found), ``exit`` (its exit status), ``within``
    (it ended by itself within so many seconds), ``after`` (it took at least so many).
    """

    kind: str
    value: str | int | float
    claim: str  # what passing shows, like "a connected socket is told: ConnectionRefusedError"
    mistake: str = ""  # what failing means, like "no timeout on an unconnected socket: it waits forever"


@dataclass(frozen=True)
class Step:
    """A command run in a node (or a node's log read, or a network captured while the command runs)."""

    title: str
    node: str
    run: tuple[str, ...] = ()  # empty: read the node's log instead
    timeout: float = 30.0  # seconds before the command is stopped (and counted as not ending by itself)
    capture: str | None = None  # a network of the lab captured while the command runs
    expect: tuple[Expect, ...] = ()
    why: str = ""  # the explanation printed beside what was observed

    def argv(self, program: str) -> tuple[str, ...]:
        """The command with ``{program}`` replaced by the path of the program under test in its node."""
        return tuple(word.replace(PROGRAM_PLACEHOLDER, program) for word in self.run)


@dataclass(frozen=True)
class Solution:
    """What a learner writes: a client or a server, run in ``node`` in place of the reference, and its checks."""

    node: str
    role: str  # "client" or "server"
    usage: str  # how it is run, like "python3 FILE HOST PORT"
    contract: str  # what it must do, in words
    reference: Path  # the reference program (absolute), the node's code: in the topology
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Exercise:
    """One exercise: its folder, one-line summary, topology and steps, and a solution contract if it has one."""

    name: str
    folder: Path
    summary: str
    topology: model.Topology
    steps: tuple[Step, ...]
    solution: Solution | None = None

    @property
    def readme(self) -> Path:
        return self.folder / "README.md"
