"""An upper-case line server that says, for each client, how its session ended.

python3 server.py PORT     a thread per client; one log line per client when it leaves
"""

import socket
import sys
import threading


def serve(conn: socket.socket) -> None:
    name, total = "", 0  # name: the first line the client sent
    with conn:  # one that sends nothing, like the lab's readiness probe, is logged with no name
        try:
            while data := conn.recv(1024):
                total += len(data)
                name = name or data.split(b"\n")[0].decode(errors="replace")
                conn.sendall(data.upper())
            print(f"{name}: recv returned b'' (EOF) after {total} bytes; closing my side", flush=True)
        except ConnectionResetError as exc:
            print(f"{name}: ConnectionResetError ({exc.strerror}) after {total} bytes", flush=True)


def main() -> None:
    listener = socket.create_server(("", int(sys.argv[1])))
    print(f"listening on port {sys.argv[1]}", flush=True)
    while True:
        conn, _address = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
