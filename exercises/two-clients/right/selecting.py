"""Right, another way: one thread and a selectors loop serve every client of the upper-case line server.

python3 selecting.py PORT
"""

import selectors
import socket
import sys

selector = selectors.DefaultSelector()
buffers: dict[socket.socket, bytes] = {}
listener = socket.create_server(("", int(sys.argv[1])))
listener.setblocking(False)
selector.register(listener, selectors.EVENT_READ)
while True:
    for key, _events in selector.select():
        sock = key.fileobj
        assert isinstance(sock, socket.socket)
        if sock is listener:
            conn, _peer = listener.accept()
            conn.setblocking(False)
            buffers[conn] = b""
            selector.register(conn, selectors.EVENT_READ)
            continue
        data = sock.recv(4096)
        if not data:
            selector.unregister(sock)
            del buffers[sock]
            sock.close()
            continue
        buffers[sock] += data
        while b"\n" in buffers[sock]:
            line, buffers[sock] = buffers[sock].split(b"\n", 1)
            sock.sendall(line.rstrip(b"\r").upper() + b"\n")  # short lines: sendall does not block for long
