"""Model → Swarm stack file: the same lab, one service per node, spread over several machines.

``lab up --swarm`` writes this module's output to ``.lab/<lab>/stack.yaml`` and runs
``docker stack deploy`` on it; ``lab render --swarm`` prints it. The stack is named like the
Compose project (``testbed``, ``testbed-<lab>``), so its networks are ``<stack>_<network>``
too, and every service, container, network and volume carries ``testbed.lab=<lab>``.

What changes from ``compose.yaml``, and why:

* Networks are **overlays**, ``attachable`` so that ``docker run --network <stack>_lab``
  can put a client next to the servers from any machine of the cluster.
* Every service has ``endpoint_mode: dnsrr``: a name resolves to the task's own address.
  The default (a virtual IP) and the ingress routing mesh need the kernel's IPVS, which
  some kernels (this project's CI) lack; one task per node needs no load balancer anyway.
* Ports are published in **host mode**: on the machine that runs the task, on **every
  interface**. Swarm cannot bind a port to one address (no ``127.0.0.1:`` as in Compose),
  so a Swarm lab is reachable from the network: firewall it. ``--port-offset N`` moves
  every host port by N (out of the way of another lab's). Only what the topology
  publishes is published.
* Hardening carried over (Docker 20.10, API 1.41, checked on a real service): the image's
  non-root user, ``cap_drop: [ALL]`` (an empty bounding set), ``read_only``, ``init``, the
  health check, memory and pids limits (under ``deploy.resources``), a 16 MB ``/tmp``
  (a tmpfs *mount*: the service-level ``tmpfs:`` key is silently ignored by ``docker stack
  deploy``), ``stop_grace_period``. Not carried over: ``security_opt:
  no-new-privileges``: ``docker stack deploy`` warns and drops it, and a 20.10 daemon
  ignores ``Privileges.NoNewPrivileges`` even when a service is created through the API
  (checked: ``NoNewPrivs: 0`` in the task). What is left of its protection: with no
  capabilities in the bounding set, a set-uid binary can switch to uid 0 but gains no
  capability, and the root file system stays read-only.
* ``restart`` becomes ``deploy.restart_policy``; addresses are Swarm's choice within a
  network's subnet (``ipv4_address`` is ignored by Swarm); profiles are chosen when the
  file is rendered (stack files have none); one-shot clients (the ``client`` service) are
  not services at all: run them with ``docker run --network <stack>_<network>``.
* Routers are not supported: Swarm has no static addresses for routes to point at and
  no ``network_mode: service:X`` for the route helpers. ``check`` says so with the line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lab import compose, model
from lab.catalogue import SERVICES
from lab.loader import Problem, TopologyError, key_line

STACK_VERSION = "3.9"  # the newest stack file format of Docker 20.10's CLI (pids limits need it)
NODE_LABEL = "testbed.node"  # on each task's container: which node of the topology it is
RESTART = {"unless-stopped": "any", "always": "any", "on-failure": "on-failure", "no": "none"}
RESTART_DELAY = "1s"  # Swarm's default waits 5 s before restarting a task; Compose restarts at once


def stack_name(topology: model.Topology) -> str:
    """The stack: the Compose project's name, so ``<stack>_<network>`` is the same in both backends."""
    return topology.project


def check(topology: model.Topology) -> None:
    """Raise ``TopologyError`` for what a stack cannot express (routers, so far)."""
    if topology.routers:
        line = key_line(topology.source, "routers")
        names = ", ".join(r.name for r in topology.routers)
        raise TopologyError(
            [
                Problem(
                    str(topology.source),
                    line,
                    "routers",
                    f"lab up --swarm does not support routers yet ({names})",
                    "run this lab with lab up (Compose), or put the nodes on one network for Swarm",
                )
            ]
        )


def members(topology: model.Topology, profiles: Sequence[str] = ()) -> tuple[model.Node, ...]:
    """The nodes that become services: active hosts, except one-shot clients."""
    return tuple(n for n in topology.active(profiles) if not n.is_router and not _interactive(n))


def left_out(topology: model.Topology, profiles: Sequence[str] = ()) -> tuple[model.Node, ...]:
    """Active one-shot clients: a Swarm service must keep running, so they are run with ``docker run``."""
    return tuple(n for n in topology.active(profiles) if not n.is_router and _interactive(n))


