"""``python -m services.echo``: RFC 862 echo on TCP and UDP port 7."""

from __future__ import annotations

import sys

from protocols import echo
from services.launch import stream_service
from services.runners import Limits

main = stream_service(
    "echo",
    "RFC 862 echo server: every byte comes back unchanged (TCP); every datagram comes back (UDP).",
    echo.EchoSession,
    port=echo.PORT,
    limits=Limits(max_clients=256, idle_timeout=60.0, line_deadline=None),  # bytes, not lines: every byte is progress
    udp_answer=echo.answer_datagram,
)

if __name__ == "__main__":
    sys.exit(main())
