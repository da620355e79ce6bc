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
from common.eventlog import EventLog
from protocols.session import SessionFactory
from services.common import base_parser, bind_tcp, bind_udp, raise_on_signals, run_main
from services.runners import MODELS, DatagramAnswer, Limits, serve_datagrams, serve_stream

DEFAULT_LIMITS = Limits()


class Main(Protocol):
    """A server's entry point: parse ``argv`` (``sys.argv`` when ``None``), serve, return the exit code."""

    def __call__(self, argv: Sequence[str] | None = None) -> int: ...


def stream_parser(
    name: str, description: str, *, port: int, model: str, limits: Limits | Mapping[str, Limits]
) -> argparse.ArgumentParser:
    """The options of every stream server: address, model, client cap, idle timeout.

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
        "--idle-timeout",
        type=positive_float,
        help=f"seconds a client may stay silent before it is closed (default: {_default(limits, 'idle_timeout')})",
    )
    parser.add_argument(
        "--log-loopback",
        action="store_true",
        help="also log connections from 127.0.0.1 (muted by default: inside a container they are health checks)",
    )
    return parser


def _default(limits: Limits | Mapping[str, Limits], field: str) -> str:
    """A default for ``--help``: one value, or the value of each model when they differ."""
    if isinstance(limits, Limits):
        return f"{getattr(limits, field):g}"
    values = {model: f"{getattr(row, field):g}" for model, row in limits.items()}
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    return ", ".join(f"{value} {model}" for model, value in values.items())


def chosen_limits(limits: Limits | Mapping[str, Limits], args: argparse.Namespace) -> Limits:
    """The limits of the model chosen, with what ``--max-clients`` and ``--idle-timeout`` override."""
    row = limits if isinstance(limits, Limits) else limits[args.model]
    return replace(
        row,
        max_clients=args.max_clients or row.max_clients,
        idle_timeout=args.idle_timeout or row.idle_timeout,
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
        log = EventLog(name, log_loopback=args.log_loopback)
        chosen = chosen_limits(limits, args)
        raise_on_signals()
        stop = threading.Event()
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
            log("ready", host=args.host, model=args.model, max_clients=chosen.max_clients, **fields)
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
