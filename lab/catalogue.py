"""What the lab adds to each service of the node image to run it: memory, processes, volumes, restarts.

A topology names a service; the renderers (lab/compose.py, lab/swarm.py) ask the catalogue how to run
it. What a built-in server *is* (its protocol, ports and command) is written once, in
protocols/registry.py; every server there is a service here, with the health check its protocol
gives it. This module adds only what running it in the lab needs, and the nodes that are no server:
the ``client`` and the routers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from protocols import registry
from protocols.registry import Port, health_command

CREOSOTE_LOG_DIR = "/var/log/creosote"


@dataclass(frozen=True)
class Volume:
    """A named volume the service keeps its data in; its Compose name is ``<node>-<suffix>``."""

    suffix: str
    mount: str


@dataclass(frozen=True)
class Service:
    """How to run one kind of node. ``protocol`` names its health check (registry.health_command), or None."""

    name: str
    command: tuple[str, ...]
    ports: tuple[Port, ...] = ()
    protocol: str | None = None
    mem_limit: str = "128m"
    pids_limit: int = 128
    volumes: tuple[Volume, ...] = ()
    restart: str = "unless-stopped"
    interactive: bool = False  # stdin open, no tty: `docker compose run` pipes into it

    def health_test(self) -> tuple[str, ...] | None:
        """The health check speaks the service's protocol on each of its ports: a TCP port check says nothing of UDP."""
        if self.protocol is None:
            return None
        return ("CMD", *health_command(self.protocol, self.ports))


def _served(spec: registry.ServiceSpec) -> Service:
    """A built-in server as the lab runs it by default: its own command, ports and health check."""
    return Service(name=spec.name, command=spec.command, ports=spec.ports, protocol=spec.protocol)


_BUILT_IN = {name: _served(spec) for name, spec in registry.SERVICES.items()}

PIDS_HEADROOM = 64

SERVICES: dict[str, Service] = {
    **_BUILT_IN,
    # Its records go to a volume of its own, so they outlive the container.
    "creosote": replace(
        _BUILT_IN["creosote"],
        command=(*_BUILT_IN["creosote"].command, "--log-file", f"{CREOSOTE_LOG_DIR}/records.jsonl"),
        volumes=(Volume("log", CREOSOTE_LOG_DIR),),
    ),
    # A thread (or process) per client: the pids limit must hold every client the server admits, plus its own
    # threads and the health check's `docker exec` (sh, nc). Under it, ~125 held connections made echo and
    # doctor turn everyone away, and the check failed with "Cannot fork". A test keeps these above the caps.
    "daytime": replace(_BUILT_IN["daytime"], pids_limit=512 + PIDS_HEADROOM),
    "echo": replace(_BUILT_IN["echo"], pids_limit=256 + PIDS_HEADROOM),
    "doctor": replace(_BUILT_IN["doctor"], pids_limit=256 + PIDS_HEADROOM),
    "threaded": replace(_BUILT_IN["threaded"], mem_limit="256m", pids_limit=1200),
    "forking": replace(_BUILT_IN["forking"], mem_limit="512m", pids_limit=1200),
    # Every client and the lab's tools; load generators need memory and many threads.
    "client": Service(
        name="client",
        command=("python3", "-m", "clients.tour"),
        mem_limit="512m",
        pids_limit=2048,
        restart="no",
        interactive=True,
    ),
}

# Routers are not a node service: they forward packets and run nothing but a
# placeholder process, so their container lives as long as the lab does.
ROUTER = Service(name="router", command=("sleep", "infinity"), restart="unless-stopped")
