"""What the node image offers: each service's command, ports, health probe and resource needs.

This is the only place the lab engine knows anything about a particular
server. A topology names a service; the renderer asks the catalogue how to run
it. Adding a server to the lab is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols import registry

CREOSOTE_LOG_DIR = "/var/log/creosote"
# The health check of every server: one real exchange in its protocol (UDP too), run inside its container.
# A netcat exchange in the protocol itself (see clients/healthcheck.sh): a tenth of the cost of
# `python3 -m clients.probe`, which matters when Docker runs it every second in every container.
HEALTH_PROBE = ("sh", "/opt/testbed/clients/healthcheck.sh")


@dataclass(frozen=True)
class ServicePort:
    """A port the service listens on inside its container, with its transport protocols."""

    number: int
    protocols: tuple[str, ...] = ("tcp",)


@dataclass(frozen=True)
class Volume:
    """A named volume the service keeps its data in; its Compose name is ``<node>-<suffix>``."""

    suffix: str
    mount: str


@dataclass(frozen=True)
class Service:
    """How to run one kind of node. ``probe`` is the ``clients.probe`` name, or None for no health check."""

    name: str
    command: tuple[str, ...]
    ports: tuple[ServicePort, ...] = ()
    probe: str | None = None
    mem_limit: str = "128m"
    pids_limit: int = 128
    volumes: tuple[Volume, ...] = ()
    restart: str = "unless-stopped"
    interactive: bool = False  # stdin open, no tty: `docker compose run` pipes into it

    def health_test(self) -> tuple[str, ...] | None:
        """The health check speaks the service's protocol: a TCP port check says nothing about UDP."""
        if self.probe is None:
            return None
        return ("CMD", *HEALTH_PROBE, self.probe)


def _server(name: str, port: int, *protocols: str, mem_limit: str = "128m", pids_limit: int = 128) -> Service:
    """A server started as ``python3 -m services.<name>`` whose probe has its name."""
    return Service(
        name=name,
        command=registry.SERVICES[name].command,
        ports=(ServicePort(port, protocols or ("tcp",)),),
        probe=name,
        mem_limit=mem_limit,
        pids_limit=pids_limit,
    )


SERVICES: dict[str, Service] = {
    service.name: service
    for service in (
        _server("daytime", 13, "tcp", "udp"),
        _server("echo", 7, "tcp", "udp"),
        Service(
            name="creosote",
            command=("python3", "-m", "services.creosote", "--log-file", f"{CREOSOTE_LOG_DIR}/records.jsonl"),
            ports=(ServicePort(7739, ("udp",)),),
            probe="creosote",
            volumes=(Volume("log", CREOSOTE_LOG_DIR),),
        ),
        _server("chat", 5000),
        _server("doctor", 5001),
        # Thread-per-client and forking servers need room for hundreds of clients.
        _server("threaded", 9000, mem_limit="256m", pids_limit=1200),
        _server("iterative", 9001),
        _server("forking", 9002, mem_limit="512m", pids_limit=1200),
        _server("selectors", 9003),
        _server("asyncio", 9004),
        # Every client and the lab's tools; load generators need memory and many threads.
        Service(
            name="client",
            command=("python3", "-m", "clients.tour"),
            mem_limit="512m",
            pids_limit=2048,
            restart="no",
            interactive=True,
        ),
    )
}

# Routers are not a node service: they forward packets and run nothing but a
# placeholder process, so their container lives as long as the lab does.
ROUTER = Service(name="router", command=("sleep", "infinity"), restart="unless-stopped")

NODE_SERVICES = tuple(SERVICES)


def published_default(service: Service) -> int | None:
    """The host port a service is published on by convention: 10000 + its first port."""
    return 10000 + service.ports[0].number if service.ports else None
