"""Model → Compose file (``lab render topology/default.yaml -o compose.yaml``).

The checked-in compose.yaml is this module's output for topology/default.yaml;
a unit test fails when the two drift apart. Every container, network and volume
gets the label ``testbed.lab=<lab>``, so ``lab wipe`` finds them with no file.

Hardening is the same for every host: the image's non-root ``node`` user, no
capabilities, no privilege escalation, a read-only root with a small /tmp,
memory and process limits, ports only on 127.0.0.1. Only two kinds of
container get ``NET_ADMIN``, both running as root because Linux gives file-less
capabilities to root alone: routers (which also forward, ``ip_forward=1``) and
the one-shot ``<node>-routes`` helpers, which join a host's network namespace
(``network_mode: service:<node>``), install its routes and exit, so the server
itself never holds the capability.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from lab import model
from lab.catalogue import ROUTER, SERVICES, Service
from protocols import registry

IMAGE = f"${{{model.IMAGE_VARIABLE}:-{model.DEFAULT_NODE_IMAGE}}}"  # Compose reads the variable when it runs
# For any engine, one check a second: "up --wait" waits for the first one, and engines before Docker 25
# (API 1.44) have no start_interval to check sooner while starting. Each check is a `docker exec` (~60 ms
# of CPU), so six servers idle at about 0.4 of a core.
HEALTH = {"interval": "1s", "timeout": "3s", "retries": 3, "start_period": "10s"}
# Docker 25 and newer: every 250 ms while starting, so lab up's wait ends soon after the server answers,
# then every 30 s, so an idle lab costs next to nothing. A server that dies later is reported unhealthy
# after `retries` of these checks (about 90 s); `lab ps` probes the host ports itself.
HEALTH_ON_START = {"interval": "30s", "start_interval": "250ms"}
START_INTERVAL_ENGINE = 25  # the first Docker Engine release with start_interval (API 1.44)
ROUTES_SUFFIX = "-routes"
LOG_MAX_SIZE = "10m"  # per file, and LOG_FILES files: at most 30 MB of log a container
LOG_FILES = "3"
PROGRAM_USER = "10001:10001"  # an image's own user may be root; a program node runs as the node image's uid
PROGRAM_MEMORY = "256m"
PROGRAM_PIDS = 256
SHARED_SIZE_MB = 16  # a shared folder holds sockets and small files, in memory
TMP_MOUNT, TMP_SIZE_MB = "/tmp", 16  # a small writable /tmp on the read-only root


class Flow(list[Any]):
    """A list written in flow style, ``[a, b]``: short commands and options read better on one line."""


class FlowMap(dict[str, Any]):
    """A mapping written in flow style, ``{a: 1, b: 2}``: a port in the long syntax reads better on one line."""


class _Dumper(yaml.SafeDumper):
    """Block mappings, indented block sequences (``  - item``), ``Flow`` lists on one line."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_flow(dumper: yaml.SafeDumper, data: Flow) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


def _represent_flow_map(dumper: yaml.SafeDumper, data: FlowMap) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)


_Dumper.add_representer(Flow, _represent_flow)
_Dumper.add_representer(FlowMap, _represent_flow_map)


def routes_service(node: model.Node) -> str:
    """The Compose service that installs ``node``'s routes."""
    return f"{node.name}{ROUTES_SUFFIX}"


# --------------------------------------------------------------------------- services


def node_volumes(node: model.Node) -> list[tuple[str, str]]:
    """(volume, mount) pairs: the service's data volumes, unless a command override never writes there.

    A creosote redirector (``--redirect``) records nothing, so it gets no log volume.
    """
    command = node.command
    return [
        (f"{node.name}-{v.suffix}", v.mount)
        for v in (SERVICES[node.service].volumes if node.program is None else ())
        if command is None or any(v.mount in word for word in command)
    ]


