"""``python -m clients.workloads.echo``: byte-exact exchanges with an echo server, one connection each.

Each exchange connects, sends a payload, half-closes and reads to EOF. The payload
is a function of the run's tag and the exchange's number (``payload``), so a
checker can rebuild it and compare what came back without trusting this client's
verdict: the event carries the length and SHA-256 of what was received, and the
error that ended the exchange, if any.
"""

from __future__ import annotations

import argparse
import hashlib
import socket
import sys
import time

from clients.workloads.common import Events, Resolver, Stop, describe, parser, run
from protocols.echo import PORT

MAX_PAYLOAD = 8192  # bytes: fits both sides' socket buffers, so sending all before reading cannot deadlock
REPLY_TIMEOUT = 3.0  # seconds one recv may wait


def payload(tag: str, seq: int) -> bytes:
    """The bytes of exchange ``seq`` of run ``tag``: 1 to ``MAX_PAYLOAD`` of them, every byte value possible."""
    digest = hashlib.sha256(f"size {tag} {seq}".encode()).digest()
    size = 1 + int.from_bytes(digest[:4], "big") % MAX_PAYLOAD
    return hashlib.shake_256(f"payload {tag} {seq}".encode()).digest(size)


def exchange(server: Resolver, data: bytes) -> tuple[bytes, str | None]:
    """What came back, and the error that ended the exchange (``None``: the server closed after echoing)."""
    got = bytearray()
    try:
        with server.connect() as sock:
            sock.settimeout(REPLY_TIMEOUT)
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)  # "that was all": the server echoes the rest and closes
            while chunk := sock.recv(65536):
                got += chunk
                if len(got) > 2 * len(data):
                    return bytes(got), "more came back than was sent"
    except OSError as exc:
        return bytes(got), describe(exc)
    return bytes(got), None


def main(args: argparse.Namespace, events: Events, stop: Stop) -> None:
    server = Resolver(args.host, args.port)
    seq = 0
    ready = False
    while not stop.is_set():
        seq += 1
        data = payload(args.tag, seq)
        began = round(time.monotonic(), 6)
        got, error = exchange(server, data)
        digest = hashlib.sha256(got).hexdigest()
        events.emit("exchange", seq=seq, size=len(data), got=len(got), sha256=digest, error=error, began=began)
        if not ready and error is None:
            ready = True
            events.emit("ready")
        stop.wait(args.interval)


def build() -> argparse.ArgumentParser:
    return parser("echo", "Byte-exact exchanges with an echo server, one connection each.", port=PORT, interval=0.2)


if __name__ == "__main__":
    sys.exit(run(main, build))
