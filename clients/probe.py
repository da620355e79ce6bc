"""``python -m clients.probe PROTOCOL --host H --port P...``: is this server up *and speaking its protocol*?

Test readiness uses this instead of a port check: a TCP port can accept while
the server is wedged, and a UDP port says nothing at all. Each check does one
real exchange per port and checks the answer. PROTOCOL is one of the registry's
(protocols/registry.py): daytime, echo, upper, chat, doctor, creosote; or tcp or
udp for a server that speaks none of them (tcp: the port accepts a connection;
udp: a datagram gets no ICMP port unreachable within a second). A port is
``7/tcp``, ``7/udp`` or ``7`` (TCP). A built-in service may be named instead of
a protocol, and then its ports are the default: ``python -m clients.probe echo``
checks 7/tcp and 7/udp. Exit 0 when every port answers, 1 with one line saying
what failed otherwise.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable, Sequence

from clients.common import ClientError, connect, read_line, read_to_eof, run_client, udp_exchange
from common.errors import TestbedError
from protocols.framing import LineBuffer
from protocols.registry import PROTOCOLS, REACHABILITY, SERVICES, Port

# Each check imports its protocol module itself: a probe speaks one protocol, and importing
# all of them would double the cost of every run for nothing.

UDP_SILENCE = 1.0  # seconds without an ICMP port unreachable that make a UDP port "there"


def daytime_tcp(host: str, port: int, timeout: float) -> str:
    from protocols import daytime

    with connect(host, port, timeout=timeout) as sock:
        when = daytime.parse_daytime(read_to_eof(sock, limit=4096))
    return f"{when:%H:%M:%S} UTC"


def daytime_udp(host: str, port: int, timeout: float) -> str:
    from protocols import daytime

    # Any datagram gets the time (RFC 867); not an empty one, which docker-proxy does not forward.
    when = daytime.parse_daytime(udp_exchange(host, port, b"\n", timeout=timeout))
    return f"{when:%H:%M:%S} UTC"


ECHO_PAYLOAD = b"probe \x00\xff\n"


def echo_tcp(host: str, port: int, timeout: float) -> str:
    with connect(host, port, timeout=timeout) as sock:
        sock.sendall(ECHO_PAYLOAD)
        sock.shutdown(socket.SHUT_WR)
        if read_to_eof(sock, limit=4096) != ECHO_PAYLOAD:
            raise ClientError("echo over TCP returned different bytes")
    return "echoed"


def echo_udp(host: str, port: int, timeout: float) -> str:
    if udp_exchange(host, port, ECHO_PAYLOAD, timeout=timeout) != ECHO_PAYLOAD:
        raise ClientError("echo over UDP returned a different datagram")
    return "echoed"


def upper_tcp(host: str, port: int, timeout: float) -> str:
    from protocols import upper

    with connect(host, port, timeout=timeout) as sock:
        sock.sendall(b"probe\n")
        line = read_line(sock, LineBuffer())
    if line is None:
        raise ClientError("closed without answering")
    _, text = upper.parse_answer(line.decode("utf-8", errors="replace"))
    if text != "PROBE":
        raise ClientError(f"answered {line[:60]!r}, not the upper-cased line")
    return "upper-cased"


def greeting(host: str, port: int, timeout: float, expected: str) -> str:
    """Chat and doctor greet first: their greeting line means the server is serving."""
    with connect(host, port, timeout=timeout) as sock:
        line = read_line(sock, LineBuffer())
    text = (line or b"").decode("utf-8", errors="replace")
    if not text.startswith(expected):
        raise ClientError(f"greeted with {text[:60]!r}, not {expected[:30]!r}..." if line else "no greeting line")
    return "greeted"


def chat_tcp(host: str, port: int, timeout: float) -> str:
    from protocols import chat

    return greeting(host, port, timeout, chat.GREETING)


def doctor_tcp(host: str, port: int, timeout: float) -> str:
    from protocols import doctor

    return greeting(host, port, timeout, doctor.GREETING)


def creosote_udp(host: str, port: int, timeout: float) -> str:
    from protocols import creosote

    records = creosote.parse_pong(udp_exchange(host, port, creosote.PING, timeout=timeout))
    return f"{records} records"


def reach_tcp(host: str, port: int, timeout: float) -> str:
    with connect(host, port, timeout=timeout):
        return "accepts"


def reach_udp(host: str, port: int, timeout: float) -> str:
    """A datagram out; ICMP port unreachable (``ConnectionRefusedError`` on a connected socket) means nobody is there.

    Silence proves less than an answer (a firewall may drop the ICMP too), but it is all UDP offers.
    """
    try:
        udp_exchange(host, port, b"\n", timeout=min(timeout, UDP_SILENCE))
    except ClientError as exc:
        if isinstance(exc.__cause__, ConnectionRefusedError):
            raise ClientError("nothing listens there (ICMP port unreachable)") from exc
        if isinstance(exc.__cause__, TimeoutError):
            return f"no ICMP port unreachable within {min(timeout, UDP_SILENCE):g} s"
        raise
    return "answered"


Check = Callable[[str, int, float], str]

# (protocol or reachability kind, transport) -> its check; clients/healthcheck.sh has the same table.
CHECKS: dict[tuple[str, str], Check] = {
    ("daytime", "tcp"): daytime_tcp,
    ("daytime", "udp"): daytime_udp,
    ("echo", "tcp"): echo_tcp,
    ("echo", "udp"): echo_udp,
    ("upper", "tcp"): upper_tcp,
    ("chat", "tcp"): chat_tcp,
    ("doctor", "tcp"): doctor_tcp,
    ("creosote", "udp"): creosote_udp,
    ("tcp", "tcp"): reach_tcp,
    ("udp", "udp"): reach_udp,
}


def probe(protocol: str, host: str, ports: Sequence[Port], *, timeout: float = 2.0) -> str:
    """Check every port in turn; a one-line summary, or ``ClientError``/``TestbedError`` naming the port that failed."""
    results = []
    for port in ports:
        check = CHECKS.get((protocol, port.transport))
        if check is None:
            raise ClientError(f"{protocol} has no check over {port.transport} ({port})")
        where = f"{protocol} at {host} {port}"
        try:
            results.append(f"{port} {check(host, port.number, timeout)}")
        except ClientError as exc:
            raise ClientError(f"{where}: {exc}") from exc
        except (TestbedError, ValueError) as exc:  # the protocol modules' parse errors
            raise ClientError(f"{where}: the answer is not {protocol}: {exc}") from exc
        except OSError as exc:  # TimeoutError included
            raise ClientError(f"{where}: {exc.strerror or exc}") from exc
    return f"{protocol} ok: " + ", ".join(results)


def probe_service(service: str, host: str, *, timeout: float = 2.0) -> str:
    """Check a built-in service (protocols/registry.py) on its own ports."""
    spec = SERVICES[service]
    return probe(spec.protocol, host, spec.ports, timeout=timeout)


def port_argument(text: str) -> Port:
    """argparse type: ``7``, ``7/tcp`` or ``7/udp``."""
    try:
        return Port.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    kinds = [*PROTOCOLS, *REACHABILITY]
    parser = argparse.ArgumentParser(
        prog="python -m clients.probe",
        description="Check that a server answers its own protocol on every port given.",
        epilog="A built-in service's name checks its protocol on its ports unless --port says others: "
        + ", ".join(f"{name} ({spec.protocol} {' '.join(map(str, spec.ports))})" for name, spec in SERVICES.items())
        + ".",
    )
    parser.add_argument(
        "protocol", metavar="PROTOCOL", help=f"{', '.join(kinds)}; or a built-in service's name (see below)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="server name or address (default: %(default)s)")
    parser.add_argument(
        "--port",
        dest="ports",
        action="append",
        type=port_argument,
        metavar="PORT",
        help="7/tcp, 7/udp or 7 (TCP); again for more ports (default: a built-in service's own)",
    )
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per port (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    name: str = args.protocol
    ports: list[Port] | None = args.ports
    if name in PROTOCOLS or name in REACHABILITY:
        protocol = name
    elif name in SERVICES:
        protocol = SERVICES[name].protocol
    else:
        parser.error(
            f"unknown protocol {name!r}: choose from {', '.join([*PROTOCOLS, *REACHABILITY])}, "
            f"or a built-in service ({', '.join(SERVICES)})"
        )
    if ports is None:
        if name not in SERVICES:
            parser.error(f"{name} needs the ports to check: --port 7/tcp, --port 7/udp ...")
        ports = list(SERVICES[name].ports)
    for port in ports:
        if (protocol, port.transport) not in CHECKS:
            parser.error(f"{protocol} has no check over {port.transport} ({port})")
    if not args.timeout > 0:
        parser.error("--timeout: give a positive number of seconds")
    print(probe(protocol, args.host, ports, timeout=args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(run_client(main))
