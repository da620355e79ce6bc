"""``python -m services.asyncio``.

The upper-case line server (protocols.upper), asyncio streams, a coroutine per client.
"""

from __future__ import annotations

import sys

from protocols import upper
from services.launch import stream_service

main = stream_service(
    "asyncio",
    "Line server: every line gets one line back, '[<ctime>] <LINE UPPER-CASED>'. "
    "Model: asyncio streams, a coroutine per client.",
    upper.UpperSession,
    port=9004,
    model="asyncio",
    max_clients=1024,
    idle_timeout=60.0,
    busy_message=b"error: server busy (too many clients), try again later\n",
)

if __name__ == "__main__":
    sys.exit(main())
