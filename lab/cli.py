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
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import docker.errors

from common.errors import TestbedError
from lab import backends, capture, compose, engine, graph, impair, model
from lab.backends import Backend
from lab.cli_table import UsageError, parser
from lab.loader import LAB_NAME, TopologyError, load

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
    if LAB_NAME.match(value):
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
        if LAB_NAME.match(value):
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


def target(args: argparse.Namespace) -> tuple[str, Backend]:
    """The project a runtime verb acts on, and the backend that runs it."""
    project = chosen_project(named_lab(args))
    return project, backends.choose(project, swarm=getattr(args, "swarm", False))


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
    backend = backends.choose(swarm=args.swarm)
    files = backends.state_dir(args.state_dir)
    members = backend.up(topology, profiles=args.profile, files=files, say=say, port_offset=args.port_offset)
    _apply_impairments(backend, topology, members)
    _run_extra(backend, topology, members)
    say(f"lab {topology.name} is up {backend.where(topology.project)} in {time.monotonic() - started:.1f} s")
    rows = backend.status(topology.project, order=[m.name for m in topology.members])
    print(backends.table([r for r in rows if r.role != "routes"]))
    return 0


def _apply_impairments(backend: Backend, topology: model.Topology, members: Sequence[model.Node]) -> None:
    wanted: list[tuple[model.Node, str | None, model.Impairment | None]]
    wanted = [(m, None, m.impair) for m in members if m.impair is not None]
    wanted += [(m, a.network, a.impair) for m in members for a in m.attachments if a.impair is not None]
    for member, network, spec in wanted:
        assert spec is not None
        ref = backend.node_ref(topology.project, member.name, network=network)
        used = impair.apply(ref, spec)
        where = f" on {network} ({ref.interface})" if network else ""
        say(f"impairing {member.name}{where}: {spec.describe()} ({used})")


def _run_extra(backend: Backend, topology: model.Topology, members: Sequence[model.Node]) -> None:
    for member in members:
        for argv in member.extra:
            say(f"{member.name}: {' '.join(argv)}")
            ran = backend.run_in(topology.project, member.name, argv)
            for line in ran.output.rstrip().splitlines():
                indented(line)
            if ran.code != 0:
                raise TestbedError(f"{member.name}: {argv[0]} exited {ran.code} (see its output above)")


def cmd_down(args: argparse.Namespace) -> int:
    started = time.monotonic()
    named = named_lab(args)
    path = topology_path(named) if named else None
    topology = load(path) if path is not None and path.is_file() else None
    project = topology.project if topology is not None else chosen_project(named)
    backend = backends.choose(project, swarm=args.swarm)
    name = model.lab_name(project)
    say(f"stopping lab {name} {backend.where(project)}")
    files = backends.state_dir(args.state_dir)
    removed = backend.down(project, topology=topology, files=files, volumes=args.volumes, say=indented)
    for volume in [] if args.volumes else backend.kept_volumes(project):
        indented(f"kept volume {volume} (lab down --volumes removes it)")
    say(f"lab {name} is down in {time.monotonic() - started:.1f} s" if removed else f"lab {name} was not running")
    return 0


def cmd_ps(args: argparse.Namespace) -> int:
    project, backend = target(args)
    rows = backend.status(project)
    if not rows:
        print(f"lab {model.lab_name(project)} is not running (start it with lab up)")
        return 0
    print(f"lab {model.lab_name(project)} {backend.where(project)}")
    print(backends.table(rows))
    return 0


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
    project, backend = target(args)
    container = backend.find_container(project, args.node)
    tty = ["-t"] if sys.stdin.isatty() and sys.stdout.isatty() else []
    who = ["--user", args.user] if args.user else []
    return _docker(["exec", "-i", *tty, *who, str(container.name), *command])


def cmd_logs(args: argparse.Namespace) -> int:
    project, backend = target(args)
    container = backend.find_container(project, args.node)
    return _docker(["logs", "--tail", args.tail, *(["--follow"] if args.follow else []), str(container.name)])


