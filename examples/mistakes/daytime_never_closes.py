"""A TCP daytime server that never closes the connection.

What is wrong: in RFC 867 the server sends the date and time and then closes;
the close is how the client knows the answer is complete, so a client reads
until EOF. This server sends a good line and then waits for the client to hang
up first, so a client that follows the RFC waits forever (or until its own
timeout), and every such client holds one of the server's threads meanwhile.

The fix: close the connection once the line is sent (reading what the client
may have sent first, so the close does not turn into a reset).

    python3 examples/mistakes/daytime_never_closes.py --port 1313
    python3 -m clients.check daytime 127.0.0.1:1313 --only 'tcp.*'
"""

import argparse
import socket
import threading
import time


def handle(conn: socket.socket) -> None:
    with conn:
        conn.sendall(time.ctime().encode("ascii") + b"\r\n")
        while conn.recv(1024):  # WRONG: waits for the client to close, which an RFC 867 client never does
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description="daytime over TCP that never closes (wrong on purpose)")
    parser.add_argument("--host", default="")
    parser.add_argument("--port", type=int, default=13)
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
