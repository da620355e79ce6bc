"""What the load generators share: the clock's unit, the receive size, the poll period, name resolution."""

from __future__ import annotations

import socket

NS = 1_000_000_000
# 64 KiB, not more: a larger recv() allocation sits past glibc's mmap/trim thresholds and costs
# ~13 µs per call in page faults (measured), more than the receive itself.
RECV_SIZE = 65536
POLL = 0.05  # seconds: how often the loops look at the clock when nothing arrives


def resolve(host: str) -> str:
    """One IPv4 address for ``host`` (resolved once, not per connection)."""
    return str(socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])


def count_error(errors: dict[str, int], kind: str) -> None:
    """One more error of ``kind``."""
    errors[kind] = errors.get(kind, 0) + 1
