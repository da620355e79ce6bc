"""The example topologies live: wan's delay and loss measured, relay's redirector chain delivering.

Each runs as a renamed copy on free subnets (see test_lab_cli.py), torn down by its own label.
"""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.test_lab_cli import ROOT, free_octet, lab_cli, leftovers

pytestmark = [pytest.mark.timeout(300)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bring_up(
    docker_client: docker.DockerClient, tmp: Path, topology: str, subnet_prefix: str, extra: dict[str, str]
) -> tuple[str, Path, Path]:
    octet = free_octet(docker_client)
    name = f"test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    text = (ROOT / "topology" / f"{topology}.yaml").read_text(encoding="utf-8")
    text = re.sub(rf"^name: {topology}$", f"name: {name}", text, flags=re.MULTILINE).replace(
        subnet_prefix, f"10.{octet}."
    )
    for old, new in extra.items():
        text = text.replace(old, new)
    file = tmp / f"{name}.yaml"
    file.write_text(text, encoding="utf-8")
    result = lab_cli("up", str(file), state=tmp)
    assert result.returncode == 0, f"lab up failed:\n{result.stdout}\n{result.stderr}"
    return name, file, tmp


def tear_down(docker_client: docker.DockerClient, name: str, file: Path, state: Path) -> None:
    lab_cli("down", str(file), "--volumes", state=state)
    lab_cli("wipe", "--lab", name, state=state)
    assert leftovers(docker_client, name) == []


@pytest.fixture(scope="module")
def wan(
    docker_client: docker.DockerClient, node_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, Path]]:
    up = bring_up(docker_client, tmp_path_factory.mktemp("wan"), "wan", "10.72.", {})
    try:
        yield up
    finally:
        tear_down(docker_client, *up)


@pytest.fixture(scope="module")
def relay(
    docker_client: docker.DockerClient, node_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, Path, int]]:
    port = free_port()
    up = bring_up(
        docker_client, tmp_path_factory.mktemp("relay"), "relay", "10.73.", {"[27739]": f"['{port}:7739/udp']"}
    )
    try:
        yield (*up, port)
    finally:
        tear_down(docker_client, *up)


ECHO_RTTS = r"""
import json, socket, threading, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.0); s.connect(("echo", 7))
sent, rtts = {}, []
def receive():
    while True:
        try:
            data = s.recv(100)
        except TimeoutError:
            return
        rtts.append((time.perf_counter() - sent[int(data)]) * 1000)
reader = threading.Thread(target=receive); reader.start()
for i in range(400):  # paced, so the samples overlap in time but never queue behind each other
    sent[i] = time.perf_counter(); s.send(b"%d" % i); time.sleep(0.005)
reader.join()
print(json.dumps({"rtts": rtts, "lost": len(sent) - len(rtts)}))
"""


def test_wan_adds_its_delay_and_loss(wan: tuple[str, Path, Path]) -> None:
    _name, file, state = wan
    result = lab_cli("exec", "-t", str(file), "client", "--", "python3", "-c", ECHO_RTTS, state=state)
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    median = statistics.median(measured["rtts"])
    # 40 ms each way, out through gw-a and back through gw-b: 80 ms +- 10 %
    assert 72 <= median <= 88, f"median round trip {median:.1f} ms"
    # 2 % each way: about 4 % of round trips lost (16 of 400); generous bounds
    assert 0 < measured["lost"] <= 40, measured["lost"]


def test_creosote_over_the_lossy_link_reports_its_loss(wan: tuple[str, Path, Path]) -> None:
    _name, file, state = wan
    spew = "python3 -m clients.spew --host creosote --max-datagram 600 --count 50 " + "x" * 5000
    result = lab_cli("exec", "-t", str(file), "client", "--", "sh", "-c", spew, state=state)
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 30  # incomplete messages are given up after the reassembly timeout
    logs = ""
    while time.monotonic() < deadline:
        logs = lab_cli("logs", "-t", str(file), "creosote", state=state).stdout
        if " incomplete " in logs:
            break
        time.sleep(0.5)
    assert " incomplete " in logs and "lost=" in logs, logs[-3000:]


def test_relay_chain_delivers_to_the_sink(relay: tuple[str, Path, Path, int]) -> None:
    _name, file, state, port = relay
    marker = f"relayed-{uuid.uuid4().hex[:8]}"
    result = lab_cli(
        "exec",
        "-t",
        str(file),
        "client",
        "--",
        "python3",
        "-m",
        "clients.spew",
        "--host",
        "relay-1",
        marker,
        state=state,
    )
    assert result.returncode == 0, result.stderr
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # and from the host, via the published port
        sock.sendto(f"{marker}-host".encode(), ("127.0.0.1", port))
    deadline = time.monotonic() + 15
    logs = ""
    while time.monotonic() < deadline:
        logs = lab_cli("logs", "-t", str(file), "sink", state=state).stdout
        if marker in logs and f"{marker}-host" in logs:
            break
        time.sleep(0.2)
    assert marker in logs and f"{marker}-host" in logs, logs[-2000:]
    relay_logs = lab_cli("logs", "-t", str(file), "relay-2", state=state).stdout
    assert " relay " in relay_logs
