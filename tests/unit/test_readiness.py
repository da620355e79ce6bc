"""lab.readiness's decisions, from inspect attributes and engine events as the engine writes them, without Docker."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lab.readiness import (
    Seen,
    after_event,
    check_pending_since,
    epoch_seconds,
    probe_argv,
    probe_timeout,
    unprobed_since_paused,
    verdict,
)

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


STARTED = "2026-12-03T06:04:13.037091615Z"


def announcing(node: str, *, started: str = STARTED, **fields: Any) -> Seen:
    """A built-in server's container: labelled with the server whose ready line counts."""
    attrs = inspected(node, **fields)
    attrs["Config"]["Labels"]["testbed.ready-line"] = node
    attrs["State"]["StartedAt"] = started
    return Seen.from_inspect(attrs)


def said_ready(ident: str, started: str = STARTED) -> dict[str, Any]:
    return {"id": ident, "Action": "said ready", "started": started}


def test_a_ready_line_of_this_run_makes_a_starting_server_ready() -> None:
    seen = {"a": announcing("daytime")}
    assert seen["a"].announces == "daytime" and seen["a"].started == STARTED
    assert not verdict(seen).ready
    known, again = after_event(seen, said_ready("a"))
    assert again is None and verdict(known).ready


def test_a_ready_line_of_an_earlier_run_does_not_count() -> None:
    known, _ = after_event({"a": announcing("daytime")}, said_ready("a", started="2026-12-03T06:00:00.000000001Z"))
    assert not verdict(known).ready


def test_a_failing_check_fails_the_wait_even_after_the_ready_line() -> None:
    known, _ = after_event({"a": announcing("daytime", health="unhealthy", output="error: refused\n")}, said_ready("a"))
    state = verdict(known)
    assert not state.ready and state.failed is not None and "unhealthy" in str(state.failed.problem)


def test_a_fresh_look_keeps_the_ready_line_only_within_the_same_run() -> None:
    known, _ = after_event({"a": announcing("daytime")}, said_ready("a"))
    assert known["a"].looked_again(announcing("daytime")).ready
    restarted = announcing("daytime", started="2026-12-03T06:05:00.5Z")
    assert not known["a"].looked_again(restarted).ready


def test_a_container_without_the_label_waits_for_its_check() -> None:
    seen = {"a": Seen.from_inspect(inspected("mine"))}
    assert seen["a"].announces is None
    known, _ = after_event(seen, said_ready("a", started=""))
    assert not verdict(known).ready


def test_the_engines_start_time_reads_to_the_microsecond() -> None:
    assert abs(epoch_seconds(STARTED) - 1796277853.037091) < 1e-6
    assert epoch_seconds("2026-12-03T06:04:13Z") == 1796277853.0


def health_state(
    status: str, *, streak: int = 0, last_exit: int | None = 0, running: str = "running"
) -> dict[str, Any]:
    """A container's ``State`` with a health log as the engine keeps it (``last_exit`` None: no probe yet)."""
    log = [{"ExitCode": 0}] + ([{"ExitCode": last_exit}] if last_exit is not None else [])
    return {"Status": running, "Health": {"Status": status, "FailingStreak": streak, "Log": log}}


def test_unhealthy_with_no_failed_probe_is_the_mark_a_pause_leaves() -> None:
    # As Docker 26 showed it after `docker pause` and `docker unpause`: unhealthy, streak 0, last probe passed.
    assert unprobed_since_paused(health_state("unhealthy"))
    # Paused before its first probe: unhealthy with an empty log (no probe ran, so none failed).
    assert unprobed_since_paused(
        {"Status": "running", "Health": {"Status": "unhealthy", "FailingStreak": 0, "Log": []}}
    )


def test_a_probe_that_failed_is_not_taken_for_a_pause() -> None:
    assert not unprobed_since_paused(health_state("unhealthy", streak=3, last_exit=1))
    assert not unprobed_since_paused(health_state("unhealthy", last_exit=1))  # a failure whose streak restarted
    assert not unprobed_since_paused(health_state("unhealthy", streak=1))


