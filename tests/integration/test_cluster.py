"""``lab cluster``: three machines on this engine, the default lab spread over them, faults between machines.

One cluster for the whole module (it takes about a minute to make and to fill): its own
name (``t<pid><random>``), so nothing of a developer's own cluster is touched. The tests
run in order: the lab is deployed, toured from every machine, a machine's underlay
link slowed, the machine running chat stopped and chat seen answering elsewhere, and
everything removed, checked to leave nothing (containers, networks, volumes, cgroups).
Every machine manages the Swarm (``--managers 3``), so any one of them may be stopped.

It runs beside the other modules (not ``alone``): its labs run on the machines' own engines, with
their own DNS; on this engine it only adds the machines and their underlay network.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]  # nested engines: the slow tier

ROOT = Path(__file__).resolve().parents[2]
TOUR = ["docker", "run", "--rm", "--network", "testbed_lab", "testbed/node:latest", "python3", "-m", "clients.tour"]


@dataclass(frozen=True)
class Cluster:
    name: str
    state: Path

    def lab(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``lab ARGS`` as a user runs it, on this cluster."""
        env = {**os.environ, "LAB_STATE_DIR": str(self.state), "LAB_CLUSTER": self.name}
        return subprocess.run([sys.executable, "-m", "lab.cli", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)  # fmt: skip

    def ok(self, *args: str, timeout: float = 300) -> str:
        result = self.lab(*args, timeout=timeout)
        assert result.returncode == 0, f"lab {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def placement(self) -> dict[str, str]:
        """Node -> machine, from ``lab ps --cluster``'s MACHINE column."""
        lines = self.ok("ps", "--cluster").splitlines()
        rows = [line.split() for line in lines[2:] if line.strip() and not line.startswith(" ")]
        return {row[0]: row[-1] for row in rows if re.fullmatch(r"h\d", row[-1])}


def leftovers(client: docker.DockerClient, name: str) -> list[str]:
    label: dict[str, Any] = {"label": f"testbed.cluster={name}"}
    found = [f"container {c.name}" for c in client.containers.list(all=True, ignore_removed=True, filters=label)]
    found += [f"network {n.name}" for n in client.networks.list(filters=label)]
    found += [f"volume {v.name}" for v in client.volumes.list(filters=label)]
    found += [f"cgroup {path}" for path in glob.glob(f"/sys/fs/cgroup/*/testbed-{name}-h*")]
    return found


@pytest.fixture(scope="module")
def cluster(node_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    made = Cluster(f"t{os.getpid()}{uuid.uuid4().hex[:4]}", tmp_path_factory.mktemp("cluster-state"))
    try:
        began = time.monotonic()
        out = made.ok("cluster", "up", "--hosts", "3", "--managers", "3")
        print(f"lab cluster up: {time.monotonic() - began:.1f} s")
        assert re.search(r"h3 +running +198\.1[89]\.\d+\.13 +tcp://127\.0\.0\.1:\d+ +manager", out), out
        began = time.monotonic()
        made.ok("up", "--swarm", "--cluster")
        print(f"lab up --swarm --cluster: {time.monotonic() - began:.1f} s")
        yield made
    finally:
        made.lab("cluster", "down")


def test_the_lab_spreads_over_the_machines(cluster: Cluster) -> None:
    where = cluster.placement()
    assert sorted(where) == ["chat", "creosote", "daytime", "doctor", "echo", "threaded"], where
    assert len(set(where.values())) >= 2, where


def test_the_tour_answers_from_every_machine(cluster: Cluster) -> None:
    for machine in ("h1", "h2", "h3"):
        out = cluster.ok("cluster", "exec", machine, "--", *TOUR, timeout=120)
        assert "6 of 6 servers answered" in out, f"{machine}:\n{out}"


def test_node_verbs_reach_a_task_on_another_machine(cluster: Cluster) -> None:
    where = cluster.placement()
    node = next(n for n, m in where.items() if m != "h1")  # the CLI talks to h1's engine
    assert cluster.ok("exec", "--cluster", node, "--", "hostname").strip() == node


def _rtt_ms(cluster: Cluster, machine: str, target: str) -> float:
    out = cluster.ok("cluster", "exec", machine, "--", "docker", "run", "--rm", "--network", "testbed_lab",
                     "testbed/node:latest", "ping", "-c", "5", "-i", "0.2", "-q", target, timeout=120)  # fmt: skip
    match = re.search(r"= [\d.]+/([\d.]+)/", out)
    assert match, out
    return float(match.group(1))


def test_an_underlay_delay_shows_across_it(cluster: Cluster) -> None:
    where = cluster.placement()
    slowed = where["echo"]
    client = next(m for m in ("h1", "h2", "h3") if m != slowed)
    before = _rtt_ms(cluster, client, "echo")
    out = cluster.ok("cluster", "impair", slowed, "--delay", "40ms")
    assert f"impaired the underlay link of {slowed}: delay 40ms" in out
    try:
        slow = _rtt_ms(cluster, client, "echo")
    finally:
        cluster.ok("cluster", "impair", slowed, "--clear")
    after = _rtt_ms(cluster, client, "echo")
    print(f"echo from {client} across {slowed}'s underlay: {before:.2f} ms, 40ms delay {slow:.2f} ms, {after:.2f} ms")
    assert before < 20 and after < 20, (before, after)
    assert 40 <= slow < 200, slow  # one way delayed: the reply leaves through the slowed link


def test_stopping_chats_machine_moves_chat(cluster: Cluster) -> None:
    stopped = cluster.placement()["chat"]
    result = cluster.lab("cluster", "stop", stopped, timeout=300)
    print(result.stdout)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    match = re.search(rf"testbed_chat: {stopped} -> (h\d) in ([\d.]+) s", result.stdout)
    assert match, result.stdout
    moved_to = match.group(1)
    assert moved_to != stopped
    assert cluster.placement()["chat"] == moved_to
    out = cluster.ok("cluster", "exec", moved_to, "--", *TOUR, timeout=120)
    assert re.search(r"ok +chat ", out) and "6 of 6 servers answered" in out, out
    assert f"machine {stopped} is back in the Swarm" in cluster.ok("cluster", "start", stopped)


def test_down_leaves_nothing(cluster: Cluster, docker_client: docker.DockerClient) -> None:
    """Last: the lab, then the cluster; nothing labelled with the cluster is left, nor its cgroup trees."""
    assert "removed service testbed_chat" in cluster.ok("down", "--swarm", "--cluster")
    began = time.monotonic()
    out = cluster.ok("cluster", "down")
    print(f"lab cluster down: {time.monotonic() - began:.1f} s")
    assert f"removed network testbed-{cluster.name}-underlay" in out
    assert leftovers(docker_client, cluster.name) == []
