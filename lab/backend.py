"""The lab on a Docker engine: Compose for the lifecycle, the Docker SDK for looking and cleaning.

``docker compose -p <project> -f <generated file>`` starts and stops a lab, so
what runs is exactly the file anyone can read; with ``lab up --swarm``,
``docker stack deploy -c <generated stack file> <project>`` does. Everything
else (which labs run, a node's container, leftovers to remove) is found by
label with the SDK, which works even when the topology file is gone. Swarm
tasks are containers too: the runtime verbs find those on this engine.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from lab import compose, model, swarm
from protocols.errors import TestbedError

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
CONFIG_LABEL = "com.docker.compose.project.config_files"
STACK_LABEL = "com.docker.stack.namespace"  # on a stack's services, networks, volumes and task containers
NODE_IMAGE = "testbed/node:latest"
WAIT_TIMEOUT = 120  # seconds for every health check to pass
GONE_TIMEOUT = 60  # seconds for a removed stack's containers and networks to go
FAILED_TASKS = 3  # a service whose tasks failed this often will not get healthy by waiting
PENDING_GRACE = 5  # seconds a task may wait for a machine before Swarm's "no suitable node" counts
STOP_GRACE = 2  # seconds a server has to stop on SIGTERM (the stop_grace_period of every node)
HELPER_TIMEOUT = 60  # seconds for a route helper to install its routes

Say = Callable[[str], None]


class BackendError(TestbedError):
    """Something the engine refused or could not do; ``hint`` says what to try."""

    def __init__(self, what: str, hint: str) -> None:
        super().__init__(f"{what} ({hint})")
        self.what = what
        self.hint = hint


@dataclass(frozen=True)
class Row:
    """One line of ``lab ps`` or of the summary after ``lab up``."""

    node: str
    role: str
    state: str
    addresses: str
    ports: str
    machine: str = ""  # the Swarm node running it; "" for Compose


@functools.cache
def engine() -> docker.DockerClient:
    """The client for the local engine (one per process), or a ``BackendError`` saying how to get one."""
    client = None
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # the SDK raises unrelated types (requests, FileNotFound, DockerException)
        if client is not None:
            client.close()
        raise BackendError(f"no Docker engine answers ({type(exc).__name__})", "start one with scripts/setup") from None
    return client


def state_dir() -> Path:
    """Where generated Compose files go: ``$LAB_STATE_DIR``, or ``.lab`` in the working directory."""
    return Path(os.environ.get("LAB_STATE_DIR", ".lab"))


def compose_file(topology: model.Topology, *, root: Path | None = None) -> Path:
    """The generated Compose file of a lab: ``.lab/<name>/compose.yaml``."""
    return (root or state_dir()) / topology.name / "compose.yaml"


# --------------------------------------------------------------------------- compose


def _compose_argv(project: str, file: Path, profiles: Iterable[str], args: Sequence[str]) -> list[str]:
    argv = ["docker", "compose", "-p", project, "-f", str(file)]
    for profile in profiles:
        argv += ["--profile", profile]
    return [*argv, *args]


def run_compose(project: str, file: Path, *args: str, profiles: Iterable[str] = (), quiet: bool = False) -> None:
    """Run one Compose command; on failure raise with the tail of its output."""
    argv = _compose_argv(project, file, profiles, args)
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BackendError("no docker command", "install Docker with scripts/setup") from None
    if not quiet and result.stderr.strip():
        for line in result.stderr.strip().splitlines():
            print(f"    {line.strip()}", file=sys.stderr)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        hint = f"see lab ps -t {model.lab_name(project)} and lab logs NODE; the command was: {' '.join(argv)}"
        raise BackendError(f"docker compose {args[0]} failed: {' / '.join(t.strip() for t in tail)}", hint)


def active_members(topology: model.Topology, profiles: Sequence[str]) -> tuple[model.Node, ...]:
    """The members Compose starts: those without profiles, and those in an active profile."""
    return topology.active(profiles)


def up(topology: model.Topology, file: Path, *, profiles: Sequence[str], say: Say) -> None:
    """Start the lab and wait for health; then run the route helpers and wait for them to succeed.

    ``up --wait`` treats a container that exited as a failure, even with code 0,
    so the one-shot route helpers start in a second step that does not wait.
    """
    members = active_members(topology, profiles)
    helpers = [compose.routes_service(n) for n in members if not n.is_router and topology.routes(n)]
    names = [m.name for m in members] if helpers else []
    count = f"{len(members)} container" + ("" if len(members) == 1 else "s")
    say(f"starting {count} and waiting for their health checks (up to {WAIT_TIMEOUT} s)")
    wait = ["up", "-d", "--wait", "--wait-timeout", str(WAIT_TIMEOUT), "--remove-orphans", *names]
    try:
        run_compose(topology.project, file, *wait, profiles=profiles, quiet=True)
    except BackendError:
        _explain_unhealthy(topology.project)
        raise
    if helpers:
        say(f"installing routes ({', '.join(helpers)})")
        run_compose(topology.project, file, "up", "-d", "--no-deps", *helpers, profiles=profiles, quiet=True)
        _wait_helpers(topology.project, helpers)


def _explain_unhealthy(project: str) -> None:
    """Raise with the last health-check output of the first node that is not healthy, when there is one."""
    for container in containers(engine(), project):
        state = container.attrs.get("State", {})
        health = state.get("Health") or {}
        if health.get("Status") == "unhealthy" or state.get("Status") == "exited":
            node = container.labels.get(SERVICE_LABEL, container.name)
            probe = (health.get("Log") or [{}])[-1].get("Output", "").strip().splitlines()[-1:]
            what = f"{node} is {health.get('Status') or _state(container)}" + (f": {probe[0]}" if probe else "")
            raise BackendError(what, f"lab logs -t {model.lab_name(project)} {node}")


def _wait_helpers(project: str, helpers: Sequence[str]) -> None:
    client = engine()
    for helper in helpers:
        container = find_container(client, project, helper)
        status = container.wait(timeout=HELPER_TIMEOUT)
        code = int(status.get("StatusCode", -1))
        if code != 0:
            logs = container.logs().decode("utf-8", errors="replace").strip().splitlines()[-1:]
            raise BackendError(f"{helper} exited {code}: {' '.join(logs)}", f"docker logs {container.name}")


def down(project: str, file: Path | None, *, volumes: bool, say: Say) -> list[str]:
    """Stop and remove a lab (volumes too with ``volumes``), then anything else labelled with it; say what went."""
    client = engine()
    by_project = {"label": [f"{PROJECT_LABEL}={project}"]}
    before = _inventory(client, by_project, volumes=volumes)
    # Sidecars of lab.impair/lab.capture share a node's namespace and are not Compose's: remove them first.
    gone = _remove_sidecars(client, project)
    if file is not None and file.exists():
        args = ["down", "--remove-orphans", "--timeout", "5", *(["--volumes"] if volumes else [])]
        run_compose(project, file, *args, quiet=True)
    _remove(client, by_project, volumes=volumes, say=lambda _: None)  # a lab whose Compose file is gone
    after = _inventory(client, by_project, volumes=volumes)
    gone += [item for item in before if item not in after]
    for item in gone:
        say(f"removed {item}")
    return gone


def _remove_sidecars(client: docker.DockerClient, project: str) -> list[str]:
    """Containers labelled with the lab (by name or project) that Compose did not start."""
    removed = []
    for value in sorted({model.lab_name(project), project}):
        for container in client.containers.list(all=True, filters={"label": [f"{model.LAB_LABEL}={value}"]}):
            if PROJECT_LABEL not in container.labels and STACK_LABEL not in container.labels:
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True)
                    removed.append(f"container {container.name}")
    return removed


def _inventory(client: docker.DockerClient, filters: dict[str, Any], *, volumes: bool) -> list[str]:
    items = [f"container {c.name}" for c in client.containers.list(all=True, filters=filters)]
    items += [f"network {n.name}" for n in client.networks.list(filters=filters)]
    items += [f"volume {v.name}" for v in client.volumes.list(filters=filters)] if volumes else []
    return items


def wipe(lab: str | None, *, say: Say) -> list[str]:
    """Remove every Swarm stack, container, network and volume labelled ``testbed.lab`` (or ``testbed.lab=<lab>``).

    Stacks go first, through Swarm: a task container removed behind its back is replaced at once.
    """
    label = model.LAB_LABEL if lab is None else f"{model.LAB_LABEL}={lab}"
    removed = []
    if swarm_role() == "manager":
        stacks = {s.attrs["Spec"]["Labels"].get(STACK_LABEL) for s in engine().services.list(filters={"label": label})}
        for stack in sorted(s for s in stacks if s):
            removed += stack_down(stack, volumes=True, say=say)
    return removed + _remove(engine(), {"label": [label]}, volumes=True, say=say)


def _remove(
    client: docker.DockerClient, filters: dict[str, Any], *, volumes: bool, say: Say, networks: bool = True
) -> list[str]:
    """Remove what matches ``filters``: containers first (helpers sharing a namespace before their host)."""
    removed = []
    containers = client.containers.list(all=True, filters=filters)
    containers.sort(key=lambda c: not str(c.attrs["HostConfig"].get("NetworkMode", "")).startswith("container:"))
    for container in containers:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
            removed.append(f"container {container.name}")
    for network in client.networks.list(filters=filters) if networks else []:
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()
            removed.append(f"network {network.name}")
    for volume in client.volumes.list(filters=filters) if volumes else []:
        with contextlib.suppress(docker.errors.NotFound):
            volume.remove(force=True)
            removed.append(f"volume {volume.name}")
    for line in removed:
        say(f"removed {line}")
    return removed


def kept_volumes(project: str) -> list[str]:
    """Volumes a ``down`` without ``--volumes`` left on purpose (the creosote logs)."""
    return [str(v.name) for v in engine().volumes.list(filters={"label": [f"{PROJECT_LABEL}={project}"]})]


# --------------------------------------------------------------------------- Swarm stacks


def stack_file(topology: model.Topology, *, root: Path | None = None) -> Path:
    """The generated stack file of a lab: ``.lab/<name>/stack.yaml``."""
    return (root or state_dir()) / topology.name / "stack.yaml"


def swarm_role() -> str | None:
    """``manager`` or ``worker`` when this engine is in a Swarm, else None."""
    state = engine().info().get("Swarm") or {}
    if state.get("LocalNodeState") != "active":
        return None
    return "manager" if state.get("ControlAvailable") else "worker"


def require_manager() -> None:
    """A ``BackendError`` saying what to do unless this engine manages a Swarm."""
    role = swarm_role()
    if role is None:
        raise BackendError(
            "this engine is not in a Swarm",
            "on one machine: docker swarm init --advertise-addr 127.0.0.1; several: docs/swarm.md",
        )
    if role != "manager":
        raise BackendError("this engine is a Swarm worker", "run lab on a manager (docker node ls lists them)")


def pinned_image(reference: str | None = None) -> str:
    """The node image as Swarm must see it: by ID when it is local, or as given when it names a digest.

    A Swarm node pulls a service's image by tag before every start, whatever is
    local (a tag like ``testbed/node:latest`` would be looked up on Docker Hub);
    an image ID is never pulled, and ``docker save | docker load`` keeps the ID,
    so the same stack file runs on every machine that loaded the image.
    """
    reference = reference or os.environ.get("TESTBED_NODE_IMAGE") or NODE_IMAGE
    if "@sha256:" in reference:
        return reference  # pulled by digest from its registry by the machines that lack it
    try:
        return str(engine().images.get(reference).id)
    except docker.errors.ImageNotFound:
        raise BackendError(
            f"image {reference} is not on this engine",
            "build it with scripts/setup, or name a pushed image by digest: "
            "TESTBED_NODE_IMAGE=REGISTRY/testbed/node@sha256:...",
        ) from None


def run_stack(*args: str) -> None:
    """``docker stack ARGS``; on failure raise with the tail of its output."""
    argv = ["docker", "stack", *args]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BackendError("no docker command", "install Docker with scripts/setup") from None
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise BackendError(f"docker stack {args[0]} failed: {' / '.join(tail)}", f"the command was: {' '.join(argv)}")


@dataclass(frozen=True)
class Tasks:
    """What Swarm says of one service: is its task running (health checks passed), and if not, why."""

    running: bool
    state: str
    error: str
    failures: int
    last_failure: str  # Swarm's reason for the newest failed or rejected task
    machine_id: str
    addresses: tuple[str, ...]


def _tasks(service: Any) -> Tasks:
    tasks = sorted(service.tasks(), key=lambda t: str(t.get("Status", {}).get("Timestamp", "")))
    current = [t for t in tasks if t.get("DesiredState") == "running"]
    newest = (current or tasks or [{}])[-1]
    failed = [t for t in tasks if t.get("Status", {}).get("State") in ("failed", "rejected")]
    status = newest.get("Status", {})
    addresses = tuple(
        f"{attachment['Network']['Spec']['Name']}={address.split('/')[0]}"
        for attachment in newest.get("NetworksAttachments") or []
        for address in attachment.get("Addresses") or []
        if attachment["Network"]["Spec"]["Name"] != "ingress"
    )
    return Tasks(
        running=any(t.get("Status", {}).get("State") == "running" for t in current),
        state=str(status.get("State", "new")),
        error=str(status.get("Err", "")),
        failures=len(failed),
        last_failure=str(failed[-1].get("Status", {}).get("Err", "")) if failed else "",
        machine_id=str(newest.get("NodeID", "")),
        addresses=addresses,
    )


def stack_services(stack: str) -> dict[str, Any]:
    """Node name → Swarm service, for one stack (empty when it is not deployed)."""
    found = engine().services.list(filters={"label": f"{STACK_LABEL}={stack}"})
    return {str(s.name).removeprefix(f"{stack}_"): s for s in found}


def _trouble(state: Tasks, pending_for: float) -> str | None:
    """Why waiting longer will not make a service healthy, or None."""
    if state.running:
        return None
    if state.failures >= FAILED_TASKS:
        return f"{state.failures} tasks failed, the last with: {state.last_failure or 'no reason given'}"
    if state.state == "pending" and state.error and pending_for > PENDING_GRACE:
        return f"no machine can run it: {state.error}"  # a port in use, a constraint nobody meets
    return None


def stack_up(stack: str, file: Path, nodes: Sequence[str], *, say: Say, timeout: float = WAIT_TIMEOUT) -> None:
    """Deploy a stack and wait until every node's task runs with its health check passed.

    Swarm keeps a task in ``starting`` until its container is healthy, so "running"
    is "healthy". A service that cannot get there by waiting (its tasks keep failing,
    or no machine can take it) is reported at once, with Swarm's reason.
    """
    say(f"deploying stack {stack}: {len(nodes)} services (docker stack deploy; up to {timeout:g} s for health)")
    run_stack("deploy", "--resolve-image", "never", "--prune", "-c", str(file), stack)
    deadline = time.monotonic() + timeout
    reported: list[str] | None = None
    pending_since: dict[str, float] = {}
    while True:
        services = stack_services(stack)
        tasks = {node: _tasks(services[node]) for node in nodes if node in services}
        ready = [node for node in nodes if node in tasks and tasks[node].running]
        if ready != reported:
            waiting = [node for node in nodes if node not in ready]
            say(
                f"  {len(ready)} of {len(nodes)} running and healthy"
                + (f"; waiting: {', '.join(waiting)}" if waiting else "")
            )
            reported = ready
        if len(ready) == len(nodes):
            return
        now = time.monotonic()
        for node, state in tasks.items():
            if state.state == "pending":
                pending_since.setdefault(node, now)
            else:
                pending_since.pop(node, None)
            trouble = _trouble(state, now - pending_since.get(node, now))
            if trouble is not None:
                hint = f"docker service ps --no-trunc {stack}_{node}; docker service logs {stack}_{node}"
                raise BackendError(f"{node}: {trouble}", hint)
        if now > deadline:
            stuck = "; ".join(f"{n}: {t.state} {t.error}".strip() for n, t in tasks.items() if not t.running)
            raise BackendError(f"not healthy after {timeout:g} s ({stuck})", f"docker stack ps --no-trunc {stack}")
        time.sleep(0.5)  # between polls of the Swarm API, which has no "wait until healthy"


def _stack_inventory(client: docker.DockerClient, stack: str, *, volumes: bool) -> list[str]:
    label: dict[str, Any] = {"label": [f"{STACK_LABEL}={stack}"]}
    items = [f"service {s.name}" for s in client.services.list(filters={"label": f"{STACK_LABEL}={stack}"})]
    items += [f"container {c.name}" for c in client.containers.list(all=True, filters=label)]
    items += [f"network {n.name}" for n in client.networks.list(filters=label)]
    items += [f"volume {v.name}" for v in client.volumes.list(filters=label)] if volumes else []
    return items


def stack_down(stack: str, *, volumes: bool, say: Say, timeout: float = GONE_TIMEOUT) -> list[str]:
    """``docker stack rm``, then wait until its containers and networks are gone; say what went.

    ``stack rm`` returns while the tasks are still stopping and gives up on networks
    still in use, so the networks are removed again once the containers are gone.
    Volumes are local to each machine: only this engine's are removed.
    """
    client = engine()
    before = _stack_inventory(client, stack, volumes=volumes)
    gone = _remove_sidecars(client, stack)  # impairment sidecars live in the tasks' namespaces
    label: dict[str, Any] = {"label": [f"{STACK_LABEL}={stack}"]}
    if client.services.list(filters={"label": f"{STACK_LABEL}={stack}"}):
        with contextlib.suppress(BackendError):  # "failed to remove some resources": networks in use, retried below
            run_stack("rm", stack)
    # Their services are gone, so nothing restarts these: stopping them here (SIGTERM, as Swarm would)
    # saves Swarm's 2 s wait for the name to leave the cluster's DNS, and its later removal.
    for container in client.containers.list(all=True, filters=label):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            container.stop(timeout=STOP_GRACE)
            container.remove(force=True)
    deadline = time.monotonic() + timeout
    while client.containers.list(all=True, filters=label) or client.networks.list(filters=label):
        if not client.containers.list(all=True, filters=label):
            for network in client.networks.list(filters=label):
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    network.remove()
        if time.monotonic() > deadline:
            left = ", ".join(_stack_inventory(client, stack, volumes=False))
            raise BackendError(f"stack {stack} not gone after {timeout:g} s: {left}", f"docker stack ps {stack}")
        time.sleep(0.2)  # between polls: Swarm stops tasks and frees networks in the background
    if volumes:
        _remove(client, label, volumes=True, networks=False, say=lambda _: None)
    after = _stack_inventory(client, stack, volumes=volumes)
    gone += [item for item in before if item not in after]
    for item in gone:
        say(f"removed {item}")
    return gone


def stack_status(stack: str, *, order: Sequence[str] = ()) -> list[Row]:
    """One row per service of a stack: its task's state, addresses, published ports and machine."""
    client = engine()
    machines = {str(n.id): str(n.attrs["Description"]["Hostname"]) for n in client.nodes.list()}
    rows = []
    for node, service in stack_services(stack).items():
        tasks = _tasks(service)
        checked = "Healthcheck" in service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
        if tasks.running:
            state = "running (healthy)" if checked else "running"
        else:
            state = tasks.state + (f": {tasks.error}" if tasks.error else "")
        ports = " ".join(
            f"*:{p['PublishedPort']}->{p['TargetPort']}/{p['Protocol']}"
            for p in service.attrs["Spec"].get("EndpointSpec", {}).get("Ports") or []
        )
        rows.append(
            Row(
                node,
                "node",
                state,
                " ".join(a.removeprefix(f"{stack}_") for a in tasks.addresses),
                ports,
                machines.get(tasks.machine_id, "-"),
            )
        )
    rank = {name: i for i, name in enumerate(order)}
    return sorted(rows, key=lambda r: (rank.get(r.node, len(rank)), r.node))


