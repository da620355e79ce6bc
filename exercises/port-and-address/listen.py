"""Listen on each (address, port) given; greet every client with which one it reached.

python3 listen.py [ADDRESS:]PORT ...    no ADDRESS: '' (every address of the host)
"""

import socket
import sys
import threading


def serve(listener: socket.socket, asked: str) -> None:
    while True:
        conn, _peer = listener.accept()
        with conn:
            conn.sendall(f"hello from {asked} (bound to {listener.getsockname()})\n".encode())


def main() -> None:
    threads = []
    for spec in sys.argv[1:]:
        address, _, port = spec.rpartition(":")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((address, int(port)))
        listener.listen()
        print(f"bind(({address!r}, {port})): listening on {listener.getsockname()}", flush=True)
        threads.append(threading.Thread(target=serve, args=(listener, f"({address!r}, {port})"), daemon=True))
    for thread in threads:
        thread.start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