def shared_volumes(node: model.Node) -> list[tuple[str, str]]:
    """(volume, mount) pairs: the lab-wide folders a program node shares with the others that name them."""
    shared = node.program.shared if node.program is not None else ()
    return [(f"shared-{name}", f"{model.SHARED_MOUNT}/{name}") for name in shared]


def shared_volume(topology: model.Topology) -> dict[str, Any]:
    """A shared folder's volume: a tmpfs of the engine's machine, writable by every node's user, sticky like /tmp.

    A plain named volume would be root's, 0755, and the nodes run as unprivileged users; mode 1777 lets
    each create files there and keeps each one's files its own (file permissions decide who may use them).
    """
    return {
        "driver_opts": {"type": "tmpfs", "device": "tmpfs", "o": f"size={SHARED_SIZE_MB}m,mode=1777"},
        "labels": lab_labels(topology),
    }


def lab_labels(topology: model.Topology, **extra: str) -> dict[str, str]:
    """``testbed.lab=<lab>`` and ``extra``: how lab wipe and the runtime helpers find a lab's things."""
    return {model.LAB_LABEL: topology.name, **dict(topology.labels), **extra}


def hardening() -> dict[str, Any]:
    """What every long-running container shares: an init for signals, restarts, a read-only root, no privileges."""
    return {
        "init": True,
        "restart": "unless-stopped",
        "read_only": True,
        "tmpfs": [f"{TMP_MOUNT}:size={TMP_SIZE_MB}m"],
        "cap_drop": Flow(["ALL"]),
        "security_opt": ["no-new-privileges:true"],
        # Docker keeps a container's output forever by default: 50k malformed datagrams added 9.5 MB of log.
        "logging": {"driver": "json-file", "options": {"max-size": LOG_MAX_SIZE, "max-file": LOG_FILES}},
    }


def _networks(node: model.Node) -> Any:
    """``[lab]`` when Docker picks addresses; a mapping with ``ipv4_address`` when the model fixed them."""
    if all(a.address is None for a in node.attachments):
        return Flow(node.networks)
    return {a.network: {"ipv4_address": str(a.address)} if a.address else None for a in node.attachments}


def _addressing(topology: model.Topology, node: model.Node) -> dict[str, Any]:
    section: dict[str, Any] = {"networks": _networks(node)}
    hosts = topology.remote_hosts(node)
    if hosts:
        # Docker's DNS only answers for containers on a shared network: names behind a router go in /etc/hosts.
        section["extra_hosts"] = [f"{name}:{address}" for name, address in hosts]
    return section


def _host_service(topology: model.Topology, node: model.Node) -> dict[str, Any]:
    if node.program is not None:
        return program_service(topology, node, node.program)
    spec: Service = SERVICES[node.service]
    service: dict[str, Any] = {"image": IMAGE, "pull_policy": "never", "hostname": node.name}
    if node.profiles:
        service["profiles"] = Flow(node.profiles)
    service["command"] = Flow(node.command or spec.command)
    service.update(hardening())
    service["restart"] = spec.restart
    service.update({"mem_limit": spec.mem_limit, "pids_limit": spec.pids_limit, "stop_grace_period": "2s"})
    if spec.interactive:
        service.update({"stdin_open": True, "tty": False})
    service.update(_addressing(topology, node))
    if node.publish:
        service["ports"] = [port.compose() for port in node.publish]
    volumes = node_volumes(node)
    if volumes:
        service["volumes"] = [f"{name}:{mount}" for name, mount in volumes]
    check = healthcheck(spec)
    if check is not None:
        service["healthcheck"] = check
    # A server (it has a check) logs a ready line under its module's name, services.<protocol> (the five
    # line-server nodes all say `upper ready`): lab up takes that line (lab.readiness).
    ready_line = {model.READY_LINE_LABEL: spec.protocol} if check is not None and spec.protocol else {}
    service["labels"] = lab_labels(topology, **ready_line)
    return service


