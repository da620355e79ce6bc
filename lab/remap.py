"""Moving a lab to free subnets, keeping every host's offset: pure, for labs that must not collide.

A topology file fixes its subnets (``10.71.1.0/24``) so its addresses read well; two
copies of it on one engine (a test beside ``lab up`` of the same file, or two test
runs side by side) would collide. ``relocate`` gives each fixed subnet a free one of
the same size and moves every static address by the same offset, so ``.254`` stays
the router and ``.13`` stays daytime; routes and ``/etc/hosts`` entries follow, since
the model derives them from these.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Network

from lab import model

POOL = IPv4Network("10.128.0.0/9")  # where relocated labs go: clear of the topologies' own 10.0-10.127


class NoRoom(ValueError):
    """No free subnet of the wanted size is left in the pool."""


def free_subnets(
    wanted: Sequence[IPv4Network], taken: Iterable[IPv4Network], *, pool: IPv4Network = POOL, start: int = 0
) -> dict[IPv4Network, IPv4Network]:
    """A free subnet of the same size for each of ``wanted``, overlapping nothing in ``taken`` nor each other.

    The search begins in the ``start``-th /16 of the pool (wrapping around): runs that start labs at the same
    moment (parallel test workers) each begin somewhere else, so they rarely pick the same free subnet before
    either has created it.
    """
    busy = [t for t in taken if t.version == 4]
    found: dict[IPv4Network, IPv4Network] = {}
    for subnet in wanted:
        for candidate in _candidates(pool, subnet.prefixlen, start):
            if not any(candidate.overlaps(b) for b in busy):
                found[subnet] = candidate
                busy.append(candidate)
                break
        else:
            raise NoRoom(f"no free /{subnet.prefixlen} left in {pool} for {subnet}")
    return found


def _candidates(pool: IPv4Network, prefixlen: int, start: int) -> Iterator[IPv4Network]:
    """Every subnet of ``prefixlen`` in the pool, region by region from the ``start``-th region on."""
    if prefixlen < pool.prefixlen:
        return
    regions = list(pool.subnets(new_prefix=max(pool.prefixlen, min(16, prefixlen))))
    first = start % len(regions)
    for region in regions[first:] + regions[:first]:
        yield from region.subnets(new_prefix=prefixlen)


def _moved(address: IPv4Address | None, mapping: Mapping[IPv4Network, IPv4Network]) -> IPv4Address | None:
    if address is None:
        return None
    for old, new in mapping.items():
        if address in old:
            return new.network_address + (int(address) - int(old.network_address))
    return address


def _node(node: model.Node, mapping: Mapping[IPv4Network, IPv4Network]) -> model.Node:
    attachments = tuple(dataclasses.replace(a, address=_moved(a.address, mapping)) for a in node.attachments)
    return dataclasses.replace(node, attachments=attachments)


def relocate(topology: model.Topology, mapping: Mapping[IPv4Network, IPv4Network], *, name: str) -> model.Topology:
    """The same lab under ``name``, with each subnet in ``mapping`` replaced and every address moved with it."""
    networks = tuple(
        dataclasses.replace(n, subnet=mapping.get(n.subnet, n.subnet)) if n.subnet is not None else n
        for n in topology.networks
    )
    return dataclasses.replace(
        topology,
        name=name,
        networks=networks,
        nodes=tuple(_node(n, mapping) for n in topology.nodes),
        routers=tuple(_node(r, mapping) for r in topology.routers),
    )


def fixed_subnets(topology: model.Topology) -> list[IPv4Network]:
    """The subnets the file fixes (a network without one gets Docker's choice, which never collides)."""
    return [n.subnet for n in topology.networks if n.subnet is not None]
