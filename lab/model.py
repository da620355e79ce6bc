"""The validated lab: frozen dataclasses that know nothing of YAML or Docker.

``lab.loader`` builds a ``Topology`` from a file and checks it whole; the
renderers (``lab.compose``, ``lab.graph``) and the backend only read it. What
the model can answer on its own (which router leads to which subnet, which name
resolves to which address across routers) lives here, so both the Compose file
and the picture agree on it.

``NodeRef`` and ``NetworkRef`` name running things for the runtime helpers
(``lab.impair``, ``lab.capture``); they are the only types here that mention a
container.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from common import units
from protocols import registry

DEFAULT_LAB = "default"
PROJECT_PREFIX = "testbed"
LAB_LABEL = "testbed.lab"
ROLE_LABEL = "testbed.role"
# On a node of a built-in server: the server's name in its log, whose ``ready`` line tells lab up it serves.
READY_LINE_LABEL = "testbed.ready-line"
IMAGE_VARIABLE = "TESTBED_NODE_IMAGE"  # names another node image, for Compose files and the engine alike
DEFAULT_NODE_IMAGE = "testbed/node:latest"
# Bounds of an impairment: `--delay 100000s` was accepted, and `--rate 1bit` passed only for tc to refuse it.
# Ten seconds holds the slowest real path (a satellite hop is 0.6 s); 8 kbit/s is tbf's smallest useful rate.
MAX_DELAY_MS = 10_000.0
MIN_RATE_KBIT = 8.0


def project_name(lab: str) -> str:
    """The Compose project of a lab: ``testbed`` for the default lab, so the repo's compose.yaml is the same lab."""
    return PROJECT_PREFIX if lab == DEFAULT_LAB else f"{PROJECT_PREFIX}-{lab}"


def lab_name(project: str) -> str:
    """The inverse of ``project_name``."""
    if project == PROJECT_PREFIX:
        return DEFAULT_LAB
    return project.removeprefix(f"{PROJECT_PREFIX}-")


