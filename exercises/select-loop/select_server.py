"""An upper-case echo server in one thread, with selectors: naive (sendall) or buffered.

python3 select_server.py naive|buffered PORT

naive:    wait until a client is readable, recv, then sendall the reply (which may block).
buffered: non-blocking sockets; a reply goes into the client's output buffer, written when select
          says the socket is writable; a client whose buffer passes CAP is not read from until it
          drains (backpressure instead of unbounded memory).
"""

import selectors
import socket
import sys

CAP = 1 << 20  # bytes of unsent replies a client may have before we stop reading from it


def naive(listener: socket.socket) -> None:
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    while True:
        for key, _events in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is listener:
                selector.register(listener.accept()[0], selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(65536)
                if data:
                    sock.sendall(data.upper())  # blocks until the client reads: the whole server waits
                    continue
            except OSError:
                pass
            selector.unregister(sock)
            sock.close()


def buffered(listener: socket.socket) -> None:
    selector = selectors.DefaultSelector()
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ)
    pending: dict[socket.socket, bytearray] = {}
    while True:
        for key, events in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is listener:
                conn = listener.accept()[0]
                conn.setblocking(False)
                pending[conn] = bytearray()
                selector.register(conn, selectors.EVENT_READ)
                continue
            out = pending[sock]
            try:
                if events & selectors.EVENT_READ:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionResetError("EOF")
                    out += data.upper()
                if out:
                    del out[: sock.send(out)]  # what fits now; the rest waits for the next EVENT_WRITE
            except BlockingIOError:
                pass
            except OSError:
                selector.unregister(sock)
                del pending[sock]
                sock.close()
                continue
            wanted = (selectors.EVENT_READ if len(out) < CAP else 0) | (selectors.EVENT_WRITE if out else 0)
            selector.modify(sock, wanted or selectors.EVENT_READ)


def main() -> None:
    mode, port = sys.argv[1], int(sys.argv[2])
    listener = socket.create_server(("", port))
    print(f"{mode} select server on port {port}, one thread", flush=True)
    (naive if mode == "naive" else buffered)(listener)


if __name__ == "__main__":
    main()
