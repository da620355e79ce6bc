"""WRONG on purpose: an echo client that takes a short recv for the end of the reply, and never compares.

python3 no_compare.py HOST PORT SIZE
"""

import hashlib
import socket
import sys
import threading

host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
payload = bytes(i % 251 for i in range(size))
sock = socket.create_connection((host, port), timeout=30)
threading.Thread(target=sock.sendall, args=(payload,), daemon=True).start()
received = bytearray()
while True:
    piece = sock.recv(65536)
    received += piece
    if len(piece) < 65536:  # WRONG: a short read only means that is all that has arrived so far
        break
print(f"{len(received)} bytes back")
print(f"sha256 {hashlib.sha256(received).hexdigest()}")
sys.exit(0)  # WRONG: success claimed without comparing what came back with what was sent
