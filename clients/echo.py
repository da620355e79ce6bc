"""``python -m clients.echo``: send bytes to an echo server and check they all come back.

Like the course's tmc.py it prints the size of every ``recv``, to show that TCP
delivers a stream in pieces of its own choosing, not in the pieces we sent. Unlike
tmc.py it sends with ``sendall`` from a second thread while reading, so a large
payload cannot deadlock with both sides' buffers full.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence

from clients.common import ClientError, client_parser, connect, run_client, udp_exchange
from protocols.echo import PORT


def echo_tcp(host: str, port: int, payload: bytes, *, timeout: float) -> tuple[bytes, list[int]]:
    """Send ``payload``, half-close, read to EOF; return what came back and each read's size."""
    with connect(host, port, timeout=timeout) as sock:
        errors: list[BaseException] = []

        def send_all() -> None:
            try:
                sock.sendall(payload)
                sock.shutdown(1)  # SHUT_WR: "that was everything", the server then closes
            except OSError as exc:
                errors.append(exc)

        sender = threading.Thread(target=send_all, daemon=True)
        sender.start()
        received = bytearray()
        sizes: list[int] = []
        try:
            while chunk := sock.recv(1 << 20):
                received += chunk
                sizes.append(len(chunk))
        except TimeoutError as exc:
            raise ClientError(f"echo from {host}:{port} stalled after {len(received)} bytes") from exc
        except OSError as exc:
            raise ClientError(f"echo from {host}:{port} broke after {len(received)} bytes ({exc})") from exc
        sender.join(timeout)
        if errors:
            raise ClientError(f"sending to {host}:{port} failed: {errors[0]}")
        return bytes(received), sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = client_parser("echo", "Send bytes to an echo server and check the reply.", host="echo", port=PORT)
    parser.add_argument("message", nargs="*", help="text to send (default: standard input)")
    parser.add_argument("--size", type=int, help="send this many random bytes instead of text")
    parser.add_argument("--udp", action="store_true", help="one datagram instead of a TCP stream")
    parser.add_argument("--quiet", action="store_true", help="print only the summary, not the data and read sizes")
    args = parser.parse_args(argv)
    if args.size is not None:
        if args.size < 0:
            parser.error("--size must be 0 or more")
        payload = os.urandom(args.size)
    elif args.message:
        payload = (" ".join(args.message) + "\n").encode()
    else:
        payload = sys.stdin.buffer.read()

    started = time.perf_counter()
    if args.udp:
        received = udp_exchange(args.host, args.port, payload, timeout=args.timeout)
        sizes = [len(received)]
    else:
        received, sizes = echo_tcp(args.host, args.port, payload, timeout=args.timeout)
    elapsed = time.perf_counter() - started

    if not args.quiet and args.size is None:
        sys.stdout.write(received.decode("utf-8", errors="replace"))
    if not args.quiet:
        shown = ", ".join(map(str, sizes[:20])) + (", ..." if len(sizes) > 20 else "")
        print(f"reads: {len(sizes)} ({shown} bytes)", file=sys.stderr)
    if received != payload:
        raise ClientError(f"echo mismatch: sent {len(payload)} bytes, got {len(received)} back, not identical")
    print(f"ok: {len(payload)} bytes echoed in {elapsed * 1000:.1f} ms", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_client(main))
