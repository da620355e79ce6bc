"""Waiting until a lab's containers serve: healthy, or said ready in their log, woken by the engine's own events.

``docker compose up --wait`` looks at every container on a 500 ms ticker and only
after the first tick, so it always costs at least half a second more than ``up -d``,
in half-second steps (docker/compose ``pkg/compose/convergence.go``,
``waitDependencies``). Here the engine says when a health check changes its verdict
(``health_status``) or a container stops (``die``), and the wait ends as soon as the
last container is ready.

A built-in server says ``ready`` in its log once every socket of it listens, and its
node carries the label ``testbed.ready-line``: that line counts as ready too. Docker's
first health check comes a start interval (250 ms) after the start and costs an exec,
where the line comes as soon as the server listens. A health check that fails still
fails the wait, and ``lab ps`` shows the check's own verdict.

The decision is pure (``Seen``, ``after_event``, ``verdict``), so it is unit-tested
without Docker; ``watching`` is the edge that talks to the engine. The rules are
Compose's: a container with a health check is ready once healthy, one without once
running; unhealthy or stopped fails the wait, and so does one the engine is restarting
(Compose would wait for it until its timeout; a node that dies while the lab starts
will not get healthy by waiting).
"""

from __future__ import annotations

import contextlib
import datetime
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import docker.errors

from common.eventlog import says_ready
from lab import engine
from lab.engine import SERVICE_LABEL, LabError
from lab.model import READY_LINE_LABEL

EVENTS = ("health_status", "die")  # the engine matches "health_status" against "health_status: healthy" etc.
RECHECK_S = 5.0  # look again at what is not ready, in case an event never came (the stream broke)
RECHECK_WITHOUT_EVENTS_S = 0.5  # once the stream has ended: Compose's own pace
STOPPED = ("exited", "dead", "removing", "restarting")  # "restarting": it died and the engine starts it again
SAID_READY = "said ready"  # the action of the event made up when a server's ready line is found in its log
UNPROBED_SINCE_PAUSED = "unhealthy: paused, not probed since"  # how lab ps shows unprobed_since_paused
# How lab ps shows a node whose server said ready while Docker's first health check is still to come:
# lab up counts it ready, and "starting" alone would read as if it were not.
SAID_READY_CHECK_PENDING = "ready, check pending"
ENGINE_PROBE_TIMEOUT_S = 30.0  # the engine's default health-check timeout
LOG_PACE_S = 0.05  # how often the logs of servers not yet ready are read (a server listens 0.1-0.2 s after start)


@dataclass(frozen=True)
class Seen:
    """What is known of one container: its node, state, health (``None``: no health check) and last words."""

    node: str
    status: str
    health: str | None = None
    exit_code: int = 0
    probe: str = ""  # the last line of the last health-check output
    said: str = ""  # the last line the container wrote (looked up only once it stopped)
    announces: str | None = None  # the server whose ready line in the log counts as ready (READY_LINE_LABEL)
    announced: bool = False  # that line came, in this run of the container
    started: str = ""  # when this run of the container started (State.StartedAt)

    @classmethod
    def from_inspect(cls, attrs: Mapping[str, Any], *, node_label: str = SERVICE_LABEL) -> Seen:
        """From ``docker inspect``'s attributes of a container; its node is named by ``node_label``."""
        state = attrs.get("State") or {}
        health = state.get("Health") or None
        test = ((attrs.get("Config") or {}).get("Healthcheck") or {}).get("Test") or ["NONE"]
        checked = test != ["NONE"] or health is not None  # ["NONE"]: the image's check switched off
        log = (health or {}).get("Log") or [{}]
        lines = str(log[-1].get("Output") or "").strip().splitlines()
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        node = str(labels.get(node_label) or str(attrs.get("Name", "?")).lstrip("/"))
        status_of_check = str((health or {}).get("Status") or "starting")
        if unprobed_since_paused(state):
            status_of_check = "starting"  # the mark a pause leaves is no verdict: a later probe, or its ready line
        return cls(
            node=node,
            status=str(state.get("Status", "")),
            health=status_of_check if checked else None,
            exit_code=int(state.get("ExitCode") or 0),
            probe=lines[-1].strip() if lines else "",
            announces=str(labels[READY_LINE_LABEL]) if labels.get(READY_LINE_LABEL) else None,
            started=str(state.get("StartedAt") or ""),
        )

    @property
    def ready(self) -> bool:
        """Healthy, or said ready, or running with no health check (Compose's ``service_started`` fallback)."""
        return self.status == "running" and (self.health in ("healthy", None) or self.announced)

    def looked_again(self, fresh: Seen) -> Seen:
        """``fresh`` (a new inspect of this container), keeping the ready line it said if it is the same run."""
        return replace(fresh, announced=self.announced and fresh.started == self.started)

    @property
    def problem(self) -> str | None:
        """Why waiting longer will not make it ready (``"daytime is unhealthy: <probe>"``), or ``None``."""
        if self.status in STOPPED:
            return f"{self.node} is {self.status} (exit code {self.exit_code})" + (
                f": {self.said}" if self.said else ""
            )
        if self.health == "unhealthy":
            return f"{self.node} is unhealthy" + (f": {self.probe}" if self.probe else "")
        return None

    def describe(self) -> str:
        """Its state in a few words, for a wait that ran out of time: ``daytime (starting: <probe>)``."""
        state = self.health or self.status
        return f"{self.node} ({state}" + (f": {self.probe}" if self.probe else "") + ")"


