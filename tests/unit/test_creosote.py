"""Creosote without sockets: syslog parsing, records, chunk framing, reassembly."""

from __future__ import annotations

import gc
import json
import random
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.creosote import (
    CHUNK_MAGIC,
    HOP_MAGIC,
    MAX_CHUNKS,
    MAX_HOPS,
    MAX_UDP_PAYLOAD,
    PING,
    Address,
    Chunk,
    HopLimitExceeded,
    Incomplete,
    LossCounts,
    Message,
    Reassembler,
    ReassemblyEvent,
    Record,
    add_hop,
    decode_chunk,
    encode_chunks,
    encode_pri,
    frame_message,
    is_ping,
    iso_utc,
    make_message_record,
    make_record,
    parse_pong,
    parse_syslog,
    pong,
    split_hops,
)
from protocols.errors import LocalProtocolError, RemoteProtocolError
from services.creosote import PREVIEW_CHARS, host_and_port, summary

SOURCE = ("192.0.2.7", 5140)
OTHER = ("192.0.2.8", 5140)

# --------------------------------------------------------------------------- syslog

# What util-linux `logger -n HOST -P 7739 -d --rfc3164 / --rfc5424 ...` and Python's SysLogHandler send.
LOGGER_3164 = "<13>Nov 22 02:40:38 vm root: hello world"
LOGGER_3164_PID = "<13>Nov 22 02:40:42 vm myapp[42]: hello world"
LOGGER_5424 = '<13>1 2026-11-22T02:40:38.865728+00:00 vm root - - [timeQuality tzKnown="1" isSynced="0"] hello world'
SYSLOGHANDLER = "<12>hi there\x00"


def test_rfc3164_as_logger_sends_it() -> None:
    fields = parse_syslog(LOGGER_3164)
    assert fields is not None
    assert fields["format"] == "rfc3164"
    assert (fields["facility"], fields["severity"]) == (1, 5)
    assert fields["timestamp"] == "Nov 22 02:40:38"
    assert fields["hostname"] == "vm"
    assert (fields["app_name"], fields["procid"]) == ("root", None)
    assert fields["message"] == "hello world"


def test_rfc3164_tag_with_pid() -> None:
    fields = parse_syslog(LOGGER_3164_PID)
    assert fields is not None
    assert (fields["hostname"], fields["app_name"], fields["procid"]) == ("vm", "myapp", "42")
    assert fields["message"] == "hello world"


def test_rfc3164_tolerates_padded_day_and_missing_host() -> None:
    fields = parse_syslog("<165>Nov  2 02:40:38 postfix/smtpd[42]: connect from x")
    assert fields is not None
    assert (fields["facility"], fields["severity"]) == (20, 5)
    assert fields["timestamp"] == "Nov  2 02:40:38"
    assert fields["hostname"] is None
    assert (fields["app_name"], fields["procid"]) == ("postfix/smtpd", "42")
    assert fields["message"] == "connect from x"


def test_rfc3164_without_tag_keeps_the_whole_content() -> None:
    fields = parse_syslog("<13>Nov 22 02:40:38 router link down on eth0")
    assert fields is not None
    assert (fields["hostname"], fields["app_name"]) == ("router", None)
    assert fields["message"] == "link down on eth0"


def test_rfc5424_as_logger_sends_it() -> None:
    fields = parse_syslog(LOGGER_5424)
    assert fields is not None
    assert fields["format"] == "rfc5424"
    assert (fields["facility"], fields["severity"]) == (1, 5)
    assert fields["timestamp"] == "2026-11-22T02:40:38.865728+00:00"
    assert (fields["hostname"], fields["app_name"], fields["procid"], fields["msgid"]) == ("vm", "root", None, None)
    assert fields["structured_data"] == {"timeQuality": {"tzKnown": "1", "isSynced": "0"}}
    assert fields["message"] == "hello world"


