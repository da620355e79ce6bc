"""Machines of a cluster, as data: names, the inner engine's command line, addresses, what moved where (pure).

``lab cluster`` (``lab.cluster``) runs each machine as a privileged container with an
engine of its own; real machines are reached the same way, through an engine URL.
Everything here is decided without Docker, so it is unit-tested without it; the one
exception, ``context_url``, only reads the Docker CLI's context store.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

CLUSTER_LABEL = "testbed.cluster"  # on every container, network and volume of a simulated cluster
MACHINE_LABEL = "testbed.machine"  # on each machine's container and volume: h1, h2, ...
PLACEMENT_LABEL = "machine"  # the Swarm node label each machine gets (placement: {labels: {machine: h2}})
DEFAULT_CLUSTER = "cluster"
ENGINE_PORT = 2375  # the inner engine's API inside each machine, published on 127.0.0.1 only
MAX_HOSTS = 9
MACHINE_NAME = re.compile(r"h([1-9][0-9]?)")
CLUSTER_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,30}")
# Where the underlay goes on this engine: the first free /24 of these (the inner engines' own
# bridges come from INNER_POOL, which is never an underlay, so a machine's routes never overlap).
# 198.18.0.0/15 is set aside for testing networks (RFC 2544), and no engine hands it out on its own:
# 172.30.0.0/16, used first, is in Docker's default pools, and a busy engine gave all of it to a network.
UNDERLAY_RANGE = ipaddress.ip_network("198.18.0.0/15")
INNER_POOL = "192.168.128.0/17"
TLS_FLAG_SINCE = 20  # dockerd 20.10 waits 15 s before serving plain TCP unless --tls=false says it is meant


class MachineError(ValueError):
    """A machine or cluster named or sized wrongly; the message names the field and what to write."""


@dataclass(frozen=True)
class Shape:
    """How many machines, and how many of them manage the Swarm (the first ``managers``)."""

    hosts: int = 3
    managers: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.hosts <= MAX_HOSTS:
            raise MachineError(f"--hosts: {self.hosts} machines; give 1 to {MAX_HOSTS}")
        if not 1 <= self.managers <= self.hosts:
            raise MachineError(f"--managers: {self.managers}; give 1 to {self.hosts} (no more than --hosts)")
        if self.managers % 2 == 0:
            raise MachineError(f"--managers: {self.managers} is even; give an odd number (Raft needs a majority)")

    @property
    def names(self) -> list[str]:
        return [f"h{i}" for i in range(1, self.hosts + 1)]

    def role(self, machine: str) -> str:
        return "manager" if self.names.index(machine) < self.managers else "worker"


def check_cluster_name(name: str) -> str:
    if not CLUSTER_NAME.fullmatch(name):
        raise MachineError(f"--name: {name!r}; write lower-case letters, digits and dashes (up to 31)")
    return name


def check_machine(name: str, known: Iterable[str] | None = None) -> str:
    """``h1``..``h9``, and one of ``known`` when given."""
    choices = sorted(known or [], key=lambda m: int(m[1:]) if MACHINE_NAME.fullmatch(m) else 0)
    if not MACHINE_NAME.fullmatch(name) or (known is not None and name not in choices):
        listed = ", ".join(choices) if choices else "h1, h2, ..."
        raise MachineError(f"no machine {name!r}; machines: {listed}")
    return name


def prefix(cluster: str) -> str:
    """What every name of the cluster starts with: ``testbed-cluster`` for the default cluster."""
    return f"testbed-{cluster}"


def container_name(cluster: str, machine: str) -> str:
    return f"{prefix(cluster)}-{machine}"


def volume_name(cluster: str, machine: str) -> str:
    return f"{prefix(cluster)}-{machine}-docker"


def underlay_name(cluster: str) -> str:
    return f"{prefix(cluster)}-underlay"


def cgroup_parent(cluster: str, machine: str) -> str:
    """Where the machine's inner containers' cgroups go: a tree of its own, removed by ``lab cluster down``."""
    return f"/{container_name(cluster, machine)}"


def dockerd_version(text: str) -> int:
    """The major release from ``dockerd --version`` (``Docker version 20.10.24+dfsg1, build ...`` -> 20); 0 if none."""
    match = re.search(r"version (\d+)\.", text)
    return int(match.group(1)) if match else 0


def dockerd_argv(major: int, *, cgroup_parent: str) -> list[str]:
    """The inner engine's command line for a dockerd of release ``major``.

    It serves its API on plain TCP (published on 127.0.0.1 only): dockerd 20.10+ would
    wait 15 s first unless ``--tls=false`` says it is meant (and 27+ refuses without it).
    """
    argv = ["dockerd", "-H", "unix:///var/run/docker.sock", "-H", f"tcp://0.0.0.0:{ENGINE_PORT}"]
    if major >= TLS_FLAG_SINCE:
        argv.append("--tls=false")
    argv += ["--cgroup-parent", cgroup_parent, "--default-address-pool", f"base={INNER_POOL},size=24"]
    return argv


def cgroup_binds(cgroup_version: str) -> dict[str, dict[str, str]]:
    """With cgroup v1 the inner engine needs the host's hierarchy (Docker mounts it read-only otherwise);
    with v2 a privileged container gets a namespace of its own and needs nothing."""
    return {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}} if cgroup_version == "1" else {}


def free_subnet(used: Iterable[str]) -> str:
    """The first /24 of ``UNDERLAY_RANGE`` that overlaps no subnet in ``used``."""
    taken = [ipaddress.ip_network(s, strict=False) for s in used if s and ":" not in s]
    for candidate in UNDERLAY_RANGE.subnets(new_prefix=24):
        if not any(candidate.overlaps(t) for t in taken):
            return str(candidate)
    raise MachineError(f"no free /24 left in {UNDERLAY_RANGE} for the underlay; remove unused networks")


def machine_address(subnet: str, machine: str) -> str:
    """A machine's fixed underlay address (Swarm remembers it across a restart): h1 is .11, h2 .12, ..."""
    network = ipaddress.ip_network(subnet)
    return str(network.network_address + 10 + int(machine[1:]))


