"""``python -m clients.probe SERVICE``: is this server up *and speaking its protocol*?

Health checks and test readiness use this instead of a port check: a TCP port
can accept while the server is wedged, and a UDP port says nothing at all. Each
probe does one real exchange and checks the answer. Exit 0 when healthy, 1 with
one line saying what failed otherwise.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Sequence

from clients.common import ClientError, client_parser, connect, read_line, read_to_eof, run_client, udp_exchange
from protocols.framing import LineBuffer

# Each probe imports its protocol module itself: health checks run this every
# couple of seconds in every container, and importing all protocols would double
# the cost of each run for nothing.


def probe_daytime(host: str, port: int, timeout: float) -> str:
    from protocols import daytime

    with connect(host, port, timeout=timeout) as sock:
        daytime.parse_daytime(read_to_eof(sock, limit=4096))
    when = daytime.parse_daytime(udp_exchange(host, port, b"", timeout=timeout))
    return f"daytime tcp+udp ok ({when:%H:%M:%S} UTC)"


def probe_echo(host: str, port: int, timeout: float) -> str:
    payload = b"probe \x00\xff\n"
    with connect(host, port, timeout=timeout) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        if read_to_eof(sock, limit=4096) != payload:
            raise ClientError("echo over TCP returned different bytes")
    if udp_exchange(host, port, payload, timeout=timeout) != payload:
        raise ClientError("echo over UDP returned a different datagram")
    return "echo tcp+udp ok"


def probe_upper(host: str, port: int, timeout: float) -> str:
    from protocols import upper

    with connect(host, port, timeout=timeout) as sock:
        sock.sendall(b"probe\n")
        line = read_line(sock, LineBuffer())
    if line is None:
        raise ClientError("closed without answering")
    _, text = upper.parse_answer(line.decode("utf-8", errors="replace"))
    if text != "PROBE":
        raise ClientError(f"answered {line[:60]!r}, not the upper-cased line")
    return "line server ok"


def probe_greeting(host: str, port: int, timeout: float) -> str:
    """Chat and doctor greet first: a greeting line means the server is serving."""
    with connect(host, port, timeout=timeout) as sock:
        line = read_line(sock, LineBuffer())
    if not line:
        raise ClientError("connected, but no greeting line")
    return f"greeting ok: {line[:60].decode('utf-8', errors='replace')}"


def probe_creosote(host: str, port: int, timeout: float) -> str:
    from protocols import creosote

    reply = udp_exchange(host, port, creosote.PING, timeout=timeout)
    records = creosote.parse_pong(reply)  # RemoteProtocolError when it is not a pong
    return f"creosote ok ({records} records)"


Probe = Callable[[str, int, float], str]

# service -> (probe, port inside the lab)
PROBES: dict[str, tuple[Probe, int]] = {
    "daytime": (probe_daytime, 13),
    "echo": (probe_echo, 7),
    "creosote": (probe_creosote, 7739),
    "chat": (probe_greeting, 5000),
    "doctor": (probe_greeting, 5001),
    "threaded": (probe_upper, 9000),
    "iterative": (probe_upper, 9001),
    "forking": (probe_upper, 9002),
    "selectors": (probe_upper, 9003),
    "asyncio": (probe_upper, 9004),
}


def probe(service: str, host: str, port: int | None = None, *, timeout: float = 2.0) -> str:
    """Run one service's probe; return a one-line summary or raise ``ClientError``/``TestbedError``."""
    check, default_port = PROBES[service]
    try:
        return check(host, port or default_port, timeout)
    except (TimeoutError, OSError) as exc:
        raise ClientError(f"{service} at {host}:{port or default_port}: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = client_parser("probe", "Check that a server answers its own protocol.", host="127.0.0.1", port=0)
    parser.add_argument("service", choices=sorted(PROBES), help="which protocol to speak")
    parser.set_defaults(timeout=2.0)
    args = parser.parse_args(argv)
    print(probe(args.service, args.host, args.port or None, timeout=args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(run_client(main))
