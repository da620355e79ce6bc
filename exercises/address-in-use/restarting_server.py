"""A server that says goodbye first, then restarts: a new listening socket on the same port.

python3 restarting_server.py PORT plain|reuse     reuse: every socket it binds sets SO_REUSEADDR

After a session it closes the client's connection itself (so the TIME_WAIT is on this side),
counts the port's TIME_WAIT connections in /proc/net/tcp, closes its listening socket and binds a
new one. A restart in the same process is the same to the kernel as a new process: the port's
state belongs to the kernel. If the bind fails, the "plain" server also tries SO_REUSEADDR on the
new socket alone, then gives up (it would have to wait for the TIME_WAIT to end).
"""

import socket
import sys
import threading
import time

TIME_WAIT = "06"  # the kernel's TCP_TIME_WAIT in /proc/net/tcp
LOG = "/tmp/restarting_server.log"  # what it printed, also kept where restart_log.py can wait for it


def say(line: str) -> None:
    print(line, flush=True)
    with open(LOG, "a") as log:
        log.write(line + "\n")


def listen(port: int, *, reuse: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuse:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("", port))
    except OSError:
        sock.close()
        raise
    sock.listen()
    return sock


def time_waits(port: int) -> int:
    """The port's connections in TIME_WAIT, once there is one (up to 2 s: it follows the client's FIN)."""
    deadline = time.monotonic() + 2
    while True:
        with open("/proc/net/tcp") as table:
            rows = [row.split() for row in list(table)[1:]]
        found = sum(1 for r in rows if r[3] == TIME_WAIT and int(r[1].split(":")[1], 16) == port)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def restart(port: int, reuse: bool) -> socket.socket | None:
    attempts = [reuse] if reuse else [False, True]
    for with_reuse in attempts:
        how = "with SO_REUSEADDR" if with_reuse else "without SO_REUSEADDR"
        try:
            listener = listen(port, reuse=with_reuse)
        except OSError as exc:
            say(f"restart: bind {how}: OSError [Errno {exc.errno}] {exc.strerror}")
            continue
        say(f"restart: bind {how}: ok, listening again")
        return listener
    say("restart: gave up; the port is free only once the TIME_WAIT ends")
    return None


def main() -> None:
    port, reuse = int(sys.argv[1]), sys.argv[2] == "reuse"
    listener: socket.socket | None = listen(port, reuse=reuse)
    say(f"listening on {port} {'with' if reuse else 'without'} SO_REUSEADDR")
    while listener is not None:
        conn, peer = listener.accept()
        with conn:
            if not conn.recv(100):
                continue  # a client that said nothing, like the lab's readiness probe: it closed first
            conn.sendall(b"goodbye\n")
        # We closed first: our end of that connection now waits in TIME_WAIT.
        say(f"served {peer[0]}:{peer[1]} and closed first; TIME_WAIT on port {port}: {time_waits(port)}")
        listener.close()
        listener = restart(port, reuse)
    threading.Event().wait()  # stay up, listening on nothing, for the lab


if __name__ == "__main__":
    main()
