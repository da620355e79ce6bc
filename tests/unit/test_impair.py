"""lab.impair and lab.capture without Docker: planning, undoing from real listings, pcap reading.

The teardown is derived from what a namespace lists. The listings below were printed by
``iptables -S`` (nf_tables 1.8.9) and ``tc qdisc show`` in the node image, after running
this module's own plans there (whole node, one interface, a partition) beside rules that
are not ours, so the parser meets the text iptables really writes (``--set-xmark``,
quoted comments, ``/32`` suffixes, rounded probabilities).
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from lab import capture
from lab.impair import plan
from lab.impair.plan import Link, Scope
from lab.model import Impairment, NodeRef

# --------------------------------------------------------------------------- planning

# ``ip -o link show``: one line per interface, the link details after a backslash.
IP_LINK = "".join(
    f"{head} mtu 1500 qdisc noqueue state UP mode DEFAULT group default \\    link/{tail}\n"
    for head, tail in (
        ("1: lo: <LOOPBACK,UP,LOWER_UP>", "loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00"),
        ("2: tunl0@NONE: <NOARP>", "ipip 0.0.0.0 brd 0.0.0.0"),
        ("32: eth0@if33: <BROADCAST,MULTICAST,UP,LOWER_UP>", "ether 02:42:ac:11:00:02 brd ff:ff:ff:ff:ff:ff"),
        ("40: eth1@if41: <BROADCAST,MULTICAST,UP,LOWER_UP>", "ether 02:42:0a:00:01:05 brd ff:ff:ff:ff:ff:ff"),
    )
)
LINKS = plan.parse_links(IP_LINK)


def test_parse_links() -> None:
    links = plan.parse_links(IP_LINK)
    assert links == [
        Link(1, "lo", True, "00:00:00:00:00:00"),
        Link(2, "tunl0", False, ""),
        Link(32, "eth0", True, "02:42:ac:11:00:02"),
        Link(40, "eth1", True, "02:42:0a:00:01:05"),
    ]


def test_scopes() -> None:
    whole, one = Scope(), Scope("eth1", 40)
    assert (whole.label, whole.chain, whole.queue, whole.handle) == ("*", "TESTBED-IMP", 7357, "7e57:")
    assert (one.label, one.chain, one.queue, one.handle) == ("eth1", "TESTBED-IMP-eth1", 7397, "7e58:")
    assert whole.devices(LINKS) == ["eth0", "eth1"]  # up, and not lo
    assert one.devices(LINKS) == ["eth1"]


def commands(spec: Impairment) -> list[str]:
    steps = plan.plan_impairment(spec, Scope(), LINKS, backend="nfqueue", families=("iptables",))
    return [" ".join(c) for c in steps.commands]


def test_delay_is_an_nfqueue_rule_and_a_delay_line() -> None:
    spec = Impairment(delay_ms=80, jitter_ms=10)
    steps = plan.plan_impairment(spec, Scope(), LINKS, backend="nfqueue", families=("iptables",))
    assert [" ".join(c) for c in steps.commands] == [
        "iptables -w -t mangle -N TESTBED-IMP",
        "iptables -w -t mangle -A TESTBED-IMP -o lo -j RETURN",
        "iptables -w -t mangle -A TESTBED-IMP -m mark --mark 0x7e57 -j RETURN",
        "iptables -w -t mangle -A TESTBED-IMP -j NFQUEUE --queue-num 7357 --queue-bypass",
        "iptables -w -t mangle -A POSTROUTING -j TESTBED-IMP",
    ]
    assert steps.delayline == (
        "python3", "-m", "tools.delayline", "--queue", "7357", "--delay-ms", "80", "--jitter-ms", "10",
        "--mark", "0x7e57",
    )  # fmt: skip


def test_loss_comes_before_the_queue_and_rate_is_tbf_on_every_interface() -> None:
    assert commands(Impairment(delay_ms=20, loss_pct=5, rate_kbit=1000)) == [
        "iptables -w -t mangle -N TESTBED-IMP",
        "iptables -w -t mangle -A TESTBED-IMP -o lo -j RETURN",
        "iptables -w -t mangle -A TESTBED-IMP -m mark --mark 0x7e57 -j RETURN",
        "iptables -w -t mangle -A TESTBED-IMP -m statistic --mode random --probability 0.05"
        " -j NFQUEUE --queue-num 65535",
        "iptables -w -t mangle -A TESTBED-IMP -j NFQUEUE --queue-num 7357 --queue-bypass",
        "iptables -w -t mangle -A POSTROUTING -j TESTBED-IMP",
        "tc qdisc add dev eth0 root handle 7e57: tbf rate 1000kbit burst 6056 latency 100ms",
        "tc qdisc add dev eth1 root handle 7e57: tbf rate 1000kbit burst 6056 latency 100ms",
    ]


def test_loss_alone_needs_no_delay_line_and_rate_alone_no_iptables() -> None:
    steps = plan.plan_impairment(Impairment(loss_pct=0.5), Scope(), LINKS, backend="nfqueue")
    assert steps.delayline is None
    assert any("--probability 0.005 -j NFQUEUE --queue-num 65535" in " ".join(c) for c in steps.commands)
    assert {c[0] for c in steps.commands} == {"iptables", "ip6tables"}
    assert all(
        c[0] == "tc" for c in plan.plan_impairment(Impairment(rate_kbit=64), Scope(), LINKS, backend="nfqueue").commands
    )


def test_one_interface_gets_its_own_chain_queue_and_handle() -> None:
    scope = Scope("eth1", 40)
    steps = plan.plan_impairment(
        Impairment(delay_ms=5, rate_kbit=512), scope, LINKS, backend="nfqueue", families=("iptables",)
    )
    assert [" ".join(c) for c in steps.commands] == [
        "iptables -w -t mangle -N TESTBED-IMP-eth1",
        "iptables -w -t mangle -A TESTBED-IMP-eth1 -m mark --mark 0x7e57 -j RETURN",
        "iptables -w -t mangle -A TESTBED-IMP-eth1 -j NFQUEUE --queue-num 7397 --queue-bypass",
        "iptables -w -t mangle -A POSTROUTING -o eth1 -j TESTBED-IMP-eth1",
        "tc qdisc add dev eth1 root handle 7e58: tbf rate 512kbit burst 6056 latency 100ms",
    ]
    assert steps.delayline is not None and "7397" in steps.delayline


def test_netem_takes_everything_in_one_qdisc_per_interface() -> None:
    spec = Impairment(delay_ms=80, jitter_ms=0.5, loss_pct=5, rate_kbit=1000)
    steps = plan.plan_impairment(spec, Scope(), LINKS, backend="netem")
    assert [" ".join(c) for c in steps.commands] == [
        f"tc qdisc add dev {dev} root handle 7e57: netem limit 10000 delay 80000us 500us loss 5% rate 1000kbit"
        for dev in ("eth0", "eth1")
    ]
    assert steps.delayline is None


def test_nothing_to_do_is_an_empty_plan() -> None:
    assert plan.plan_impairment(Impairment(), Scope(), LINKS, backend="nfqueue") == plan.Plan(())
    assert plan.plan_impairment(Impairment(delay_ms=1), Scope(), [LINKS[0]], backend="netem") == plan.Plan(())


def test_tbf_bucket_is_ten_milliseconds_within_bounds() -> None:
    assert plan.tbf_burst_bytes(64) == 4 * 1514
    assert plan.tbf_burst_bytes(100_000) == 125_000
    assert plan.tbf_burst_bytes(100_000_000) == 1 << 20


def test_partition_commands_drop_both_directions_for_every_address() -> None:
    chain = "TESTBED-P-" + plan.partition_id("b", "a")
    assert plan.partition_id("a", "b") == plan.partition_id("b", "a") != plan.partition_id("a", "c")
    got = [" ".join(c) for c in plan.partition_commands(chain, ["10.0.0.2"], ["fd00::2"])]
    assert got == [
        f"iptables -w -N {chain}",
        f"iptables -w -A {chain} -s 10.0.0.2 -j DROP",
        f"iptables -w -A {chain} -d 10.0.0.2 -j NFQUEUE --queue-num 65535",
        f"iptables -w -I INPUT 1 -j {chain}",
        f"iptables -w -I OUTPUT 1 -j {chain}",
        f"ip6tables -w -N {chain}",
        f"ip6tables -w -A {chain} -s fd00::2 -j DROP",
        f"ip6tables -w -A {chain} -d fd00::2 -j NFQUEUE --queue-num 65535",
        f"ip6tables -w -I INPUT 1 -j {chain}",
        f"ip6tables -w -I OUTPUT 1 -j {chain}",
    ]


# --------------------------------------------------------------------------- undoing, from real listings

MANGLE_V4 = (
    "-P PREROUTING ACCEPT\n"
    "-P INPUT ACCEPT\n"
    "-P FORWARD ACCEPT\n"
    "-P OUTPUT ACCEPT\n"
    "-P POSTROUTING ACCEPT\n"
    "-N OTHER\n"
    "-N TESTBED-IMP\n"
    "-N TESTBED-IMP-eth0\n"
    "-A POSTROUTING -j TESTBED-IMP\n"
    "-A POSTROUTING -o eth0 -j TESTBED-IMP-eth0\n"
    "-A POSTROUTING -j OTHER\n"
    '-A OTHER -m comment --comment "keep me" -j MARK --set-xmark 0x1/0xffffffff\n'
    "-A TESTBED-IMP -o lo -j RETURN\n"
    "-A TESTBED-IMP -m mark --mark 0x7e57 -j RETURN\n"
    "-A TESTBED-IMP -m statistic --mode random --probability 0.04999999981 -j NFQUEUE --queue-num 65535\n"
    "-A TESTBED-IMP -j NFQUEUE --queue-num 7357 --queue-bypass\n"
    "-A TESTBED-IMP-eth0 -m statistic --mode random --probability 0.00999999978 -j NFQUEUE --queue-num 65535\n"
)
MANGLE_V6 = (
    "-P PREROUTING ACCEPT\n"
    "-P INPUT ACCEPT\n"
    "-P FORWARD ACCEPT\n"
    "-P OUTPUT ACCEPT\n"
    "-P POSTROUTING ACCEPT\n"
    "-N TESTBED-IMP\n"
    "-A POSTROUTING -j TESTBED-IMP\n"
    "-A TESTBED-IMP -o lo -j RETURN\n"
    "-A TESTBED-IMP -m mark --mark 0x7e57 -j RETURN\n"
    "-A TESTBED-IMP -m statistic --mode random --probability 0.04999999981 -j NFQUEUE --queue-num 65535\n"
    "-A TESTBED-IMP -j NFQUEUE --queue-num 7357 --queue-bypass\n"
)
FILTER_V4 = (
    "-P INPUT ACCEPT\n"
    "-P FORWARD ACCEPT\n"
    "-P OUTPUT ACCEPT\n"
    "-N TESTBED-P-0123456789\n"
    "-A INPUT -j TESTBED-P-0123456789\n"
    "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"
    "-A OUTPUT -j TESTBED-P-0123456789\n"
    "-A TESTBED-P-0123456789 -s 10.0.0.2/32 -j DROP\n"
    "-A TESTBED-P-0123456789 -d 10.0.0.2/32 -j NFQUEUE --queue-num 65535\n"
)
FILTER_V6 = (
    "-P INPUT ACCEPT\n"
    "-P FORWARD ACCEPT\n"
    "-P OUTPUT ACCEPT\n"
    "-N TESTBED-P-0123456789\n"
    "-A INPUT -j TESTBED-P-0123456789\n"
    "-A OUTPUT -j TESTBED-P-0123456789\n"
    "-A TESTBED-P-0123456789 -s fd00::2/128 -j DROP\n"
    "-A TESTBED-P-0123456789 -d fd00::2/128 -j NFQUEUE --queue-num 65535\n"
)
QDISCS = (
    "qdisc noqueue 0: dev lo root refcnt 2 \nqdisc tbf 7e57: dev eth0 root refcnt 3 rate 1Mbit burst 6056b lat 100ms \n"
)
LISTED = plan.parse_listing([(0, MANGLE_V4), (0, FILTER_V4), (0, MANGLE_V6), (0, FILTER_V6), (0, QDISCS)])


def joined(commands: list[plan.Command]) -> list[str]:
    return [" ".join(c) for c in commands]


def test_listing_commands_and_their_parse_agree_on_order() -> None:
    assert [c[0] for c in plan.listing_commands()] == ["iptables", "iptables", "ip6tables", "ip6tables", "tc"]
    assert LISTED.families == ("iptables", "ip6tables")
    assert LISTED.rules[("iptables", "mangle")] == MANGLE_V4
    assert LISTED.rules[("ip6tables", "filter")] == FILTER_V6


def test_a_family_whose_listing_failed_is_left_out() -> None:
    listed = plan.parse_listing([(0, MANGLE_V4), (0, FILTER_V4), (3, ""), (3, ""), (0, QDISCS)])
    assert listed.families == ("iptables",)
    assert all(c[0] == "iptables" for c in plan.impair_teardown(listed, None) if c[0] != "tc")
    with pytest.raises(ValueError, match="expected 5 listings"):
        plan.parse_listing([(0, "")])


def test_teardown_of_everything_removes_every_chain_of_ours_and_nothing_else() -> None:
    assert joined(plan.impair_teardown(LISTED, None)) == [
        "ip6tables -w -t mangle -D POSTROUTING -j TESTBED-IMP",
        "ip6tables -w -t mangle -F TESTBED-IMP",
        "ip6tables -w -t mangle -X TESTBED-IMP",
        "iptables -w -t mangle -D POSTROUTING -j TESTBED-IMP",
        "iptables -w -t mangle -D POSTROUTING -o eth0 -j TESTBED-IMP-eth0",
        "iptables -w -t mangle -F TESTBED-IMP",
        "iptables -w -t mangle -F TESTBED-IMP-eth0",
        "iptables -w -t mangle -X TESTBED-IMP",
        "iptables -w -t mangle -X TESTBED-IMP-eth0",
        "tc qdisc del dev eth0 root",
    ]


def test_teardown_of_one_interface_leaves_the_whole_node_scope() -> None:
    assert joined(plan.impair_teardown(LISTED, Scope("eth0", 14))) == [
        "iptables -w -t mangle -D POSTROUTING -o eth0 -j TESTBED-IMP-eth0",
        "iptables -w -t mangle -F TESTBED-IMP-eth0",
        "iptables -w -t mangle -X TESTBED-IMP-eth0",
    ]  # the tbf on eth0 carries the whole node's handle 7e57:, not this scope's 7e58:


def test_teardown_of_a_scope_with_nothing_left_is_empty() -> None:
    assert plan.impair_teardown(LISTED, Scope("eth1", 16)) == []
    empty = plan.parse_listing([(0, "-P POSTROUTING ACCEPT\n")] * 4 + [(0, "qdisc noqueue 0: dev lo root refcnt 2\n")])
    assert plan.impair_teardown(empty, None) == []


def test_partition_teardown_removes_its_chain_in_both_families() -> None:
    chain = "TESTBED-P-0123456789"
    assert joined(plan.partition_teardown(LISTED, chain)) == [
        f"ip6tables -w -t filter -D INPUT -j {chain}",
        f"ip6tables -w -t filter -D OUTPUT -j {chain}",
        f"ip6tables -w -t filter -F {chain}",
        f"ip6tables -w -t filter -X {chain}",
        f"iptables -w -t filter -D INPUT -j {chain}",
        f"iptables -w -t filter -D OUTPUT -j {chain}",
        f"iptables -w -t filter -F {chain}",
        f"iptables -w -t filter -X {chain}",
    ]
    assert plan.partition_teardown(LISTED, "TESTBED-P-ffffffffff") == []


def test_a_quoted_comment_is_one_argument() -> None:
    listed = plan.parse_listing(
        [(0, '-N TESTBED-IMP\n-A POSTROUTING -m comment --comment "keep me" -j TESTBED-IMP\n'), (0, ""),
         (1, ""), (1, ""), (0, "")]
    )  # fmt: skip
    assert plan.impair_teardown(listed, None)[0] == (
        "iptables", "-w", "-t", "mangle", "-D", "POSTROUTING", "-m", "comment", "--comment", "keep me", "-j",
        "TESTBED-IMP",
    )  # fmt: skip


def test_the_batch_tool_runs_argv_lists_and_stops_at_the_first_failure() -> None:
    commands = [
        [sys.executable, "-c", "print('one')"],
        [sys.executable, "-c", "raise SystemExit(3)"],
        ["echo", "never"],
    ]
    run = subprocess.run([sys.executable, "-m", "tools.batch", "run", json.dumps(commands)], capture_output=True,
                         text=True, timeout=30, check=False)  # fmt: skip
    assert run.returncode == 1
    assert "failed:" in run.stderr and "SystemExit(3)" in run.stderr
    assert "never" not in run.stdout
    show = subprocess.run([sys.executable, "-m", "tools.batch", "show", json.dumps(commands)], capture_output=True,
                          text=True, timeout=30, check=False)  # fmt: skip
    assert [(r["code"], r["out"]) for r in json.loads(show.stdout)] == [(0, "one\n"), (3, ""), (0, "never\n")]
    bad = subprocess.run([sys.executable, "-m", "tools.batch", "run", '[["ok"], "no"]'], capture_output=True,
                         text=True, timeout=30, check=False)  # fmt: skip
    assert bad.returncode == 2 and "JSON list of non-empty lists" in bad.stderr


# --------------------------------------------------------------------------- capture (pure parts)


def pcap(link_type: int, frames: list[bytes], *, order: str = "<", magic: int = 0xA1B2C3D4) -> bytes:
    data = struct.pack(f"{order}IHHiIII", magic, 2, 4, 0, 0, 262144, link_type)
    for i, frame in enumerate(frames):
        data += struct.pack(f"{order}IIII", 1700000000 + i, 0, len(frame), len(frame)) + frame
    return data


def ipv4(protocol: int, src: str, dst: str, ports: tuple[int, int] | None) -> bytes:
    """An IPv4 packet; with ``ports``, 20 bytes after the IP header (TCP: a SYN header with no data; UDP: 12 bytes)."""
    tcp_syn = struct.pack("!II", 0, 0) + bytes([0x50, 0x02]) + bytes(6)  # data offset 5 words, flags SYN
    transport = struct.pack("!HH", *ports) + (tcp_syn if protocol == 6 else bytes(16)) if ports else bytes(8)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(transport), 0, 0, 64, protocol, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))  # fmt: skip
    return header + transport


def ethernet(payload: bytes, ethertype: int = 0x0800) -> bytes:
    return bytes(6) + bytes(6) + struct.pack("!H", ethertype) + payload


def sll2(payload: bytes, ethertype: int = 0x0800) -> bytes:
    return struct.pack("!HHIHBB8s", ethertype, 0, 2, 1, 4, 6, bytes(8)) + payload


@pytest.mark.parametrize("order", ["<", ">"])
def test_read_pcap_and_decode_ethernet(order: str) -> None:
    frames = [ethernet(ipv4(6, "10.0.0.2", "10.0.0.3", (40000, 7))), ethernet(b"\x00" * 28, 0x0806)]
    data = pcap(capture.LINKTYPE_ETHERNET, frames, order=order)
    read = capture.read_pcap(data)
    assert (read.link_type, read.nanoseconds, len(read.frames)) == (1, False, 2)
    syn = capture.Packet(6, "10.0.0.2", "10.0.0.3", 40000, 7, 0x02, 0)
    assert capture.decode(read.link_type, read.frames[0]) == syn
    assert capture.decode(read.link_type, read.frames[1]) is None  # ARP


def test_read_pcap_sll2_nanoseconds_and_a_truncated_tail(tmp_path: Path) -> None:
    frames = [sll2(ipv4(17, "10.0.0.3", "10.0.0.2", (7, 5555))), sll2(ipv4(1, "10.0.0.3", "10.0.0.2", None))]
    data = pcap(capture.LINKTYPE_LINUX_SLL2, frames, magic=0xA1B23C4D)
    path = tmp_path / "x.pcap"
    path.write_bytes(data[:-3])
    link_type, packets = capture.packets(path)
    assert link_type == capture.LINKTYPE_LINUX_SLL2
    assert packets == [capture.Packet(17, "10.0.0.3", "10.0.0.2", 7, 5555, None, 12)]
    assert capture.read_pcap(data).nanoseconds


def test_not_a_pcap() -> None:
    with pytest.raises(ValueError, match="not a pcap file"):
        capture.read_pcap(b"\x0a\x0d\x0d\x0a" + bytes(40))  # pcapng: tcpdump -w never writes it


def test_tcpdump_command() -> None:
    assert capture.tcpdump_command("any", duration=2.5, count=None, expression=["tcp", "port", "7"]) == [
        "timeout", "-s", "INT", "2.500",
        "tcpdump", "-Z", "root", "-U", "--immediate-mode", "-n", "-i", "any", "-w", capture.PCAP_IN_SIDECAR,
        "tcp", "port", "7",
    ]  # fmt: skip
    assert capture.tcpdump_command("br-0123456789ab", duration=None, count=10, expression=())[-2:] == ["-c", "10"]


def test_bridge_interface() -> None:
    attrs: dict[str, object] = {"Driver": "bridge", "Id": "0123456789abcdef", "Options": {}}
    assert capture._bridge_interface(attrs, "lab") == "br-0123456789ab"
    attrs["Options"] = {"com.docker.network.bridge.name": "docker0"}
    assert capture._bridge_interface(attrs, "bridge") == "docker0"
    with pytest.raises(capture.CaptureError, match="overlay driver"):
        capture._bridge_interface({"Driver": "overlay", "Id": "x"}, "wan")


@pytest.mark.parametrize(("duration", "count"), [(None, None), (0.0, None), (None, 0)])
def test_capture_refuses_a_capture_that_cannot_end(duration: float | None, count: int | None) -> None:
    with pytest.raises(ValueError):
        capture.capture(NodeRef("p", "n", "c"), Path("x.pcap"), duration=duration, count=count)


def test_capture_refuses_a_link_a_folder_and_a_duration_timeout_would_read_as_none(tmp_path: Path) -> None:
    victim = tmp_path / "precious"
    victim.write_text("keep me")
    (tmp_path / "link.pcap").symlink_to(victim)
    node = NodeRef("p", "n", "c")
    with pytest.raises(capture.CaptureError, match="is a symbolic link"):
        capture.capture(node, tmp_path / "link.pcap", duration=1.0, count=None)
    with pytest.raises(capture.CaptureError, match="is a folder"):
        capture.capture(node, tmp_path, duration=1.0, count=None)
    with pytest.raises(ValueError, match=r"shorter than 0\.1 s"):
        capture.capture(node, tmp_path / "x.pcap", duration=0.0004, count=None)
    assert victim.read_text() == "keep me"