@dataclass(frozen=True)
class Impairment:
    """Link conditions asked for in a topology (netem's vocabulary; ``None`` rate means unlimited)."""

    delay_ms: float = 0
    jitter_ms: float = 0
    loss_pct: float = 0
    rate_kbit: float | None = None

    def __post_init__(self) -> None:
        for what, value in (("delay", self.delay_ms), ("jitter", self.jitter_ms), ("loss", self.loss_pct)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{what}: {value!r} must be a finite number, 0 or more")
        if self.loss_pct > 100:
            raise ValueError(f"loss: {self.loss_pct:g}% is not {units.PERCENT_FORMS}")
        if self.jitter_ms and not self.delay_ms:
            raise ValueError(f"jitter: {self.jitter_ms:g}ms without a delay (add a delay too, like delay 80ms)")
        if self.rate_kbit is not None and not (math.isfinite(self.rate_kbit) and self.rate_kbit > 0):
            raise ValueError(f"rate: {self.rate_kbit!r} is not {units.RATE_FORMS}")
        for what, value in (("delay", self.delay_ms), ("jitter", self.jitter_ms)):
            if value > MAX_DELAY_MS:
                raise ValueError(f"{what}: {value:g}ms is more than {MAX_DELAY_MS / 1000:g}s (write at most 10s)")
        if self.rate_kbit is not None and self.rate_kbit < MIN_RATE_KBIT:
            raise ValueError(f"rate: {self.rate_kbit:g}kbit is below {MIN_RATE_KBIT:g}kbit (write at least 8kbit)")

    @classmethod
    def parse(
        cls, *, delay: str | None = None, jitter: str | None = None, loss: str | None = None, rate: str | None = None
    ) -> Impairment:
        """From the strings a user typed (``None`` or ``""``: not asked for), in ``common.units``' grammar.

        Raises ``ValueError`` naming the field, the bad value and what to write instead.
        """
        fields = {"delay": delay, "jitter": jitter, "loss": loss, "rate": rate}
        parsers = {
            "delay": units.parse_duration_ms,
            "jitter": units.parse_duration_ms,
            "loss": units.parse_percent,
            "rate": units.parse_rate_kbit,
        }
        values: dict[str, float] = {}
        for name, text in fields.items():
            if text:
                try:
                    values[name] = parsers[name](text)
                except units.UnitError as exc:
                    raise ValueError(f"{name}: {exc.explained()}") from None
        return cls(
            delay_ms=values.get("delay", 0.0),
            jitter_ms=values.get("jitter", 0.0),
            loss_pct=values.get("loss", 0.0),
            rate_kbit=values.get("rate"),
        )

    @property
    def empty(self) -> bool:
        """True when it changes nothing (applying it is the same as clearing)."""
        return not (self.delay_ms or self.jitter_ms or self.loss_pct) and self.rate_kbit is None

    def describe(self) -> str:
        """``delay 80ms±10ms loss 5% rate 1000kbit``, for progress lines and pictures."""
        parts = []
        if self.delay_ms:
            parts.append(f"delay {self.delay_ms:g}ms" + (f"±{self.jitter_ms:g}ms" if self.jitter_ms else ""))
        if self.loss_pct:
            parts.append(f"loss {self.loss_pct:g}%")
        if self.rate_kbit is not None:
            parts.append(f"rate {self.rate_kbit:g}kbit")
        return " ".join(parts) or "none"


@dataclass(frozen=True)
class Network:
    """A Docker network; without a subnet Docker picks one and addresses are dynamic."""

    name: str
    subnet: IPv4Network | None = None

    @property
    def gateway(self) -> IPv4Address | None:
        """Docker's bridge takes the first host address as the gateway, so no node may claim it."""
        return None if self.subnet is None else self.subnet.network_address + 1


@dataclass(frozen=True)
class Attachment:
    """A node's interface on one network: its address (static or assigned by the loader) and link impairment."""

    network: str
    address: IPv4Address | None = None
    impair: Impairment | None = None


@dataclass(frozen=True)
class Port:
    """One published port: always on 127.0.0.1, so the lab is never reachable from other machines."""

    host: int
    container: int
    protocol: str  # "tcp" or "udp"

    def compose(self) -> str:
        return f"127.0.0.1:{self.host}:{self.container}/{self.protocol}"


@dataclass(frozen=True)
class Placement:
    """Which machines of a cluster may run a node (Swarm); every condition must hold.

    One machine runs the whole Compose lab, so only ``lab up --swarm`` reads this.
    """

    labels: tuple[tuple[str, str], ...] = ()  # node labels: docker node update --label-add KEY=VALUE
    hostname: str | None = None
    role: str | None = None  # "manager" or "worker"

    def constraints(self) -> tuple[str, ...]:
        """Swarm placement constraints, like ``node.labels.zone == east``."""
        found = [f"node.labels.{key} == {value}" for key, value in self.labels]
        if self.hostname is not None:
            found.append(f"node.hostname == {self.hostname}")
        if self.role is not None:
            found.append(f"node.role == {self.role}")
        return tuple(found)


@dataclass(frozen=True)
class Probe:
    """How the lab knows a node is ready: a protocol of the registry (or bare reachability), or a command in it."""

    protocol: str | None = None  # registry.PROTOCOLS or registry.REACHABILITY
    exec: tuple[str, ...] = ()

    def describe(self) -> str:
        return self.protocol or "exec " + " ".join(self.exec)


CODE_MOUNT = "/code"  # where a code: node finds the user's file or folder, read-only
SHARED_MOUNT = "/shared"  # where a program node finds each folder it shares with others: /shared/<name>


@dataclass(frozen=True)
class Program:
    """What a node runs when it is not a built-in service: the user's code in the node image, or their image.

    Every kind keeps the lab's hardening unless the topology asks otherwise, visibly
    (``cap_add``, ``read_only: false``, ``user: root``: see ``Topology.warnings``).
    """

    kind: str  # "code" or "image"
    ports: tuple[registry.Port, ...] = ()
    probe: Probe | None = None
    code: Path | None = None  # code: the file or folder (absolute), mounted at CODE_MOUNT
    image: str | None = None  # image: its name; with build, the tag it is built as
    build: Path | None = None  # a folder with a Dockerfile (absolute)
    environment: tuple[tuple[str, str], ...] = ()
    user: str | None = None  # None: the node image's user for code, uid 10001 for images
    cap_add: tuple[str, ...] = ()
    read_only: bool = True
    shared: tuple[str, ...] = ()  # folders shared with the lab's other nodes that name them, at SHARED_MOUNT/<name>

    def default_command(self) -> tuple[str, ...] | None:
        """``python3 /code/<file>`` for a single file of code; an image runs its own."""
        if self.code is not None and not self.code.is_dir():
            return ("python3", f"{CODE_MOUNT}/{self.code.name}")
        return None

    def relaxed(self) -> list[str]:
        """What this node asks for beyond the default hardening, in words."""
        found = [f"cap_add {', '.join(self.cap_add)}"] if self.cap_add else []
        if not self.read_only:
            found.append("a writable root (read_only: false)")
        if self.user is not None and self.user.split(":")[0] in ("root", "0"):
            found.append("user root")
        return found


@dataclass(frozen=True)
class Node:
    """A host of the lab: one container running a catalogue service, or the user's code or image (``program``)."""

    name: str  # also its hostname and its Compose service name
    service: str  # the catalogue service; "" when ``program`` says what runs
    attachments: tuple[Attachment, ...]
    publish: tuple[Port, ...] = ()
    command: tuple[str, ...] | None = None  # None: the catalogue's command
    extra: tuple[tuple[str, ...], ...] = ()  # run inside the node by `lab up` once it is healthy
    impair: Impairment | None = None  # every interface of the node
    profiles: tuple[str, ...] = ()
    is_router: bool = False
    placement: Placement | None = None  # where it may run on a cluster; None: anywhere
    program: Program | None = None

    @property
    def kind(self) -> str:
        """``service``, ``code``, ``image`` or ``router``."""
        return "router" if self.is_router else self.program.kind if self.program else "service"

    @property
    def networks(self) -> tuple[str, ...]:
        return tuple(a.network for a in self.attachments)

    def attachment(self, network: str) -> Attachment | None:
        return next((a for a in self.attachments if a.network == network), None)


@dataclass(frozen=True)
class Route:
    """``ip route replace <destination> via <gateway>``, installed in one node's namespace."""

    destination: IPv4Network
    gateway: IPv4Address

    def argv(self) -> tuple[str, ...]:
        return ("ip", "route", "replace", str(self.destination), "via", str(self.gateway))


@dataclass(frozen=True)
class Topology:
    """A whole lab, validated: every name unique, every address inside its subnet, every node reachable."""

    name: str
    source: Path
    networks: tuple[Network, ...]
    nodes: tuple[Node, ...]  # hosts only
    routers: tuple[Node, ...] = ()
    description: str = ""
    labels: tuple[tuple[str, str], ...] = ()  # on everything the lab creates, beside testbed.lab (a test run's own)

    @property
    def project(self) -> str:
        return project_name(self.name)

    @property
    def members(self) -> tuple[Node, ...]:
        """Hosts then routers: every container the lab declares."""
        return (*self.nodes, *self.routers)

    def member(self, name: str) -> Node | None:
        return next((n for n in self.members if n.name == name), None)

    def network(self, name: str) -> Network:
        return next(n for n in self.networks if n.name == name)

    def warnings(self) -> list[str]:
        """One line per node that asks for less hardening than the default (``lab validate`` and ``lab up`` say so)."""
        return [
            f"nodes.{node.name}: runs with {'; '.join(node.program.relaxed())} (less hardened than the default)"
            for node in self.nodes
            if node.program is not None and node.program.relaxed()
        ]

    def active(self, profiles: Sequence[str] = ()) -> tuple[Node, ...]:
        """The members a start brings up: those without profiles, and those in one of ``profiles``."""
        return tuple(m for m in self.members if not m.profiles or set(m.profiles) & set(profiles))

    def profiles(self) -> tuple[str, ...]:
        return tuple(sorted({p for n in self.members for p in n.profiles}))

    def hops(self, node: Node) -> dict[str, tuple[int, Node | None]]:
        """Every network ``node`` can reach: (routers crossed, first router on the way; None when attached).

        A breadth-first search over networks, with routers as edges; ties go to
        the router declared first, so routes are the same on every render.
        """
        seen: dict[str, tuple[int, Node | None]] = {name: (0, None) for name in node.networks}
        queue = deque(node.networks)
        while queue:
            here = queue.popleft()
            distance, first = seen[here]
            for router in self.routers:
                if here not in router.networks:
                    continue
                via = first if first is not None else (router if router is not node else None)
                for there in router.networks:
                    if there not in seen:
                        seen[there] = (distance + 1, via)
                        queue.append(there)
        return seen

    def routes(self, node: Node) -> tuple[Route, ...]:
        """The routes ``node`` needs to reach every subnet behind a router (static next hops)."""
        routes = []
        for network_name, (distance, first) in self.hops(node).items():
            subnet = self.network(network_name).subnet
            if distance == 0 or first is None or subnet is None:
                continue
            gateway = self._next_hop(node, first)
            if gateway is not None:
                routes.append(Route(subnet, gateway))
        return tuple(routes)

    def _next_hop(self, node: Node, router: Node) -> IPv4Address | None:
        """The router's address on a network it shares with ``node``."""
        for attachment in router.attachments:
            if attachment.network in node.networks and attachment.address is not None:
                return attachment.address
        return None

    def remote_hosts(self, node: Node) -> tuple[tuple[str, IPv4Address], ...]:
        """Names ``node`` must resolve through /etc/hosts: members it shares no network with.

        Docker's embedded DNS only answers for containers on a network the asker
        is on, so a name behind a router needs a static entry; we pick the
        member's address on the network nearest to ``node``.
        """
        hops = self.hops(node)
        entries = []
        for other in self.members:
            if other is node or set(other.networks) & set(node.networks):
                continue
            reachable = [a for a in other.attachments if a.network in hops and a.address is not None]
            if reachable:
                nearest = min(reachable, key=lambda a: hops[a.network][0])
                assert nearest.address is not None
                entries.append((other.name, nearest.address))
        return tuple(sorted(entries))


@dataclass(frozen=True)
class NodeRef:
    """A running node, for the runtime helpers: which project, which node, which container.

    ``interface`` narrows an operation to one interface (a per-link
    impairment); ``None`` means every interface of the node.
    """

    project: str
    node: str
    container: str
    interface: str | None = None

    @property
    def lab(self) -> str:
        return lab_name(self.project)


@dataclass(frozen=True)
class NetworkRef:
    """A running lab network: the topology's name for it and Docker's (``<project>_<network>``)."""

    project: str
    network: str
    docker_name: str

    @property
    def lab(self) -> str:
        return lab_name(self.project)
