"""Every attack on creosote, the UDP log sink, against the default lab beside a well-behaved sender.

Each test judges (``creosote_judge.judge``) what the well-behaved sender saw, and the server: not restarted
nor OOM-killed, its memory under its limit at its peak and after, its Docker log within a bound, its host
port answering. The attacks come from client containers on the lab's network (``run_on``), the
well-behaved sender from 127.0.0.1 through the host port. Each is sized to take well under 30 s on two
cores; its comment says what full-size attack it stands for and what a server without the protection did.
The module's tests share one default lab, in order; the ring has a lab of its own.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

import pytest

from common.eventlog import EVENT_LINES_PER_SECOND
from common.waiting import wait_until
from lab.engine import Ran
from lab.topology_fixture import TopologyLab
from protocols.creosote import MAX_HOPS, encode_chunks
from services.creosote import DEFAULT_KEEP, DEFAULT_MAX_BYTES
from tests.adversarial.creosote_judge import (
    MIB,
    RECORDS_DIR,
    WellBehaved,
    assert_arrived,
    before,
    during,
    judge,
    pong,
    udp_counters,
)

pytestmark = [pytest.mark.docker, pytest.mark.adversarial, pytest.mark.timeout(300)]

RING = "tests/adversarial/topologies/creosote-ring.yaml"
PORT = "7739"


@pytest.fixture
def default_lab(topology: Callable[..., TopologyLab]) -> TopologyLab:
    """The default lab, one for the module (the factory keeps it for the module's tests)."""
    return topology("topology/default.yaml", scope="module")


def attack(lab: TopologyLab, script: str, *args: object) -> Callable[[], Ran]:
    """A one-shot attacker on the lab's network: ``python3 -c script HOST args...`` in a client container.

    HOST is creosote's address, not its name: the name once failed to resolve in a fresh container.
    """
    host = lab.address("creosote", "lab")
    return lambda: lab.run_on("lab", "python3", "-c", script, host, *map(str, args), timeout=120)


def host_port(lab: TopologyLab, node: str = "creosote") -> int:
    return lab.host_port(node, int(PORT), "udp")


# --------------------------------------------------------------------------- malformed datagrams

# Chunk and hop headers that do not parse, from one socket at a steady rate: every one a bad_datagram.
MALFORMED = r"""
import itertools, socket, sys, time
host, port, rate, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
shapes = [b"\x00creosote1 zz 9/1\n", b"\x00creosote1 1 70000/65535\nab", b"\x00creosote1 " + b"f" * 40,
          b"\x00creosote-hops x\nab", b"\x00creosote1 7 0/2\nab", b"\x00creosote1 7 1/3\nab"]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.connect((host, port))
began, sent = time.monotonic(), 0
for shape in itertools.cycle(shapes):
    if time.monotonic() - began >= seconds:
        break
    sock.send(shape)
    sent += 1
    if sent % 100 == 0:
        time.sleep(max(0.0, began + sent / rate - time.monotonic()))  # pacing: the attack's rate
print(f"sent={sent} seconds={time.monotonic() - began:.1f}")
"""
MALFORMED_RATE, MALFORMED_SECONDS = 5000, 8
# The Docker log of any other attack here (10-15 s): the most measured was 154 kB (many ids); a sink without
# the line budgets writes a line a datagram, 5 MB for the 40,000 malformed ones.
LOG_BOUND = 2 * MIB
PEAK_BOUND = 96 * MIB  # of 128: the interpreter, the 24 MiB budget, a message being recorded, the receive queue
GOOD_RATE = 50  # the well-behaved sender's records a second, each a `record` line on stdout (up to 100 a second)
EVENT_LINE = 400  # bytes: twice the longest bad_datagram line of these shapes (190: its error quotes the bytes)
RECORD_LINE = 200  # a `record` line of the well-behaved sender: about 130 bytes


def test_malformed_datagrams_grow_the_log_by_a_bounded_amount(default_lab: TopologyLab) -> None:
    """40,000 malformed datagrams in 8 s, standing for any number: past 10 lines a second of a kind, only one
    `not_shown` line a second. Each had a line of its own before: 9.5 MB of Docker log for 50,000, and 5.1 MB
    (70 kB with it) for these with the budget taken out of EventLog.limited."""
    was = before(default_lab)
    good = WellBehaved(host_port(default_lab), "good-malformed", per_second=GOOD_RATE)
    ran = during(attack(default_lab, MALFORMED, PORT, MALFORMED_RATE, MALFORMED_SECONDS), good)
    arrived = good.arrived(default_lab)
    # Per second: each kind of event line at its budget (bad_datagram, and incomplete and loss for the pair of
    # chunks that disagree), a not_shown line, the good sender's records; seconds of the attack, and 3 more
    # for the container's start and Docker's whole-second `since`.
    seconds = float(re.findall(r"seconds=([\d.]+)", ran.out)[0]) + 3
    bound = int(seconds * (3 * EVENT_LINES_PER_SECOND * EVENT_LINE + EVENT_LINE + GOOD_RATE * RECORD_LINE))
    after = judge(default_lab, was, log_bound=bound)
    assert b" not_shown " in after.log and b"bad_datagram=" in after.log  # the rate limit is what held it
    assert_arrived(arrived, good.sent, after)  # of 5,000 small datagrams a second, the kernel dropped none here


# --------------------------------------------------------------------------- loss-counter inflation

# Message ids each claiming 65,535 chunks, of which one or two come: from one socket on a known port, so
# that the test finds its `loss` lines. Prints the source as the sink sees it and the chunks sent.
INFLATE = r"""
import socket, sys, time
host, port, messages = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", 40404))
sock.connect((host, port))
chunks = 0
for msg_id in range(1, messages + 1):
    for index in range(1 + msg_id % 2):
        sock.send(b"\x00creosote1 %x %d/65535\nab" % (msg_id, index * 65534))
        chunks += 1
    if msg_id % 50 == 0:
        time.sleep(0.01)  # pacing: 5,000 messages a second, which the sink takes without a loss
print(f"source={sock.getsockname()[0]}:{sock.getsockname()[1]} chunks={chunks}")
"""
INFLATE_MESSAGES = 3000


def test_the_loss_reported_is_at_most_what_was_received(default_lab: TopologyLab) -> None:
    """3,000 messages claiming 65,535 chunks each, 4,500 chunks in all: before the cap, 3,000 x 65,534 = 197
    million chunks counted lost (1.84e9 after 28,000 datagrams). The count is per message, so 3,000 stands for
    any number."""
    was = before(default_lab)
    good = WellBehaved(host_port(default_lab), "good-inflate", per_second=GOOD_RATE)
    ran = during(attack(default_lab, INFLATE, PORT, INFLATE_MESSAGES), good)
    source, chunks = re.findall(r"source=(\S+) chunks=(\d+)", ran.out)[0]

    def final_loss() -> dict[str, int] | None:
        """The source's loss line once every one of its messages has been given up (64 wait out the timeout)."""
        lines = re.findall(rf" loss source={re.escape(source)} (.*)", default_lab.node("creosote").logs())
        counts = {key: int(value) for key, value in (f.split("=") for f in lines[-1].split())} if lines else {}
        # A message whose chunks the kernel's queue all dropped (none, in most runs) is not one the sink saw.
        dropped = udp_counters(default_lab, "creosote")["RcvbufErrors"] - was.udp["RcvbufErrors"]
        return counts if counts.get("incomplete", 0) >= INFLATE_MESSAGES - dropped else None

    counts = wait_until(final_loss, timeout=20, interval=0.5, what=f"the loss line of {source}")
    assert 0 < counts["lost"] <= int(chunks), counts
    assert_arrived(good.arrived(default_lab), good.sent, judge(default_lab, was, log_bound=LOG_BOUND))


# --------------------------------------------------------------------------- many message ids from one source

# A new message id every datagram from one socket, each the first chunk of 65,535 with a 2-byte payload: 30 bytes
# on the wire, and 9 KiB held by the sink (its bitmap of chunks received), at a steady rate.
MANY_IDS = r"""
import socket, sys, time
host, port, rate, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.connect((host, port))
began, sent = time.monotonic(), 0
while time.monotonic() - began < seconds:
    sock.send(b"\x00creosote1 %x 0/65535\nab" % (sent + 1))
    sent += 1
    if sent % 50 == 0:
        time.sleep(max(0.0, began + sent / rate - time.monotonic()))  # pacing: the attack's rate
print(f"sent={sent} seconds={time.monotonic() - began:.1f}")
"""
MANY_IDS_RATE, MANY_IDS_SECONDS = 4_000, 8


class SlowChunked(WellBehaved):
    """Messages of three chunks of ~1,000 bytes with a second between chunks, as over a slow link, five new ones
    a second: each waits two seconds in reassembly, idle a second at a time. After the block, the messages
    begun are finished."""

    def _run(self) -> None:
        began, waiting, second = time.monotonic(), list[list[bytes]](), 0
        while not self._stop.is_set() or waiting:
            if not self._stop.is_set():
                for _ in range(5):
                    message = f"<14>{self.tag} {'c' * 2900} {self.sent}".encode()
                    waiting.append(encode_chunks(message, self.sent + 1, 1100))
                    self.sent += 1
            for chunks in waiting:
                self._sock.sendto(chunks.pop(0), ("127.0.0.1", self.port))
            waiting = [chunks for chunks in waiting if chunks]
            second += 1
            time.sleep(max(0.0, began + second - time.monotonic()))  # pacing: one chunk of each a second


def test_many_message_ids_from_one_source_leave_other_senders_messages_whole(default_lab: TopologyLab) -> None:
    """32,000 message ids in 8 s from one source: it may hold 64 ids and 4 MiB, and pushes out only its own.
    Standing for any number of ids: the source's share is full with its first 64. Without the per-source caps,
    the ids fill the 24 MiB budget in 0.7 s, over and over, pushing out the least recently active message of
    anyone: taken out, 40 of the slow sender's 45 messages, idle a second between chunks, were lost."""
    was = before(default_lab)
    port = host_port(default_lab)
    plain, chunked = WellBehaved(port, "good-ids", per_second=100), SlowChunked(port, "good-ids-chunked")
    during(attack(default_lab, MANY_IDS, PORT, MANY_IDS_RATE, MANY_IDS_SECONDS), plain, chunked)
    arrived_plain, arrived_chunked = plain.arrived(default_lab), chunked.arrived(default_lab)
    after = judge(default_lab, was, log_bound=LOG_BOUND)
    # At 4,000 datagrams a second the kernel's queue drops none in most runs: every record missing must be one of
    # its drops. (Of 8 kB datagrams, 10,000 a second, it dropped 9 %, a well-behaved record or message with each
    # burst.)
    assert_arrived(arrived_plain, plain.sent, after)
    assert_arrived(arrived_chunked, chunked.sent, after)


# --------------------------------------------------------------------------- a flood of chunk headers

# Chunk headers claiming 65,535 chunks with 2-byte payloads, from SOCKETS sockets in each of PROCS processes, as
# fast as they go: a new message id every datagram, each costing the sink 9 KiB (its bitmap of chunks received).
CHUNK_FLOOD = r"""
import os, socket, sys, time
host, port, procs, per, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
children = []
for worker in range(procs):
    pid = os.fork()
    if pid:
        children.append(pid)
        continue
    sends = []
    for _ in range(per):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect((host, port))
        sends.append(sock.send)
    began, n, base = time.monotonic(), 0, worker << 48
    while time.monotonic() - began < seconds:
        for i in range(1000):
            try:
                sends[i % per](b"\x00creosote1 %x %d/65535\nab" % (base + n, (n * 7919) % 65535))
            except OSError:
                pass
            n += 1
    print(f"worker={worker} sent={n} seconds={time.monotonic() - began:.1f}", flush=True)
    os._exit(0)
for pid in children:
    os.waitpid(pid, 0)
"""
FLOOD_PROCS, FLOOD_SOCKETS, FLOOD_SECONDS = 2, 128, 8


def test_a_chunk_header_flood_from_many_sources_keeps_memory_bounded(default_lab: TopologyLab) -> None:
    """Two processes of 128 sockets each, as fast as they send, for 8 s: standing for the same flood for as long as
    it lasts, since the 24 MiB budget is full within its first seconds. 256 sources of 64 ids each would hold
    150 MB: with the total budget taken out, the sink was OOM-killed and restarted four times in the 8 s."""
    was = before(default_lab)
    good = WellBehaved(host_port(default_lab), "good-flood", per_second=100)
    ran = during(attack(default_lab, CHUNK_FLOOD, PORT, FLOOD_PROCS, FLOOD_SOCKETS, FLOOD_SECONDS), good)
    sent = sum(int(n) for n in re.findall(r"sent=(\d+)", ran.out))
    arrived = good.arrived(default_lab)
    after = judge(default_lab, was, log_bound=LOG_BOUND)
    lost = 1 - len(arrived) / good.sent
    print(f"flood: {sent:,} datagrams sent; good: {good.sent - len(arrived)} of {good.sent} lost")
    assert after.peak_rss < PEAK_BOUND
    # The flood is more than the sink can take in (it received a quarter of it): the kernel's queue drops what
    # does not fit, whoever sent it, and UDP has no way to favour the well-behaved. The bound is that it loses
    # no more than its share, with room for bursts: the sink loses nothing of what it receives.
    assert lost <= after.dropped_share + 0.15, f"lost {lost:.0%} of its records, the flood {after.dropped_share:.0%}"


# --------------------------------------------------------------------------- a flood of valid syslog lines

# RFC 3164 lines of 60,000 bytes (a record of 120 kB: text and message), numbered, at a steady rate.
SYSLOG_FLOOD = r"""
import socket, sys, time
host, port, count, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.connect((host, port))
began = time.monotonic()
for n in range(count):
    line = b"<14>Dec  1 10:00:00 attacker flood: %06d " % n
    sock.send(line + b"x" * (60_000 - len(line)))
    if n % 20 == 19:
        time.sleep(max(0.0, began + n / rate - time.monotonic()))  # pacing: the flood's rate
print(f"sent={count} seconds={time.monotonic() - began:.1f}")
"""
# 1,000 of them at 200 a second: 120 MB of records in 5 s, for a quota of 64 MiB. (At 400 a second, 48 MB of
# records a second, its queue dropped 17-57 % of them in runs on two busy cores.)
SYSLOG_COUNT, SYSLOG_RATE = 1000, 200
STAT = "stat -c '%n %s' " + RECORDS_DIR + "/records.jsonl*"


def test_a_flood_of_valid_syslog_lines_keeps_the_records_files_within_the_quota(default_lab: TopologyLab) -> None:
    """1,000 syslog lines of 60 kB in 5 s, 120 MB of records for a quota of 64 MiB (16 MiB x 4): standing for a
    flood of any length, which rotation turns over the same four files. Before, records.jsonl grew by all of it
    (a full disk in the end, through the named volume)."""
    was = before(default_lab)
    good = WellBehaved(host_port(default_lab), "good-syslog", per_second=100)
    during(attack(default_lab, SYSLOG_FLOOD, PORT, SYSLOG_COUNT, SYSLOG_RATE), good)
    arrived = good.arrived(default_lab)
    files = dict(line.rsplit(" ", 1) for line in default_lab.exec("creosote", "sh", "-c", STAT).out.splitlines())
    sizes = {name.rsplit("/", 1)[1]: int(size) for name, size in files.items()}
    after = judge(default_lab, was, log_bound=LOG_BOUND)
    print(f"records files: {sizes}")
    assert len(sizes) <= DEFAULT_KEEP and max(sizes.values()) <= DEFAULT_MAX_BYTES, sizes
    assert sum(sizes.values()) <= DEFAULT_KEEP * DEFAULT_MAX_BYTES
    assert b" rotated " in after.log, "the flood did not fill the quota: it tested nothing"
    # The oldest of the well-behaved records went with the files rotation discarded: what is kept is the newest,
    # each one missing among them one that the kernel's queue dropped (none, in most runs).
    newest = set(range(min(arrived), good.sent))
    assert arrived <= newest and len(newest - arrived) <= after.rcvbuf_errors, f"missing {sorted(newest - arrived)}"


# --------------------------------------------------------------------------- a ring of redirectors

RING_DATAGRAMS = 200


@pytest.fixture
def ring(topology: Callable[..., TopologyLab]) -> TopologyLab:
    return topology(RING, scope="module")


def test_a_ring_of_three_redirectors_relays_a_datagram_a_bounded_number_of_times(ring: TopologyLab) -> None:
    """200 datagrams into a ring of three redirectors, each relayed at most MAX_HOPS (8) times. Standing for any
    number: each is counted alone. Without the hop count, three redirectors passed one datagram round 590,000
    times in 10 s, for ever (two are caught at once: a datagram came back from the target)."""
    relays = [f"ring-{i}" for i in (1, 2, 3)]
    ports = {node: ring.host_port(node, int(PORT), "udp") for node in [*relays, "sink"]}
    was = {node: before(ring, node) for node in ports}
    good = WellBehaved(ports["sink"], "good-ring", per_second=100)
    with good, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in range(RING_DATAGRAMS):
            sock.sendto(b"<14>round and round %d" % i, ("127.0.0.1", ports["ring-1"]))
            time.sleep(0.005)  # pacing: 200 a second, beside the well-behaved sender's 100

    last: list[int] = []

    def settled() -> int | None:
        """The relays' total count, once it has not moved for a second (without the limit it never settles)."""
        counts = [pong(ports[node]) for node in relays]
        total = sum(c for c in counts if c is not None) if None not in counts else -1
        last.append(total)
        return total if len(last) >= 2 and last[-2] == total >= 0 else None

    relayed = wait_until(settled, timeout=20, interval=1.0, what="the ring to stop relaying")
    print(f"ring: {relayed} relays for {RING_DATAGRAMS} datagrams")
    assert RING_DATAGRAMS <= relayed <= RING_DATAGRAMS * MAX_HOPS
    logs = "".join(ring.node(node).logs() for node in relays)
    assert f"passed {MAX_HOPS} redirectors already" in logs
    for node in relays:
        judge(ring, was[node], log_bound=LOG_BOUND)
    assert_arrived(good.arrived(ring, "sink"), good.sent, judge(ring, was["sink"], log_bound=LOG_BOUND))
