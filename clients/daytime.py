"""``python -m clients.daytime``: ask a daytime server (RFC 867) for the time, over TCP or UDP."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from clients.common import ClientError, client_parser, connect, read_to_eof, run_client, udp_exchange
from protocols.daytime import PORT, parse_daytime


def fetch(host: str, port: int, *, udp: bool, timeout: float) -> bytes:
    """The raw daytime answer over TCP (read to the server's close) or UDP (one datagram)."""
    if udp:
        return udp_exchange(host, port, b"\n", timeout=timeout)
    with connect(host, port, timeout=timeout) as sock:
        try:
            return read_to_eof(sock, limit=4096)
        except TimeoutError as exc:
            raise ClientError(f"{host}:{port} sent no time within {timeout:g} s") from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = client_parser("daytime", "Ask a daytime server for the time.", host="daytime", port=PORT)
    parser.add_argument("--udp", action="store_true", help="ask over UDP instead of TCP")
    parser.add_argument("--raw", action="store_true", help="print the answer as received, unchecked")
    args = parser.parse_args(argv)
    answer = fetch(args.host, args.port, udp=args.udp, timeout=args.timeout)
    if not args.raw:
        parse_daytime(answer)  # raises RemoteProtocolError on a malformed answer
    sys.stdout.write(answer.decode("ascii", errors="replace").rstrip("\r\n") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_client(main))
