"""``lab up --swarm`` on a real single-node Swarm: the default lab as a stack, by hostname and from the host.

The engine joins a Swarm only if it is in none (``docker swarm init --advertise-addr
127.0.0.1``), and leaves it at the end only if this module made it and nothing else
was deployed meanwhile. The stack has its own name (``testbed-swarm-<pid>-<random>``)
and its host ports moved up by a random offset that leaves every port free, so a
developer's own lab (``testbed`` on 10013, 10007, ...) is never touched: Swarm
publishes on every interface, where 127.0.0.1:10013 would already be taken.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from clients.common import connect, read_to_eof, udp_exchange
from clients.probe import probe
from lab.loader import load
from lab.testing import HARDENING, RUN_LABELS, TMPFS, pid_alive, require_docker_or_skip
from protocols.registry import SERVICES, Port, health_command

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
SERVERS = ("daytime", "echo", "creosote", "chat", "doctor", "threaded")  # the default lab without profiles
STALE = re.compile(r"^swarm-(\d+)-[0-9a-f]{6}$")  # this module's labs: swarm-<pytest pid>-<random>
STACK_LABEL = "com.docker.stack.namespace"


@dataclass(frozen=True)
class Stack:
    """The default topology deployed under a unique name, host ports moved up by ``offset``."""

    name: str
    file: Path
    state: Path
    offset: int
    up_output: str
    up_seconds: float

    @property
    def stack(self) -> str:
        return f"testbed-{self.name}"


def lab_cli(*args: str, state: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run ``lab`` as a user would (a separate process), with generated files under ``state``."""
    return subprocess.run(
        [sys.executable, "-m", "lab.cli", *args],
        cwd=ROOT,
        env={**os.environ, "LAB_STATE_DIR": str(state)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def port_free(port: int, protocol: str) -> bool:
    """Whether a host-mode port could be published: Swarm binds it on every interface."""
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_offset(ports: list[tuple[int, str]]) -> int:
    """An offset that moves every published port (10007-19000) to free ports between 20007 and 32500."""
    for _ in range(100):
        offset = random.randrange(10000, 13500)
        if all(port_free(port + offset, protocol) for port, protocol in ports):
            return offset
    raise AssertionError("no free block of host ports for the stack")


def leftovers(client: docker.DockerClient, stack: str) -> list[str]:
    label: dict[str, Any] = {"label": [f"{STACK_LABEL}={stack}"]}
    found = [f"service {s.name}" for s in client.services.list(filters={"label": f"{STACK_LABEL}={stack}"})]
    found += [f"container {c.name}" for c in client.containers.list(all=True, ignore_removed=True, filters=label)]
    found += [f"network {n.name}" for n in client.networks.list(filters=label)]
    found += [f"volume {v.name}" for v in client.volumes.list(filters=label)]
    return found


def sweep_crashed_runs(client: docker.DockerClient, state: Path) -> None:
    """Remove the stacks of earlier runs of this module whose pytest died (their name carries its pid)."""
    names = {str(s.attrs["Spec"]["Labels"].get("testbed.lab", "")) for s in client.services.list()}
    for name in names:
        match = STALE.match(name)
        if match and not pid_alive(int(match.group(1))):
            lab_cli("down", "--swarm", name, "--volumes", state=state)


@pytest.fixture(scope="module")
def swarm_manager(docker_client: docker.DockerClient) -> Iterator[None]:
    """This engine as a Swarm manager: joined to a new single-node Swarm if it was in none, and left after."""
    swarm = docker_client.info().get("Swarm") or {}
    had_gwbridge = bool(docker_client.networks.list(names=["docker_gwbridge"]))
    created = False
    if swarm.get("LocalNodeState") == "inactive":
        try:
            docker_client.swarm.init(advertise_addr="127.0.0.1")
        except docker.errors.APIError as exc:
            require_docker_or_skip(f"cannot start a single-node Swarm ({exc.explanation})")
        created = True
    elif swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        require_docker_or_skip(f"this engine is not a Swarm manager ({swarm.get('LocalNodeState')})")
    try:
        yield
    finally:
        if created and not docker_client.services.list():  # someone else's stack would go with the Swarm
            docker_client.swarm.leave(force=True)
            if not had_gwbridge:  # Swarm made it for its first task and leaves it behind
                for network in docker_client.networks.list(names=["docker_gwbridge"]):
                    with contextlib.suppress(docker.errors.APIError):
                        network.remove()


@pytest.fixture(scope="module")
def stack(
    docker_client: docker.DockerClient, node_image: str, swarm_manager: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The default lab as a stack, up and healthy; removed (and checked gone) by the last test, or here."""
    state = tmp_path_factory.mktemp("swarm-state")
    sweep_crashed_runs(docker_client, state)
    name = f"swarm-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    file = state / f"{name}.yaml"
    text = (ROOT / "topology" / "default.yaml").read_text(encoding="utf-8")
    file.write_text(text.replace("name: default", f"name: {name}"), encoding="utf-8")
    ports = [(p.host, p.protocol) for n in load(file).active() for p in n.publish]
    offset = free_offset(ports)
    try:
        started = time.monotonic()
        result = lab_cli("up", "--swarm", str(file), "--port-offset", str(offset), state=state)
        elapsed = time.monotonic() - started
        assert result.returncode == 0, f"lab up --swarm failed:\n{result.stdout}\n{result.stderr}"
        yield Stack(name, file, state, offset, result.stdout, elapsed)
    finally:
        lab_cli("down", "--swarm", str(file), "--volumes", state=state)


def test_up_waits_for_every_health_check_and_says_so(stack: Stack) -> None:
    lines = stack.up_output.splitlines()
    assert f"==> deploying stack {stack.stack}: 6 services" in stack.up_output
    assert "==>   6 of 6 running and healthy" in lines
    assert any(line.startswith(f"==> lab {stack.name} is up on Swarm (stack {stack.stack}) in ") for line in lines)
    assert stack.up_seconds < 60, stack.up_output


def test_every_server_answers_by_hostname_across_the_overlay(stack: Stack, docker_client: docker.DockerClient) -> None:
    """A client container on the attachable overlay, as on any machine of the Swarm: clients.tour."""
    container = docker_client.containers.run(
        stack_image(docker_client, stack),
        ["python3", "-m", "clients.tour"],
        network=f"{stack.stack}_lab",
        hostname="client",
        labels={**RUN_LABELS, "testbed.lab": stack.name},
        detach=True,
        tmpfs=TMPFS,
        mem_limit="256m",
        **HARDENING,
    )
    try:
        code = container.wait(timeout=60)["StatusCode"]
        output = container.logs().decode("utf-8", errors="replace")
    finally:
        container.remove(force=True)
    assert code == 0, output
    assert "6 of 6 servers answered" in output
    assert re.search(r"ok +daytime +10\.\d+\.\d+\.\d+ +daytime ok: 13/tcp .*, 13/udp ", output), output


def stack_image(client: docker.DockerClient, stack: Stack) -> str:
    """The image the stack runs (by ID): the client must be the same build as the servers."""
    (service,) = client.services.list(filters={"name": f"{stack.stack}_daytime"})
    image: str = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert image.startswith("sha256:"), f"the stack's image is not pinned by ID: {image}"
    return image


def test_published_ports_answer_on_the_host(stack: Stack) -> None:
    port = 10013 + stack.offset
    with connect("127.0.0.1", port, timeout=5) as sock:
        assert read_to_eof(sock, limit=4096).endswith(b"-UTC\r\n")
    # Any datagram gets the time (RFC 867); not an empty one here, which docker-proxy does not forward.
    assert udp_exchange("127.0.0.1", port, b"\n", timeout=5).endswith(b"-UTC\r\n")
    for service in SERVERS[1:]:  # published on 10000 + each port (publish: true), moved up by the offset
        spec = SERVICES[service]
        published = [Port(10000 + port.number + stack.offset, port.transport) for port in spec.ports]
        assert probe(spec.protocol, "127.0.0.1", published, timeout=5)


def test_services_keep_the_hardening_swarm_can_carry(stack: Stack, docker_client: docker.DockerClient) -> None:
    services = {
        s.name.removeprefix(f"{stack.stack}_"): s
        for s in docker_client.services.list(filters={"label": f"{STACK_LABEL}={stack.stack}"})
    }
    assert sorted(services) == sorted(SERVERS)
    for name, service in services.items():
        spec = service.attrs["Spec"]
        container = spec["TaskTemplate"]["ContainerSpec"]
        assert spec["EndpointSpec"]["Mode"] == "dnsrr", name
        assert {p["PublishMode"] for p in spec["EndpointSpec"]["Ports"]} == {"host"}, name
        assert container["CapabilityDrop"] == ["ALL"] and not container.get("CapabilityAdd"), name
        assert container["ReadOnly"] is True and container["Init"] is True, name
        served = SERVICES[name]
        assert container["Healthcheck"]["Test"] == ["CMD", *health_command(served.protocol, served.ports)], name
        assert spec["TaskTemplate"]["Resources"]["Limits"]["Pids"] > 0, name
        assert spec["Labels"]["testbed.lab"] == stack.name
    task = docker_client.containers.list(filters={"label": [f"{STACK_LABEL}={stack.stack}", "testbed.node=daytime"]})[0]
    assert task.attrs["Config"]["User"] == "node" or task.attrs["Config"]["User"] == ""
    assert task.attrs["HostConfig"]["ReadonlyRootfs"] is True and task.attrs["HostConfig"]["CapDrop"] == ["ALL"]


def test_ps_finds_the_stack_by_its_name(stack: Stack) -> None:
    result = lab_cli("ps", "-t", stack.name, state=stack.state)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"lab {stack.name} on Swarm (stack {stack.stack})"
    rows = {line.split()[0]: line for line in lines[2:]}
    assert sorted(rows) == sorted(SERVERS)
    assert all("running (healthy)" in row for row in rows.values()), result.stdout
    assert f"*:{10013 + stack.offset}->13/udp" in rows["daytime"]


def test_down_leaves_nothing(stack: Stack, docker_client: docker.DockerClient) -> None:
    """Last in the module: the fixture's own cleanup then finds nothing to do."""
    started = time.monotonic()
    result = lab_cli("down", "--swarm", str(stack.file), "--volumes", state=stack.state)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert f"removed service {stack.stack}_daytime" in result.stdout
    assert f"removed network {stack.stack}_lab" in result.stdout
    assert f"removed volume {stack.stack}_creosote-log" in result.stdout
    assert leftovers(docker_client, stack.stack) == []
    assert docker_client.containers.list(all=True, filters={"label": f"testbed.lab={stack.name}"}) == []
    assert elapsed < 30, result.stdout


def test_a_built_image_node_runs_as_a_stack_service(
    docker_client: docker.DockerClient, node_image: str, swarm_manager: None, tmp_path: Path
) -> None:
    """build: on Swarm: built here first, pinned by ID, deployed hardened, probed in its protocol from a sidecar."""
    name = f"swarm-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    shutil.copytree(ROOT / "examples" / "own-image", tmp_path / "own")
    file = tmp_path / "own" / "lab.yaml"
    file.write_text(file.read_text(encoding="utf-8").replace("name: own-image", f"name: {name}"), encoding="utf-8")
    state = tmp_path / "state"
    try:
        result = lab_cli("up", "--swarm", str(file), state=state, timeout=300)
        assert result.returncode == 0, f"lab up --swarm failed:\n{result.stdout}\n{result.stderr}"
        assert "probing clock (daytime on 13/tcp)" in result.stdout, result.stdout
        found = docker_client.services.list(filters={"name": f"testbed-{name}_clock"})
        assert len(found) == 1, found
        container = found[0].attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
        assert container["Image"].startswith("sha256:"), container["Image"]  # pinned: no machine pulls it
        assert container["User"] == "10001:10001" and container["CapabilityDrop"] == ["ALL"]
        assert container["ReadOnly"] is True
    finally:
        down = lab_cli("down", "--swarm", str(file), "--volumes", state=state)
        assert down.returncode == 0, down.stderr
    assert leftovers(docker_client, f"testbed-{name}") == []
