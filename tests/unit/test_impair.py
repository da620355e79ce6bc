"""lab.impair and lab.capture without Docker: parsing, planning, the teardown scripts, pcap reading.

The teardown scripts run for real, under ``sh``, against fake ``iptables``/``tc``/``ip`` commands that
keep their state in files: the listing-and-replay logic is the subtle part, so it is executed, not read.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from lab import capture, impair
from lab.impair import Impairment, Link, Scope
from lab.model import NodeRef

# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("delay", "jitter", "loss", "rate", "expected"),
    [
        ("80ms", None, None, None, Impairment(delay_ms=80)),
        ("1s", "250us", None, None, Impairment(delay_ms=1000, jitter_ms=0.25)),
        ("1.5s", "10 ms", "0.5%", None, Impairment(delay_ms=1500, jitter_ms=10, loss_pct=0.5)),
        (None, None, "5%", "1mbit", Impairment(loss_pct=5, rate_kbit=1000)),
        (None, None, None, "512kbit", Impairment(rate_kbit=512)),
        (None, None, None, "10mbps", Impairment(rate_kbit=80_000)),  # tc: bytes per second
        (None, None, None, "1Gbit", Impairment(rate_kbit=1_000_000)),
        (None, None, None, "1mibit", Impairment(rate_kbit=1048.576)),
        ("0", None, "0", None, Impairment()),
        ("", "", "", "", Impairment()),
    ],
)
def test_parse_impairment(
    delay: str | None, jitter: str | None, loss: str | None, rate: str | None, expected: Impairment
) -> None:
    spec = impair.parse_impairment(delay, jitter, loss, rate)
    assert spec.delay_ms == pytest.approx(expected.delay_ms)
    assert spec.jitter_ms == pytest.approx(expected.jitter_ms)
    assert spec.loss_pct == pytest.approx(expected.loss_pct)
    if expected.rate_kbit is None:
        assert spec.rate_kbit is None
    else:
        assert spec.rate_kbit == pytest.approx(expected.rate_kbit)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("80", None, None, None), r"delay: '80' is not a duration like 80ms, 1s"),
        (("80 min", None, None, None), r"delay: '80 min' is not a duration"),
        (("-5ms", None, None, None), r"delay: '-5ms'"),
        (("80ms", "x", None, None), r"jitter: 'x' is not a duration"),
        ((None, None, "5", None), r"loss: '5' is not a percentage from 0% to 100%"),
        ((None, None, "120%", None), r"loss: '120%'"),
        ((None, None, None, "1mb"), r"rate: '1mb' is not a rate like 1mbit, 512kbit or 10mbps"),
        ((None, None, None, "0kbit"), r"rate: '0kbit'"),
        ((None, "10ms", None, None), r"jitter: 10ms without a delay"),
    ],
)
def test_parse_errors_name_the_value_and_the_forms(args: tuple[str | None, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        impair.parse_impairment(*args)


def test_check_impairment_guards_the_models_dataclass() -> None:
    impair.check_impairment(Impairment(delay_ms=80, jitter_ms=100, loss_pct=100, rate_kbit=1))
    for bad in (
        Impairment(delay_ms=-1),
        Impairment(loss_pct=100.5),
        Impairment(rate_kbit=0),
        Impairment(delay_ms=float("nan")),
    ):
        with pytest.raises(ValueError):
            impair.check_impairment(bad)


def test_is_empty() -> None:
    assert impair.is_empty(Impairment())
    assert not impair.is_empty(Impairment(rate_kbit=100))
    assert not impair.is_empty(Impairment(loss_pct=0.1))


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
LINKS = impair.parse_links(IP_LINK)


def test_parse_links() -> None:
    links = impair.parse_links(IP_LINK)
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
    plan = impair.plan_impairment(spec, Scope(), LINKS, backend="nfqueue", families=("iptables",))
    return [" ".join(c) for c in plan.commands]


def test_delay_is_an_nfqueue_rule_and_a_delay_line() -> None:
    spec = Impairment(delay_ms=80, jitter_ms=10)
    plan = impair.plan_impairment(spec, Scope(), LINKS, backend="nfqueue", families=("iptables",))
    assert [" ".join(c) for c in plan.commands] == [
        "iptables -w -t mangle -N TESTBED-IMP",
        "iptables -w -t mangle -A TESTBED-IMP -o lo -j RETURN",
        "iptables -w -t mangle -A TESTBED-IMP -m mark --mark 0x7e57 -j RETURN",
        "iptables -w -t mangle -A TESTBED-IMP -j NFQUEUE --queue-num 7357 --queue-bypass",
        "iptables -w -t mangle -A POSTROUTING -j TESTBED-IMP",
    ]
    assert plan.delayline == (
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
    plan = impair.plan_impairment(Impairment(loss_pct=0.5), Scope(), LINKS, backend="nfqueue")
    assert plan.delayline is None
    assert any("--probability 0.005 -j NFQUEUE --queue-num 65535" in " ".join(c) for c in plan.commands)
    assert {c[0] for c in plan.commands} == {"iptables", "ip6tables"}
    assert all(
        c[0] == "tc"
        for c in impair.plan_impairment(Impairment(rate_kbit=64), Scope(), LINKS, backend="nfqueue").commands
    )


def test_one_interface_gets_its_own_chain_queue_and_handle() -> None:
    scope = Scope("eth1", 40)
    plan = impair.plan_impairment(
        Impairment(delay_ms=5, rate_kbit=512), scope, LINKS, backend="nfqueue", families=("iptables",)
    )
    assert [" ".join(c) for c in plan.commands] == [
        "iptables -w -t mangle -N TESTBED-IMP-eth1",
        "iptables -w -t mangle -A TESTBED-IMP-eth1 -m mark --mark 0x7e57 -j RETURN",
        "iptables -w -t mangle -A TESTBED-IMP-eth1 -j NFQUEUE --queue-num 7397 --queue-bypass",
        "iptables -w -t mangle -A POSTROUTING -o eth1 -j TESTBED-IMP-eth1",
        "tc qdisc add dev eth1 root handle 7e58: tbf rate 512kbit burst 6056 latency 100ms",
    ]
    assert plan.delayline is not None and "7397" in plan.delayline


def test_netem_takes_everything_in_one_qdisc_per_interface() -> None:
    spec = Impairment(delay_ms=80, jitter_ms=0.5, loss_pct=5, rate_kbit=1000)
    plan = impair.plan_impairment(spec, Scope(), LINKS, backend="netem")
    assert [" ".join(c) for c in plan.commands] == [
        f"tc qdisc add dev {dev} root handle 7e57: netem limit 10000 delay 80000us 500us loss 5% rate 1000kbit"
        for dev in ("eth0", "eth1")
    ]
    assert plan.delayline is None


def test_nothing_to_do_is_an_empty_plan() -> None:
    assert impair.plan_impairment(Impairment(), Scope(), LINKS, backend="nfqueue") == impair.Plan(())
    assert impair.plan_impairment(Impairment(delay_ms=1), Scope(), [LINKS[0]], backend="netem") == impair.Plan(())


def test_tbf_bucket_is_ten_milliseconds_within_bounds() -> None:
    assert impair.tbf_burst_bytes(64) == 4 * 1514
    assert impair.tbf_burst_bytes(100_000) == 125_000
    assert impair.tbf_burst_bytes(100_000_000) == 1 << 20


def test_partition_commands_drop_both_directions_for_every_address() -> None:
    chain = "TESTBED-P-" + impair.partition_id("b", "a")
    assert impair.partition_id("a", "b") == impair.partition_id("b", "a") != impair.partition_id("a", "c")
    got = [" ".join(c) for c in impair.partition_commands(chain, ["10.0.0.2"], ["fd00::2"])]
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


# --------------------------------------------------------------------------- the shell, executed

FAKE = r"""#!{python}
# A stand-in for iptables/ip6tables/tc/ip that logs its calls and keeps state in files.
import os, sys
name = os.path.basename(sys.argv[0])
args = [a for a in sys.argv[1:] if a != "-w"]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(" ".join([name, *args]) + "\n")
state = os.path.join(os.environ["FAKE_DIR"], name)
if name == "ip":
    sys.stdout.write(open(state).read())
    sys.exit(0)