def test_rfc5424_structured_data_escapes_and_several_elements() -> None:
    text = r'<14>1 - host app 42 MID [a@1 q="say \"hi\"" b="x\]y" c="back\\slash" d="\n stays"][b@2 k="v"] msg'
    fields = parse_syslog(text)
    assert fields is not None
    assert fields["structured_data"] == {
        "a@1": {"q": 'say "hi"', "b": "x]y", "c": "back\\slash", "d": "\\n stays"},
        "b@2": {"k": "v"},
    }
    assert (fields["procid"], fields["msgid"], fields["message"]) == ("42", "MID", "msg")


def test_rfc5424_nil_values_bom_and_empty_message() -> None:
    with_bom = parse_syslog("<13>1 - - - - - - \ufeffcafé")
    assert with_bom is not None
    assert with_bom["message"] == "café"
    assert with_bom["timestamp"] is None and with_bom["structured_data"] is None
    empty = parse_syslog("<13>1 - - - - - -")
    assert empty is not None
    assert (empty["format"], empty["message"]) == ("rfc5424", "")


def test_sysloghandler_style_is_pri_and_message() -> None:
    fields = parse_syslog(SYSLOGHANDLER)
    assert fields is not None
    assert fields["format"] == "rfc3164"
    assert (fields["facility"], fields["severity"]) == (1, 4)
    assert fields["timestamp"] is None and fields["hostname"] is None
    assert fields["message"] == "hi there"


def test_malformed_rfc5424_falls_back_to_content() -> None:
    fields = parse_syslog('<13>1 - - - - - [unterminated k="v" hello')
    assert fields is not None
    assert fields["format"] == "rfc3164"
    assert fields["message"] == '1 - - - - - [unterminated k="v" hello'


@pytest.mark.parametrize("text", ["", "hello", "<>x", "<abc>x", "<192>x", "<1234>x", " <13>x", "13> x"])
def test_garbage_is_not_syslog(text: str) -> None:
    assert parse_syslog(text) is None


def test_encode_pri_round_trips() -> None:
    fields = parse_syslog(encode_pri(23, 7) + "m")
    assert fields is not None
    assert (fields["facility"], fields["severity"]) == (23, 7)
    with pytest.raises(LocalProtocolError):
        encode_pri(24, 0)


@given(st.text(max_size=300))
def test_parse_syslog_never_raises(text: str) -> None:
    fields = parse_syslog(text)
    assert fields is None or fields["format"] in ("rfc3164", "rfc5424")


# --------------------------------------------------------------------------- records


def test_record_of_utf8_text() -> None:
    record = make_record("héllo".encode(), SOURCE, 0.25)
    assert record.text == "héllo" and record.base64 is None
    assert record.size == 6 and not record.truncated
    assert record.received == "1970-01-01T00:00:00.250000Z"
    assert (record.source_host, record.source_port) == SOURCE
    assert record.format is None


def test_record_of_invalid_utf8_is_base64_and_still_parsed() -> None:
    payload = b"<11>Nov 22 02:40:38 h app: bad \xff byte"
    record = make_record(payload, SOURCE, 0.0)
    assert record.text is None
    assert record.payload == payload
    assert (record.format, record.severity, record.app_name) == ("rfc3164", 3, "app")


def test_record_of_empty_datagram() -> None:
    record = make_record(b"", SOURCE, 0.0)
    assert (record.text, record.size) == ("", 0)
    assert json.loads(record.to_json())["text"] == ""


def test_record_keeps_real_size_when_truncated() -> None:
    record = make_record(b"x" * 10, SOURCE, 0.0, size=5000)
    assert record.truncated and record.size == 5000


def test_record_json_is_one_line_without_empty_fields_and_round_trips() -> None:
    record = make_record(LOGGER_5424.encode() + b"\nsecond line", SOURCE, 1.0)
    line = record.to_json()
    assert "\n" not in line
    data = json.loads(line)
    assert data["format"] == "rfc5424" and data["message"] == "hello world\nsecond line"
    assert "base64" not in data and "truncated" not in data and "msgid" not in data
    assert Record.from_json(line) == record


