"""A lab as a Compose project: ``docker compose -p <project> -f <generated file>``.

What runs is exactly the file anyone can read (``lab render``); everything else
(which containers, leftovers to remove) is found by label with the SDK, which works
even when the topology file is gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path

from docker.models.containers import Container

from lab import compose, engine, model, reach, readiness
from lab.backends.base import Backend, Row, Say, inventory, probe_programs, remove_labelled, remove_sidecars, run_docker
from lab.engine import CONFIG_LABEL, PROJECT_LABEL, SERVICE_LABEL, LabError

WAIT_TIMEOUT = 120  # seconds for every health check to pass
HELPER_TIMEOUT = 60  # seconds for a route helper to install its routes


def compose_file(topology: model.Topology, files: Path) -> Path:
    """The generated Compose file of a lab: ``<files>/<name>/compose.yaml``."""
    return files / topology.name / "compose.yaml"


def _compose(project: str, file: Path, *args: str, profiles: Iterable[str] = (), echo: bool = False) -> None:
    argv = ["docker", "compose", "-p", project, "-f", str(file)]
    for profile in profiles:
        argv += ["--profile", profile]
    hint = f"see lab ps -t {model.lab_name(project)} and lab logs NODE"
    run_docker([*argv, *args], hint=hint, echo_stderr=echo)


class ComposeProject(Backend):
    """Compose on one engine: ports on 127.0.0.1, hardening as rendered, route helpers for routed labs."""

    def up(self, topology: model.Topology, *, profiles: Sequence[str], files: Path, say: Say,
           port_offset: int = 0) -> tuple[model.Node, ...]:  # fmt: skip
        """Render, start and wait for health; then run the route helpers and wait for them to succeed.

        ``up -d``, then the engine's events say when each node is healthy (``lab.readiness``):
        Compose's ``--wait`` would look only every 500 ms. The one-shot route helpers start in a
        second step, since a container that exits counts as a failure while nodes start.
        """
        file = compose_file(topology, files)
        say(f"rendering {file}")
        if port_offset:
            raise LabError("a port offset is for Swarm stacks", "Compose binds 127.0.0.1 at the rendered ports")
        # Rendered for the engine at hand: Docker 25+ checks often only while starting (see compose.HEALTH).
        modern = engine.engine_major() >= compose.START_INTERVAL_ENGINE
        label = compose.source_label(topology.source, file)
        compose.save(compose.to_yaml(topology, source_label=label, output_name=file.name, start_interval=modern), file)
        members = topology.active(profiles)
        helpers = [compose.routes_service(n) for n in members if not n.is_router and topology.routes(n)]
        names = [m.name for m in members] if helpers else []
        count = f"{len(members)} container" + ("" if len(members) == 1 else "s")
        say(f"starting {count}, waiting until each serves: a ready line or a health check (up to {WAIT_TIMEOUT} s)")
        build = ["--build"] if any(m.program and m.program.build for m in members) else []  # a changed Dockerfile
        start = ["up", "-d", *build, "--remove-orphans", *names]
        hint = partial(_logs_hint, topology.project)
        with readiness.watching([f"{PROJECT_LABEL}={topology.project}"]) as watch:
            _compose(topology.project, file, *start, profiles=profiles)
            took = watch.wait({m.name for m in members}, timeout=WAIT_TIMEOUT, hint=hint)
        say(f"{count} ready, {took:.1f} s after Compose started them")
        if helpers:
            say(f"installing routes ({', '.join(helpers)})")
            _compose(topology.project, file, "up", "-d", "--no-deps", *helpers, profiles=profiles)
            for helper in helpers:
                self._wait_helper(topology.project, helper)
        probe_programs(self, topology.project, members, say=say)
        return members

    def render(self, topology: model.Topology, *, output: Path | None, profiles: Sequence[str] = (),
               port_offset: int = 0) -> str:  # fmt: skip
        """The Compose file; it holds every profile (``up`` chooses), and its ports are rendered, not offset."""
        if port_offset:
            raise LabError("a port offset is for Swarm stacks", "Compose binds 127.0.0.1 at the rendered ports")
        if profiles:
            raise LabError("a Compose file holds every profile", "choose profiles when starting it, or render a stack")
        label = compose.source_label(topology.source, output)
        return compose.to_yaml(topology, source_label=label, output_name=output.name if output else "compose.yaml")

    def _wait_helper(self, project: str, helper: str) -> None:
        container = self.find_container(project, helper)
        code = int(container.wait(timeout=HELPER_TIMEOUT).get("StatusCode", -1))
        if code != 0:
            last = engine.logs(container).splitlines()[-1:]
            raise LabError(f"{helper} exited {code}: {' '.join(last)}", f"docker logs {container.name}")

    def down(self, project: str, *, topology: model.Topology | None, files: Path, volumes: bool, say: Say) -> list[str]:
        """Stop and remove a lab, then anything else labelled with it; say what went."""
        file = compose_file(topology, files) if topology is not None else self.config_file(project)
        if topology is not None and file is not None and not file.exists():
            compose.write(topology, file)
        by_project = {"label": [f"{PROJECT_LABEL}={project}"]}
        before = inventory(by_project, volumes=volumes)
        # Sidecars of lab.impair/lab.capture share a node's namespace and are not Compose's: they go first.
        gone = remove_sidecars(project)
        if file is not None and file.exists():
            _compose(project, file, "down", "--remove-orphans", "--timeout", "5", *(["--volumes"] if volumes else []))
        remove_labelled(by_project, volumes=volumes)  # a lab whose Compose file is gone
        after = inventory(by_project, volumes=volumes)
        gone += [item for item in before if item not in after]
        for item in gone:
            say(f"removed {item}")
        return gone

    def config_file(self, project: str) -> Path | None:
        """The Compose file a running lab was started from, if it still exists."""
        for container in self.node_containers(project):
            for name in container.labels.get(CONFIG_LABEL, "").split(","):
                if name and Path(name).exists():
                    return Path(name)
        return None

    def where(self, project: str) -> str:
        return f"(project {project})"

    def deployed(self, project: str) -> bool:
        return bool(self.node_containers(project))

    def kept_volumes(self, project: str) -> list[str]:
        return [str(v.name) for v in engine.client().volumes.list(filters={"label": [f"{PROJECT_LABEL}={project}"]})]

    def node_containers(self, project: str, node: str | None = None) -> list[Container]:
        labels = [f"{PROJECT_LABEL}={project}", *([f"{SERVICE_LABEL}={node}"] if node else [])]
        return engine.labelled(labels)

    def network_names(self, project: str) -> list[str]:
        return [str(n.name) for n in engine.client().networks.list(filters={"label": [f"{PROJECT_LABEL}={project}"]})]

    def status(self, project: str, *, order: Sequence[str] = ()) -> list[Row]:
        rows = []
        for container in self.node_containers(project):
            node = str(container.labels.get(SERVICE_LABEL, container.name))
            role = str(container.labels.get(model.ROLE_LABEL, "node"))
            shares = node.removesuffix(compose.ROUTES_SUFFIX)
            addresses = _addresses(container, project) if role != "routes" else f"(shares {shares})"
            rows.append(Row(node, role, _state(container), addresses, _published(container),
                            restart=f"docker restart {container.name}", container=str(container.name)))  # fmt: skip
        rank = {name: i for i, name in enumerate(order)}
        return sorted(rows, key=lambda r: (rank.get(r.node, len(rank)), r.node))


def _logs_hint(project: str, node: str) -> str:
    return f"lab logs -t {model.lab_name(project)} {node}"


def _state(container: Container) -> str:
    state = container.attrs.get("State", {})
    health = (state.get("Health") or {}).get("Status")
    if state.get("Status") == "exited":
        return f"exited ({state.get('ExitCode')})"
    if readiness.unprobed_since_paused(state):
        return f"running ({readiness.UNPROBED_SINCE_PAUSED})"
    announces = str(container.labels.get(model.READY_LINE_LABEL) or "")
    if readiness.said_ready_check_pending(str(container.id), state, announces):
        return f"running ({readiness.SAID_READY_CHECK_PENDING})"
    return f"{state.get('Status')}" + (f" ({health})" if health else "")


def _addresses(container: Container, project: str) -> str:
    networks = container.attrs["NetworkSettings"]["Networks"] or {}
    parts = [f"{name.removeprefix(project + '_')}={info.get('IPAddress') or '-'}" for name, info in networks.items()]
    return " ".join(sorted(parts))


def _published(container: Container) -> tuple[reach.Published, ...]:
    bindings = container.attrs["HostConfig"].get("PortBindings") or {}
    bound = container.attrs["NetworkSettings"].get("Ports") or {}
    protocol = reach.checked_protocol(readiness.probe_argv(container.attrs["Config"]))
    return reach.published_from_docker(bindings, bound, protocol=protocol)
