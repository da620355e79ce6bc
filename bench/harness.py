"""The bench network: its server containers, the load generator container, readiness checks.

Host side only (Docker SDK and ``lab.testing``). A ``Bench`` starts servers on
one labelled network, runs load generators as execs in one idle client
container, and reads the CPU each container used inside a measured window.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container
from docker.types import Mount

from bench import generators
from bench.cpu import MACHINE, SOFTIRQ, CpuSampler
from common.waiting import wait_until
from lab import model, testing


def image_tag(image: str) -> str:
    """The tag of an image reference (``latest`` when it has none; a registry's ``host:port/`` is no tag)."""
    _, colon, tag = image.rpartition(":")
    return tag if colon and "/" not in tag else "latest"


def bench_image(kind: str, node_image: str) -> str:
    """``testbed/<kind>:<the node image's tag>``: each node image its own bench images.

    Two checkouts building ``testbed/node:a`` and ``testbed/node:b`` on one engine then never
    measure each other's load generators or peers, nor rebuild them from under each other.
    """
    return f"testbed/{kind}:{image_tag(node_image)}"


NODE_IMAGE = os.environ.get(model.IMAGE_VARIABLE) or model.DEFAULT_NODE_IMAGE
BASE_IMAGE = os.environ.get("TESTBED_BASE_IMAGE", "testbed/base:bookworm")
BENCH_IMAGE = bench_image("bench", NODE_IMAGE)
RSYSLOG_IMAGE = bench_image("bench-rsyslog", NODE_IMAGE)
REDIS_IMAGE = bench_image("bench-redis", NODE_IMAGE)
BENCH_LABEL = {"testbed.bench": "1"}
REDIS_COMMAND = ["redis-server", "--bind", "0.0.0.0", "--port", "6379", "--protected-mode", "no", "--save", "",
                 "--appendonly", "no", "--dir", "/tmp", "--maxclients", "4096"]


# --pin: the servers on one CPU, the load generator on the other, so neither takes the other's core.
# Pinned, a server with threads of its own (rsyslog's input and writer) has one core for all of them.
SERVER_CPUS, LOADGEN_CPUS = "0", "1"


class Bench:
    """One bench network, its servers and its load generator container."""

    def __init__(self, client: docker.DockerClient, lab: testing.Lab, *, pin: bool = False) -> None:
        self.client, self.lab, self.pin = client, lab, pin
        self.sampler = CpuSampler()
        self.sampler.start()
        self.nodes: dict[str, testing.Node] = {}
        self.peer_labs: list[testing.Lab] = []
        self.loadgen: Container | None = None
        self.ips: dict[str, str] = {}

    # -- containers ---------------------------------------------------------

    def start(self, name: str, service: str, *, command: list[str] | None = None, image: str | None = None,
              ready: Callable[[testing.Node], None] | None = None, **kwargs: Any) -> testing.Node:
        """A server container named ``name`` on the bench network; waits for its readiness check."""
        lab = self.lab
        if image is not None and image != lab.image:
            lab = replace(self.lab, image=image, nodes={}, _extra=[])  # same network, another image
            self.peer_labs.append(lab)
        kwargs.setdefault("mem_limit", "1g")
        kwargs.setdefault("pids_limit", 4096)
        if self.pin:
            kwargs.setdefault("cpuset_cpus", SERVER_CPUS)
        node = lab.start_server(service, hostname=name, command=command, publish=False, ready=ready is None,
                                **kwargs)
        if ready is not None:
            ready(node)
        self.nodes[name] = node
        self.ips[name] = node.address()
        self.sampler.watch(str(node.wrapped.id))
        return node

    def start_redis(self) -> None:
        """The Redis peer (PING calibration, pub/sub), once for every section that needs it."""
        if "redis" not in self.nodes:
            self.start("redis", "redis", command=REDIS_COMMAND, image=REDIS_IMAGE, ready=redis_ready, user="redis")

    def start_loadgen(self) -> None:
        """The client container the load generators run in."""
        # It idles; each run is one exec in it, so no run pays a container start.
        pinned = {"cpuset_cpus": LOADGEN_CPUS} if self.pin else {}
        self.loadgen = self.lab.start_client("python3", "-c", "import signal; signal.pause()", hostname="loadgen",
                                             mem_limit="2g", **pinned)
        self.sampler.watch(str(self.loadgen.id))

    def close(self) -> None:
        """Stop sampling; remove the peers' containers (``make_lab`` removes its own)."""
        self.sampler.stop()
        for lab in self.peer_labs:
            for node in lab.nodes.values():
                with contextlib.suppress(docker.errors.APIError):
                    node.wrapped.remove(force=True)
            lab.nodes.clear()

    def exec_json(self, *argv: str, container: Container | None = None) -> dict[str, Any]:
        """Run a load generator in the loadgen container; its JSON result."""
        target = container or self.loadgen
        assert target is not None
        reply: Any = target.exec_run(list(argv), demux=True, user="node")  # the stubs miss demux's shape
        code, (out, err) = reply
        if code != 0:
            raise RuntimeError(f"{' '.join(argv[:4])}... exited {code}: {(err or out or b'').decode()[-800:]}")
        try:
            return generators.read_result(out or b"")
        except generators.GeneratorOutputError as exc:
            raise RuntimeError(f"{' '.join(argv[:4])}...: {exc}") from None

    def sh(self, node: testing.Node, command: str) -> str:
        """Run a fixed shell command in ``node`` (as its image's user); its output."""
        reply: Any = node.wrapped.exec_run(["sh", "-c", command], user=node.wrapped.attrs["Config"]["User"] or "root")
        code, out = reply
        if code != 0:
            raise RuntimeError(f"{node.hostname}: {command!r} exited {code}: {out.decode()[-400:]}")
        return str(out.decode())

    def cores(self, name: str, t0: int, t1: int) -> float | None:
        """Average cores the container ``name`` (or ``MACHINE``, ``SOFTIRQ``) used in [t0, t1] (monotonic ns)."""
        if name in (MACHINE, SOFTIRQ):
            return self.sampler.cores(name, t0, t1)
        if name == "loadgen":
            assert self.loadgen is not None
            return self.sampler.cores(str(self.loadgen.id), t0, t1)
        return self.sampler.cores(str(self.nodes[name].wrapped.id), t0, t1)

    def window_cores(self, server: str, t0: int, t1: int) -> dict[str, float | None]:
        """The CPU columns every measurement carries: the server's, the generator's, the machine's."""
        return {"server_cores": self.cores(server, t0, t1), "loadgen_cores": self.cores("loadgen", t0, t1),
                "machine_cores": self.cores(MACHINE, t0, t1), "softirq_cores": self.cores(SOFTIRQ, t0, t1)}


def redis_ready(node: testing.Node) -> None:
    """Redis is ready when it answers PING."""
    def check() -> bool:
        code, out = node.exec("redis-cli", "ping", user="redis")
        return code == 0 and "PONG" in out
    wait_until(check, timeout=30, interval=0.1, what="redis to answer PING")


def rsyslog_ready(node: testing.Node) -> None:
    """rsyslog is ready when a datagram sent to its imudp port reaches its output file."""
    def check() -> bool:
        node.exec("logger", "-n", "127.0.0.1", "-P", "5514", "-d", "bench-ready")
        code, _ = node.exec("grep", "-q", "bench-ready", "/data/messages.log")
        return code == 0
    wait_until(check, timeout=30, interval=0.1, what="rsyslog to write a datagram to its file")


# One trial's file must fit: rsyslog's JSON line of a 1 KB datagram is about 2.2 KB (the datagram as text
# and as message), so 10 s at 150,000/s writes 3.3 GB. The tmpfs's pages count against the sink's memory
# limit, so the sinks get DATA_BYTES more than that; each file is emptied once its trial is counted.
DATA_BYTES = 4 * 2**30
SINK_MEMORY = DATA_BYTES + 2**30


def data_mount() -> list[Mount]:
    """A tmpfs for the sinks' output files: both write to memory, neither waits on the host's disk."""
    return [Mount(target="/data", source="", type="tmpfs", tmpfs_size=DATA_BYTES, tmpfs_mode=0o1777)]
