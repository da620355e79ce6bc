"""Two clients of a line server: A connects, is answered, and stays connected; then B tries.

    python3 two_clients.py HOST PORT [SECONDS]

B waits SECONDS (default 2) for its answer while A stays connected. If none came, A
closes and B's whole wait is measured: how long an iterative server made it queue.
"""

import socket
import sys
import time


def ask(sock: socket.socket, line: str) -> str:
    sock.sendall(line.encode() + b"\n")
    reply = b""
    while not reply.endswith(b"\n"):
        piece = sock.recv(1024)
        if not piece:
            raise ConnectionError("closed by the server")
        reply += piece
    return reply.decode(errors="replace").strip()


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    patience = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
    a = socket.create_connection((host, port), timeout=5)
    began = time.monotonic()
    print(f"client A: {ask(a, 'first')!r} in {time.monotonic() - began:.3f} s; A stays connected", flush=True)
    b = socket.create_connection((host, port), timeout=patience)
    began = time.monotonic()
    try:
        print(f"client B (A still connected): {ask(b, 'second')!r} in {time.monotonic() - began:.3f} s")
        return
    except TimeoutError:
        print(f"client B (A still connected): no answer in {patience:g} s", flush=True)
    a.close()  # now an iterative server can get to B
    b.settimeout(10)
    reply = b.recv(1024).decode(errors="replace").strip()
    print(f"client B: {reply!r} once A closed, after waiting {time.monotonic() - began:.3f} s in all")


if __name__ == "__main__":
    main()
