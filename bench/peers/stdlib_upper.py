"""``python3 -m bench.peers.stdlib_upper``: the upper-case line server the seeds' way.

A plain ``socketserver.ThreadingTCPServer`` whose ``StreamRequestHandler`` loops
over ``rfile`` lines and writes ``[<ctime>] <LINE UPPER-CASED>``: no caps, no idle
timeout, no framing limits. It is the peer ``threaded`` is measured against: what
the hardening costs, if anything. Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socketserver
import sys
import time
from types import FrameType


class UpperHandler(socketserver.StreamRequestHandler):
    """One connection: every line in, its upper-cased, time-stamped twin out."""

    def handle(self) -> None:
        for line in self.rfile:
            text = line.rstrip(b"\r\n").decode("utf-8", errors="replace")
            self.wfile.write(f"[{time.ctime()}] {text.upper()}\n".encode())


class UpperServer(socketserver.ThreadingTCPServer):
    """Thread per connection, as the course's example."""

    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 1024  # the listen backlog; the default 5 would refuse a burst of 1,000 connects


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python3 -m bench.peers.stdlib_upper", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args(argv)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)  # PID 1 in a container ignores SIGTERM without a handler

    signal.signal(signal.SIGTERM, stop)
    with UpperServer((args.host, args.port), UpperHandler) as server:
        print(f"stdlib_upper ready port={args.port}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
