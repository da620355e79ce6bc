"""lab: bring labs up and down, look inside them, impair and capture their links, draw them.

One handler per verb, each returning an exit code, each over one ``Backend``
(``lab.backends.choose``) whatever runs the lab; the table in ``lab.cli_table``
is the whole command line. Errors are one line, ``error: <what> (<hint>)``, and a
topology's problems are one line each, ``file:line: field: what; fix`` (exit 2).
A traceback is a bug.

Which lab a verb acts on: the one named (``-t/--lab`` with a lab name or a
topology file; the verbs that read a file also take it as their argument), else
the only lab that is running, else the default lab.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import docker.errors

from common.errors import TestbedError
from lab import backends, compose, model, reach
from lab.api import RunningLab
from lab.cli_table import UsageError, impairment_of, parser
from lab.impair import Active
from lab.loader import LAB_NAME, load
from lab.yamlread import ReadError
from protocols import registry

DEFAULT_TOPOLOGY = Path("topology") / "default.yaml"
REPO_ROOT = Path(__file__).resolve().parent.parent


def say(text: str) -> None:
    """A progress line, in the style of scripts/setup."""
    print(f"==> {text}", flush=True)


def indented(text: str) -> None:
    """A detail line under a progress line."""
    print(f"    {text}", flush=True)


# --------------------------------------------------------------------------- which lab


def topology_path(value: str | None) -> Path:
    """A topology file: the path given, or ``topology/<name>.yaml`` here or in the repository."""
    value = value or str(DEFAULT_TOPOLOGY)
    path = Path(value)
    candidates = [path]
    if LAB_NAME.fullmatch(value):
        candidates += [Path("topology") / f"{value}.yaml", REPO_ROOT / "topology" / f"{value}.yaml"]
    if not path.is_absolute():
        candidates.append(REPO_ROOT / path)
    return next((c for c in candidates if c.is_file()), path)


def named_lab(args: argparse.Namespace) -> str | None:
    """The lab named on the command line (``-t``, or the topology argument of a verb that takes one)."""
    positional: str | None = getattr(args, "topology", None)
    option: str | None = args.lab
    if positional and option and positional != option:
        raise UsageError(f"two labs named: {positional} and -t {option}", "name the lab once")
    return positional or option


def chosen_project(value: str | None) -> str:
    """The Compose project (or Swarm stack) a verb acts on (see the module docstring)."""
    if value is not None:
        path = topology_path(value)
        if path.is_file():
            return load(path).project
        if LAB_NAME.fullmatch(value):
            return model.project_name(value)
        raise UsageError(
            f"no topology file or lab named {value!r}", "give a file like topology/two-lans.yaml or a lab name"
        )
    running = backends.running_labs()
    if len(running) == 1:
        return next(iter(running))
    if len(running) > 1:
        raise UsageError(f"several labs are running: {', '.join(sorted(running.values()))}", "choose one with -t NAME")
    return model.project_name(model.DEFAULT_LAB)


def target(args: argparse.Namespace) -> RunningLab:
    """The running lab a verb acts on."""
    return RunningLab.attach(chosen_project(named_lab(args)), swarm=getattr(args, "swarm", False))


# --------------------------------------------------------------------------- files


def cmd_validate(args: argparse.Namespace) -> int:
    topology = load(topology_path(args.topology))
    print(f"{topology.source}: ok: {_counts(topology)}")
    _warn(topology)
    return 0


def _warn(topology: model.Topology) -> None:
    """Say which nodes run with less hardening than the default: allowed, but never silently."""
    for warning in topology.warnings():
        print(f"warning: {topology.source}: {warning}", file=sys.stderr)


def _counts(topology: model.Topology) -> str:
    parts = ((topology.nodes, "node"), (topology.routers, "router"), (topology.networks, "network"))
    return f"lab {topology.name}: " + ", ".join(f"{len(items)} {noun}" + ("" if len(items) == 1 else "s")
                                                for items, noun in parts)  # fmt: skip


def cmd_render(args: argparse.Namespace) -> int:
    topology = load(topology_path(args.topology))
    if args.engine_override:
        if args.swarm:
            raise UsageError("--engine-override is for Compose files", "a stack keeps every engine's health checks")
        label = compose.source_label(topology.source, args.output)
        name = args.output.name if args.output else "compose.engine25.yaml"
        text = compose.engine_override(topology, source_label=label, output_name=name)
    else:
        backend = backends.choose(swarm=args.swarm)
        text = backend.render(topology, output=args.output, profiles=args.profile, port_offset=args.port_offset)
    if args.output is None:
        sys.stdout.write(text)
    else:
        compose.save(text, args.output)
        print(f"wrote {args.output}")
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    topology = load(topology_path(args.topology))
    output = args.output or Path(f"{topology.name}.svg")
    from lab import graph  # here, not above: every other verb starts faster without it

    graph.write(topology, output)
    print(f"wrote {output}")
    return 0


# --------------------------------------------------------------------------- lifecycle


def cmd_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    path = topology_path(args.topology)
    say(f"validating {path}")
    topology = load(path)
    say(f"  {_counts(topology)}")
    _warn(topology)
    lab = RunningLab.up(topology, files=backends.state_dir(args.state_dir), profiles=args.profile, swarm=args.swarm,
                        port_offset=args.port_offset, say=say)  # fmt: skip
    say(f"lab {topology.name} is up {lab.backend.where(topology.project)} in {time.monotonic() - started:.1f} s")
    rows = lab.status()
    print(backends.table([r for r in rows if r.role != "routes"]))
    _host_port_trouble(lab, rows, lab.changes())
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    started = time.monotonic()
    named = named_lab(args)
    path = topology_path(named) if named else None
    topology = load(path) if path is not None and path.is_file() else None
    project = topology.project if topology is not None else chosen_project(named)
    lab = RunningLab(project, backends.choose(project, swarm=args.swarm), topology)
    name = lab.name
    say(f"stopping lab {name} {lab.backend.where(project)}")
    removed = lab.down(files=backends.state_dir(args.state_dir), volumes=args.volumes, say=indented)
    for volume in [] if args.volumes else lab.backend.kept_volumes(project):
        indented(f"kept volume {volume} (lab down --volumes removes it)")
    say(f"lab {name} is down in {time.monotonic() - started:.1f} s" if removed else f"lab {name} was not running")
    return 0


def cmd_ps(args: argparse.Namespace) -> int:
    lab = target(args)
    rows = lab.status()
    if not rows:
        print(f"lab {lab.name} is not running (start it with lab up)")
        return 0
    print(f"lab {lab.name} {lab.backend.where(lab.project)}")
    print(backends.table(rows))
    changes = lab.changes()
    _host_port_trouble(lab, rows, changes)
    if changes:
        print("\nin force:")
    for change in changes:
        # A dead sidecar's iptables rules may stay while its delay line is gone (--queue-bypass): say so.
        dead = "" if change.alive else "  NOT IN FORCE: its sidecar stopped (lab impair --clear, then impair again)"
        print(f"  {change.container}  {change.role}  {change.detail}{dead}")
    return 0


def _host_port_trouble(lab: RunningLab, rows: Sequence[backends.Row], changes: Sequence[Active]) -> None:
    """Under the table, each node whose host port does not answer from here though Docker may call it healthy."""
    cut_off = {change.container for change in changes if change.role == "disconnect"}
    troubled = [(row, verdict) for row in rows if (verdict := reach.verdict(row.state, row.probes))]
    if troubled:
        print("\nnot answering from this machine:")
    for row, verdict in troubled:
        logs = f"lab logs -t {lab.name} {row.node}"
        print(f"  {row.node}: {verdict}")
        print(f"    {reach.advice(row.probes, restart=row.restart, cut_off=row.container in cut_off, logs=logs)}")


def cmd_wipe(args: argparse.Namespace) -> int:
    lab = model.lab_name(chosen_project(args.lab)) if args.lab else None
    if not backends.wipe(lab, say=print):
        print("nothing labelled " + (f"{model.LAB_LABEL}={lab}" if lab else model.LAB_LABEL) + " to remove")
    return 0


# --------------------------------------------------------------------------- inside a lab


def cmd_exec(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UsageError("no command to run", "write lab exec NODE -- COMMAND ...")
    lab = target(args)
    with lab.on(args.node):  # a Swarm task on another machine: through that machine's engine
        container = lab.backend.find_container(lab.project, args.node)
        tty = ["-t"] if sys.stdin.isatty() and sys.stdout.isatty() else []
        who = ["--user", args.user] if args.user else []
        return _docker(["exec", "-i", *tty, *who, str(container.name), *command])


def cmd_logs(args: argparse.Namespace) -> int:
    lab = target(args)
    with lab.on(args.node):
        container = lab.backend.find_container(lab.project, args.node)
        return _docker(["logs", "--tail", args.tail, *(["--follow"] if args.follow else []), str(container.name)])


def _docker(args: Sequence[str]) -> int:
    """``docker ARGS`` with the terminal passed through; its exit code."""
    return subprocess.run(["docker", *args], check=False).returncode


def cmd_impair(args: argparse.Namespace) -> int:
    where = f"{args.node}" + (f" on {args.network}" if args.network else "")
    if args.clear:
        target(args).clear(args.node, network=args.network)
        print(f"cleared impairments of {where}")
        return 0
    # The values first: a delay above the bound is refused before any Docker call, engine or not.
    spec = impairment_of(args, "lab impair")
    lab = target(args)
    used = lab.impair(args.node, network=args.network, delay=args.delay, jitter=args.jitter, loss=args.loss,
                      rate=args.rate)  # fmt: skip
    print(f"impaired {where}: {spec.describe()} ({used})")
    return 0


def cmd_partition(args: argparse.Namespace) -> int:
    if args.a == args.b:
        raise UsageError("a node cannot be partitioned from itself", "name two different nodes")
    target(args).partition(args.a, args.b)
    print(f"partitioned {args.a} from {args.b} (lab heal undoes it)")
    return 0


def cmd_heal(args: argparse.Namespace) -> int:
    lab = target(args)
    healed = lab.heal()
    print(f"healed lab {lab.name}: {healed} partitions and disconnections undone")
    return 0


def cmd_capture(args: argparse.Namespace) -> int:
    done = target(args).capture(args.target, args.output, duration=args.duration, count=args.count)
    print(f"wrote {done.path}: {len(done.packets)} IP packets")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """From this machine to HOST:PORT, or from a client container beside NODE on its network."""
    options = [*(["--json"] if args.json else []), *(["--only", args.only] if args.only else [])]
    options += [*(["--udp-port", str(args.udp_port)] if args.udp_port else []), "--timeout", str(args.timeout)]
    if ":" in args.target:
        from clients.check.cli import main as check  # the same checker the client container runs

        return check([args.protocol, args.target, *options])
    lab = target(args)
    with lab.on(args.target):
        container = lab.backend.find_container(lab.project, args.target)
    transport = "udp" if args.protocol == "creosote" else "tcp"
    port = (
        args.port or _exposed_port(container.attrs, transport) or _service_port(args.target, args.protocol, transport)
    )
    exposed = {key.split("/")[1] for key in container.attrs["Config"].get("ExposedPorts") or {}}
    if not args.only and args.protocol in ("daytime", "echo") and len(exposed) == 1:
        options += ["--only", f"{exposed.pop()}.*"]  # a program that serves one transport is checked on that one
    address = f"{args.target}:{port}" if port else args.target
    networks = sorted(container.attrs["NetworkSettings"]["Networks"] or {})
    if not networks:
        raise UsageError(f"{args.target} is on no network", f"is it cut off? lab heal -t {lab.name}")
    # From a host of its own on the node's network: the checks cross the network, as a client's would.
    ran = lab.run_on(networks[0].removeprefix(f"{lab.project}_"), "python3", "-m", "clients.check", args.protocol,
                     address, *options)  # fmt: skip
    sys.stdout.write(ran.out)
    sys.stderr.write(ran.err)
    return ran.code


def _service_port(node: str, protocol: str, transport: str) -> int | None:
    """A built-in service's port when the node is named after it (as in the default lab): forking is on 9002."""
    spec = registry.SERVICES.get(node)
    if spec is None or spec.protocol != protocol:
        return None
    return next((p.number for p in spec.ports if p.transport == transport), None)


