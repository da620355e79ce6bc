"""What every server shares: command-line options, signals, listening sockets.

The event log every server writes is ``common.eventlog``; argument types are ``common.argtypes``.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from types import FrameType

from common.argtypes import port_number


def peer_name(address: object) -> str:
    """``host:port`` for an IPv4/IPv6 socket address."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


def source_of(address: object) -> str:
    """The source a connection is counted under for admission: its host, without the port."""
    if isinstance(address, tuple) and address:
        return str(address[0])
    return str(address)


def base_parser(name: str, description: str, *, port: int) -> argparse.ArgumentParser:
    """An argument parser with the options every server takes."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{name}", description=description)
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=port_number, default=port, help="port to listen on (default: %(default)s)")
    return parser


class Stopped(SystemExit):
    """Raised in the main thread when SIGTERM or SIGINT arrives.

    A ``SystemExit`` so that nothing swallows it on its way out: asyncio, for one,
    logs and drops any ``Exception`` raised inside a callback, and the signal
    handler may run inside one.
    """

    def __init__(self, signal_name: str) -> None:
        super().__init__(0)
        self.signal_name = signal_name


def raise_on_signals(signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)) -> None:
    """Turn SIGTERM/SIGINT into ``Stopped`` in the main thread.

    A blocking ``accept``/``recvfrom`` is interrupted by the exception (PEP 475
    retries only when the handler returns), so a server stops at once. This also
    matters as PID 1 in a container, where a signal with no handler is ignored.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Stopped(signal.Signals(signum).name)

    for signum in signals:
        signal.signal(signum, handler)


# The listen queue of every TCP server: 1,000 clients connecting at once must fit. asyncio's servers
# call listen() again with their own backlog (100 unless told), so they are given this one too.
LISTEN_BACKLOG = 1024


def bind_tcp(host: str, port: int, *, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    """A listening TCP socket with SO_REUSEADDR (restarts must not wait out TIME_WAIT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not 0: accepted sockets inherit it, and asyncio sets TCP_NODELAY only on
    # sockets whose proto says TCP (base_events._set_nodelay). Without it the chat room's back-to-back
    # writes to a member wait out the member's 40 ms delayed ACK (Nagle), seen in scripts/bench.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_udp(host: str, port: int, *, rcvbuf: int | None = None) -> socket.socket:
    """A bound UDP socket, optionally asking for a larger receive buffer."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def run_main(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a server's main: a clean exit code on signals, one error line on OSError."""
    try:
        return int(main(argv) or 0)
    except Stopped:
        return 0
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"error: {exc} (is the port free, and may this user bind it?)", file=sys.stderr)
        return 1
