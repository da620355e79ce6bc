"""What every server shares: command-line options, one-line event logs, signals.

Servers log one line per event to stdout, ``<UTC time> <server> <event> key=value…``,
so ``docker compose logs`` reads like a timeline and tests can wait for ``ready``.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

_log_lock = threading.Lock()


def _quote(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\r\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'
    return text


def format_event(server: str, event: str, fields: dict[str, object], *, now: float | None = None) -> str:
    """Render one log line (pure, for tests)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now if now is not None else time.time()))
    millis = int(((now if now is not None else time.time()) % 1) * 1000)
    parts = [f"{stamp}.{millis:03d}Z", server, event]
    parts += [f"{key}={_quote(value)}" for key, value in fields.items()]
    return " ".join(parts)


class EventLog:
    """Writes event lines for one server; safe from threads and forked children.

    ``connection`` events (connect/disconnect) from loopback peers are left out
    unless ``log_loopback``: inside a container those are the health checks, and
    a line every two seconds per service would drown what users do.
    """

    def __init__(self, server: str, *, stream=None, log_loopback: bool = False) -> None:  # type: ignore[no-untyped-def]
        self.server = server
        self._stream = stream
        self.log_loopback = log_loopback
        self._deferred: list[str] = []

    def connection(self, event: str, peer: str, **fields: object) -> None:
        """Log a per-connection event, unless it is a loopback peer's and those are muted."""
        if self.log_loopback or not _is_loopback(peer):
            self(event, peer=peer, **fields)

    def __call__(self, event: str, **fields: object) -> None:
        line = format_event(self.server, event, fields)
        with _log_lock:
            self._write(line + "\n")

    def defer(self, event: str, **fields: object) -> None:
        """Queue an event line until ``flush`` (or the next line written at once: order is kept).

        For events that come thousands of times a second (creosote's records): a
        write per line costs the server a system call each and the container
        runtime's copiers (containerd-shim, dockerd) as much again; scripts/bench
        measured that at ~0.6 of a core for 30,000 lines/s.
        """
        line = format_event(self.server, event, fields)
        with _log_lock:
            self._deferred.append(line)

    @property
    def deferred(self) -> int:
        """Lines queued by ``defer`` and not yet written."""
        return len(self._deferred)

    def flush(self) -> None:
        """Write the deferred lines now, in one write."""
        with _log_lock:
            self._write("")

    def _write(self, text: str) -> None:
        """Write the deferred lines, then ``text``; the caller holds ``_log_lock``."""
        if self._deferred:
            text = "\n".join(self._deferred) + "\n" + text
            self._deferred.clear()
        if not text:
            return
        stream = self._stream if self._stream is not None else sys.stdout
        try:
            stream.write(text)
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass  # stdout gone (closed pipe): logging must never kill a server


def _is_loopback(peer: str) -> bool:
    return peer.startswith(("127.", "[::1]"))


def peer_name(address: object) -> str:
    """``host:port`` for an IPv4/IPv6 socket address."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


def base_parser(name: str, description: str, *, port: int) -> argparse.ArgumentParser:
    """An argument parser with the options every server takes."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{name}", description=description)
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=port_number, default=port, help="port to listen on (default: %(default)s)")
    return parser


def port_number(text: str) -> int:
    """argparse type: a TCP/UDP port, 0 meaning 'any free port'."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is out of range (0-65535)")
    return value


def positive_float(text: str) -> float:
    """argparse type: seconds, greater than zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number, zero or more (a pause, a delay, a percentage)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number, 0 or more")
    return value


def positive_int(text: str) -> int:
    """argparse type: a count, at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


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


def run_main(main, argv: Sequence[str] | None = None) -> int:  # type: ignore[no-untyped-def]
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
