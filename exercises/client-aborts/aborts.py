"""Clients that leave a session in different ways.

python3 aborts.py close  HOST PORT NAME   one line, its reply, then close(): a FIN
python3 aborts.py reset  HOST PORT NAME   one line, its reply, then close() with SO_LINGER 0: an RST
python3 aborts.py killed HOST PORT NAME   one line, its reply, then the process is killed (SIGKILL)
"""

import os
import signal
import socket
import struct
import sys


def session(host: str, port: int, name: str) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(f"{name}\n".encode())
    print(f"{name}: reply {sock.recv(1024)!r}", flush=True)
    return sock


def killed(host: str, port: int, name: str) -> None:
    ready_read, ready_write = os.pipe()
    child = os.fork()
    if child == 0:  # the client: a session, then it waits to be killed, its socket still open
        session(host, port, name)
        os.write(ready_write, b"x")
        signal.pause()
    os.read(ready_read, 1)
    os.kill(child, signal.SIGKILL)
    _pid, status = os.waitpid(child, 0)
    print(f"{name}: the client process was killed by signal {os.WTERMSIG(status)} with its socket open")


def main() -> None:
    mode, host, port, name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    if mode == "killed":
        killed(host, port, name)
        return
    sock = session(host, port, name)
    if mode == "reset":
        # linger on, for 0 seconds: close() discards the connection and sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    print(f"{name}: closed {'with SO_LINGER 0' if mode == 'reset' else 'normally'}")


if __name__ == "__main__":
    main()