@dataclass(frozen=True)
class Verdict:
    """Where a wait stands: every container ready, or one ``failed``, or some nodes still ``waiting``."""

    ready: bool
    failed: Seen | None
    waiting: tuple[str, ...]


def verdict(seen: Mapping[str, Seen]) -> Verdict:
    """The wait's state given what is known of every container it waits for (by container id)."""
    for one in sorted(seen.values(), key=lambda s: s.node):
        if one.problem is not None:
            return Verdict(ready=False, failed=one, waiting=())
    waiting = tuple(sorted(s.node for s in seen.values() if not s.ready))
    return Verdict(ready=not waiting, failed=None, waiting=waiting)


def after_event(seen: Mapping[str, Seen], event: Mapping[str, Any]) -> tuple[dict[str, Seen], str | None]:
    """What is known after one engine event, and the id of a container to inspect again, if any.

    "healthy" is taken as it comes. "unhealthy" and "die" are confirmed by a fresh inspect
    before they fail the wait (it also brings the probe's output): the event may be older
    than the inspect that came before it, and a container may already be running again.
    Events of containers not waited for (a profile not started, a route helper, the
    container that an ``up`` replaced) change nothing.
    """
    ident = str(event.get("id") or (event.get("Actor") or {}).get("ID") or "")
    action = str(event.get("Action") or event.get("status") or "")
    known = dict(seen)
    if ident not in known:
        return known, None
    if action == "health_status: healthy":
        known[ident] = replace(known[ident], health="healthy")
        return known, None
    if action == SAID_READY:
        if known[ident].announces and event.get("started") == known[ident].started:  # not an earlier run's line
            known[ident] = replace(known[ident], announced=True)
        return known, None
    if action == "die" or action == "health_status: unhealthy":
        return known, ident
    return known, None


