"""Right, another way: select interleaves sending and reading; reading stops at SIZE bytes.

python3 length_loop.py HOST PORT SIZE
"""

import hashlib
import selectors
import socket
import sys

host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
payload = bytes(i % 251 for i in range(size))
sent, received = 0, bytearray()
with socket.create_connection((host, port), timeout=30) as sock:
    sock.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    while len(received) < size:
        for _key, events in selector.select(timeout=30):
            if events & selectors.EVENT_WRITE and sent < size:
                sent += sock.send(payload[sent : sent + 65536])
                if sent == size:
                    selector.modify(sock, selectors.EVENT_READ)
            if events & selectors.EVENT_READ:
                piece = sock.recv(65536)
                if not piece:
                    sys.exit(f"closed after {len(received)} bytes")
                received += piece
print(f"sha256 {hashlib.sha256(received).hexdigest()}")
print(f"{len(received)} bytes back, {'byte-exact' if received == payload else 'DIFFERENT'}")
sys.exit(0 if received == payload else 1)
