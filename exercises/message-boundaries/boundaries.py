"""Three messages of 100, 200 and 300 bytes, echoed over UDP and over TCP; what each recv returns.

    python3 boundaries.py udp|truncate|tcp HOST PORT
"""

import socket
import sys
import time

SIZES = (100, 200, 300)


def udp(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        for size in SIZES:
            sock.sendto(b"x" * size, (host, port))
        time.sleep(0.3)  # the experiment: all three echoes are waiting before the first recv
        print("udp recv sizes:", ", ".join(str(len(sock.recv(65536))) for _ in SIZES))


def truncate(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(b"y" * 300, (host, port))
        data, _ancillary, flags, _peer = sock.recvmsg(100)  # a buffer smaller than the datagram
        print(f"udp recv with a 100-byte buffer: {len(data)} bytes, MSG_TRUNC set: {bool(flags & socket.MSG_TRUNC)}")
        try:
            rest = sock.recv(65536)
            print(f"the rest arrived: {len(rest)} bytes")
        except TimeoutError:
            print("the other 200 bytes are gone: the next recv timed out")


def tcp(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=3) as sock:
        for size in SIZES:
            sock.sendall(b"z" * size)
        time.sleep(0.3)  # the experiment: all three echoes are waiting before the first recv
        print(f"tcp recv: {len(sock.recv(65536))} bytes in one recv")


if __name__ == "__main__":
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"udp": udp, "truncate": truncate, "tcp": tcp}[mode](host, port)
