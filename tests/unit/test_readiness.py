"""lab.readiness's decisions, from inspect attributes and engine events as the engine writes them, without Docker."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lab.readiness import Seen, after_event, verdict

SERVICE = "com.docker.compose.service"


def inspected(
    node: str, *, status: str = "running", health: str | None = "starting", output: str = "", exit_code: int = 0
) -> dict[str, Any]:
    """``docker inspect``'s attributes of a container, with only the fields the decisions read."""
    check = {"Test": ["CMD", "probe"]} if health is not None else None
    state: dict[str, Any] = {"Status": status, "ExitCode": exit_code}
    if health is not None:
        state["Health"] = {"Status": health, "Log": [{"Output": "first\n"}, {"Output": output}] if output else []}
    return {"Name": f"/lab-{node}-1", "Config": {"Labels": {SERVICE: node}, "Healthcheck": check}, "State": state}


def event(ident: str, action: str) -> dict[str, Any]:
    return {"Type": "container", "Action": action, "status": action, "id": ident, "Actor": {"ID": ident}}


def test_a_healthy_container_and_a_running_one_without_a_check_are_ready() -> None:
    seen = {
        "a": Seen.from_inspect(inspected("daytime", health="healthy")),
        "b": Seen.from_inspect(inspected("client", health=None)),
    }
    assert seen["b"].health is None
    assert verdict(seen).ready and verdict(seen).failed is None


def test_a_starting_check_keeps_the_wait_going_and_names_the_node() -> None:
    seen = {"a": Seen.from_inspect(inspected("daytime", health="healthy")), "b": Seen.from_inspect(inspected("echo"))}
    state = verdict(seen)
    assert not state.ready and state.failed is None and state.waiting == ("echo",)


def test_a_check_switched_off_counts_as_none() -> None:
    attrs = inspected("plain", health=None)
    attrs["Config"]["Healthcheck"] = {"Test": ["NONE"]}
    assert Seen.from_inspect(attrs).ready


def test_an_unhealthy_node_fails_with_its_probes_last_line() -> None:
    output = "probe: connecting to 127.0.0.1:13/tcp\nerror: connection refused\n"
    seen = {"a": Seen.from_inspect(inspected("daytime", health="unhealthy", output=output))}
    state = verdict(seen)
    assert not state.ready and state.failed is not None
    assert state.failed.problem == "daytime is unhealthy: error: connection refused"


def test_an_exited_node_fails_with_its_exit_code() -> None:
    seen = {
        "a": Seen.from_inspect(inspected("echo", health="healthy")),
        "b": Seen.from_inspect(inspected("broken", status="exited", health="starting", exit_code=3)),
    }
    failed = verdict(seen).failed
    assert failed is not None and failed.problem == "broken is exited (exit code 3)"
    said = replace(seen["b"], said="OSError: [Errno 98] Address in use")
    assert said.problem == "broken is exited (exit code 3): OSError: [Errno 98] Address in use"


def test_a_node_the_engine_restarts_fails_too() -> None:
    seen = {"a": Seen.from_inspect(inspected("echo", status="restarting", health=None, exit_code=1))}
    failed = verdict(seen).failed
    assert failed is not None and failed.problem == "echo is restarting (exit code 1)"


def test_a_healthy_event_makes_its_container_ready_without_looking_again() -> None:
    seen = {"a": Seen.from_inspect(inspected("daytime")), "b": Seen.from_inspect(inspected("echo", health="healthy"))}
    assert not verdict(seen).ready
    after, again = after_event(seen, event("a", "health_status: healthy"))
    assert again is None and verdict(after).ready
    assert not verdict(seen).ready  # the input is not changed


def test_unhealthy_and_die_are_looked_at_again_before_they_fail() -> None:
    seen = {"a": Seen.from_inspect(inspected("daytime"))}
    for action in ("health_status: unhealthy", "die"):
        after, again = after_event(seen, event("a", action))
        assert again == "a" and after == seen and verdict(after).failed is None


def test_events_of_containers_not_waited_for_change_nothing() -> None:
    seen = {"a": Seen.from_inspect(inspected("daytime"))}
    for action in ("health_status: healthy", "die", "health_status: unhealthy"):
        after, again = after_event(seen, event("helper", action))
        assert after == seen and again is None


def test_a_starting_node_describes_itself_with_its_probe() -> None:
    seen = Seen.from_inspect(inspected("echo", output="error: timed out\n"))
    assert seen.describe() == "echo (starting: error: timed out)"
    assert Seen.from_inspect(inspected("client", status="created", health=None)).describe() == "client (created)"
