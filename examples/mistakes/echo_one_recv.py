"""An echo server that takes one recv for the whole message.

What is wrong: TCP carries a stream of bytes, not messages. ``recv(65536)``
returns whatever has arrived so far, which may be a piece of what the client
sent (or pieces of two sends). This server echoes that one piece and closes:
the rest is never echoed, and closing with the client's bytes still unread makes
the kernel reset the connection. It works for short messages typed by hand,
which is why it looks right.

The fix: loop on ``recv`` until it returns ``b""`` (the client is done), sending
each piece back with ``sendall``.

    python3 examples/mistakes/echo_one_recv.py --port 7007
    python3 -m clients.check echo 127.0.0.1:7007
"""

import argparse
import socket
import threading


def handle(conn: socket.socket) -> None:
    with conn:
        data = conn.recv(65536)  # WRONG: one recv is not one message
        conn.sendall(data)


def main() -> None:
    parser = argparse.ArgumentParser(description="echo, one recv per connection (wrong on purpose)")
    parser.add_argument("--host", default="")
    parser.add_argument("--port", type=int, default=7)
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
