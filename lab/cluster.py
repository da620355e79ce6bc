"""A simulated cluster on this engine: each machine a privileged container running an engine of its own.

Like kind's nodes: one container per machine (hostname ``h1``, ``h2``...), a volume of
its own for ``/var/lib/docker``, all on one bridge network (the *underlay*, fixed
addresses, so Swarm finds a machine again after a restart). Each inner engine serves
its API on 127.0.0.1 of this machine (a random port), so the lab reaches it exactly as
it reaches a real machine: by an engine URL. The node image is carried in with
``docker save | docker load`` (no registry), the machines form a Swarm and each is
labelled ``machine=hN`` for placement. Everything carries ``testbed.cluster=<name>``.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
from docker.models.containers import Container
from docker.models.networks import Network

from common.waiting import wait_until
from lab import engine, machines, model
from lab.engine import LabError
from lab.machines import CLUSTER_LABEL, MACHINE_LABEL, Shape

Say = Callable[[str], None]
MACHINE_IMAGE = "testbed/machine"
MACHINE_DOCKERFILE = Path(__file__).resolve().parent.parent / "images" / "machine"
ENGINE_TIMEOUT = 60.0  # seconds for an inner engine to answer after its machine started (about 2 s measured)
HEARTBEAT_NS = 1_000_000_000  # Swarm's dispatcher heartbeat: 1 s (default 5 s), so a dead machine is seen sooner
STOP_TIMEOUT = 10  # seconds a machine's engine has to stop its containers before SIGKILL
MOVE_TIMEOUT = 180.0  # seconds for Swarm to run a stopped machine's tasks elsewhere


@dataclass(frozen=True)
class Machine:
    """One machine of a simulated cluster, as this engine sees its container."""

    name: str
    container: str
    address: str  # on the underlay
    url: str | None  # its engine's API, while it runs
    state: str

    @property
    def running(self) -> bool:
        return self.state == "running"


def _labels(cluster: str, **more: str) -> dict[str, str]:
    return {CLUSTER_LABEL: cluster, **more}


def machine_image() -> str:
    """The machine image's tag: ``testbed/machine:<the node image's tag>``, so parallel checkouts keep theirs."""
    tag = engine.node_image().rpartition(":")[2] if ":" in engine.node_image() else "latest"
    return f"{MACHINE_IMAGE}:{tag}"


def ensure_machine_image(say: Say) -> str:
    """Build the machine image unless it exists and its Dockerfile is unchanged (a label holds its digest)."""
    import hashlib

    tag = machine_image()
    digest = hashlib.sha256((MACHINE_DOCKERFILE / "Dockerfile").read_bytes()).hexdigest()[:16]
    with contextlib.suppress(docker.errors.ImageNotFound):
        if engine.client().images.get(tag).labels.get("testbed.machine.context") == digest:
            return tag
    say(f"building {tag} (the base image and Debian's docker.io; once)")
    result = subprocess.run(
        ["docker", "build", "-q", "--label", f"testbed.machine.context={digest}", "-t", tag, str(MACHINE_DOCKERFILE)],
        env={**_env(), "DOCKER_BUILDKIT": "0"}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise LabError(
            f"building {tag} failed: {result.stderr.strip()[-400:]}", "is the base image there? scripts/setup"
        )
    return tag


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


# --------------------------------------------------------------------------- looking


def machines_of(cluster: str) -> list[Machine]:
    """The cluster's machines, by number."""
    found = engine.client().containers.list(
        all=True, ignore_removed=True, filters={"label": f"{CLUSTER_LABEL}={cluster}"}
    )
    result = []
    for container in found:
        name = container.labels.get(MACHINE_LABEL)
        if not name:
            continue
        result.append(_machine(cluster, container))
    return sorted(result, key=lambda m: int(m.name[1:]))


def _machine(cluster: str, container: Container) -> Machine:
    attrs = container.attrs
    network = (attrs["NetworkSettings"]["Networks"] or {}).get(machines.underlay_name(cluster)) or {}
    config = (network.get("IPAMConfig") or {}).get("IPv4Address") or network.get("IPAddress") or ""
    bound = (attrs["NetworkSettings"].get("Ports") or {}).get(f"{machines.ENGINE_PORT}/tcp") or []
    url = f"tcp://127.0.0.1:{bound[0]['HostPort']}" if bound and container.status == "running" else None
    return Machine(container.labels[MACHINE_LABEL], str(container.name), str(config), url, str(container.status))


def machine(cluster: str, name: str) -> Machine:
    """One machine, or a ``LabError`` listing those there are."""
    found = {m.name: m for m in machines_of(cluster)}
    if not found:
        raise LabError(f"no cluster {cluster!r} on this engine", "start one with lab cluster up")
    return found[machines.check_machine(name, found)]


