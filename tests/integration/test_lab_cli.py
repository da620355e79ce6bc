"""``lab`` against a real engine: two LANs and a router, by hostname, then nothing left behind.

Each run uses its own lab (``test-<pid>-<random>``, project ``testbed-test-...``)
on subnets no other network uses, so a developer's own labs (``testbed``
above all) are never touched; cleanup removes only this lab's label, and the
labs of earlier runs whose pytest process is gone.
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from lab import compose
from lab.engine import engine_major
from lab.testing import pid_alive

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
STALE = re.compile(r"^(?:test|own)-(\d+)-[0-9a-f]{6}$")  # labs of these tests: test-|own-<pytest pid>-<random>


@dataclass(frozen=True)
class Lab:
    """A copy of two-lans.yaml under a unique name and free subnets."""

    name: str
    file: Path
    state: Path
    octet: int

    @property
    def project(self) -> str:
        return f"testbed-{self.name}"

    def address(self, text: str) -> str:
        return text.replace("10.71.", f"10.{self.octet}.")


def lab_cli(*args: str, state: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run ``lab`` as a user would (a separate process), with generated files under ``state``."""
    env = {**os.environ, "LAB_STATE_DIR": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "lab.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_octet(client: docker.DockerClient) -> int:
    """A second octet for 10.X.0.0/16 that no existing Docker network overlaps."""
    taken = []
    for network in client.networks.list():
        for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
            if config.get("Subnet"):
                taken.append(ipaddress.ip_network(config["Subnet"], strict=False))
    choices = [o for o in range(100, 250) if not any(ipaddress.ip_network(f"10.{o}.0.0/16").overlaps(t) for t in taken)]
    return random.choice(choices)


def leftovers(client: docker.DockerClient, name: str) -> list[str]:
    label: dict[str, Any] = {"label": [f"testbed.lab={name}"]}
    found = [f"container {c.name}" for c in client.containers.list(all=True, ignore_removed=True, filters=label)]
    found += [f"network {n.name}" for n in client.networks.list(filters=label)]
    found += [f"volume {v.name}" for v in client.volumes.list(filters=label)]
    return found


def sweep_crashed_runs(client: docker.DockerClient, state: Path) -> None:
    """Wipe the labs of earlier runs of this module whose pytest died (their name carries its pid)."""
    names = {
        c.labels.get("testbed.lab", "")
        # ignore_removed: other runs (parallel workers) remove their containers while this one lists them
        for c in client.containers.list(all=True, ignore_removed=True, filters={"label": "testbed.lab"})
    }
    names |= {
        str((n.attrs.get("Labels") or {}).get("testbed.lab", ""))
        for n in client.networks.list(filters={"label": "testbed.lab"})
    }
    for name in names:
        match = STALE.match(name)
        if match and not pid_alive(int(match.group(1))):
            lab_cli("wipe", "--lab", name, state=state)


@pytest.fixture(scope="module")
def lab(docker_client: docker.DockerClient, node_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """two-lans, up and healthy, under a unique name; down and swept (by its own label only) afterwards."""
    state = tmp_path_factory.mktemp("lab-state")
    sweep_crashed_runs(docker_client, state)
    octet = free_octet(docker_client)
    name = f"test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    text = (ROOT / "topology" / "two-lans.yaml").read_text(encoding="utf-8")
    text = text.replace("name: two-lans", f"name: {name}").replace("10.71.", f"10.{octet}.")
    file = state / f"{name}.yaml"
    file.write_text(text, encoding="utf-8")
    lab = Lab(name, file, state, octet)
    try:
        result = lab_cli("up", str(file), state=state)
        assert result.returncode == 0, f"lab up failed:\n{result.stdout}\n{result.stderr}"
        yield lab
    finally:
        lab_cli("down", str(file), "--volumes", state=state)
        lab_cli("wipe", "--lab", name, state=state)


def test_up_reports_progress_and_a_summary(lab: Lab) -> None:
    result = lab_cli("ps", "-t", lab.name, state=lab.state)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"lab {lab.name} (project {lab.project})"
    rows = {line.split()[0]: line for line in lines[2:]}
    assert set(rows) == {"client", "client-routes", "daytime", "daytime-routes", "echo", "echo-routes", "router"}
    assert "running (healthy)" in rows["daytime"] and lab.address("servers=10.71.2.13") in rows["daytime"]
    assert "exited (0)" in rows["client-routes"]  # the routes were installed and the helper is gone


def test_client_gets_the_time_across_the_router_by_hostname(lab: Lab) -> None:
    result = lab_cli(
        "exec", "-t", lab.name, "client", "--", "python3", "-m", "clients.daytime", "--host", "daytime", state=lab.state
    )
    assert result.returncode == 0, result.stderr
    assert "UTC" in result.stdout  # RFC 867 has no fixed format; ours ends with the zone


def test_traceroute_shows_the_router_hop(lab: Lab) -> None:
    result = lab_cli(
        "exec", "-t", lab.name, "client", "--", "traceroute", "-n", "-w", "2", "-q", "1", "daytime", state=lab.state
    )
    assert result.returncode == 0, result.stderr
    hops = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [hop[1] for hop in hops] == [lab.address("10.71.1.254"), lab.address("10.71.2.13")], result.stdout


def test_exec_passes_the_exit_code_through(lab: Lab) -> None:
    assert lab_cli("exec", "-t", lab.name, "client", "--", "sh", "-c", "exit 3", state=lab.state).returncode == 3


def test_servers_keep_no_capabilities(lab: Lab, docker_client: docker.DockerClient) -> None:
    container = docker_client.containers.get(f"{lab.project}-daytime-1")
    host_config = container.attrs["HostConfig"]
    assert host_config["CapDrop"] == ["ALL"] and not host_config["CapAdd"]
    assert host_config["ReadonlyRootfs"] is True and container.attrs["Config"]["User"] in ("", "node")
    assert {b["HostIp"] for bindings in (host_config["PortBindings"] or {}).values() for b in bindings} <= {"127.0.0.1"}


def test_up_renders_health_checks_for_the_engine_at_hand(lab: Lab, docker_client: docker.DockerClient) -> None:
    """Docker 25+: start_interval (a cheap idle lab); an older engine gets the file every engine runs."""
    check = docker_client.containers.get(f"{lab.project}-daytime-1").attrs["Config"]["Healthcheck"]
    rendered = (lab.state / lab.name / "compose.yaml").read_text(encoding="utf-8")
    if engine_major() >= compose.START_INTERVAL_ENGINE:
        assert check.get("StartInterval") == 250_000_000 and "start_interval: 250ms" in rendered
    else:
        assert not check.get("StartInterval") and "start_interval" not in rendered


def test_validate_a_bad_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nnetworks: [lab]\nnodes:\n  - name: web\n    service: daytme\n", encoding="utf-8")
    result = lab_cli("validate", str(bad), state=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{bad}:5: nodes.web.service: unknown service 'daytme'; write 'daytime' instead")
    assert "Traceback" not in result.stderr


def test_unknown_node_is_one_error_line(lab: Lab) -> None:
    result = lab_cli("exec", "-t", lab.name, "nobody", "--", "true", state=lab.state)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"error: no node 'nobody' in lab '{lab.name}' (nodes: client,")


def test_down_leaves_nothing(lab: Lab, docker_client: docker.DockerClient) -> None:
    """Last in the module: the fixture's own cleanup then finds nothing to do."""
    result = lab_cli("down", str(lab.file), "--volumes", state=lab.state)
    assert result.returncode == 0, result.stderr
    assert f"removed container {lab.project}-router-1" in result.stdout
    assert leftovers(docker_client, lab.name) == []
