"""The ``topology`` fixture: a whole topology file as a lab for a test, through the same API as ``lab up``.

    def test_daytime_across_the_router(topology):
        topo = topology("topology/two-lans.yaml")
        ran = topo.run("client", "python3", "-m", "clients.daytime", "--host", "daytime")
        assert ran.exit_code == 0

Each lab gets a name of its own and the test run's labels (so a crashed run's labs are
swept by the next), free subnets with every host at its own offset (``topo.address``
gives the real one), and free host ports (``topo.host_port``): it runs beside
``lab up`` of the same file and beside another test run. It is torn down at the end
of its scope: the module by default, ``scope="function"`` or ``"session"`` otherwise;
labs of the same file and profiles share one lab within a scope.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import itertools
import socket
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

from lab import capture, engine, model, remap
from lab.api import RunningLab
from lab.loader import load

SCOPES = ("function", "module", "session")
_serial = itertools.count(1)


@dataclass
class TopologyLab(RunningLab):
    """A running lab made from a topology file for a test: ``RunningLab``'s verbs, plus where things really are."""

    moved: dict[ipaddress.IPv4Network, ipaddress.IPv4Network] = field(default_factory=dict)
    files: Path = Path()

    def capture(self, target: str, output: Path | None = None, *, duration: float | None = None,
                count: int | None = None, expression: Sequence[str] = ()) -> capture.Captured:  # fmt: skip
        """Capture a node's or a network's packets (into the lab's own folder unless ``output`` says where)."""
        path = output or self.files / f"{target}-{next(_serial)}.pcap"
        return super().capture(target, path, duration=duration, count=count, expression=expression)

    def address(self, node: str, network: str) -> str:
        """The node's real address on ``network`` (its file's address moved to the lab's free subnet)."""
        return self.node(node).address(network)

    def moved_address(self, written: str) -> str:
        """Where an address written in the topology file is in this lab (``10.71.1.254`` -> ``10.128.0.254``)."""
        address = ipaddress.IPv4Address(written)
        for old, new in self.moved.items():
            if address in old:
                return str(new.network_address + (int(address) - int(old.network_address)))
        return written

    def host_port(self, node: str, port: int, transport: str = "tcp") -> int:
        """The 127.0.0.1 port a node's container port is published on (chosen free when the lab started)."""
        assert self.topology is not None
        member = self.topology.member(node)
        found = [p.host for p in (member.publish if member else ()) if p.container == port and p.protocol == transport]
        if not found:
            raise LookupError(f"{node} publishes no {port}/{transport}")
        return found[0]


def _free_ports(count: int) -> list[int]:
    """``count`` different free ports of 127.0.0.1: every probe is held until all are bound.

    One probe at a time, closed before the next, can get the same port twice (the ring of three
    redirectors did, and Docker refused the second: "port is already allocated").
    """
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]


def prepare(topology: model.Topology, *, run_labels: dict[str, str], taken: Sequence[ipaddress.IPv4Network],
            serial: int) -> tuple[model.Topology, dict[ipaddress.IPv4Network, ipaddress.IPv4Network]]:  # fmt: skip
    """The topology under a name of its own, on free subnets and host ports, labelled for the run."""
    # Each run (each parallel test worker) searches from its own part of the pool.
    start = zlib.crc32(run_labels["testbed.run"].encode())
    mapping = remap.free_subnets(remap.fixed_subnets(topology), taken, start=start)
    name = f"{topology.name[:24]}-{run_labels['testbed.run'][:6]}-{serial}"
    moved = remap.relocate(topology, mapping, name=name)
    ports = iter(_free_ports(sum(len(n.publish) for n in moved.nodes)))
    nodes = tuple(
        dataclasses.replace(n, publish=tuple(dataclasses.replace(p, host=next(ports)) for p in n.publish))
        for n in moved.nodes
    )
    return dataclasses.replace(moved, nodes=nodes, labels=tuple(run_labels.items())), mapping


def _resolve(path: str | Path, root: Path) -> Path:
    candidate = Path(path)
    for found in (candidate, root / candidate, root / "topology" / f"{path}.yaml"):
        if found.is_file():
            return found.resolve()
    raise FileNotFoundError(f"no topology file {path} (give a path, or a name under {root / 'topology'})")


class _Labs:
    """The labs of one scope, by (file, profiles), torn down together."""

    def __init__(self) -> None:
        self.labs: dict[tuple[Path, tuple[str, ...]], TopologyLab] = {}

    def close(self) -> None:
        errors = []
        for lab in self.labs.values():
            try:
                lab.down(files=lab.files, volumes=True)
            except Exception as exc:  # every lab is torn down even when one fails; then the failure is shown
                errors.append(f"{lab.name}: {exc}")
        self.labs.clear()
        if errors:
            raise RuntimeError("tearing down labs failed: " + "; ".join(errors))


@pytest.fixture(scope="module")
def _topology_module_labs() -> Iterator[_Labs]:
    labs = _Labs()
    yield labs
    labs.close()


@pytest.fixture(scope="session")
def _topology_session_labs() -> Iterator[_Labs]:
    labs = _Labs()
    yield labs
    labs.close()


@pytest.fixture
def topology(
    docker_client: docker.DockerClient,
    node_image: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _topology_module_labs: _Labs,
    _topology_session_labs: _Labs,
) -> Iterator[Callable[..., TopologyLab]]:
    """A factory: ``topology(path, scope="module", profiles=())`` brings the file's lab up and returns its handle.

    ``path`` is a topology file, or a name under ``topology/`` of the test's root. Every
    node's probe has passed when it returns. See ``TopologyLab`` and ``lab.api.RunningLab``.
    """
    from lab.testing import RUN_LABELS  # the plugin's run labels: its sweep knows them

    function_labs = _Labs()
    holders = {"function": function_labs, "module": _topology_module_labs, "session": _topology_session_labs}

    def start(path: str | Path, *, scope: str = "module", profiles: Sequence[str] = ()) -> TopologyLab:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        source = _resolve(path, Path(str(request.config.rootpath)))
        holder = holders[scope]
        key = (source, tuple(profiles))
        if key in holder.labs:
            return holder.labs[key]
        prepared, mapping = prepare(load(source), run_labels=RUN_LABELS, taken=engine.taken_subnets(docker_client),
                                    serial=next(_serial))  # fmt: skip
        files = tmp_path_factory.mktemp(prepared.name)
        handle = TopologyLab(prepared.project, RunningLab.attach(prepared.project).backend, prepared,
                             moved=mapping, files=files)  # fmt: skip
        holder.labs[key] = handle  # registered before it starts: a failed start is torn down too
        RunningLab.up(prepared, files=files, profiles=profiles)
        return handle

    try:
        yield start
    finally:
        function_labs.close()


__all__ = ["TopologyLab", "topology"]