# --------------------------------------------------------------------------- finding things


def running_labs() -> dict[str, str]:
    """Project (or stack) → lab name, for every lab with a container on this engine (running or not)."""
    labs: dict[str, str] = {}
    for label in (PROJECT_LABEL, STACK_LABEL):
        for container in engine().containers.list(all=True, filters={"label": [model.LAB_LABEL, label]}):
            labs[container.labels[label]] = container.labels[model.LAB_LABEL]
    return labs


def compose_running(project: str) -> bool:
    """Whether the Compose lab of this project has a container here."""
    return bool(containers(engine(), project))


def on_swarm(project: str) -> bool:
    """Whether a lab is deployed as a Swarm stack (asked of the manager, or seen in this engine's tasks)."""
    if task_containers(engine(), project):
        return True
    return swarm_role() == "manager" and bool(stack_services(project))


def config_file(project: str) -> Path | None:
    """The Compose file a running lab was started from, if it still exists."""
    for container in engine().containers.list(all=True, filters={"label": [f"{PROJECT_LABEL}={project}"]}):
        for name in container.labels.get(CONFIG_LABEL, "").split(","):
            if name and Path(name).exists():
                return Path(name)
    return None


def containers(client: docker.DockerClient, project: str) -> list[Container]:
    """A Compose lab's containers."""
    return list(client.containers.list(all=True, filters={"label": [f"{PROJECT_LABEL}={project}"]}))


