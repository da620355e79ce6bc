"""An upper-case line server that serves every client at once: a thread per connection.

python3 reference.py PORT
"""

import socket
import sys
import threading


def serve(conn: socket.socket) -> None:
    with conn, conn.makefile("rb") as lines:
        for line in lines:
            conn.sendall(line.rstrip(b"\r\n").upper() + b"\n")


def main() -> None:
    port = int(sys.argv[1])
    with socket.create_server(("", port), backlog=64) as listener:
        print(f"listening on {port}", flush=True)
        while True:
            conn, _peer = listener.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