def _interactive(node: model.Node) -> bool:
    return node.program is None and SERVICES[node.service].interactive


def ports(node: model.Node, *, offset: int = 0) -> list[dict[str, Any]]:
    """The node's published ports in the long syntax, host mode, each host port moved up by ``offset``.

    Host mode binds every interface of the machine: a Swarm port cannot be bound to one
    address (``127.0.0.1``), unlike a Compose port.
    """
    result: list[dict[str, Any]] = []
    for port in node.publish:
        published = port.host + offset
        if not 0 < published < 65536:
            raise ValueError(f"{node.name}: host port {port.host} + offset {offset} is outside 1-65535")
        result.append(compose.FlowMap(target=port.container, published=published, protocol=port.protocol, mode="host"))
    return result


def _hardening() -> dict[str, Any]:
    """Compose's hardening, minus what Swarm cannot take (see the module docstring)."""
    carried = compose.hardening()
    for dropped in ("restart", "tmpfs", "security_opt"):
        del carried[dropped]
    return carried


def _deploy(topology: model.Topology, node: model.Node, *, restart: str, memory: str, pids: int) -> dict[str, Any]:
    deploy: dict[str, Any] = {
        "endpoint_mode": "dnsrr",
        "replicas": 1,
        "restart_policy": {"condition": RESTART[restart], "delay": RESTART_DELAY},
        "resources": {"limits": {"memory": memory, "pids": pids}},
    }
    if node.placement is not None:
        deploy["placement"] = {"constraints": list(node.placement.constraints())}
    deploy["labels"] = compose.lab_labels(topology)
    return deploy


def _tmp() -> dict[str, Any]:
    size = compose.FlowMap(size=compose.TMP_SIZE_MB * 1024 * 1024)
    return compose.FlowMap(type="tmpfs", target=compose.TMP_MOUNT, tmpfs=size)


def program_service(
    topology: model.Topology, node: model.Node, program: model.Program, *, image: str, port_offset: int = 0
) -> dict[str, Any]:
    """A node of the user's code or image as a Swarm service: Compose's rendering, less what a stack cannot take.

    A stack cannot build (``lab up --swarm`` builds first and pins the result by ID) and
    ignores ``cap_add`` on this engine's stack format; a code folder is bind-mounted, so on
    several machines it must be at the same path on each.
    """
    body = compose.program_service(topology, node, program)
    dropped = (
        "pull_policy",
        "build",
        "restart",
        "tmpfs",
        "security_opt",
        "mem_limit",
        "pids_limit",
        "profiles",
        "expose",
    )
    for key in dropped:
        body.pop(key, None)
    body["image"] = image
    body["networks"] = compose.Flow(node.networks)
    if node.publish:
        body["ports"] = ports(node, offset=port_offset)
    body["volumes"] = [_tmp(), *body.get("volumes", [])]
    body["labels"] = {**body["labels"], NODE_LABEL: node.name}
    body["deploy"] = _deploy(topology, node, restart="unless-stopped", memory=compose.PROGRAM_MEMORY,
                             pids=compose.PROGRAM_PIDS)  # fmt: skip
    return body


