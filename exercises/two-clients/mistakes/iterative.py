"""WRONG on purpose: an iterative upper-case server. Right for one client; the second waits for the first.

python3 iterative.py PORT
"""

import socket
import sys

with socket.create_server(("", int(sys.argv[1]))) as listener:
    while True:
        conn, _peer = listener.accept()
        with conn, conn.makefile("rb") as lines:  # WRONG: nobody else is served until this client leaves
            for line in lines:
                conn.sendall(line.rstrip(b"\r\n").upper() + b"\n")
