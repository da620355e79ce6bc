"""Clients of a select server: many at once, or a slow reader and then a quick question.

python3 clients.py many HOST PORT N     N clients connected at once, each asks one line
python3 clients.py slow HOST PORT       a client that sends and never reads; then another asks one line
"""

import socket
import sys
import threading
import time


def ask(address: tuple[str, int], line: bytes, timeout: float) -> str:
    began = time.monotonic()
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(line)
        try:
            reply = sock.recv(100)
        except TimeoutError:
            return f"no answer in {timeout:g} s"
    return f"{reply!r} in {time.monotonic() - began:.2f} s"


def many(address: tuple[str, int], count: int) -> None:
    socks = [socket.create_connection(address, timeout=5) for _ in range(count)]
    for i, sock in enumerate(socks):
        sock.sendall(f"client {i}\n".encode())
    replies = [sock.recv(100) for sock in socks]
    right = sum(reply == f"CLIENT {i}\n".encode() for i, reply in enumerate(replies))
    print(f"{count} clients connected at once: {right} answered correctly")
    for sock in socks:
        sock.close()


def slow(address: tuple[str, int]) -> None:
    hog = socket.create_connection(address, timeout=30)
    sent = [0]

    def flood() -> None:  # send and never read: the echoes pile up in both sides' buffers
        chunk = b"x" * 65535 + b"\n"
        try:
            while True:
                sent[0] += hog.send(chunk)
        except OSError:
            pass

    flooding = threading.Thread(target=flood, daemon=True)
    flooding.start()
    last, still = -1, time.monotonic()
    while time.monotonic() - still < 0.5:  # until its sending has stalled for half a second
        if sent[0] != last:
            last, still = sent[0], time.monotonic()
        time.sleep(0.05)
    print(f"slow reader: sent {sent[0]} bytes, then its sends stalled (it reads none of the echoes)")
    print(f"another client, meanwhile: {ask(address, b'ping' + bytes([10]), 3)}")
    hog.shutdown(socket.SHUT_RDWR)  # wakes the flood's blocked send (a close alone would wait for it)
    flooding.join()
    hog.close()  # with unread data, the close sends RST
    print(f"another client, once the slow reader left: {ask(address, b'ping' + bytes([10]), 3)}")


def main() -> None:
    mode, address = sys.argv[1], (sys.argv[2], int(sys.argv[3]))
    if mode == "many":
        many(address, int(sys.argv[4]))
    else:
        slow(address)


if __name__ == "__main__":
    main()
