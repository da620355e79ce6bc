"""What the attack tests read from a connection."""

from __future__ import annotations

import socket


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    """What ``sock`` receives until ``marker`` arrives or the connection closes (its timeout bounds each wait)."""
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data
