"""A reader that waits a second before reading, then counts every byte a client sends until EOF.

python3 slow_reader.py PORT     a thread per client; the first line a client sends is its name
"""

import socket
import sys
import threading
import time

PAUSE = 1.0  # seconds before the first recv: the sender's buffers fill meanwhile


def count(conn: socket.socket) -> None:
    with conn:
        time.sleep(PAUSE)  # the experiment: a slow reader
        data = b""
        while b"\n" not in data:
            piece = conn.recv(65536)
            if not piece:
                return  # a client that sent nothing, like the lab's readiness probe
            data += piece
        name, rest = data.split(b"\n", 1)
        total = len(rest)
        while piece := conn.recv(65536):
            total += len(piece)
        print(f"{name.decode()}: received {total} bytes, then EOF", flush=True)


listener = socket.create_server(("", int(sys.argv[1])))
print(f"listening on port {sys.argv[1]}", flush=True)
while True:
    conn, _peer = listener.accept()
    threading.Thread(target=count, args=(conn,), daemon=True).start()
