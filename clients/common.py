"""What every client shares: options, connecting with clear errors, framed reads."""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Callable, Sequence

from common.errors import TestbedError
from protocols.framing import LineBuffer


class ClientError(TestbedError):
    """A failure the user should read as one line (no traceback)."""


def client_parser(name: str, description: str, *, host: str, port: int) -> argparse.ArgumentParser:
    """An argument parser with ``--host``, ``--port`` and ``--timeout``."""
    parser = argparse.ArgumentParser(prog=f"python -m clients.{name}", description=description)
    parser.add_argument("--host", default=host, help="server name or address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=port, help="server port (default: %(default)s)")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the network (default: %(default)s)"
    )
    return parser


def connect(host: str, port: int, *, timeout: float) -> socket.socket:
    """Open a TCP connection, turning every failure into a ``ClientError`` that says what to check."""
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        raise ClientError(
            f"cannot resolve {host!r} ({exc.strerror}); lab hostnames resolve inside the lab network "
            "(docker compose run --rm client ...); from the host use --host 127.0.0.1 and the published port"
        ) from exc
    except ConnectionRefusedError as exc:
        raise ClientError(f"{host}:{port} refused the connection; is the server running?") from exc
    except TimeoutError as exc:
        raise ClientError(f"{host}:{port} did not answer within {timeout:g} s") from exc
    except OSError as exc:
        raise ClientError(f"cannot reach {host}:{port} ({exc.strerror or exc})") from exc


def connect_with_backoff(
    host: str,
    port: int,
    *,
    timeout: float,
    attempts: int,
    first_delay: float = 0.2,
    max_delay: float = 2.0,
    say: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True),
) -> socket.socket:
    """``connect``, retried with exponential backoff; each failure is reported through ``say``."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return connect(host, port, timeout=timeout)
        except ClientError as exc:
            if attempt == attempts:
                raise
            say(f"{exc}; retrying in {delay:.1f} s (attempt {attempt + 1} of {attempts})")
            time.sleep(delay)
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")


def read_line(sock: socket.socket, lines: LineBuffer) -> bytes | None:
    """The next line from ``sock`` (``None`` at EOF), reading as many chunks as it takes."""
    while True:
        line = lines.next_line()
        if line is not None:
            return line
        if lines.eof:
            return None
        lines.feed(sock.recv(65536))


def read_to_eof(sock: socket.socket, *, limit: int = 1 << 20) -> bytes:
    """Everything the server sends until it closes, at most ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def udp_exchange(host: str, port: int, payload: bytes, *, timeout: float, max_reply: int = 65535) -> bytes:
    """Send one datagram and return the first reply; ``ClientError`` if none comes in time."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise ClientError(f"cannot resolve {host!r} ({exc.strerror})") from exc
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(address)  # only replies from the server get through
            sock.send(payload)
            return sock.recv(max_reply)
        except TimeoutError as exc:
            raise ClientError(f"no UDP reply from {host}:{port} within {timeout:g} s") from exc
        except OSError as exc:
            raise ClientError(f"UDP to {host}:{port} failed ({exc.strerror or exc})") from exc


def run_client(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a client's main: ``error: …`` and exit 1 instead of a traceback; quiet on Ctrl-C."""
    try:
        return main(argv)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except TestbedError as exc:
        print(f"error: the server broke the protocol: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
