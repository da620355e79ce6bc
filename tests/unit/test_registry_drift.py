"""Everything that knows the built-in services agrees with protocols/registry.py, where they are written.

The catalogue and the files rendered through it (compose.yaml, the Swarm stack), the health check script,
the probe, the tour, the pytest plugin, the bench and the servers themselves: each test below fails when
one of them says something of a service, a port or a protocol that the registry does not.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench import report
from bench.options import LINE_SERVERS, PEER_STANDS_IN_FOR
from clients import probe, tour
from lab import catalogue, swarm, testing
from lab.loader import load
from protocols import chat, creosote, daytime, doctor, upper
from protocols.registry import PROTOCOLS, REACHABILITY, SERVICES, Port, health_command, probe_command
from services.runners import MODELS
from services.upper import BY_MODEL

ROOT = Path(__file__).resolve().parents[2]
HEALTHCHECK = (ROOT / "clients" / "healthcheck.sh").read_text(encoding="utf-8")
DEFAULT = ROOT / "topology" / "default.yaml"


def checkable() -> set[tuple[str, str]]:
    """Every (protocol or reachability kind, transport) the registry builds a check for."""
    found = set()
    for kind in (*PROTOCOLS, *REACHABILITY):
        for transport in ("tcp", "udp"):
            try:
                health_command(kind, [Port(1, transport)])
            except ValueError:
                continue
            found.add((kind, transport))
    return found


# --------------------------------------------------------------------------- the checks


def test_the_probe_has_a_check_for_every_protocol_and_transport_the_registry_does() -> None:
    assert set(probe.CHECKS) == checkable()


def test_healthcheck_sh_knows_every_protocol_and_runs_the_same_checks() -> None:
    [accepted] = re.findall(r'case "\$protocol" in\n\s+(.*)\) ;;', HEALTHCHECK)
    assert accepted.split(" | ") == [*PROTOCOLS, *REACHABILITY]
    validated = HEALTHCHECK[HEALTHCHECK.index("# Every argument is checked") : HEALTHCHECK.index("tcp_line() {")]
    assert set(re.findall(r"(\w+)/(tcp|udp)\b", validated)) == checkable()
    check = HEALTHCHECK[HEALTHCHECK.index("check() {") :]
    assert set(re.findall(r"^\s+(\w+)/(tcp|udp)\) ", check, re.MULTILINE)) == checkable()
    usage = re.search(r"\(PROTOCOL: (.*), or tcp or udp\)", HEALTHCHECK)
    assert usage is not None and usage[1].split() == list(PROTOCOLS)


def expectations() -> dict[tuple[str, str], str]:
    """(protocol, transport) -> the pattern healthcheck.sh greps the answer for."""
    found = re.findall(r"^\s+(\w+)/(tcp|udp)\) (?:tcp_line|udp_reply) \"\$1\" '[^']*' '([^']*)' ;;", HEALTHCHECK, re.M)
    return {(protocol, transport): pattern for protocol, transport, pattern in found}


@pytest.mark.parametrize(
    ("check", "answer"),
    [
        (("daytime", "tcp"), daytime.format_daytime(datetime.now(UTC))),
        (("daytime", "udp"), daytime.answer_datagram(b"\n")),
        (("echo", "tcp"), b"probe\n"),
        (("echo", "udp"), b"probe"),
        (("upper", "tcp"), upper.answer_line(b"probe", now=0.0)),
        (("chat", "tcp"), chat.GREETING.encode()),
        (("doctor", "tcp"), doctor.GREETING.encode()),
        (("creosote", "udp"), creosote.pong(12)),
    ],
    ids=lambda value: "/".join(value) if isinstance(value, tuple) else "answer",  # the same in every worker
)
def test_healthcheck_sh_expects_what_the_protocol_modules_answer(check: tuple[str, str], answer: bytes) -> None:
    pattern = expectations()[check]  # grep's basic regular expressions: these few read the same in Python
    first_line = answer.decode().splitlines()[0].rstrip("\r")
    assert re.search(pattern, first_line), f"healthcheck.sh greps {pattern!r}; the {check[0]} answer is {answer!r}"


# --------------------------------------------------------------------------- the lab's files


def test_the_catalogue_runs_every_registry_service_with_its_command_ports_and_health_check() -> None:
    for name, spec in SERVICES.items():
        service = catalogue.SERVICES[name]
        assert service.command[: len(spec.command)] == spec.command, name
        assert (service.ports, service.protocol) == (spec.ports, spec.protocol), name
        assert service.health_test() == ("CMD", *health_command(spec.protocol, spec.ports)), name
    assert set(catalogue.SERVICES) - set(SERVICES) == {"client"}  # the one node kind that serves nothing


def test_a_data_volume_holds_what_the_command_writes() -> None:
    for service in catalogue.SERVICES.values():
        for volume in service.volumes:
            assert any(word.startswith(f"{volume.mount}/") for word in service.command), service.name


def compose_file() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    return document


def test_compose_yaml_ports_commands_and_health_checks_are_the_registrys() -> None:
    topology = load(DEFAULT)
    rendered = compose_file()["services"]
    servers = [node for node in topology.nodes if node.service in SERVICES]
    assert {node.service for node in servers} == set(SERVICES)
    for node in servers:
        spec, service = SERVICES[node.service], rendered[node.name]
        assert service["command"][: len(spec.command)] == list(spec.command), node.name
        assert service["healthcheck"]["test"] == ["CMD", *health_command(spec.protocol, spec.ports)], node.name
        published = {port.rsplit(":", 1)[1] for port in service["ports"]}  # 127.0.0.1:10013:13/udp -> 13/udp
        assert published == {str(port) for port in spec.ports}, node.name


def test_the_swarm_stack_has_the_registrys_health_checks() -> None:
    stack: dict[str, Any] = swarm.render(load(DEFAULT))
    for name, service in stack["services"].items():
        spec = SERVICES[name]
        assert service["healthcheck"]["test"] == ["CMD", *health_command(spec.protocol, spec.ports)], name
        assert {f"{p['target']}/{p['protocol']}" for p in service["ports"]} == {str(p) for p in spec.ports}, name


# --------------------------------------------------------------------------- clients, plugin, bench, servers


def test_the_tour_visits_the_default_labs_servers() -> None:
    topology = load(DEFAULT)
    unprofiled = [node.service for node in topology.nodes if not node.profiles and node.service in SERVICES]
    assert list(tour.DEFAULT_SERVICES) == unprofiled


def test_the_plugin_probes_with_the_registrys_command_and_keeps_no_port_table() -> None:
    assert not [name for name in vars(testing) if "PORT" in name]
    for name, spec in SERVICES.items():
        assert testing.probe_argv(name, timeout=1.5) == probe_command(
            spec.protocol, "127.0.0.1", spec.ports, timeout=1.5
        )


def test_the_benchs_line_servers_are_the_registrys() -> None:
    line = [name for name, spec in SERVICES.items() if spec.protocol == "upper"]
    assert list(report.MODELS) == line and list(LINE_SERVERS) == [*line, report.PEER]
    for name, (service, port, command) in LINE_SERVERS.items():
        assert Port(port, "tcp") in SERVICES[service].ports, name
        assert command is None or (service == PEER_STANDS_IN_FOR and command[-2:] == ["--port", str(port)])


def test_the_line_server_has_a_row_for_every_model_and_the_registry_a_service() -> None:
    assert set(BY_MODEL) == set(MODELS)
    assert sorted(spec.model or "" for spec in SERVICES.values() if spec.protocol == "upper") == sorted(MODELS)


def test_every_service_is_started_by_a_server_module_that_exists() -> None:
    for spec in SERVICES.values():
        where = ROOT / spec.command[spec.command.index("-m") + 1].replace(".", "/")
        assert where.with_suffix(".py").is_file() or (where / "__main__.py").is_file(), spec.name  # a module, a package


@pytest.mark.parametrize("name", ["daytime", "echo", "doctor", "threaded", "forking"])
def test_the_pids_limit_holds_every_client_the_server_admits(name: str) -> None:
    """A thread or process per client: a pids limit under the client cap turns clients away and fails the check."""
    spec = SERVICES[name]
    module = spec.command[2]
    help_text = subprocess.run([sys.executable, "-m", module, *spec.command[3:-2], "--help"], capture_output=True,
                               text=True, check=True, timeout=30).stdout  # fmt: skip
    found = re.search(r"--max-clients MAX_CLIENTS\s+.*?\(default: (\d+)\)", help_text, re.S)
    assert found is not None, help_text
    cap = int(found.group(1))
    assert catalogue.SERVICES[name].pids_limit >= cap + 32, (name, cap, catalogue.SERVICES[name].pids_limit)