if name == "tc":
    dev = args[args.index("dev") + 1]
    path = f"{{state}}.{{dev}}"
    if args[1] == "show":
        sys.stdout.write(open(path).read() if os.path.exists(path) else "qdisc noqueue 0: root refcnt 2\n")
    elif args[1] == "del":
        os.remove(path)
    sys.exit(0)
if not os.path.exists(state):
    sys.exit(1)  # this family is missing
if "-t" in args:
    del args[args.index("-t") : args.index("-t") + 2]
lines = open(state).read().splitlines()
if args[0] == "-S":
    print("\n".join(lines))
elif args[0] == "-D":
    rule = " ".join(["-A", *args[1:]])
    if rule not in lines:
        sys.exit(1)
    lines.remove(rule)
elif args[0] == "-F":
    lines = [l for l in lines if not l.startswith(f"-A {{args[1]}} ")]
elif args[0] == "-X":
    if any(l.startswith(f"-A {{args[1]}} ") for l in lines):
        sys.exit(1)  # a chain must be empty before it goes
    lines.remove(f"-N {{args[1]}}")
open(state, "w").write("\n".join(lines) + "\n")
"""

MANGLE = """\
-P PREROUTING ACCEPT
-P POSTROUTING ACCEPT
-N TESTBED-IMP
-N TESTBED-IMP-eth1
-N OTHER
-A POSTROUTING -j TESTBED-IMP
-A POSTROUTING -o eth1 -j TESTBED-IMP-eth1
-A POSTROUTING -j OTHER
-A TESTBED-IMP -o lo -j RETURN
-A TESTBED-IMP -j NFQUEUE --queue-num 7357 --queue-bypass
-A TESTBED-IMP-eth1 -m statistic --mode random --probability 0.05 -j DROP
-A OTHER -j MARK --set-mark 1
"""


@pytest.fixture
def fake_namespace(tmp_path: Path) -> Path:
    """A directory of fake tools and their state: two of our chains, one of someone else's, three qdiscs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("iptables", "ip6tables", "tc", "ip"):
        path = bin_dir / tool
        path.write_text(FAKE.format(python=sys.executable))
        path.chmod(0o755)
    (tmp_path / "iptables").write_text(MANGLE)
    (tmp_path / "ip").write_text(IP_LINK)
    (tmp_path / "tc.eth0").write_text("qdisc tbf 7e57: root refcnt 2 rate 1Mbit burst 6056b lat 100ms\n")
    (tmp_path / "tc.eth1").write_text("qdisc tbf 7e58: root refcnt 2 rate 512Kbit burst 6056b lat 100ms\n")
    (tmp_path / "tc.lo").write_text("qdisc netem 8001: root refcnt 2 limit 1000 delay 1ms\n")  # not ours
    return tmp_path


