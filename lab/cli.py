"""lab: bring labs up and down, look inside them, impair and capture their links, draw them.

One handler per verb, each returning an exit code; the table at the bottom is
the whole command line. Errors are one line, ``error: <what> (<hint>)``, and a
topology's problems are one line each, ``file:line: field: what; fix`` (exit 2).
A traceback is a bug.

Which lab a verb acts on: the one named (a topology file or a lab name, as the
positional argument or ``-t``), else the only lab that is running, else the
default lab.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import docker.errors

from common.errors import TestbedError
from lab import backend, compose, graph, model, swarm
from lab.loader import LAB_NAME, TopologyError, load

DEFAULT_TOPOLOGY = Path("topology") / "default.yaml"
REPO_ROOT = Path(__file__).resolve().parent.parent

Handler = Callable[[argparse.Namespace], int]

EXAMPLES = """examples:
  lab up                                        the default lab (the same as docker compose up in the repo)
  lab up topology/two-lans.yaml                 two LANs and a router
  lab exec -t two-lans client -- traceroute -n daytime
  lab impair -t two-lans router --delay 80ms --loss 5%
  lab graph topology/two-lans.yaml -o two-lans.svg
  lab down two-lans
  lab up --swarm                                the default lab as a Swarm stack (several machines)
  lab down --swarm

