"""Say hello to each server on port 9000 and read its reply until it closes.

python3 visit.py HOST ...
"""

import socket
import sys

for host in sys.argv[1:]:
    try:
        with socket.create_connection((host, 9000), timeout=10) as sock:
            sock.sendall(b"hello\n")
            reply = b""
            while piece := sock.recv(100):
                reply += piece
        print(f"{host}: the server said {reply!r} and closed")
    except OSError as exc:
        print(f"{host}: {type(exc).__name__} ({exc.strerror or exc})")
