"""``lab cluster up|ls|exec|impair|partition|heal|stop|start|down``: several machines on this one (``lab.cluster``).

Each verb is one handler over ``lab.cluster`` and ``lab.cluster_faults``; the lab
verbs reach the cluster with ``--cluster`` (``attach``), and real machines the same way
through Docker contexts (docs/cluster.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from lab import cluster, cluster_faults, machines
from lab.cli_table import UsageError, impairment_of


def cluster_name(args: argparse.Namespace) -> str:
    name = getattr(args, "cluster_name", None) or os.environ.get("LAB_CLUSTER") or machines.DEFAULT_CLUSTER
    try:
        return machines.check_cluster_name(name)
    except machines.MachineError as exc:
        raise UsageError(str(exc), "see lab cluster --help") from None


def _say(text: str) -> None:
    print(f"==> {text}", flush=True)


def cmd_cluster(args: argparse.Namespace) -> int:
    name = cluster_name(args)
    try:
        return int(HANDLERS[args.cluster_verb](args, name))
    except machines.MachineError as exc:
        raise UsageError(str(exc), "see lab cluster --help") from None


def _up(args: argparse.Namespace, name: str) -> int:
    began = time.monotonic()
    shape = machines.Shape(args.hosts, args.managers)
    cluster.up(name, shape, say=_say)
    _say(f"cluster {name} is up in {time.monotonic() - began:.1f} s; next: lab up --swarm --cluster")
    return _ls(args, name)


def _ls(_args: argparse.Namespace, name: str) -> int:
    found = cluster.machines_of(name)
    if not found:
        print(f"no cluster {name!r} (start one with lab cluster up)")
        return 0
    rows = [("MACHINE", "STATE", "UNDERLAY", "ENGINE", "SWARM", "CONTAINER")]
    for each in found:
        role = cluster._role(each.url) if each.url else None
        rows.append((each.name, each.state, each.address, each.url or "-", role or "-", each.container))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _exec(args: argparse.Namespace, name: str) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UsageError("no command to run", "write lab cluster exec h1 -- COMMAND ...")
    each = cluster.machine(name, args.machine)
    tty = ["-t"] if sys.stdin.isatty() and sys.stdout.isatty() else []
    return subprocess.run(["docker", "exec", "-i", *tty, each.container, *command], check=False).returncode


def _impair(args: argparse.Namespace, name: str) -> int:
    if args.clear:
        cluster_faults.clear_link(name, args.machine)
        print(f"cleared the underlay link of {args.machine}")
        return 0
    spec = impairment_of(args, "lab cluster impair")
    used = cluster_faults.impair_link(name, args.machine, spec)
    print(f"impaired the underlay link of {args.machine}: {spec.describe()} ({used}; what it sends, VXLAN included)")
    return 0


def _partition(args: argparse.Namespace, name: str) -> int:
    cluster_faults.partition(name, args.a, args.b)
    print(f"partitioned {args.a} from {args.b} (lab cluster heal undoes it)")
    return 0


def _heal(_args: argparse.Namespace, name: str) -> int:
    print(f"healed cluster {name}: {cluster_faults.heal(name)} cuts undone")
    return 0


def _stop(args: argparse.Namespace, name: str) -> int:
    moved = cluster_faults.stop(name, args.machine, say=_say)
    for move in moved:
        print(f"    {move.describe()}")
    stuck = [m for m in moved if m.after is None]
    _say(f"{len(moved) - len(stuck)} of {len(moved)} tasks of {args.machine} run elsewhere")
    return 1 if stuck else 0


def _start(args: argparse.Namespace, name: str) -> int:
    cluster_faults.start(name, args.machine, say=_say)
    return 0


def _down(_args: argparse.Namespace, name: str) -> int:
    began = time.monotonic()
    removed = cluster.down(name, say=_say)
    for item in removed:
        if not item.startswith("cgroup"):
            print(f"    removed {item}")
    _say(f"cluster {name} is down in {time.monotonic() - began:.1f} s" if removed else f"no cluster {name!r} to remove")
    return 0


HANDLERS = {"up": _up, "ls": _ls, "exec": _exec, "impair": _impair, "partition": _partition, "heal": _heal,
            "stop": _stop, "start": _start, "down": _down}  # fmt: skip
