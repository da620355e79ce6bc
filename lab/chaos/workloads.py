"""The workloads' side of a chaos run on the engine: the clients' host, the workload containers, what they saw.

The workloads run on a host of their own that the runner adds to the lab: a
sleeping node-image container on the networks of the servers they talk to,
hardened like a node (``testbed.lab`` and ``testbed.sidecar=chaos`` labels, so
``lab down`` and ``lab wipe`` remove it too). Each workload is a container of the
node image in that host's network namespace, so one partition, delay or
disconnection of the host (``client`` in a schedule) reaches every workload at
once, and the servers see one client machine, as they would across a real network.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import docker.errors
from docker.models.containers import Container

from lab import engine, model
from lab.catalogue import CREOSOTE_LOG_DIR
from lab.engine import LabError
from lab.impair.sidecar import SIDECAR_LABEL
from protocols import registry

if TYPE_CHECKING:
    from lab.api import RunningLab

CHAOS_LABEL = "testbed.chaos"  # the run's tag, on the clients' host and every workload container
ROLE = "chaos"  # their testbed.sidecar role
RECORDS_NAME = "records.jsonl"
RECORDS_FILE = f"{CREOSOTE_LOG_DIR}/{RECORDS_NAME}"
# The built-in workloads: the service whose protocol (and port) each speaks.
SERVICES = {"chat": "chat", "creosote": "creosote", "echo": "echo", "threaded": "threaded"}
NAMES = tuple(SERVICES)
LINGER = 300.0  # seconds a workload or the host outlives the schedule on its own, should the runner die


@dataclass(frozen=True)
class Workload:
    """One workload and the node (and port) it talks to: ``chat`` talks to ``chat:5000`` by default."""

    name: str
    node: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Workload:
        """``NAME``, ``NAME=NODE`` or ``NAME=NODE:PORT``; ``ValueError`` saying what to write."""
        name, _, where = text.strip().partition("=")
        if name not in SERVICES:
            raise ValueError(f"unknown workload {name!r}: write one of {', '.join(NAMES)} (or NAME=NODE[:PORT])")
        node, _, port = where.partition(":")
        spec = registry.SERVICES[SERVICES[name]]
        number = spec.ports[0].number
        if port:
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"workload {text!r}: {port!r} is not a port; write {name}={node or name}:{number}")
            number = int(port)
        return cls(name, node or name, number)

    def argv(self, tag: str) -> list[str]:
        return ["python3", "-m", f"clients.workloads.{self.name}", "--host", self.node, "--port", str(self.port),
                "--tag", tag, "--max-seconds", f"{LINGER:g}"]  # fmt: skip


def parse_list(text: str) -> list[Workload]:
    """``chat,creosote,echo,threaded`` (each may be ``NAME=NODE[:PORT]``); ``none`` is no workload."""
    if text.strip() in ("", "none"):
        return []
    found = [Workload.parse(part) for part in text.split(",")]
    names = [w.name for w in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"workload {twice[0]} named twice: give each once")
    return found


def defaults(lab: RunningLab) -> list[Workload]:
    """Every built-in workload whose server is a running node of the lab under its own name."""
    running = {str(c.labels.get(engine.SERVICE_LABEL, "")) for c in lab.backend.node_containers(lab.project)
               if c.status == "running"}  # fmt: skip
    return [Workload.parse(name) for name in NAMES if name in running]


# --------------------------------------------------------------------------- containers


def _labels(lab: RunningLab, tag: str) -> dict[str, str]:
    return {model.LAB_LABEL: lab.project, SIDECAR_LABEL: ROLE, CHAOS_LABEL: tag}


_HARDENED: dict[str, Any] = {
    "user": "node",
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
    "read_only": True,
    "tmpfs": {"/tmp": "size=16m"},
    "init": True,  # SIGTERM reaches the workload (a PID 1 without a handler would ignore it)
}


def node_networks(lab: RunningLab, node: str) -> list[str]:
    """The topology names of the networks a node is on now."""
    attached = lab.backend.find_container(lab.project, node).attrs["NetworkSettings"]["Networks"] or {}
    return sorted(name.removeprefix(f"{lab.project}_") for name in attached)


def start_host(lab: RunningLab, *, name: str, tag: str, networks: Sequence[str]) -> Container:
    """The clients' host: hostname ``name``, on ``networks`` (topology names), sleeping until removed."""
    if not networks:
        raise LabError("the clients' host has no network to join", "does the lab have a network? lab ps")
    docker_names = [lab.backend.network_ref(lab.project, n).docker_name for n in networks]
    host = engine.client().containers.run(
        engine.node_image(), ["sleep", f"{LINGER:g}"], detach=True, name=f"{lab.project}-chaos-{tag}",
        hostname=name, network=docker_names[0], labels=_labels(lab, tag), mem_limit="32m", pids_limit=16,
        **_HARDENED,
    )  # fmt: skip
    try:
        for docker_name in docker_names[1:]:
            engine.client().networks.get(docker_name).connect(host)
    except BaseException:
        host.remove(force=True)
        raise
    return host


