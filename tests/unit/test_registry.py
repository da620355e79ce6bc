"""protocols/registry.py: its ports, its services, and the commands it builds."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.registry import PROTOCOLS, REACHABILITY, SERVICES, Port, ServiceSpec, health_command, probe_command


@given(st.integers(1, 65535), st.sampled_from(["tcp", "udp"]))
def test_a_port_reads_back_what_it_writes(number: int, transport: str) -> None:
    port = Port(number, transport)
    assert str(port) == f"{number}/{transport}"
    assert Port.parse(str(port)) == port


def test_a_bare_number_is_tcp() -> None:
    assert Port.parse("7") == Port(7, "tcp")
    assert Port.parse("00053/udp") == Port(53, "udp")


@pytest.mark.parametrize(
    "text",
    ["", "7/", "/udp", "0", "65536", "99999999", "7/UDP", "7/sctp", "7 ", " 7", "7/tcp/udp", "-7", "\u0667", "7;x"],
)
def test_a_bad_port_says_what_to_write(text: str) -> None:
    with pytest.raises(ValueError, match="write NUMBER, NUMBER/tcp or NUMBER/udp"):
        Port.parse(text)


@pytest.mark.parametrize(("number", "transport"), [(0, "tcp"), (65536, "udp"), (True, "tcp"), (7, "sctp"), (7, "")])
def test_a_port_is_checked_when_built(number: int, transport: str) -> None:
    with pytest.raises(ValueError):
        Port(number, transport)


def test_every_service_is_started_on_its_ports_by_its_protocols_server() -> None:
    for name, spec in SERVICES.items():
        assert spec.name == name and spec.protocol in PROTOCOLS
        assert spec.command[:3] == ("python3", "-m", f"services.{spec.protocol}")
        assert spec.command[-2:] == ("--port", str(spec.ports[0].number))
        assert {port.number for port in spec.ports} == {spec.ports[0].number}


def test_the_line_servers_are_one_server_with_five_models() -> None:
    line = {name: spec for name, spec in SERVICES.items() if spec.protocol == "upper"}
    assert [(name, spec.model, str(spec.ports[0])) for name, spec in line.items()] == [
        ("threaded", "threaded", "9000/tcp"),
        ("iterative", "iterative", "9001/tcp"),
        ("forking", "forking", "9002/tcp"),
        ("selectors", "selectors", "9003/tcp"),
        ("asyncio", "asyncio", "9004/tcp"),
    ]
    assert SERVICES["forking"].command == ("python3", "-m", "services.upper", "--model", "forking", "--port", "9002")
    assert all(spec.model is None for spec in SERVICES.values() if spec.protocol != "upper")


def test_no_two_services_share_a_port() -> None:
    ports = [port for spec in SERVICES.values() for port in spec.ports]
    assert len(ports) == len(set(ports))


def test_a_service_speaks_a_protocol_over_ports_it_can_be_checked_on() -> None:
    with pytest.raises(ValueError, match="unknown protocol 'tcp'"):
        ServiceSpec("mine", "tcp", (Port(8080, "tcp"),), ("true",))
    with pytest.raises(ValueError, match="upper is checked over tcp only, not on 9000/udp"):
        ServiceSpec("mine", "upper", (Port(9000, "udp"),), ("true",))
    with pytest.raises(ValueError, match="no port"):
        ServiceSpec("mine", "echo", (), ("true",))


def test_the_health_check_names_protocol_and_ports() -> None:
    assert health_command("echo", SERVICES["echo"].ports) == (
        "sh", "/opt/testbed/clients/healthcheck.sh", "echo", "7/tcp", "7/udp"
    )  # fmt: skip
    assert health_command("echo", [Port(7007, "tcp")])[-2:] == ("echo", "7007/tcp")  # a user's own echo server
    assert health_command("udp", [Port(5353, "udp")])[-2:] == ("udp", "5353/udp")


def test_the_probe_command_names_protocol_host_ports_and_timeout() -> None:
    assert probe_command("daytime", "daytime", SERVICES["daytime"].ports, timeout=2.5) == (
        "python3", "-m", "clients.probe", "daytime", "--host", "daytime",
        "--port", "13/tcp", "--port", "13/udp", "--timeout", "2.5",
    )  # fmt: skip
    assert probe_command("tcp", "127.0.0.1", [Port(8080, "tcp")])[-2:] == ("--timeout", "2")


Build = Callable[[str, Sequence[Port]], tuple[str, ...]]


@pytest.mark.parametrize("build", [health_command, lambda p, ports: probe_command(p, "127.0.0.1", ports)])
def test_checks_refuse_what_they_cannot_do_and_name_the_choices(build: Build) -> None:
    with pytest.raises(ValueError) as unknown:
        build("smtp", [Port(25, "tcp")])
    assert all(name in str(unknown.value) for name in (*PROTOCOLS, *REACHABILITY))
    for protocol, port in [("creosote", "7739/tcp"), ("upper", "9000/udp"), ("tcp", "53/udp"), ("udp", "53/tcp")]:
        with pytest.raises(ValueError, match=f"{protocol} is checked over"):
            build(protocol, [Port.parse(port)])
    with pytest.raises(ValueError, match="no port"):
        build("echo", [])
    with pytest.raises(ValueError, match="not a Port"):
        build("echo", ["7/tcp"])  # type: ignore[list-item]


@pytest.mark.parametrize(("host", "timeout"), [("", 2.0), ("--port", 2.0), ("echo", 0.0), ("echo", float("nan"))])
def test_the_probe_command_refuses_a_bad_host_or_timeout(host: str, timeout: float) -> None:
    with pytest.raises(ValueError):
        probe_command("echo", host, [Port(7, "tcp")], timeout=timeout)
