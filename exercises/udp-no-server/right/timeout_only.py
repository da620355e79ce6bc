"""Right, another way: an unconnected socket, but with a timeout (it never hears the ICMP error, and ends anyway).

python3 timeout_only.py HOST PORT
"""

import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    sock.settimeout(2.0)
    sock.sendto(b"hello?\n", (host, port))
    try:
        print(sock.recvfrom(1024))
    except TimeoutError:
        print(f"timed out: no reply from {host}:{port} in 2 s")
        sys.exit(1)
