"""Pytest fixtures for testing clients and servers across a real Docker network.

Loaded automatically as a pytest plugin (entry point ``testbed``) once the project
is installed; use it in your own suites too::

    def test_time(lab):                       # a labelled network for this module
        lab.start_server("daytime")           # container "daytime", ready when its probe passes
        result = lab.run_client("python3", "-m", "clients.daytime", "--host", "daytime")
        assert result.exit_code == 0

What it guarantees:

* the node image is checked once per session (build it with ``scripts/setup``);
* every network and container has a unique name and the labels ``testbed.suite``,
  ``testbed.run`` and ``testbed.run.pid``; what a crashed run left behind is swept
  at the next session start (only runs whose process is gone), and this run's
  leftovers at its end;
* a server is "ready" only when ``clients.probe`` speaks its protocol to it on
  every port the registry gives it (UDP included): never a bare port check, never a sleep;
* with ``CI=true`` a missing Docker engine fails the run instead of skipping.

Ryuk (testcontainers' reaper) needs a registry image, so it is disabled and this
plugin cleans up by label instead.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import docker
import docker.errors
import pytest
from docker.models.containers import Container
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from common.waiting import wait_until
from lab import engine
from lab.impair.sidecar import SIDECAR_LABEL
from lab.model import LAB_LABEL, project_name
from protocols.registry import SERVICES, probe_command

RUN_ID = uuid.uuid4().hex[:10]
RUN_LABELS = {"testbed.suite": "1", "testbed.run": RUN_ID, "testbed.run.pid": str(os.getpid())}
READY_TIMEOUT = 30.0

# The same hardening as the compose lab: tests prove the servers work *under* it.
HARDENING: dict[str, Any] = {
    "user": "node",
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
    "read_only": True,
    "init": True,
}
TMPFS = {"/tmp": "size=16m"}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_docker_or_skip(reason: str) -> None:
    """Skip locally, fail under CI: a container test must never pass by skipping there."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: container tests must run, not skip)", pytrace=False)
    pytest.skip(f"{reason}; run scripts/setup to start an engine and build the images")


def pid_alive(pid: int | str) -> bool:
    """Whether a process with this id exists on this machine (a crashed run's pid does not)."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def sweep(client: docker.DockerClient, *, run: str | None = None) -> int:
    """Remove test containers and networks: one run's (``run``), or every run whose process is gone."""
    removed = 0
    host = socket.gethostname()

    def doomed(labels: dict[str, str]) -> bool:
        if run is not None:
            return labels.get("testbed.run") == run
        return labels.get("testbed.run.host", host) == host and not pid_alive(labels.get("testbed.run.pid", ""))

    # A topology lab of a dead run: its sidecars (impairments, partitions) carry only its testbed.lab label.
    # ignore_removed: the engine is shared, and a container listed may be gone (another run's) before it is inspected.
    listed = partial(client.containers.list, all=True, ignore_removed=True)
    labs = {c.labels.get(LAB_LABEL) for c in listed(filters={"label": "testbed.suite"}) if doomed(c.labels)}
    for value in sorted({v for lab in filter(None, labs) for v in (lab, project_name(lab))}):  # sidecars name either
        for sidecar in listed(filters={"label": [f"{LAB_LABEL}={value}", SIDECAR_LABEL]}):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                sidecar.remove(force=True)
                removed += 1
    # A sidecar whose node is gone serves nothing (its namespace went with the node): an earlier sweep's leftover.
    existing = {str(c.id) for c in client.containers.list(all=True, sparse=True)}
    for sidecar in listed(filters={"label": SIDECAR_LABEL}):
        mode = str(sidecar.attrs["HostConfig"].get("NetworkMode", ""))
        if mode.startswith("container:") and mode.removeprefix("container:") not in existing:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                sidecar.remove(force=True)
                removed += 1
    for container in listed(filters={"label": "testbed.suite"}):
        if doomed(container.labels):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                container.remove(force=True, v=True)
                removed += 1
    for network in client.networks.list(filters={"label": "testbed.suite"}):
        if doomed(network.attrs.get("Labels") or {}):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                network.remove()
                removed += 1
    for volume in client.volumes.list(filters={"label": "testbed.suite"}):
        if doomed(volume.attrs.get("Labels") or {}):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                volume.remove(force=True)
                removed += 1
    return removed


def probe_argv(service: str, *, timeout: float) -> tuple[str, ...]:
    """The probe a node of ``service`` runs on itself: its protocol, on its ports, at 127.0.0.1."""
    spec = SERVICES.get(service)
    if spec is None:
        raise LookupError(f"{service!r} is no built-in service (protocols/registry.py), so it has no probe")
    return probe_command(spec.protocol, "127.0.0.1", spec.ports, timeout=timeout)