def task_containers(client: docker.DockerClient, stack: str, node: str | None = None) -> list[Container]:
    """A Swarm lab's running task containers on this engine (of one node with ``node``)."""
    label = f"{swarm.NODE_LABEL}={node}" if node else swarm.NODE_LABEL
    return list(client.containers.list(filters={"label": [f"{STACK_LABEL}={stack}", label]}))


def _node_of(container: Container) -> str:
    return str(container.labels.get(SERVICE_LABEL) or container.labels.get(swarm.NODE_LABEL) or container.name)


def find_container(client: docker.DockerClient, project: str, node: str) -> Container:
    """The container of one node of a lab: a Compose service's, or a Swarm task's running on this engine."""
    found = client.containers.list(
        all=True, filters={"label": [f"{PROJECT_LABEL}={project}", f"{SERVICE_LABEL}={node}"]}
    ) or task_containers(client, project, node)
    if not found:
        present = containers(client, project)
        names = sorted({_node_of(c) for c in present or task_containers(client, project)})
        hint = f"nodes: {', '.join(names)}" if names else f"is lab {model.lab_name(project)!r} up? try lab ps"
        if not present:
            hint += "; lab reaches a Swarm task only on the machine it runs on (lab ps shows which)"
        raise BackendError(f"no node {node!r} in lab {model.lab_name(project)!r}", hint)
    container: Container = found[0]
    return container