def _exposed_port(attrs: dict[str, Any], transport: str) -> int | None:
    """The one port of ``transport`` a container exposes (a program node's ``ports:``), if exactly one."""
    found = [int(key.split("/")[0]) for key in (attrs["Config"].get("ExposedPorts") or {}) if key.endswith(transport)]
    return found[0] if len(found) == 1 else None


def _imported_when_run(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A verb whose module is imported only when the verb runs: the chaos runner, the exercises and the
    cluster add about 0.1 s to every start, measured, and the other verbs need none of them."""

    def handler(args: argparse.Namespace) -> int:
        verb: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module), name)
        return verb(args)

    return handler


HANDLERS = {
    "up": cmd_up, "down": cmd_down, "ps": cmd_ps, "exec": cmd_exec, "logs": cmd_logs, "impair": cmd_impair,
    "partition": cmd_partition, "heal": cmd_heal, "capture": cmd_capture, "graph": cmd_graph,
    "validate": cmd_validate, "render": cmd_render, "wipe": cmd_wipe, "check": cmd_check,
    "chaos": _imported_when_run("lab.cli_chaos", "cmd_chaos"),
    "cluster": _imported_when_run("lab.cli_cluster", "cmd_cluster"),
    "exercise": _imported_when_run("lab.cli_exercise", "cmd_exercise"),
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; map every expected failure to one line and an exit code."""
    args = parser().parse_args(argv)
    try:
        if getattr(args, "cluster", False):  # every lab verb then talks to the cluster's manager and machines
            from lab import cli_cluster, cluster

            cluster.attach(cli_cluster.cluster_name(args))
            args.swarm = True
        return HANDLERS[args.verb](args)
    except ReadError as exc:  # a topology's or a schedule's problems, one file:line each
        print(exc, file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (TestbedError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except docker.errors.DockerException as exc:
        print(f"error: Docker refused: {str(exc).splitlines()[0]} (see lab ps, or docker info)", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `lab ps | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's recipe: the exit flush must not fail
        return 141
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''} (check the path and permissions)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
