"""One benchmark run: setup, images, the labelled bench network, the sections in order, the result.

The result is the dict ``results/bench.json`` holds: ``meta`` (when, where,
how), then one entry per section. A section that fails or is interrupted ends
the run early, and what was measured until then is still returned (the error
in ``meta``).
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
import sys
import time
from typing import Any

import docker
import docker.errors

from bench.harness import BENCH_IMAGE, BENCH_LABEL, Bench
from bench.images import ensure_images
from bench.options import ROOT, Options
from bench.progress import say
from bench.sections import chat, lab, udp, upper
from common.errors import TestbedError
from lab import testing


class SetupError(TestbedError):
    """The bench could not start: scripts/setup failed, an image would not build, or no engine answers."""


def measure(opts: Options) -> dict[str, Any]:
    """Run ``opts.sections``; the result, with ``meta["error"]`` when a section failed."""
    # Started by scripts/bench, setup has run (the variable says so). Started directly, run it but its venv
    # step: this interpreter is that venv's.
    if not os.environ.get("TESTBED_BENCH_SETUP_DONE") and \
            subprocess.run([str(ROOT / "scripts" / "setup"), "--no-venv"]).returncode != 0:
        raise SetupError("scripts/setup failed")
    try:
        client = docker.from_env(timeout=300)
        info = client.version()
        ensure_images(client)
    except (docker.errors.DockerException, RuntimeError) as exc:
        raise SetupError(str(exc)) from exc

    # Everything make_lab and Lab create carries RUN_LABELS; ours also says it is the bench's. The host
    # label names our pid namespace too: lab.testing's sweep removes a run whose pid it cannot see, and a
    # test run in another PID namespace on the same engine (a container with the same hostname, say)
    # cannot see ours, and once removed a bench run's container mid-way for that.
    pid_ns = os.readlink("/proc/self/ns/pid") if os.path.exists("/proc/self/ns/pid") else "?"
    testing.RUN_LABELS.update({**BENCH_LABEL, "testbed.run.host": f"{socket.gethostname()}/{pid_ns}"})
    result: dict[str, Any] = {"meta": {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "mode": "quick" if opts.quick else "full",
        "cpus": os.cpu_count(), "kernel": platform.release(), "docker": info.get("Version"),
        "reps": opts.reps, "duration_s": opts.duration, "warmup_s": opts.warmup, "udp_duration_s": opts.udp_duration,
        "sections": sorted(opts.sections), "argv": opts.argv, "pinned": opts.pin,
    }}
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        network = stack.enter_context(testing.make_lab(client, BENCH_IMAGE, "bench"))
        bench = Bench(client, network, pin=opts.pin)
        stack.callback(bench.close)
        say(f"network {network.name} (label testbed.bench=1)")
        bench.start_loadgen()
        try:
            if "upper" in opts.sections:
                result["upper"] = upper.run(bench, opts)
            if "udp" in opts.sections:
                result["udp"] = udp.run(bench, opts)
            if "chat" in opts.sections:
                result["chat"] = chat.run(bench, opts)
        except KeyboardInterrupt:
            say("interrupted: writing what was measured")
        except (RuntimeError, TimeoutError, docker.errors.APIError, AssertionError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            result["meta"]["error"] = str(exc)
    if "lab" in opts.sections:
        result["images"], result["lab"] = lab.facts(client)
    result["meta"]["elapsed_s"] = round(time.monotonic() - began, 1)
    return result