def program_image(topology: model.Topology, node: model.Node, program: model.Program) -> str:
    """The image a program node runs: the node image for code, the named image, or the tag its build gets."""
    if program.kind == "code":
        return IMAGE
    return program.image or f"{topology.project}-{node.name}:latest"


def program_service(topology: model.Topology, node: model.Node, program: model.Program) -> dict[str, Any]:
    """A node of the user's code or image, hardened like every other unless the topology relaxes it (visibly)."""
    service: dict[str, Any] = {"image": program_image(topology, node, program)}
    if program.build is not None:
        service["build"] = {"context": str(program.build)}
    service["pull_policy"] = "never" if program.kind == "code" else "build" if program.build else "missing"
    service["hostname"] = node.name
    if node.profiles:
        service["profiles"] = Flow(node.profiles)
    command = node.command or program.default_command()
    if command:
        service["command"] = Flow(command)
    if program.environment:
        service["environment"] = dict(program.environment)
    service["user"] = program.user or (PROGRAM_USER if program.kind == "image" else "node")
    if program.kind == "code":
        service["working_dir"] = model.CODE_MOUNT
    service.update(hardening())
    service["read_only"] = program.read_only
    if program.cap_add:
        service["cap_add"] = Flow(program.cap_add)
    service.update({"mem_limit": PROGRAM_MEMORY, "pids_limit": PROGRAM_PIDS, "stop_grace_period": "2s"})
    service.update(_addressing(topology, node))
    if program.ports:
        service["expose"] = [str(port) for port in program.ports]  # in the container's config: lab check reads it
    if node.publish:
        service["ports"] = [port.compose() for port in node.publish]
    mounts: list[dict[str, Any]] = []
    if program.code is not None:
        target = model.CODE_MOUNT if program.code.is_dir() else f"{model.CODE_MOUNT}/{program.code.name}"
        mounts.append({"type": "bind", "source": str(program.code), "target": target, "read_only": True})
    mounts += [{"type": "volume", "source": name, "target": mount} for name, mount in shared_volumes(node)]
    if mounts:
        service["volumes"] = mounts
    check = program_healthcheck(program)
    if check is not None:
        service["healthcheck"] = check
    service["labels"] = lab_labels(topology)
    return service


def program_healthcheck(program: model.Program) -> dict[str, Any] | None:
    """A command probe runs in any image; a protocol probe needs the node image's tools (code nodes).

    An image node with a protocol probe has no Docker health check: ``lab up`` probes
    it from a sidecar in its namespace instead, which works whatever the image holds.
    """
    if program.probe is None:
        return None
    if program.probe.exec:
        return {"test": Flow(["CMD", *program.probe.exec]), **HEALTH}
    if program.kind != "code" or program.probe.protocol is None:
        return None
    return {"test": Flow(["CMD", *registry.health_command(program.probe.protocol, program.ports)]), **HEALTH}


def healthcheck(spec: Service) -> dict[str, Any] | None:
    """The service's health check in Compose's words (Swarm reads the same), or None when it has no probe."""
    test = spec.health_test()
    return None if test is None else {"test": Flow(test), **HEALTH}


def _shell(routes: Sequence[model.Route], then: Sequence[str] = ()) -> Flow:
    """One ``sh -ec`` line: every route, then (for a router) the placeholder process."""
    steps = [" ".join(route.argv()) for route in routes]
    if then:
        steps.append("exec " + " ".join(then))
    return Flow(["sh", "-ec", "; ".join(steps)])


def _router_service(topology: model.Topology, router: model.Node) -> dict[str, Any]:
    routes = topology.routes(router)
    service: dict[str, Any] = {"image": IMAGE, "pull_policy": "never", "hostname": router.name}
    service["command"] = _shell(routes, ROUTER.command) if routes else Flow(ROUTER.command)
    service.update(hardening())
    service.update(
        {
            "user": "root",  # capabilities reach root only; cap_drop ALL keeps just the two below
            "cap_add": Flow(["NET_ADMIN", "NET_RAW"]),
            "sysctls": {"net.ipv4.ip_forward": 1},
            "mem_limit": "32m",
            "pids_limit": 32,
            "stop_grace_period": "2s",
        }
    )
    service.update(_addressing(topology, router))
    service["labels"] = lab_labels(topology, **{model.ROLE_LABEL: "router"})
    return service


