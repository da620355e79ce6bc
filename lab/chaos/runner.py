"""Run a fault schedule on a running lab: each step applied at its time and undone at its end, clients watching.

``Runner.start`` checks every name against the lab, starts the clients' host and the
workloads (``lab.chaos.workloads``) and waits until each has said ``ready``; then the
clock starts. Each step runs in a thread of its own: applying an impairment starts a
sidecar and takes 2-4 s on a kernel without netem (measured), and one slow step
must not delay the next. Steps on a common node take that node's lock, so an undo
and the next apply on it never run at once (``Step.conflicts`` already keeps their
windows apart). ``Runner.wait`` lets the schedule end and the workloads settle;
``Runner.finish`` undoes whatever is still in force (after an error or Ctrl-C too,
with Ctrl-C ignored while it does), stops the workloads and collects what they saw,
waits until every node that ran before is healthy, and checks that no sidecar of
the run is left. Everything goes into the history as it happens.

Times are ``time.monotonic()``: the host's clock and the containers' are one.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker.errors
from docker.models.containers import Container

from common.waiting import wait_until, within
from lab import engine, impair, model, readiness
from lab.backends.base import Say, node_name, quiet
from lab.chaos import plan, workloads
from lab.chaos.history import History
from lab.chaos.schedule import IMPAIRMENTS, Schedule, ScheduleError, Step
from lab.chaos.workloads import Workload
from lab.engine import PROJECT_LABEL, STACK_LABEL, LabError
from lab.yamlread import Problem

if TYPE_CHECKING:
    from lab.api import RunningLab

SETTLE = 5.0  # seconds the workloads go on after the last undo: TCP's retransmissions after a partition land
READY_TIMEOUT = 60.0  # seconds for every workload to say ready
DRAIN_TIMEOUT = 40.0  # seconds a workload may take to drain and exit after SIGTERM (chat drains up to 10)
HEALTHY_TIMEOUT = 120.0  # seconds for every node to be healthy again (a start period, and a failing check's retries)


class ChaosError(LabError):
    """A step failed, or the run could not put the lab back (a node unhealthy, a sidecar left)."""


@dataclass
class _Step:
    """A step under way: its history entry, and what undoing it needs."""

    step: Step
    entry: dict[str, Any]
    begun: bool = False
    undone: bool = False
    networks: list[str] = field(default_factory=list)  # what a disconnect detached


class Runner:
    """One run of ``schedule`` with ``seed`` on ``lab``; ``history`` fills as it goes."""

    def __init__(self, lab: RunningLab, schedule: Schedule, *, seed: int, workloads: Sequence[Workload] = (),
                 history: Path | None = None, say: Say = quiet) -> None:  # fmt: skip
        self.lab, self.schedule, self.seed, self.say = lab, schedule, seed, say
        self.workloads = list(workloads)
        self.steps = [_Step(s, plan.step_fields(s, i)) for i, s in enumerate(plan.expand(schedule, seed))]
        self.history = History(path=history)
        self.tag = secrets.token_hex(4)
        self.abort = threading.Event()
        self.locks = {name: threading.Lock() for s in self.steps for name in s.step.nodes}
        self.host: Container | None = None
        self.containers: dict[str, Container] = {}
        self.threads: list[threading.Thread] = []
        self.problems: list[str] = []
        self.running: list[str] = []  # the nodes that ran when it started: each must be healthy at the end
        self.probed: set[str] = set()  # nodes healthy by their own check run at the end (the engine's mark was stale)
        self.before: set[str] = set()  # sidecars there before the run (the topology's own impairments)
        self.t0 = 0.0

    # ----------------------------------------------------------------- names

    def _check_names(self) -> list[str]:
        """Every node and network the schedule and the workloads name, against the lab; its running nodes."""
        containers = self.lab.backend.node_containers(self.lab.project)
        nodes = {node_name(c): c for c in containers}
        networks = self.lab.backend.networks(self.lab.project)
        source = self.schedule.source or "schedule"
        problems = []
        client = self.schedule.client
        for each in self.steps:
            step = each.step
            for name in step.nodes:
                if name != client and (name not in nodes or nodes[name].status != "running"):
                    what = f"no node {name!r} runs in lab {self.lab.name}" if name not in nodes else \
                        f"{name} is {nodes[name].status}, not running"  # fmt: skip
                    choices = ", ".join(sorted(nodes)) or "(none: is the lab up?)"
                    problems.append(Problem(source, step.line, f"{step.origin}.node", what, f"write one of: {choices}"))
            if step.network is not None and step.network not in networks:
                problems.append(Problem(source, step.line, f"{step.origin}.network", f"no network {step.network!r}",
                                        f"write one of: {', '.join(networks)}"))  # fmt: skip
        for workload in self.workloads:
            if workload.node not in nodes:
                raise LabError(f"workload {workload.name}: no node {workload.node!r} in lab {self.lab.name}",
                               f"name one with {workload.name}=NODE (nodes: {', '.join(sorted(nodes))})")  # fmt: skip
        if problems:
            raise ScheduleError(problems)
        return sorted(name for name, c in nodes.items() if c.status == "running")

    def _sidecars(self) -> set[str]:
        """Containers labelled with the lab that neither Compose nor Swarm runs: sidecars, markers, ours."""
        found = set()
        for value in {self.lab.project, self.lab.name}:
            for container in engine.labelled({model.LAB_LABEL: value}):
                if PROJECT_LABEL not in container.labels and STACK_LABEL not in container.labels:
                    found.add(str(container.name))
        return found

    # ----------------------------------------------------------------- start

    def start(self) -> None:
        """Check the names, start the clients' host and the workloads, wait until they are ready, start the clock."""
        self.running = self._check_names()
        self.before = self._sidecars()
        try:
            wants_host = self.workloads or any(self.schedule.client in s.step.nodes for s in self.steps)
            if wants_host:
                networks = sorted({n for w in self.workloads for n in workloads.node_networks(self.lab, w.node)})
                networks = networks or self.lab.backend.networks(self.lab.project)
                self.host = workloads.start_host(self.lab, name=self.schedule.client, tag=self.tag, networks=networks)
                self.say(f"the clients' host {self.schedule.client} ({self.host.name}) is on {', '.join(networks)}")
            for workload in self.workloads:
                assert self.host is not None
                self.containers[workload.name] = workloads.start_workload(self.lab, workload, host=self.host,
                                                                          tag=self.tag)  # fmt: skip
            for name, container in self.containers.items():
                try:
                    wait_until(functools.partial(workloads.ready, container), timeout=READY_TIMEOUT,
                               what=f"workload {name}")  # fmt: skip
                except TimeoutError as exc:
                    tail = engine.logs(container).splitlines()[-3:]
                    raise LabError(
                        f"{exc}; its last lines: {' / '.join(tail) or '(none)'}",
                        f"can the clients' host reach {name}'s server? lab ps",
                    ) from None
        except BaseException:
            workloads.remove(self.tag)
            raise
        self.t0 = time.monotonic()
        self.history.add("run", lab=self.lab.name, project=self.lab.project, schedule=self.schedule.source,
                         seed=self.seed, tag=self.tag, client=self.schedule.client,
                         client_container=None if self.host is None else self.host.name,
                         workloads={w.name: w.node for w in self.workloads}, duration_ms=self.schedule.duration_ms,
                         mono=self.t0, wall=time.time(), plan=[dict(s.entry) for s in self.steps])  # fmt: skip
        for each in self.steps:
            thread = threading.Thread(target=self._run, args=(each,), name=f"step-{each.entry['index']}", daemon=True)
            thread.start()
            self.threads.append(thread)

    # ----------------------------------------------------------------- steps

    @contextlib.contextmanager
    def _holding(self, nodes: Sequence[str]) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for name in sorted(set(nodes)):  # always in one order: two partitions never wait on each other
                stack.enter_context(self.locks[name])
            yield

    def _run(self, each: _Step) -> None:
        step = each.step
        if self.abort.wait(max(0.0, self.t0 + step.at_ms / 1000 - time.monotonic())):
            return
        with self._holding(step.nodes):
            if self.abort.is_set():
                return
            each.entry.update(start=time.monotonic(), start_wall=time.time())
            each.begun = True
            try:
                self._apply(each)
                each.entry.update(applied=time.monotonic(), result="ok")
                self.say(f"{self._clock()}  + {_describe(each)}")
            except Exception as exc:  # recorded and undone; the run goes on, and fails at its end
                each.entry["result"] = f"failed: {exc}"
                self.problems.append(f"step {each.entry['index']} ({_describe(each)}) failed: {exc}")
                self.say(f"{self._clock()}  ! {_describe(each)}: {exc}")
        if each.entry["result"] == "ok":
            self.abort.wait(max(0.0, self.t0 + step.end_ms / 1000 - time.monotonic()))
        self._undo_step(each)

    def _clock(self) -> str:
        return f"{time.monotonic() - self.t0:6.1f}s"

    def _ref(self, name: str, network: str | None = None) -> model.NodeRef:
        if name == self.schedule.client and self.host is not None:
            return model.NodeRef(self.lab.project, name, str(self.host.name), interface=network)
        return self.lab.ref(name, network=network)

    def _apply(self, each: _Step) -> None:
        step, lab = each.step, self.lab
        node = step.nodes[0]
        if step.do in IMPAIRMENTS:
            assert step.impairment is not None
            impair.apply(self._ref(node, step.network), step.impairment)
        elif step.do == "partition":
            impair.partition(self._ref(step.nodes[0]), self._ref(step.nodes[1]))
        elif step.do in ("kill", "restart"):
            self._snapshot(node)
            if step.do == "kill":
                lab.node(node).kill()
            else:
                lab.node(node).stop()
        elif step.do == "pause":
            lab.node(node).pause()
        elif step.do == "disconnect":
            host = self.host if node == self.schedule.client else None
            attached = (
                [step.network]
                if step.network
                else (_networks_of(host, self.lab.project) if host is not None else workloads.node_networks(lab, node))
            )
            for network in attached:
                impair.disconnect(self._ref(node), lab.backend.network_ref(lab.project, network))
                each.networks.append(network)

    def _undo(self, each: _Step) -> None:
        step, lab = each.step, self.lab
        node = step.nodes[0]
        if step.do in IMPAIRMENTS:
            impair.clear(self._ref(node, step.network))
        elif step.do == "partition":
            impair.unpartition(self._ref(step.nodes[0]), self._ref(step.nodes[1]))
        elif step.do in ("kill", "restart"):
            lab.node(node).start()
        elif step.do == "pause":
            container = lab.node(node).container
            if container.status == "paused":
                container.unpause()
        elif step.do == "disconnect":
            for network in each.networks or ([step.network] if step.network else []):
                impair.reconnect(self._ref(node), lab.backend.network_ref(lab.project, network))

    def _undo_step(self, each: _Step) -> None:
        with self._holding(each.step.nodes):
            if each.undone or not each.begun:
                return
            each.undone = True
            each.entry["undo"] = time.monotonic()
            try:
                self._undo(each)
                self.say(f"{self._clock()}  - {_describe(each)}")
            except Exception as exc:
                each.entry["undo_result"] = f"failed: {exc}"
                self.problems.append(f"step {each.entry['index']} ({_describe(each)}) could not be undone: {exc}")
            each.entry.update(end=time.monotonic(), end_wall=time.time())
            self.history.add("step", **each.entry)

    def _snapshot(self, node: str) -> None:
        """Before a sink goes down: what it has flushed to its file now must still be there afterwards."""
        for workload in self.workloads:
            if workload.name == "creosote" and workload.node == node:
                try:
                    seqs = workloads.stored(self.lab, node, self.tag)
                    self.history.add("event", workload="creosote", event="flushed", node=node, seqs=seqs,
                                     mono=time.monotonic(), wall=time.time())  # fmt: skip
                except LabError as exc:
                    self.problems.append(f"creosote: could not read what {node} had flushed: {exc}")

    # ----------------------------------------------------------------- end

    def wait(self) -> None:
        """Until the schedule's duration has passed and every step is undone, then ``SETTLE`` seconds (Ctrl-C works)."""
        for thread in self.threads:
            while thread.is_alive():
                thread.join(0.2)
        self.abort.wait(max(0.0, self.t0 + self.schedule.duration_ms / 1000 - time.monotonic()))  # its full length
        if self.workloads:
            self.say(f"{self._clock()}  schedule over; the workloads settle for {SETTLE:g} s, then drain")
            self.abort.wait(SETTLE)

    def finish(self, *, aborted: bool) -> None:
        """Undo what is in force, collect the workloads, check the lab is whole again; ``ChaosError`` if not."""
        with _interrupts_ignored():
            if aborted:
                self.abort.set()
                self.say("stopping: undoing every step still in force")
            for thread in self.threads:
                thread.join()
            for each in self.steps:
                self._undo_step(each)  # those a thread did not get to (an error stopped it)
            self._collect()
            gone = workloads.remove(self.tag)
            healthy = self._heal_nodes()
            left = sorted(self._sidecars() - self.before)
            if left:
                self.problems.append(f"left behind: {', '.join(left)}")
            self.history.add("end", mono=time.monotonic(), wall=time.time(), aborted=aborted, removed=gone,
                             healthy=healthy, probed=sorted(self.probed), nodes=self.running, sidecars_left=left,
                             problems=self.problems)  # fmt: skip
            self.history.close()
            probed = f" ({', '.join(sorted(self.probed))} by its own check run now: paused, the engine probes again " \
                "only after an interval)" if self.probed else ""  # fmt: skip
            self.say(f"healed: {sum(s.undone for s in self.steps)} steps undone; {len(healthy)} of "
                     f"{len(self.running)} nodes healthy{probed}; {len(left)} sidecars left")  # fmt: skip
        if self.problems:
            raise ChaosError("; ".join(self.problems), "see the history and lab ps; lab heal and lab impair --clear "
                             "undo by hand what is left")  # fmt: skip

    def _collect(self) -> None:
        for workload in self.workloads:
            container = self.containers.get(workload.name)
            if container is None:
                continue
            try:
                done = workloads.finish(container, timeout=DRAIN_TIMEOUT)
            except Exception as exc:  # its events are lost, which its checker reports
                self.history.add("workload", name=workload.name, node=workload.node, exit=None, stderr=str(exc))
                continue
            for event in done.events:
                fields = {k: v for k, v in event.items() if k not in ("kind", "workload")}
                self.history.add("event", workload=workload.name, **fields)
            self.history.add("workload", name=workload.name, node=workload.node, exit=done.code, stderr=done.stderr,
                             unreadable=done.unreadable)  # fmt: skip
            if workload.name == "creosote":
                try:
                    seqs = workloads.stored(self.lab, workload.node, self.tag)
                    self.history.add("event", workload="creosote", event="stored", node=workload.node, seqs=seqs,
                                     mono=time.monotonic(), wall=time.time())  # fmt: skip
                except LabError as exc:
                    self.problems.append(f"creosote: could not read {workload.node}'s records: {exc}")

    def _heal_nodes(self) -> list[str]:
        """Start any node that ran before and does not now; wait until each is running and healthy."""
        for name in self.running:
            with contextlib.suppress(Exception):
                container = self.lab.node(name).container
                if container.status == "paused":
                    container.unpause()
                elif container.status in ("exited", "created"):
                    container.start()

        def healthy() -> list[str]:
            return [name for name in self.running if self._serves(name)]

        try:
            wait_until(lambda: len(healthy()) == len(self.running), timeout=HEALTHY_TIMEOUT, interval=0.5,
                       what="every node healthy")  # fmt: skip
        except TimeoutError:
            sick = sorted(set(self.running) - set(healthy()))
            self.problems.append(f"not healthy {HEALTHY_TIMEOUT:g} s after the run: {', '.join(sick)}")
        return healthy()

    def _serves(self, name: str) -> bool:
        """Running and healthy; or marked unhealthy only by a pause, and its own health check passes, run now.

        After a pause the engine runs the next probe a whole interval later (30 s with start
        intervals) and says unhealthy until then (``readiness.unprobed_since_paused``): the run
        does not wait for it, it runs the same check itself.
        """
        if name in self.probed:
            return True
        try:
            attrs = self.lab.node(name).container.attrs
            if readiness.Seen.from_inspect(attrs).ready:  # the rule lab up waits by
                return True
            config = attrs.get("Config") or {}
            argv = readiness.probe_argv(config)
            if argv is None or not readiness.unprobed_since_paused(attrs.get("State") or {}):
                return False
        except LabError:
            return False
        if not self._passes(name, argv, timeout=readiness.probe_timeout(config)):
            return False
        self.probed.add(name)
        return True

    def _passes(self, name: str, argv: list[str], *, timeout: float) -> bool:
        """Whether ``argv`` exits 0 in ``name`` within ``timeout`` (the check's own): one that hangs fails, as
        the engine's own would."""
        try:
            ran = within(lambda: self.lab.exec(name, *argv), timeout=timeout)
        except (LabError, docker.errors.APIError):
            return False
        return ran is not None and ran.code == 0


def _networks_of(container: Container, project: str) -> list[str]:
    container.reload()
    return sorted(n.removeprefix(f"{project}_") for n in container.attrs["NetworkSettings"]["Networks"] or {})


def _describe(each: _Step) -> str:
    step = each.step
    what = " ".join(f"{k} {v}" for k, v in plan.impairment_fields(step.impairment).items())
    where = f" on {step.network}" if step.network else ""
    target = " | ".join(step.nodes) if step.do == "partition" else step.nodes[0]
    return f"{step.do} {target}{where}" + (f" ({what})" if what else "") + f" [step {each.entry['index']}]"


@contextlib.contextmanager
def _interrupts_ignored() -> Iterator[None]:
    """Ctrl-C (or SIGTERM) while the lab is being put back would leave it half broken: they wait until it is done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
