"""The user's own servers as nodes, across a real engine: a code: file from outside the repository, an image
built from a Dockerfile, and `lab check` passing a correct server and failing the classic mistakes.

Every lab here is named ``own-<pytest pid>-<random>`` and swept like test_lab_cli's, by its own label only.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from tests.integration.test_lab_cli import ROOT, lab_cli, leftovers, sweep_crashed_runs

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

MISTAKES = ROOT / "examples" / "mistakes"


@dataclass(frozen=True)
class OwnLab:
    name: str
    file: Path
    state: Path


TOPOLOGY = """name: {name}
networks: [lan]
nodes:
  - name: server
    code: mine/server.py
    ports: [7007/tcp]
    probe: echo
    publish: [{port}:7007]
    networks: [lan]
  - name: clock
    build: image
    ports: [13/tcp]
    probe: daytime
    networks: [lan]
  - name: plain
    image: testbed/base:bookworm
    command: [python3, -m, http.server, "8080"]
    ports: [8080/tcp]
    probe: tcp
    networks: [lan]
  - name: one-recv
    code: mistakes/echo_one_recv.py
    command: [python3, /code/echo_one_recv.py, --port, "7"]
    ports: [7/tcp]
    probe: tcp
    networks: [lan]
  - name: never-closes
    code: mistakes/daytime_never_closes.py
    command: [python3, /code/daytime_never_closes.py, --port, "13"]
    ports: [13/tcp]
    probe: tcp
    networks: [lan]
  - name: client
    service: client
    command: [sleep, infinity]
    networks: [lan]
"""


@pytest.fixture(scope="module")
def own(
    docker_client: docker.DockerClient, node_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OwnLab]:
    """The servers copied to a folder outside the repository, the way a user keeps their own code."""
    state = tmp_path_factory.mktemp("own-state")
    sweep_crashed_runs(docker_client, state)
    outside = tmp_path_factory.mktemp("my-project")
    (outside / "mine").mkdir()
    shutil.copy(ROOT / "examples" / "own-echo" / "server.py", outside / "mine" / "server.py")
    shutil.copytree(ROOT / "examples" / "own-image", outside / "image")
    shutil.copytree(MISTAKES, outside / "mistakes")
    name = f"own-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    file = outside / "lab.yaml"
    file.write_text(TOPOLOGY.format(name=name, port=20000 + os.getpid() % 20000), encoding="utf-8")
    lab = OwnLab(name, file, state)
    try:
        result = lab_cli("up", str(file), state=state, timeout=480)
        assert result.returncode == 0, f"lab up failed:\n{result.stdout}\n{result.stderr}"
        yield lab
    finally:
        lab_cli("down", str(file), "--volumes", state=state)
        lab_cli("wipe", "-t", name, state=state)


def test_own_code_and_image_come_up_healthy_and_hardened(own: OwnLab, docker_client: docker.DockerClient) -> None:
    result = lab_cli("ps", "-t", own.name, state=own.state)
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert "running (healthy)" in rows["server"], result.stdout  # the cheap in-container check, for code
    assert "running" in rows["clock"], result.stdout  # probed from a sidecar by lab up: no tools in the image
    for node in ("server", "clock"):
        container = docker_client.containers.get(f"testbed-{own.name}-{node}-1")
        host = container.attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and host["ReadonlyRootfs"] is True
        assert container.attrs["Config"]["User"] in ("node", "10001:10001")
    plain = docker_client.containers.get(f"testbed-{own.name}-plain-1")
    assert plain.attrs["Config"]["Image"] == "testbed/base:bookworm" and plain.attrs["Config"]["User"] == "10001:10001"
    mount = docker_client.containers.get(f"testbed-{own.name}-server-1").attrs["Mounts"][0]
    assert mount["Destination"] == "/code/server.py" and mount["RW"] is False


def test_lab_check_passes_a_correct_echo_server(own: OwnLab) -> None:
    result = lab_cli("check", "echo", "server", "-t", own.name, state=own.state)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout


def test_lab_check_passes_a_daytime_image_and_reports_json(own: OwnLab) -> None:
    result = lab_cli("check", "daytime", "clock", "-t", own.name, "--json", state=own.state)
    report = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["checks"] and all(check["passed"] for check in report["checks"])


def test_lab_check_fails_an_echo_that_takes_one_recv_for_the_message(own: OwnLab) -> None:
    result = lab_cli("check", "echo", "one-recv", "-t", own.name, state=own.state)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL echo.tcp." in result.stdout


def test_lab_check_fails_a_daytime_that_never_closes(own: OwnLab) -> None:
    # A short exchange timeout: the check waits that long for the close that never comes.
    result = lab_cli("check", "daytime", "never-closes", "-t", own.name, "--timeout", "3", state=own.state)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL daytime.tcp.closes" in result.stdout


def test_lab_check_from_this_machine_through_the_published_port(own: OwnLab) -> None:
    port = 20000 + os.getpid() % 20000
    result = lab_cli("check", "echo", f"127.0.0.1:{port}", "--only", "echo.tcp.one-byte", state=own.state)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lab_check_an_unreachable_target_is_exit_2(own: OwnLab) -> None:
    result = lab_cli("check", "echo", "127.0.0.1:1", state=own.state)
    assert result.returncode == 2, result.stdout + result.stderr


def test_down_leaves_nothing(own: OwnLab, docker_client: docker.DockerClient) -> None:
    result = lab_cli("down", "-t", own.name, "--volumes", state=own.state)
    assert result.returncode == 0, result.stderr
    assert leftovers(docker_client, own.name) == []
