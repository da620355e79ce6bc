"""``lab ps`` tells what a connect from this machine sees of each published port, beside what Docker says.

One module-wide lab of ``topologies/host-ports.yaml``: echo publishes TCP and UDP port 7, and
``silent`` publishes a TCP port nothing listens on inside it. A host port that refuses while Docker
says healthy is made honestly, without touching Docker's processes: a node cut off its network
loses its port proxy (Docker stops it with the endpoint) while its health check, run inside the
container, still passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common.waiting import wait_until
from lab import cli
from lab.topology_fixture import TopologyLab

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

TOPOLOGY = Path(__file__).parent / "topologies" / "host-ports.yaml"


@pytest.fixture
def topo(topology: Callable[..., TopologyLab]) -> TopologyLab:
    return topology(TOPOLOGY)


@pytest.fixture
def healed(topo: TopologyLab) -> Iterator[TopologyLab]:
    try:
        yield topo
    finally:
        topo.heal()


def lab_ps(topo: TopologyLab, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, str], list[str]]:
    """``lab ps`` as a user runs it: the table's rows by node, and the lines under the table."""
    capsys.readouterr()
    assert cli.main(["ps", "-t", topo.name]) == 0
    lines = capsys.readouterr().out.splitlines()
    end = lines.index("") if "" in lines else len(lines)
    assert lines[1].endswith("  FROM THIS HOST"), lines[1]
    return {line.split()[0]: line for line in lines[2:end]}, lines[end:]


def state(topo: TopologyLab, node: str) -> str:
    """What Docker says of a node, as ``lab ps`` shows it."""
    return next(r.state for r in topo.status(probe=False) if r.node == node)


def outcomes(topo: TopologyLab, node: str) -> list[tuple[str, str]]:
    """What the engine API (the plugin's face of ``lab ps``) says of each of a node's published ports."""
    row = next(r for r in topo.status() if r.node == node)
    return [(f"{p.port.container_port}/{p.port.transport}", p.outcome) for p in row.probes]


def test_each_published_tcp_port_is_connected_to_and_udp_is_said_not_probed(
    topo: TopologyLab, capsys: pytest.CaptureFixture[str]
) -> None:
    rows, notes = lab_ps(topo, capsys)
    assert rows["echo"].endswith("tcp ok, udp not probed"), rows["echo"]
    silent = topo.host_port("silent", 9)
    assert rows["silent"].endswith(f"{silent}/tcp closed at once"), rows["silent"]
    # Nothing listens inside silent: Docker's proxy accepts, then hangs up; Docker has no health check to ask.
    assert notes[1:] == [
        "not answering from this machine:",
        f"  silent: running, host port 127.0.0.1:{silent} closed at once",
        "    Docker's proxy answers, but nothing listens behind it in the container:"
        f" see lab logs -t {topo.name} silent",
    ]
    assert outcomes(topo, "echo") == [("7/tcp", "ok"), ("7/udp", "not probed")]


def test_a_healthy_node_whose_host_port_refuses_is_shown_plainly(
    healed: TopologyLab, capsys: pytest.CaptureFixture[str]
) -> None:
    port = healed.host_port("echo", 7)
    # lab up returns on the server's ready line, which may come before Docker's first health check
    wait_until(lambda: state(healed, "echo") == "running (healthy)", timeout=30, what="Docker to call echo healthy")
    healed.node("echo").disconnect("lan")  # Docker stops its port proxy with the endpoint
    rows, notes = lab_ps(healed, capsys)
    assert "running (healthy)" in rows["echo"], rows["echo"]  # Docker's own check, inside, still passes
    assert rows["echo"].endswith(f"{port}/tcp refused, udp not probed"), rows["echo"]
    assert f"  echo: healthy, host port 127.0.0.1:{port} refused" in notes, notes
    assert "    it is cut off a network, and its ports went with it: lab heal reconnects it" in notes, notes
    assert outcomes(healed, "echo") == [("7/tcp", "refused"), ("7/udp", "not probed")]

    healed.heal()
    wait_until(lambda: outcomes(healed, "echo")[0][1] == "ok", timeout=30, what="echo's host port to answer again")
    rows, notes = lab_ps(healed, capsys)
    assert rows["echo"].endswith("tcp ok, udp not probed") and not any("echo" in line for line in notes), notes
