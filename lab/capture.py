"""Capture a node's or a network's packets to a pcap file, with tcpdump in a sidecar.

* A **node**: the sidecar joins the node's network namespace (``--network container:<node>``) and
  captures on ``any`` (or on ``node.interface``), so the node keeps ``cap_drop: [ALL]``. The file
  has link type ``LINUX_SLL2``.
* A **network**: the sidecar runs in the engine's own namespace (``--network host``) and captures on
  the network's bridge, ``br-<id12>`` (or the name in ``com.docker.network.bridge.name``); tcpdump
  puts the bridge in promiscuous mode, so it sees the frames the bridge forwards between containers,
  not only those for the host. Link type ``EN10MB``. Only ``bridge`` networks have such a device: an
  overlay network (Swarm) is refused with a hint to capture on its nodes.

The sidecar writes into its own writable layer (not a tmpfs, which would vanish when tcpdump exits),
the file is copied out with the archive API, checked to be a pcap, and the sidecar removed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import struct
import tarfile
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
import requests.exceptions
from docker.models.containers import Container

from lab import engine
from lab.impair import sidecar as sidecars
from lab.impair.links import node_links, resolve_scope
from lab.impair.sidecar import ImpairError
from lab.model import NetworkRef, NodeRef

PCAP_IN_SIDECAR = "/var/tmp/capture.pcap"
# tcpdump -Z root still calls setgroups/setuid, which need SETGID/SETUID even for root.
CAPTURE_CAPS = ("NET_RAW", "NET_ADMIN", "SETUID", "SETGID")
MIN_DURATION = 0.1  # seconds
GRACE = 30.0  # seconds beyond the duration for tcpdump to start, flush and exit

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276


class CaptureError(ImpairError):
    """A capture could not be made, or what came back is not a pcap."""


# --------------------------------------------------------------------------- pcap files (pure)


@dataclass(frozen=True)
class Pcap:
    """A classic pcap file, read whole: its link type and frames."""

    link_type: int
    nanoseconds: bool
    frames: tuple[bytes, ...]


_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", False),
    b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True),
    b"\xa1\xb2\x3c\x4d": (">", True),
}


def read_pcap(data: bytes) -> Pcap:
    """Parse a pcap file (either byte order, micro- or nanosecond); ValueError if it is not one.

    A record cut short at the end (tcpdump killed mid-write) is dropped, not an error.
    """
    if len(data) < 24 or data[:4] not in _MAGIC:
        raise ValueError(f"not a pcap file (starts with {data[:4].hex() or 'nothing'})")
    order, nanoseconds = _MAGIC[data[:4]]
    link_type = struct.unpack_from(f"{order}I", data, 20)[0] & 0x0FFFFFFF  # the top bits carry FCS flags
    record = struct.Struct(f"{order}IIII")
    frames = []
    offset = 24
    while offset + record.size <= len(data):
        _sec, _frac, captured, _original = record.unpack_from(data, offset)
        offset += record.size
        if offset + captured > len(data):
            break
        frames.append(data[offset : offset + captured])
        offset += captured
    return Pcap(link_type, nanoseconds, tuple(frames))


@dataclass(frozen=True)
class Packet:
    """The IP view of a captured frame: protocol number (6 TCP, 17 UDP, 1 ICMP...), addresses, ports."""

    protocol: int
    src: str
    dst: str
    sport: int | None = None
    dport: int | None = None
    flags: int | None = None  # TCP's flags byte (SYN 0x02, ACK 0x10, FIN 0x01, RST 0x04, PSH 0x08)
    payload: int = 0  # bytes of TCP or UDP payload (IPv4; 0 when not known)


def _ethertype_and_payload(link_type: int, frame: bytes) -> tuple[int, bytes] | None:
    if link_type == LINKTYPE_ETHERNET and len(frame) >= 14:
        ethertype, offset = struct.unpack_from("!H", frame, 12)[0], 14
        while ethertype in (0x8100, 0x88A8) and len(frame) >= offset + 4:  # VLAN tags
            ethertype, offset = struct.unpack_from("!H", frame, offset + 2)[0], offset + 4
        return ethertype, frame[offset:]
    if link_type == LINKTYPE_LINUX_SLL2 and len(frame) >= 20:
        return struct.unpack_from("!H", frame, 0)[0], frame[20:]
    if link_type == LINKTYPE_LINUX_SLL and len(frame) >= 16:
        return struct.unpack_from("!H", frame, 14)[0], frame[16:]
    if link_type == LINKTYPE_RAW and frame:
        return (0x86DD if frame[0] >> 4 == 6 else 0x0800), frame
    return None


def decode(link_type: int, frame: bytes) -> Packet | None:
    """The IP header (and TCP/UDP ports) of a frame, or None if it carries no IP packet we can read."""
    found = _ethertype_and_payload(link_type, frame)
    if found is None:
        return None
    ethertype, ip = found
    if ethertype == 0x0800 and len(ip) >= 20 and ip[0] >> 4 == 4:
        header = (ip[0] & 0x0F) * 4
        protocol = ip[9]
        src, dst = str(ipaddress.IPv4Address(ip[12:16])), str(ipaddress.IPv4Address(ip[16:20]))
    elif ethertype == 0x86DD and len(ip) >= 40 and ip[0] >> 4 == 6:
        header = 40  # extension headers are not followed: ports stay None for them
        protocol = ip[6]
        src, dst = str(ipaddress.IPv6Address(ip[8:24])), str(ipaddress.IPv6Address(ip[24:40]))
    else:
        return None
    if protocol in (6, 17) and len(ip) >= header + 4:
        sport, dport = struct.unpack_from("!HH", ip, header)
        if protocol == 6 and len(ip) >= header + 14:
            flags, transport_header = ip[header + 13], (ip[header + 12] >> 4) * 4
        else:
            flags, transport_header = None, 8
        # IPv4's total length, not the frame's: a capture may cut the frame (snaplen) or pad it (Ethernet minimum).
        total = struct.unpack_from("!H", ip, 2)[0] if ethertype == 0x0800 else 0
        return Packet(protocol, src, dst, sport, dport, flags, max(total - header - transport_header, 0))
    return Packet(protocol, src, dst)


def packets(path: Path) -> tuple[int, list[Packet]]:
    """The link type of a pcap file and its frames decoded as IP packets (non-IP frames skipped)."""
    pcap = read_pcap(path.read_bytes())
    decoded = (decode(pcap.link_type, frame) for frame in pcap.frames)
    return pcap.link_type, [p for p in decoded if p is not None]


PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}


@dataclass(frozen=True)
class Captured:
    """A finished capture: the pcap file, and its packets decoded for a test to assert on."""

    path: Path
    link_type: int
    packets: tuple[Packet, ...]

    def summary(self) -> dict[str, int]:
        """Packets per flow and destination port, like ``{"tcp 10.0.0.3 -> 10.0.0.2:13": 4}``."""
        counts: dict[str, int] = {}
        for packet in self.packets:
            kind = PROTOCOL_NAMES.get(packet.protocol, str(packet.protocol))
            to = f"{packet.dst}:{packet.dport}" if packet.dport is not None else packet.dst
            key = f"{kind} {packet.src} -> {to}"
            counts[key] = counts.get(key, 0) + 1
        return counts


def captured(path: Path) -> Captured:
    """Read a pcap file written by ``capture``."""
    link_type, found = packets(path)
    return Captured(path, link_type, tuple(found))


# --------------------------------------------------------------------------- capturing


def tcpdump_command(
    interface: str, *, duration: float | None, count: int | None, expression: Sequence[str]
) -> list[str]:
    """The sidecar's command: tcpdump writing packet by packet (``-U``, so a cut-off capture stays readable).

    ``--immediate-mode``: libpcap's TPACKET_V3 ring hands packets over a block at a time, when the
    block fills or its timeout (1 s) expires, and a tcpdump stopped before that never sees them. A
    short exchange stopped right after it ends (``lab exercise``'s captured steps) came back as an
    empty file, 24 bytes of header; with immediate mode every packet is handed over as it comes.
    """
    argv = ["tcpdump", "-Z", "root", "-U", "--immediate-mode", "-n", "-i", interface, "-w", PCAP_IN_SIDECAR]
    if count is not None:
        argv += ["-c", str(count)]
    argv += list(expression)
    if duration is not None:
        # SIGINT, not timeout's SIGTERM default: tcpdump flushes and prints its counts on either,
        # but SIGINT is what it documents as "stop capturing".
        argv = ["timeout", "-s", "INT", f"{duration:.3f}", *argv]
    return argv


def _bridge_interface(attrs: dict[str, object], name: str) -> str:
    driver = attrs.get("Driver")
    if driver != "bridge":
        raise CaptureError(
            f"network {name} uses the {driver} driver, which has no bridge to capture on; capture on its nodes instead"
        )
    options = attrs.get("Options") or {}
    assert isinstance(options, dict)
    return str(options.get("com.docker.network.bridge.name") or f"br-{str(attrs['Id'])[:12]}")


def capture(
    target: NodeRef | NetworkRef,
    output: Path,
    *,
    duration: float | None,
    count: int | None,
    expression: Sequence[str] = (),
) -> Path:
    """Capture ``target``'s packets for ``duration`` seconds and/or until ``count`` packets; return ``output``.

    ``expression`` is a tcpdump filter (``["tcp", "port", "7"]``). Interrupted (Ctrl-C), what was
    captured so far is still saved before the interrupt goes on.
    """
    if duration is None and count is None:
        raise ValueError("give a duration, a packet count, or both (a capture must end)")
    if duration is not None and not duration >= MIN_DURATION:
        # timeout(1) reads 0 as "no limit": 0.0004 s once became a capture without end.
        raise ValueError(f"duration: {duration!r} is shorter than {MIN_DURATION} s (give at least {MIN_DURATION})")
    check_output(output)
    if count is not None and count < 1:
        raise ValueError(f"count: {count!r} must be at least 1")
    if isinstance(target, NetworkRef):
        try:
            network = engine.client().networks.get(target.docker_name)
        except docker.errors.NotFound:
            raise CaptureError(f"no network {target.docker_name}", "is the lab up?") from None
        interface = _bridge_interface(network.attrs, target.docker_name)
        network_mode, what = "host", f"network {target.network}"
    else:
        node = engine.running_container(target.container)
        interface = resolve_scope(target, node, node_links(node)).interface or "any"
        network_mode, what = f"container:{node.id}", f"node {target.node}"
    sidecar = sidecars.start(
        project=target.project,
        role="capture",
        command=tcpdump_command(interface, duration=duration, count=count, expression=expression),
        network_mode=network_mode,
        caps=CAPTURE_CAPS,
        name=f"{target.project}-capture-{uuid.uuid4().hex[:8]}",
        labels={"testbed.capture": what},
    )
    try:
        interrupted = False
        try:
            code = _wait(sidecar, None if duration is None else duration + GRACE)
        except KeyboardInterrupt:
            interrupted = True
            code = _stop(sidecar)
        if code is None:
            _stop(sidecar)
            raise CaptureError(f"tcpdump on {what} ({interface}) did not finish: {engine.logs(sidecar)}")
        if code not in (0, 124) and not interrupted:  # 124: timeout ended it, as asked
            raise CaptureError(f"tcpdump on {what} ({interface}) exited {code}: {engine.logs(sidecar)}")
        _copy_out(sidecar, output)
        if interrupted:
            raise KeyboardInterrupt
    finally:
        with contextlib.suppress(docker.errors.APIError):
            sidecar.remove(force=True)
    try:
        read_pcap(output.read_bytes()[:24])
    except ValueError as exc:
        raise CaptureError(f"{output}: {exc}") from None
    return output


def check_output(output: Path) -> None:
    """Refuse, before capturing, an output that is a folder or a symbolic link (which would be followed)."""
    if output.is_symlink():
        raise CaptureError(f"{output} is a symbolic link", "give a plain file name; it is not followed")
    if output.is_dir():
        raise CaptureError(f"{output} is a folder", f"give a file name, like {output / 'capture.pcap'}")
    if not output.parent.is_dir() and output.parent.exists():
        raise CaptureError(f"{output.parent} is not a folder", "give a path in a folder")


def _wait(sidecar: Container, timeout: float | None) -> int | None:
    """The sidecar's exit code, or None if it still runs after ``timeout`` seconds."""
    try:
        status: dict[str, Any] = dict(sidecar.wait(timeout=timeout))
    except requests.exceptions.RequestException:  # the SDK lets the HTTP read timeout through
        return None
    return int(status.get("StatusCode", -1))


def _stop(sidecar: Container) -> int | None:
    """Ask tcpdump to finish (SIGINT through the sidecar's init: it flushes the file) and wait for it."""
    with contextlib.suppress(docker.errors.APIError):
        sidecar.kill(signal="SIGINT")
    code = _wait(sidecar, 10)
    if code is None:
        with contextlib.suppress(docker.errors.APIError):
            sidecar.kill()
    return code


def _copy_out(sidecar: Container, output: Path) -> None:
    """Copy the pcap out of the (stopped) sidecar through the archive API."""
    try:
        chunks, _stat = sidecar.get_archive(PCAP_IN_SIDECAR)
    except docker.errors.NotFound:
        raise CaptureError(f"tcpdump wrote no file: {engine.logs(sidecar)}") from None
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as spool:
        for chunk in chunks:
            spool.write(chunk)
        spool.seek(0)
        with tarfile.open(fileobj=spool) as archive:
            member = next((m for m in archive.getmembers() if m.isfile()), None)
            source = archive.extractfile(member) if member is not None else None
            if source is None:
                raise CaptureError("the sidecar's archive holds no pcap file")
            # O_NOFOLLOW: a link planted at the output path since the check is refused, not followed.
            descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(descriptor, "wb") as sink:
                shutil.copyfileobj(source, sink)


__all__ = ["CaptureError", "Packet", "Pcap", "capture", "decode", "packets", "read_pcap"]
