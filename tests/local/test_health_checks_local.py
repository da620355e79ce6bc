"""The health check (clients/healthcheck.sh) and the probe against real servers on 127.0.0.1, ports chosen at random.

The argv is the registry's (``health_command``, ``probe_command``) with the script taken from this checkout,
so what runs here is what Docker runs in each container, on ports a user's own server might have.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from protocols.registry import SERVICES, Port, health_command, probe_command
from tests.local.conftest import ServerProcess, start_server

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "clients" / "healthcheck.sh"


@pytest.fixture(scope="module", autouse=True)
def _openbsd_netcat() -> None:
    nc = shutil.which("nc")
    usage = subprocess.run([nc, "-h"], capture_output=True, text=True).stderr if nc else ""
    if "OpenBSD netcat" not in usage:
        pytest.fail("the health check needs OpenBSD netcat, as the node image has: apt-get install netcat-openbsd")


def health(protocol: str, *ports: str) -> subprocess.CompletedProcess[str]:
    """Run the registry's health check argv, with the script from this checkout instead of the image's."""
    argv = list(health_command(protocol, [Port.parse(port) for port in ports]))
    assert argv[:2] == ["sh", "/opt/testbed/clients/healthcheck.sh"]
    argv[1] = str(SCRIPT)
    return subprocess.run(argv, capture_output=True, text=True, timeout=20)


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    """The script with arguments the registry would refuse to build: it must refuse them too."""
    return subprocess.run(["sh", str(SCRIPT), *args], capture_output=True, text=True, timeout=20)


def probe(protocol: str, *ports: str, timeout: float = 2.0) -> subprocess.CompletedProcess[str]:
    argv = probe_command(protocol, "127.0.0.1", [Port.parse(port) for port in ports], timeout=timeout)
    assert argv[:3] == ("python3", "-m", "clients.probe")
    return subprocess.run([sys.executable, *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=20)


def unused_port() -> int:
    """A port that was free a moment ago: the kernel's pick, let go at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        return int(udp.getsockname()[1])


def ports_of(server: ServerProcess, *transports: str) -> list[str]:
    return [f"{server.fields[transport]}/{transport}" for transport in transports]


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, ServerProcess]]:
    """One server of each protocol, on random ports (as a user's own server would be)."""
    started = {
        "daytime": start_server("services.daytime"),
        "echo": start_server("services.echo"),
        "upper": start_server("services.upper", "--model", "selectors"),
        "chat": start_server("services.chat"),
        "doctor": start_server("services.doctor"),
        "creosote": start_server("services.creosote"),
    }
    yield started
    for server in started.values():
        server.process.kill()
        server.process.wait()
        if server.process.stdout:
            server.process.stdout.close()


# protocol -> the transports its built-in servers serve (the random ports come from the servers' ready lines)
PORTS = {spec.protocol: tuple(port.transport for port in spec.ports) for spec in SERVICES.values()}


def creosote_port(server: ServerProcess) -> str:
    return f"{server.fields['port']}/udp"  # creosote's ready line says port=, not udp=


def own_ports(protocol: str, server: ServerProcess) -> list[str]:
    return [creosote_port(server)] if protocol == "creosote" else ports_of(server, *PORTS[protocol])


@pytest.mark.parametrize("protocol", list(PORTS))
def test_each_protocol_is_healthy_on_the_ports_its_server_has(servers: dict[str, ServerProcess], protocol: str) -> None:
    ports = own_ports(protocol, servers[protocol])
    result = health(protocol, *ports)
    assert (result.returncode, result.stderr) == (0, ""), result
    checked = probe(protocol, *ports)
    assert checked.returncode == 0 and checked.stdout.startswith(f"{protocol} ok: "), checked


@pytest.mark.parametrize(
    ("protocol", "server"), [("doctor", "chat"), ("chat", "doctor"), ("upper", "echo"), ("echo", "upper")]
)
def test_a_server_of_another_protocol_is_not_healthy(
    servers: dict[str, ServerProcess], protocol: str, server: str
) -> None:
    port = ports_of(servers[server], "tcp")[0]
    result = health(protocol, port)
    assert result.returncode == 1
    assert result.stderr == f"healthcheck.sh: {protocol} on {port} did not answer\n"
    assert probe(protocol, port).returncode == 1


def test_reachability_of_a_server_that_speaks_none_of_the_protocols(servers: dict[str, ServerProcess]) -> None:
    tcp, udp = ports_of(servers["echo"], "tcp", "udp")
    assert health("tcp", tcp).returncode == 0
    began = time.monotonic()
    assert health("udp", creosote_port(servers["creosote"])).returncode == 0  # silence: nobody refused it
    assert 0.5 < time.monotonic() - began < 5
    assert probe("udp", udp).returncode == 0 and probe("tcp", tcp).returncode == 0


def test_nothing_listening_is_unhealthy_at_once() -> None:
    port = unused_port()
    for protocol, transport in [("tcp", "tcp"), ("udp", "udp"), ("echo", "udp"), ("daytime", "tcp")]:
        began = time.monotonic()
        result = health(protocol, f"{port}/{transport}")
        assert result.returncode == 1, (protocol, result)
        assert time.monotonic() - began < 1.5, f"{protocol}/{transport}: refused, yet it waited"
    refused = probe("udp", f"{port}/udp")
    assert refused.returncode == 1 and "ICMP port unreachable" in refused.stderr


def test_every_port_must_answer(servers: dict[str, ServerProcess]) -> None:
    tcp, _ = ports_of(servers["echo"], "tcp", "udp")
    port = unused_port()
    result = health("echo", tcp, f"{port}/udp")
    assert result.returncode == 1 and f"echo on {port}/udp did not answer" in result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "give a protocol and at least one port"),
        (("echo",), "give a protocol and at least one port"),
        (("smtp", "25"), "unknown protocol 'smtp'"),
        (("echo", "7/sctp"), "its transport is tcp or udp"),
        (("echo", "7/"), "its transport is tcp or udp"),
        (("echo", "7/tcp/udp"), "its transport is tcp or udp"),
        (("echo", "0"), "ports run from 1 to 65535"),
        (("echo", "65536"), "ports run from 1 to 65535"),
        (("echo", "1234567890123"), "ports run from 1 to 65535"),
        (("echo", "-1"), "is not a port"),
        (("echo", "7;id"), "is not a port"),
        (("echo", "$(id)"), "is not a port"),
        (("echo", ""), "is not a port"),
        (("upper", "9000/udp"), "upper has no check over udp"),
        (("creosote", "7739"), "creosote has no check over tcp"),
        (("udp", "53"), "udp has no check over tcp"),
        (("echo", "7/tcp", "x"), "'x' is not a port"),  # every argument is checked before any is used
    ],
)
def test_the_script_refuses_bad_arguments_before_sending_anything(args: Sequence[str], says: str) -> None:
    result = run_script(*args)
    assert result.returncode == 2 and says in result.stderr, result
    assert "usage: healthcheck.sh PROTOCOL PORT" in result.stderr
