"""Cut nodes apart: partitions between two nodes, and nodes detached from a network; ``heal`` undoes both.

A partition gives each side a sidecar whose filter chain drops packets to and from
every address the other side has now. A disconnection goes through the Docker API;
how the node was attached (aliases, a static address) is kept on a created-but-never
-started marker container labelled for the lab, so ``reconnect`` or ``heal`` restores
it exactly, from any process.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import docker.errors
from docker.models.containers import Container
from docker.models.networks import Network

from lab import engine
from lab.impair import links, plan, sidecar
from lab.impair.sidecar import SIDECAR_LABEL, ImpairError
from lab.model import LAB_LABEL, NetworkRef, NodeRef

PARTITION_LABEL = "testbed.partition"  # the partition's id, shared by both sides
PEER_LABEL = "testbed.partition.peer"
SIDE_LABEL = "testbed.partition.node"
DISCONNECTED_LABEL = "testbed.disconnected"  # container name; the marker remembers how to reconnect
NETWORK_LABEL = "testbed.disconnected.network"
ALIASES_LABEL = "testbed.disconnected.aliases"
IPV4_LABEL = "testbed.disconnected.ipv4"


def _addresses(container: Container) -> tuple[list[str], list[str]]:
    """Every IPv4 and IPv6 address the container has on its networks."""
    v4: set[str] = set()
    v6: set[str] = set()
    for endpoint in (container.attrs["NetworkSettings"]["Networks"] or {}).values():
        if endpoint.get("IPAddress"):
            v4.add(endpoint["IPAddress"])
        if endpoint.get("GlobalIPv6Address"):
            v6.add(endpoint["GlobalIPv6Address"])
    return sorted(v4), sorted(v6)


def _teardown(chain: str) -> sidecar.Teardown:
    return lambda listed: plan.partition_teardown(listed, chain)


def partition(a: NodeRef, b: NodeRef) -> None:
    """Drop all traffic between ``a`` and ``b``, both ways, until ``heal``; partitioning twice is harmless.

    An address the peer gets later (after a reconnect) is not covered.
    """
    if a.container == b.container:
        raise ValueError(f"cannot partition {a.node} from itself")
    if a.project != b.project:
        raise ValueError(f"{a.node} and {b.node} are in different labs ({a.project}, {b.project})")
    pid = plan.partition_id(a.container, b.container)
    chain = plan.partition_chain(pid)
    ends = [engine.running_container(a.container), engine.running_container(b.container)]
    if len([s for s in sidecar.find({PARTITION_LABEL: pid}) if s.status == "running"]) == 2:
        return
    _heal_one(pid)
    started: list[Container] = []
    try:
        for me, peer, ref in ((ends[0], ends[1], a), (ends[1], ends[0], b)):
            v4, v6 = _addresses(peer)
            if not v4 and not v6:
                raise ImpairError(f"{peer.name} has no address to partition from")
            side = sidecar.start(
                project=ref.project,
                role="partition",
                command=sidecar.SLEEPER,
                network_mode=f"container:{me.id}",
                name=f"{me.name}-partition-{pid}",
                labels={PARTITION_LABEL: pid, PEER_LABEL: str(peer.name), SIDE_LABEL: str(me.name)},
            )
            started.append(side)
            sidecar.undo(side, _teardown(chain))  # leftovers of a lost sidecar
            sidecar.run(side, plan.partition_commands(chain, v4, v6))
    except BaseException:
        for side in started:
            sidecar.remove(side, _teardown(chain))
        raise


def unpartition(a: NodeRef, b: NodeRef) -> bool:
    """Undo the partition between ``a`` and ``b`` alone (``heal`` undoes all); True if there was one."""
    return _heal_one(plan.partition_id(a.container, b.container))


def _heal_one(pid: str) -> bool:
    """Remove one partition (both sides); True if anything of it was there."""
    found = sidecar.find({PARTITION_LABEL: pid})
    chain = plan.partition_chain(pid)
    for side in found:
        if not sidecar.remove(side, _teardown(chain)):
            with contextlib.suppress(docker.errors.NotFound):
                node = engine.client().containers.get(side.labels.get(SIDE_LABEL, ""))
                if node.status == "running":
                    sidecar.sweep(project=side.labels.get(LAB_LABEL, ""), node=node, teardown=_teardown(chain))
    return bool(found)


def heal(project: str) -> int:
    """Undo every partition of ``project`` and reconnect what ``disconnect`` cut off; how many it undid."""
    healed = 0
    sides = sidecar.find({LAB_LABEL: project, SIDECAR_LABEL: "partition"})
    for pid in sorted({s.labels.get(PARTITION_LABEL, "") for s in sides} - {""}):
        healed += _heal_one(pid)
    for marker in sidecar.find({LAB_LABEL: project, SIDECAR_LABEL: "disconnect"}):
        _reconnect_marker(marker)
        healed += 1
    return healed


def partitions(project: str) -> list[tuple[str, str]]:
    """The partitions of ``project`` in force, as pairs of container names."""
    pairs = {
        tuple(sorted((s.labels.get(SIDE_LABEL, ""), s.labels.get(PEER_LABEL, ""))))
        for s in sidecar.find({LAB_LABEL: project, SIDECAR_LABEL: "partition"})
    }
    return sorted((p[0], p[1]) for p in pairs)


# --------------------------------------------------------------------------- networks


def _network(network: NetworkRef | str) -> Network:
    name = network if isinstance(network, str) else network.docker_name
    try:
        return engine.client().networks.get(name)
    except docker.errors.NotFound:
        raise ImpairError(f"no network {name}", "is the lab up?") from None


def disconnect(node: NodeRef, network: NetworkRef | str) -> None:
    """Detach ``node`` from ``network`` through the Docker API (a ``str`` is Docker's name for it)."""
    container = engine.get_container(node.container)
    net = _network(network)
    markers = sidecar.find({DISCONNECTED_LABEL: node.container, NETWORK_LABEL: str(net.name)})
    endpoint = (container.attrs["NetworkSettings"]["Networks"] or {}).get(net.name)
    if endpoint is None:
        if markers:
            return  # already disconnected by us
        raise ImpairError(f"{node.container} is not attached to {net.name}")
    for marker in markers:  # stale: reconnected behind our back
        marker.remove(force=True)
    short_id = str(container.id)[:12]
    aliases = [a for a in endpoint.get("Aliases") or [] if a != short_id and not str(container.id).startswith(a)]
    ipam = endpoint.get("IPAMConfig") or {}
    try:
        marker = engine.client().containers.create(
            engine.node_image(),
            ["true"],
            name=f"{node.container}-disconnected-{str(net.id)[:12]}",
            network_mode="none",
            labels={
                LAB_LABEL: node.project,
                SIDECAR_LABEL: "disconnect",
                DISCONNECTED_LABEL: node.container,
                NETWORK_LABEL: str(net.name),
                ALIASES_LABEL: ",".join(aliases),
                IPV4_LABEL: str(ipam.get("IPv4Address") or ""),
            },
        )
    except docker.errors.APIError as exc:
        raise ImpairError(f"cannot record how {node.container} was attached: {exc.explanation or exc}") from exc
    try:
        net.disconnect(container)
    except docker.errors.APIError as exc:
        marker.remove(force=True)
        raise ImpairError(f"cannot disconnect {node.container} from {net.name}: {exc.explanation or exc}") from exc


def reconnect(node: NodeRef, network: NetworkRef | str) -> None:
    """Attach ``node`` to ``network`` again, with the aliases and address it had; harmless if attached."""
    container = engine.get_container(node.container)
    net = _network(network)
    markers = sidecar.find({DISCONNECTED_LABEL: node.container, NETWORK_LABEL: str(net.name)})
    if markers:
        _reconnect_marker(markers[0])
        for extra in markers[1:]:
            extra.remove(force=True)
        return
    if net.name in (container.attrs["NetworkSettings"]["Networks"] or {}):
        return
    try:
        net.connect(container, aliases=[node.node])
    except docker.errors.APIError as exc:
        raise ImpairError(f"cannot connect {node.container} to {net.name}: {exc.explanation or exc}") from exc


def _reconnect_marker(marker: Container) -> None:
    labels = marker.labels
    try:
        container = engine.client().containers.get(labels[DISCONNECTED_LABEL])
        net = engine.client().networks.get(labels[NETWORK_LABEL])
    except docker.errors.NotFound:
        marker.remove(force=True)  # the node or the network is gone: nothing to reconnect
        return
    container.reload()
    if net.name not in (container.attrs["NetworkSettings"]["Networks"] or {}):
        aliases = [a for a in labels.get(ALIASES_LABEL, "").split(",") if a]
        try:
            net.connect(container, aliases=aliases or None, ipv4_address=labels.get(IPV4_LABEL) or None)
        except docker.errors.APIError as exc:
            raise ImpairError(f"cannot reconnect {container.name} to {net.name}: {exc.explanation or exc}") from exc
    marker.remove(force=True)


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class Active:
    """One runtime change in force: what (role), on which container, and its details."""

    role: str
    container: str
    detail: str
    alive: bool = True  # its sidecar runs (a disconnection's marker never runs: it needs not)


def active(project: str) -> list[Active]:
    """Impairments, partitions and disconnections in force in ``project``."""
    found = []
    for each in sidecar.find({LAB_LABEL: project}):
        labels = each.labels
        role = labels.get(SIDECAR_LABEL, "")
        if role == "impair":
            scope = labels.get(links.SCOPE_LABEL, "*")
            where = "" if scope == "*" else f" on {scope}"
            detail = f"{labels.get(links.SPEC_LABEL, '')}{where} ({labels.get(links.BACKEND_LABEL, '')})"
            found.append(Active(role, labels.get(links.IMPAIR_LABEL, ""), detail, each.status == "running"))
        elif role == "partition":
            peer = f"from {labels.get(PEER_LABEL, '')}"
            found.append(Active(role, labels.get(SIDE_LABEL, ""), peer, each.status == "running"))
        elif role == "disconnect":
            found.append(Active(role, labels.get(DISCONNECTED_LABEL, ""), f"from {labels.get(NETWORK_LABEL, '')}"))
    return sorted(found, key=lambda a: (a.container, a.role, a.detail))
