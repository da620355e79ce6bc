"""Sidecars: node-image containers that share a node's network namespace and hold the capability for it.

Each is started with ``--network container:<node>`` and only the capabilities its
job needs (``NET_ADMIN`` for rules and qdiscs), so the node itself keeps
``cap_drop: [ALL]``. Sidecars carry ``testbed.lab=<project>`` and
``testbed.sidecar=<role>`` plus a label of their role, which is how ``clear``,
``heal``, ``capture`` and a lab's teardown find them. Commands run in them as
argv lists through ``tools.batch``: one ``docker exec`` a batch, never a shell.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Sequence

import docker.errors
from docker.models.containers import Container

from lab import engine
from lab.engine import LabError
from lab.impair import plan
from lab.model import LAB_LABEL

SIDECAR_LABEL = "testbed.sidecar"  # impair | partition | disconnect | capture | probe | sweep
SLEEPER: plan.Command = ("sleep", "infinity")
STOP_TIMEOUT = 5  # seconds: the delay line accepts what it holds and unbinds its queue on SIGTERM

Teardown = Callable[[plan.Listed], list[plan.Command]]


class ImpairError(LabError):
    """An impairment, partition or capture could not be made or undone (the message says why)."""


def find(labels: dict[str, str]) -> list[Container]:
    """Our sidecars (running or not) carrying every ``label: value`` given."""
    return engine.labelled(labels)


def start(
    *,
    project: str,
    role: str,
    command: Sequence[str],
    network_mode: str,
    caps: Sequence[str] = ("NET_ADMIN",),
    name: str | None = None,
    labels: dict[str, str] | None = None,
) -> Container:
    """Start a sidecar from the node image; root inside, but with only ``caps``."""
    client = engine.client()
    if name is not None:
        # A sidecar of ours with this name is a leftover (its node was restarted, say): replace it.
        for stale in client.containers.list(
            all=True, filters={"name": f"^/{re.escape(name)}$", "label": SIDECAR_LABEL}
        ):
            stale.remove(force=True)
    image = engine.node_image()
    try:
        container: Container = client.containers.run(
            image,
            list(command),
            detach=True,
            name=name,
            network_mode=network_mode,
            user="0",
            cap_drop=["ALL"],
            cap_add=list(caps),
            security_opt=["no-new-privileges:true"],
            init=True,  # a signal reaches our command (PID 1 would ignore SIGTERM)
            mem_limit="96m",
            pids_limit=64,
            labels={LAB_LABEL: project, SIDECAR_LABEL: role, **(labels or {})},
        )
    except docker.errors.ImageNotFound:
        raise ImpairError(f"image {image} is missing", "build it with scripts/setup") from None
    except docker.errors.APIError as exc:
        raise ImpairError(f"cannot start the {role} sidecar: {exc.explanation or exc}") from exc
    return container


def _batch(container: Container, mode: str, commands: Sequence[plan.Command]) -> engine.Ran:
    return engine.run_in(container, ["python3", "-m", "tools.batch", mode, json.dumps(commands)], user="0")


def run(container: Container, commands: Sequence[plan.Command]) -> None:
    """Run ``commands`` in order in a sidecar, as root; ``ImpairError`` naming the first that fails."""
    if not commands:
        return
    ran = _batch(container, "run", commands)
    if ran.code != 0:
        raise ImpairError(f"{container.name}: {(ran.err or ran.out).strip() or f'exit {ran.code}'}")


def listed(container: Container) -> plan.Listed:
    """The rules and qdiscs in the sidecar's namespace now."""
    ran = _batch(container, "show", plan.listing_commands())
    try:
        results = json.loads(ran.out)
        return plan.parse_listing([(int(r["code"]), str(r["out"])) for r in results])
    except (ValueError, KeyError, TypeError) as exc:
        raise ImpairError(f"{container.name}: cannot list its rules ({exc}): {ran.output.strip()}") from None


def undo(container: Container, teardown: Teardown) -> None:
    """List what the namespace holds and run the commands ``teardown`` derives from it."""
    run(container, teardown(listed(container)))


def remove(container: Container, teardown: Teardown | None) -> bool:
    """Undo a sidecar's work (if it still runs) and remove it; True if the teardown ran and succeeded."""
    cleaned = False
    try:
        container.reload()
        if teardown is not None and container.status == "running":
            with contextlib.suppress(LabError, docker.errors.APIError):
                undo(container, teardown)
                cleaned = True
            container.stop(timeout=STOP_TIMEOUT)
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    return cleaned


def one_shot(*, project: str, network_mode: str, command: Sequence[str], role: str) -> engine.Ran:
    """Run a short command in a throwaway sidecar; its exit code and output."""
    container = start(project=project, role=role, command=command, network_mode=network_mode)
    try:
        status = container.wait(timeout=60)
        return engine.Ran(int(status.get("StatusCode", -1)), engine.logs(container), "")
    finally:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)


def sweep(*, project: str, node: Container, teardown: Teardown) -> None:
    """Undo rules in a node's namespace from a throwaway sidecar, when no sidecar of ours is left to do it."""
    container = start(project=project, role="sweep", command=SLEEPER, network_mode=f"container:{node.id}")
    try:
        undo(container, teardown)
    finally:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
