"""``python3 -m bench.loadgen {upper,udp,chat,redis-benchmark} ...``: load generators, one JSON object on stdout.

The command line: one subcommand per generator, each run once; errors as one
line on stderr and a non-zero exit, which the bench reports with the command.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from bench.loadgen import chat, redis_bench, udp, upper


def build_parser() -> argparse.ArgumentParser:
    """The load generators' command line."""
    parser = argparse.ArgumentParser(prog="python3 -m bench.loadgen", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    upper_cmd = sub.add_parser("upper", help="closed-loop line requests to the upper-case server (or PING to Redis)")
    upper_cmd.add_argument("--host")
    upper_cmd.add_argument("--port", type=int)
    upper_cmd.add_argument("--target", action="append", metavar="HOST:PORT",
                       help="run once per target, in this order (repeatable); the result is {\"runs\": [...]}")
    upper_cmd.add_argument("--conns", type=int, default=10)
    upper_cmd.add_argument("--size", type=int, default=64, help="request line size in bytes, newline included")
    upper_cmd.add_argument("--duration", type=float, default=3.0)
    upper_cmd.add_argument("--warmup", type=float, default=0.5)
    upper_cmd.add_argument("--timeout", type=float, default=5.0, help="per-request timeout, and setup limit (s)")
    upper_cmd.add_argument("--procs", type=int, default=1)
    upper_cmd.add_argument("--mode", choices=("upper", "ping"), default="upper")
    upper_cmd.add_argument("--seed", type=int, default=1)

    udp_cmd = sub.add_parser("udp", help="paced datagrams")
    udp_cmd.add_argument("--host", required=True)
    udp_cmd.add_argument("--port", type=int, required=True)
    udp_cmd.add_argument("--size", type=int, default=100)
    udp_cmd.add_argument("--rate", type=float, required=True, help="datagrams per second")
    udp_cmd.add_argument("--duration", type=float, default=10.0)
    udp_cmd.add_argument("--procs", type=int, default=1)

    chat_cmd = sub.add_parser("chat", help="fan-out: the chat room and Redis pub/sub, alternating")
    chat_cmd.add_argument("--chat", metavar="HOST:PORT")
    chat_cmd.add_argument("--redis", metavar="HOST:PORT")
    chat_cmd.add_argument("--clients", type=int, default=10)
    chat_cmd.add_argument("--senders", type=int, default=10)
    chat_cmd.add_argument("--size", type=int, default=64, help="message text size in bytes")
    chat_cmd.add_argument("--duration", type=float, default=3.0)
    chat_cmd.add_argument("--warmup", type=float, default=0.5)
    chat_cmd.add_argument("--rounds", type=int, default=3)
    chat_cmd.add_argument("--timeout", type=float, default=60.0, help="setup limit and per-message limit (s)")
    chat_cmd.add_argument("--procs", type=int, default=1, help="receiver worker processes besides the sender (0: none)")

    redis_cmd = sub.add_parser("redis-benchmark", help="Debian's redis-benchmark (PING_INLINE), timed and charged")
    redis_cmd.add_argument("--host", required=True)
    redis_cmd.add_argument("--port", type=int, default=6379)
    redis_cmd.add_argument("--conns", type=int, default=10)
    redis_cmd.add_argument("--duration", type=float, default=1.5, help="about how long (sets --requests)")
    redis_cmd.add_argument("--requests", type=int, help="requests in all (default: from --duration)")
    redis_cmd.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one load generator and print its JSON result."""
    args = build_parser().parse_args(argv)
    if getattr(args, "procs", 1) < (0 if args.command == "chat" else 1):
        print("error: --procs is too small", file=sys.stderr)
        return 2
    runners = {"upper": upper.run, "udp": udp.run, "chat": chat.run, "redis-benchmark": redis_bench.run}
    try:
        result = runners[args.command](args)
    except (OSError, RuntimeError, TimeoutError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0
