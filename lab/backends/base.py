"""What every backend is: one interface for a lab's life on an engine, and what they share.

Kathará's ``IManager`` is the shape: the command line and the pytest plugin call a
``Backend`` and never ask which one it is. A backend knows the model and Docker,
nothing of the command line. Compose projects and Swarm stacks implement it now;
a cluster of engines is the next.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
from docker.models.containers import Container

from common.waiting import wait_until
from lab import engine, model, reach
from lab.engine import PROJECT_LABEL, STACK_LABEL, LabError
from lab.swarm import NODE_LABEL
from protocols import registry

Say = Callable[[str], None]


def quiet(_line: str) -> None:
    """A ``Say`` that says nothing."""


@dataclass(frozen=True)
class Row:
    """One line of ``lab ps`` or of the summary after ``lab up``."""

    node: str
    role: str
    state: str
    addresses: str
    published: tuple[reach.Published, ...] = ()
    machine: str = ""  # the Swarm node running it; "" for Compose
    restart: str = ""  # the command that restarts it (and so re-creates Docker's port proxy)
    container: str = ""  # its container's name (Compose; a Swarm task's is on its machine)
    probes: tuple[reach.Reach, ...] = ()  # how its ports answered from this machine (``RunningLab.status``)

    @property
    def ports(self) -> str:
        return " ".join(map(str, self.published))

    @property
    def running(self) -> bool:
        return self.state.startswith("running")


def table(rows: Sequence[Row]) -> str:
    """Rows as an aligned text table with a header; a MACHINE column when the rows are Swarm tasks, and a
    FROM THIS HOST column when their ports were probed."""
    swarm_rows = any(r.machine for r in rows)
    probed = any(r.probes for r in rows)
    ports = "PORTS (every interface)" if swarm_rows else "PORTS (127.0.0.1 only)"

    def line(r: Row) -> tuple[str, ...]:
        return (r.node, r.role, r.state, r.addresses, r.ports, *([reach.summary(r.probes)] if probed else []),
                *([r.machine] if swarm_rows else []))  # fmt: skip

    header = ("NODE", "ROLE", "STATE", "ADDRESSES", ports, *(["FROM THIS HOST"] if probed else []),
              *(["MACHINE"] if swarm_rows else []))  # fmt: skip
    cells = [header, *map(line, rows)]
    columns = len(cells[0])
    widths = [max(len(c[i]) for c in cells) for i in range(columns)]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(columns)).rstrip() for c in cells)


def state_dir(root: Path | None = None) -> Path:
    """Where generated Compose and stack files go: ``root``, ``$LAB_STATE_DIR``, or ``.lab`` here."""
    return root or Path(os.environ.get("LAB_STATE_DIR", ".lab"))


def run_docker(argv: Sequence[str], *, hint: str, echo_stderr: bool = False) -> None:
    """Run one ``docker ...`` command (Compose, stack); on failure raise with the tail of its output."""
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise LabError("no docker command", "install Docker with scripts/setup") from None
    if echo_stderr and result.stderr.strip():
        for line in result.stderr.strip().splitlines():
            print(f"    {line.strip()}", file=sys.stderr)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        what = f"{' '.join(argv[1:3])} failed: {' / '.join(t.strip() for t in tail)}"
        raise LabError(what, f"{hint}; the command was: {' '.join(argv)}")


def inventory(filters: dict[str, Any], *, volumes: bool) -> list[str]:
    """What matches ``filters`` on the engine, as ``container X``, ``network Y``, ``volume Z``."""
    client = engine.client()
    items = [f"container {c.name}" for c in engine.listed(filters)]
    items += [f"network {n.name}" for n in client.networks.list(filters=filters)]
    items += [f"volume {v.name}" for v in client.volumes.list(filters=filters)] if volumes else []
    return items


def remove_labelled(filters: dict[str, Any], *, volumes: bool, networks: bool = True) -> list[str]:
    """Remove what matches ``filters``: containers first (sidecars sharing a namespace before their node)."""
    client = engine.client()
    found = sorted(engine.listed(filters), key=lambda c: not c.network_mode.startswith("container:"))
    removed = [f"container {container.name}" for container in found if container.remove()]
    for network in client.networks.list(filters=filters) if networks else []:
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()
            removed.append(f"network {network.name}")
    for volume in client.volumes.list(filters=filters) if volumes else []:
        with contextlib.suppress(docker.errors.NotFound):
            volume.remove(force=True)
            removed.append(f"volume {volume.name}")
    return removed


def remove_sidecars(project: str) -> list[str]:
    """Containers labelled with the lab (by name or project) that neither Compose nor Swarm started."""
    removed = []
    for value in sorted({model.lab_name(project), project}):
        for container in engine.listed_by_label({model.LAB_LABEL: value}):
            if PROJECT_LABEL not in container.labels and STACK_LABEL not in container.labels and container.remove():
                removed.append(f"container {container.name}")
    return removed


class Backend(ABC):
    """A lab's life on an engine: start, stop, look, and find a node's container."""

    @abstractmethod
    def up(self, topology: model.Topology, *, profiles: Sequence[str], files: Path, say: Say,
           port_offset: int = 0) -> tuple[model.Node, ...]:  # fmt: skip
        """Start the lab (its members in ``profiles``) and wait until every node is healthy; the members started."""

    @abstractmethod
    def render(self, topology: model.Topology, *, output: Path | None, profiles: Sequence[str] = (),
               port_offset: int = 0) -> str:  # fmt: skip
        """The file this backend deploys the lab from, as text (``output``: where it will be written, if anywhere)."""

    @abstractmethod
    def down(self, project: str, *, topology: model.Topology | None, files: Path, volumes: bool, say: Say) -> list[str]:
        """Stop and remove a lab (its volumes too with ``volumes``); what was removed."""

    @abstractmethod
    def deployed(self, project: str) -> bool:
        """Whether this backend has the lab on the engine."""

    @abstractmethod
    def status(self, project: str, *, order: Sequence[str] = ()) -> list[Row]:
        """One row per node: topology order first (when known), then by name."""

    @abstractmethod
    def kept_volumes(self, project: str) -> list[str]:
        """Volumes a ``down`` without ``volumes`` left on purpose (the creosote logs)."""

    @abstractmethod
    def node_containers(self, project: str, node: str | None = None) -> list[Container]:
        """The containers of a lab (of one node) that this engine runs."""

    @abstractmethod
    def network_names(self, project: str) -> list[str]:
        """Docker's names of the lab's networks."""

    @abstractmethod
    def where(self, project: str) -> str:
        """Where the lab runs, for messages: ``(project testbed-x)``, ``on Swarm (stack testbed-x)``."""

    # ----------------------------------------------------------------------- shared on top of the above

    def reach(self, project: str, node: str) -> contextlib.AbstractContextManager[None]:
        """A block in which ``engine.client()`` is the engine that runs ``node`` (here: always this one)."""
        return contextlib.nullcontext()

    def machine_of(self, project: str, node: str) -> str | None:
        """The machine running ``node``'s container, when the lab spans several; None for one engine."""
        return None

    def find_container(self, project: str, node: str) -> Container:
        """The container of one node of a lab, or a ``LabError`` listing the nodes there are."""
        found = self.node_containers(project, node)
        if found:
            return found[0]
        names = sorted({node_name(c) for c in self.node_containers(project)})
        hint = f"nodes: {', '.join(names)}" if names else f"is lab {model.lab_name(project)!r} up? try lab ps"
        raise LabError(f"no node {node!r} in lab {model.lab_name(project)!r}", hint)

    def networks(self, project: str) -> list[str]:
        """The topology names of the lab's networks."""
        return sorted(name.removeprefix(f"{project}_") for name in self.network_names(project))

    def network_ref(self, project: str, network: str) -> model.NetworkRef:
        """A ``NetworkRef``; Docker names a lab network ``<project>_<network>``."""
        if network not in self.networks(project):
            raise LabError(f"no network {network!r} in lab {model.lab_name(project)!r}", "see lab ps")
        return model.NetworkRef(project=project, network=network, docker_name=f"{project}_{network}")

    def node_ref(self, project: str, node: str, *, network: str | None = None) -> model.NodeRef:
        """A ``NodeRef`` for the runtime helpers; with ``network``, narrowed to that network's interface."""
        container = self.find_container(project, node)
        interface = None if network is None else interface_on(container, self.network_ref(project, network))
        return model.NodeRef(project=project, node=node, container=str(container.name), interface=interface)

    def run_in(self, project: str, node: str, argv: Sequence[str], *, user: str | None = None) -> engine.Ran:
        """Run a command in a node without a terminal."""
        return engine.run_in(self.find_container(project, node), argv, user=user)


