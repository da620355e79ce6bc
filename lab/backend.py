"""The lab on a Docker engine: Compose for the lifecycle, the Docker SDK for looking and cleaning.

``docker compose -p <project> -f <generated file>`` starts and stops a lab, so
what runs is exactly the file anyone can read. Everything else (which labs
run, a node's container, leftovers to remove) is found by label with the SDK,
which works even when the topology file is gone.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from lab import compose, model
from protocols.errors import TestbedError

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
CONFIG_LABEL = "com.docker.compose.project.config_files"
WAIT_TIMEOUT = 120  # seconds for every health check to pass
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
    return tuple(m for m in topology.members if not m.profiles or set(m.profiles) & set(profiles))


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
            if PROJECT_LABEL not in container.labels:
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
    """Remove every container, network and volume labelled ``testbed.lab`` (or ``testbed.lab=<lab>``)."""
    label = model.LAB_LABEL if lab is None else f"{model.LAB_LABEL}={lab}"
    return _remove(engine(), {"label": [label]}, volumes=True, say=say)


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


# --------------------------------------------------------------------------- finding things


def running_labs() -> dict[str, str]:
    """Project → lab name, for every lab with a container (running or not)."""
    labs: dict[str, str] = {}
    for container in engine().containers.list(all=True, filters={"label": [model.LAB_LABEL, PROJECT_LABEL]}):
        labs[container.labels[PROJECT_LABEL]] = container.labels[model.LAB_LABEL]
    return labs


def config_file(project: str) -> Path | None:
    """The Compose file a running lab was started from, if it still exists."""
    for container in engine().containers.list(all=True, filters={"label": [f"{PROJECT_LABEL}={project}"]}):
        for name in container.labels.get(CONFIG_LABEL, "").split(","):
            if name and Path(name).exists():
                return Path(name)
    return None


def containers(client: docker.DockerClient, project: str) -> list[Container]:
    return list(client.containers.list(all=True, filters={"label": [f"{PROJECT_LABEL}={project}"]}))


def find_container(client: docker.DockerClient, project: str, node: str) -> Container:
    """The container of one node (a Compose service) of a lab."""
    found = client.containers.list(
        all=True, filters={"label": [f"{PROJECT_LABEL}={project}", f"{SERVICE_LABEL}={node}"]}
    )
    if not found:
        names = sorted({c.labels.get(SERVICE_LABEL, "?") for c in containers(client, project)})
        hint = f"nodes: {', '.join(names)}" if names else f"is lab {model.lab_name(project)!r} up? try lab ps"
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
    """The topology names of a running lab's networks."""
    found = engine().networks.list(filters={"label": [f"{PROJECT_LABEL}={project}"]})
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
    """Rows as an aligned text table with a header."""
    header = Row("NODE", "ROLE", "STATE", "ADDRESSES", "PORTS (127.0.0.1 only)")
    cells = [(r.node, r.role, r.state, r.addresses, r.ports) for r in (header, *rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(5)]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(5)).rstrip() for c in cells)


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
