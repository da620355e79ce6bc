"""One short TCP conversation with the echo server, to be captured on the wire.

python3 talk.py HOST PORT     connect, send one line, read its echo, close
"""

import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
with socket.create_connection((host, port), timeout=10) as sock:
    local, peer = sock.getsockname(), sock.getpeername()
    print(f"connected {local[0]}:{local[1]} -> {peer[0]}:{peer[1]}")
    sock.sendall(b"hello, wire\n")
    print(f"sent 12 bytes, got back {sock.recv(100)!r}")
print("closed")
