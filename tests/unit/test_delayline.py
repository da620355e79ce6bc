"""The delay line's pure parts: nfnetlink_queue messages byte for byte, the schedule, the sans-IO core."""

from __future__ import annotations

import errno
import random
import socket
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools import delayline as dl

QUEUE = 7357


def header(message: bytes) -> tuple[int, int, int, int, int]:
    length, msg_type, flags, seq, pid = struct.unpack_from("=IHHII", message)
    return length, msg_type, flags, seq, pid


# --------------------------------------------------------------------------- packing


def test_attribute_is_padded_to_four_bytes_but_its_length_is_not() -> None:
    attr = dl.nlattr(2, b"\x01\x02\x03\x04\x05")
    assert len(attr) == 12
    assert struct.unpack_from("=HH", attr) == (9, 2)
    assert attr[9:] == b"\0\0\0"


def test_bind_request_matches_the_kernel_layout() -> None:
    message = dl.config_message(QUEUE, seq=7, command=dl.NFQNL_CFG_CMD_BIND)
    assert header(message) == (28, (3 << 8) | 2, dl.NLM_F_REQUEST | dl.NLM_F_ACK, 7, 0)
    # nfgenmsg: family AF_UNSPEC, version 0, res_id = queue number, big-endian
    assert message[16:20] == bytes([0, 0]) + QUEUE.to_bytes(2, "big")
    # NFQA_CFG_CMD: len 8, type 1, {command BIND, pad, pf}
    assert message[20:28] == struct.pack("=HH", 8, 1) + bytes([1, 0, 0, 0])


def test_params_request_carries_meta_copy_mode_maxlen_and_gso_flag() -> None:
    message = dl.config_message(QUEUE, seq=1, copy_mode=dl.NFQNL_COPY_META, maxlen=8192, flags=dl.NFQA_CFG_F_GSO)
    attrs = dl.parse_attrs(next(dl.parse_messages(message)).payload[4:])
    assert attrs[dl.NFQA_CFG_PARAMS] == struct.pack("!IB", 0, 1)  # packed: 5 bytes
    assert attrs[dl.NFQA_CFG_QUEUE_MAXLEN] == (8192).to_bytes(4, "big")
    assert attrs[dl.NFQA_CFG_FLAGS] == attrs[dl.NFQA_CFG_MASK] == (4).to_bytes(4, "big")
    assert len(message) % 4 == 0


@pytest.mark.parametrize(("batch", "kind"), [(False, 1), (True, 3)])
def test_verdict_message(batch: bool, kind: int) -> None:
    message = dl.verdict_message(QUEUE, 0x01020304, dl.NF_ACCEPT, seq=9, batch=batch)
    assert header(message) == (32, (3 << 8) | kind, dl.NLM_F_REQUEST, 9, 0)
    assert message[20:24] == struct.pack("=HH", 12, dl.NFQA_VERDICT_HDR)
    assert message[24:32] == struct.pack("!II", dl.NF_ACCEPT, 0x01020304)


# --------------------------------------------------------------------------- parsing


def test_packet_id_is_read_from_the_packet_header() -> None:
    message = next(dl.parse_messages(dl.packet_message(QUEUE, 123456)))
    assert message.msg_type == dl.queue_type(dl.NFQNL_MSG_PACKET)
    assert dl.packet_id(message) == 123456


def test_attribute_flags_are_masked_off() -> None:
    attrs = dl.parse_attrs(dl.nlattr(0x4000 | dl.NFQA_PACKET_HDR, b"abcdefg"))
    assert attrs == {dl.NFQA_PACKET_HDR: b"abcdefg"}


def test_a_packet_without_its_header_is_refused() -> None:
    payload = struct.pack("!BBH", socket.AF_INET, 0, QUEUE) + dl.nlattr(10, b"payload")
    message = next(dl.parse_messages(dl.nlmsg(dl.queue_type(dl.NFQNL_MSG_PACKET), 0, 0, payload)))
    with pytest.raises(ValueError, match="packet header"):
        dl.packet_id(message)


def test_several_messages_in_one_datagram_and_a_truncated_tail() -> None:
    data = b"".join(dl.packet_message(QUEUE, pid) for pid in (1, 2, 3))
    assert [dl.packet_id(m) for m in dl.parse_messages(data)] == [1, 2, 3]
    assert [dl.packet_id(m) for m in dl.parse_messages(data[:-5])] == [1, 2]


