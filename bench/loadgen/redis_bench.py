"""``redis-benchmark``: Debian's C benchmark against the Redis peer, a second calibration beside ``upper --mode ping``.

The Python generator drove Redis PING at 45k/s at 100 connections, 96 % busy:
its ceiling, not Redis's. redis-benchmark (one thread of C) sends the same
inline ``PING`` with one request in flight per connection (no pipelining); this
wrapper times it on CLOCK_MONOTONIC and charges it its CPU (``RUSAGE_CHILDREN``),
so its row reads like every other generator's.
"""

from __future__ import annotations

import argparse
import csv
import io
import resource
import subprocess
import time
from typing import Any

from bench.loadgen.common import NS

TEST = "PING_INLINE"


def command(*, host: str, port: int, conns: int, requests: int) -> list[str]:
    """redis-benchmark's command line: ``requests`` inline PINGs over ``conns`` connections, CSV out."""
    return ["redis-benchmark", "-h", host, "-p", str(port), "-c", str(conns), "-n", str(requests),
            "-t", "ping_inline", "--csv"]


def parse_csv(text: str) -> dict[str, float]:
    """The ``PING_INLINE`` row of redis-benchmark's ``--csv`` output: rps and latencies in ms."""
    rows = list(csv.DictReader(io.StringIO(text)))
    row = next((r for r in rows if r.get("test") == TEST), None)
    if row is None:
        raise ValueError(f"no {TEST} row in redis-benchmark's output: {text[:200]!r}")
    try:
        return {"rps": float(row["rps"]), "p50_ms": float(row["p50_latency_ms"]),
                "p99_ms": float(row["p99_latency_ms"]), "max_ms": float(row["max_latency_ms"])}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"redis-benchmark's {TEST} row lacks a number ({exc}): {row}") from None


def requests_for(duration: float, conns: int) -> int:
    """How many requests make a run of about ``duration`` s (redis-benchmark counts, it does not time)."""
    return max(int(50_000 * duration), 50 * conns)  # ~50k/s here; every connection gets some


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run redis-benchmark once; its figures with the window and its CPU time."""
    requests = args.requests or requests_for(args.duration, args.conns)
    argv = command(host=args.host, port=args.port, conns=args.conns, requests=requests)
    cpu0, t0 = _cpu(), time.monotonic_ns()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"redis-benchmark took more than {args.timeout:g} s") from None
    t1, cpu = time.monotonic_ns(), _cpu() - cpu0
    if done.returncode != 0:
        raise RuntimeError(f"redis-benchmark exited {done.returncode}: {done.stderr.strip()[-400:]}")
    try:
        figures = parse_csv(done.stdout)
    except ValueError as exc:
        raise RuntimeError(str(exc)) from None
    window = (t1 - t0) / NS
    return {
        "generator": "redis-benchmark", "mode": "ping", "target": f"{args.host}:{args.port}",
        "conns": args.conns, "requests": requests, **figures, "errors": 0,
        # Its window includes connecting every client: its CPU is spread over a little more than the
        # requests took, never less.
        "window_s": round(window, 4), "loadgen_cpu_s": round(cpu, 4), "busiest_cpu_s": round(cpu, 4), "procs": 1,
        "t0_ns": t0, "t1_ns": t1,
    }
