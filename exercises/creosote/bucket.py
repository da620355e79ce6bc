"""Spew messages at creosote and count, by asking the sink, how many became records.

python3 bucket.py lines   HOST N SINK           N messages of one datagram each, sent to HOST
python3 bucket.py chunked HOST N SIZE SINK      N messages of SIZE bytes each, chunked by spew

HOST is the sink or a redirector in front of it. The sink's record count comes from its ping
(clients.spew.ping), before and after; the pings are retried, since they may be lost too.
"""

import sys
import time

from clients.spew import Spewer, ping
from common.errors import TestbedError


def records(sink: str) -> int:
    for _attempt in range(20):
        try:
            return ping(sink, timeout=0.5)
        except TestbedError:  # no pong: lost on the way there or back
            continue
    sys.exit(f"no pong from {sink} in 20 tries")


def settled(sink: str, before: int) -> int:
    """How many records the sink gained, once that number has stopped growing for half a second."""
    last, still = records(sink), time.monotonic()
    while time.monotonic() - still < 0.5:
        time.sleep(0.1)  # polling the sink's count: it ends as soon as it has held still for 0.5 s
        now = records(sink)
        if now != last:
            last, still = now, time.monotonic()
    return last - before


def main() -> None:
    mode, host = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3])
    size = int(sys.argv[4]) if mode == "chunked" else 10
    sink = sys.argv[-1]
    before = records(sink)
    datagrams = 0
    with Spewer(host, 7739) as spewer:
        for i in range(count):
            message = f"message {i:04d} ".encode().ljust(size, b".")
            datagrams += spewer.send(message)
            time.sleep(0.002)  # a steady trickle: the loss is the link's, not a full receive buffer's
    gained = settled(sink, before)
    if mode == "chunked":
        time.sleep(1.5)  # past the sink's reassembly timeout (1 s in lab.yaml): it has given up the partial ones
    print(f"sent {count} messages of {size} bytes in {datagrams} datagrams to {host}")
    print(f"{gained} of {count} messages arrived whole at the sink; lost {count - gained} of {count}")


if __name__ == "__main__":
    main()
