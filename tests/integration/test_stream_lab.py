"""daytime, echo, threaded and its cousins in containers, across a Docker network by hostname."""

from __future__ import annotations

import re

import pytest

from clients.check import Target, run, upper
from lab.testing import Lab
from protocols.registry import SERVICES
from protocols.upper import parse_answer

# threaded's cousins: the line server under the other models (iterative, forking, selectors, asyncio).
COUSINS = [name for name, spec in SERVICES.items() if spec.protocol == "upper" and name != "threaded"]
HOST = "127.0.0.1"  # the checks run from the host, through the published ports
# Every upper check but silent-client: the iterative model serves one client at a time by design.
UPPER_CHECKS = ["one-line", "each-line", "coalesced", "split-line", "long-line", "bad-utf8"]


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
    target = Target(HOST, node.host_port("13/tcp"), node.host_port("13/udp"))
    # Not udp.empty-datagram: Docker's port proxy drops empty datagrams (the check says so when it fails).
    report = run("daytime", target, only=["tcp.*", "udp.any-datagram"], timeout=10.0)
    assert report.passed, report.text()
    times = [r for r in report.results if r.name in ("daytime.tcp.time", "daytime.udp.any-datagram")]
    assert all(r.detail.startswith("RFC 867's suggested format") for r in times), report.text()


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
    target = Target(HOST, node.host_port("7/tcp"), node.host_port("7/udp"))
    report = run("echo", target, only=["tcp.*", "udp.datagrams"], timeout=10.0)
    assert report.passed, report.text()


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
    only = UPPER_CHECKS if service == "iterative" else [*UPPER_CHECKS, "silent-client"]
    report = run("upper", Target(HOST, port), only=only, timeout=10.0)
    assert report.passed, report.text()
    replies = upper.exchange(Target(HOST, port), [b"a" * 5000 + b"\n", b"\xff\xfe\n", b"still here\n"])
    assert replies[0].startswith(b"error: line longer than")
    assert replies[1] == b"error: line is not valid UTF-8"
    assert parse_answer(replies[2].decode())[1] == "STILL HERE"


@pytest.mark.parametrize("service", ["daytime", "echo", "threaded"])
def test_the_checker_from_a_client_container(servers: Lab, service: str) -> None:
    """python3 -m clients.check inside the lab network, by hostname and default port (threaded: upper on 9000)."""
    result = servers.run_client("python3", "-m", "clients.check", service, service, "--timeout", "10")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "all passed" in result.stdout, result.stdout


@pytest.mark.parametrize("service", COUSINS)
def test_cousins_across_the_network(servers: Lab, service: str) -> None:
    port = conformance_port(service).split("/")[0]
    result = servers.run_client(
        "python3", "-m", "clients.threaded", "--host", service, "--port", port, "--sessions", "20", "--lines", "5"
    ).check()
    assert "replies_ok=100 errors=0" in result.stdout, result.stdout


def conformance_port(service: str) -> str:
    return str(SERVICES[service].ports[0])
