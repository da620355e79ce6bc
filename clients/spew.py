"""Spew: send log messages to a creosote sink over UDP, or probe it.

    python -m clients.spew [--host creosote] [--port 7739] [MESSAGE ...]
    python -m clients.spew --host 127.0.0.1 --ping

A message that fits one datagram goes as it is, so any syslog receiver reads
it; a longer one goes as numbered chunks (``protocols.creosote.encode_chunks``)
that creosote reassembles (up to ``MAX_MESSAGE_BYTES``, 1 MiB: it refuses
longer ones). ``SpewHandler`` does the same for the ``logging`` module and
never raises into the application.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import socket
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any

from clients.common import ClientError, client_parser, run_client, udp_exchange
from common.argtypes import non_negative_float, positive_int
from protocols.creosote import (
    DEFAULT_PORT,
    DEFAULT_SPEW_DATAGRAM,
    FACILITY_USER,
    MAX_UDP_PAYLOAD,
    PING,
    encode_pri,
    frame_message,
    parse_pong,
)

DEFAULT_HOST = "creosote"
DEFAULT_TIMEOUT = 2.0
MIN_DATAGRAM = 64  # room for a chunk header and some payload


class Spewer:
    """A UDP socket that sends whole messages, chunked when they do not fit one datagram.

    The host is resolved on the first send, not in the constructor: a logging
    handler is often made before the sink's container is up.
    """

    def __init__(self, host: str, port: int, *, max_datagram: int = DEFAULT_SPEW_DATAGRAM) -> None:
        if not MIN_DATAGRAM <= max_datagram <= MAX_UDP_PAYLOAD:
            raise ValueError(f"max_datagram must be in {MIN_DATAGRAM}..{MAX_UDP_PAYLOAD}, not {max_datagram}")
        self.host, self.port, self.max_datagram = host, port, max_datagram
        self._sock: socket.socket | None = None
        self._address: tuple[Any, ...] | None = None

    def send(self, message: bytes) -> int:
        """Send one message; return how many datagrams it took."""
        sock, address = self._connect()
        datagrams = frame_message(message, secrets.randbits(64), self.max_datagram)
        for datagram in datagrams:
            sock.sendto(datagram, address)
        return len(datagrams)

    def close(self) -> None:
        """Close the socket (a later send opens a new one)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Spewer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _connect(self) -> tuple[socket.socket, tuple[Any, ...]]:
        if self._sock is None or self._address is None:
            family, address = resolve(self.host, self.port)
            self._sock, self._address = socket.socket(family, socket.SOCK_DGRAM), address
        return self._sock, self._address


def resolve(host: str, port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    """The first UDP address of ``host``; ``socket.gaierror`` if there is none."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    return family, address


def spew(message: bytes, host: str, port: int = DEFAULT_PORT, *, max_datagram: int = DEFAULT_SPEW_DATAGRAM) -> int:
    """Send one message (the course's ``spew(msg, host, port)``); return the datagram count."""
    with Spewer(host, port, max_datagram=max_datagram) as spewer:
        return spewer.send(message)


def ping(host: str, port: int = DEFAULT_PORT, *, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Probe a sink; return its record count.

    Raises ``ClientError`` when no pong comes within ``timeout`` (or the host
    says nothing listens), ``RemoteProtocolError`` when something else answers.
    """
    return parse_pong(udp_exchange(host, port, PING, timeout=timeout, max_reply=256))


# --------------------------------------------------------------------------- logging


def severity_for(levelno: int) -> int:
    """The syslog severity for a ``logging`` level (the mapping ``SysLogHandler`` uses)."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class SpewHandler(logging.Handler):
    """A ``logging`` handler that spews each formatted record to a creosote sink.

    Each record goes with a ``<PRI>`` prefix (``facility=None`` leaves it out),
    so the sink records its severity. Records too long for one datagram are
    chunked instead of cut. Failures go to ``handleError``, never to the caller.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        max_datagram: int = DEFAULT_SPEW_DATAGRAM,
        facility: int | None = FACILITY_USER,
        level: int = logging.NOTSET,
    ) -> None:
        super().__init__(level)
        self.facility = facility
        self._spewer = Spewer(host, port, max_datagram=max_datagram)

    def emit(self, record: logging.LogRecord) -> None:
        """Format and send the record."""
        try:
            text = self.format(record)
            if self.facility is not None:
                text = encode_pri(self.facility, severity_for(record.levelno)) + text
            self._spewer.send(text.encode("utf-8", "replace"))  # Handler.handle holds self.lock
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        """Close the socket, then the handler."""
        self.acquire()  # not while another thread is in emit()
        try:
            self._spewer.close()
        finally:
            self.release()
        super().close()


# --------------------------------------------------------------------------- command line


def datagram_size(text: str) -> int:
    """argparse type: a datagram size spew can use."""
    value = positive_int(text)
    if not MIN_DATAGRAM <= value <= MAX_UDP_PAYLOAD:
        raise argparse.ArgumentTypeError(f"{value} is not in {MIN_DATAGRAM}..{MAX_UDP_PAYLOAD}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m clients.spew``."""
    parser = client_parser(
        "spew",
        "Send log messages to creosote over UDP (stdin lines when no MESSAGE), or --ping it.",
        host=DEFAULT_HOST,
        port=DEFAULT_PORT,
    )
    parser.set_defaults(timeout=DEFAULT_TIMEOUT)  # a health check must answer fast
    parser.add_argument("message", nargs="*", metavar="MESSAGE", help="words of one message (default: stdin lines)")
    parser.add_argument(
        "--max-datagram",
        type=datagram_size,
        default=DEFAULT_SPEW_DATAGRAM,
        help="longest datagram to send; longer messages are chunked (default: %(default)s)",
    )
    parser.add_argument("--count", type=positive_int, default=1, metavar="N", help="send each message N times")
    parser.add_argument(
        "--interval", type=non_negative_float, default=0.0, metavar="S", help="pause S seconds between sends"
    )
    parser.add_argument("--ping", action="store_true", help="probe the sink, print its pong (exit 1 if none)")
    return parser


def messages(words: Sequence[str], stdin: Iterable[str]) -> Iterator[bytes]:
    """The message from the command line's words, or one per stdin line."""
    if words:
        yield " ".join(words).encode("utf-8")
        return
    for line in stdin:
        yield line.rstrip("\r\n").encode("utf-8")


def run_ping(args: argparse.Namespace) -> int:
    """``--ping``: print the pong; ``ClientError`` (exit 1) when there is none."""
    records = ping(args.host, args.port, timeout=args.timeout)
    print(f"creosote:pong records={records}")
    return 0


def run_send(args: argparse.Namespace) -> int:
    """Send each message ``--count`` times, ``--interval`` apart."""
    target = f"{args.host}:{args.port}"
    try:
        with Spewer(args.host, args.port, max_datagram=args.max_datagram) as spewer:
            for number, message in enumerate(repeated(messages(args.message, sys.stdin), args.count)):
                if number and args.interval:
                    time.sleep(args.interval)  # pacing the sender, not waiting for anything
                spewer.send(message)
    except socket.gaierror as exc:
        raise ClientError(f"cannot resolve {args.host!r} ({exc.strerror})") from exc
    except OSError as exc:
        raise ClientError(f"cannot send to {target} ({exc.strerror or exc})") from exc
    return 0


def repeated(items: Iterable[bytes], count: int) -> Iterator[bytes]:
    """Each item ``count`` times in a row."""
    for item in items:
        for _ in range(count):
            yield item


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    return run_ping(args) if args.ping else run_send(args)


if __name__ == "__main__":
    sys.exit(run_client(main))
