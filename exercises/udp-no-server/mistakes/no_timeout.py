"""WRONG on purpose: an unconnected UDP socket with no timeout waits forever when nothing answers.

python3 no_timeout.py HOST PORT
"""

import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.sendto(b"hello?\n", (host, port))
print("sent; waiting for the reply", flush=True)
print(sock.recvfrom(1024))  # WRONG: the ICMP error never reaches an unconnected socket, and there is no timeout