Which lab a verb acts on: the one named (-t FILE|NAME, or the positional
topology), else the only lab running, else the default lab. Every verb has --help.
"""


class UsageError(TestbedError):
    """The command line asks for something that cannot be; ``hint`` says what to write."""

    def __init__(self, what: str, hint: str) -> None:
        super().__init__(f"{what} ({hint})")


def say(text: str) -> None:
    """A progress line, in the style of scripts/setup."""
    print(f"==> {text}", flush=True)


# --------------------------------------------------------------------------- which lab


def topology_path(value: str | None) -> Path:
    """A topology file: the path given, or ``topology/<name>.yaml`` here or in the repository."""
    if value is None:
        value = str(DEFAULT_TOPOLOGY)
    path = Path(value)
    candidates = [path]
    if LAB_NAME.match(value):
        candidates += [Path("topology") / f"{value}.yaml", REPO_ROOT / "topology" / f"{value}.yaml"]
    if not path.is_absolute():
        candidates.append(REPO_ROOT / path)
    return next((c for c in candidates if c.is_file()), path)


def chosen_project(value: str | None) -> str:
    """The Compose project a verb acts on (see the module docstring)."""
    if value is not None:
        path = topology_path(value)
        if path.is_file():
            return load(path).project
        if LAB_NAME.match(value):
            return model.project_name(value)
        raise UsageError(
            f"no topology file or lab named {value!r}", "give a file like topology/two-lans.yaml or a lab name"
        )
    running = backend.running_labs()
    if len(running) == 1:
        return next(iter(running))
    if len(running) > 1:
        names = ", ".join(sorted(running.values()))
        raise UsageError(f"several labs are running: {names}", "choose one with -t NAME")
    return model.project_name(model.DEFAULT_LAB)


def _runtime(module: str) -> ModuleType:
    """``lab.impair`` or ``lab.capture``, imported when a verb needs it so ``lab --help`` never depends on them."""
    try:
        return importlib.import_module(f"lab.{module}")
    except ImportError as exc:
        raise UsageError(
            f"lab.{module} is not available ({exc})", "this verb needs it; check the installation"
        ) from None


# --------------------------------------------------------------------------- lifecycle


def cmd_validate(args: argparse.Namespace) -> int:
    topology = load(topology_path(args.topology))
    print(f"{topology.source}: ok: {_counts(topology)}")
    return 0


def _counts(topology: model.Topology) -> str:
    return f"lab {topology.name}: " + ", ".join(
        _plural(len(items), noun)
        for items, noun in ((topology.nodes, "node"), (topology.routers, "router"), (topology.networks, "network"))
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def cmd_render(args: argparse.Namespace) -> int:
    topology = load(topology_path(args.topology))
    _swarm_only(args, "--profile", "--port-offset")
    if args.swarm:
        label = compose.source_label(topology.source, args.output)
        text = swarm.to_yaml(topology, source_label=label, profiles=args.profile, port_offset=args.port_offset)
        if args.output is None:
            sys.stdout.write(text)
            return 0
        swarm.write(topology, args.output, profiles=args.profile, port_offset=args.port_offset)
    elif args.output is None:
        sys.stdout.write(compose.to_yaml(topology, source_label=compose.source_label(topology.source, None)))
        return 0
    else:
        compose.write(topology, args.output)
    print(f"wrote {args.output}")
    return 0


def _swarm_only(args: argparse.Namespace, *options: str) -> None:
    """Options that only a Swarm stack has; given without ``--swarm``, a usage error."""
    for option in options:
        value = getattr(args, option.lstrip("-").replace("-", "_"), None)
        if value and not args.swarm:
            raise UsageError(f"{option} needs --swarm", f"write lab {args.verb} --swarm {option} ...")


def cmd_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    path = topology_path(args.topology)
    say(f"validating {path}")
    topology = load(path)
    say(f"  {_counts(topology)}")
    _swarm_only(args, "--port-offset")
    if args.swarm:
        return _up_swarm(args, topology, started)
    file = backend.compose_file(topology, root=args.state_dir)
    say(f"rendering {file}")
    compose.write(topology, file)
    backend.up(topology, file, profiles=args.profile, say=say)
    members = backend.active_members(topology, args.profile)
    _apply_impairments(topology, members)
    _run_extra(topology, members)
    say(f"lab {topology.name} is up (project {topology.project}) in {time.monotonic() - started:.1f} s")
    order = [m.name for m in topology.members]
    print(backend.table([r for r in backend.status(topology.project, order=order) if r.role != "routes"]))
    return 0


def _up_swarm(args: argparse.Namespace, topology: model.Topology, started: float) -> int:
    """``lab up --swarm``: the same lab as a stack, one service per node, on every machine of the Swarm."""
    swarm.check(topology)
    backend.require_manager()
    stack = swarm.stack_name(topology)
    if backend.compose_running(stack):
        raise UsageError(
            f"the Compose lab {topology.name} (project {stack}) runs on this engine; its ports and names would clash",
            f"lab down {topology.name} first",
        )
    image = backend.pinned_image()
    file = backend.stack_file(topology, root=args.state_dir)
    say(f"rendering {file} (image {image.removeprefix('sha256:')[:12]}, pinned: no machine pulls it)")
    swarm.write(topology, file, image=image, profiles=args.profile, port_offset=args.port_offset)
    for node in swarm.left_out(topology, args.profile):
        say(
            f"  {node.name} is a one-shot client, not a service: "
            f"docker run --rm -i --network {stack}_{node.networks[0]} {backend.NODE_IMAGE} python3 -m clients.tour"
        )
    members = swarm.members(topology, args.profile)
    backend.stack_up(stack, file, [m.name for m in members], say=say)
    _apply_impairments(topology, members)
    _run_extra(topology, members)
    say(f"lab {topology.name} is up on Swarm (stack {stack}) in {time.monotonic() - started:.1f} s")
    print(backend.table(backend.stack_status(stack, order=[m.name for m in members])))
    return 0


def _apply_impairments(topology: model.Topology, members: Sequence[model.Node]) -> None:
    wanted: list[tuple[model.Node, str | None, model.Impairment | None]]
    wanted = [(m, None, m.impair) for m in members if m.impair is not None]
    wanted += [(m, a.network, a.impair) for m in members for a in m.attachments if a.impair is not None]
    if not wanted:
        return
    impair = _runtime("impair")
    for member, network, spec in wanted:
        assert spec is not None
        ref = backend.node_ref(topology.project, member.name, network=network)
        used = impair.apply(ref, spec)
        where = f" on {network} ({ref.interface})" if network else ""
        say(f"impairing {member.name}{where}: {spec.describe()} ({used})")


def _run_extra(topology: model.Topology, members: Sequence[model.Node]) -> None:
    for member in members:
        for argv in member.extra:
            say(f"{member.name}: {' '.join(argv)}")
            code, output = backend.run_in(topology.project, member.name, argv)
            for line in output.rstrip().splitlines():
                print(f"    {line}")
            if code != 0:
                raise backend.BackendError(f"{member.name}: {argv[0]} exited {code}", "see its output above")


def cmd_down(args: argparse.Namespace) -> int:
    if args.swarm:
        return _down_swarm(args)
    path = topology_path(args.topology) if args.topology else None
    file: Path | None
    if path is not None and path.is_file():
        topology = load(path)
        project, file = topology.project, backend.compose_file(topology, root=args.state_dir)
        if not file.exists():
            compose.write(topology, file)
    else:
        project = chosen_project(args.topology)
        file = backend.config_file(project)
    if not backend.compose_running(project) and backend.on_swarm(project):
        return _down_swarm(args)  # the lab was started with lab up --swarm
    say(f"stopping lab {model.lab_name(project)} (project {project})")
    removed = backend.down(project, file, volumes=args.volumes, say=lambda line: print(f"    {line}"))
    kept = [] if args.volumes else backend.kept_volumes(project)
    for volume in kept:
        print(f"    kept volume {volume} (lab down --volumes removes it)")
    say(f"lab {model.lab_name(project)} is down" + ("" if file or removed else " (nothing was running)"))
    return 0


def _down_swarm(args: argparse.Namespace) -> int:
    """``lab down --swarm``: ``docker stack rm``, then wait until its containers and networks are gone."""
    started = time.monotonic()
    stack = chosen_project(args.topology)
    backend.require_manager()
    say(f"removing stack {stack} (lab {model.lab_name(stack)})")
    removed = backend.stack_down(stack, volumes=args.volumes, say=lambda line: print(f"    {line}"))
    if not args.volumes:
        for volume in backend.engine().volumes.list(filters={"label": f"{backend.STACK_LABEL}={stack}"}):
            print(f"    kept volume {volume.name} on this machine (lab down --swarm --volumes removes it)")
    elapsed = f" in {time.monotonic() - started:.1f} s" if removed else " (nothing was running)"
    say(f"lab {model.lab_name(stack)} is down{elapsed}")
    return 0


def cmd_ps(args: argparse.Namespace) -> int:
    project = chosen_project(args.topology)
    if args.swarm or (not backend.compose_running(project) and backend.on_swarm(project)):
        backend.require_manager()
        rows = backend.stack_status(project)
        if not rows:
            print(f"lab {model.lab_name(project)} is not running on Swarm (start it with lab up --swarm)")
            return 0
        print(f"lab {model.lab_name(project)} (stack {project})")
        print(backend.table(rows))
        return 0
    rows = backend.status(project)
    if not rows:
        print(f"lab {model.lab_name(project)} is not running (start it with lab up)")
        return 0
    print(f"lab {model.lab_name(project)} (project {project})")
    print(backend.table(rows))
    return 0


def cmd_wipe(args: argparse.Namespace) -> int:
    removed = backend.wipe(args.lab, say=lambda line: print(line))
    if not removed:
        print("nothing labelled " + (f"{model.LAB_LABEL}={args.lab}" if args.lab else model.LAB_LABEL) + " to remove")
    return 0


# --------------------------------------------------------------------------- inside a lab


def cmd_exec(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UsageError("no command to run", "write lab exec NODE -- COMMAND ...")
    project = chosen_project(args.topology)
    container = backend.find_container(backend.engine(), project, args.node)
    return backend.exec_in(str(container.name), command, user=args.user)


def cmd_logs(args: argparse.Namespace) -> int:
    project = chosen_project(args.topology)
    container = backend.find_container(backend.engine(), project, args.node)
    return backend.logs(str(container.name), follow=args.follow, tail=args.tail)


def cmd_impair(args: argparse.Namespace) -> int:
    project = chosen_project(args.topology)
    impair = _runtime("impair")
    ref = backend.node_ref(project, args.node, network=args.network)
    where = f"{args.node}" + (f" on {args.network} ({ref.interface})" if args.network else "")
    if args.clear:
        impair.clear(ref)
        print(f"cleared impairments of {where}")
        return 0
    if all(v is None for v in (args.delay, args.jitter, args.loss, args.rate)):
        raise UsageError("nothing to impair", "give --delay, --jitter, --loss or --rate, or --clear")
    try:
        spec = impair.parse_impairment(args.delay, args.jitter, args.loss, args.rate)
    except ValueError as exc:
        raise UsageError(str(exc), "see lab impair --help") from None
    used = impair.apply(ref, spec)
    print(f"impaired {where} ({used})")
    return 0


def cmd_partition(args: argparse.Namespace) -> int:
    project = chosen_project(args.topology)
    if args.a == args.b:
        raise UsageError("a node cannot be partitioned from itself", "name two different nodes")
    impair = _runtime("impair")
    impair.partition(backend.node_ref(project, args.a), backend.node_ref(project, args.b))
    print(f"partitioned {args.a} from {args.b} (lab heal undoes it)")
    return 0


def cmd_heal(args: argparse.Namespace) -> int:
    project = chosen_project(args.topology)
    healed = _runtime("impair").heal(project)
    print(f"healed lab {model.lab_name(project)}: {healed} partitions and disconnections undone")
    return 0


def cmd_capture(args: argparse.Namespace) -> int:
    project = chosen_project(args.topology)
    capture = _runtime("capture")
    target: model.NodeRef | model.NetworkRef
    try:
        target = backend.node_ref(project, args.target)
    except backend.BackendError:
        if args.target not in backend.lab_networks(project):
            nodes = ", ".join(r.node for r in backend.status(project) if r.role != "routes")
            networks = ", ".join(backend.lab_networks(project))
            raise UsageError(f"no node or network {args.target!r}", f"nodes: {nodes}; networks: {networks}") from None
        target = backend.network_ref(project, args.target)
    path = capture.capture(target, args.output, duration=args.duration, count=args.count)
    print(f"wrote {path}")
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    topology = load(topology_path(args.topology))
    output = args.output or Path(f"{topology.name}.svg")
    graph.write(topology, output)
    print(f"wrote {output}")
    return 0


# --------------------------------------------------------------------------- the table


def _positive(kind: type[float] | type[int]) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be more than 0")
        return value

    return parse


def _lab_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-t", "--topology", metavar="LAB", help="topology file or lab name (default: the only running lab, or default)"
    )


def _swarm_options(parser: argparse.ArgumentParser, *, offset: bool = False) -> None:
    parser.add_argument(
        "--swarm", action="store_true", help="a Docker Swarm stack across machines, not a Compose project (README)"
    )
    if offset:
        parser.add_argument(
            "--port-offset",
            type=int,
            default=0,
            metavar="N",
            help="with --swarm: publish every host port at PORT+N (Swarm binds every interface, not 127.0.0.1)",
        )


def _verbs(sub: Any) -> None:
    """The command line, one verb at a time."""
    topo = "topology file or lab name (default: topology/default.yaml)"

    p = sub.add_parser("up", help="validate, render and start a lab; wait until every node is healthy")
    p.add_argument("topology", nargs="?", help=topo)
    p.add_argument("--profile", action="append", default=[], help="also start the nodes of this profile (repeatable)")
    _swarm_options(p, offset=True)
    p.set_defaults(handler=cmd_up)

    p = sub.add_parser("down", help="stop a lab and remove its containers and networks")
    p.add_argument("topology", nargs="?", help="topology file or lab name (default: the only running lab, or default)")
    p.add_argument("-v", "--volumes", action="store_true", help="remove its volumes (the creosote logs) too")
    _swarm_options(p)
    p.set_defaults(handler=cmd_down)

    p = sub.add_parser("ps", help="list a lab's containers: state, addresses, published ports")
    _lab_option(p)
    _swarm_options(p)
    p.set_defaults(handler=cmd_ps)

    p = sub.add_parser("exec", help="run a command inside a node: lab exec NODE -- COMMAND ...")
    _lab_option(p)
    p.add_argument("--user", help="run as this user (default: the container's, node)")
    p.add_argument("node", help="node name (its hostname)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    p.set_defaults(handler=cmd_exec)

    p = sub.add_parser("logs", help="show a node's log (its event lines)")
    _lab_option(p)
    p.add_argument("node", help="node name")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("--tail", default="all", help="only the last N lines (default: all)")
    p.set_defaults(handler=cmd_logs)

    p = sub.add_parser("impair", help="add delay, jitter, loss or a rate limit to a node's links (or --clear)")
    _lab_option(p)
    p.add_argument("node", help="node name")
    p.add_argument("--network", help="only the link to this network (default: every link of the node)")
    p.add_argument("--delay", help="added one-way delay, like 80ms or 1s")
    p.add_argument("--jitter", help="delay variation, like 10ms (needs --delay)")
    p.add_argument("--loss", help="packets dropped, like 5%%")
    p.add_argument("--rate", help="bandwidth limit, like 1mbit or 512kbit")
    p.add_argument("--clear", action="store_true", help="remove the node's impairments")
    p.set_defaults(handler=cmd_impair)

    p = sub.add_parser("partition", help="cut all traffic between two nodes (lab heal restores it)")
    _lab_option(p)
    p.add_argument("a", help="node name")
    p.add_argument("b", help="node name")
    p.set_defaults(handler=cmd_partition)

    p = sub.add_parser(
        "heal", help="undo every partition and network disconnection of a lab (impairments stay: impair --clear)"
    )
    _lab_option(p)
    p.set_defaults(handler=cmd_heal)

    p = sub.add_parser("capture", help="capture packets of a node or a whole network into a pcap file")
    _lab_option(p)
    p.add_argument("target", metavar="NODE|NETWORK", help="a node name or a network name")
    p.add_argument("-o", "--output", type=Path, required=True, help="pcap file to write, like trace.pcap")
    limit = p.add_mutually_exclusive_group()
    limit.add_argument("--duration", type=_positive(float), help="stop after S seconds")
    limit.add_argument("--count", type=_positive(int), help="stop after N packets")
    p.set_defaults(handler=cmd_capture)

    p = sub.add_parser("graph", help="draw a lab: .svg (built in), .dot, or .png (needs Graphviz)")
    p.add_argument("topology", nargs="?", help=topo)
    p.add_argument("-o", "--output", type=Path, help="picture to write (default: <lab>.svg)")
    p.set_defaults(handler=cmd_graph)

    p = sub.add_parser("validate", help="check a topology file; one line per problem, exit 2 when any")
    p.add_argument("topology", help="topology file or lab name")
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("render", help="write a topology's Compose file (or with --swarm its stack file)")
    p.add_argument("topology", help="topology file or lab name")
    p.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    p.add_argument("--profile", action="append", default=[], help="with --swarm: include this profile's nodes")
    _swarm_options(p, offset=True)
    p.set_defaults(handler=cmd_render)

    p = sub.add_parser("wipe", help="remove every container, network and volume labelled testbed.lab")
    p.add_argument("--lab", help="only this lab's (its name, like two-lans)")
    p.set_defaults(handler=cmd_wipe)


def parser() -> argparse.ArgumentParser:
    """The whole ``lab`` command line."""
    root = argparse.ArgumentParser(
        prog="lab",
        description="Bring socket-server labs up and down, look inside them, impair their links, draw them.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where generated Compose files go (default: $LAB_STATE_DIR or .lab)",
    )
    _verbs(root.add_subparsers(dest="verb", required=True, metavar="VERB"))
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; map every expected failure to one line and an exit code."""
    args = parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
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