def run_script(text: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{state / 'bin'}:{os.environ['PATH']}", "FAKE_DIR": str(state)}
    env["FAKE_LOG"] = str(state / "log")
    return subprocess.run(["sh", "-c", text], capture_output=True, text=True, env=env, timeout=30, check=False)


def test_teardown_of_everything_removes_only_ours(fake_namespace: Path) -> None:
    result = run_script(impair.impair_teardown(None), fake_namespace)
    assert result.returncode == 0, result.stderr
    assert (fake_namespace / "iptables").read_text().splitlines() == [
        "-P PREROUTING ACCEPT",
        "-P POSTROUTING ACCEPT",
        "-N OTHER",
        "-A POSTROUTING -j OTHER",
        "-A OTHER -j MARK --set-mark 1",
    ]
    assert not (fake_namespace / "tc.eth0").exists()
    assert not (fake_namespace / "tc.eth1").exists()
    assert (fake_namespace / "tc.lo").exists()  # lo is never touched, and that qdisc is not ours anyway
    again = run_script(impair.impair_teardown(None), fake_namespace)
    assert again.returncode == 0, again.stderr


def test_teardown_of_one_interface_leaves_the_rest(fake_namespace: Path) -> None:
    result = run_script(impair.impair_teardown(Scope("eth1", 40)), fake_namespace)
    assert result.returncode == 0, result.stderr
    left = (fake_namespace / "iptables").read_text()
    assert "TESTBED-IMP-eth1" not in left
    assert "-A POSTROUTING -j TESTBED-IMP\n" in left
    assert (fake_namespace / "tc.eth0").exists()
    assert not (fake_namespace / "tc.eth1").exists()


def test_partition_teardown(fake_namespace: Path) -> None:
    chain = "TESTBED-P-0123456789"
    (fake_namespace / "iptables").write_text(
        f"-N {chain}\n-A INPUT -j {chain}\n-A OUTPUT -j {chain}\n-A {chain} -s 10.0.0.2/32 -j DROP\n"
        f"-A {chain} -d 10.0.0.2/32 -j DROP\n-A INPUT -j ACCEPT\n"
    )
    result = run_script(impair.partition_teardown(chain), fake_namespace)
    assert result.returncode == 0, result.stderr
    assert (fake_namespace / "iptables").read_text().splitlines() == ["-A INPUT -j ACCEPT"]


def test_script_stops_at_the_first_failure_and_names_it() -> None:
    text = impair.script([("true",), ("sh", "-c", "exit 3"), ("echo", "never")])
    result = subprocess.run(["sh", "-c", text], capture_output=True, text=True, timeout=10, check=False)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "failed: sh -c 'exit 3'" in result.stderr


# --------------------------------------------------------------------------- capture (pure parts)


def pcap(link_type: int, frames: list[bytes], *, order: str = "<", magic: int = 0xA1B2C3D4) -> bytes:
    data = struct.pack(f"{order}IHHiIII", magic, 2, 4, 0, 0, 262144, link_type)
    for i, frame in enumerate(frames):
        data += struct.pack(f"{order}IIII", 1700000000 + i, 0, len(frame), len(frame)) + frame
    return data


def ipv4(protocol: int, src: str, dst: str, ports: tuple[int, int] | None) -> bytes:
    transport = struct.pack("!HH", *ports) + bytes(16) if ports else bytes(8)
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
    assert capture.decode(read.link_type, read.frames[0]) == capture.Packet(6, "10.0.0.2", "10.0.0.3", 40000, 7)
    assert capture.decode(read.link_type, read.frames[1]) is None  # ARP


def test_read_pcap_sll2_nanoseconds_and_a_truncated_tail(tmp_path: Path) -> None:
    frames = [sll2(ipv4(17, "10.0.0.3", "10.0.0.2", (7, 5555))), sll2(ipv4(1, "10.0.0.3", "10.0.0.2", None))]
    data = pcap(capture.LINKTYPE_LINUX_SLL2, frames, magic=0xA1B23C4D)
    path = tmp_path / "x.pcap"
    path.write_bytes(data[:-3])
    link_type, packets = capture.packets(path)
    assert link_type == capture.LINKTYPE_LINUX_SLL2
    assert packets == [capture.Packet(17, "10.0.0.3", "10.0.0.2", 7, 5555)]
    assert capture.read_pcap(data).nanoseconds


def test_not_a_pcap() -> None:
    with pytest.raises(ValueError, match="not a pcap file"):
        capture.read_pcap(b"\x0a\x0d\x0d\x0a" + bytes(40))  # pcapng: tcpdump -w never writes it


def test_tcpdump_command() -> None:
    assert capture.tcpdump_command("any", duration=2.5, count=None, expression=["tcp", "port", "7"]) == [
        "timeout", "-s", "INT", "2.500",
        "tcpdump", "-Z", "root", "-U", "-n", "-i", "any", "-w", capture.PCAP_IN_SIDECAR, "tcp", "port", "7",
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
