"""A daytime server (RFC 867) as a course exercise would have it: TCP, one line, then close.

Deliberately ordinary, in its own image (see the Dockerfile beside it).
"""

import socket
import time

with socket.create_server(("0.0.0.0", 13)) as listener:
    print("listening on 13", flush=True)
    while True:
        conn, _address = listener.accept()
        with conn:
            conn.sendall(time.strftime("%A, %B %d, %Y %H:%M:%S-UTC\r\n", time.gmtime()).encode())
