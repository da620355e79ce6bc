"""``python -m services.iterative``.

The upper-case line server (protocols.upper), one client at a time, the others wait in the backlog.
"""

from __future__ import annotations

import sys

from protocols import upper
from services.launch import stream_service

main = stream_service(
    "iterative",
    "Line server: every line gets one line back, '[<ctime>] <LINE UPPER-CASED>'. "
    "Model: one client at a time, the others wait in the backlog.",
    upper.UpperSession,
    port=9001,
    model="iterative",
    max_clients=1024,
    idle_timeout=60.0,
    busy_message=b"error: server busy (too many clients), try again later\n",
)

if __name__ == "__main__":
    sys.exit(main())
