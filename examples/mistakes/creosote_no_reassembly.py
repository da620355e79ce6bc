"""The course's log bucket: every datagram is a record, chunks and all.

What is wrong: the course's ``spew`` cut a long message into bare slices and the
bucket printed whatever each ``recvfrom`` returned, so one long message became
many records and nothing said which slice was missing or came twice. This sink
answers the probe (so it looks healthy) and records each datagram as it comes:
a message sent as spew chunks (``\\0creosote1 <id> <i>/<n>`` headers) becomes
n records.

The fix: recognise chunk headers and reassemble (``protocols.creosote.Reassembler``),
recording one message when its last missing chunk arrives, in any order.

    python3 examples/mistakes/creosote_no_reassembly.py --port 7740
    python3 -m clients.check creosote 127.0.0.1:7740
"""

import argparse
import socket

PING = b"\x00creosote:ping"


def main() -> None:
    parser = argparse.ArgumentParser(description="log sink without reassembly (wrong on purpose)")
    parser.add_argument("--host", default="")
    parser.add_argument("--port", type=int, default=7739)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.host, args.port))
    print(f"ready port={sock.getsockname()[1]}", flush=True)
    records = 0
    while True:
        data, address = sock.recvfrom(65535)
        if data == PING:
            sock.sendto(f"creosote:pong records={records}\n".encode(), address)
            continue
        records += 1  # WRONG: a chunk is a piece of a message, not a record
        print(repr(data)[2:-1][:120], flush=True)


if __name__ == "__main__":
    main()