def _routes_helper(topology: model.Topology, node: model.Node, routes: Sequence[model.Route]) -> dict[str, Any]:
    """A one-shot container in ``node``'s network namespace that installs its routes and exits."""
    service: dict[str, Any] = {"image": IMAGE, "pull_policy": "never"}
    if node.profiles:
        service["profiles"] = Flow(node.profiles)
    service.update(
        {
            "command": _shell(routes),
            "network_mode": f"service:{node.name}",
            "depends_on": {node.name: {"condition": "service_started"}},
            "restart": "no",
            "read_only": True,
            "user": "root",
            "cap_drop": Flow(["ALL"]),
            "cap_add": Flow(["NET_ADMIN"]),
            "security_opt": ["no-new-privileges:true"],
            "mem_limit": "32m",
            "pids_limit": 16,
            "labels": lab_labels(topology, **{model.ROLE_LABEL: "routes", "testbed.node": node.name}),
        }
    )
    return service


def services(topology: model.Topology) -> dict[str, dict[str, Any]]:
    """Every Compose service of the lab, in topology order: hosts, their route helpers, routers."""
    result: dict[str, dict[str, Any]] = {}
    for node in topology.nodes:
        result[node.name] = _host_service(topology, node)
    for node in topology.nodes:
        routes = topology.routes(node)
        if routes:
            result[routes_service(node)] = _routes_helper(topology, node, routes)
    for router in topology.routers:
        result[router.name] = _router_service(topology, router)
    return result


def route_helpers(topology: model.Topology) -> tuple[str, ...]:
    """The one-shot services of the lab (``up --wait`` would count their exit as a failure)."""
    return tuple(routes_service(n) for n in topology.nodes if topology.routes(n))


def render(topology: model.Topology) -> dict[str, Any]:
    """The whole Compose document as plain data."""
    networks: dict[str, Any] = {}
    for network in topology.networks:
        entry: dict[str, Any] = {}
        if network.subnet is not None:
            entry["ipam"] = {"config": [{"subnet": str(network.subnet)}]}
        entry["labels"] = lab_labels(topology)
        networks[network.name] = entry
    volumes = {name: {"labels": lab_labels(topology)} for node in topology.nodes for name, _ in node_volumes(node)}
    volumes |= {name: shared_volume(topology) for node in topology.nodes for name, _ in shared_volumes(node)}
    document: dict[str, Any] = {"name": topology.project, "services": services(topology), "networks": networks}
    if volumes:
        document["volumes"] = volumes
    return document


# --------------------------------------------------------------------------- text


