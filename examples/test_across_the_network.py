"""Testing across a network with the `topology` fixture: a complete test file to copy.

Install the testbed (``pip install -e /path/to/socket-testbed[test]``, which registers the
pytest plugin), build its images (``scripts/setup``), then run ``pytest`` on this file from
anywhere. Each test module gets its own copy of the lab, on free subnets, and nothing is
left behind, even if a test fails or the run is interrupted (the next run sweeps it).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest

from lab.topology_fixture import TopologyLab

pytestmark = pytest.mark.docker

# One TCP daytime exchange from inside the client node, timed: connect, read the line, close.
TIMED_DAYTIME = """
import json, socket, time
start = time.perf_counter()
with socket.create_connection(("daytime", 13), timeout=5) as s:
    line = s.recv(100)
print(json.dumps({"ms": (time.perf_counter() - start) * 1e3, "line": line.decode()}))
"""

TWO_LANS = "topology/two-lans.yaml"  # a path, or the name of a file in the testbed's topology/ folder


@pytest.fixture
def lab(topology: Callable[..., TopologyLab]) -> TopologyLab:
    return topology(TWO_LANS)


def daytime_ms(lab: TopologyLab) -> float:
    ran = lab.run("client", "python3", "-c", TIMED_DAYTIME)
    assert ran.exit_code == 0, ran.output
    return float(json.loads(ran.output)["ms"])


def test_the_client_gets_the_time_across_the_router(lab: TopologyLab) -> None:
    ran = lab.run("client", "python3", "-m", "clients.daytime", "--host", "daytime")
    assert ran.exit_code == 0, ran.output
    assert "UTC" in ran.output


def test_a_delay_on_daytime_shows_in_the_timings(lab: TopologyLab) -> None:
    before = daytime_ms(lab)
    lab.impair("daytime", delay="80ms")
    try:
        after = daytime_ms(lab)
    finally:
        lab.clear("daytime")
    assert after > before + 80, (before, after)  # the SYN-ACK and the line each wait 80 ms


def test_a_partition_fails_the_client_and_heal_brings_it_back(lab: TopologyLab) -> None:
    lab.partition("client", "daytime")
    try:
        cut = lab.run("client", "python3", "-m", "clients.daytime", "--host", "daytime", "--timeout", "2")
        assert cut.exit_code != 0, cut.output
    finally:
        lab.heal()
    back = lab.run("client", "python3", "-m", "clients.daytime", "--host", "daytime")
    assert back.exit_code == 0, back.output


def test_addresses_are_the_files_moved_to_a_free_subnet(lab: TopologyLab) -> None:
    assert lab.address("daytime", "servers") == lab.moved_address("10.71.2.13")


def test_a_capture_on_the_server_lan_sees_the_daytime_exchange(lab: TopologyLab) -> None:
    done = threading.Event()

    def ask() -> None:
        while not done.is_set():  # until the capture has its packets
            lab.run("client", "python3", "-m", "clients.daytime", "--host", "daytime")

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        captured = lab.capture("servers", count=10, expression=["tcp", "port", "13"])
    finally:
        done.set()
        asker.join()
    daytime = lab.address("daytime", "servers")
    assert any(flow.startswith("tcp ") and flow.endswith(f"-> {daytime}:13") for flow in captured.summary())
