"""``python -m services.chat``: the chat room (protocols.chat) on one asyncio loop.

The course's chat server served one person at a time and blocked on each of
them. Here every member shares one room, and nobody can hold it up:

* **slow readers**: output goes straight to each transport; what the kernel will
  not take waits in that transport's buffer, and a member whose buffer passes
  ``--queue-limit`` bytes is dropped (``* nick dropped (too slow)`` to the room);
* **floods**: each member gets at most ``LINES_PER_TURN`` lines handled per turn
  of the loop, then waits for the others;
* **fan-out**: a member's output within one loop turn is joined and written
  once, so n members talking at once cost O(n) writes per turn, not O(n²);
* **slowloris**: the admission policy every TCP server shares
  (``services.admission``): a line must end within ``--line-deadline`` of its
  first byte, and a full room seats a newcomer by closing its longest-idle
  member (each source address sure of ``--per-source`` seats);
* **everything else**: an idle timeout, over-long lines and invalid UTF-8
  answered with an error line to the sender alone, and every close bounded in
  time (a peer that never reads is aborted after ``CLOSE_GRACE``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from common.argtypes import positive_float, positive_int
from protocols.chat import PORT
from services.chat_server import (
    ANNOUNCE_GRACE,
    CLOSE_GRACE,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LINE_DEADLINE,
    DEFAULT_MAX_CLIENTS,
    DEFAULT_QUEUE_LIMIT,
    LINES_PER_TURN,
    PRESENCE_WINDOW,
    ChatServer,
)
from services.common import base_parser, bind_tcp, run_main

__all__ = [
    "ANNOUNCE_GRACE",
    "CLOSE_GRACE",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_LINE_DEADLINE",
    "DEFAULT_MAX_CLIENTS",
    "DEFAULT_QUEUE_LIMIT",
    "LINES_PER_TURN",
    "PRESENCE_WINDOW",
    "ChatServer",
    "build_parser",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m services.chat``."""
    parser = base_parser(
        "chat",
        "Multi-user chat room over TCP (plain nc is a client): UTF-8 lines, /nick /who /msg /quit /help.",
        port=PORT,
    )
    parser.add_argument(
        "--max-clients",
        type=positive_int,
        default=DEFAULT_MAX_CLIENTS,
        help="members allowed at once; more get an error line and are closed (default: %(default)s)",
    )
    parser.add_argument(
        "--per-source",
        type=positive_int,
        metavar="CLIENTS",
        help="seats one source address is sure of: free seats are anyone's, but when the room is full a source "
        "holding this many can only displace its own longest-idle member (default: half of --max-clients)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=positive_float,
        default=DEFAULT_IDLE_TIMEOUT,
        help="seconds a member may send nothing before it is closed (default: %(default)s)",
    )
    parser.add_argument(
        "--line-deadline",
        type=positive_float,
        default=DEFAULT_LINE_DEADLINE,
        metavar="SECONDS",
        help="seconds from a line's first byte to its end, whatever trickles in meanwhile; past it the member "
        "gets an error line and is closed (default: %(default)s)",
    )
    parser.add_argument(
        "--queue-limit",
        type=positive_int,
        default=DEFAULT_QUEUE_LIMIT,
        metavar="BYTES",
        help="output held for a member the kernel will not take more from; past it the member is dropped "
        "as too slow (default: %(default)s)",
    )
    return parser


def _serve(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.per_source is not None and args.per_source > args.max_clients:
        parser.error(
            f"--per-source {args.per_source} is more than the {args.max_clients} members the room seats "
            f"(--max-clients); give at most {args.max_clients}, or raise --max-clients"
        )
    server = ChatServer(
        max_clients=args.max_clients,
        per_source=args.per_source,
        idle_timeout=args.idle_timeout,
        line_deadline=args.line_deadline,
        queue_limit=args.queue_limit,
    )
    listener = bind_tcp(args.host, args.port)
    try:
        asyncio.run(server.serve(listener, handle_signals=True))
    finally:
        listener.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chat server; SIGTERM or SIGINT closes everyone and exits 0."""
    return run_main(_serve, argv)


if __name__ == "__main__":
    sys.exit(main())