def engines(cluster: str) -> dict[str, str]:
    """Each running machine's engine URL."""
    return {m.name: m.url for m in machines_of(cluster) if m.url}


def manager_url(cluster: str, *, besides: str | None = None) -> str:
    """The engine URL of a running manager of the cluster (other than ``besides``)."""
    for each in machines_of(cluster):
        if each.url and each.name != besides and _role(each.url) == "manager":
            return each.url
    raise LabError(f"no manager of cluster {cluster!r} runs" + (f" besides {besides}" if besides else ""),
                   "lab cluster ls; lab cluster start the manager, or lab cluster up --managers 3")  # fmt: skip


def _role(url: str) -> str | None:
    with contextlib.suppress(LabError, docker.errors.APIError):
        state = engine.client_at(url).info().get("Swarm") or {}
        if state.get("LocalNodeState") == "active":
            return "manager" if state.get("ControlAvailable") else "worker"
    return None


def attach(cluster: str) -> str:
    """Make this process talk to the cluster: its manager becomes the engine, its machines reachable by name."""
    found = engines(cluster)
    machines.register(found)
    engine.mark_elsewhere(found.values())
    url = manager_url(cluster)
    engine.use(url, elsewhere=True)
    return url


# --------------------------------------------------------------------------- up and down


def up(cluster: str, shape: Shape, *, say: Say) -> list[Machine]:
    """Start the machines, load the node image into each, form a Swarm and label each machine."""
    if machines_of(cluster):
        raise LabError(f"cluster {cluster!r} already exists", "lab cluster ls; lab cluster down first")
    client = engine.client()
    image = ensure_machine_image(say)
    major = machines.dockerd_version(_run_once(image, ["dockerd", "--version"]))
    cgroups = str(client.info().get("CgroupVersion", "1"))
    network = _underlay(cluster)
    subnet = str(network.attrs["IPAM"]["Config"][0]["Subnet"])
    say(f"starting {shape.hosts} machines on {network.name} ({subnet}), inner engine Docker {major}")
    for name in shape.names:
        argv = machines.dockerd_argv(major, cgroup_parent=machines.cgroup_parent(cluster, name))
        volume = machines.volume_name(cluster, name)
        client.volumes.create(volume, labels=_labels(cluster, **{MACHINE_LABEL: name}))
        container = client.containers.create(
            image, argv, name=machines.container_name(cluster, name), hostname=name, privileged=True,
            labels=_labels(cluster, **{MACHINE_LABEL: name}), detach=True,
            volumes={volume: {"bind": "/var/lib/docker", "mode": "rw"}, **machines.cgroup_binds(cgroups)},
            ports={f"{machines.ENGINE_PORT}/tcp": ("127.0.0.1", 0)}, network=network.name,
            networking_config={str(network.name): docker.types.EndpointConfig(
                engine.client().api.api_version, ipv4_address=machines.machine_address(subnet, name))},
        )  # fmt: skip
        container.start()
    found = machines_of(cluster)
    for each in found:
        _wait_for_engine(each)
    say(f"loading {engine.node_image()} into every machine (docker save | docker load)")
    started = time.monotonic()
    _load_image(found)
    say(f"  loaded in {time.monotonic() - started:.1f} s")
    say(f"forming a Swarm: {shape.managers} manager(s), {shape.hosts - shape.managers} worker(s)")
    _form_swarm(found, shape)
    return machines_of(cluster)


def _run_once(image: str, argv: Sequence[str]) -> str:
    output = engine.client().containers.run(image, list(argv), remove=True, labels={CLUSTER_LABEL: "probe"})
    return engine.text(output)


def _underlay(cluster: str) -> Network:
    """The cluster's bridge network, on the first free /24 (another may take one meanwhile: then the next)."""
    client = engine.client()
    for _attempt in range(5):
        used = [
            str(c.get("Subnet", ""))
            for n in client.networks.list()
            for c in (n.attrs.get("IPAM") or {}).get("Config") or []
        ]
        subnet = machines.free_subnet(used)
        pool = docker.types.IPAMPool(subnet=subnet)
        try:
            ipam = docker.types.IPAMConfig(pool_configs=[pool])
            return client.networks.create(machines.underlay_name(cluster), ipam=ipam, labels=_labels(cluster))
        except docker.errors.APIError as exc:
            if "overlap" not in str(exc):
                raise
    raise LabError("no free subnet for the underlay after 5 tries", "remove unused networks")


def _wait_for_engine(each: Machine) -> None:
    if each.url is None:
        raise LabError(f"machine {each.name} is {each.state}", f"docker logs {each.container}")
    url = each.url

    def answers() -> bool:
        engine.forget_client(url)
        with contextlib.suppress(LabError):
            engine.client_at(url)
            return True
        return False

    try:
        wait_until(answers, timeout=ENGINE_TIMEOUT, interval=0.3, what=f"the engine of {each.name}")
    except TimeoutError as exc:
        raise LabError(str(exc), f"docker logs {each.container}") from None