def error_message(code: int, seq: int) -> bytes:
    original = struct.pack("=IHHII", 28, dl.queue_type(dl.NFQNL_MSG_CONFIG), 5, seq, 0)
    return dl.nlmsg(dl.NLMSG_ERROR, 0, seq, struct.pack("=i", -code) + original)


def test_error_code_and_the_request_it_answers() -> None:
    message = next(dl.parse_messages(error_message(errno.EPERM, 42)))
    assert dl.error_code(message) == (errno.EPERM, 42)


# --------------------------------------------------------------------------- schedule


def test_fixed_delay_releases_in_arrival_order_when_due() -> None:
    schedule: dl.Schedule[int] = dl.Schedule(delay=0.080)
    for pid, now in ((1, 0.0), (2, 0.010), (3, 0.020)):
        assert schedule.add(pid, now)
    assert schedule.next_due() == pytest.approx(0.080)
    assert schedule.pop_due(0.079) == []
    assert schedule.pop_due(0.095) == [1, 2]
    assert len(schedule) == 1
    assert schedule.pop_all() == [3]
    assert schedule.next_due() is None


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), gaps=st.lists(st.floats(0, 0.02), min_size=2, max_size=200))
def test_jitter_never_reorders_unless_asked(seed: int, gaps: list[float]) -> None:
    schedule: dl.Schedule[int] = dl.Schedule(delay=0.040, jitter=0.030, rng=random.Random(seed))
    now = 0.0
    for pid, gap in enumerate(gaps):
        now += gap
        schedule.add(pid, now)
    released = schedule.pop_all()
    assert released == sorted(released)


def test_jitter_stays_within_its_band() -> None:
    schedule: dl.Schedule[int] = dl.Schedule(delay=0.040, jitter=0.010, reorder=True, rng=random.Random(1))
    for pid in range(1000):
        schedule.add(pid, 0.0)
    dues = []
    while (due := schedule.next_due()) is not None:
        dues.append(due)
        schedule.pop_due(due)
    assert 0.030 <= min(dues) < 0.031
    assert 0.049 < max(dues) <= 0.050


def test_with_reorder_jitter_lets_packets_pass_each_other() -> None:
    schedule: dl.Schedule[int] = dl.Schedule(delay=0.040, jitter=0.010, reorder=True, rng=random.Random(1))
    for pid in range(1000):
        schedule.add(pid, pid * 0.001)  # 1 ms apart with +/-10 ms of jitter
    order = schedule.pop_all()
    assert sorted(order) == list(range(1000))
    assert order != sorted(order)


def test_seeded_loss_is_reproducible_and_close_to_its_rate() -> None:
    def run(seed: int) -> list[bool]:
        schedule: dl.Schedule[int] = dl.Schedule(delay=0.0, loss=0.05, rng=random.Random(seed))
        return [schedule.add(pid, 0.0) for pid in range(20000)]

    first = run(7)
    assert first == run(7)
    assert first.count(False) / len(first) == pytest.approx(0.05, abs=0.006)


def test_schedule_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        dl.Schedule(delay=-1.0)
    with pytest.raises(ValueError):
        dl.Schedule(delay=0.0, loss=1.5)


# --------------------------------------------------------------------------- the sans-IO core


def verdicts(data: bytes) -> list[tuple[int, int, int]]:
    """(message kind, verdict, packet id) of each verdict message."""
    found = []
    for message in dl.parse_messages(data):
        attrs = dl.parse_attrs(message.payload[4:])
        verdict, pid = struct.unpack("!II", attrs[dl.NFQA_VERDICT_HDR])
        found.append((message.msg_type & 0xFF, verdict, pid))
    return found


def schedule(delay: float, **kwargs: Any) -> dl.Schedule[dl.Held]:
    return dl.Schedule(delay=delay, **kwargs)


def test_due_packets_go_out_as_one_batch_verdict() -> None:
    line = dl.DelayLine(QUEUE, schedule(0.050))
    data = b"".join(dl.packet_message(QUEUE, pid) for pid in (10, 11, 12))
    assert line.receive(data, now=1.0) == b""
    assert line.release(1.049) == (b"", [])
    verdict_bytes, resend = line.release(1.050)
    assert verdicts(verdict_bytes) == [(dl.NFQNL_MSG_VERDICT_BATCH, dl.NF_ACCEPT, 12)]
    assert resend == []
    assert line.stats.received == line.stats.accepted == 3
    assert line.stats.max_held == 3


