"""Client A connects and stays connected; client B connects meanwhile. Who answers B, and when?

python3 two_at_once.py HOST PORT
"""

import socket
import sys
import time

WAIT = 1.5  # seconds B waits for an answer while A is still connected


def ask(sock: socket.socket, line: bytes) -> bytes | None:
    sock.sendall(line)
    try:
        return sock.recv(200).strip()
    except TimeoutError:
        return None


def main() -> None:
    address = (sys.argv[1], int(sys.argv[2]))
    a = socket.create_connection(address, timeout=5)
    first = ask(a, b"first from a\n")
    print(f"A: {first!r}")
    b = socket.create_connection(address, timeout=WAIT)
    began = time.monotonic()
    answer = ask(b, b"then b\n")
    if answer is not None:
        print(f"B (A still connected): {answer!r} after {time.monotonic() - began:.2f} s")
    else:
        print(f"B (A still connected): no answer in {WAIT} s")
        a.close()
        b.settimeout(5)
        print(f"B once A closed: {b.recv(200).strip()!r} after {time.monotonic() - began:.2f} s")
    a.close()
    b.close()


if __name__ == "__main__":
    main()