def node_ref(project: str, node: str, *, network: str | None = None) -> model.NodeRef:
    """A ``NodeRef`` for the runtime helpers; with ``network``, narrowed to that network's interface."""
    client = engine()
    container = find_container(client, project, node)
    interface = None if network is None else interface_on(container, network_ref(project, network))
    return model.NodeRef(project=project, node=node, container=str(container.name), interface=interface)


def network_ref(project: str, network: str) -> model.NetworkRef:
    """A ``NetworkRef``; Compose names a lab network ``<project>_<network>``."""
    docker_name = f"{project}_{network}"
    found = engine().networks.list(names=[docker_name])
    if not any(n.name == docker_name for n in found):
        raise BackendError(f"no network {network!r} in lab {model.lab_name(project)!r}", "see lab ps")
    return model.NetworkRef(project=project, network=network, docker_name=docker_name)


def lab_networks(project: str) -> list[str]:
    """The topology names of a running lab's networks (a Compose project's or a Swarm stack's)."""
    found = engine().networks.list(filters={"label": [f"{PROJECT_LABEL}={project}"]})
    found += engine().networks.list(filters={"label": [f"{STACK_LABEL}={project}"]})
    return sorted(str(n.name).removeprefix(f"{project}_") for n in found)


def interface_on(container: Container, network: model.NetworkRef) -> str:
    """The interface name (``eth1``...) a container has on a network: matched by its address there."""
    container.reload()
    settings = container.attrs["NetworkSettings"]["Networks"].get(network.docker_name)
    if not settings:
        raise BackendError(f"{container.name} is not on network {network.network!r}", "see lab ps")
    code, output = container.exec_run(["ip", "-o", "-4", "addr", "show"])
    for line in _text(output).splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3].split("/")[0] == settings["IPAddress"]:
            return fields[1].split("@")[0]
    raise BackendError(
        f"no interface of {container.name} has {settings['IPAddress']} (ip addr exit {code})", "is it up?"
    )


