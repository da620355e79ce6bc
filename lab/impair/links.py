"""Impair a node's links (delay, jitter, loss, rate) and clear them again.

Two backends, chosen by probing the kernel once per engine and process:

``netem``
    ``tc qdisc add dev X root netem delay .. loss .. rate ..`` on each interface.
``nfqueue``
    for kernels without ``sch_netem``: delay and jitter by an NFQUEUE rule feeding
    ``tools.delayline`` (the sidecar's main process), loss by the iptables ``statistic``
    match (into a queue nobody reads, which drops silently: ``-j DROP`` would fail the
    node's own ``send()`` with EPERM), rate by a ``tbf`` qdisc. The rules live in our own
    mangle chain hooked into ``POSTROUTING``, so forwarded traffic (a router's) is
    impaired too, as with netem.

Differences a user may notice: the delay line never reorders packets (netem does, with
jitter); ``tc``-based parts (rate, netem) sit on an interface and vanish if Docker
recreates it (a disconnect and reconnect), while iptables rules stay; a node restart
starts it afresh, with no impairment, and leaves the old sidecar behind (``clear`` or
``apply`` again). Applying again replaces the previous impairment; clearing twice is
harmless.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import docker.errors
from docker.models.containers import Container

from lab import engine
from lab.impair import plan, sidecar
from lab.impair.sidecar import ImpairError
from lab.model import Impairment, NodeRef

IMPAIR_LABEL = "testbed.impair"  # the node's container name
SCOPE_LABEL = "testbed.impair.scope"  # "*" (every interface) or one interface name
SPEC_LABEL = "testbed.impair.spec"
BACKEND_LABEL = "testbed.impair.backend"
READY_TIMEOUT = 15.0  # seconds for the delay line to bind its queue


@functools.cache
def _netem_available(engine_url: str, project: str) -> bool:
    # In a namespace of its own (--network none), so the probe's qdisc dies with it.
    probe = ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]
    return sidecar.one_shot(project=project, role="probe", network_mode="none", command=probe).code == 0


def netem_available(*, project: str = "probe") -> bool:
    """Whether ``sch_netem`` works on the engine's kernel (probed once per engine and process)."""
    return _netem_available(str(engine.client().api.base_url), project)


def node_links(container: Container) -> list[plan.Link]:
    """The node's interfaces, listed from inside it (no capability needed to read them)."""
    ran = engine.run_in(container, ["ip", "-o", "link", "show"], user="node")
    if ran.code != 0:
        raise ImpairError(f"{container.name}: cannot list its interfaces: {ran.output.strip()}")
    return plan.parse_links(ran.out)


def resolve_scope(node: NodeRef, container: Container, links: Sequence[plan.Link]) -> plan.Scope:
    """Resolve ``node.interface``: an interface name, or a network the node is on (topology or Docker name)."""
    wanted = node.interface
    if wanted is None:
        return plan.Scope()
    by_name = {link.name: link for link in links}
    if wanted in by_name:
        return plan.Scope(wanted, by_name[wanted].index)
    networks = container.attrs["NetworkSettings"]["Networks"] or {}
    for name in (wanted, f"{node.project}_{wanted}"):
        mac = str((networks.get(name) or {}).get("MacAddress") or "").lower()
        match = next((link for link in links if mac and link.mac == mac), None)
        if match is not None:
            return plan.Scope(match.name, match.index)
    choices = sorted({link.name for link in links if link.name != "lo"} | set(networks))
    raise ImpairError(f"{node.container} has no interface or network {wanted!r} (it has: {', '.join(choices)})")


def _teardown(scope: plan.Scope | None) -> sidecar.Teardown:
    return lambda listed: plan.impair_teardown(listed, scope)


def apply(node: NodeRef, spec: Impairment, *, backend: plan.Backend | None = None) -> str:
    """Impair the egress of ``node`` (every interface but ``lo``, or ``node.interface``); replace what was there.

    Returns the backend used, ``"netem"`` or ``"nfqueue"`` (``backend`` forces one, for tests).
    """
    container = engine.running_container(node.container)
    links = node_links(container)
    scope = resolve_scope(node, container, links)
    chosen: plan.Backend = backend or ("netem" if netem_available(project=node.project) else "nfqueue")
    _clear(node, container, scope, sweep=spec.empty)
    if spec.empty:
        return chosen
    delayline = plan.delayline_command(spec, scope) if chosen == "nfqueue" else None
    suffix = "" if scope.interface is None else f"-{scope.interface}"
    started = sidecar.start(
        project=node.project,
        role="impair",
        command=delayline or sidecar.SLEEPER,
        network_mode=f"container:{container.id}",
        # NET_RAW: the delay line sends copies of the node's packets again from a raw socket.
        caps=("NET_ADMIN", "NET_RAW") if delayline else ("NET_ADMIN",),
        name=f"{node.container}-impair{suffix}",
        labels={IMPAIR_LABEL: node.container, SCOPE_LABEL: scope.label, SPEC_LABEL: spec.describe(),
                BACKEND_LABEL: chosen},
    )  # fmt: skip
    try:
        # Leftovers of a sidecar removed behind our back would make the setup fail half-way.
        listed = sidecar.listed(started)
        sidecar.run(started, plan.impair_teardown(listed, scope))
        steps = plan.plan_impairment(spec, scope, links, backend=chosen, families=listed.families or ("iptables",))
        if delayline:
            engine.wait_for_output(started, " ready ", timeout=READY_TIMEOUT)  # bound to its queue before any rule
        sidecar.run(started, steps.commands)
    except BaseException:
        sidecar.remove(started, _teardown(scope))
        raise
    return chosen


def _clear(node: NodeRef, container: Container | None, scope: plan.Scope | None, *, sweep: bool = True) -> None:
    """Remove the impairment sidecars of ``node`` (one scope, or all) and undo their rules and qdiscs.

    With ``sweep``, a teardown also runs from a throwaway sidecar when no sidecar of ours could do it
    (none was left, or one had died), since its rules and qdiscs outlive it.
    """
    labels = {IMPAIR_LABEL: node.container}
    if scope is not None:
        labels[SCOPE_LABEL] = scope.label
    found = sidecar.find(labels)
    cleaned = True
    for each in found:
        label = each.labels.get(SCOPE_LABEL, "*")
        own = scope or (plan.Scope() if label == "*" else plan.Scope(label))
        cleaned = sidecar.remove(each, _teardown(own)) and cleaned
    if sweep and (not found or not cleaned) and container is not None and container.status == "running":
        sidecar.sweep(project=node.project, node=container, teardown=_teardown(scope))


def clear(node: NodeRef) -> None:
    """Remove everything ``apply`` added to ``node`` (only ``node.interface``'s when it names one)."""
    try:
        container: Container | None = engine.client().containers.get(node.container)
    except docker.errors.NotFound:
        container = None  # gone with its namespace; only the sidecars may be left
    scope = None
    if container is not None and container.status == "running" and node.interface is not None:
        scope = resolve_scope(node, container, node_links(container))
    _clear(node, container, scope)
