"""Pass 2 of reading a topology: what only the whole lab can tell.

``lab.shapes`` has checked each entry on its own; these checks look across
entries: duplicate names, attachments to unknown networks or outside a subnet,
addresses and host ports taken twice, overlapping or unused subnets, and nodes
that no router leads to. Each reports into the ``Reader``, with the line of the
entry concerned, and carries on.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from lab.draft import Attach, Draft, Member
from lab.yamlread import Reader, suggest


def check_lab(reader: Reader, draft: Draft) -> None:
    """Run every check across the lab, reporting each problem into ``reader``.

    The order matters: ``_check_attachments`` first puts a node that names no
    network on the lab's only network, and the checks after it count that.
    """
    for check in (
        _check_names,
        _check_attachments,
        _check_addresses_unique,
        _check_subnets,
        _check_ports,
        _check_reachable,
    ):
        check(reader, draft)


def _check_names(reader: Reader, draft: Draft) -> None:
    seen: dict[str, Member] = {}
    for member in draft.members:
        if member.name in seen:
            first = seen[member.name]
            reader.fail(
                member.line,
                f"{member.where}.name",
                f"duplicate hostname {member.name!r} (also at line {first.line})",
                "give each node and router its own name",
            )
        else:
            seen[member.name] = member


def _check_attachments(reader: Reader, draft: Draft) -> None:
    names = list(draft.networks)
    for member in draft.members:
        if not member.attachments and not member.is_router and len(names) == 1:
            member.attachments = [Attach(names[0], member.line, f"{member.where}.networks")]
        if not member.attachments and names:  # with no networks at all, that is the one problem reported
            reader.fail(
                member.line,
                f"{member.where}.networks",
                "the node is on no network",
                f"add networks: [{names[0] if names else 'lab'}]",
            )
        if member.is_router and len({a.network for a in member.attachments}) == 1:
            reader.fail(
                member.networks_line,
                f"{member.where}.networks",
                "a router joins two or more networks",
                "list every network it forwards between",
            )
        seen: set[str] = set()
        for attach in member.attachments:
            _check_attachment(reader, draft, member, attach, names, seen)


def _check_attachment(
    reader: Reader, draft: Draft, member: Member, attach: Attach, names: list[str], seen: set[str]
) -> None:
    if attach.network in seen:
        reader.fail(attach.line, attach.where, "network listed twice", "list each network once")
    seen.add(attach.network)
    if attach.network not in draft.networks:
        reader.fail(
            attach.line,
            attach.where,
            f"unknown network {attach.network!r}",
            suggest(attach.network, names, "network") if names else "declare it under networks:",
        )
        return
    network = draft.networks[attach.network][0]
    if member.is_router and network.subnet is None:
        reader.fail(
            attach.line,
            attach.where,
            f"router on network {network.name!r}, which has no subnet",
            f"give networks.{network.name} a subnet (routes need it), like subnet: 10.0.1.0/24",
        )
    if attach.address is None:
        return
    subnet = network.subnet
    if subnet is None:
        reader.fail(
            attach.line,
            attach.where,
            f"static address on network {network.name!r}, which has no subnet",
            f"give networks.{network.name} a subnet, or drop the address",
        )
    elif attach.address not in subnet:
        reader.fail(
            attach.line,
            attach.where,
            f"{attach.address} is outside {network.name}'s subnet {subnet}",
            f"write an address in {subnet}, like {subnet.network_address + 10}",
        )
    elif attach.address in (subnet.network_address, subnet.broadcast_address, network.gateway):
        what = "Docker's gateway" if attach.address == network.gateway else "not a host address"
        reader.fail(
            attach.line,
            attach.where,
            f"{attach.address} is {what} in {subnet}",
            f"write another address in {subnet}, like {subnet.network_address + 10}",
        )


def _check_addresses_unique(reader: Reader, draft: Draft) -> None:
    taken: dict[tuple[str, IPv4Address], Member] = {}
    for member in draft.members:
        for attach in member.attachments:
            if attach.address is None:
                continue
            key = (attach.network, attach.address)
            if key in taken:
                reader.fail(
                    attach.line,
                    attach.where,
                    f"{attach.address} is already {taken[key].name}'s on {attach.network}",
                    "give each node its own address",
                )
            taken[key] = member


def _check_subnets(reader: Reader, draft: Draft) -> None:
    networks = list(draft.networks.values())
    for i, (network, line) in enumerate(networks):
        for other, _ in networks[:i]:
            if network.subnet and other.subnet and network.subnet.overlaps(other.subnet):
                reader.fail(
                    line,
                    f"networks.{network.name}.subnet",
                    f"{network.subnet} overlaps {other.name}'s {other.subnet}",
                    "give each network its own subnet",
                )
        references = [a.network for m in draft.members for a in m.attachments]
        if all(r in draft.networks for r in references) and network.name not in references:
            reader.fail(
                line,
                f"networks.{network.name}",
                "no node or router is on this network",
                "attach a node to it, or remove it",
            )


def _check_ports(reader: Reader, draft: Draft) -> None:
    taken: dict[tuple[int, str], str] = {}
    for member in draft.members:
        for port, line in member.publish:
            key = (port.host, port.protocol)
            if key in taken and taken[key] != member.name:
                reader.fail(
                    line,
                    f"{member.where}.publish",
                    f"host port {port.host}/{port.protocol} is already published by {taken[key]}",
                    "pick another host port",
                )
            taken.setdefault(key, member.name)


def _check_reachable(reader: Reader, draft: Draft) -> None:
    """Every node must reach the others: networks joined through routers form one island."""
    parent = {name: name for name in draft.networks}

    def root(name: str) -> str:
        while parent[name] != name:
            name = parent[name]
        return name

    for router in (m for m in draft.members if m.is_router):
        known = [a.network for a in router.attachments if a.network in parent]
        for name in known[1:]:
            parent[root(name)] = root(known[0])
    islands: dict[str, list[Member]] = {}
    for member in draft.members:
        for network in {root(a.network) for a in member.attachments if a.network in parent}:
            islands.setdefault(network, []).append(member)
    if len(islands) < 2:
        return
    main_root = max(islands, key=lambda r: sum(not m.is_router for m in islands[r]))  # first declared wins ties
    main = islands[main_root]
    main_networks = sorted(n for n in draft.networks if root(n) == main_root)
    for member in draft.members:
        if member in main or not any(a.network in parent for a in member.attachments):
            continue
        mine = sorted({a.network for a in member.attachments})
        reader.fail(
            member.networks_line or member.line,
            f"{member.where}.networks",
            f"{member.name} (on {', '.join(mine)}) cannot reach {main[0].name} "
            f"(on {', '.join(main_networks)}): no router joins them",
            f"add a router with networks: [{mine[0]}, {main_networks[0]}]",
        )
