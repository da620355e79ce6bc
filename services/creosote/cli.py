"""The sink's command line and assembly: options -> ``SinkConfig`` -> a bound ``Sink`` with its handler."""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common.argtypes import int_in, port_number, positive_float, positive_int, size_at_least
from common.eventlog import READY, EventLog
from protocols.creosote import DEFAULT_PORT, MAX_MESSAGE_BYTES, RECEIVE_BUFFER, Address, Reassembler
from services.common import base_parser, bind_udp, raise_on_signals
from services.creosote.bucket import Bucket
from services.creosote.raw import RawLines
from services.creosote.records_file import DEFAULT_KEEP, DEFAULT_MAX_BYTES, JsonlWriter, LogFileError
from services.creosote.relay import Relay, Resolver
from services.creosote.sink import Handler, Sink

SERVER = "creosote"
DEFAULT_RCVBUF = 4 * 2**20  # a burst of spew chunks must not overflow the kernel's queue
MAX_RECORDS_KEEP = 100  # files: each rotation renames every one of them
# A file smaller than the largest message reassembled would hold one record a file, or less.
records_max_bytes = size_at_least(MAX_MESSAGE_BYTES, "a file must hold the largest message kept (write 1MiB or more)")
records_keep = int_in(1, MAX_RECORDS_KEEP, "a number of files")


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """Everything the command line decides."""

    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    log_file: Path | None = None
    records_max_bytes: int = DEFAULT_MAX_BYTES
    records_keep: int = DEFAULT_KEEP
    raw: bool = False  # each datagram a line of log_file, nothing else (RawLines)
    redirect: Address | None = None
    max_datagram: int = RECEIVE_BUFFER
    rcvbuf: int = DEFAULT_RCVBUF
    reassembly_timeout: float = 5.0


def open_sink(config: SinkConfig, *, log: EventLog) -> Sink:
    """Bind the socket, build the handler, log ``ready``; the caller runs and closes the sink."""
    sock = bind_udp(config.host, config.port, rcvbuf=config.rcvbuf)
    try:
        handler = _make_handler(config, sock, log)
    except BaseException:
        sock.close()
        raise
    sink = Sink(sock, handler, log=log, buffer_size=config.max_datagram)
    mode = "redirect" if config.redirect else "raw" if config.raw else "bucket"
    got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    log(READY, host=sink.address[0], port=sink.address[1], mode=mode, rcvbuf=got, rcvbuf_requested=config.rcvbuf)
    if config.log_file and not config.redirect:
        log("records_file", file=str(config.log_file), max_bytes=config.records_max_bytes, keep=config.records_keep)
    if got < config.rcvbuf:  # Linux reports twice what was granted; less than asked means a cap
        log("rcvbuf_capped", requested=config.rcvbuf, got=got, hint="raise net.core.rmem_max")
    return sink


def _make_handler(config: SinkConfig, sock: socket.socket, log: EventLog) -> Handler:
    if config.redirect is not None:
        host, port = config.redirect
        return Relay(sock, Resolver(host, port, family=sock.family, log=log), log=log)
    writer = None
    if config.log_file:
        writer = JsonlWriter(config.log_file, log=log, max_bytes=config.records_max_bytes, keep=config.records_keep)
    if config.raw and writer is not None:
        return RawLines(writer)
    return Bucket(log=log, writer=writer, reassembler=Reassembler(timeout=config.reassembly_timeout))


def host_and_port(text: str) -> Address:
    """argparse type: ``HOST:PORT`` or ``[IPv6]:PORT``."""
    host, colon, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (for example creosote:7739)")
    return host, port_number(port)


def datagram_buffer(text: str) -> int:
    """argparse type: a receive buffer size, 1 to 65535 bytes."""
    value = positive_int(text)
    if value > RECEIVE_BUFFER:
        raise argparse.ArgumentTypeError(f"{value} is more than a datagram can hold ({RECEIVE_BUFFER})")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m services.creosote``."""
    parser = base_parser(SERVER, "UDP log sink: records every datagram, or relays it.", port=DEFAULT_PORT)
    parser.add_argument("--log-file", type=Path, help="append records as JSON Lines to this file (bucket mode)")
    parser.add_argument(
        "--records-max-bytes",
        type=records_max_bytes,
        metavar="SIZE",
        help="rotate the log file when it would pass SIZE, like 16MiB (default: 16MiB)",
    )
    parser.add_argument(
        "--records-keep",
        type=records_keep,
        metavar="N",
        help=f"keep N log files, the one being written included (1-{MAX_RECORDS_KEEP}; default: {DEFAULT_KEEP})",
    )
    parser.add_argument(
        "--raw", action="store_true", help="write each datagram to --log-file as a line, nothing else (leanest)"
    )
    parser.add_argument(
        "--redirect", type=host_and_port, metavar="HOST:PORT", help="relay every datagram to HOST:PORT instead"
    )
    parser.add_argument(
        "--max-datagram",
        type=datagram_buffer,
        default=RECEIVE_BUFFER,
        help="receive buffer; longer datagrams are recorded as truncated (default: %(default)s)",
    )
    parser.add_argument(
        "--rcvbuf", type=positive_int, default=DEFAULT_RCVBUF, help="SO_RCVBUF to ask for (default: %(default)s)"
    )
    parser.add_argument(
        "--reassembly-timeout",
        type=positive_float,
        default=5.0,
        metavar="S",
        help="give up on a chunked message after S quiet seconds (default: %(default)s)",
    )
    return parser


def parse_config(argv: Sequence[str] | None = None) -> SinkConfig:
    """Parse the command line into a ``SinkConfig`` (exits with usage on errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.redirect and args.log_file:
        parser.error("--log-file records in bucket mode; a redirector (--redirect) records nothing")
    if args.raw and not args.log_file:
        parser.error("--raw writes lines to --log-file: give --log-file PATH too")
    for given, flag in ((args.records_max_bytes, "--records-max-bytes"), (args.records_keep, "--records-keep")):
        if given is not None and not args.log_file:
            parser.error(f"{flag} limits the records file: give --log-file PATH too")
    return SinkConfig(
        host=args.host,
        port=args.port,
        log_file=args.log_file,
        records_max_bytes=args.records_max_bytes or DEFAULT_MAX_BYTES,
        records_keep=args.records_keep or DEFAULT_KEEP,
        raw=args.raw,
        redirect=args.redirect,
        max_datagram=args.max_datagram,
        rcvbuf=args.rcvbuf,
        reassembly_timeout=args.reassembly_timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sink until SIGTERM/SIGINT; 0 on a clean stop."""
    config = parse_config(argv)
    raise_on_signals()
    try:
        sink = open_sink(config, log=EventLog(SERVER))
    except LogFileError as exc:
        print(f"error: {exc} (is the directory mounted and writable?)", file=sys.stderr)
        return 1
    with sink:
        sink.serve_forever()
    return 0