def test_record_requires_exactly_one_payload_field() -> None:
    with pytest.raises(LocalProtocolError):
        Record(received="x", source_host="h", source_port=1, size=0)
    with pytest.raises(LocalProtocolError):
        Record(received="x", source_host="h", source_port=1, size=0, text="", base64="")


@pytest.mark.parametrize(
    "line",
    [
        '{"received":"x","source_host":"h","source_port":1,"size":0,"text":"","pickle":1}',  # unknown field
        '{"received":"x","source_host":"h","source_port":1,"text":""}',  # no size
        '{"received":"x","source_host":"h","source_port":1,"size":-1,"text":""}',  # invalid size
        "[1, 2]",
        "{not json",
    ],
)
def test_from_json_rejects_what_is_not_a_record(line: str) -> None:
    with pytest.raises(RemoteProtocolError):
        Record.from_json(line)


def test_summary_cuts_long_text_only_in_the_event_line() -> None:
    record = make_record(b"y" * 1000, SOURCE, 0.0)
    fields = summary(record)
    assert fields["text"] == "y" * PREVIEW_CHARS + "…"
    assert fields["size"] == 1000
    assert record.text == "y" * 1000


# --------------------------------------------------------------------------- probe


def test_ping_and_pong() -> None:
    assert is_ping(PING)
    assert not is_ping(PING + b"\n") and not is_ping(b"ping")
    assert pong(3) == b"creosote:pong records=3\n"
    assert parse_pong(pong(12345)) == 12345
    with pytest.raises(RemoteProtocolError):
        parse_pong(b"hello")


# --------------------------------------------------------------------------- chunks


def decode_all(datagrams: list[bytes]) -> list[Chunk]:
    chunks = [decode_chunk(datagram) for datagram in datagrams]
    assert all(chunk is not None for chunk in chunks)
    return [chunk for chunk in chunks if chunk is not None]


@given(
    message=st.binary(max_size=20_000),
    msg_id=st.integers(0, 2**64 - 1),
    max_datagram=st.integers(41, 3000) | st.just(MAX_UDP_PAYLOAD),
)
def test_chunks_round_trip(message: bytes, msg_id: int, max_datagram: int) -> None:
    datagrams = encode_chunks(message, msg_id, max_datagram)
    assert all(len(datagram) <= max_datagram for datagram in datagrams)
    chunks = decode_all(datagrams)
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    assert {(chunk.msg_id, chunk.total) for chunk in chunks} == {(msg_id, len(chunks))}
    assert b"".join(chunk.payload for chunk in chunks) == message


def test_chunk_header_is_the_documented_line() -> None:
    assert encode_chunks(b"abc", 0xBEEF, 1400) == [b"\x00creosote1 beef 0/1\nabc"]


@given(st.binary(max_size=200))
def test_decode_chunk_only_raises_remote_errors(datagram: bytes) -> None:
    try:
        decode_chunk(CHUNK_MAGIC + datagram)
        decode_chunk(datagram)
    except RemoteProtocolError:
        pass


@pytest.mark.parametrize("datagram", [b"hello", b"", PING, b"\x00creosote2 1 0/1\nx", b"creosote1 1 0/1\nx"])
def test_plain_datagrams_are_not_chunks(datagram: bytes) -> None:
    assert decode_chunk(datagram) is None


