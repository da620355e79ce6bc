"""The command line of ``python -m bench`` (``scripts/bench``): the parser, its vocabulary and defaults.

Parsing yields an ``Options``: every default filled in (``--quick`` picks the
smaller ones), every name checked, before anything talks to Docker. No Docker
here, so ``--help`` and argument errors need no engine.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from protocols.registry import SERVICES

ROOT = Path(__file__).resolve().parent.parent  # the repository: scripts/, results/ and the images' sources

DESCRIPTION = """\
Benchmark the servers side by side with their peers, across a Docker network.

Every server runs in its own container and every load generator in a client
container on one labelled network (lab.testing's ``make_lab``); runs are
interleaved (each server beside its peer, order rotated every round) and the
medians of the rounds are reported:

  upper     threaded, iterative, forking, selectors, asyncio and the stdlib
            ThreadingTCPServer peer: requests/s, p50/p99 at 1-1,000 connections,
            64 B and 1 KiB lines; Redis PING calibrates the load generator;
  udp       creosote and rsyslog: the highest rate with < 0.1 % loss (a ladder
            of rates, each trial --udp-duration seconds), 100 B and 1 KB, each
            sink doing the same work as the other: parsed (syslog fields as
            JSON lines) and raw (each datagram as a line); the compiled
            sendmmsg sender offers the load;
  chat      the chat room and Redis pub/sub: deliveries/s, p95 at 10-1,000 clients;
  lab       image sizes (and scripts/bench-lab's JSON when it exists).

CPU time of the servers and of the load generators over each measured window is
read from their cgroups; every row names its generator and shows its CPU, and a
row whose generator was saturated (or short of the rate asked) is marked so.
Writes results/bench.json, results/bench.md and results/bench.svg, and prints
the Markdown table.
"""

SECTIONS = ("upper", "udp", "chat", "lab")  # the order they run in
UDP_WORK = ("parsed", "raw")  # what the sinks do with each datagram (bench.sections.udp)
UDP_GENERATOR_NAMES = ("sendmmsg", "python")  # bench.generators.UDP_GENERATORS
CHAT_GENERATOR_NAMES = ("epoll", "python")  # bench.generators.CHAT_GENERATORS
# The stdlib peer stands in for this service: it serves on its port, and its probe says when the peer is ready.
PEER_STANDS_IN_FOR = "threaded"


def _line_servers() -> dict[str, tuple[str, int, list[str] | None]]:
    """--servers: name -> (service started, its port, container command or None for the service's own).

    Every line server of the registry (protocols/registry.py), then the stdlib peer.
    """
    servers: dict[str, tuple[str, int, list[str] | None]] = {
        name: (name, spec.ports[0].number, None) for name, spec in SERVICES.items() if spec.protocol == "upper"
    }
    port = SERVICES[PEER_STANDS_IN_FOR].ports[0].number
    peer = ["python3", "-m", "bench.peers.stdlib_upper", "--port", str(port)]
    servers["stdlib"] = (PEER_STANDS_IN_FOR, port, peer)
    return servers


LINE_SERVERS = _line_servers()
# The ladder: 15k and 100k are the targets; two Python senders top out near 90k/s on 2 cores.
UDP_RATES = (15_000, 20_000, 30_000, 40_000, 50_000, 75_000, 100_000, 150_000)
QUICK_UDP_RATES = (15_000, 30_000, 50_000, 100_000)


@dataclass(frozen=True)
class Options:
    """One run's settings, every default resolved (``--quick`` or full)."""

    quick: bool
    sections: frozenset[str]
    reps: int  # interleaved rounds per cell
    duration: float  # measured seconds per TCP run
    warmup: float  # seconds of load before each window
    conns: list[int]
    sizes: list[int]
    servers: list[str]
    upper_procs: int
    udp_sizes: list[int]
    udp_rates: list[int]
    udp_procs: int
    udp_duration: float
    udp_work: list[str]
    udp_generator: str
    pin: bool
    docker_logs: bool
    clients: list[int]
    chat_senders: int
    chat_procs: int
    chat_generator: str
    output: Path  # results/bench.json; the .md and .svg go beside it
    render: Path | None  # only re-render the table and plot from this JSON
    argv: list[str]  # as given, for the result's meta


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line, ``error: <what> (see <prog> --help)``, exit status 2; no usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive numbers")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The parser as ``--help`` shows it (defaults that depend on ``--quick`` are resolved by ``parse``)."""
    parser = _Parser(
        prog="scripts/bench", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="The full run takes about 25 minutes on 2 cores; --quick about 3.")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round, short windows, fewer cells")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="what to run (default: %(default)s)")
    parser.add_argument("--reps", type=int, help="interleaved rounds per cell (default 3; quick 1)")
    parser.add_argument("--duration", type=float, help="measured seconds per TCP run (default 1.5; quick 1)")
    parser.add_argument("--warmup", type=float, help="seconds of load before each window (default 0.3; quick 0.2)")
    parser.add_argument("--conns", type=_ints, help="connections for the line servers (default 1,10,100,1000)")
    parser.add_argument("--sizes", type=_ints, help="line sizes in bytes (default 64,1024; quick 64)")
    parser.add_argument("--servers", default=",".join(LINE_SERVERS), help="line servers (default: %(default)s)")
    parser.add_argument("--upper-procs", type=int, default=1, help="load generator processes for line servers")
    parser.add_argument("--udp-sizes", type=_ints, help="datagram sizes (default 100,1000; quick 100)")
    parser.add_argument("--udp-rates", type=_ints,
                        help="the ladder of rates, datagrams/s (default "
                        f"{','.join(map(str, UDP_RATES))}; quick {','.join(map(str, QUICK_UDP_RATES))})")
    parser.add_argument("--udp-work", default=",".join(UDP_WORK),
                        help="what the sinks do: parsed (JSON of syslog fields), raw (lines) (default: %(default)s)")
    parser.add_argument("--udp-generator", choices=UDP_GENERATOR_NAMES, default=UDP_GENERATOR_NAMES[0],
                        help="the UDP sender: the compiled sendmmsg one or the Python one (default: %(default)s)")
    parser.add_argument("--udp-procs", type=int, default=2,
                        help="processes of the Python UDP sender (default: %(default)s)")
    parser.add_argument("--udp-duration", type=float, help="seconds per UDP trial (default 10; quick 2)")
    parser.add_argument("--docker-logs", action="store_true",
                        help="also measure creosote with its stdout in Docker's json-file log, as the lab runs it")
    parser.add_argument("--clients", type=_ints, default=[10, 100, 1000], help="chat clients (default 10,100,1000)")
    parser.add_argument("--chat-senders", type=int, default=10, help="chat members sending (default: %(default)s)")
    parser.add_argument("--chat-procs", type=int, default=1,
                        help="extra receiver processes in the Python chat generator (default: %(default)s)")
    parser.add_argument("--chat-generator", choices=CHAT_GENERATOR_NAMES, default=CHAT_GENERATOR_NAMES[0],
                        help="the chat driver: the compiled epoll one or the Python one (default: %(default)s)")
    parser.add_argument("--pin", action="store_true",
                        help="servers on CPU 0, the load generator on CPU 1 (docker --cpuset-cpus)")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "results" / "bench.json")
    parser.add_argument("--render", type=Path, metavar="JSON", help="only re-render the table and plot from JSON")
    return parser


def parse(argv: Sequence[str] | None = None) -> Options:
    """The options of ``argv`` (default: the process's); exits 2 with one line on a mistake, 0 after ``--help``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    sections = frozenset(args.sections.split(","))
    servers: list[str] = args.servers.split(",")
    if bad_sections := sections - set(SECTIONS):
        parser.error(f"unknown section {', '.join(sorted(bad_sections))}: choose from {','.join(SECTIONS)}")
    udp_work: list[str] = args.udp_work.split(",")
    if bad_work := set(udp_work) - set(UDP_WORK):
        parser.error(f"unknown --udp-work {', '.join(sorted(bad_work))}: choose from {','.join(UDP_WORK)}")
    if bad_servers := set(servers) - set(LINE_SERVERS):
        parser.error(f"unknown server {', '.join(sorted(bad_servers))}: choose from {','.join(LINE_SERVERS)}")
    quick: bool = args.quick
    return Options(
        quick=quick,
        sections=sections,
        reps=args.reps or (1 if quick else 3),
        duration=args.duration or (1.0 if quick else 1.5),
        warmup=args.warmup if args.warmup is not None else (0.2 if quick else 0.3),
        conns=args.conns or [1, 10, 100, 1000],
        sizes=args.sizes or ([64] if quick else [64, 1024]),
        servers=servers,
        upper_procs=args.upper_procs,
        udp_sizes=args.udp_sizes or ([100] if quick else [100, 1000]),
        udp_rates=args.udp_rates or list(QUICK_UDP_RATES if quick else UDP_RATES),
        udp_procs=args.udp_procs,
        udp_duration=args.udp_duration or (2.0 if quick else 10.0),
        udp_work=[w for w in UDP_WORK if w in udp_work],
        udp_generator=args.udp_generator,
        pin=args.pin,
        docker_logs=args.docker_logs,
        clients=args.clients,
        chat_senders=args.chat_senders,
        chat_procs=args.chat_procs,
        chat_generator=args.chat_generator,
        output=args.output,
        render=args.render,
        argv=argv,
    )
