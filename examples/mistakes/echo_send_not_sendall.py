"""An echo server that uses send where it needs sendall.

What is wrong: ``send`` returns how many bytes the kernel took, which may be
fewer than it was given; the rest is the caller's to send again. This server
ignores the count. It even does the right thing elsewhere: it sets a timeout so
a silent client cannot hold a thread forever. But a socket with a timeout is
non-blocking underneath, so when the client reads more slowly than we write and
the send buffer is nearly full, ``send`` takes part of the data and the rest is
silently lost. Small messages never show it.

The fix: ``sendall``, which loops until every byte is taken (or the timeout
passes, which raises).

    python3 examples/mistakes/echo_send_not_sendall.py --port 7007
    python3 -m clients.check echo 127.0.0.1:7007 --only 'tcp.*'
"""

import argparse
import socket
import threading


def handle(conn: socket.socket) -> None:
    with conn:
        conn.settimeout(30)  # good: a silent client cannot hold this thread forever
        while True:
            data = conn.recv(1000000)  # as the course's tms.py: up to a megabyte at a time
            if not data:
                break
            conn.send(data)  # WRONG: the count it returns is ignored; what did not fit is lost


def main() -> None:
    parser = argparse.ArgumentParser(description="echo with send instead of sendall (wrong on purpose)")
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