def test_with_reordering_each_packet_gets_its_own_verdict() -> None:
    line = dl.DelayLine(QUEUE, schedule(0.050, reorder=True))
    line.receive(dl.packet_message(QUEUE, 1) + dl.packet_message(QUEUE, 2), now=0.0)
    assert verdicts(line.release(1.0)[0]) == [
        (dl.NFQNL_MSG_VERDICT, dl.NF_ACCEPT, 1),
        (dl.NFQNL_MSG_VERDICT, dl.NF_ACCEPT, 2),
    ]


def test_a_lost_packet_is_dropped_at_once() -> None:
    line = dl.DelayLine(QUEUE, schedule(0.050, loss=1.0))
    assert verdicts(line.receive(dl.packet_message(QUEUE, 5), now=0.0)) == [
        (dl.NFQNL_MSG_VERDICT_BATCH, dl.NF_DROP, 5)  # nothing else of ours is queued: a batch is exact
    ]
    assert line.stats.dropped == 1
    assert line.release(10.0) == (b"", [])


def test_drain_lets_go_of_everything_still_held() -> None:
    line = dl.DelayLine(QUEUE, schedule(10.0))
    line.receive(b"".join(dl.packet_message(QUEUE, pid) for pid in range(1, 6)), now=0.0)
    assert verdicts(line.drain()[0]) == [(dl.NFQNL_MSG_VERDICT_BATCH, dl.NF_ACCEPT, 5)]
    assert line.drain() == (b"", [])


IPV4 = bytes([0x45]) + bytes(15) + bytes([10, 0, 0, 2]) + bytes(8)  # enough of a header for the sender
IPV6 = bytes([0x60]) + bytes(39)


def resending(**kwargs: Any) -> dl.DelayLine:
    return dl.DelayLine(
        QUEUE,
        schedule(0.020, **kwargs),
        resend=True,
        families=frozenset({dl.ETH_P_IP}),
        mtu_of=lambda ifindex: 1500 if ifindex == 32 else 0,
    )


def test_parse_packet_reads_interfaces_and_payload() -> None:
    message = dl.packet_message(QUEUE, 9, hw_protocol=dl.ETH_P_IPV6, indev=4, outdev=32, payload=IPV6)
    assert dl.parse_packet(next(dl.parse_messages(message))) == dl.Queued(9, dl.ETH_P_IPV6, 4, 32, IPV6)


def test_own_packets_are_copied_dropped_now_and_sent_again_when_due() -> None:
    line = resending()
    data = b"".join(dl.packet_message(QUEUE, pid, outdev=32, payload=IPV4) for pid in (1, 2, 3))
    assert verdicts(line.receive(data, now=0.0)) == [(dl.NFQNL_MSG_VERDICT_BATCH, dl.NF_DROP, 3)]
    assert line.release(0.019) == (b"", [])
    assert line.release(0.020) == (b"", [(dl.ETH_P_IP, IPV4, 32)] * 3)
    assert (line.stats.resent, line.stats.accepted) == (3, 0)


@pytest.mark.parametrize(
    "packet",
    [
        {"outdev": 32, "payload": IPV4, "indev": 5},  # forwarded: no socket to free
        {"outdev": 32, "payload": IPV4 + bytes(1500)},  # over the MTU: IP has not fragmented it yet
        {"outdev": 7, "payload": IPV4},  # an interface whose MTU is unknown
        {"outdev": 32, "payload": IPV6, "hw_protocol": dl.ETH_P_IPV6},  # no IPv6 raw socket
        {"outdev": 32},  # copy mode off: no payload
    ],
)
def test_other_packets_are_held_by_the_kernel(packet: dict[str, Any]) -> None:
    line = resending()
    assert line.receive(dl.packet_message(QUEUE, 1, **packet), now=0.0) == b""
    assert verdicts(line.release(1.0)[0]) == [(dl.NFQNL_MSG_VERDICT_BATCH, dl.NF_ACCEPT, 1)]