def service(
    topology: model.Topology,
    node: model.Node,
    *,
    image: str,
    port_offset: int = 0,
    program_images: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One node as a Swarm service (``program_images``: the pinned image of each image: node, by node name)."""
    if node.program is not None:
        own = (program_images or {}).get(node.name)
        chosen = image if node.program.kind == "code" else own or compose.program_image(topology, node, node.program)
        return program_service(topology, node, node.program, image=chosen, port_offset=port_offset)
    spec = SERVICES[node.service]
    body: dict[str, Any] = {"image": image, "hostname": node.name}
    body["command"] = compose.Flow(node.command or spec.command)
    body.update(_hardening())
    body["stop_grace_period"] = "2s"
    body["networks"] = compose.Flow(node.networks)
    if node.publish:
        body["ports"] = ports(node, offset=port_offset)
    body["volumes"] = [_tmp(), *(f"{name}:{mount}" for name, mount in compose.node_volumes(node))]
    check = compose.healthcheck(spec)
    if check is not None:
        body["healthcheck"] = check
    body["labels"] = compose.lab_labels(topology, **{NODE_LABEL: node.name})
    body["deploy"] = _deploy(topology, node, restart=spec.restart, memory=spec.mem_limit, pids=spec.pids_limit)
    return body


def render(
    topology: model.Topology,
    *,
    image: str = compose.IMAGE,
    profiles: Sequence[str] = (),
    port_offset: int = 0,
    program_images: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The whole stack document as plain data; ``TopologyError`` when the topology has routers."""
    check(topology)
    nodes = members(topology, profiles)
    used = {name for node in nodes for name in node.networks}
    networks: dict[str, Any] = {}
    for network in topology.networks:
        if network.name not in used:
            continue
        entry: dict[str, Any] = {"driver": "overlay", "attachable": True}
        if network.subnet is not None:
            entry["ipam"] = {"config": [{"subnet": str(network.subnet)}]}
        entry["labels"] = compose.lab_labels(topology)
        networks[network.name] = entry
    document: dict[str, Any] = {
        "version": STACK_VERSION,
        "services": {
            n.name: service(topology, n, image=image, port_offset=port_offset, program_images=program_images)
            for n in nodes
        },
        "networks": networks,
    }
    volumes = {name: {"labels": compose.lab_labels(topology)} for n in nodes for name, _ in compose.node_volumes(n)}
    # A shared folder is a tmpfs of each machine: nodes share it only when they run on the same one.
    volumes |= {name: compose.shared_volume(topology) for n in nodes for name, _ in compose.shared_volumes(n)}
    if volumes:
        document["volumes"] = volumes
    return document


def header(topology: model.Topology, *, source_label: str, profiles: Sequence[str] = (), port_offset: int = 0) -> str:
    """The comment block: where the file comes from, how to deploy it, how it differs from compose.yaml."""
    stack = stack_name(topology)
    options = "".join(f" --profile {p}" for p in profiles) + (f" --port-offset {port_offset}" if port_offset else "")
    lines = [
        f"# GENERATED from {source_label} for Docker Swarm: edit the topology, not this file.",
        f"#   lab up --swarm{options} {source_label}     (renders this file, deploys it, waits for health)",
        f"#   by hand: docker stack deploy --resolve-image never -c <this file> {stack}",
        "#   (with TESTBED_NODE_IMAGE=$(docker image inspect -f '{{.Id}}' testbed/node) when the image is a",
        "#   variable below: a tag makes every machine try to pull it from Docker Hub first)",
        "# Unlike compose.yaml: overlay networks; endpoint_mode dnsrr (no VIP, no ingress mesh);",
        "# ports published in host mode on EVERY interface of the machine running the task (Swarm",
        "# cannot bind 127.0.0.1); no no-new-privileges (no such Swarm option on Docker 20.10);",
        "# addresses chosen by Swarm.",
    ]
    if topology.description:
        lines += ["#", f"# {topology.name}: {topology.description}"]
    for node in left_out(topology, profiles):
        network = f"{stack}_{node.networks[0]}"
        lines.append(
            f"# {node.name} is a one-shot client, not a service: "
            f"docker run --rm --network {network} testbed/node python3 -m clients.tour"
        )
    return "\n".join(lines) + "\n\n"


def to_yaml(
    topology: model.Topology,
    *,
    source_label: str,
    image: str = compose.IMAGE,
    profiles: Sequence[str] = (),
    port_offset: int = 0,
    program_images: Mapping[str, str] | None = None,
) -> str:
    """The stack file text: header, then sections with a blank line between services."""
    document = render(topology, image=image, profiles=profiles, port_offset=port_offset, program_images=program_images)
    parts = [
        header(topology, source_label=source_label, profiles=profiles, port_offset=port_offset),
        compose.dump({"version": document["version"]}),
        "\nservices:\n",
        "\n".join(compose.indent(compose.dump({name: body})) for name, body in document["services"].items()),
    ]
    for section in ("networks", "volumes"):
        if section in document:
            parts += [f"\n{section}:\n", compose.indent(compose.dump(document[section]))]
    return "".join(parts)
