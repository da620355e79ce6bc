"""Send SIZE bytes to a slow reader in one of three ways and say what each call returned.

python3 sender.py once     HOST PORT SIZE   one send() on a socket with a timeout, then close
python3 sender.py blocking HOST PORT SIZE   one send() on a blocking socket, then close
python3 sender.py sendall  HOST PORT SIZE   sendall(), then close
python3 sender.py loop     HOST PORT SIZE   send() in a loop until all is sent: what sendall does
"""

import socket
import sys
import time


def main() -> None:
    mode, host, port, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    payload = bytes(size)
    with socket.create_connection((host, port), timeout=30) as sock:
        if mode == "blocking":
            sock.settimeout(None)
        sock.sendall(f"{mode}\n".encode())
        began = time.monotonic()
        if mode in ("once", "blocking"):
            sent = sock.send(payload)
            print(f"{mode}: send returned {sent} of {size} bytes after {time.monotonic() - began:.2f} s")
        elif mode == "sendall":
            sock.sendall(payload)
            print(f"sendall: returned after {time.monotonic() - began:.2f} s; all {size} bytes are with the kernel")
        else:
            sent, calls, view = 0, 0, memoryview(payload)
            while sent < size:
                sent += sock.send(view[sent:])  # what was not taken is offered again
                calls += 1
            print(f"loop: {size} bytes in {calls} send calls after {time.monotonic() - began:.2f} s")


if __name__ == "__main__":
    main()