def _load_image(found: Sequence[Machine]) -> None:
    image = engine.node_image()
    with tempfile.TemporaryDirectory(prefix="testbed-cluster-") as tmp:
        archive = Path(tmp) / "node.tar"
        engine.client().images.get(image)  # a clear error when it is missing, before docker save
        _docker(["save", "-o", str(archive), image], hint="scripts/setup builds the node image")

        def load(each: Machine) -> None:
            assert each.url is not None
            _docker(["-H", each.url, "load", "-q", "-i", str(archive)], hint=f"docker logs {each.container}")
            # Inside the machines this is the only node image: the name the README's commands use.
            engine.client_at(each.url).images.get(image).tag("testbed/node", "latest")

        with ThreadPoolExecutor(max_workers=len(found)) as pool:
            list(pool.map(load, found))


def _docker(argv: Sequence[str], *, hint: str) -> None:
    result = subprocess.run(["docker", *argv], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LabError(f"docker {' '.join(argv[:3])} failed: {result.stderr.strip()[-300:]}", hint)


def _form_swarm(found: Sequence[Machine], shape: Shape) -> None:
    first = found[0]
    assert first.url is not None
    leader = engine.client_at(first.url)
    leader.swarm.init(advertise_addr=first.address, listen_addr="0.0.0.0:2377",
                      dispatcher_heartbeat_period=HEARTBEAT_NS)  # fmt: skip
    tokens = leader.swarm.attrs["JoinTokens"]
    for each in found[1:]:
        assert each.url is not None
        token = tokens["Manager" if shape.role(each.name) == "manager" else "Worker"]
        engine.client_at(each.url).swarm.join(remote_addrs=[f"{first.address}:2377"], join_token=token,
                                              advertise_addr=each.address, listen_addr="0.0.0.0:2377")  # fmt: skip
    nodes = {str(n.attrs["Description"]["Hostname"]): n for n in leader.nodes.list()}
    for each in found:
        node = nodes[each.name]
        spec = node.attrs["Spec"]
        node.update({**spec, "Labels": {**spec.get("Labels", {}), machines.PLACEMENT_LABEL: each.name}})


def down(cluster: str, *, say: Say) -> list[str]:
    """Remove the machines (their engines' containers die with them), sidecars, volumes, network and cgroups."""
    client = engine.client()
    removed: list[str] = []
    found = machines_of(cluster)
    sidecars: dict[str, Any] = {"label": f"{model.LAB_LABEL}={_project(cluster)}"}
    for container in client.containers.list(all=True, ignore_removed=True, filters=sidecars):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
            removed.append(f"container {container.name}")
    for each in found:
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(each.container).remove(force=True)
            removed.append(f"container {each.container}")
            say(f"removed machine {each.name} ({each.container})")
    if found:
        removed += _remove_cgroups(cluster, [m.name for m in found], say=say)
    for volume in client.volumes.list(filters={"label": f"{CLUSTER_LABEL}={cluster}"}):
        with contextlib.suppress(docker.errors.NotFound):
            volume.remove(force=True)
            removed.append(f"volume {volume.name}")
    for network in client.networks.list(filters={"label": f"{CLUSTER_LABEL}={cluster}"}):
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()
            removed.append(f"network {network.name}")
    return removed


def _remove_cgroups(cluster: str, names: Sequence[str], *, say: Say) -> list[str]:
    """Remove each machine's cgroup tree (cgroup v1: the inner containers' cgroups outlive the machine).

    From a throwaway privileged container of the machine image, so that whoever may run
    docker may clean up, root or not. The trees are empty: their processes died with the machine.
    """
    if str(engine.client().info().get("CgroupVersion", "1")) != "1":
        return []
    trees = " ".join(f"/sys/fs/cgroup/*{machines.cgroup_parent(cluster, n)}" for n in names)
    script = f'for t in {trees}; do [ -d "$t" ] && find "$t" -depth -type d -exec rmdir {{}} + && echo "$t"; done; true'
    output = engine.text(engine.client().containers.run(
        machine_image(), ["sh", "-c", script], remove=True, privileged=True, labels={CLUSTER_LABEL: cluster},
        volumes=machines.cgroup_binds("1"),
    ))  # fmt: skip
    gone = [f"cgroup {line.strip().removeprefix('/sys/fs/cgroup/')}" for line in output.splitlines() if line.strip()]
    if gone:
        say(f"removed {len(gone)} cgroup trees of the machines")
    return gone


def _project(cluster: str) -> str:
    """The lab label of the sidecars that impair the underlay (``lab cluster impair``)."""
    return f"{machines.prefix(cluster)}-underlay"
