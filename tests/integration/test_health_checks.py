"""The health check in the node image, as Docker runs it: every built-in service, and servers of a user's own.

The argv is the registry's ``health_command``, the one the lab's Compose and Swarm files carry; here Docker
runs it in each container and reports the container healthy or unhealthy, with nothing else deciding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from common.waiting import wait_until
from lab.testing import Lab, Node
from protocols.registry import SERVICES, Port, health_command

SECOND = 1_000_000_000  # Docker takes health check durations in nanoseconds
OWN_PORT = "7007"


def docker_health(protocol: str, ports: Sequence[Port]) -> dict[str, Any]:
    """The registry's check as a container's health check, every half second (the lab checks every second)."""
    return {
        "test": ["CMD", *health_command(protocol, ports)],
        "interval": SECOND // 2,
        "timeout": 3 * SECOND,
        "retries": 2,
        # Failures in the start period do not count: a short one lets "unhealthy" show within seconds, and a
        # slow start only delays "healthy" (any later success turns a container healthy again).
        "start_period": 2 * SECOND,
    }


def health_of(node: Node, expected: str, *, timeout: float = 30.0) -> None:
    """Wait until Docker reports ``expected`` (healthy or unhealthy) for the node; fail with its last checks."""

    def status() -> bool:
        node.wrapped.reload()
        return bool(node.wrapped.attrs["State"]["Health"]["Status"] == expected)

    try:
        wait_until(status, timeout=timeout, interval=0.25, what=f"{node.hostname} to be {expected}")
    except TimeoutError as exc:
        log = node.wrapped.attrs["State"]["Health"].get("Log") or []
        raise AssertionError(f"{exc}; last checks: {log[-3:]}\nlogs:\n{node.logs()}") from None


@pytest.mark.parametrize("service", list(SERVICES))
def test_every_built_in_service_is_healthy_by_its_own_check(lab: Lab, service: str) -> None:
    spec = SERVICES[service]
    node = lab.start_server(service, hostname=f"health-{service}", publish=False)
    code, output = node.exec(*health_command(spec.protocol, spec.ports))
    assert (code, output) == (0, ""), output
    first = spec.ports[0]  # and another protocol on it fails: the check reads the answer, not the port
    wrong = ("echo" if spec.protocol == "upper" else "upper") if first.transport == "tcp" else "echo"
    code, output = node.exec(*health_command(wrong, [first]))
    assert code == 1 and "did not answer" in output, output
    lab.stop(node.hostname)


def own_server(lab: Lab, hostname: str, command: list[str], protocol: str, ports: Sequence[Port]) -> Node:
    """A server on a port of its own, with the registry's health check for ``protocol`` on ``ports``."""
    return lab.start_server(
        "echo",
        hostname=hostname,
        command=command,
        publish=False,
        ready=False,
        healthcheck=docker_health(protocol, ports),
    )


def test_a_users_own_echo_server_on_7007_gets_the_same_health_check(lab: Lab) -> None:
    ports = [Port.parse(f"{OWN_PORT}/tcp"), Port.parse(f"{OWN_PORT}/udp")]
    node = own_server(lab, "own-echo", ["python3", "-m", "services.echo", "--port", OWN_PORT], "echo", ports)
    health_of(node, "healthy")
    lab.stop(node.hostname)


def test_a_server_speaking_another_protocol_is_unhealthy(lab: Lab) -> None:
    ports = [Port.parse(f"{OWN_PORT}/tcp")]
    node = own_server(lab, "own-wrong", ["python3", "-m", "services.echo", "--port", OWN_PORT], "upper", ports)
    health_of(node, "unhealthy")
    lab.stop(node.hostname)


@pytest.mark.parametrize(
    ("kind", "command", "expected"),
    [
        ("tcp", ["python3", "-m", "services.upper", "--port", OWN_PORT], "healthy"),
        ("udp", ["python3", "-m", "services.creosote", "--port", OWN_PORT], "healthy"),  # answers no stray datagram
        ("tcp", ["python3", "-m", "services.creosote", "--port", OWN_PORT], "unhealthy"),  # UDP only: no TCP port
        ("udp", ["python3", "-m", "services.upper", "--port", OWN_PORT], "unhealthy"),  # TCP only: ICMP unreachable
    ],
)
def test_reachability_checks_a_server_that_speaks_none_of_the_protocols(
    lab: Lab, kind: str, command: list[str], expected: str
) -> None:
    node = own_server(lab, f"reach-{kind}-{expected}", command, kind, [Port.parse(f"{OWN_PORT}/{kind}")])
    health_of(node, expected)
    lab.stop(node.hostname)