PROBE_TIMEOUT = 60.0  # seconds for a program node's protocol probe to pass after its container started


def probe_programs(backend: Backend, project: str, members: Sequence[model.Node], *, say: Say) -> None:
    """Wait until every image node with a protocol probe answers it, probed from a sidecar in its namespace.

    Docker's health check runs inside the container, and an arbitrary image has none of
    our tools; a sidecar of the node image sharing the node's network namespace speaks
    the protocol to 127.0.0.1 whatever the image holds.
    """
    from lab.impair import sidecar  # the runtime helpers sit beside the backends, not below them

    for node in members:
        program = node.program
        if program is None or program.kind != "image" or program.probe is None or program.probe.protocol is None:
            continue
        container = backend.find_container(project, node.name)
        argv = registry.probe_command(program.probe.protocol, "127.0.0.1", program.ports)
        say(f"probing {node.name} ({program.probe.protocol} on {', '.join(map(str, program.ports))})")
        last = ""

        def answered(container: Container = container, argv: Sequence[str] = argv) -> bool:
            nonlocal last
            ran = sidecar.one_shot(project=project, role="probe", network_mode=f"container:{container.id}",
                                   command=argv)  # fmt: skip
            last = ran.output.strip()
            return ran.code == 0

        try:
            wait_until(answered, timeout=PROBE_TIMEOUT, interval=0.5, what=f"{node.name} to answer its probe")
        except TimeoutError as exc:
            raise LabError(f"{exc}; last probe: {last}", f"lab logs -t {model.lab_name(project)} {node.name}") from None


def node_name(container: Container) -> str:
    """The topology's name of the node a container runs (Compose service or Swarm task label)."""
    return str(container.labels.get(engine.SERVICE_LABEL) or container.labels.get(NODE_LABEL) or container.name)


def interface_on(container: Container, network: model.NetworkRef) -> str:
    """The interface name (``eth1``...) a container has on a network: matched by its address there."""
    container.reload()
    settings = container.attrs["NetworkSettings"]["Networks"].get(network.docker_name)
    if not settings:
        raise LabError(f"{container.name} is not on network {network.network!r}", "see lab ps")
    ran = engine.run_in(container, ["ip", "-o", "-4", "addr", "show"])
    for line in ran.out.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3].split("/")[0] == settings["IPAddress"]:
            return fields[1].split("@")[0]
    raise LabError(
        f"no interface of {container.name} has {settings['IPAddress']} (ip addr exit {ran.code})", "is it up?"
    )
