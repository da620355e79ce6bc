"""A listening socket nobody accepts from for a while, and what the kernel counted meanwhile.

python3 backlog_server.py PORT CONTROL_PORT BACKLOG

PORT is listened on with BACKLOG and left alone. A client connects to CONTROL_PORT and sends
"go N PAUSE": the server waits PAUSE seconds (a busy program), reports its accept queue, raises
the backlog to N, accepts N connections on PORT, and sends back what it saw, one line each.
"""

import socket
import sys
import time

LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


def counters() -> dict[str, int]:
    """The TcpExt counters of this network namespace (what nstat and netstat -s read)."""
    with open("/proc/net/netstat") as table:
        lines = table.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith("TcpExt:"):
            return dict(zip(names.split()[1:], map(int, values.split()[1:]), strict=True))
    return {}


def accept_queue(port: int) -> int:
    """How many connections wait in ``port``'s accept queue: /proc/net/tcp's rx_queue, for a listening socket."""
    with open("/proc/net/tcp") as table:
        for row in list(table)[1:]:
            fields = row.split()
            if fields[3] == LISTEN and int(fields[1].split(":")[1], 16) == port:
                return int(fields[4].split(":")[1], 16)  # tx_queue:rx_queue
    return -1


def main() -> None:
    port, control_port, backlog = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    listener = socket.create_server(("", port), backlog=backlog)
    control = socket.create_server(("", control_port))
    print(f"listening on {port} with backlog {backlog}; nobody accepts yet", flush=True)
    while True:
        conn, _peer = control.accept()
        with conn, conn.makefile("rw") as line:
            words = line.readline().split()
            if len(words) != 3 or words[0] != "go":
                continue  # the lab's readiness probe, or a stray line
            wanted, pause = int(words[1]), float(words[2])
            before = counters()
            time.sleep(pause)  # the experiment: a program busy elsewhere, accepting nothing
            waiting = accept_queue(port)
            report = [f"after {pause:g} s without accept: {waiting} waiting to be accepted, backlog {backlog}"]
            listener.listen(wanted)  # listen() again only changes the backlog: room for the retries
            accepted, deadline = [], time.monotonic() + 20
            listener.settimeout(1)
            while len(accepted) < wanted and time.monotonic() < deadline:
                try:
                    accepted.append(listener.accept()[0])
                except TimeoutError:
                    continue
            after = counters()
            report.append(f"accepted {len(accepted)} connections")
            for name in ("ListenOverflows", "ListenDrops"):
                report.append(f"{name}: +{after.get(name, 0) - before.get(name, 0)}")
            for sock in accepted:
                sock.close()
            line.write("\n".join(report) + "\n")
            print("\n".join(report), flush=True)


if __name__ == "__main__":
    main()
