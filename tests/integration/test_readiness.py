"""lab.readiness against a real engine: containers with health checks timed for the test, and ``lab up`` of a
node that exits, each failing with what the node said; a healthy one ends the wait within a second.

The containers carry a project label of their own (``readiness-<pid>-<random>``) and the run's labels, so
only they are waited on and a crashed run's are swept like every other test container.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from common.waiting import wait_until
from lab import readiness
from lab.backends import ComposeProject
from lab.engine import PROJECT_LABEL, SERVICE_LABEL, LabError
from lab.model import READY_LINE_LABEL
from lab.testing import RUN_LABELS
from tests.integration.test_lab_cli import lab_cli, leftovers, sweep_crashed_runs

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

MS = 1_000_000  # nanoseconds, the unit of the engine's health-check timings
SAYS = "nothing answers on 7007/tcp"


@pytest.fixture
def project(docker_client: docker.DockerClient) -> Iterator[str]:
    """A project label of this test's own; its containers are removed afterwards."""
    name = f"readiness-{uuid.uuid4().hex[:8]}"
    yield name
    for container in docker_client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={name}"}):
        container.remove(force=True)


def start(
    client: docker.DockerClient, image: str, project: str, node: str, *, check: str | None, retries: int = 1,
    command: str = "exec sleep 300", restart: str = "no", interval_ms: int = 100, ready_line: str | None = None,
) -> None:  # fmt: skip
    """A container of ``project`` running ``command``; ``check``: a shell health check every ``interval_ms``."""
    options: dict[str, Any] = {"restart_policy": {"Name": restart}}
    if check is not None:
        options["healthcheck"] = {"test": ["CMD", "sh", "-c", check], "interval": interval_ms * MS,
                                  "timeout": 2000 * MS, "retries": retries, "start_period": 0}  # fmt: skip
    labels = {**RUN_LABELS, PROJECT_LABEL: project, SERVICE_LABEL: node}
    if ready_line is not None:
        labels[READY_LINE_LABEL] = ready_line
    client.containers.run(image, ["sh", "-c", command], detach=True, name=f"{project}-{node}", labels=labels, **options)


def hint(node: str) -> str:
    return f"look at {node}"


def test_healthy_and_running_nodes_end_the_wait_and_the_stream(
    docker_client: docker.DockerClient, node_image: str, project: str
) -> None:
    with readiness.watching([f"{PROJECT_LABEL}={project}"]) as watch:
        start(docker_client, node_image, project, "checked", check="exit 0")
        start(docker_client, node_image, project, "plain", check=None)
        start(docker_client, node_image, project, "helper", check=None, command="exit 0")  # not waited for
        took = watch.wait({"checked", "plain"}, timeout=60, hint=hint)
    assert took < 30, f"{took:.1f} s for a check that passes every 100 ms"
    assert docker_client.containers.get(f"{project}-checked").attrs["State"]["Health"]["Status"] == "healthy"
    assert not watch._reader.is_alive(), "the event stream was left open"


# A server that says ready in its log, under a health check that would first run an hour later.
DAYTIME = "exec python3 -m services.daytime --port 1313"
HOUR_MS = 3_600_000


def test_a_servers_ready_line_ends_the_wait_before_its_first_health_check(
    docker_client: docker.DockerClient, node_image: str, project: str
) -> None:
    with readiness.watching([f"{PROJECT_LABEL}={project}"]) as watch:
        start(docker_client, node_image, project, "said", check="exit 0", interval_ms=HOUR_MS, command=DAYTIME,
              ready_line="daytime")  # fmt: skip
        took = watch.wait({"said"}, timeout=60, hint=hint)
    assert took < 30, f"{took:.1f} s for a server that listens within a second"
    assert docker_client.containers.get(f"{project}-said").attrs["State"]["Health"]["Status"] == "starting"
    assert "daytime ready" in docker_client.containers.get(f"{project}-said").logs().decode()
    # lab ps then says so, where Docker's "starting" alone would read as not ready
    assert states(project) == {"said": f"running ({readiness.SAID_READY_CHECK_PENDING})"}


def test_the_unhealthy_mark_a_pause_leaves_does_not_fail_a_later_wait(
    docker_client: docker.DockerClient, node_image: str, project: str
) -> None:
    # As lab up again on a lab that a chaos run paused: the engine says unhealthy, though no probe ran.
    start(docker_client, node_image, project, "paused", check="exit 0", interval_ms=HOUR_MS, command=DAYTIME,
          ready_line="daytime")  # fmt: skip
    container = docker_client.containers.get(f"{project}-paused")
    wait_until(lambda: "daytime ready" in container.logs().decode(), timeout=60, what="daytime to say ready")
    container.pause()
    container.unpause()
    container.reload()
    assert container.attrs["State"]["Health"]["Status"] == "unhealthy"  # the engine's mark, with no probe run
    assert readiness.unprobed_since_paused(container.attrs["State"])
    with readiness.watching([f"{PROJECT_LABEL}={project}"]) as watch:
        took = watch.wait({"paused"}, timeout=60, hint=hint)  # its ready line of this run, not a failure
    assert took < 30, f"{took:.1f} s"


