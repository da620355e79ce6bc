"""An echo server as anyone might write it after the course's first lesson: a thread per client.

It is deliberately ordinary (no framework, no project imports): the lab runs it as
it is, from this folder, with `lab up examples/own-echo/lab.yaml`, and checks it with
`lab check echo server -t own-echo`.
"""

import socket
import sys
import threading

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 7007


def serve(conn: socket.socket) -> None:
    with conn:
        conn.settimeout(60)  # a silent client does not hold a thread forever
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            conn.sendall(data)


def main() -> None:
    with socket.create_server(("0.0.0.0", PORT), backlog=128) as listener:
        print(f"listening on {PORT}", flush=True)
        while True:
            conn, _address = listener.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