# --------------------------------------------------------------------------- looking


def _text(output: bytes | Iterable[bytes]) -> str:
    """``exec_run`` output (bytes unless streamed) as text."""
    data = output if isinstance(output, bytes) else b"".join(output)
    return data.decode("utf-8", errors="replace")


def _role(container: Container) -> str:
    return str(container.labels.get(model.ROLE_LABEL, "node"))


def _state(container: Container) -> str:
    state = container.attrs.get("State", {})
    health = (state.get("Health") or {}).get("Status")
    if state.get("Status") == "exited":
        return f"exited ({state.get('ExitCode')})"
    return f"{state.get('Status')}" + (f" ({health})" if health else "")


def _addresses(container: Container, project: str) -> str:
    networks = container.attrs["NetworkSettings"]["Networks"] or {}
    parts = [f"{name.removeprefix(project + '_')}={info.get('IPAddress') or '-'}" for name, info in networks.items()]
    return " ".join(sorted(parts))


def _ports(container: Container) -> str:
    bindings = container.attrs["HostConfig"].get("PortBindings") or {}
    parts = []
    for inside, outside in sorted(bindings.items()):
        for binding in outside or []:
            parts.append(f"{binding.get('HostIp') or '0.0.0.0'}:{binding.get('HostPort')}->{inside}")
    return " ".join(parts)


