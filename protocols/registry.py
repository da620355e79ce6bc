"""The built-in services: each one's protocol, ports and command, and how to check that a server is up.

The one place these facts are written. The lab's catalogue (and through it the Compose and Swarm
files), the pytest plugin, ``clients.probe``, ``clients.tour`` and the bench read them here, and
tests/unit/test_registry_drift.py fails when one of them (or ``clients/healthcheck.sh``) drifts from it.
The node image imports this module as well as the host, so it needs nothing beyond the standard library.

A check is named by a protocol and the ports it runs on, so a user's own echo server on 7007 gets
the same check as the built-in one on 7: ``health_command("echo", [Port.parse("7007/tcp")])``.

A new server of a known protocol is one line in ``SERVICES`` (and its Compose needs, if any, in
lab/catalogue.py). A new protocol also needs its server module, ``services/<protocol>.py``, and a
check in clients/probe.py and clients/healthcheck.sh: the drift test says which is missing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# What a probe, a health check or a checker can speak: one module per protocol in protocols/ and services/.
PROTOCOLS: tuple[str, ...] = ("daytime", "echo", "upper", "chat", "doctor", "creosote")
# Probe kinds that only check the port is there, for servers whose protocol is none of the above.
REACHABILITY = ("tcp", "udp")

# What each kind of check can run over; a port of another transport is refused before anything runs.
_SPOKEN: dict[str, tuple[str, ...]] = {
    "daytime": ("tcp", "udp"),
    "echo": ("tcp", "udp"),
    "upper": ("tcp",),
    "chat": ("tcp",),
    "doctor": ("tcp",),
    "creosote": ("udp",),
    "tcp": ("tcp",),
    "udp": ("udp",),
}
# The netcat health check: Docker runs it every second in every container, where starting Python each
# time would cost ~15 % of two cores (measured); clients/healthcheck.sh says more.
_HEALTHCHECK = ("sh", "/opt/testbed/clients/healthcheck.sh")
_PORT_TEXT = re.compile(r"([0-9]{1,5})(?:/(tcp|udp))?")


@dataclass(frozen=True)
class Port:
    """A port a server listens on, with its transport: ``str(Port(7, "udp")) == "7/udp"``."""

    number: int
    transport: str

    def __post_init__(self) -> None:
        if isinstance(self.number, bool) or not isinstance(self.number, int) or not 0 < self.number < 65536:
            raise ValueError(f"port {self.number!r}: a port is a whole number from 1 to 65535")
        if self.transport not in ("tcp", "udp"):
            raise ValueError(f"port {self.number}: transport {self.transport!r} is neither tcp nor udp")

    def __str__(self) -> str:
        return f"{self.number}/{self.transport}"

    @classmethod
    def parse(cls, text: str) -> Port:
        """``"7/udp"``, ``"7/tcp"`` or ``"7"`` (TCP); ``ValueError`` saying what to write otherwise."""
        match = _PORT_TEXT.fullmatch(text)
        if match is None or not 0 < int(match[1]) < 65536:
            raise ValueError(f"{text!r} is not a port: write NUMBER, NUMBER/tcp or NUMBER/udp (1 to 65535), like 7/udp")
        return cls(int(match[1]), match[2] or "tcp")


@dataclass(frozen=True)
class ServiceSpec:
    """A built-in server: the protocol it speaks, the ports it serves and the command that starts it."""

    name: str
    protocol: str
    ports: tuple[Port, ...]
    command: tuple[str, ...]
    model: str | None = None  # the concurrency model of a line server (services.runners.MODELS)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ports", _checked(self.protocol, self.ports, reachability=False))


def _checked(protocol: str, ports: Sequence[Port], *, reachability: bool = True) -> tuple[Port, ...]:
    """``ports`` as a tuple, once ``protocol`` names a check that can run over every one of them."""
    if protocol not in PROTOCOLS and not (reachability and protocol in REACHABILITY):
        choices = ", ".join(PROTOCOLS)
        if reachability:
            choices += f"; or {' or '.join(REACHABILITY)} to check only that the port is there"
        raise ValueError(f"unknown protocol {protocol!r}: choose from {choices}")
    ports = tuple(ports)
    if not ports:
        raise ValueError(f"{protocol}: no port to check; give at least one, like 7/tcp")
    for port in ports:
        if not isinstance(port, Port):
            raise ValueError(f"{protocol}: {port!r} is not a Port (Port.parse('7/udp') makes one)")
        spoken = _SPOKEN[protocol]
        if port.transport not in spoken:
            raise ValueError(f"{protocol} is checked over {' and '.join(spoken)} only, not on {port}")
    return ports


def _server(name: str, protocol: str, ports: str, *, model: str | None = None) -> ServiceSpec:
    """``python3 -m services.<protocol>`` on its ports (all one number), with its model if it has one."""
    parsed = tuple(Port.parse(text) for text in ports.split())
    assert len({port.number for port in parsed}) == 1, f"{name}: one --port serves all of {ports}"
    options = ("--model", model) if model else ()
    command = ("python3", "-m", f"services.{protocol}", *options, "--port", str(parsed[0].number))
    return ServiceSpec(name=name, protocol=protocol, ports=parsed, command=command, model=model)


SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        _server("daytime", "daytime", "13/tcp 13/udp"),
        _server("echo", "echo", "7/tcp 7/udp"),
        _server("creosote", "creosote", "7739/udp"),
        _server("chat", "chat", "5000/tcp"),
        _server("doctor", "doctor", "5001/tcp"),
        # One line server, five concurrency models, each on a port of its own so they can run side by side.
        _server("threaded", "upper", "9000/tcp", model="threaded"),
        _server("iterative", "upper", "9001/tcp", model="iterative"),
        _server("forking", "upper", "9002/tcp", model="forking"),
        _server("selectors", "upper", "9003/tcp", model="selectors"),
        _server("asyncio", "upper", "9004/tcp", model="asyncio"),
    )
}


def health_command(protocol: str, ports: Sequence[Port]) -> tuple[str, ...]:
    """The argv that checks, inside the server's own container, that it answers ``protocol`` on ``ports``.

    ``protocol`` is one of ``PROTOCOLS`` or ``REACHABILITY``; each port is checked by its transport
    (a UDP port by a real datagram exchange). ``ValueError`` names the choices when it is none of them.
    """
    return (*_HEALTHCHECK, protocol, *(str(port) for port in _checked(protocol, ports)))


def probe_command(protocol: str, host: str, ports: Sequence[Port], *, timeout: float = 2.0) -> tuple[str, ...]:
    """The argv of ``python3 -m clients.probe`` checking that ``host`` answers ``protocol`` on ``ports``."""
    checked = _checked(protocol, ports)
    if not host or host.startswith("-"):
        raise ValueError(f"host {host!r}: give a host name or address, like 127.0.0.1")
    if not timeout > 0:
        raise ValueError(f"timeout {timeout!r}: give a positive number of seconds")
    options = [word for port in checked for word in ("--port", str(port))]
    return ("python3", "-m", "clients.probe", protocol, "--host", host, *options, "--timeout", f"{timeout:g}")