@dataclass(frozen=True)
class ClientResult:
    """What a client container did."""

    exit_code: int
    stdout: str
    stderr: str

    def check(self) -> ClientResult:
        """Raise with the client's output when it did not exit 0."""
        if self.exit_code != 0:
            raise AssertionError(f"client exited {self.exit_code}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}")
        return self


@dataclass
class Node:
    """A server container on a lab network."""

    service: str
    hostname: str
    container: DockerContainer
    lab: Lab

    @property
    def wrapped(self) -> Container:
        container: Container = self.container.get_wrapped_container()
        return container

    def host_port(self, port: str) -> int:
        """The 127.0.0.1 port Docker published for a container port like ``"13/udp"``."""
        client = self.wrapped.client
        assert client is not None, "a container got from a DockerClient keeps it"
        mappings = client.api.port(self.wrapped.id, port)  # type: ignore[arg-type]  # takes "13/udp"; stubs say int
        if not mappings:
            raise LookupError(f"{self.hostname}: {port} is not published")
        return int(mappings[0]["HostPort"])

    def address(self) -> str:
        """The node's address on its lab network."""
        self.wrapped.reload()
        return str(self.wrapped.attrs["NetworkSettings"]["Networks"][self.lab.name]["IPAddress"])

    def exec(self, *argv: str, user: str = "node") -> tuple[int, str]:
        """Run a command inside the node; (exit code, output: stdout then stderr)."""
        ran = engine.run_in(self.wrapped, argv, user=user)
        return ran.code, ran.output

    def probe(self, *, timeout: float = 2.0) -> tuple[int, str]:
        """Speak the node's protocol to it, on its service's ports, from inside its own namespace."""
        return self.exec(*probe_argv(self.service, timeout=timeout))

    def wait_ready(self, *, timeout: float = READY_TIMEOUT) -> None:
        """Poll the protocol probe until it passes; fail with the container's logs if it never does."""
        last = ""

        def answered() -> bool | None:
            nonlocal last
            self.wrapped.reload()
            if self.wrapped.status in {"exited", "dead"}:
                raise AssertionError(f"{self.hostname} ({self.service}) {self.wrapped.status}; logs:\n{self.logs()}")
            code, last = self.probe()
            return code == 0

        try:
            wait_until(answered, timeout=timeout, interval=0.1, what=f"{self.hostname} ({self.service}) to answer")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; last probe: {last.strip()}\nlogs:\n{self.logs()}") from None

    def logs(self) -> str:
        return self.wrapped.logs().decode("utf-8", errors="replace")

    def restart(self) -> None:
        self.wrapped.restart(timeout=2)
        self.wait_ready()


