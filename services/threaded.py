"""``python -m services.threaded``.

The upper-case line server (protocols.upper), one thread per connection (the course's
ThreadingTCPServer).
"""

from __future__ import annotations

import sys

from protocols import upper
from services.launch import stream_service

main = stream_service(
    "threaded",
    "Line server: every line gets one line back, '[<ctime>] <LINE UPPER-CASED>'. "
    "Model: one thread per connection (the course's ThreadingTCPServer).",
    upper.UpperSession,
    port=9000,
    model="threaded",
    max_clients=1024,
    idle_timeout=60.0,
    busy_message=b"error: server busy (too many clients), try again later\n",
)

if __name__ == "__main__":
    sys.exit(main())
