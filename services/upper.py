"""``python -m services.upper``: the upper-case line server (protocols.upper), with any concurrency model.

``--model`` picks how it serves: the course showed the same server five ways, and here each way is
one flag, not a copy of the server. The lab runs one of each (threaded, iterative, forking, selectors
and asyncio, on ports 9000 to 9004: protocols/registry.py), for example
``python3 -m services.upper --model forking --port 9002``; ``--help`` says what each model does.
"""

from __future__ import annotations

import sys

from protocols import upper
from services.launch import stream_service
from services.runners import Limits

BUSY = b"error: server busy (too many clients), try again later\n"

# Each model: what it does (for --help), and what it allows unless --max-clients and --idle-timeout say
# otherwise: clients at once (one more gets BUSY and is closed), then idle seconds. The same numbers for all
# five today (1,024 clients at once fit the listen backlog); a row each, so that one model may differ.
BY_MODEL: dict[str, tuple[str, int, float]] = {
    "threaded": ("one thread per connection (the course's ThreadingTCPServer)", 1024, 60.0),
    "iterative": ("one client at a time, the others wait in the backlog", 1024, 60.0),
    "forking": ("one child process per connection (the course's os.fork server)", 1024, 60.0),
    "selectors": ("one thread and a selectors loop for all clients (the course's select server)", 1024, 60.0),
    "asyncio": ("asyncio streams, a coroutine per client", 1024, 60.0),
}

main = stream_service(
    "upper",
    "Line server: every line gets one line back, '[<ctime>] <LINE UPPER-CASED>'. Models: "
    + "; ".join(f"{model}, {about}" for model, (about, _, _) in BY_MODEL.items())
    + ".",
    upper.UpperSession,
    port=upper.PORT,
    model="threaded",
    limits={model: Limits(clients, idle, busy_message=BUSY) for model, (_, clients, idle) in BY_MODEL.items()},
)

if __name__ == "__main__":
    sys.exit(main())
