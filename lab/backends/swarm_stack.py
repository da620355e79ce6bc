"""A lab as a Swarm stack: ``docker stack deploy -c <generated stack file> <project>``, one service per node.

Swarm tasks are containers too: the runtime verbs reach those that run on this
engine. Volumes are local to each machine: only this engine's are removed.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
from docker.models.containers import Container

from lab import compose, engine, machines, model, reach, readiness, swarm
from lab.backends.base import Backend, Row, Say, inventory, probe_programs, remove_labelled, remove_sidecars, run_docker
from lab.engine import PROJECT_LABEL, STACK_LABEL, LabError

WAIT_TIMEOUT = 120  # seconds for every health check to pass
GONE_TIMEOUT = 60  # seconds for a removed stack's containers and networks to go
FAILED_TASKS = 3  # a service whose tasks failed this often will not get healthy by waiting
PENDING_GRACE = 5  # seconds a task may wait for a machine before Swarm's "no suitable node" counts
STOP_GRACE = 2  # seconds a server has to stop on SIGTERM (the stop_grace_period of every node)


def stack_file(topology: model.Topology, files: Path) -> Path:
    """The generated stack file of a lab: ``<files>/<name>/stack.yaml``."""
    return files / topology.name / "stack.yaml"


def swarm_role() -> str | None:
    """``manager`` or ``worker`` when this engine is in a Swarm, else None."""
    state = engine.client().info().get("Swarm") or {}
    if state.get("LocalNodeState") != "active":
        return None
    return "manager" if state.get("ControlAvailable") else "worker"


def require_manager() -> None:
    """A ``LabError`` saying what to do unless this engine manages a Swarm."""
    role = swarm_role()
    if role is None:
        raise LabError(
            "this engine is not in a Swarm",
            "on one machine: docker swarm init --advertise-addr 127.0.0.1; several: docs/swarm.md",
        )
    if role != "manager":
        raise LabError("this engine is a Swarm worker", "run lab on a manager (docker node ls lists them)")


def pinned_image(reference: str | None = None) -> str:
    """The node image as Swarm must see it: by ID when it is local, or as given when it names a digest.

    A Swarm node pulls a service's image by tag before every start, whatever is
    local (a tag like ``testbed/node:latest`` would be looked up on Docker Hub);
    an image ID is never pulled, and ``docker save | docker load`` keeps the ID,
    so the same stack file runs on every machine that loaded the image.
    """
    reference = reference or engine.node_image()
    if "@sha256:" in reference:
        return reference  # pulled by digest from its registry by the machines that lack it
    try:
        return str(engine.client().images.get(reference).id)
    except docker.errors.ImageNotFound:
        raise LabError(
            f"image {reference} is not on this engine",
            f"build it with scripts/setup, or name a pushed image by digest: "
            f"{model.IMAGE_VARIABLE}=REGISTRY/testbed/node@sha256:...",
        ) from None


def program_image(topology: model.Topology, node: model.Node, *, say: Say) -> str:
    """An image node's image as Swarm must see it: built here first when it has ``build:``, then pinned by ID."""
    assert node.program is not None
    tag = compose.program_image(topology, node, node.program)
    if node.program.build is not None:
        say(f"building {tag} from {node.program.build}")
        try:
            built, _logs = engine.client().images.build(path=str(node.program.build), tag=tag, rm=True)
        except (docker.errors.BuildError, docker.errors.APIError) as exc:
            raise LabError(
                f"building {node.name}'s image failed: {exc}", f"docker build {node.program.build}"
            ) from None
        return str(built.id)
    return pinned_image(tag)


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

    def trouble(self, pending_for: float) -> str | None:
        """Why waiting longer will not make the service healthy, or None."""
        if self.running:
            return None
        if self.failures >= FAILED_TASKS:
            return f"{self.failures} tasks failed, the last with: {self.last_failure or 'no reason given'}"
        if self.state == "pending" and self.error and pending_for > PENDING_GRACE:
            return f"no machine can run it: {self.error}"  # a port in use, a constraint nobody meets
        return None


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
    """Node name -> Swarm service, for one stack (empty when it is not deployed)."""
    found = engine.client().services.list(filters={"label": f"{STACK_LABEL}={stack}"})
    return {str(s.name).removeprefix(f"{stack}_"): s for s in found}


def _services(stack: str) -> list[str]:
    """A stack's services as ``service <name>``, for saying what went."""
    return [f"service {service.name}" for service in stack_services(stack).values()]


