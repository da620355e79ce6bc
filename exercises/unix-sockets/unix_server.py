"""Three Unix-domain sockets in FOLDER: a stream open to all, a stream for its owner only, a datagram one.

python3 unix_server.py FOLDER

stream.sock    (0666) upper-cases each line; says which uid the kernel reports for the client
private.sock   (0600) the same, for the owner's user only: the file's permissions are the access control
datagram.sock  (0666) answers each datagram with its upper-case, to the sender's own socket file
"""

import os
import socket
import struct
import sys
import threading


def listening(path: str, kind: int, mode: int) -> socket.socket:
    if os.path.exists(path):
        os.unlink(path)  # a socket file outlives its server: bind fails on the old one otherwise
    sock = socket.socket(socket.AF_UNIX, kind)
    sock.bind(path)
    os.chmod(path, mode)
    if kind == socket.SOCK_STREAM:
        sock.listen()
    return sock


def serve_stream(listener: socket.socket, name: str) -> None:
    while True:
        conn, _address = listener.accept()
        with conn:
            # SO_PEERCRED: the kernel says who connected (pid, uid, gid); no network peer can lie about it.
            _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
            for line in conn.makefile("rb"):
                conn.sendall(f"[{name}, your uid {uid}] ".encode() + line.upper())


def serve_datagrams(sock: socket.socket) -> None:
    while True:
        data, sender = sock.recvfrom(65536)
        if not sender:  # an unbound sender has no address to answer to
            continue
        try:
            sock.sendto(data.upper(), sender)
        except OSError as exc:  # sending to a socket file needs write permission on it, as connecting does
            print(f"datagram.sock: cannot answer {sender}: {type(exc).__name__} ({exc.strerror})", flush=True)


def main() -> None:
    folder = sys.argv[1]
    os.umask(0o077)
    threads = [
        threading.Thread(target=serve_stream, args=(listening(f"{folder}/stream.sock", socket.SOCK_STREAM, 0o666),
                                                    "stream"), daemon=True),
        threading.Thread(target=serve_stream, args=(listening(f"{folder}/private.sock", socket.SOCK_STREAM, 0o600),
                                                    "private"), daemon=True),
        threading.Thread(target=serve_datagrams, args=(listening(f"{folder}/datagram.sock", socket.SOCK_DGRAM, 0o666),),
                         daemon=True),
    ]  # fmt: skip
    for thread in threads:
        thread.start()
    print(f"serving stream.sock, private.sock and datagram.sock in {folder}, as uid {os.getuid()}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
