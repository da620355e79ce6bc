"""``python -m clients.tour``: visit every server of the lab by its hostname.

The default command of the lab's ``client`` container: it resolves each
service's name on the lab network, speaks its protocol, and prints one line per
server, so a newcomer sees at once that names and protocols work end to end.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence

from clients.common import ClientError
from clients.probe import probe_service
from common.errors import TestbedError
from protocols.registry import SERVICES


def one_per_protocol() -> tuple[str, ...]:
    """The first service of each protocol, as the registry lists them: the default lab without its profiles."""
    first: dict[str, str] = {}
    for name, spec in SERVICES.items():
        first.setdefault(spec.protocol, name)
    return tuple(first.values())


DEFAULT_SERVICES = one_per_protocol()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clients.tour", description="Visit every server of the lab by its hostname."
    )
    parser.add_argument(
        "services",
        nargs="*",
        metavar="SERVICE",
        help=f"which servers to visit, of {', '.join(SERVICES)} (default: {' '.join(DEFAULT_SERVICES)})",
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per server (default: %(default)s)")
    args = parser.parse_args(argv)
    args.services = args.services or list(DEFAULT_SERVICES)
    unknown = sorted(set(args.services) - set(SERVICES))
    if unknown:  # checked here: argparse's choices reject an empty nargs="*" list on some 3.11 releases
        parser.error(f"unknown service {', '.join(unknown)} (choose from {', '.join(SERVICES)})")
    print(f"tour from {socket.gethostname()}:")
    failed = 0
    for service in args.services:
        try:
            address = socket.gethostbyname(service)
            summary = probe_service(service, service, timeout=args.timeout)
            print(f"  ok    {service:<10} {address:<15} {summary}")
        except (ClientError, TestbedError, OSError) as exc:
            failed += 1
            print(f"  FAIL  {service:<10} {exc}")
    print(f"{len(args.services) - failed} of {len(args.services)} servers answered")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
