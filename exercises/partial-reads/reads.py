"""What TCP's recv returns, shown with real sizes.

python3 reads.py one-send HOST PORT SIZE   one sendall of SIZE bytes: how many recvs bring it back
python3 reads.py two-sends HOST PORT       two small sends, read late: how many recvs
python3 reads.py framed HOST PORT          three lines, read back whole by their newlines
"""

import socket
import sys
import threading
import time


def one_send(host: str, port: int, size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    with socket.create_connection((host, port), timeout=20) as sock:
        # Send from a thread while reading here: both ways' buffers could fill and deadlock otherwise.
        sender = threading.Thread(target=lambda: (sock.sendall(payload), sock.shutdown(socket.SHUT_WR)))
        sender.start()
        sizes, data = [], b""
        while piece := sock.recv(65536):
            sizes.append(len(piece))
            data += piece
        sender.join()
    print(f"one sendall of {size} bytes came back in {len(sizes)} recvs")
    print(f"first recv sizes: {', '.join(map(str, sizes[:12]))}{' ...' if len(sizes) > 12 else ''}")
    print("byte-exact" if data == payload else f"DIFFERENT: {len(data)} bytes back")


def two_sends(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=20) as sock:
        sock.sendall(b"first message;")
        sock.sendall(b"second message;")
        time.sleep(0.5)  # the experiment: a reader that comes late finds both echoes waiting
        piece = sock.recv(65536)
    print(f"two sends of 14 and 15 bytes, one recv: {len(piece)} bytes: {piece!r}")


def framed(host: str, port: int) -> None:
    lines = [b"alpha", b"bravo charlie", b"delta"]
    with socket.create_connection((host, port), timeout=20) as sock:
        sock.sendall(b"".join(line + b"\n" for line in lines))
        sock.shutdown(socket.SHUT_WR)
        buffered, messages = b"", []
        while piece := sock.recv(4):  # tiny reads on purpose: framing must not care how bytes arrive
            buffered += piece
            while b"\n" in buffered:
                message, buffered = buffered.split(b"\n", 1)
                messages.append(message)
    print(f"framed by newlines: {len(messages)} messages back: {messages!r}")
    print("each whole" if messages == lines else "NOT whole")


def main() -> None:
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "one-send":
        one_send(host, port, int(sys.argv[4]))
    elif mode == "two-sends":
        two_sends(host, port)
    else:
        framed(host, port)


if __name__ == "__main__":
    main()
