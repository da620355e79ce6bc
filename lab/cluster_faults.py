"""Faults between the machines of a simulated cluster: a slow or lossy underlay link, a cut, a machine stopped.

``impair`` shapes a machine's egress on the underlay (``eth0``), which carries its
Swarm traffic and the overlays' VXLAN packets: the same sidecar and delay line as
``lab impair`` (``lab.impair``), run in the machine container's namespace. ``partition``
drops everything between two machines with iptables inside both. ``stop`` stops a whole
machine and watches Swarm run its tasks elsewhere, timing each.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import docker

from lab import engine, impair, machines, model
from lab.cluster import MOVE_TIMEOUT, STOP_TIMEOUT, Machine, _project, _wait_for_engine, machine, manager_url
from lab.engine import LabError
from lab.machines import Move

Say = Callable[[str], None]
UNDERLAY_INTERFACE = "eth0"  # a machine's one interface: the underlay
POLL = 0.5  # seconds between looks at the Swarm's tasks (the API has no "wait until moved")


def _ref(cluster: str, each: Machine) -> model.NodeRef:
    return model.NodeRef(project=_project(cluster), node=each.name, container=each.container,
                         interface=UNDERLAY_INTERFACE)  # fmt: skip


def impair_link(cluster: str, name: str, spec: model.Impairment) -> str:
    """Delay, drop or rate-limit what machine ``name`` sends on the underlay; the backend used."""
    return impair.apply(_ref(cluster, machine(cluster, name)), spec)


def clear_link(cluster: str, name: str) -> None:
    impair.clear(_ref(cluster, machine(cluster, name)))


def _iptables(each: Machine, commands: list[list[str]], *, strict: bool) -> None:
    container = engine.client().containers.get(each.container)
    for argv in commands:
        ran = engine.run_in(container, argv)
        if strict and ran.code != 0:
            raise LabError(f"{each.name}: {' '.join(argv)}: {ran.output.strip()}", f"docker logs {each.container}")


def partition(cluster: str, a: str, b: str) -> None:
    """Drop all traffic between two machines, both ways, until ``heal``."""
    if a == b:
        raise LabError(f"{a} cannot be partitioned from itself", "name two different machines")
    first, second = machine(cluster, a), machine(cluster, b)
    for me, peer in ((first, second), (second, first)):
        if not me.running:
            raise LabError(f"machine {me.name} is {me.state}", f"lab cluster start {me.name}")
        _iptables(me, machines.partition_commands(peer.address, add=False), strict=False)  # partitioning twice
        _iptables(me, machines.partition_commands(peer.address, add=True), strict=True)


def heal(cluster: str) -> int:
    """Undo every partition between the cluster's machines; how many rules pairs went."""
    from lab.cluster import machines_of

    healed = 0
    for each in machines_of(cluster):
        if not each.running:
            continue
        listing = engine.run_in(engine.client().containers.get(each.container), ["iptables", "-w", "-S"]).out
        for peer in machines.dropped_peers(listing):
            _iptables(each, machines.partition_commands(peer, add=False), strict=False)
            healed += 1
    return healed


def placement(manager: str) -> dict[str, str | None]:
    """Each service of the Swarm and the machine its running task is on (None: running nowhere)."""
    client = engine.client_at(manager)
    hosts = {str(n.id): str(n.attrs["Description"]["Hostname"]) for n in client.nodes.list()}
    found: dict[str, str | None] = {}
    for service in client.services.list():
        tasks: list[dict[str, Any]] = service.tasks(filters={"desired-state": "running"})  # type: ignore[no-untyped-call]
        running = [t for t in tasks if t.get("Status", {}).get("State") == "running"]
        found[str(service.name)] = hosts.get(str(running[0].get("NodeID"))) if running else None
    return found


def stop(cluster: str, name: str, *, say: Say) -> list[Move]:
    """Stop machine ``name`` and wait until Swarm runs each of its tasks on another machine; what moved, when."""
    target = machine(cluster, name)
    if not target.running:
        raise LabError(f"machine {name} is already {target.state}", f"lab cluster start {name}")
    manager = manager_url(cluster, besides=name)
    before = placement(manager)
    stranded = machines.stranded(before, name)
    say(f"stopping machine {name} (its tasks: {', '.join(stranded) or 'none'})")
    began = time.monotonic()
    engine.client().containers.get(target.container).stop(timeout=STOP_TIMEOUT)
    engine.forget_client(target.url)
    say(f"  {name} stopped in {time.monotonic() - began:.1f} s; waiting for Swarm to run its tasks elsewhere")
    first_seen: dict[str, float] = {}
    deadline = began + MOVE_TIMEOUT
    while True:
        try:
            now = placement(manager)
        except docker.errors.APIError:
            # When the stopped machine led the Swarm, the other managers elect a new leader first; until
            # then every manager answers 500 ("context deadline exceeded"). Ask again, within the deadline.
            if time.monotonic() > deadline:
                raise
            time.sleep(POLL)
            continue
        for service in stranded:
            where = now.get(service)
            if service not in first_seen and where is not None and where != name:
                first_seen[service] = time.monotonic() - began
                say(f"  {service}: running on {where} after {first_seen[service]:.1f} s")
        if len(first_seen) == len(stranded) or time.monotonic() > deadline:
            return machines.moves(stranded, name, now, first_seen)
        time.sleep(POLL)


def start(cluster: str, name: str, *, say: Say) -> float:
    """Start a stopped machine again and wait until Swarm counts it ready; seconds it took."""
    target = machine(cluster, name)
    if target.running:
        raise LabError(f"machine {name} already runs", "lab cluster ls")
    manager = manager_url(cluster, besides=name)
    began = time.monotonic()
    engine.client().containers.get(target.container).start()
    _wait_for_engine(machine(cluster, name))  # its engine's port is a new one

    def ready() -> bool:
        try:
            nodes = engine.client_at(manager).nodes.list(filters={"name": name})
        except docker.errors.APIError:  # the managers are electing a leader: not yet
            return False
        return any(n.attrs.get("Status", {}).get("State") == "ready" for n in nodes)

    from common.waiting import wait_until

    wait_until(ready, timeout=MOVE_TIMEOUT, interval=POLL, what=f"Swarm to count {name} ready")
    elapsed = time.monotonic() - began
    say(f"machine {name} is back in the Swarm in {elapsed:.1f} s (Swarm does not move tasks back by itself)")
    return elapsed