@pytest.mark.parametrize(
    "header",
    [
        b"ff 0/1",  # no end of line
        b"FF 0/1\n",  # upper-case hex
        b"ff 1/1\n",  # index not below total
        b"ff 0/0\n",  # no chunks
        b"ff 01/2\n",  # leading zero
        b"ff 0/70000\n",  # more than MAX_CHUNKS
        b"12345678901234567 0/1\n",  # id longer than 64 bits
        b"ff 0/1 \n",  # trailing junk
    ],
)
def test_malformed_chunk_headers_are_remote_errors(header: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_chunk(CHUNK_MAGIC + header + b"payload")


def test_encode_chunks_refuses_impossible_requests() -> None:
    with pytest.raises(LocalProtocolError):
        encode_chunks(b"x", 1, 40)
    with pytest.raises(LocalProtocolError):
        encode_chunks(b"x", 1, MAX_UDP_PAYLOAD + 1)
    with pytest.raises(LocalProtocolError):
        encode_chunks(b"x", 2**64, 1400)
    with pytest.raises(LocalProtocolError):
        encode_chunks(b"x" * (MAX_CHUNKS * 30), 1, 41)


def test_frame_message_keeps_short_messages_plain() -> None:
    assert frame_message(b"short", 7, 1400) == [b"short"]
    assert len(frame_message(b"x" * 3000, 7, 1400)) == 3
    # A message that would read as ours on the wire is always framed, however short.
    for lookalike in (PING, b"\x00creosote1 1 0/1\nforged"):
        [datagram] = frame_message(lookalike, 7, 1400)
        chunk = decode_chunk(datagram)
        assert chunk is not None and chunk.payload == lookalike


# --------------------------------------------------------------------------- redirector hops


def test_each_redirector_counts_one_hop_and_the_sink_takes_the_line_off() -> None:
    datagram = b"<13>hello"
    for hops in range(1, MAX_HOPS + 1):
        datagram = add_hop(datagram)
        assert split_hops(datagram) == (hops, b"<13>hello")
    assert datagram == HOP_MAGIC + b"%d\n<13>hello" % MAX_HOPS


def test_a_datagram_past_the_hop_limit_is_refused() -> None:
    datagram = b"x"
    for _ in range(MAX_HOPS):
        datagram = add_hop(datagram)
    with pytest.raises(HopLimitExceeded):
        add_hop(datagram)
    with pytest.raises(HopLimitExceeded):
        add_hop(add_hop(b"x"), max_hops=1)


def test_a_ring_of_any_size_relays_a_datagram_at_most_max_hops_times() -> None:
    for size in (2, 3, 4, 7):
        datagram, sends = b"lost in a loop", 0
        while True:  # each add_hop is one redirector sending to the next: the size of the ring does not matter
            try:
                datagram = add_hop(datagram)
            except HopLimitExceeded:
                break
            sends += 1
        assert sends == MAX_HOPS, size


@pytest.mark.parametrize(
    "datagram",
    [HOP_MAGIC + b"0\nx", HOP_MAGIC + b"10\nx", HOP_MAGIC + b"x\n", HOP_MAGIC + b"1", HOP_MAGIC + b"-1\nx"],
)
def test_a_malformed_hop_line_is_a_remote_error(datagram: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        split_hops(datagram)
    with pytest.raises(RemoteProtocolError):
        add_hop(datagram)


@pytest.mark.parametrize("datagram", [b"", b"plain", PING, CHUNK_MAGIC + b"1 0/1\nx", b"\x00creosote-hop 1\nx"])
def test_other_datagrams_have_no_hops(datagram: bytes) -> None:
    assert split_hops(datagram) == (0, datagram)


def test_a_chunk_through_redirectors_is_still_a_chunk() -> None:
    [datagram] = encode_chunks(b"abc", 0xBEEF, 1400)
    hops, carried = split_hops(add_hop(add_hop(datagram)))
    assert hops == 2 and decode_chunk(carried) == Chunk(0xBEEF, 0, 1, b"abc")


# --------------------------------------------------------------------------- reassembly


def chunks_of(message: bytes, *, msg_id: int = 1, size: int = 50) -> list[Chunk]:
    return decode_all(encode_chunks(message, msg_id, size))


def feed_all(reassembler: Reassembler, chunks: list[Chunk], source: tuple[str, int] = SOURCE) -> list[ReassemblyEvent]:
    return [event for chunk in chunks for event in reassembler.feed(chunk, source, now=0.0)]


MESSAGE = bytes(range(256)) * 2


def test_reassembles_in_order() -> None:
    reassembler = Reassembler()
    parts = chunks_of(MESSAGE)
    [message] = feed_all(reassembler, parts)
    assert isinstance(message, Message)
    assert (message.data, message.chunks, message.source) == (MESSAGE, len(parts), SOURCE)
    assert reassembler.totals.completed == 1 and reassembler.totals.reordered == 0
    assert reassembler.pending_bytes == 0 and reassembler.pending_messages == 0


def test_counts_reordered_chunks() -> None:
    reassembler = Reassembler()
    [message] = feed_all(reassembler, chunks_of(MESSAGE)[::-1])
    assert isinstance(message, Message)
    assert message.data == MESSAGE
    assert message.reordered == message.chunks - 1  # every chunk after the first came after a later one
    assert reassembler.totals.reordered == message.chunks - 1


def test_counts_duplicates_before_and_after_completion() -> None:
    reassembler = Reassembler()
    first, *rest = chunks_of(MESSAGE)
    events = feed_all(reassembler, [first, first, *rest, first])
    [message] = events
    assert isinstance(message, Message)
    assert message.duplicated == 1
    assert reassembler.totals.duplicated == 2  # the late copy did not start the message over
    record = make_message_record(message, 0.0)
    assert (record.chunks, record.duplicated, record.reordered) == (message.chunks, 1, None)


def test_expiry_counts_lost_chunks_then_late_ones() -> None:
    reassembler = Reassembler(timeout=5.0)
    first, *rest = chunks_of(MESSAGE)
    assert reassembler.feed(first, SOURCE, now=100.0) == []
    assert reassembler.expire(104.9) == []
    [incomplete] = reassembler.expire(105.0)
    assert incomplete == Incomplete(SOURCE, 1, 1, len(rest) + 1, "expired")
    assert (reassembler.totals.lost, reassembler.totals.incomplete) == (1, 1)  # at most as many as it received
    assert feed_all(reassembler, rest) == []
    assert reassembler.totals.late == len(rest)
    assert reassembler.pending_bytes == 0


def test_activity_postpones_expiry() -> None:
    reassembler = Reassembler(timeout=5.0)
    first, second, *_ = chunks_of(MESSAGE)
    reassembler.feed(first, SOURCE, now=0.0)
    reassembler.feed(second, SOURCE, now=4.0)
    assert reassembler.expire(6.0) == []
    assert len(reassembler.expire(9.0)) == 1


def test_sources_do_not_mix() -> None:
    reassembler = Reassembler()
    first, *rest = chunks_of(MESSAGE)
    reassembler.feed(first, OTHER, now=0.0)
    assert feed_all(reassembler, rest, SOURCE) == []
    [message] = reassembler.feed(first, SOURCE, now=0.0)
    assert isinstance(message, Message) and message.source == SOURCE
    assert reassembler.pending_messages == 1  # OTHER's message still waits
    assert reassembler.by_source()[SOURCE].completed == 1
    assert OTHER not in reassembler.by_source()  # nothing happened to OTHER worth counting yet


def test_too_many_pending_messages_evicts_the_oldest() -> None:
    reassembler = Reassembler(max_pending=2)
    openers = [chunks_of(MESSAGE, msg_id=msg_id)[0] for msg_id in (1, 2, 3)]
    events = feed_all(reassembler, openers)
    [evicted] = events
    assert isinstance(evicted, Incomplete)
    assert (evicted.msg_id, evicted.reason) == (1, "evicted")
    assert reassembler.pending_messages == 2
    assert reassembler.totals.lost == 1  # of evicted.total - 1 missing: at most as many as it received


def test_lost_chunks_are_the_missing_ones_when_most_came() -> None:
    reassembler = Reassembler(timeout=1.0)
    parts = chunks_of(MESSAGE)
    feed_all(reassembler, parts[:3] + parts[5:])  # two missing in the middle
    [incomplete] = reassembler.expire(10.0)
    assert (incomplete.have, incomplete.total) == (len(parts) - 2, len(parts))
    assert reassembler.totals.lost == 2


def cost_of(chunk: Chunk) -> int:
    """What a message holding only ``chunk`` is charged."""
    reassembler = Reassembler()
    reassembler.feed(chunk, SOURCE, now=0.0)
    return reassembler.pending_bytes


def test_byte_cap_per_source_evicts_and_bounds_memory() -> None:
    openers = [decode_all(encode_chunks(b"z" * 80_000, msg_id, 40_100))[0] for msg_id in range(1, 6)]
    cap = 3 * cost_of(openers[0]) + cost_of(openers[0]) // 2  # room for three such messages, not four
    reassembler = Reassembler(max_bytes=cap)
    events = feed_all(reassembler, openers)
    assert [event.msg_id for event in events if isinstance(event, Incomplete)] == [1, 2]
    assert reassembler.pending_bytes <= cap


def test_total_byte_cap_evicts_across_sources() -> None:
    opener = decode_all(encode_chunks(b"q" * 120_000, 9, 60_100))[0]
    cap = 2 * cost_of(opener) + cost_of(opener) // 2  # room for two, not three
    reassembler = Reassembler(max_total_bytes=cap)
    for port in range(3):
        reassembler.feed(opener, ("192.0.2.1", port), now=float(port))
    assert reassembler.pending_bytes <= cap
    assert reassembler.totals.incomplete == 1
    assert reassembler.by_source()[("192.0.2.1", 0)].incomplete == 1  # the least recently active went


def test_a_message_larger_than_the_cap_is_given_up_not_grown() -> None:
    parts = decode_all(encode_chunks(b"w" * 300_000, 4, 60_100))
    cap = 2 * cost_of(parts[0]) + cost_of(parts[0]) // 2
    reassembler = Reassembler(max_bytes=cap)
    events = feed_all(reassembler, parts)
    assert not any(isinstance(event, Message) for event in events)
    assert reassembler.totals.incomplete == 1
    assert reassembler.pending_bytes <= cap


def test_a_message_longer_than_max_message_is_refused_at_its_first_chunk() -> None:
    reassembler = Reassembler(max_message=10_000)
    first, *rest = chunks_of(b"x" * 20_000, size=1400)
    assert reassembler.feed(first, SOURCE, now=0.0) == [Incomplete(SOURCE, 1, 0, len(rest) + 1, "too_large")]
    assert reassembler.pending_bytes == 0
    assert feed_all(reassembler, rest) == []  # the rest are late, not a new message
    assert reassembler.totals == LossCounts(incomplete=1, too_large=1, late=len(rest))


def test_a_message_that_grows_past_max_message_is_refused_when_it_does() -> None:
    reassembler = Reassembler(max_message=10_000)
    parts = chunks_of(b"x" * 20_000, size=1400)
    events = feed_all(reassembler, parts[::-1])  # the last chunk first: it says nothing of the size
    [refused] = events
    assert isinstance(refused, Incomplete) and refused.reason == "too_large"
    assert 10_000 < refused.have * 1400 < 10_000 + 1400
    assert reassembler.totals.lost == 0 and reassembler.pending_bytes == 0


def opener_of_many_ids(count: int) -> list[tuple[Chunk, Address]]:
    return [(Chunk(msg_id, 0, 2, b"ab"), SOURCE) for msg_id in range(count)]


def one_id_from_many_ports(count: int) -> list[tuple[Chunk, Address]]:
    return [(Chunk(7, 0, 2, b"ab"), ("192.0.2.1", 1024 + port)) for port in range(count)]


def tiny_chunks_of_huge_messages(per_source: int) -> list[tuple[Chunk, Address]]:
    return [(Chunk(1, k, MAX_CHUNKS, b"ab"), ("192.0.2.1", 1024 + s)) for s in range(6) for k in range(per_source)]


def many_ids_claiming_huge_totals(count: int) -> list[tuple[Chunk, Address]]:
    return [(Chunk(msg_id, 0, MAX_CHUNKS, b"ab"), ("192.0.2.1", 1024 + msg_id % 6)) for msg_id in range(count)]


def full_chunks(count: int) -> list[tuple[Chunk, Address]]:
    return [(Chunk(1, k, MAX_CHUNKS, b"p" * 1400), SOURCE) for k in range(count)]


@pytest.mark.parametrize(
    "attack",
    [
        pytest.param(opener_of_many_ids(10_000), id="10k-ids-one-source"),
        pytest.param(one_id_from_many_ports(5_000), id="one-id-from-5k-ports"),
        pytest.param(tiny_chunks_of_huge_messages(5_000), id="6-sources-2-byte-chunks-of-n-65535"),
        pytest.param(many_ids_claiming_huge_totals(2_000), id="2k-ids-of-n-65535"),
        pytest.param(full_chunks(2_000), id="1400-byte-chunks"),
    ],
)
def test_pending_memory_is_charged_at_what_tracemalloc_measures(attack: list[tuple[Chunk, Address]]) -> None:
    """The budget is only as good as the charge: the old one (payload + 64 bytes a chunk, nothing a message)
    was 0.51 of the real cost for 2-byte chunks and 0.09 for bare message ids (RSS, 100,000 of each)."""
    reassembler = Reassembler(max_pending=10**6, max_message=10**9, max_bytes=2**40, max_total_bytes=2**40)
    datagrams = [(chunk.header() + chunk.payload, source) for chunk, source in attack]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for datagram, source in datagrams:
            chunk = decode_chunk(datagram)  # as the sink does: the payload is a slice of the datagram
            assert chunk is not None
            reassembler.feed(chunk, (source[0], source[1]), now=0.0)  # a new source tuple each time, as received
        gc.collect()
        real = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert reassembler.pending_messages > 0 and reassembler.totals.incomplete == 0
    # The reassembler's own tables (first allocations of its dicts, a few kB once) are not charged to a message.
    assert real - 4096 <= reassembler.pending_bytes <= 2 * real


def test_claimed_totals_cannot_inflate_the_loss_counts() -> None:
    """28,000 datagrams claiming 65,535 chunks each once counted 1.84e9 lost chunks; now one each at most."""
    reassembler = Reassembler(timeout=1.0)
    for msg_id in range(28_000):
        index = (0, MAX_CHUNKS - 1, 30_000)[msg_id % 3]  # the first, the last, one in the middle
        reassembler.feed(Chunk(msg_id, index, MAX_CHUNKS, b"ab"), ("192.0.2.1", 1024 + msg_id % 6), now=0.0)
    reassembler.expire(10.0)
    assert reassembler.totals.incomplete == 28_000
    assert reassembler.totals.lost == 28_000  # each given-up message counts at most the chunks it received
    assert reassembler.pending_bytes == 0


arrivals = st.lists(
    st.tuples(
        st.integers(0, 12),  # message id
        st.sampled_from([1, 2, 3, 50, MAX_CHUNKS]),  # its claimed total (a message keeps one)
        st.integers(0, MAX_CHUNKS - 1),  # index, taken modulo the total
        st.integers(0, 3),  # source port
        st.sampled_from([b"", b"ab", b"p" * 1400]),
    ),
    max_size=300,
)


@given(arrivals)
def test_no_count_grows_faster_than_chunks_arrive_and_the_budget_holds(
    chunks: list[tuple[int, int, int, int, bytes]],
) -> None:
    budget = 3 * 10_000 + 66_830 * 2  # a few bitmaps of n=65535 and two full chunks: eviction happens
    reassembler = Reassembler(timeout=1.0, max_pending=3, max_bytes=budget // 2, max_total_bytes=budget)
    fed = 0
    for msg_id, total, index, port, payload in chunks:
        chunk = Chunk(msg_id, index % total, total, payload)
        try:
            reassembler.feed(chunk, ("192.0.2.1", port), now=0.0)
        except RemoteProtocolError:
            continue  # a total that disagrees with the message's: refused, counted by the sink as a bad datagram
        fed += 1
        assert reassembler.pending_bytes <= budget
    reassembler.expire(100.0)
    totals = reassembler.totals
    for name in ("lost", "duplicated", "reordered", "late"):
        assert getattr(totals, name) <= fed, name
    assert totals.completed + totals.incomplete <= fed
    assert reassembler.pending_bytes == 0 and reassembler.pending_messages == 0


def test_disagreeing_total_is_a_remote_error_and_changes_nothing() -> None:
    reassembler = Reassembler()
    reassembler.feed(Chunk(5, 0, 3, b"a"), SOURCE, now=0.0)
    with pytest.raises(RemoteProtocolError):
        reassembler.feed(Chunk(5, 1, 4, b"b"), SOURCE, now=0.0)
    reassembler.feed(Chunk(5, 1, 3, b"b"), SOURCE, now=0.0)
    [message] = reassembler.feed(Chunk(5, 2, 3, b"c"), SOURCE, now=0.0)
    assert isinstance(message, Message) and message.data == b"abc"


def test_limits_must_hold_one_chunk() -> None:
    with pytest.raises(LocalProtocolError):
        Reassembler(max_bytes=1000)
    with pytest.raises(LocalProtocolError):
        Reassembler(timeout=0)


@given(
    message=st.binary(min_size=1, max_size=2000),
    size=st.integers(41, 300),
    seed=st.integers(0, 2**32),
)
def test_any_arrival_order_with_duplicates_yields_the_message_once(message: bytes, size: int, seed: int) -> None:
    rng = random.Random(seed)
    parts = chunks_of(message, size=size)
    arrivals = parts + rng.sample(parts, k=rng.randint(0, len(parts)))
    rng.shuffle(arrivals)
    reassembler = Reassembler()
    events = feed_all(reassembler, arrivals)
    assert [event.data for event in events if isinstance(event, Message)] == [message]
    assert reassembler.totals.duplicated == len(arrivals) - len(parts)
    assert reassembler.pending_bytes == 0


# --------------------------------------------------------------------------- small service helpers


@pytest.mark.parametrize(
    ("text", "expected"),
    [("creosote:7739", ("creosote", 7739)), ("[::1]:9", ("::1", 9)), ("10.0.0.1:0", ("10.0.0.1", 0))],
)
def test_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert host_and_port(text) == expected


@pytest.mark.parametrize("text", ["creosote", ":7739", "creosote:http", "creosote:70000"])
def test_host_and_port_rejects(text: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        host_and_port(text)


def test_jsonl_writer_flush_schedule(tmp_path: Path) -> None:
    from common.eventlog import EventLog
    from services.creosote import FLUSH_DELAY, IDLE_FLUSH, JsonlWriter

    path = tmp_path / "deep" / "records.jsonl"
    writer = JsonlWriter(path, log=EventLog("test"))
    assert writer.timeout(0.0) is None
    writer.add("{}", 10.0)
    assert writer.timeout(10.0) == pytest.approx(IDLE_FLUSH)
    writer.add("{}", 10.0 + IDLE_FLUSH / 2)  # steady traffic: only the delay cap forces a flush
    writer.tick(10.0 + IDLE_FLUSH * 0.9)
    assert path.read_text() == ""
    writer.tick(10.0 + FLUSH_DELAY)
    assert path.read_text() == "{}\n{}\n"
    writer.close()


def test_jsonl_writer_flushes_a_batch_of_long_lines_at_once(tmp_path: Path) -> None:
    from common.eventlog import EventLog
    from services.creosote import MAX_BATCH_BYTES, JsonlWriter

    path = tmp_path / "records.jsonl"
    writer = JsonlWriter(path, log=EventLog("test"))
    line = "x" * (MAX_BATCH_BYTES // 4)
    for _ in range(3):
        writer.add(line, 10.0)
    assert path.read_text() == ""  # three quarters of the cap: still batched
    writer.add(line, 10.0)
    assert path.read_text() == (line + "\n") * 4  # at the cap: written, without waiting for the timer
    writer.close()


@pytest.mark.parametrize(
    "epoch", [0.0, 0.0000005, 0.0000015, 1.5, 1764650000.9999996, 1764650000.0000004, 1793925564.4926274]
)
def test_iso_utc_matches_datetime_to_the_microsecond(epoch: float) -> None:
    want = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    assert iso_utc(epoch) == want


@given(st.floats(min_value=0, max_value=4e9))
def test_iso_utc_matches_datetime_anywhere(epoch: float) -> None:
    assert iso_utc(epoch) == datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds").replace(
        "+00:00", "Z"
    )