def status(project: str, *, order: Sequence[str] = ()) -> list[Row]:
    """One row per container of the lab: topology order first (when known), then by name."""
    rows = []
    for container in containers(engine(), project):
        node = str(container.labels.get(SERVICE_LABEL, container.name))
        addresses = (
            _addresses(container, project)
            if _role(container) != "routes"
            else "(shares " + node.removesuffix(compose.ROUTES_SUFFIX) + ")"
        )
        rows.append(Row(node, _role(container), _state(container), addresses, _ports(container)))
    rank = {name: i for i, name in enumerate(order)}
    return sorted(rows, key=lambda r: (rank.get(r.node, len(rank)), r.node))


def table(rows: Sequence[Row]) -> str:
    """Rows as an aligned text table with a header; a MACHINE column when the rows are Swarm tasks."""
    swarm_rows = any(r.machine for r in rows)
    ports = "PORTS (every interface)" if swarm_rows else "PORTS (127.0.0.1 only)"
    header = Row("NODE", "ROLE", "STATE", "ADDRESSES", ports, "MACHINE")
    cells = [
        (r.node, r.role, r.state, r.addresses, r.ports, *([r.machine] if swarm_rows else [])) for r in (header, *rows)
    ]
    columns = len(cells[0])
    widths = [max(len(c[i]) for c in cells) for i in range(columns)]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(columns)).rstrip() for c in cells)


# --------------------------------------------------------------------------- inside a node


def exec_in(container: str, argv: Sequence[str], *, user: str | None = None) -> int:
    """``docker exec`` with the terminal passed through; the command's exit code."""
    tty = ["-t"] if sys.stdin.isatty() and sys.stdout.isatty() else []
    who = ["--user", user] if user else []
    return subprocess.run(["docker", "exec", "-i", *tty, *who, container, *argv], check=False).returncode


def run_in(project: str, node: str, argv: Sequence[str]) -> tuple[int, str]:
    """Run a command in a node without a terminal; (exit code, output)."""
    container = find_container(engine(), project, node)
    code, output = container.exec_run(list(argv))
    return int(code if code is not None else -1), _text(output)


def logs(container: str, *, follow: bool, tail: str) -> int:
    """``docker logs`` of one container."""
    argv = ["docker", "logs", "--tail", tail, *(["--follow"] if follow else []), container]
    return subprocess.run(argv, check=False).returncode