def _docker(args: Sequence[str]) -> int:
    """``docker ARGS`` with the terminal passed through; its exit code."""
    return subprocess.run(["docker", *args], check=False).returncode


def cmd_impair(args: argparse.Namespace) -> int:
    project, backend = target(args)
    ref = backend.node_ref(project, args.node, network=args.network)
    where = f"{args.node}" + (f" on {args.network} ({ref.interface})" if args.network else "")
    if args.clear:
        impair.clear(ref)
        print(f"cleared impairments of {where}")
        return 0
    if all(v is None for v in (args.delay, args.jitter, args.loss, args.rate)):
        raise UsageError("nothing to impair", "give --delay, --jitter, --loss or --rate, or --clear")
    try:
        spec = model.Impairment.parse(delay=args.delay, jitter=args.jitter, loss=args.loss, rate=args.rate)
    except ValueError as exc:
        raise UsageError(str(exc), "see lab impair --help") from None
    used = impair.apply(ref, spec)
    print(f"impaired {where}: {spec.describe()} ({used})")
    return 0


def cmd_partition(args: argparse.Namespace) -> int:
    if args.a == args.b:
        raise UsageError("a node cannot be partitioned from itself", "name two different nodes")
    project, backend = target(args)
    impair.partition(backend.node_ref(project, args.a), backend.node_ref(project, args.b))
    print(f"partitioned {args.a} from {args.b} (lab heal undoes it)")
    return 0


def cmd_heal(args: argparse.Namespace) -> int:
    project, _backend = target(args)
    healed = impair.heal(project)
    print(f"healed lab {model.lab_name(project)}: {healed} partitions and disconnections undone")
    return 0


def cmd_capture(args: argparse.Namespace) -> int:
    project, backend = target(args)
    where: model.NodeRef | model.NetworkRef
    if args.target in backend.networks(project):
        where = backend.network_ref(project, args.target)
    else:
        where = backend.node_ref(project, args.target)
    path = capture.capture(where, args.output, duration=args.duration, count=args.count)
    print(f"wrote {path}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """From this machine to HOST:PORT, or from a client container beside NODE on its network."""
    options = [*(["--json"] if args.json else []), *(["--only", args.only] if args.only else [])]
    options += [*(["--udp-port", str(args.udp_port)] if args.udp_port else []), "--timeout", str(args.timeout)]
    if ":" in args.target:
        from clients.check import main as check  # the same checker the client container runs

        return check([args.protocol, args.target, *options])
    project, backend = target(args)
    container = backend.find_container(project, args.target)
    networks = sorted(container.attrs["NetworkSettings"]["Networks"] or {})
    if not networks:
        raise UsageError(
            f"{args.target} is on no network", f"is it disconnected? lab heal -t {model.lab_name(project)}"
        )
    port = args.port or _exposed_port(container.attrs, "udp" if args.protocol == "creosote" else "tcp")
    address = f"{args.target}:{port}" if port else args.target
    argv = ["python3", "-m", "clients.check", args.protocol, address, *options]
    ran = engine.run_client(networks[0], argv, labels={model.LAB_LABEL: model.lab_name(project)})
    sys.stdout.write(ran.out)
    sys.stderr.write(ran.err)
    return ran.code


def _exposed_port(attrs: dict[str, Any], transport: str) -> int | None:
    """The one port of ``transport`` a container exposes (a program node's ``ports:``), if exactly one."""
    found = [int(key.split("/")[0]) for key in (attrs["Config"].get("ExposedPorts") or {}) if key.endswith(transport)]
    return found[0] if len(found) == 1 else None


HANDLERS = {
    "up": cmd_up, "down": cmd_down, "ps": cmd_ps, "exec": cmd_exec, "logs": cmd_logs, "impair": cmd_impair,
    "partition": cmd_partition, "heal": cmd_heal, "capture": cmd_capture, "graph": cmd_graph,
    "validate": cmd_validate, "render": cmd_render, "wipe": cmd_wipe, "check": cmd_check,
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; map every expected failure to one line and an exit code."""
    args = parser().parse_args(argv)
    try:
        return HANDLERS[args.verb](args)
    except TopologyError as exc:
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
