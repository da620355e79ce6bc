"""``python -m services.forking``.

The upper-case line server (protocols.upper), one child process per connection (the course's os.fork
server).
"""

from __future__ import annotations

import sys

from protocols import upper
from services.launch import stream_service

main = stream_service(
    "forking",
    "Line server: every line gets one line back, '[<ctime>] <LINE UPPER-CASED>'. "
    "Model: one child process per connection (the course's os.fork server).",
    upper.UpperSession,
    port=9002,
    model="forking",
    max_clients=1024,
    idle_timeout=60.0,
    busy_message=b"error: server busy (too many clients), try again later\n",
)

if __name__ == "__main__":
    sys.exit(main())
