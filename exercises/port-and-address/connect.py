"""Try to connect to HOST on each PORT and print the greeting, or the error.

python3 connect.py HOST PORT [PORT ...]
"""

import socket
import sys

host = sys.argv[1]
for port in sys.argv[2:]:
    try:
        with socket.create_connection((host, int(port)), timeout=3) as sock:
            print(f"{host}:{port}: {sock.recv(200).decode().strip()}")
    except OSError as exc:
        print(f"{host}:{port}: {type(exc).__name__} ({exc.strerror or exc})")
