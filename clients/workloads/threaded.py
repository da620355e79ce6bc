"""``python -m clients.workloads.threaded``: numbered lines to the upper-case line server, each reply recorded.

One connection carries up to ``LINES_PER_CONNECTION`` lines, one every interval, each
waiting for its reply. A connection that breaks or stays silent for ``REPLY_TIMEOUT``
is closed, never read again: a late reply on it could otherwise be taken for the
next line's. The checker compares every reply with its request.
"""

from __future__ import annotations

import argparse
import hashlib
import string
import sys
import time

from clients.common import read_line
from clients.workloads.common import Backoff, Events, Resolver, Stop, describe, parser, run
from protocols.framing import LineBuffer
from protocols.upper import PORT

LINES_PER_CONNECTION = 25
REPLY_TIMEOUT = 3.0


def request(tag: str, seq: int) -> str:
    """Line ``seq`` of run ``tag``: its number and a word of its own, lower case."""
    digest = hashlib.sha256(f"word {tag} {seq}".encode()).digest()
    word = "".join(string.ascii_lowercase[b % 26] for b in digest[:8])
    return f"chaos {tag} {seq} {word}"


def main(args: argparse.Namespace, events: Events, stop: Stop) -> None:
    seq = 0
    ready = False
    backoff = Backoff()
    server = Resolver(args.host, args.port)
    while not stop.is_set():
        try:
            sock = server.connect()
        except OSError as exc:
            events.emit("error", what=f"connect: {describe(exc)}")
            backoff.wait(stop)
            continue
        backoff.reset()
        with sock:
            sock.settimeout(REPLY_TIMEOUT)
            lines = LineBuffer()
            for _ in range(LINES_PER_CONNECTION):
                seq += 1
                text = request(args.tag, seq)
                began = round(time.monotonic(), 6)
                try:
                    sock.sendall(f"{text}\n".encode())
                    reply = read_line(sock, lines)
                    error = None if reply is not None else "EOF"
                except OSError as exc:
                    reply, error = None, describe(exc)
                shown = None if reply is None else reply.decode("utf-8", errors="replace")
                events.emit("exchange", seq=seq, sent=text, reply=shown, error=error, began=began)
                if error is not None:
                    break
                if not ready:
                    ready = True
                    events.emit("ready")
                if stop.wait(args.interval):
                    break


def build() -> argparse.ArgumentParser:
    return parser("threaded", "Numbered lines to an upper-case line server; every reply recorded.", port=PORT,
                  interval=0.2)  # fmt: skip


if __name__ == "__main__":
    sys.exit(run(main, build))