class SwarmStack(Backend):
    """Swarm across machines: overlay networks, dnsrr, host-mode ports, placement from the topology."""

    def up(self, topology: model.Topology, *, profiles: Sequence[str], files: Path, say: Say,
           port_offset: int = 0) -> tuple[model.Node, ...]:  # fmt: skip
        """Render the stack with the node image pinned by ID, deploy it and wait until every task is healthy."""
        swarm.check(topology)
        require_manager()
        stack = swarm.stack_name(topology)
        if engine.labelled([f"{PROJECT_LABEL}={stack}"]):
            raise LabError(
                f"the Compose lab {topology.name} (project {stack}) runs here; its ports and names would clash",
                f"lab down {topology.name} first",
            )
        image = pinned_image()
        members = swarm.members(topology, profiles)
        programs = {
            n.name: program_image(topology, n, say=say) for n in members if n.program and n.program.kind == "image"
        }
        file = stack_file(topology, files)
        say(f"rendering {file} (image {image.removeprefix('sha256:')[:12]}, pinned: no machine pulls it)")
        text = self.render(topology, output=file, profiles=profiles, port_offset=port_offset, image=image,
                           program_images=programs)  # fmt: skip
        compose.save(text, file)
        for node in swarm.left_out(topology, profiles):
            say(
                f"  {node.name} is a one-shot client, not a service: docker run --rm -i "
                f"--network {stack}_{node.networks[0]} {engine.node_image()} python3 -m clients.tour"
            )
        self._deploy(stack, file, [m.name for m in members], say=say)
        probe_programs(self, stack, members, say=say)
        return members

    def render(self, topology: model.Topology, *, output: Path | None, profiles: Sequence[str] = (),
               port_offset: int = 0, image: str = compose.IMAGE,
               program_images: dict[str, str] | None = None) -> str:  # fmt: skip
        """The stack file: the members of ``profiles``, host ports at PORT + ``port_offset``, images as given."""
        label = compose.source_label(topology.source, output)
        return swarm.to_yaml(topology, source_label=label, image=image, profiles=profiles, port_offset=port_offset,
                             program_images=program_images)  # fmt: skip

    def _deploy(self, stack: str, file: Path, nodes: Sequence[str], *, say: Say) -> None:
        """Deploy and wait until every node's task runs with its health check passed.

        Swarm keeps a task in ``starting`` until its container is healthy, so "running"
        is "healthy". A service that cannot get there by waiting (its tasks keep failing,
        or no machine can take it) is reported at once, with Swarm's reason.
        """
        say(f"deploying stack {stack}: {len(nodes)} services (docker stack deploy; up to {WAIT_TIMEOUT} s for health)")
        hint = f"docker stack ps --no-trunc {stack}"
        run_docker(
            ["docker", "stack", "deploy", "--resolve-image", "never", "--prune", "-c", str(file), stack], hint=hint
        )
        deadline = time.monotonic() + WAIT_TIMEOUT
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
                trouble = state.trouble(now - pending_since.get(node, now))
                if trouble is not None:
                    raise LabError(
                        f"{node}: {trouble}",
                        f"docker service ps --no-trunc {stack}_{node}; docker service logs {stack}_{node}",
                    )
            if now > deadline:
                stuck = "; ".join(f"{n}: {t.state} {t.error}".strip() for n, t in tasks.items() if not t.running)
                raise LabError(f"not healthy after {WAIT_TIMEOUT} s ({stuck})", hint)
            time.sleep(0.5)  # between polls of the Swarm API, which has no "wait until healthy"

    def down(self, project: str, *, topology: model.Topology | None, files: Path, volumes: bool, say: Say) -> list[str]:
        """``docker stack rm``, then wait until its containers and networks are gone; say what went.

        ``stack rm`` returns while the tasks are still stopping and gives up on networks
        still in use, so the networks are removed again once the containers are gone.
        """
        require_manager()
        client = engine.client()
        label: dict[str, Any] = {"label": [f"{STACK_LABEL}={project}"]}
        before = _services(project) + inventory(label, volumes=volumes)
        gone = remove_sidecars(project)  # impairment sidecars live in the tasks' namespaces
        if stack_services(project):
            with contextlib.suppress(LabError):  # "failed to remove some resources": networks in use, retried below
                run_docker(["docker", "stack", "rm", project], hint=f"docker stack ps {project}")
        # Their services are gone, so nothing restarts these: stopping them here (SIGTERM, as Swarm would)
        # saves Swarm's 2 s wait for the name to leave the cluster's DNS, and its later removal.
        for container in client.containers.list(all=True, filters=label):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                container.stop(timeout=STOP_GRACE)
                container.remove(force=True)
        deadline = time.monotonic() + GONE_TIMEOUT
        while client.containers.list(all=True, filters=label) or client.networks.list(filters=label):
            if not client.containers.list(all=True, filters=label):
                for network in client.networks.list(filters=label):
                    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                        network.remove()
            if time.monotonic() > deadline:
                left = ", ".join(inventory(label, volumes=False))
                raise LabError(f"stack {project} not gone after {GONE_TIMEOUT} s: {left}", f"docker stack ps {project}")
            time.sleep(0.2)  # between polls: Swarm stops tasks and frees networks in the background
        if volumes:
            remove_labelled(label, volumes=True, networks=False)
        after = _services(project) + inventory(label, volumes=volumes)
        gone += [item for item in before if item not in after]
        for item in gone:
            say(f"removed {item}")
        return gone

    def where(self, project: str) -> str:
        return f"on Swarm (stack {project})"

    def deployed(self, project: str) -> bool:
        """Asked of the manager, or seen in this engine's tasks."""
        if self.node_containers(project):
            return True
        return swarm_role() == "manager" and bool(stack_services(project))

    def kept_volumes(self, project: str) -> list[str]:
        return [str(v.name) for v in engine.client().volumes.list(filters={"label": f"{STACK_LABEL}={project}"})]

    def node_containers(self, project: str, node: str | None = None) -> list[Container]:
        label = f"{swarm.NODE_LABEL}={node}" if node else swarm.NODE_LABEL
        return engine.labelled([f"{STACK_LABEL}={project}", label], running_only=True)

    def find_container(self, project: str, node: str) -> Container:
        try:
            return super().find_container(project, node)
        except LabError as exc:
            raise LabError(
                exc.what,
                f"{exc.hint}; lab reaches a task on another machine through that machine's engine: a Docker "
                "context named like it, or LAB_MACHINES (docs/cluster.md)",
            ) from None

    def machine_of(self, project: str, node: str) -> str | None:
        """The hostname of the Swarm node that runs ``node``'s task (asked of a manager)."""
        if swarm_role() != "manager":
            return None
        service = stack_services(project).get(node)
        if service is None:
            return None
        machine_id = _tasks(service).machine_id
        return next((str(n.attrs["Description"]["Hostname"]) for n in engine.client().nodes.list()
                     if str(n.id) == machine_id), None)  # fmt: skip

    @contextlib.contextmanager
    def reach(self, project: str, node: str) -> Iterator[None]:
        """Through the engine of the machine running the task, when it is not this one and its URL is known.

        A machine's engine is found by its name (``lab.machines.engine_url``): a simulated
        cluster's, ``LAB_MACHINES``, or a Docker context named like the machine.
        """
        url = None
        if not self.node_containers(project, node):
            machine = self.machine_of(project, node)
            url = machines.engine_url(machine, os.environ) if machine else None
        with engine.reaching(url):
            yield

    def network_names(self, project: str) -> list[str]:
        return [str(n.name) for n in engine.client().networks.list(filters={"label": [f"{STACK_LABEL}={project}"]})]

    def status(self, project: str, *, order: Sequence[str] = ()) -> list[Row]:
        """One row per service: its task's state, addresses, published ports and machine."""
        require_manager()
        machines = {str(n.id): str(n.attrs["Description"]["Hostname"]) for n in engine.client().nodes.list()}
        rows = []
        for node, service in stack_services(project).items():
            tasks = _tasks(service)
            spec = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
            checked = "Healthcheck" in spec
            protocol = reach.checked_protocol(readiness.probe_argv(spec))
            if tasks.running:
                state = "running (healthy)" if checked else "running"
            else:
                state = tasks.state + (f": {tasks.error}" if tasks.error else "")
            published = tuple(
                reach.Published("*", int(p["PublishedPort"]), int(p["TargetPort"]), str(p["Protocol"]), protocol)
                for p in service.attrs["Spec"].get("EndpointSpec", {}).get("Ports") or []
            )
            addresses = " ".join(a.removeprefix(f"{project}_") for a in tasks.addresses)
            restart = f"docker service update --force {service.name}"
            rows.append(Row(node, "node", state, addresses, published, machines.get(tasks.machine_id, "-"), restart))
        rank = {name: i for i, name in enumerate(order)}
        return sorted(rows, key=lambda r: (rank.get(r.node, len(rank)), r.node))
