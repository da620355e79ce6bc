"""A UDP client that ends by itself when nothing listens: a connected socket and a timeout.

python3 reference.py HOST PORT
"""

import socket
import sys


def main() -> int:
    host, port = sys.argv[1], int(sys.argv[2])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3.0)  # a datagram or its answer may be lost: never wait forever
        sock.connect((host, port))  # so the kernel can hand us the ICMP port unreachable as an error
        sock.send(b"hello?\n")
        try:
            print(f"reply: {sock.recv(1024)!r}")
            return 0
        except ConnectionRefusedError:
            print(f"refused: nothing listens on {host}:{port}/udp (ICMP port unreachable)")
        except TimeoutError:
            print(f"timed out: no reply from {host}:{port} in 3 s")
        return 1


if __name__ == "__main__":
    sys.exit(main())
