"""Send one line and wait for the answer, with or without a timeout; say how long it took.

python3 ask.py blocking HOST PORT            recv with no timeout (the default)
python3 ask.py timeout  HOST PORT SECONDS    sock.settimeout(SECONDS) first
python3 ask.py default  HOST PORT SECONDS    socket.setdefaulttimeout(SECONDS) before the socket exists
"""

import socket
import sys
import time


def main() -> None:
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else None
    if mode == "default":
        socket.setdefaulttimeout(seconds)
    sock = socket.create_connection((host, port))  # no timeout argument: the default applies
    if mode == "timeout":
        sock.settimeout(seconds)
    print(f"{mode}: the socket's timeout is {sock.gettimeout()}", flush=True)
    sock.sendall(b"are you there?\n")
    print("sent a line; waiting in recv...", flush=True)
    began = time.monotonic()
    try:
        answer = sock.recv(1024)
        print(f"answered after {time.monotonic() - began:.2f} s: {answer!r}")
    except TimeoutError as exc:  # socket.timeout is TimeoutError since Python 3.10
        print(f"socket.timeout ({exc}) after {time.monotonic() - began:.2f} s")
    finally:
        sock.close()


if __name__ == "__main__":
    main()
