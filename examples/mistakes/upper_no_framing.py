"""A line server with no framing: it takes one recv for one line.

What is wrong: TCP does not keep the boundaries of what the client wrote. One
``recv`` may hold half a line (a slow client, a long line, a small window) or
several lines (a client that writes them together, Nagle's algorithm). This
server answers every ``recv`` as if it were one line, so it answers half lines,
answers several lines with one reply, and cuts a long line into many replies.

The fix: collect bytes in a buffer and answer each complete line (up to its
``\\n``), with a cap on how long a line may grow (see protocols/framing.py).

    python3 examples/mistakes/upper_no_framing.py --port 9009
    python3 -m clients.check upper 127.0.0.1:9009
"""

import argparse
import socket
import threading
import time


def handle(conn: socket.socket) -> None:
    with conn:
        while True:
            data = conn.recv(1024)  # WRONG: one recv is not one line
            if not data:
                break
            text = data.decode("utf-8", errors="replace").strip()
            conn.sendall(f"[{time.ctime()}] {text.upper()}\n".encode())


def main() -> None:
    parser = argparse.ArgumentParser(description="upper-case line server without framing (wrong on purpose)")
    parser.add_argument("--host", default="")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((args.host, args.port))
    server.listen(5)
    print(f"ready port={server.getsockname()[1]}", flush=True)
    while True:
        conn, _address = server.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
