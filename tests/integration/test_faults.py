"""Breaking the network and the servers on purpose: restarts, partitions, resource limits."""

from __future__ import annotations

import pytest
from docker.models.containers import Container

from lab.engine import wait_for_output
from lab.testing import Lab

pytestmark = pytest.mark.alone  # kills, restarts and disconnects nodes: see the marker in pyproject.toml


@pytest.fixture(scope="module")
def threaded(lab: Lab) -> Lab:
    lab.start_server("threaded")
    return lab


def reconnecting_client(lab: Lab, hostname: str, lines: int) -> Container:
    return lab.start_client(
        "python3",
        "-m",
        "clients.threaded",
        "--host",
        "threaded",
        "--reconnect",
        "--lines",
        str(lines),
        "--interval",
        "0.1",
        "--timeout",
        "2",
        hostname=hostname,
    )


def test_server_restart_mid_session_client_reconnects(threaded: Lab) -> None:
    client = reconnecting_client(threaded, "client-restart", 40)
    wait_for_output(client, "LINE 5")
    threaded.nodes["threaded"].wrapped.restart(timeout=2)
    result = threaded.finish(client, timeout=90).check()
    assert "connection lost" in result.stdout + result.stderr
    assert result.stdout.count("connected to threaded:9000") >= 2
    assert "LINE 40" in result.stdout


def test_partition_and_heal_through_the_docker_api(threaded: Lab) -> None:
    client = reconnecting_client(threaded, "client-partition", 40)
    wait_for_output(client, "LINE 5")
    network = threaded.client.networks.get(threaded.name)
    network.disconnect(client)
    wait_for_output(client, "connection lost")
    network.connect(client)
    result = threaded.finish(client, timeout=120).check()
    assert "LINE 40" in result.stdout
    assert result.stdout.count("connected to threaded:9000") >= 2


def test_server_under_tight_pids_and_memory_limits_stays_up(lab: Lab) -> None:
    """Over its pids limit the server turns clients away with an error line; it never falls over."""
    node = lab.start_server("threaded", hostname="tight", pids_limit=40, mem_limit="64m")
    result = lab.run_client(
        "python3", "-m", "clients.threaded", "--host", "tight", "--sessions", "200", "--lines", "3", "--timeout", "10"
    )
    # Some sessions are refused (busy) under 40 pids; the rest are served correctly.
    assert "replies_ok=" in result.stdout, result.stdout + result.stderr
    served = int(result.stdout.split("replies_ok=")[1].split()[0])
    assert served > 0
    if result.exit_code != 0:
        assert "busy" in result.stderr or "closed" in result.stderr, result.stderr
    node.wrapped.reload()
    assert node.wrapped.status == "running"
    code, output = node.probe()
    assert code == 0, output
    assert node.wrapped.attrs["HostConfig"]["PidsLimit"] == 40
