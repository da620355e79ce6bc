"""A server that accepts every client, reads what it sends, and never answers.

python3 silent.py PORT
"""

import socket
import sys
import threading


def swallow(conn: socket.socket) -> None:
    with conn:
        while conn.recv(1024):
            pass


listener = socket.create_server(("", int(sys.argv[1])))
print(f"listening on port {sys.argv[1]}, answering nobody", flush=True)
while True:
    conn, _peer = listener.accept()
    threading.Thread(target=swallow, args=(conn,), daemon=True).start()