def dump(data: Any) -> str:
    """YAML in this project's style: block mappings, indented sequences, ``Flow`` lists on one line."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000, allow_unicode=True)


def indent(text: str) -> str:
    """Every non-empty line two spaces deeper."""
    return "".join(f"  {line}" if line.strip() else line for line in text.splitlines(keepends=True))


def header(topology: model.Topology, *, source_label: str, output_name: str = "compose.yaml") -> str:
    """The comment block: generated from where, how to regenerate, how to use."""
    command = f"{source_label} -o {output_name}"
    lines = [
        f"# GENERATED from {source_label}: edit the topology, not this file. To regenerate, in this folder:",
        f"#   lab render {command}",
    ]
    if topology.description:
        lines += ["#", f"# {topology.name}: {topology.description}"]
    helpers = route_helpers(topology)
    if helpers:
        lines += [
            "# Bring it up with `lab up`: the *-routes helpers install routes and exit, which",
            "# `docker compose up --wait` reports as a failure (plain `docker compose up -d` is fine).",
        ]
    else:
        lines.append("# Bring it up with `lab up`, or `docker compose -f <this file> up -d --wait`.")
    for profile in topology.profiles():
        members = ", ".join(n.name for n in topology.members if profile in n.profiles)
        lines.append(
            f"# Profile {profile} ({members}): lab up --profile {profile}, or docker compose --profile {profile} up -d"
        )
    for node in topology.nodes:
        if node.program is None and SERVICES[node.service].interactive:
            lines.append(f"# Clients, by hostname: docker compose run --rm {node.name} [python3 -m clients.NAME ...]")
    return "\n".join(lines) + "\n\n"


def with_start_interval(document: dict[str, Any]) -> dict[str, Any]:
    """The document with every health check timed for Docker 25+ (``HEALTH_ON_START``); the input is unchanged."""
    services = {}
    for name, body in document["services"].items():
        if "healthcheck" in body:
            body = {**body, "healthcheck": {**body["healthcheck"], **HEALTH_ON_START}}
        services[name] = body
    return {**document, "services": services}


def engine_override(topology: model.Topology, *, source_label: str, output_name: str) -> str:
    """An override file that gives the rendered lab Docker 25+ health timing, and nothing else.

    ``docker compose -f compose.yaml -f THIS up`` merges it key by key; an engine before 25 refuses it,
    so the lab file itself stays the one every engine runs.
    """
    checked = [name for name, body in render(topology)["services"].items() if "healthcheck" in body]
    lines = [
        f"# GENERATED from {source_label}: edit the topology, not this file. To regenerate, in this folder:",
        f"#   lab render {source_label} --engine-override -o {output_name}",
        f"# Health checks for Docker Engine {START_INTERVAL_ENGINE} or newer: every {HEALTH_ON_START['start_interval']}"
        f" while a server starts, then every {HEALTH_ON_START['interval']}",
        "# (an idle lab costs next to nothing). Use it on top of the lab's own file:",
        f"#   docker compose -f compose.yaml -f {output_name} up -d --wait",
        "# Older engines refuse start_interval: use compose.yaml alone there.",
    ]
    services = {name: {"healthcheck": dict(HEALTH_ON_START)} for name in checked}
    return "\n".join(lines) + "\n" + dump({"services": services})


def to_yaml(topology: model.Topology, *, source_label: str, output_name: str = "compose.yaml",
            start_interval: bool = False) -> str:  # fmt: skip
    """The Compose file text: header, then sections with a blank line between services.

    ``start_interval``: health checks timed for Docker 25+ (the file is then refused by older engines).
    """
    document = render(topology)
    if start_interval:
        document = with_start_interval(document)
    parts = [
        header(topology, source_label=source_label, output_name=output_name),
        dump({"name": document["name"]}),
        "\nservices:\n",
    ]
    parts.append("\n".join(indent(dump({name: body})) for name, body in document["services"].items()))
    for section in ("networks", "volumes"):
        if section in document:
            parts.append(f"\n{section}:\n")
            parts.append(indent(dump(document[section])))
    return "".join(parts)


def source_label(source: Path, output: Path | None) -> str:
    """The topology's path as seen from the output file's folder (or the working directory)."""
    start = output.resolve().parent if output is not None else Path.cwd()
    return Path(os.path.relpath(source.resolve(), start)).as_posix()


def save(text: str, output: Path) -> Path:
    """Write a rendered file (folders created), only rewriting it when the text changed."""
    output.parent.mkdir(parents=True, exist_ok=True)
    if not output.exists() or output.read_text(encoding="utf-8") != text:
        output.write_text(text, encoding="utf-8")
    return output


def write(topology: model.Topology, output: Path) -> Path:
    """Render ``topology`` into ``output`` as a Compose file."""
    return save(to_yaml(topology, source_label=source_label(topology.source, output), output_name=output.name), output)
