"""Start a stream server (and optionally its UDP twin) from the command line.

Every TCP server here is "a protocol plus one line": a session factory, a
default port, a default concurrency model and what it allows handed to ``stream_service``.
"""

from __future__ import annotations

import argparse
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from common.argtypes import positive_float, positive_int
from common.eventlog import READY, EventLog
from protocols.session import SessionFactory
from services.common import base_parser, bind_tcp, bind_udp, raise_on_signals, run_main
from services.runners import MODELS, DatagramAnswer, Limits, StopSwitch, serve_datagrams, serve_stream

DEFAULT_LIMITS = Limits()


class Main(Protocol):
    """A server's entry point: parse ``argv`` (``sys.argv`` when ``None``), serve, return the exit code."""

    def __call__(self, argv: Sequence[str] | None = None) -> int: ...


def stream_parser(
    name: str, description: str, *, port: int, model: str, limits: Limits | Mapping[str, Limits]
) -> argparse.ArgumentParser:
    """The options of every stream server: address, model, client cap and share, idle timeout, line deadline.

    ``limits`` is what the server allows by default, or per model (``--model`` picks the row).
    """
    parser = base_parser(name, description, port=port)
    parser.add_argument("--model", choices=MODELS, default=model, help="concurrency model (default: %(default)s)")
    parser.add_argument(
        "--max-clients",
        type=positive_int,
        help="concurrent clients allowed; more get an error line and are closed "
        f"(default: {_default(limits, 'max_clients')})",
    )
    parser.add_argument(
        "--per-source",
        type=positive_int,
        metavar="CLIENTS",
        help="slots one source address is sure of: free slots are anyone's, but when the server is full a "
        "source holding this many can only displace its own longest-idle connection (default: half of "
        f"--max-clients, {_default(limits, 'rules.per_source')})",
    )
    parser.add_argument(
        "--idle-timeout",
        type=positive_float,
        help=f"seconds a client may stay silent before it is closed (default: {_default(limits, 'idle_timeout')})",
    )
    lines = any(row.line_deadline is not None for row in _rows(limits))
    parser.add_argument(
        "--line-deadline",
        type=positive_float,
        metavar="SECONDS",
        help="seconds from a line's first byte to its end, whatever trickles in meanwhile; past it the client "
        f"gets an error line and is closed (default: {_default(limits, 'line_deadline')})"
        if lines
        else f"not for {name}: it serves bytes, not lines (--idle-timeout and eviction bound its clients)",
    )
    parser.add_argument(
        "--log-loopback",
        action="store_true",
        help="also log connections from 127.0.0.1 (muted by default: inside a container they are health checks)",
    )
    return parser


def _rows(limits: Limits | Mapping[str, Limits]) -> list[Limits]:
    return [limits] if isinstance(limits, Limits) else list(limits.values())


def _default(limits: Limits | Mapping[str, Limits], field: str) -> str:
    """A default for ``--help``: one value, or the value of each model when they differ (``rules.x``: a rule's)."""

    def value(row: Limits) -> str:
        source: object = row.rules if field.startswith("rules.") else row
        return f"{getattr(source, field.removeprefix('rules.')):g}"

    if isinstance(limits, Limits):
        return value(limits)
    values = {model: value(row) for model, row in limits.items()}
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    return ", ".join(f"{shown} {model}" for model, shown in values.items())


def chosen_limits(limits: Limits | Mapping[str, Limits], args: argparse.Namespace) -> Limits:
    """The limits of the model chosen, with what the options override.

    Raises ``ValueError`` naming the options when they contradict each other.
    """
    row = limits if isinstance(limits, Limits) else limits[args.model]
    if args.line_deadline is not None and row.line_deadline is None:
        raise ValueError(
            "--line-deadline: this server serves bytes, not lines, so there is no line to time; "
            "leave it out (--idle-timeout bounds a silent client)"
        )
    max_clients = args.max_clients or row.max_clients
    if args.per_source is not None and args.per_source > max_clients:
        raise ValueError(
            f"--per-source {args.per_source} is more than the {max_clients} clients the server admits "
            f"(--max-clients); give at most {max_clients}, or raise --max-clients"
        )
    return replace(
        row,
        max_clients=max_clients,
        idle_timeout=args.idle_timeout or row.idle_timeout,
        per_source=args.per_source or (None if args.max_clients else row.per_source),
        line_deadline=args.line_deadline or row.line_deadline,
    )


def stream_service(
    name: str,
    description: str,
    factory: SessionFactory,
    *,
    port: int,
    model: str = "threaded",
    limits: Limits | Mapping[str, Limits] = DEFAULT_LIMITS,
    udp_answer: DatagramAnswer | None = None,
) -> Main:
    """Build the ``main(argv)`` of a stream server; with ``udp_answer`` it serves UDP on the same port.

    ``limits`` may be one ``Limits`` for every model, or one per model (every model of ``MODELS``).
    """
    if not isinstance(limits, Limits) and set(limits) != set(MODELS):
        raise ValueError(f"{name}: limits per model must name every model ({', '.join(MODELS)})")
    parser = stream_parser(name, description, port=port, model=model, limits=limits)

    def serve(argv: Sequence[str] | None) -> int:
        args = parser.parse_args(argv)
        try:
            chosen = chosen_limits(limits, args)
        except ValueError as exc:
            parser.error(str(exc))
        log = EventLog(name, log_loopback=args.log_loopback)
        raise_on_signals()
        stop = StopSwitch()
        listener = bind_tcp(args.host, args.port)
        udp: socket.socket | None = None
        try:
            fields: dict[str, object] = {"tcp": listener.getsockname()[1]}
            if udp_answer is not None:
                udp = bind_udp(args.host, args.port)
                fields["udp"] = udp.getsockname()[1]
                threading.Thread(
                    target=serve_datagrams, args=(udp, udp_answer), kwargs={"log": log, "stop": stop}, daemon=True
                ).start()
            rules = chosen.rules
            fields.update(max_clients=rules.max_clients, per_source=rules.per_source)
            if rules.line_deadline is not None:
                fields["line_deadline"] = f"{rules.line_deadline:g}"
            log(READY, host=args.host, model=args.model, **fields)
            serve_stream(listener, factory, model=args.model, limits=chosen, log=log, stop=stop)
        finally:
            stop.set()
            listener.close()
            if udp is not None:
                udp.close()
            log("stopped")
        return 0

    def main(argv: Sequence[str] | None = None) -> int:
        return run_main(serve, argv)

    return main
