"""The TCP sockets listening in this node, read from /proc/net/tcp (the node has no ss or netstat).

python3 listeners.py
"""

import ipaddress
import struct

LISTEN = "0A"  # the kernel's TCP_LISTEN state, in hex as /proc/net/tcp writes it

with open("/proc/net/tcp") as table:
    next(table)  # the header
    for row in table:
        local, state = row.split()[1], row.split()[3]
        if state == LISTEN:
            address, port = local.split(":")
            # the kernel prints the address as a 32-bit number in hex: packed in host order, it is the address's bytes
            ip = ipaddress.IPv4Address(struct.pack("=I", int(address, 16)))
            print(f"LISTEN {ip}:{int(port, 16)}")