def parse_engine_map(text: str) -> dict[str, str]:
    """``LAB_MACHINES``: ``vm1=ssh://me@vm1,vm2=tcp://10.0.0.2:2376``, machine name to engine URL."""
    found: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, url = item.partition("=")
        if not sep or not name.strip() or "://" not in url:
            raise MachineError(f"LAB_MACHINES: {item!r}; write NAME=URL pairs, like vm2=ssh://me@vm2")
        found[name.strip()] = url.strip()
    return found


@dataclass(frozen=True)
class Move:
    """One service's task, moved (or not yet) off a stopped machine."""

    service: str
    before: str
    after: str | None  # the machine it runs on now; None while it runs nowhere
    seconds: float | None

    def describe(self) -> str:
        if self.after is None or self.seconds is None:
            return f"{self.service}: was on {self.before}, not running anywhere yet"
        return f"{self.service}: {self.before} -> {self.after} in {self.seconds:.1f} s"


def stranded(placement: Mapping[str, str | None], machine: str) -> list[str]:
    """The services whose running task is on ``machine``."""
    return sorted(service for service, where in placement.items() if where == machine)


def moves(
    stranded_services: Sequence[str],
    machine: str,
    placement: Mapping[str, str | None],
    first_seen: Mapping[str, float],
) -> list[Move]:
    """Where each stranded service runs now (elsewhere than ``machine``) and when it was first seen there."""
    result = []
    for service in stranded_services:
        where = placement.get(service)
        moved = where is not None and where != machine
        result.append(Move(service, machine, where if moved else None, first_seen.get(service) if moved else None))
    return result


def partition_commands(peer: str, *, add: bool) -> list[list[str]]:
    """iptables argv that drop (``add``) or stop dropping everything to and from ``peer`` in a machine."""
    op = "-I" if add else "-D"
    return [
        ["iptables", "-w", op, "INPUT", "-s", peer, "-j", "DROP", "-m", "comment", "--comment", "testbed-cluster"],
        ["iptables", "-w", op, "OUTPUT", "-d", peer, "-j", "DROP", "-m", "comment", "--comment", "testbed-cluster"],
    ]


def dropped_peers(iptables_s: str) -> list[str]:
    """The peers ``partition_commands`` cut off, from ``iptables -S`` of a machine."""
    peers = set()
    for line in iptables_s.splitlines():
        match = re.match(r"-A (?:INPUT -s|OUTPUT -d) (\S+?)(?:/32)? .*testbed-cluster", line)
        if match:
            peers.add(match.group(1))
    return sorted(peers)


# --------------------------------------------------------------------------- which engine runs a machine

_known: dict[str, str] = {}  # machine -> engine URL, for this process (a simulated cluster's, registered)


def register(engines: Mapping[str, str]) -> None:
    """Remember each machine's engine URL for this process (``lab ... --cluster`` does, for its machines)."""
    _known.update(engines)


def context_url(name: str) -> str | None:
    """The engine URL of the Docker CLI context called ``name`` (``docker context create vm2 ...``), if any."""
    from docker.context import ContextAPI  # reads ~/.docker/contexts; the SDK's from_env does not

    try:
        context = ContextAPI.get_context(name)
    except Exception:  # a broken context store says nothing about this machine: treat it as absent
        return None
    host = context.Host if context is not None else None
    return str(host) if host and name != "default" else None


def engine_url(machine: str, environ: Mapping[str, str]) -> str | None:
    """How to reach the engine of the machine named ``machine`` (a Swarm node's hostname), or None.

    In order: a simulated cluster's machines (registered), ``LAB_MACHINES`` (``NAME=URL,...``),
    then a Docker context of that name. None: only the engine of ``DOCKER_HOST`` is reachable.
    """
    if machine in _known:
        return _known[machine]
    listed = parse_engine_map(environ.get("LAB_MACHINES", ""))
    return listed.get(machine) or context_url(machine)