def start_workload(lab: RunningLab, workload: Workload, *, host: Container, tag: str) -> Container:
    container: Container = engine.client().containers.run(
        engine.node_image(), workload.argv(tag), detach=True, name=f"{host.name}-{workload.name}",
        network_mode=f"container:{host.id}", labels={**_labels(lab, tag), "testbed.chaos.workload": workload.name},
        mem_limit="128m", pids_limit=64, **_HARDENED,
    )  # fmt: skip
    return container


@dataclass(frozen=True)
class Finished:
    """How a workload container ended: its exit code, its events, the tail of what it wrote to stderr."""

    code: int
    events: list[dict[str, Any]]
    stderr: str
    unreadable: int  # stdout lines that were not events


def finish(container: Container, *, timeout: float) -> Finished:
    """Stop a workload (SIGTERM: it drains, then exits), wait for it, read its events; it is removed after."""
    try:
        with contextlib.suppress(docker.errors.APIError):
            container.kill(signal="SIGTERM")
        try:
            code = int(container.wait(timeout=timeout).get("StatusCode", -1))
        except Exception:  # the SDK lets a read timeout through as requests' own type
            container.kill()
            code = int(container.wait(timeout=10).get("StatusCode", -1))
        out = engine.text(container.logs(stdout=True, stderr=False))
        err = engine.text(container.logs(stdout=False, stderr=True))
    finally:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
    events, unreadable = [], 0
    for line in out.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            unreadable += 1
            continue
        if isinstance(event, dict) and isinstance(event.get("event"), str):
            events.append(event)
        else:
            unreadable += 1
    return Finished(code, events, err[-2000:], unreadable)


def ready(container: Container) -> bool | None:
    """True once the workload has said ``ready``; raises if it stopped first."""
    if '"event": "ready"' in engine.logs(container):
        return True
    container.reload()
    if container.status != "running":
        raise LabError(f"workload {container.name} stopped before it was ready: {engine.logs(container)[-800:]}",
                       "is its server up? lab ps")  # fmt: skip
    return None


def remove(tag: str) -> list[str]:
    """Remove every container of run ``tag`` (workloads before their host); their names."""
    found = engine.labelled({CHAOS_LABEL: tag})
    found.sort(key=lambda c: str(c.attrs["HostConfig"].get("NetworkMode", "")).startswith("container:"), reverse=True)
    gone = []
    for container in found:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
            gone.append(str(container.name))
    return gone


# --------------------------------------------------------------------------- creosote's file


def stored(lab: RunningLab, node: str, tag: str) -> list[int]:
    """The sequence numbers of run ``tag`` in the sink's records files, once per record (a duplicate twice).

    Every kept file is read: the sink rotates ``records.jsonl`` to ``records.jsonl.1`` and on by size,
    and a record is in exactly one of them.
    """
    ran = lab.exec(node, "grep", "-r", "-h", "-F", "--include", f"{RECORDS_NAME}*", "--", f"chaos {tag} ",
                   CREOSOTE_LOG_DIR)  # fmt: skip
    if ran.code not in (0, 1):  # grep: 1 is "no line matched"
        raise LabError(f"cannot read {node}'s {RECORDS_FILE}: {ran.output.strip()[-300:]}", "is it a creosote sink?")
    return sequence_numbers(ran.out, tag)


def sequence_numbers(records: str, tag: str) -> list[int]:
    """The numbers of run ``tag``'s datagrams among a records file's JSON lines, in file order."""
    seqs = []
    for line in records.splitlines():
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError, IndexError):
            words = json.loads(line)["text"].split()
            if words[:2] == ["chaos", tag] and len(words) == 3:
                seqs.append(int(words[2]))
    return seqs
