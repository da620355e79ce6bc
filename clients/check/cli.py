"""The command line: ``python3 -m clients.check PROTOCOL HOST[:PORT] [--udp-port N] [--json] [--only ...]``.

Exit status: 0 every check passed, 1 a check failed, 2 a usage error or a
target that cannot be reached at all (then one line says so).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from clients.check import ALIASES, SUITES
from clients.check.core import Check, Report, Result, Suite, Target, run_checks, select
from clients.common import ClientError
from common.argtypes import port_number, positive_float

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python3 -m clients.check``."""
    names = ", ".join([*SUITES, *ALIASES])
    parser = argparse.ArgumentParser(
        prog="python3 -m clients.check",
        description="Check that a server keeps its protocol, the hard parts included: large and split "
        "messages, slow and silent clients, odd bytes. One line per check; a transcript under each failure.",
        epilog="exit status: 0 every check passed, 1 a check failed, 2 usage error or target unreachable",
    )
    parser.add_argument("protocol", metavar="PROTOCOL", help=f"one of {names}")
    parser.add_argument(
        "target", metavar="HOST:PORT", nargs="?", help="the server (the port defaults to the protocol's own)"
    )
    parser.add_argument(
        "--udp-port", type=port_number, metavar="N", help="the UDP port when it differs from the TCP port"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON report instead of lines")
    parser.add_argument(
        "--only",
        action="append",
        metavar="CHECK,...",
        help="run only these checks (names or patterns, protocol prefix optional: tcp.8-mib, 'udp.*')",
    )
    parser.add_argument(
        "--timeout", type=positive_float, default=5.0, metavar="S", help="longest wait for one answer (default: 5)"
    )
    parser.add_argument(
        "--deadline", type=positive_float, default=300.0, metavar="S", help="longest run in all (default: 300)"
    )
    parser.add_argument("--list", action="store_true", help="list the protocol's checks and exit")
    return parser


def parse_target(text: str, default_port: int) -> Target:
    """``host:port``, ``[v6]:port``, ``host`` or a bare IPv6 address; ``ValueError`` with a reason."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r} is not [IPv6]:PORT")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""  # a name, or an IPv6 address without a port
    if not host:
        raise ValueError(f"{text!r} names no host")
    try:
        port = port_number(port_text) if port_text else default_port
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"port: {exc}") from None
    if port == 0:
        raise ValueError("port 0 is no server's port")
    return Target(host, port)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    protocol, default_port = ALIASES.get(args.protocol, (args.protocol, 0))
    suite = SUITES.get(protocol)
    if suite is None:
        parser.error(f"unknown protocol {args.protocol!r} (choose from {', '.join([*SUITES, *ALIASES])})")
    patterns = [name.strip() for item in args.only or [] for name in item.split(",") if name.strip()]
    try:
        checks = select(suite, patterns) if patterns else list(suite.checks)
    except LookupError as exc:
        parser.error(f"{exc.args[0]} (its checks: {', '.join(suite.names())})")
    if args.list:
        for one in checks:
            print(f"{one.name:<34} {one.about}")
        return EXIT_PASSED
    if args.target is None:
        parser.error("HOST:PORT is required (unless --list)")
    try:
        where = parse_target(args.target, default_port or suite.default_port)
    except ValueError as exc:
        parser.error(f"HOST:PORT: {exc}")
    target = Target(where.host, where.port, args.udp_port)
    try:
        return check_target(suite, target, checks, timeout=args.timeout, deadline=args.deadline, as_json=args.json)
    except KeyboardInterrupt:
        return 130


def check_target(
    suite: Suite, target: Target, checks: list[Check], *, timeout: float, deadline: float, as_json: bool
) -> int:
    """First contact, then every check; print as asked; the exit status."""
    try:
        suite.reach(target, timeout)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if as_json:
            report = Report(suite.protocol, str(target), target.udp_port, error=str(exc))
            print(json.dumps(report.to_json(), indent=2))
        return EXIT_USAGE

    def show(result: Result) -> None:
        print(result.text(), flush=True)

    report = run_checks(
        suite, target, checks=checks, timeout=timeout, deadline=deadline, on_result=None if as_json else show
    )
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.summary())
    return EXIT_PASSED if report.passed else EXIT_FAILED
