"""Start a stream server (and optionally its UDP twin) from the command line.

Every TCP server here is "a protocol plus one line": a session factory, a
default port and a default concurrency model handed to ``stream_service``.
"""

from __future__ import annotations

import argparse
import socket
import threading
from collections.abc import Sequence
from typing import Protocol

from common.argtypes import positive_float, positive_int
from common.eventlog import EventLog
from protocols.session import SessionFactory
from services.common import base_parser, bind_tcp, bind_udp, raise_on_signals, run_main
from services.runners import MODELS, DatagramAnswer, Limits, serve_datagrams, serve_stream


class Main(Protocol):
    """A server's entry point: parse ``argv`` (``sys.argv`` when ``None``), serve, return the exit code."""

    def __call__(self, argv: Sequence[str] | None = None) -> int: ...


def stream_parser(
    name: str, description: str, *, port: int, model: str, max_clients: int, idle_timeout: float
) -> argparse.ArgumentParser:
    """The options of every stream server: address, model, client cap, idle timeout."""
    parser = base_parser(name, description, port=port)
    parser.add_argument("--model", choices=MODELS, default=model, help="concurrency model (default: %(default)s)")
    parser.add_argument(
        "--max-clients",
        type=positive_int,
        default=max_clients,
        help="concurrent clients allowed; more get an error line and are closed (default: %(default)s)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=positive_float,
        default=idle_timeout,
        help="seconds a client may stay silent before it is closed (default: %(default)s)",
    )
    parser.add_argument(
        "--log-loopback",
        action="store_true",
        help="also log connections from 127.0.0.1 (muted by default: inside a container they are health checks)",
    )
    return parser


def stream_service(
    name: str,
    description: str,
    factory: SessionFactory,
    *,
    port: int,
    model: str = "threaded",
    max_clients: int = 256,
    idle_timeout: float = 60.0,
    udp_answer: DatagramAnswer | None = None,
    busy_message: bytes | None = None,
) -> Main:
    """Build the ``main(argv)`` of a stream server; with ``udp_answer`` it serves UDP on the same port."""
    parser = stream_parser(
        name, description, port=port, model=model, max_clients=max_clients, idle_timeout=idle_timeout
    )

    def serve(argv: Sequence[str] | None) -> int:
        args = parser.parse_args(argv)
        log = EventLog(name, log_loopback=args.log_loopback)
        limits = Limits(max_clients=args.max_clients, idle_timeout=args.idle_timeout)
        if busy_message is not None:
            limits = Limits(max_clients=args.max_clients, idle_timeout=args.idle_timeout, busy_message=busy_message)
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
            log("ready", host=args.host, model=args.model, max_clients=args.max_clients, **fields)
            serve_stream(listener, factory, model=args.model, limits=limits, log=log, stop=stop)
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
