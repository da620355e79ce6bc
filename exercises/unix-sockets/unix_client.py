"""A client of unix_server.py's sockets, from another container sharing the folder.

python3 unix_client.py FOLDER
"""

import os
import socket
import stat
import sys


def listing(folder: str) -> None:
    for name in sorted(os.listdir(folder)):
        info = os.stat(f"{folder}/{name}")
        print(f"{stat.filemode(info.st_mode)} uid {info.st_uid} {name}")


def stream(path: str) -> None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            sock.sendall(b"hello over a unix socket\n")
            print(f"{os.path.basename(path)}: {sock.recv(200)!r}")
    except OSError as exc:
        print(f"{os.path.basename(path)}: {type(exc).__name__} ({exc.strerror})")


def datagrams(path: str, folder: str) -> None:
    mine = f"{folder}/client-{os.getpid()}.sock"  # bound, so the server has an address to answer to
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(mine)  # its mode follows the umask (022): writable by this user only
        print(f"my own socket file: {stat.filemode(os.stat(mine).st_mode)} uid {os.getuid()}")
        sock.settimeout(2)
        try:
            for message in (b"one", b"two two", b"three three three"):
                sock.sendto(message, path)
            replies = [sock.recv(100) for _ in range(3)]
        except TimeoutError:
            print("datagram.sock: sent three datagrams, no reply in 2 s")
            return
        finally:
            os.unlink(mine)
    print(f"datagram.sock: three datagrams, three replies of {[len(r) for r in replies]} bytes: {replies!r}")


def main() -> None:
    folder = sys.argv[1]
    print(f"I am uid {os.getuid()}")
    listing(folder)
    stream(f"{folder}/stream.sock")
    stream(f"{folder}/private.sock")
    datagrams(f"{folder}/datagram.sock", folder)


if __name__ == "__main__":
    main()