def test_while_originals_are_held_copies_are_dropped_one_by_one() -> None:
    line = resending()
    held = dl.packet_message(QUEUE, 1, outdev=32, payload=IPV4, indev=5)
    copied = dl.packet_message(QUEUE, 2, outdev=32, payload=IPV4)
    # A batch drop up to 2 would take the held packet 1 with it.
    assert verdicts(line.receive(held + copied, now=0.0)) == [(dl.NFQNL_MSG_VERDICT, dl.NF_DROP, 2)]
    verdict_bytes, resend = line.release(1.0)
    assert verdicts(verdict_bytes) == [(dl.NFQNL_MSG_VERDICT_BATCH, dl.NF_ACCEPT, 1)]
    assert resend == [(dl.ETH_P_IP, IPV4, 32)]


def test_acks_are_kept_for_requests_and_refused_verdicts_are_counted() -> None:
    line = dl.DelayLine(QUEUE, schedule(0.0))
    line.waiting.add(3)
    line.receive(error_message(0, 3) + error_message(errno.ENOENT, 99), now=0.0)
    assert line.acks == {3: 0}
    assert line.stats.errors == 1
    assert line.stats.last_error == errno.ENOENT


def test_verdicts_are_split_on_message_boundaries() -> None:
    data = b"".join(dl.verdict_message(QUEUE, pid, dl.NF_ACCEPT, seq=pid) for pid in range(100))
    parts = list(dl.chunks(data, limit=320))
    assert b"".join(parts) == data
    assert all(len(part) <= 320 and len(part) % 32 == 0 for part in parts)
    assert len(parts) == 10


# --------------------------------------------------------------------------- command line


@pytest.mark.parametrize(
    "argv",
    [
        ["--queue", "70000", "--delay-ms", "10"],
        ["--queue", "1", "--delay-ms", "-5"],
        ["--queue", "1", "--delay-ms", "10", "--loss-pct", "101"],
        ["--queue", "1", "--delay-ms", "inf"],
        ["--delay-ms", "10"],
        ["--queue", "1", "--delay-ms", "10", "--mark", "0"],
        ["--queue", "1", "--delay-ms", "10", "--mark", "red"],
    ],
)
def test_bad_arguments_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        dl.main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_copies_past_the_byte_budget_are_dropped_and_counted() -> None:
    line = resending()
    charge = len(IPV4) + dl.HELD_OVERHEAD  # a copy costs its bytes and what holding it costs
    line.max_bytes = 2 * charge
    data = b"".join(dl.packet_message(QUEUE, pid, outdev=32, payload=IPV4) for pid in (1, 2, 3, 4))
    line.receive(data, now=0.0)
    assert (line.held_bytes, line.stats.overflow, len(line.schedule)) == (2 * charge, 2, 2)
    assert line.stats.max_held_bytes == 2 * charge
    _verdicts, resent = line.release(now=100.0)
    assert len(resent) == 2 and line.held_bytes == 0  # released copies give their bytes back
    assert line.stats.max_held_bytes == 2 * charge  # the most it ever held stays
    line.receive(dl.packet_message(QUEUE, 5, outdev=32, payload=IPV4), now=100.0)
    assert line.stats.overflow == 2 and len(line.schedule) == 1


def test_tiny_packets_are_charged_what_holding_them_costs() -> None:
    """A flood of 28-byte datagrams would hold ten times their bytes in Python objects, uncounted."""
    line = resending()
    line.max_bytes = 10 * (len(IPV4) + dl.HELD_OVERHEAD)
    data = b"".join(dl.packet_message(QUEUE, pid, outdev=32, payload=IPV4) for pid in range(1, 101))
    line.receive(data, now=0.0)
    assert (len(line.schedule), line.stats.overflow) == (10, 90)


def test_overflow_news_comes_at_once_then_at_most_once_a_second() -> None:
    line = resending()
    line.max_bytes = len(IPV4) + dl.HELD_OVERHEAD
    assert line.overflow_news(0.0) is None  # nothing dropped, nothing to say

    def flood(first: int, now: float) -> None:
        packets = [dl.packet_message(QUEUE, pid, outdev=32, payload=IPV4) for pid in range(first, first + 5)]
        line.receive(b"".join(packets), now)

    flood(1, 0.0)  # one held, four over the budget
    assert line.overflow_news(0.0) == 4
    flood(10, 0.5)
    assert line.overflow_news(0.5) is None  # within the second: kept for the next news
    assert line.overflow_news(1.0) == 5
    assert line.overflow_news(5.0) is None  # nothing new
    assert line.stats.overflow == line.overflow_reported == 9
