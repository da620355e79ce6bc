"""The whole ``lab`` command line as one argparse table (the handlers are in ``lab.cli``).

The same flag means the same thing in every verb: ``-t/--lab`` names the lab a
verb acts on, ``-o/--output`` the file it writes, ``--swarm`` a Swarm stack.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from common.argtypes import non_negative_int, port_number, positive_float, positive_int
from common.errors import TestbedError
from lab import machines, model
from protocols import registry

EXAMPLES = """examples:
  lab up                                        the default lab (the same as docker compose up in the repo)
  lab up topology/two-lans.yaml                 two LANs and a router
  lab exec -t two-lans client -- traceroute -n daytime
  lab impair -t two-lans router --delay 80ms --loss 5%
  lab graph topology/two-lans.yaml -o two-lans.svg
  lab down two-lans
  lab up --swarm                                the default lab as a Swarm stack (several machines)
  lab down --swarm
  lab chaos run examples/chaos/default.yaml -t default --seed 7
  lab cluster up && lab up --swarm --cluster    three machines on this one, the lab spread over them

Which lab a verb acts on: the one named (-t NAME|FILE, or the topology
argument of up, down, graph, validate and render), else the only lab
running, else the default lab. Every verb has --help.
"""


class UsageError(TestbedError):
    """The command line asks for something that cannot be; ``hint`` says what to write."""

    def __init__(self, what: str, hint: str) -> None:
        super().__init__(f"{what} ({hint})")


def impairment_of(args: argparse.Namespace, verb: str) -> model.Impairment:
    """The impairment the flags ask for (``--delay --jitter --loss --rate``), checked before any Docker call.

    ``verb`` names the command in the hint (``lab impair``, ``lab cluster impair``).
    """
    if all(v is None for v in (args.delay, args.jitter, args.loss, args.rate)):
        raise UsageError("nothing to impair", "give --delay, --jitter, --loss or --rate, or --clear")
    try:
        spec = model.Impairment.parse(delay=args.delay, jitter=args.jitter, loss=args.loss, rate=args.rate)
    except ValueError as exc:
        raise UsageError(str(exc), f"see {verb} --help") from None
    if spec.empty:  # "--delay 0" used to print "impaired" and change nothing
        raise UsageError("every value given is 0: nothing to impair", "give a value above 0, or --clear to remove")
    return spec


def _impairment_flags(parser: argparse.ArgumentParser, cleared: str) -> None:
    """The flags ``impairment_of`` reads, the same in every verb that impairs something."""
    parser.add_argument("--delay", help="added one-way delay, like 80ms, 1s or 250us")
    parser.add_argument("--jitter", help="delay variation, like 10ms (needs --delay)")
    parser.add_argument("--loss", help="packets dropped, like 5%%")
    parser.add_argument("--rate", help="bandwidth limit in bits per second, like 1mbit or 512kbit")
    parser.add_argument("--clear", action="store_true", help=f"remove {cleared}")


def _lab(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-t", "--lab", "--topology", dest="lab", metavar="LAB",
        help="lab name or topology file (default: the only running lab, or default)",
    )  # fmt: skip


def _topology(parser: argparse.ArgumentParser, *, optional: bool = True) -> None:
    kwargs: dict[str, Any] = {"nargs": "?"} if optional else {}
    parser.add_argument("topology", help="topology file or lab name (default: topology/default.yaml)", **kwargs)


def _swarm(parser: argparse.ArgumentParser, *, offset: bool = False) -> None:
    parser.add_argument("--swarm", action="store_true", help="a Docker Swarm stack across machines (docs/swarm.md)")
    _cluster_flags(parser)
    if offset:
        parser.add_argument(
            "--port-offset", type=non_negative_int, default=0, metavar="N",
            help="with --swarm: publish every host port at PORT+N (Swarm binds every interface, not 127.0.0.1)",
        )  # fmt: skip


def _verbs(sub: Any) -> None:
    """The command line, one verb at a time."""
    p = sub.add_parser("up", help="validate, render and start a lab; wait until every node serves")
    _topology(p)
    p.add_argument("--profile", action="append", default=[], help="also start the nodes of this profile (repeatable)")
    _swarm(p, offset=True)

    p = sub.add_parser("down", help="stop a lab and remove its containers and networks")
    _topology(p)
    _lab(p)
    p.add_argument("-v", "--volumes", action="store_true", help="remove its volumes (the creosote logs) too")
    _swarm(p)

    p = sub.add_parser("ps", help="list a lab's nodes: state, addresses, published ports")
    _lab(p)
    _swarm(p)

    p = sub.add_parser("exec", help="run a command inside a node: lab exec NODE -- COMMAND ...")
    _lab(p)
    _cluster_flags(p)
    p.add_argument("--user", help="run as this user (default: the container's, node)")
    p.add_argument("node", help="node name (its hostname)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")

    p = sub.add_parser("logs", help="show a node's log (its event lines)")
    _lab(p)
    _cluster_flags(p)
    p.add_argument("node", help="node name")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("--tail", default="all", help="only the last N lines (default: all)")

    p = sub.add_parser("impair", help="add delay, jitter, loss or a rate limit to a node's links (or --clear)")
    _lab(p)
    _cluster_flags(p)
    p.add_argument("node", help="node name")
    p.add_argument("--network", help="only the link to this network (default: every link of the node)")
    _impairment_flags(p, "the node's impairments")

    p = sub.add_parser("partition", help="cut all traffic between two nodes (lab heal restores it)")
    _lab(p)
    _cluster_flags(p)
    p.add_argument("a", help="node name")
    p.add_argument("b", help="node name")

    p = sub.add_parser(
        "heal", help="undo every partition and disconnection of a lab (impairments stay: impair --clear)"
    )
    _lab(p)
    _cluster_flags(p)

    p = sub.add_parser("capture", help="capture packets of a node or a whole network into a pcap file")
    _lab(p)
    _cluster_flags(p)
    p.add_argument("target", metavar="NODE|NETWORK", help="a node name or a network name")
    p.add_argument("-o", "--output", type=Path, required=True, help="pcap file to write, like trace.pcap")
    limit = p.add_mutually_exclusive_group()
    limit.add_argument("--duration", type=positive_float, help="stop after S seconds")
    limit.add_argument("--count", type=positive_int, help="stop after N packets")

    p = sub.add_parser("check", help="check a server against its protocol: lab check echo NODE -t LAB, or HOST:PORT")
    _lab(p)
    _cluster_flags(p)
    p.add_argument("protocol", choices=registry.PROTOCOLS, help="the protocol the server should speak")
    p.add_argument("target", metavar="NODE|HOST:PORT", help="a node of a running lab, or an address from this machine")
    p.add_argument("--port", type=port_number, help="with NODE: its port (default: the one it exposes, or the usual)")
    p.add_argument("--udp-port", type=port_number, help="where it speaks UDP, when not on the same port")
    p.add_argument("--only", metavar="CHECK,...", help="run only these checks (names as printed)")
    p.add_argument("--timeout", type=positive_float, default=10.0, help="seconds for one exchange (default 10)")
    p.add_argument("--json", action="store_true", help="print a machine-readable report")

    p = sub.add_parser(
        "graph", help="draw a lab: .svg, .png, .dot/.gv or .mmd/.mermaid (Mermaid), by the output's suffix"
    )
    _topology(p)
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="picture to write: .svg, .png, .dot, .gv, .mmd or .mermaid (default: <lab>.svg)",
    )

    p = sub.add_parser("validate", help="check a topology file; one line per problem, exit 2 when any")
    _topology(p, optional=False)

    p = sub.add_parser("render", help="write a topology's Compose file (or with --swarm its stack file)")
    _topology(p, optional=False)
    p.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    p.add_argument("--profile", action="append", default=[], help="with --swarm: include this profile's nodes")
    p.add_argument(
        "--engine-override",
        action="store_true",
        help="write only the override for Docker 25+ health checks (start_interval), to use with -f on top of "
        "the lab's Compose file",
    )
    _swarm(p, offset=True)

    _chaos(sub)
    _cluster(sub)
    _exercise(sub)

    p = sub.add_parser("wipe", help="remove every container, network and volume labelled testbed.lab (or one lab's)")
    _lab(p)


CHAOS_EXAMPLES = """examples:
  lab chaos plan examples/chaos/default.yaml --seed 7      the steps seed 7 gives, one JSON line each
  lab chaos run examples/chaos/default.yaml -t default --seed 7
  lab cluster up && lab up --swarm --cluster    three machines on this one, the lab spread over them
  lab chaos run short.yaml --workload chat,echo=my-echo:7007 --history run.jsonl
  lab chaos check run.jsonl                                check and draw a saved history again