def test_without_the_label_or_with_another_servers_name_the_line_does_not_count(
    docker_client: docker.DockerClient, node_image: str, project: str
) -> None:
    with readiness.watching([f"{PROJECT_LABEL}={project}"]) as watch:
        start(docker_client, node_image, project, "unlabelled", check="exit 0", interval_ms=HOUR_MS, command=DAYTIME)
        start(docker_client, node_image, project, "misnamed", check="exit 0", interval_ms=HOUR_MS, command=DAYTIME,
              ready_line="echo")  # fmt: skip
        wait_until(lambda: all("daytime ready" in c.logs().decode() for c in _containers(docker_client, project)),
                   timeout=60, what="both servers to say ready")  # fmt: skip
        with pytest.raises(LabError) as failed:
            watch.wait({"unlabelled", "misnamed"}, timeout=2, hint=hint)
    assert "misnamed (starting)" in failed.value.what and "unlabelled (starting)" in failed.value.what
    assert states(project) == {"misnamed": "running (starting)", "unlabelled": "running (starting)"}


def states(project: str) -> dict[str, str]:
    """Each node's state as ``lab ps`` shows it (the Compose backend's rows)."""
    return {row.node: row.state for row in ComposeProject().status(project)}


def _containers(client: docker.DockerClient, project: str) -> list[Any]:
    return list(client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project}"}))


def test_a_node_without_a_container_fails_at_once(
    docker_client: docker.DockerClient, node_image: str, project: str
) -> None:
    with readiness.watching([f"{PROJECT_LABEL}={project}"]) as watch:
        start(docker_client, node_image, project, "plain", check=None)
        with pytest.raises(LabError) as failed:
            watch.wait({"plain", "nobody"}, timeout=60, hint=hint)
    assert failed.value.what == "no container for nobody" and failed.value.hint == "look at nobody"


def test_an_unhealthy_node_fails_with_its_probes_last_output(
    docker_client: docker.DockerClient, node_image: str, project: str
) -> None:
    with readiness.watching([f"{PROJECT_LABEL}={project}"]) as watch:
        start(docker_client, node_image, project, "good", check="exit 0")
        start(docker_client, node_image, project, "deaf", check=f"echo '{SAYS}'; exit 1", retries=2)
        began = time.monotonic()
        with pytest.raises(LabError) as failed:
            watch.wait({"good", "deaf"}, timeout=120, hint=hint)
    assert failed.value.what == f"deaf is unhealthy: {SAYS}" and failed.value.hint == "look at deaf"
    assert time.monotonic() - began < 60, "the unhealthy event should end the wait, not the timeout"


def test_a_node_that_never_gets_healthy_fails_at_the_timeout_naming_it(
    docker_client: docker.DockerClient, node_image: str, project: str
) -> None:
    with readiness.watching([f"{PROJECT_LABEL}={project}"]) as watch:
        start(docker_client, node_image, project, "slow", check=f"echo '{SAYS}'; exit 1", retries=100_000)
        with pytest.raises(LabError) as failed:
            watch.wait({"slow"}, timeout=3, hint=hint)
    assert failed.value.what == f"not ready within 3 s: slow (starting: {SAYS})"


@pytest.mark.parametrize("restart", ["no", "unless-stopped"])
def test_a_node_that_exits_fails_with_its_code(
    docker_client: docker.DockerClient, node_image: str, project: str, restart: str
) -> None:
    with readiness.watching([f"{PROJECT_LABEL}={project}"]) as watch:
        start(docker_client, node_image, project, "gone", check="exit 1", retries=100_000,
              command=f"sleep 1; echo '{SAYS}'; exit 3", restart=restart)  # fmt: skip
        with pytest.raises(LabError) as failed:
            watch.wait({"gone"}, timeout=60, hint=hint)
    assert failed.value.what in (f"gone is {s} (exit code 3): {SAYS}" for s in ("exited", "restarting")), failed.value


BROKEN = """name: {name}
networks: [lan]
nodes:
  - name: daytime
    service: daytime
    networks: [lan]
  - name: broken
    service: echo
    command: [python3, -c, "import sys; sys.exit('cannot start: {says}')"]
    networks: [lan]
"""


def test_lab_up_of_a_node_that_exits_fails_in_one_line_naming_it(
    docker_client: docker.DockerClient, node_image: str, tmp_path: Path
) -> None:
    sweep_crashed_runs(docker_client, tmp_path)
    name = f"test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    file = tmp_path / "broken.yaml"
    file.write_text(BROKEN.format(name=name, says=SAYS), encoding="utf-8")
    try:
        began = time.monotonic()
        result = lab_cli("up", str(file), state=tmp_path)
        took = time.monotonic() - began
        assert result.returncode == 1, result.stdout + result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: broken is "), result.stderr
        assert f"(exit code 1): cannot start: {SAYS} (lab logs -t {name} broken)" in last, last
        assert took < 60, f"{took:.1f} s: the exit should fail lab up at once, not at the timeout"
    finally:
        lab_cli("down", str(file), "--volumes", state=tmp_path)
        lab_cli("wipe", "--lab", name, state=tmp_path)
    assert leftovers(docker_client, name) == []
