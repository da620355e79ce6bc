"""An echo client that reads back everything it sent, however TCP splits it.

python3 reference.py HOST PORT SIZE     print the SHA-256 of what came back; exit 0 only when byte-exact
"""

import hashlib
import socket
import sys
import threading


def main() -> int:
    host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    payload = bytes(i % 251 for i in range(size))
    with socket.create_connection((host, port), timeout=30) as sock:

        def send() -> None:  # a thread: a large payload could fill both ways' buffers if we read only afterwards
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        received = bytearray()
        while len(received) < size:  # one recv returns what has arrived so far: loop until it is all here
            piece = sock.recv(65536)
            if not piece:
                break
            received += piece
        sender.join()
    print(f"sha256 {hashlib.sha256(received).hexdigest()}")
    if bytes(received) != payload:
        print(f"different: {len(received)} of {size} bytes back")
        return 1
    print(f"{size} bytes back, byte-exact")
    return 0


if __name__ == "__main__":
    sys.exit(main())