The schedule format and what each checker owes: docs/chaos.md.
"""


def _chaos(sub: Any) -> None:
    """``lab chaos``: its own verbs, like ``docker compose``'s under ``docker``."""
    chaos = sub.add_parser("chaos", help="fault schedules: plan, run with workloads and checkers, check a history",
                           epilog=CHAOS_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    verbs = chaos.add_subparsers(dest="chaos_verb", required=True, metavar="VERB")
    seed = {"type": non_negative_int, "metavar": "N", "help": "the seed random steps are drawn with (default: a "
            "new one, printed)"}  # fmt: skip
    p = verbs.add_parser("plan", help="print a schedule's steps for a seed, one JSON line each")
    p.add_argument("file", type=Path, help="a schedule file (YAML)")
    p.add_argument("--seed", **seed)

    p = verbs.add_parser("run", help="run a schedule on a running lab with workloads; check what the clients saw")
    p.add_argument("file", type=Path, help="a schedule file (YAML)")
    _lab(p)
    p.add_argument("--seed", **seed)
    p.add_argument(
        "--workload",
        metavar="NAME[=NODE[:PORT]],...",
        help="chat, creosote, echo, threaded, or none (default: each whose server is a node of the lab)",
    )
    p.add_argument(
        "--history", type=Path, metavar="FILE", help="the history, JSON lines (default: .lab/<lab>/chaos-<seed>.jsonl)"
    )
    p.add_argument("--timeline", type=Path, metavar="FILE", help="the picture, SVG (default: the history's, .svg)")

    p = verbs.add_parser("check", help="check a saved history again and draw its timeline")
    p.add_argument("history_file", type=Path, metavar="HISTORY", help="a history written by lab chaos run")
    p.add_argument("--timeline", type=Path, metavar="FILE", help="the picture, SVG (default: the history's, .svg)")


CLUSTER_EXAMPLES = """examples:
  lab cluster up                          three machines h1 h2 h3 (h1 manages the Swarm)
  lab up --swarm --cluster                the default lab spread over them
  lab ps --cluster                        each node and the machine it runs on
  lab cluster exec h2 -- docker run --rm --network testbed_lab testbed/node:latest python3 -m clients.tour
  lab cluster impair h2 --delay 40ms      slow h2's underlay link (its VXLAN traffic too)
  lab cluster partition h1 h3             cut h1 from h3 (lab cluster heal restores it)
  lab cluster stop h3                     stop a machine; see Swarm move its tasks, timed
  lab cluster start h3
  lab down --swarm --cluster
  lab cluster down                        no container, network, volume or cgroup left

Real machines: docs/cluster.md.
"""


def _cluster_flags(parser: argparse.ArgumentParser) -> None:
    """``--cluster``: the lab verb acts on the simulated cluster (its manager's engine, its machines)."""
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="on the simulated cluster of lab cluster up (implies --swarm; docs/cluster.md)",
    )
    parser.add_argument("--cluster-name", default=None, metavar="NAME",
                        help=f"which cluster (default: $LAB_CLUSTER or {machines.DEFAULT_CLUSTER})")  # fmt: skip


