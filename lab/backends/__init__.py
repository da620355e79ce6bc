"""Where a lab lives: a Compose project on this engine, or a Swarm stack across machines.

``choose`` picks the backend for a lab, so that a verb is one handler whatever runs
the lab; ``running_labs`` and ``wipe`` look across both.
"""

from __future__ import annotations

from lab import engine, model
from lab.backends.base import Backend, Row, Say, quiet, remove_labelled, state_dir, table
from lab.backends.compose_project import ComposeProject
from lab.backends.swarm_stack import SwarmStack, swarm_role
from lab.engine import PROJECT_LABEL, STACK_LABEL

__all__ = ["Backend", "ComposeProject", "Row", "Say", "SwarmStack", "choose", "running_labs", "state_dir", "table",
           "wipe"]  # fmt: skip


def choose(project: str | None = None, *, swarm: bool = False) -> Backend:
    """Swarm when asked for, or when ``project`` runs as a stack and not as a Compose project; else Compose."""
    if swarm:
        return SwarmStack()
    compose = ComposeProject()
    if project is not None and not compose.deployed(project) and SwarmStack().deployed(project):
        return SwarmStack()
    return compose


def running_labs() -> dict[str, str]:
    """Project (or stack) -> lab name, for every lab with a container on this engine (running or not)."""
    labs: dict[str, str] = {}
    for label in (PROJECT_LABEL, STACK_LABEL):
        for container in engine.listed_by_label([model.LAB_LABEL, label]):
            labs[container.labels[label]] = container.labels[model.LAB_LABEL]
    return labs


def wipe(lab: str | None, *, say: Say = quiet) -> list[str]:
    """Remove every Swarm stack, container, network and volume labelled ``testbed.lab`` (or ``testbed.lab=<lab>``).

    Stacks go first, through Swarm: a task container removed behind its back is replaced at once.
    """
    label = model.LAB_LABEL if lab is None else f"{model.LAB_LABEL}={lab}"
    removed = []
    if swarm_role() == "manager":
        services = engine.client().services.list(filters={"label": label})
        for stack in sorted({s.attrs["Spec"]["Labels"].get(STACK_LABEL) for s in services} - {None}):
            removed += SwarmStack().down(stack, topology=None, files=state_dir(), volumes=True, say=say)
    gone = remove_labelled({"label": [label]}, volumes=True)
    for item in gone:
        say(f"removed {item}")
    return removed + gone
