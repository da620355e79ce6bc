"""``python -m clients.workloads.creosote``: numbered datagrams to the log sink.

Each datagram is ``chaos TAG SEQ``; a ``send`` event says it left this host, an
``error`` event that it could not (no address, no route). What the sink kept is
read from its records file afterwards by the runner, so the checker can tell lost
datagrams from duplicated ones.

The sink's name is looked up again every ``RESOLVE_EVERY`` seconds
(``common.Resolver``: the last address found is kept while a lookup fails).
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import time

from clients.workloads.common import Events, Resolver, Stop, describe, parser, run
from protocols.creosote import DEFAULT_PORT

RESOLVE_EVERY = 1.0


def datagram(tag: str, seq: int) -> bytes:
    return f"chaos {tag} {seq}".encode()


def main(args: argparse.Namespace, events: Events, stop: Stop) -> None:
    resolver = Resolver(args.host, args.port, kind=socket.SOCK_DGRAM)
    address: tuple[str, int] | None = None
    resolved_at = -RESOLVE_EVERY
    seq = 0
    ready = False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # unconnected: ICMP errors are not ours to see
        while not stop.is_set():
            if time.monotonic() - resolved_at >= RESOLVE_EVERY:
                resolved_at = time.monotonic()
                with contextlib.suppress(OSError):  # never found yet: said below, datagram by datagram
                    address = resolver.address()
            seq += 1
            if address is None:
                events.emit("error", seq=seq, what=f"cannot resolve {args.host}")
            else:
                try:
                    sock.sendto(datagram(args.tag, seq), address)
                    events.emit("send", seq=seq)
                    if not ready:
                        ready = True
                        events.emit("ready")
                except OSError as exc:
                    events.emit("error", seq=seq, what=describe(exc))
            stop.wait(args.interval)


def build() -> argparse.ArgumentParser:
    return parser("creosote", "Numbered datagrams to the creosote log sink.", port=DEFAULT_PORT, interval=0.05)


if __name__ == "__main__":
    sys.exit(run(main, build))
