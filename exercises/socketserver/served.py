"""One request handler, served by the socketserver class named on the command line.

python3 served.py TCPServer|ThreadingTCPServer|ForkingTCPServer PORT

The handler upper-cases each line and says which process and thread answered it.
"""

import os
import socketserver
import sys
import threading


class Upper(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:  # until the client closes
            where = f"pid {os.getpid()} {threading.current_thread().name}"
            self.wfile.write(f"[{where}] ".encode() + line.upper())


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    server_class = getattr(socketserver, kind)
    server_class.allow_reuse_address = True
    with server_class(("", port), Upper) as server:
        print(f"{kind} on port {port}, pid {os.getpid()}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
