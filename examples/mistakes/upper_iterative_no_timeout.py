"""An iterative line server with no timeouts: one silent client stops it for everyone.

What is wrong: the server serves one client at a time and waits on it with a
blocking read that has no timeout. Its framing is right (``makefile`` reads
whole lines), so every test with one client passes. But a client that connects
and says nothing (a user who walked away, a port scanner, a slowloris attack)
holds the server in ``readline`` forever, and everyone else waits in the listen
queue.

The fix: a timeout on every client socket (``conn.settimeout``) so a silent one
is closed, and a model that serves clients concurrently (threads, selectors,
asyncio); see services/runners/.

    python3 examples/mistakes/upper_iterative_no_timeout.py --port 9009
    python3 -m clients.check upper 127.0.0.1:9009
"""

import argparse
import socket
import time


def serve(conn: socket.socket) -> None:
    with conn, conn.makefile("rb") as lines:
        for line in lines:  # WRONG: blocks without a timeout, and nobody else is served meanwhile
            text = line.decode("utf-8", errors="replace").rstrip("\r\n")
            conn.sendall(f"[{time.ctime()}] {text.upper()}\n".encode())


def main() -> None:
    parser = argparse.ArgumentParser(description="iterative line server without timeouts (wrong on purpose)")
    parser.add_argument("--host", default="")
    parser.add_argument("--port", type=int, default=9001)
    args = parser.parse_args()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((args.host, args.port))
    server.listen(5)
    print(f"ready port={server.getsockname()[1]}", flush=True)
    while True:
        conn, _address = server.accept()
        try:
            serve(conn)
        except OSError as exc:  # a client that left mid-answer must not stop the server
            print(f"client gone: {exc}", flush=True)


if __name__ == "__main__":
    main()
