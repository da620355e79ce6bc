"""The course's therapy server: one recv for one message.

What is wrong: like the chat server it came from, it reads one ``recv`` and
answers it as one sentence. Lines the client sends together get one answer,
half a line gets an answer of its own, and the empty line that should end the
session is a message like any other (only the client's close ends it here).
Typed by hand, one line at a time, it looks right.

The fix: read whole lines from a buffer (``conn.makefile("rb")`` and
``readline``, or protocols/framing.py), answer each, and end the session on an
empty line with a farewell.

    python3 examples/mistakes/doctor_one_recv.py --port 5051
    python3 -m clients.check doctor 127.0.0.1:5051
"""

import argparse
import random
import socket
import threading

HEDGES = ["Please tell me more.", "Go on.", "Why do you say that?", "And what do you think about this?"]


def handle(conn: socket.socket) -> None:
    with conn:
        conn.sendall(b"Good day. What can I do for you?\n")
        while True:
            message = conn.recv(1024).decode("utf-8", errors="replace")  # WRONG: one recv is not one line
            if not message:
                break
            conn.sendall((random.choice(HEDGES) + "\n").encode())


def main() -> None:
    parser = argparse.ArgumentParser(description="the doctor, one recv per message (wrong on purpose)")
    parser.add_argument("--host", default="")
    parser.add_argument("--port", type=int, default=5001)
    args = parser.parse_args()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((args.host, args.port))
    server.listen(5)
    print(f"ready port={server.getsockname()[1]}", flush=True)
    while True:
        conn, _address = server.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
