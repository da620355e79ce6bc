"""Open N connections at once, without waiting for each, and say when each one was established.

python3 many_clients.py HOST PORT CONTROL_PORT N PAUSE
"""

import collections
import errno
import selectors
import socket
import sys
import time


def seconds_counts(seconds: list[float]) -> dict[int, int]:
    return dict(collections.Counter(int(s) for s in seconds))


def syn_timeouts() -> str:
    """The sysctls that time a client's SYN retries (tcp_syn_linear_timeouts exists since Linux 6.5)."""
    found = []
    for name in ("tcp_syn_retries", "tcp_syn_linear_timeouts"):
        try:
            with open(f"/proc/sys/net/ipv4/{name}") as value:
                found.append(f"{name}={value.read().strip()}")
        except OSError:
            found.append(f"{name} absent")
    return ", ".join(found)


def main() -> None:
    host, port, control_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    count, pause = int(sys.argv[4]), float(sys.argv[5])
    address = socket.gethostbyname(host)
    control = socket.create_connection((address, control_port), timeout=60)
    control.sendall(f"go {count} {pause}\n".encode())
    selector = selectors.DefaultSelector()
    began = time.monotonic()
    for _ in range(count):  # every SYN leaves now; connect_ex does not wait for the handshake
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex((address, port))
        if code not in (errno.EINPROGRESS, 0):
            sys.exit(f"connect: {errno.errorcode[code]}")
        selector.register(sock, selectors.EVENT_WRITE)
    print(f"{count} connects started in {time.monotonic() - began:.2f} s", flush=True)
    seconds: list[float] = []
    failed = collections.Counter[str]()
    while len(seconds) + sum(failed.values()) < count and time.monotonic() - began < 40:
        for key, _events in selector.select(timeout=1):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            selector.unregister(sock)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                failed[errno.errorcode[error]] += 1
            else:
                seconds.append(time.monotonic() - began)
                # One byte: if the server dropped our handshake's last ACK (its queue was full), this completes it.
                sock.send(b"x")
    print(f"established in the first second (first SYN): {sum(s < 1 for s in seconds)}")
    later = sorted(s for s in seconds if s >= 1)
    print(f"established after a retransmitted SYN (1 s or later): {len(later)}", end="")
    print(f", between {later[0]:.2f} and {later[-1]:.2f} s" if later else "")
    print("established per second: " + ", ".join(f"{n} s: {k}" for n, k in sorted(seconds_counts(seconds).items())))
    print(f"this kernel's SYN retransmissions: {syn_timeouts()}")
    print(f"failed: {dict(failed) or 0}")
    print("the server says:")
    print(control.makefile().read().rstrip())


if __name__ == "__main__":
    main()