def test_healthy_starting_stopped_and_unchecked_containers_are_not_paused_ones() -> None:
    assert not unprobed_since_paused(health_state("healthy"))
    assert not unprobed_since_paused(health_state("starting"))
    assert not unprobed_since_paused(health_state("unhealthy", running="paused"))  # still paused: nothing to probe
    assert not unprobed_since_paused({"Status": "running"})


def test_a_health_checks_argv_comes_from_its_cmd_or_cmd_shell_form() -> None:
    cmd = ["sh", "/opt/check.sh", "echo"]
    assert probe_argv({"Healthcheck": {"Test": ["CMD", *cmd]}}) == cmd
    assert probe_argv({"Healthcheck": {"Test": ["CMD-SHELL", "nc -z localhost 7"]}}) == [
        "/bin/sh",
        "-c",
        "nc -z localhost 7",
    ]
    for none in ({"Healthcheck": {"Test": ["NONE"]}}, {"Healthcheck": None}, {}, {"Healthcheck": {"Test": ["CMD"]}}):
        assert probe_argv(none) is None, none


def test_the_mark_a_pause_leaves_does_not_fail_the_wait() -> None:
    # lab up again on a lab whose node was paused and unpaused: the engine says unhealthy, but no probe failed.
    attrs = inspected("threaded", health="healthy")
    attrs["State"] = health_state("unhealthy")
    seen = Seen.from_inspect(attrs)
    assert seen.problem is None and not seen.ready and verdict({"a": seen}).waiting == ("threaded",)
    assert replace(seen, announces="threaded", announced=True).ready  # its ready line of this run still counts
    attrs["State"] = health_state("unhealthy", streak=3, last_exit=1)
    assert Seen.from_inspect(attrs).problem == "threaded is unhealthy"  # a real failure still fails it


def test_a_health_checks_timeout_is_its_own_or_the_engines() -> None:
    assert probe_timeout({"Healthcheck": {"Test": ["CMD", "true"], "Timeout": 3_000_000_000}}) == 3.0
    assert probe_timeout({"Healthcheck": {"Test": ["CMD", "true"]}}) == 30.0
    assert probe_timeout({}) == 30.0


THIS_START = "2026-12-03T10:00:00.123456789Z"
SAID_READY_AT = epoch_seconds("2026-12-03T10:00:00.300Z")  # the server's ready line, 0.18 s after the start


def check(start: str, exit_code: int) -> dict[str, Any]:
    return {"Start": start, "End": start, "ExitCode": exit_code, "Output": ""}


def starting(*log: dict[str, Any]) -> dict[str, Any]:
    return {"Status": "running", "StartedAt": THIS_START, "Health": {"Status": "starting", "Log": list(log)}}


def test_a_check_is_pending_for_a_server_that_said_ready_until_one_after_its_line_fails() -> None:
    assert check_pending_since(starting(), SAID_READY_AT)  # no check yet
    # One that came before the server listened failed by design (Docker does not count it): still pending.
    too_early = check("2026-12-03T10:00:00.250000000Z", 1)
    assert check_pending_since(starting(too_early), SAID_READY_AT)
    # One that began after the ready line and failed disagrees with it: Docker's "starting" stands.
    after = check("2026-12-03T10:00:00.550000000Z", 1)
    assert not check_pending_since(starting(too_early, after), SAID_READY_AT)


def test_a_check_is_pending_only_while_docker_says_starting_for_a_running_container() -> None:
    assert not check_pending_since({**starting(), "Health": {"Status": "healthy"}}, SAID_READY_AT)
    assert not check_pending_since({**starting(), "Status": "exited"}, SAID_READY_AT)
    assert not check_pending_since({"Status": "running", "StartedAt": THIS_START}, SAID_READY_AT)  # no check at all
