"""The one engine API: a lab on an engine, as the ``lab`` command and the pytest plugin both act on it.

``RunningLab.up`` starts a topology through its backend (Compose or Swarm), applies
its impairments and runs its extra commands; every other verb is a method, and a
node is a handle. The CLI and the ``topology`` fixture are thin faces of this
class: what a user does by hand, a test does in code, through the same lines.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from docker.models.containers import Container

from lab import backends, engine, impair, model, reach
from lab.backends import Backend, Say
from lab.backends.base import quiet
from lab.engine import LabError, Ran
from lab.impair import Active

if TYPE_CHECKING:  # imported where used: every lab command starts faster without them
    from lab import capture, chaos


@dataclass
class NodeHandle:
    """One node of a running lab: its addresses, log, and life (restart, kill, pause, cut off)."""

    lab: RunningLab
    name: str

    @property
    def container(self) -> Container:
        """Its container, through the engine of the machine that runs it (the object keeps that engine)."""
        with self.lab.on(self.name):
            found = self.lab.backend.find_container(self.lab.project, self.name)
        found.reload()
        return found

    def address(self, network: str) -> str:
        """Its IPv4 address on ``network`` (the topology's name for it)."""
        docker_name = self.lab.backend.network_ref(self.lab.project, network).docker_name
        endpoint = (self.container.attrs["NetworkSettings"]["Networks"] or {}).get(docker_name)
        if not endpoint or not endpoint.get("IPAddress"):
            raise LabError(f"{self.name} has no address on {network}", "is it disconnected? heal() reconnects it")
        return str(endpoint["IPAddress"])

    def logs(self) -> str:
        """Everything it has printed (its event lines)."""
        return engine.logs(self.container)

    def restart(self) -> None:
        self.container.restart(timeout=2)

    def kill(self) -> None:
        """SIGKILL. Docker counts a kill as a stop by hand: the node stays down until ``start``."""
        self.container.kill()

    def stop(self, *, timeout: int = 2) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; down until ``start``."""
        self.container.stop(timeout=timeout)

    def start(self) -> None:
        """Start it again after ``kill`` or ``stop`` (nothing happens if it runs)."""
        self.container.start()

    def pause(self) -> None:
        self.container.pause()

    def unpause(self) -> None:
        self.container.unpause()

    def disconnect(self, network: str) -> None:
        with self.lab.on(self.name):
            impair.disconnect(self.lab.ref(self.name), self.lab.backend.network_ref(self.lab.project, network))

    def connect(self, network: str) -> None:
        with self.lab.on(self.name):
            impair.reconnect(self.lab.ref(self.name), self.lab.backend.network_ref(self.lab.project, network))


@dataclass
class RunningLab:
    """A lab on this engine (or a Swarm it manages): ``project`` names it, ``backend`` runs it."""

    project: str
    backend: Backend
    topology: model.Topology | None = None
    nodes: dict[str, NodeHandle] = field(default_factory=dict, repr=False)

    @classmethod
    def attach(cls, project: str, *, swarm: bool = False) -> RunningLab:
        """A lab that already runs, by project."""
        return cls(project, backends.choose(project, swarm=swarm))

    @classmethod
    def up(cls, topology: model.Topology, *, files: Path, profiles: Sequence[str] = (), swarm: bool = False,
           port_offset: int = 0, say: Say = quiet) -> RunningLab:  # fmt: skip
        """Start ``topology`` and wait for every node's probe; then its impairments and extra commands."""
        lab = cls(topology.project, backends.choose(swarm=swarm), topology)
        members = lab.backend.up(topology, profiles=profiles, files=files, say=say, port_offset=port_offset)
        for member in members:
            links = [(None, member.impair)] + [(a.network, a.impair) for a in member.attachments]
            for network, spec in links:
                if spec is not None:
                    ref = lab.ref(member.name, network=network)
                    used = impair.apply(ref, spec)
                    where = f" on {network} ({ref.interface})" if network else ""
                    say(f"impairing {member.name}{where}: {spec.describe()} ({used})")
        for member in members:
            for argv in member.extra:
                say(f"{member.name}: {' '.join(argv)}")
                ran = lab.exec(member.name, *argv)
                for line in ran.output.rstrip().splitlines():
                    say(f"  {line}")
                if ran.code != 0:
                    raise LabError(f"{member.name}: {argv[0]} exited {ran.code}", "see its output above")
        return lab

    @property
    def name(self) -> str:
        return model.lab_name(self.project)

    def down(self, *, files: Path, volumes: bool = True, say: Say = quiet) -> list[str]:
        """Stop and remove the lab and everything labelled with it; what was removed."""
        return self.backend.down(self.project, topology=self.topology, files=files, volumes=volumes, say=say)

    def status(self, *, probe: bool = True) -> list[backends.Row]:
        """One row per node; with ``probe``, each running node's published TCP ports connected to from here.

        Docker's health check runs inside the container and cannot see a host port that refuses
        (``lab.reach``): each row's ``probes`` say what this machine saw, all probed at once.
        """
        order = [m.name for m in self.topology.members] if self.topology else []
        rows = self.backend.status(self.project, order=order)
        if not probe or not any(r.published for r in rows):
            return rows
        here = engine.on_this_machine()
        machine = engine.machine_name() if here and any(r.machine for r in rows) else ""

        def elsewhere(row: backends.Row) -> str | None:
            """Why a row's ports cannot be reached on this machine's loopback, or None."""
            if not here:
                return "the engine runs on another machine"
            return f"published on {row.machine}" if row.machine and row.machine != machine else None

        why = [elsewhere(row) if row.running else "" for row in rows]  # "": not running, nothing to probe
        answers = iter(reach.probe_all([port for row, w in zip(rows, why, strict=True) if w is None
                                        for port in row.published]))  # fmt: skip

        def probes(row: backends.Row, why: str | None) -> tuple[reach.Reach, ...]:
            if why is None:
                return tuple(next(answers) for _port in row.published)
            return tuple(reach.not_probed(port, why) for port in row.published) if why else ()

        return [dataclasses.replace(row, probes=probes(row, w)) for row, w in zip(rows, why, strict=True)]

    def on(self, node: str) -> contextlib.AbstractContextManager[None]:
        """A block that talks to the engine running ``node`` (another machine's, for a Swarm task there)."""
        return self.backend.reach(self.project, node)

    def ref(self, node: str, *, network: str | None = None) -> model.NodeRef:
        return self.backend.node_ref(self.project, node, network=network)

    def node(self, name: str) -> NodeHandle:
        """A handle on one node (checked to exist now)."""
        with self.on(name):
            self.backend.find_container(self.project, name)
        return self.nodes.setdefault(name, NodeHandle(self, name))

    # ----------------------------------------------------------------------- commands

    def exec(self, node: str, *argv: str, user: str | None = None) -> Ran:
        """Run a command inside ``node`` (its own container); exit code and output."""
        with self.on(node):
            return self.backend.run_in(self.project, node, argv, user=user)

    def run(self, node: str, *argv: str, timeout: float = engine.CLIENT_TIMEOUT) -> Ran:
        """Run a one-shot command of the node image in ``node``'s network namespace: its addresses, routes and names.

        The node's own image needs none of the tools: a client container joins its namespace.
        """
        with self.on(node):
            container = self.backend.find_container(self.project, node)
            return engine.run_client(argv, labels={model.LAB_LABEL: self.name}, beside=container, timeout=timeout)

    def run_on(self, network: str, *argv: str, timeout: float = engine.CLIENT_TIMEOUT) -> Ran:
        """Run a one-shot command of the node image as a host of its own on ``network`` (the topology's name)."""
        docker_name = self.backend.network_ref(self.project, network).docker_name
        return engine.run_client(argv, labels={model.LAB_LABEL: self.name}, network=docker_name, timeout=timeout)

    # ----------------------------------------------------------------------- faults

    def impair(self, node: str, *, network: str | None = None, delay: str | None = None, jitter: str | None = None,
               loss: str | None = None, rate: str | None = None) -> str:  # fmt: skip
        """Delay, jitter, drop or rate-limit ``node``'s egress (``network``: one link); the backend used."""
        spec = model.Impairment.parse(delay=delay, jitter=jitter, loss=loss, rate=rate)
        with self.on(node):
            return impair.apply(self.ref(node, network=network), spec)

    def clear(self, node: str, *, network: str | None = None) -> None:
        with self.on(node):
            impair.clear(self.ref(node, network=network))

    def partition(self, a: str, b: str) -> None:
        """Drop all traffic between two nodes, both ways, until ``heal`` (both on one machine)."""
        where = {self.backend.machine_of(self.project, a), self.backend.machine_of(self.project, b)}
        if len(where) > 1:
            raise LabError(f"{a} and {b} run on different machines ({', '.join(sorted(map(str, where)))})",
                           "partition their machines instead: lab cluster partition HOST HOST")  # fmt: skip
        with self.on(a):
            impair.partition(self.ref(a), self.ref(b))

    def changes(self) -> list[Active]:
        """The impairments, partitions and disconnections in force, each saying whether its sidecar still runs."""
        return impair.active(self.project)

    def unpartition(self, a: str, b: str) -> bool:
        """Undo the partition between two nodes alone; True if there was one."""
        return impair.unpartition(self.ref(a), self.ref(b))

    def heal(self) -> int:
        """Undo every partition and disconnection; how many."""
        return impair.heal(self.project)

    def capture(self, target: str, output: Path, *, duration: float | None = None, count: int | None = None,
                expression: Sequence[str] = ()) -> capture.Captured:  # fmt: skip
        """Capture a node's or a whole network's packets into ``output`` (pcap): the file, its packets, a summary."""
        from lab import capture

        if target in self.backend.networks(self.project):
            where = self.backend.network_ref(self.project, target)
            return capture.captured(capture.capture(where, output, duration=duration, count=count,
                                                    expression=expression))  # fmt: skip
        with self.on(target):
            return capture.captured(capture.capture(self.ref(target), output, duration=duration, count=count,
                                                    expression=expression))  # fmt: skip

    @contextlib.contextmanager
    def faults(self, schedule: str | Path | chaos.Schedule, *, seed: int = 0,
               workloads: str | Sequence[str | chaos.Workload] | None = None, history: Path | None = None,
               say: Say = quiet) -> Iterator[chaos.History]:  # fmt: skip
        """Run a fault schedule (a file, or a loaded ``Schedule``) with ``seed`` while the block runs.

        ``workloads``: names like ``"chat"`` or ``"echo=my-echo:7007"`` (or one comma-separated
        string); ``None`` runs every built-in workload whose server is a node of the lab. The
        block runs once the workloads are ready and the clock has started; leaving it waits for
        the schedule to end. On leaving, by any way (an exception, Ctrl-C), every step still in
        force is undone, the workloads are collected and the nodes checked healthy; the history
        (``history``: also written there, line by line) then holds everything, for
        ``lab.chaos.check`` and the ``check_*`` functions. ``ChaosError`` if the lab could not be
        put back as it was.
        """
        from lab import chaos

        plan = schedule if isinstance(schedule, chaos.Schedule) else chaos.load(schedule)
        if workloads is None:
            chosen = chaos.workloads.defaults(self)
        elif isinstance(workloads, str):
            chosen = chaos.workloads.parse_list(workloads)
        else:
            chosen = [w if isinstance(w, chaos.Workload) else chaos.Workload.parse(w) for w in workloads]
        runner = chaos.Runner(self, plan, seed=seed, workloads=chosen, history=history, say=say)
        runner.start()
        aborted = True
        try:
            yield runner.history
            runner.wait()
            aborted = False
        finally:
            runner.finish(aborted=aborted)
