"""``python -m services.daytime``: RFC 867 daytime on TCP and UDP port 13."""

from __future__ import annotations

import sys

from protocols import daytime
from services.launch import stream_service
from services.runners import Limits

main = stream_service(
    "daytime",
    "RFC 867 daytime server: TCP sends the date and time, then closes; UDP answers every datagram with one datagram.",
    daytime.DaytimeSession,
    port=daytime.PORT,
    limits=Limits(max_clients=512, idle_timeout=10.0, line_deadline=None),  # it reads nothing
    udp_answer=daytime.answer_datagram,
)

if __name__ == "__main__":
    sys.exit(main())
