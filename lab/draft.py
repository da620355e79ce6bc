"""A topology as read, before the whole lab is checked: what ``lab.shapes`` builds and ``lab.crosscheck`` reads.

Drafts are mutable and keep each entry's line and field, so the checks across
the lab can report where a problem is. Once nothing is wrong, addresses are
assigned and the draft becomes the frozen ``model.Topology``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

from lab import model
from lab.yamlread import Reader


@dataclass
class Attach:
    """A member's interface on one network, as written (the address may be left for ``assign_addresses``)."""

    network: str
    line: int
    where: str
    address: IPv4Address | None = None
    impair: model.Impairment | None = None


@dataclass
class Member:
    """A node or a router, as written; ``networks_line`` is 0 when it has no ``networks:`` key."""

    name: str
    line: int
    where: str
    is_router: bool
    attachments: list[Attach] = field(default_factory=list)
    service: str = "router"
    publish: list[tuple[model.Port, int]] = field(default_factory=list)  # each with the line it is on
    command: tuple[str, ...] | None = None
    extra: tuple[tuple[str, ...], ...] = ()
    impair: model.Impairment | None = None
    profiles: tuple[str, ...] = ()
    placement: model.Placement | None = None
    program: model.Program | None = None
    networks_line: int = 0


@dataclass
class Draft:
    """The whole file: networks by name (each with its line) and members in file order, hosts then routers."""

    name: str
    description: str
    networks: dict[str, tuple[model.Network, int]]
    members: list[Member]

    def build(self, source: Path) -> model.Topology:
        """The frozen model; call it once the checks and ``assign_addresses`` reported nothing."""
        return model.Topology(
            name=self.name,
            source=source,
            description=self.description,
            networks=tuple(n for n, _ in self.networks.values()),
            nodes=tuple(_node(m) for m in self.members if not m.is_router),
            routers=tuple(_node(m) for m in self.members if m.is_router),
        )


def _node(m: Member) -> model.Node:
    return model.Node(
        name=m.name,
        service=m.service,
        attachments=tuple(model.Attachment(a.network, a.address, a.impair) for a in m.attachments),
        publish=tuple(p for p, _ in m.publish),
        command=m.command,
        extra=m.extra,
        impair=m.impair,
        profiles=m.profiles,
        is_router=m.is_router,
        placement=m.placement,
        program=m.program,
    )


def assign_addresses(reader: Reader, draft: Draft) -> None:
    """Give every interface on a subnet a fixed address: routes and /etc/hosts entries need them before start.

    Routers count down from the top of the subnet, hosts up from the tenth
    address, so Docker's own dynamic picks (which start at .2) rarely collide.
    """
    for network, line in draft.networks.values():
        subnet = network.subnet
        if subnet is None:
            continue
        attached = [(m, a) for m in draft.members for a in m.attachments if a.network == network.name]
        taken = {a.address for _, a in attached if a.address is not None} | {network.gateway}
        start = 10 if subnet.num_addresses >= 64 else 2
        upward = (h for h in subnet.hosts() if int(h) - int(subnet.network_address) >= start)
        downward = reversed(list(subnet.hosts()))
        for member, attach in attached:
            if attach.address is None:
                attach.address = next((h for h in (downward if member.is_router else upward) if h not in taken), None)
                if attach.address is None:
                    reader.fail(
                        line,
                        f"networks.{network.name}.subnet",
                        f"{subnet} has no address left for {member.name}",
                        "use a larger subnet, like a /24",
                    )
                taken.add(attach.address)
