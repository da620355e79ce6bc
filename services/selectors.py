"""``python -m services.selectors``.

The upper-case line server (protocols.upper), one thread and a selectors loop for every client (the
course's select server).
"""

from __future__ import annotations

import sys

from protocols import upper
from services.launch import stream_service

main = stream_service(
    "selectors",
    "Line server: every line gets one line back, '[<ctime>] <LINE UPPER-CASED>'. "
    "Model: one thread and a selectors loop for every client (the course's select server).",
    upper.UpperSession,
    port=9003,
    model="selectors",
    max_clients=1024,
    idle_timeout=60.0,
    busy_message=b"error: server busy (too many clients), try again later\n",
)

if __name__ == "__main__":
    sys.exit(main())
