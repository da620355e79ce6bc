"""Resolve names from this node: which of its own networks each address is on, and who answered.

python3 names.py NAME ...   gethostbyname for each NAME; then the same names asked of the DNS server directly
"""

import fcntl
import ipaddress
import socket
import struct
import sys

SIOCGIFADDR, SIOCGIFNETMASK = 0x8915, 0x891B  # the ioctls ifconfig uses: an interface's address and mask


def interfaces() -> dict[str, ipaddress.IPv4Interface]:
    """This node's IPv4 addresses by interface (the node has no ip or ifconfig, so ask the kernel directly)."""
    found = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _index, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode())
            try:
                address = socket.inet_ntoa(fcntl.ioctl(sock, SIOCGIFADDR, request)[20:24])
                mask = socket.inet_ntoa(fcntl.ioctl(sock, SIOCGIFNETMASK, request)[20:24])
            except OSError:  # an interface without an IPv4 address
                continue
            found[name] = ipaddress.IPv4Interface(f"{address}/{mask}")
    return found


def in_hosts_file(name: str) -> bool:
    with open("/etc/hosts") as hosts:
        return any(name in line.split("#")[0].split()[1:] for line in hosts)


def ask_dns(server: str, name: str) -> str:
    """One A query to ``server`` (RFC 1035 by hand): the addresses, or the error code it answered with."""
    query = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)  # id, recursion desired, one question
    query += b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    query += struct.pack("!HH", 1, 1)  # type A, class IN
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(query, (server, 53))
        reply = sock.recv(1500)
    code, answers = reply[3] & 0x0F, struct.unpack_from("!H", reply, 6)[0]
    if code:
        return {3: "NXDOMAIN (no such name)", 2: "SERVFAIL", 5: "REFUSED"}.get(code, f"error code {code}")
    # Each answer after the question: a name (labels, or a 2-byte pointer), type, class, ttl, length, data.
    offset, found = len(query), []
    for _ in range(answers):
        while reply[offset] and reply[offset] & 0xC0 != 0xC0:
            offset += reply[offset] + 1
        offset += 2 if reply[offset] & 0xC0 == 0xC0 else 1
        kind, _class, _ttl, length = struct.unpack_from("!HHIH", reply, offset)
        if kind == 1:
            found.append(socket.inet_ntoa(reply[offset + 10 : offset + 10 + length]))
        offset += 10 + length
    return ", ".join(found) or "no address"


def main() -> None:
    with open("/etc/resolv.conf") as conf:
        servers = [line.split()[1] for line in conf if line.startswith("nameserver")]
    print(f"{socket.gethostname()}: resolver {', '.join(servers)}")
    mine = interfaces()
    print("my addresses: " + ", ".join(f"{name} {iface}" for name, iface in mine.items()))
    for name in sys.argv[1:]:
        try:
            address = ipaddress.IPv4Address(socket.gethostbyname(name))
        except socket.gaierror as exc:
            print(f"{name}: socket.gaierror ({exc.strerror})")
            continue
        where = [n for n, iface in mine.items() if address in iface.network]
        network = f"on my network {where[0]}" if where else "not on any network of mine"
        print(f"{name} -> {address} ({network}; {'from /etc/hosts' if in_hosts_file(name) else 'from DNS'})")
    for name in sys.argv[1:]:
        print(f"asked {servers[0]} directly: {name}: {ask_dns(servers[0], name)}")


if __name__ == "__main__":
    main()