@dataclass
class Lab:
    """A uniquely named, labelled Docker network and the nodes the tests put on it."""

    client: docker.DockerClient
    image: str
    name: str
    network: Network
    nodes: dict[str, Node] = field(default_factory=dict)
    _extra: list[Container] = field(default_factory=list)

    def start_server(
        self,
        service: str,
        *,
        hostname: str | None = None,
        command: Sequence[str] | None = None,
        publish: bool = True,
        mem_limit: str = "256m",
        pids_limit: int = 2048,
        ready: bool = True,
        volumes: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Node:
        """Start a built-in service (protocols/registry.py) as ``hostname`` on this network; wait until it answers.

        ``command`` replaces the service's own (the probe still speaks its protocol on its ports); with
        ``ready=False`` and a ``command``, ``service`` may be any name. ``volumes`` maps named volumes
        (see ``volume``) to paths in the container.
        """
        hostname = hostname or service
        spec = SERVICES.get(service)
        if spec is None and (command is None or ready):
            raise LookupError(
                f"unknown service {service!r}: choose from {', '.join(SERVICES)} (or give a command and ready=False)"
            )
        argv = command if command is not None else spec.command if spec is not None else ()
        container = (
            DockerContainer(self.image)
            .with_command(list(argv))
            .with_name(f"{self.name}-{hostname}")
            .with_network(self.network)
            .with_network_aliases(hostname)
            .with_tmpfs_mount("/tmp", "size=16m")
            .with_kwargs(
                hostname=hostname,
                labels={**RUN_LABELS, "testbed.node": hostname},
                mem_limit=mem_limit,
                pids_limit=pids_limit,
                **{**HARDENING, **kwargs},
            )
        )
        for volume, path in (volumes or {}).items():
            container.with_volume_mapping(volume, path, "rw")
        if publish and spec is not None:
            for port in spec.ports:
                # docker-py binds a (host address, port) pair; testcontainers types the value as a port only.
                container.ports[str(port)] = ("127.0.0.1", None)  # type: ignore[assignment]
        container.start()
        node = Node(service, hostname, container, self)
        self.nodes[hostname] = node
        if ready:
            node.wait_ready()
        return node

    def _client_kwargs(self, hostname: str, **kwargs: Any) -> dict[str, Any]:
        return {
            "network": self.name,
            "hostname": hostname,
            "name": f"{self.name}-{hostname}-{uuid.uuid4().hex[:6]}",
            "labels": {**RUN_LABELS, "testbed.node": hostname},
            "mem_limit": "512m",
            "pids_limit": 4096,
            "tmpfs": TMPFS,
            **HARDENING,
            **kwargs,
        }

    def start_client(self, *argv: str, hostname: str = "client", **kwargs: Any) -> Container:
        """Start a client container in the background (collect it with ``finish``)."""
        container = self.client.containers.run(
            self.image, list(argv), detach=True, **self._client_kwargs(hostname, **kwargs)
        )
        self._extra.append(container)
        return container

    def finish(self, container: Container, *, timeout: float = 120) -> ClientResult:
        """Wait for a client container to exit and return its output; it is removed afterwards."""
        try:
            status = container.wait(timeout=timeout)
            stdout = container.logs(stdout=True, stderr=False).decode("utf-8", errors="replace")
            stderr = container.logs(stdout=False, stderr=True).decode("utf-8", errors="replace")
            return ClientResult(int(status.get("StatusCode", -1)), stdout, stderr)
        finally:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
            with contextlib.suppress(ValueError):
                self._extra.remove(container)

    def run_client(self, *argv: str, hostname: str = "client", timeout: float = 120, **kwargs: Any) -> ClientResult:
        """Run a command in a fresh client container on this network, by hostname, and wait for it."""
        return self.finish(self.start_client(*argv, hostname=hostname, **kwargs), timeout=timeout)

    def volume(self, label: str) -> str:
        """A named volume, labelled like everything else here, removed by the sweep at session end."""
        name = f"{self.name}-{label}"
        self.client.volumes.create(name, labels={**RUN_LABELS, "testbed.lab": self.name})
        return name

    def stop(self, hostname: str) -> None:
        """Remove one node."""
        node = self.nodes.pop(hostname)
        node.container.stop()

    def close(self) -> None:
        """Remove every container this lab started, then the network."""
        for container in self._extra:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
        for node in self.nodes.values():
            with contextlib.suppress(docker.errors.APIError):
                node.container.stop()
        self.nodes.clear()
        with contextlib.suppress(docker.errors.APIError):
            self.network.remove()


def _unix_socket_problem(docker_host: str) -> str | None:
    """Why the engine's unix socket cannot be reached, or ``None`` (also for tcp:// hosts)."""
    if not docker_host.startswith("unix://"):
        return None
    path = docker_host.removeprefix("unix://")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(path)
        except OSError as exc:
            return f"no Docker engine answers at {path} ({exc.strerror or exc})"
    return None


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A Docker client for a running engine (skip locally, fail under CI, when there is none)."""
    problem = _unix_socket_problem(os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))
    if problem:  # checked first: a client built on a dead socket leaks it, which -W error turns into a failure
        require_docker_or_skip(problem)
    try:
        client = engine.client()  # the lab engine's own: the tests and the lab share one connection
    except engine.LabError as exc:
        require_docker_or_skip(str(exc))
    sweep(client)
    try:
        yield client
    finally:
        sweep(client, run=RUN_ID)
        client.close()
        engine.forget_clients()


@pytest.fixture(scope="session")
def node_image(docker_client: docker.DockerClient) -> str:
    """The node image every server and client runs in, (re)built once per session when its sources changed.

    In this repository that is ``scripts/setup --no-venv`` (a no-op when the image is current);
    elsewhere the image must already exist.
    """
    setup = Path(__file__).resolve().parent.parent / "scripts" / "setup"
    if setup.exists():
        result = subprocess.run([str(setup), "--no-venv"], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.fail(f"scripts/setup failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
    try:
        docker_client.images.get(engine.node_image())
    except docker.errors.ImageNotFound:
        pytest.fail(f"image {engine.node_image()} is missing: run scripts/setup to build it", pytrace=False)
    return engine.node_image()


@contextlib.contextmanager
def make_lab(client: docker.DockerClient, image: str, label: str) -> Iterator[Lab]:
    """A fresh lab network, removed with everything on it when the block ends."""
    name = f"testbed-{label}-{RUN_ID}-{uuid.uuid4().hex[:4]}"
    network = Network(docker_network_kw={"labels": {**RUN_LABELS, "testbed.lab": name}})
    network.name = name
    network.create()
    lab = Lab(client, image, name, network)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="module")
def lab(docker_client: docker.DockerClient, node_image: str, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A labelled network for one test module."""
    label = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")[:20]
    with make_lab(docker_client, node_image, label) as lab:
        yield lab


# The topology fixture lives in its own module; importing it here registers it with the plugin.
from lab.topology_fixture import _topology_module_labs, _topology_session_labs, topology  # noqa: E402, F401


def pytest_configure(config: pytest.Config) -> None:
    """The marker the plugin's container tests carry, known wherever the plugin is installed."""
    config.addinivalue_line("markers", "docker: needs a Docker engine (containers across a lab network)")
