"""CPU time of containers (from their cgroups) and of the whole machine, over a measured window.

Runs on the host beside the orchestration, standard library only. The load
generators report their windows on CLOCK_MONOTONIC, the clock this sampler
stamps its samples with (one kernel, so one clock for the host and every
container): the CPU a container used inside a window is read off by
interpolating between two samples.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

MACHINE = "machine"  # pseudo-container: every CPU's busy time, from /proc/stat
SOFTIRQ = "softirq"  # ... and the part spent in softirq (packet processing no container is charged for)
_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def cgroup_usage_file(container_id: str) -> Path | None:
    """Where the engine's cgroup keeps a container's CPU time (v1 cgroupfs or systemd, or v2)."""
    candidates = [
        Path(f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage"),
        Path(f"/sys/fs/cgroup/cpu,cpuacct/docker/{container_id}/cpuacct.usage"),
        Path(f"/sys/fs/cgroup/cpuacct/system.slice/docker-{container_id}.scope/cpuacct.usage"),
        Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat"),
        Path(f"/sys/fs/cgroup/docker/{container_id}/cpu.stat"),
    ]
    return next((p for p in candidates if p.exists()), None)


def read_proc_stat() -> tuple[int, int]:
    """(busy, softirq) nanoseconds over all CPUs since boot."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) * _TICK_NS, softirq * _TICK_NS


def read_usage_ns(path: Path) -> int:
    """A cgroup's CPU time in nanoseconds, from ``cpuacct.usage`` (v1) or ``cpu.stat`` (v2)."""
    text = path.read_text()
    if path.name == "cpu.stat":  # cgroup v2: usage_usec
        fields = dict(line.split() for line in text.splitlines())
        return int(fields["usage_usec"]) * 1000
    return int(text)


class CpuSampler(threading.Thread):
    """Samples the CPU time of the containers it watches every 20 ms, on CLOCK_MONOTONIC."""

    PERIOD = 0.02

    def __init__(self) -> None:
        super().__init__(name="cpu-sampler", daemon=True)
        self._files: dict[str, Path] = {}
        self._samples: dict[str, list[tuple[int, int]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def watch(self, container_id: str) -> None:
        """Sample ``container_id`` from now on (silently not, when its cgroup is nowhere to be found)."""
        path = cgroup_usage_file(container_id)
        if path is not None:
            with self._lock:
                self._files[container_id] = path
                self._samples[container_id] = []

    def run(self) -> None:
        self._samples[MACHINE], self._samples[SOFTIRQ] = [], []
        while not self._stop.wait(self.PERIOD):
            now = time.monotonic_ns()
            busy, softirq = read_proc_stat()
            with self._lock:
                self._samples[MACHINE].append((now, busy))
                self._samples[SOFTIRQ].append((now, softirq))
                for cid, path in list(self._files.items()):
                    try:
                        self._samples[cid].append((now, read_usage_ns(path)))
                    except (OSError, ValueError, KeyError):
                        del self._files[cid]  # the container is gone

    def stop(self) -> None:
        """End the sampling loop (the samples taken stay readable)."""
        self._stop.set()

    def cores(self, container_id: str, t0: int, t1: int) -> float | None:
        """Average cores ``container_id`` used between ``t0`` and ``t1`` (monotonic ns); None when unknown."""
        if t1 <= t0:
            return None
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:  # the window's end may be a sample or two ahead of us
            with self._lock:
                samples = list(self._samples.get(container_id, []))
            if samples and samples[-1][0] >= t1:
                break
            time.sleep(self.PERIOD)
        if len(samples) < 2 or samples[0][0] > t0 or samples[-1][0] < t1:
            return None
        return (interpolate(samples, t1) - interpolate(samples, t0)) / (t1 - t0)


def interpolate(samples: list[tuple[int, int]], t: int) -> float:
    """The usage at time ``t``, linear between the two (time, usage) samples around it."""
    lo, hi = 0, len(samples) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if samples[mid][0] <= t:
            lo = mid
        else:
            hi = mid
    (ta, ua), (tb, ub) = samples[lo], samples[hi]
    return ua if tb == ta else ua + (ub - ua) * (t - ta) / (tb - ta)
