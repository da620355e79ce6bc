"""Send one datagram to HOST PORT, where nothing listens, three ways; say what came back and when.

python3 probe.py unconnected|connected|timeout HOST PORT
"""

import socket
import sys
import time


def main() -> None:
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    began = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        if mode == "connected":
            sock.connect((host, port))  # UDP's connect sends nothing: it fixes the peer, so errors can be reported
            sock.send(b"hello?")
        else:
            if mode == "timeout":
                sock.settimeout(2.0)
            sock.sendto(b"hello?", (host, port))
        print(f"{mode}: sent 6 bytes to {host}:{port}; waiting for a reply", flush=True)
        try:
            data = sock.recv(1024)
            print(f"reply: {data!r}")
        except ConnectionRefusedError as exc:
            print(f"ConnectionRefusedError after {time.monotonic() - began:.3f} s: {exc}")
        except TimeoutError as exc:  # socket.timeout is TimeoutError since Python 3.10
            print(f"socket.timeout after {time.monotonic() - began:.1f} s: {exc}")


if __name__ == "__main__":
    main()