def _cluster(sub: Any) -> None:
    """The ``lab cluster`` verbs."""
    top = sub.add_parser("cluster", help="several machines on this one: each a container with its own engine",
                         epilog=CLUSTER_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    verbs = top.add_subparsers(dest="cluster_verb", required=True, metavar="VERB")

    def verb(name: str, text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = verbs.add_parser(name, help=text, description=text)
        p.add_argument("--name", dest="cluster_name", metavar="NAME",
                       help=f"the cluster (default: $LAB_CLUSTER or {machines.DEFAULT_CLUSTER})")  # fmt: skip
        return p

    p = verb("up", "start the machines, load the node image into each, form a Swarm")
    p.add_argument("--hosts", type=positive_int, default=3, help="how many machines (default 3)")
    p.add_argument("--managers", type=positive_int, default=1, help="how many of them manage the Swarm (default 1)")
    verb("ls", "list the machines: state, underlay address, engine, Swarm role")
    p = verb("exec", "run a command on a machine: lab cluster exec h1 -- docker ps")
    p.add_argument("machine", help="h1, h2, ...")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    p = verb("impair", "delay, drop or rate-limit what a machine sends on the underlay (or --clear)")
    p.add_argument("machine", help="h1, h2, ...")
    _impairment_flags(p, "the machine's impairment")
    p = verb("partition", "drop all traffic between two machines (lab cluster heal restores it)")
    p.add_argument("a", help="h1, h2, ...")
    p.add_argument("b", help="h1, h2, ...")
    verb("heal", "undo every partition between the machines")
    p = verb("stop", "stop a machine; print which tasks Swarm ran elsewhere and how long that took")
    p.add_argument("machine", help="h1, h2, ...")
    p = verb("start", "start a stopped machine again; wait until Swarm counts it ready")
    p.add_argument("machine", help="h1, h2, ...")
    verb("down", "remove the machines, their volumes, the underlay and their cgroups")


EXERCISE_EXAMPLES = """examples:
  lab exercise list                                        every exercise, one line each
  lab exercise show udp-no-server                          the question, and what a solution must do
  lab exercise run partial-reads                           the lab, the reference steps, what was seen and why
  lab exercise check two-clients --solution my_server.py   your program in place of the reference

How exercises are written and checked: docs/exercises.md.
"""


def _exercise(sub: Any) -> None:
    """``lab exercise``: the course's exercises as labs."""
    exercise = sub.add_parser("exercise", help="the course's exercises: list, show, run one, check your solution",
                              epilog=EXERCISE_EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    verbs = exercise.add_subparsers(dest="exercise_verb", required=True, metavar="VERB")
    verbs.add_parser("list", help="every exercise: its name, then what it shows")
    p = verbs.add_parser("show", help="an exercise's README and what a solution must do")
    p.add_argument("name", metavar="NAME", help="an exercise (lab exercise list)")
    lab_name = {"dest": "name_lab", "metavar": "LAB", "help": "the lab's name (default: the exercise's, ex-NAME)"}
    p = verbs.add_parser("run", help="bring the lab up, run the reference steps, show what was seen and why")
    p.add_argument("name", metavar="NAME", help="an exercise (lab exercise list)")
    p.add_argument("--lab-name", **lab_name)
    p = verbs.add_parser("check", help="run your program in place of the reference; exit 0 when every check passed")
    p.add_argument("name", metavar="NAME", help="an exercise with a solution (lab exercise show NAME says what)")
    p.add_argument("--solution", type=Path, required=True, metavar="FILE", help="your program (one Python file)")
    p.add_argument("--lab-name", **lab_name)


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