class Watch:
    """The engine's events for some labels, read by a thread into a queue from the moment it exists."""

    def __init__(self, labels: Sequence[str], *, node_label: str = SERVICE_LABEL) -> None:
        self.labels = list(labels)
        self.node_label = node_label
        filters = {"type": ["container"], "label": self.labels, "event": list(EVENTS)}
        self._stream = engine.client().events(filters=filters, decode=True)
        self._events: queue.Queue[Mapping[str, Any] | None] = queue.Queue()  # None: the stream ended
        self._ended = False
        self._reader = threading.Thread(target=self._read, name="lab-events", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                self._events.put(event)
        except Exception:  # the stream closed under it (close()), or the engine went away: both end the reading
            pass
        finally:
            self._events.put(None)

    def close(self) -> None:
        """Close the stream, which ends the reader (an SSH engine's stream cannot be cancelled: it is left)."""
        with contextlib.suppress(Exception):  # the SDK raises its own and socket errors alike
            self._stream.close()
        self._reader.join(timeout=1.0)

    def _said_ready(self, ident: str, seen: Seen) -> Mapping[str, Any] | None:
        """The made-up event for a server whose ready line is in its log since this run began, or ``None``.

        Read, not followed: a followed log is a stream per node held open on the engine's
        connection pool, and most servers have said it before the wait even begins.
        """
        if said_ready_at(ident, seen.started, str(seen.announces)) is not None:
            return {"id": ident, "Action": SAID_READY, "started": seen.started}
        return None

    def wait(self, nodes: Collection[str], *, timeout: float, hint: Callable[[str], str]) -> float:
        """Wait until every container of ``nodes`` (named by ``node_label``) is ready; seconds it took.

        Looks once at every container first (what happened before this call shows there,
        not in the events still queued), then only at what the events name. Raises
        ``LabError(<the first problem>, hint(node))`` or, after ``timeout`` seconds, one naming
        what is still not ready (the hint then names the first of them).
        """
        began = time.monotonic()
        deadline = began + timeout
        listed = engine.client().api.containers(all=True, filters={"label": self.labels})
        ours = [str(c["Id"]) for c in listed if (c.get("Labels") or {}).get(self.node_label) in nodes]
        seen = {ident: self._inspect(ident, Seen(node="?", status="created")) for ident in ours}
        missing = sorted(set(nodes) - {one.node for one in seen.values()})
        if missing:
            raise LabError(f"no container for {', '.join(missing)}", hint(missing[0]))
        next_look = began + RECHECK_S
        while True:
            state = verdict(seen)
            if state.failed is not None:
                raise LabError(str(state.failed.problem), hint(state.failed.node))
            if state.ready:
                return time.monotonic() - began
            left = deadline - time.monotonic()
            if left <= 0:
                return self._last_look(seen, timeout=timeout, hint=hint) + timeout
            announcing = [ident for ident, one in seen.items() if one.announces and one.started and not one.ready]
            said = [found for found in (self._said_ready(ident, seen[ident]) for ident in announcing) if found]
            for line_event in said:
                seen, _ = after_event(seen, line_event)
            if said:
                continue
            pace = RECHECK_WITHOUT_EVENTS_S if self._ended else RECHECK_S
            try:
                event = self._events.get(timeout=min(left, LOG_PACE_S if announcing else pace))
            except queue.Empty:
                if not announcing or time.monotonic() >= next_look:  # a pace without events: look again
                    next_look = time.monotonic() + pace
                    seen = {ident: one if one.ready else self._inspect(ident, one) for ident, one in seen.items()}
                continue
            if event is None:
                self._ended = True
                continue
            seen, again = after_event(seen, event)
            if again is not None:
                seen[again] = self._inspect(again, seen[again])

    def _last_look(self, seen: Mapping[str, Seen], *, timeout: float, hint: Callable[[str], str]) -> float:
        """At the deadline: 0.0 if all is ready after all; else raise with the first problem or the latecomers."""
        seen = {ident: self._inspect(ident, one) for ident, one in seen.items()}
        state = verdict(seen)
        if state.ready:
            return 0.0
        if state.failed is not None:
            raise LabError(str(state.failed.problem), hint(state.failed.node))
        late = [one for one in sorted(seen.values(), key=lambda s: s.node) if not one.ready]
        raise LabError(
            f"not ready within {timeout:g} s: {', '.join(one.describe() for one in late)}", hint(late[0].node)
        )

    def _inspect(self, ident: str, before: Seen) -> Seen:
        api = engine.client().api
        try:
            seen = before.looked_again(Seen.from_inspect(api.inspect_container(ident), node_label=self.node_label))
            if seen.status not in STOPPED:
                return seen
            said = engine.text(api.logs(ident, tail=1)).strip().splitlines()[-1:]
            return replace(seen, said=said[0].strip() if said else "")
        except docker.errors.NotFound:
            return replace(before, status="removing", said="its container was removed")


def said_ready_at(ident: str, started: str, announces: str) -> float | None:
    """When the server ``announces`` said its ready line in a container's log since ``started`` (its
    ``State.StartedAt``): the line's own time, in seconds since the epoch; None if it has not said it.

    None too when the log cannot be read: the container went, or the engine, and its health check or its
    death then says more.
    """
    try:
        text = engine.text(engine.client().api.logs(ident, stdout=True, stderr=False, since=epoch_seconds(started)))
    except Exception:  # the SDK raises its own and socket errors alike
        return None
    for line in text.splitlines():
        if says_ready(line, announces):
            try:
                return epoch_seconds(line.split(" ", 1)[0])
            except ValueError:  # a line without its time: said at the start, at the latest
                return epoch_seconds(started)
    return None


def said_ready_check_pending(ident: str, state: Mapping[str, Any], announces: str) -> bool:
    """Whether ``lab ps`` shows SAID_READY_CHECK_PENDING: the server ``announces`` said it was ready since the
    container started, and Docker's checks have not caught up (``check_pending_since``).

    The log is read only while Docker says ``starting``: most of the time there is nothing to look up.
    """
    if not announces or not _starting(state):
        return False
    ready_at = said_ready_at(ident, str(state["StartedAt"]), announces)
    return ready_at is not None and check_pending_since(state, ready_at)


def check_pending_since(state: Mapping[str, Any], moment: float) -> bool:
    """Running, Docker still says ``starting``, and no health check begun at ``moment`` or later has failed.

    With ``moment`` the time a server said it was ready: the checks before it came too early and fail by
    design (Docker does not count failures in the start period); one after it that failed disagrees.
    """
    if not _starting(state):
        return False
    return not any(entry.get("ExitCode") != 0 and epoch_seconds(str(entry["Start"])) >= moment
                   for entry in (state.get("Health") or {}).get("Log") or [] if entry.get("Start"))  # fmt: skip


def _starting(state: Mapping[str, Any]) -> bool:
    """Running, with a health check that Docker has not yet called healthy or unhealthy."""
    return state.get("Status") == "running" and (state.get("Health") or {}).get("Status") == "starting"


def unprobed_since_paused(state: Mapping[str, Any]) -> bool:
    """Running, and unhealthy only because it was paused: no probe has failed since the last one passed.

    Pausing a container stops its health monitor, and the engine then marks it unhealthy "for
    compatibility" without running a probe (moby ``container/health.go``, ``CloseMonitorChannel``;
    moby/moby#46203). After the unpause the next probe comes one whole interval later (30 s on an
    engine with start intervals), so the mark outlives the pause. Probes make a container unhealthy
    only after ``retries`` failures in a row, so a failing streak of 0 rules them out; the last
    probe, if any ran, passed.
    """
    health = state.get("Health") or {}
    log = health.get("Log") or [{"ExitCode": 0}]  # no probe ran yet: none failed
    return (
        state.get("Status") == "running"
        and health.get("Status") == "unhealthy"
        and int(health.get("FailingStreak") or 0) == 0
        and log[-1].get("ExitCode") == 0
    )


def probe_argv(config: Mapping[str, Any]) -> list[str] | None:
    """The argv of a container's own health check, from ``Config.Healthcheck.Test``; None when it has none."""
    test = list((config.get("Healthcheck") or {}).get("Test") or [])
    if len(test) >= 2 and test[0] == "CMD":
        return [str(word) for word in test[1:]]
    if len(test) == 2 and test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", str(test[1])]  # the image's or the topology's own command, as the engine runs it
    return None


def probe_timeout(config: Mapping[str, Any]) -> float:
    """A health check's own timeout in seconds, from ``Config.Healthcheck.Timeout`` (nanoseconds; unset: 30 s)."""
    nanoseconds = int((config.get("Healthcheck") or {}).get("Timeout") or 0)
    return nanoseconds / 1e9 if nanoseconds > 0 else ENGINE_PROBE_TIMEOUT_S


def epoch_seconds(stamp: str) -> float:
    """Docker's RFC 3339 time (``2026-12-03T06:04:13.037091615Z``) as seconds since the epoch, to the microsecond."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    digits = (fraction + "000000")[:6]  # Python reads six digits; the engine writes nine
    moment = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC)
    return moment.timestamp() + int(digits) / 1_000_000


@contextlib.contextmanager
def watching(labels: Sequence[str], *, node_label: str = SERVICE_LABEL) -> Iterator[Watch]:
    """Listen to the engine's events for containers with ``labels`` for the block; start them inside it.

    The stream opens before the block runs, so no health verdict or exit between the
    start and the wait is missed; it closes however the block ends.
    """
    watch = Watch(labels, node_label=node_label)
    try:
        yield watch
    finally:
        watch.close()
