"""daytime, echo, threaded and its cousins in containers, across a Docker network by hostname."""

from __future__ import annotations

import re

import pytest

from lab.testing import Lab
from protocols.registry import SERVICES
from tests import conformance

# threaded's cousins: the line server under the other models (iterative, forking, selectors, asyncio).
COUSINS = [name for name, spec in SERVICES.items() if spec.protocol == "upper" and name != "threaded"]


@pytest.fixture(scope="module")
def servers(lab: Lab) -> Lab:
    for service in ["daytime", "echo", "threaded", *COUSINS]:
        lab.start_server(service)
    return lab


def test_every_server_runs_as_non_root_under_its_own_hostname(servers: Lab) -> None:
    for hostname, node in servers.nodes.items():
        code, output = node.exec("sh", "-c", "id -u; hostname")
        uid, name = output.split()
        assert code == 0 and uid == "10001" and name == hostname


def test_daytime_by_hostname_tcp_and_udp(servers: Lab) -> None:
    tcp = servers.run_client("python3", "-m", "clients.daytime", "--host", "daytime").check()
    udp = servers.run_client("python3", "-m", "clients.daytime", "--host", "daytime", "--udp").check()
    pattern = r"^\w+day, \w+ \d\d, \d{4} \d\d:\d\d:\d\d-UTC$"
    assert re.match(pattern, tcp.stdout.strip()), tcp.stdout
    assert re.match(pattern, udp.stdout.strip()), udp.stdout


def test_daytime_from_the_host(servers: Lab) -> None:
    node = servers.nodes["daytime"]
    conformance.check_daytime_tcp("127.0.0.1", node.host_port("13/tcp"))
    conformance.check_daytime_udp("127.0.0.1", node.host_port("13/udp"), empty=False)


def test_probes_speak_udp_inside_the_network(servers: Lab) -> None:
    """Empty datagrams and protocol probes, client container to server container."""
    result = servers.run_client("python3", "-m", "clients.tour", "daytime", "echo", "threaded").check()
    assert result.stdout.count("  ok  ") == 3, result.stdout


@pytest.mark.parametrize("size", [1, 1000, 65536, 1 << 20, 8 << 20])
def test_echo_byte_exact_across_the_network(servers: Lab, size: int) -> None:
    result = servers.run_client(
        "python3", "-m", "clients.echo", "--host", "echo", "--size", str(size), "--quiet"
    ).check()
    assert f"ok: {size} bytes echoed" in result.stderr


def test_echo_from_the_host(servers: Lab) -> None:
    node = servers.nodes["echo"]
    conformance.check_echo_tcp("127.0.0.1", node.host_port("7/tcp"), 8 << 20)
    conformance.check_echo_udp("127.0.0.1", node.host_port("7/udp"))


def test_echo_udp_across_the_network(servers: Lab) -> None:
    result = servers.run_client("sh", "-c", "printf 'datagram' | python3 -m clients.echo --host echo --udp").check()
    assert result.stdout == "datagram"


def test_threaded_200_concurrent_clients_from_two_hosts(servers: Lab) -> None:
    argv = ["python3", "-m", "clients.threaded", "--host", "threaded", "--sessions", "100", "--lines", "5"]
    first = servers.start_client(*argv, hostname="client-a")
    second = servers.start_client(*argv, hostname="client-b")
    for result in (servers.finish(first), servers.finish(second)):
        result.check()
        assert "replies_ok=500 errors=0" in result.stdout, result.stdout


@pytest.mark.parametrize("service", ["threaded", *COUSINS])
def test_line_server_conformance_from_the_host(servers: Lab, service: str) -> None:
    port = servers.nodes[service].host_port(conformance_port(service))
    conformance.check_upper("127.0.0.1", port)
    conformance.check_upper_bad_input("127.0.0.1", port)


@pytest.mark.parametrize("service", COUSINS)
def test_cousins_across_the_network(servers: Lab, service: str) -> None:
    port = conformance_port(service).split("/")[0]
    result = servers.run_client(
        "python3", "-m", "clients.threaded", "--host", service, "--port", port, "--sessions", "20", "--lines", "5"
    ).check()
    assert "replies_ok=100 errors=0" in result.stdout, result.stdout


def conformance_port(service: str) -> str:
    return str(SERVICES[service].ports[0])
