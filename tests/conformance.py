"""Protocol conformance checks, run against a server wherever it is.

The same functions check an in-process server (tests/local) and a server in its
container across the Docker network (tests/integration): the behaviour is the
contract, not where the server runs.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

from clients.common import read_line, read_to_eof, udp_exchange
from clients.echo import echo_tcp
from protocols.daytime import parse_daytime
from protocols.framing import LineBuffer
from protocols.upper import parse_answer

TIMEOUT = 10.0


def check_daytime_tcp(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        answer = read_to_eof(sock)
    assert answer.endswith(b"\r\n") and answer.count(b"\n") == 1, answer
    assert abs(parse_daytime(answer) - datetime.now(UTC)) < timedelta(seconds=5)


def check_daytime_udp(host: str, port: int, *, empty: bool = True) -> None:
    """Any datagram gets the time; ``empty=False`` through Docker's port proxy, which drops empty ones."""
    requests = [b"what time is it?\n", os.urandom(1000)] + ([b""] if empty else [])
    for request in requests:
        answer = udp_exchange(host, port, request, timeout=TIMEOUT)
        assert abs(parse_daytime(answer) - datetime.now(UTC)) < timedelta(seconds=5)


def check_echo_tcp(host: str, port: int, size: int) -> None:
    payload = os.urandom(size)
    received, _sizes = echo_tcp(host, port, payload, timeout=TIMEOUT)
    assert len(received) == len(payload)
    assert received == payload


def check_echo_udp(host: str, port: int) -> None:
    for payload in (b"x", os.urandom(1400), b"\xff\xfe invalid utf-8 \x00"):
        assert udp_exchange(host, port, payload, timeout=TIMEOUT) == payload


def upper_exchange(host: str, port: int, lines: list[bytes]) -> list[bytes]:
    """Send lines (each ends in \\n) in one write and read one reply line per line."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.sendall(b"".join(lines))
        buffer = LineBuffer(max_line=1 << 20)
        replies = []
        for _ in lines:
            reply = read_line(sock, buffer)
            assert reply is not None, "server closed early"
            replies.append(reply)
        return replies


def check_upper(host: str, port: int) -> None:
    """Lines split across writes and joined in one write all get exactly one right reply each."""
    texts = ["hello", "Grüße aus Köln", "x" * 3000, "", "tab\there"]
    replies = upper_exchange(host, port, [t.encode() + b"\n" for t in texts])
    for text, reply in zip(texts, replies, strict=True):
        stamp, body = parse_answer(reply.decode())
        assert body == text.upper()
        assert len(stamp) >= 20  # a ctime stamp, e.g. "Sun Nov 22 02:42:19 2026"
    # one line delivered byte by byte still gets one reply
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        for byte in b"slow\r\n":
            sock.sendall(bytes([byte]))
        slow = read_line(sock, LineBuffer())
    assert slow is not None and parse_answer(slow.decode())[1] == "SLOW"


def check_upper_bad_input(host: str, port: int) -> None:
    """Over-long and invalid lines get error lines; the session goes on."""
    replies = upper_exchange(host, port, [b"a" * 5000 + b"\n", b"\xff\xfe\n", b"still here\n"])
    assert replies[0].startswith(b"error: line longer than")
    assert replies[1] == b"error: line is not valid UTF-8"
    assert parse_answer(replies[2].decode())[1] == "STILL HERE"
