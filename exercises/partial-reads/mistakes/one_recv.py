"""WRONG on purpose: an echo client that reads the reply with one recv.

python3 one_recv.py HOST PORT SIZE
"""

import socket
import sys
import threading

host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
payload = bytes(i % 251 for i in range(size))
sock = socket.create_connection((host, port), timeout=30)
threading.Thread(target=sock.sendall, args=(payload,), daemon=True).start()
reply = sock.recv(size)  # WRONG: one recv returns what has arrived so far, not SIZE bytes
print(f"{len(reply)} bytes back")
sys.exit(0 if reply == payload else 1)
