"""Creosote, the UDP log sink ("Mr. Creosote"): everything but the sockets.

The course original sent a long message as bare ``BUFSIZE`` slices and printed
whatever ``recvfrom`` returned, so the sink could not tell where one message
ended, which slice was missing or which came twice. This module fixes that and
stays pure, so the sink, the redirector and the ``spew`` client share it:

- ``make_record`` turns one datagram (or one reassembled message) into a
  ``Record``: text or base64, plus syslog fields when it parses (``parse_syslog``).
- ``encode_chunks`` / ``decode_chunk`` frame a message too long for one datagram:
  a header line ``\\x00creosote1 <msgid-hex> <i>/<n>\\n`` then the chunk. The
  leading NUL means no text log line can be mistaken for a chunk.
- ``Reassembler`` puts chunks back together and counts lost, duplicated,
  reordered and late chunks. Its memory is charged at what pending messages
  really hold and capped (per message, per source, in total); no count can
  grow faster than chunks arrive, whatever totals their headers claim.
- ``is_ping`` / ``pong``: the health probe, answered by the sink, never recorded.
- ``add_hop`` / ``split_hops``: what a redirector forwards. It used to relay
  every datagram unchanged, and three redirectors in a ring passed one
  datagram round 590,000 times in 10 s (a ring of two was caught, as the
  datagram came back from the target). Now a redirector puts a hop line
  ``\\x00creosote-hops <n>\\n`` in front of what it relays, or adds one to the
  ``n`` already there, and drops the datagram instead once ``n`` would pass
  ``MAX_HOPS``: a ring of any size relays a datagram at most ``MAX_HOPS``
  times. The sink takes the line off before recording, so a record holds what
  the sender sent. A redirector's target is therefore a creosote (a sink or a
  redirector): another syslog receiver would record the hop line too.
"""

from __future__ import annotations

import json
import math
import operator
import re
import sys
from array import array
from base64 import b64decode, b64encode
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.framing import chunks
from protocols.stamps import PerSecond

DEFAULT_PORT = 7739
MAX_UDP_PAYLOAD = 65507  # 65535 - 8 (UDP header) - 20 (IPv4 header): the largest datagram one sendto can carry
RECEIVE_BUFFER = 65535  # receive into this much: the largest UDP payload (65,527 bytes over IPv6) fits whole
DEFAULT_SPEW_DATAGRAM = 1400  # below a 1500-byte Ethernet MTU after IP/UDP headers: no IP fragmentation

PING = b"\x00creosote:ping"
PONG_PREFIX = b"creosote:pong records="

Address = tuple[str, int]

# --------------------------------------------------------------------------- probe


def is_ping(datagram: bytes) -> bool:
    """True for the health probe, which the sink answers and does not record."""
    return datagram == PING


def pong(records: int) -> bytes:
    """The probe's answer, carrying how many records the sink has made."""
    if records < 0:
        raise LocalProtocolError("record count cannot be negative")
    return PONG_PREFIX + str(records).encode("ascii") + b"\n"


def parse_pong(datagram: bytes) -> int:
    """The record count from a pong; ``RemoteProtocolError`` if it is not one."""
    match = re.fullmatch(rb"creosote:pong records=(\d{1,20})\n?", datagram)
    if match is None:
        raise RemoteProtocolError(f"not a creosote pong: {datagram[:60]!r}")
    return int(match.group(1))


# --------------------------------------------------------------------------- syslog

FACILITY_USER = 1
SEVERITY_NAMES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")  # RFC 5424 §6.2.1

SyslogFormat = Literal["rfc3164", "rfc5424"]
StructuredData = dict[str, dict[str, str]]


class SyslogFields(TypedDict):
    """What ``parse_syslog`` found; a missing header field (or RFC 5424 ``-``) is ``None``."""

    format: SyslogFormat
    facility: int
    severity: int
    timestamp: str | None
    hostname: str | None
    app_name: str | None
    procid: str | None
    msgid: str | None
    structured_data: StructuredData | None
    message: str


_PRI = re.compile(r"<([0-9]{1,3})>")
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_RFC3339 = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})"
# RFC 3164 §4.1.2 says "Mmm dd hh:mm:ss" with a space-padded day; real senders also
# zero-pad or don't pad the day, add a year or fractions, or send RFC 3339 (rsyslog).
_RFC3164_HEADER = re.compile(
    rf"(?P<timestamp>{_MONTH} {{1,2}}\d{{1,2}}(?: \d{{4}})? \d{{2}}:\d{{2}}:\d{{2}}(?:\.\d{{1,9}})?|{_RFC3339}) "
)
# A tag is "app:" or "app[pid]:"; RFC 3164 §5.3 only suggests alphanumerics, but
# real tags hold "-", "." and "/" (postfix/smtpd[42]:).
_TAG = re.compile(r"(?P<app>[^\s\[\]:]{1,48})(?:\[(?P<procid>[^\s\]]{1,128})\])?:")
_RFC5424_HEADER = re.compile(
    rf"1 (?P<timestamp>-|{_RFC3339}) (?P<hostname>\S{{1,255}}) (?P<app_name>\S{{1,48}}) "
    r"(?P<procid>\S{1,128}) (?P<msgid>\S{1,32}) "
)
_SD_NAME = re.compile(r'[^ =\]"]{1,32}')  # SD-NAME, RFC 5424 §6.3: printable, no space = ] "
_SD_VALUE = re.compile(r'="((?:[^"\\]|\\.)*)"', re.DOTALL)
_SD_ESCAPE = re.compile(r'\\(["\\\]])')  # only these three; any other backslash is literal (§6.3.3)
_BOM = "\ufeff"


def parse_syslog(text: str) -> SyslogFields | None:
    """Parse an RFC 5424 or RFC 3164 message; ``None`` if it does not start with a PRI.

    Tolerant like a real collector: a PRI with no valid header (Python's
    ``SysLogHandler`` sends ``<PRI>message\\x00``) is RFC 3164 with no timestamp
    or host, the whole rest being the content (RFC 3164 §4.3.2). Trailing NUL,
    CR and LF are framing, not message, and are stripped from ``message``.
    """
    match = _PRI.match(text)
    if match is None or int(match.group(1)) > 191:  # facility 23, severity 7: RFC 5424 §6.2.1
        return None
    facility, severity = divmod(int(match.group(1)), 8)
    rest = text[match.end() :]
    return _parse_rfc5424(rest, facility, severity) or _parse_rfc3164(rest, facility, severity)


def _parse_rfc5424(rest: str, facility: int, severity: int) -> SyslogFields | None:
    header = _RFC5424_HEADER.match(rest)
    if header is None:
        return None
    parsed = _parse_structured_data(rest, header.end())
    if parsed is None:
        return None
    structured_data, end = parsed
    if end < len(rest) and rest[end] != " ":
        return None
    message = rest[end + 1 :].removeprefix(_BOM)  # §6.4: MSG may begin with a BOM to say "UTF-8"
    return SyslogFields(
        format="rfc5424",
        facility=facility,
        severity=severity,
        timestamp=_nil(header.group("timestamp")),
        hostname=_nil(header.group("hostname")),
        app_name=_nil(header.group("app_name")),
        procid=_nil(header.group("procid")),
        msgid=_nil(header.group("msgid")),
        structured_data=structured_data,
        message=_strip_framing(message),
    )


def _nil(value: str) -> str | None:
    return None if value == "-" else value  # NILVALUE, RFC 5424 §6


def _parse_structured_data(text: str, pos: int) -> tuple[StructuredData | None, int] | None:
    """SD at ``pos``: ``-`` or ``[id k="v" ...]...``; the elements and where they end, None if malformed."""
    if text.startswith("-", pos):
        return None, pos + 1
    elements: StructuredData = {}
    while text.startswith("[", pos):
        element = _parse_sd_element(text, pos + 1)
        if element is None:
            return None
        sd_id, params, pos = element
        # A repeated SD-ID or PARAM-NAME keeps its last value, as rsyslog does; `text` keeps the original.
        elements.setdefault(sd_id, {}).update(params)
    return (elements, pos) if elements else None


def _parse_sd_element(text: str, pos: int) -> tuple[str, dict[str, str], int] | None:
    sd_id = _SD_NAME.match(text, pos)
    if sd_id is None:
        return None
    params: dict[str, str] = {}
    pos = sd_id.end()
    while text.startswith(" ", pos):
        name = _SD_NAME.match(text, pos + 1)
        value = _SD_VALUE.match(text, name.end()) if name else None
        if name is None or value is None:
            return None
        params[name.group()] = _SD_ESCAPE.sub(r"\1", value.group(1))
        pos = value.end()
    if not text.startswith("]", pos):
        return None
    return sd_id.group(), params, pos + 1


def _parse_rfc3164(rest: str, facility: int, severity: int) -> SyslogFields:
    header = _RFC3164_HEADER.match(rest)
    if header is None:
        hostname, app_name, procid, message = None, None, None, rest
    else:
        hostname, app_name, procid, message = _split_host_and_tag(rest[header.end() :])
    return SyslogFields(
        format="rfc3164",
        facility=facility,
        severity=severity,
        timestamp=header.group("timestamp") if header else None,
        hostname=hostname,
        app_name=app_name,
        procid=procid,
        msgid=None,
        structured_data=None,
        message=_strip_framing(message),
    )


def _split_host_and_tag(body: str) -> tuple[str | None, str | None, str | None, str]:
    """``host tag[pid]: msg``; local senders (``/dev/log`` style) leave the host out."""
    first, _, after = body.partition(" ")
    tag = _TAG.fullmatch(first)
    if tag is not None:
        return None, tag.group("app"), tag.group("procid"), after
    tag_token, _, message = after.partition(" ")
    tag = _TAG.fullmatch(tag_token)
    if tag is None:
        return first, None, None, after
    return first, tag.group("app"), tag.group("procid"), message


def _strip_framing(message: str) -> str:
    return message.rstrip("\x00\r\n")


def encode_pri(facility: int, severity: int) -> str:
    """The ``<PRI>`` prefix for a facility (0-23) and severity (0-7)."""
    if not (0 <= facility <= 23 and 0 <= severity <= 7):
        raise LocalProtocolError(f"no PRI for facility {facility}, severity {severity}")
    return f"<{facility * 8 + severity}>"


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Record:
    """One received log message, as written to the JSON Lines file.

    Exactly one of ``text`` (the payload, UTF-8) and ``base64`` (when it is not
    valid UTF-8) is set. Syslog fields are set when the payload parses; ``None``
    fields, a false ``truncated`` and the chunk counts of a plain datagram are
    left out of the JSON.
    """

    received: str  # ISO 8601, UTC
    source_host: str
    source_port: int
    size: int  # bytes as sent, even when truncated on receipt
    text: str | None = None
    base64: str | None = None
    truncated: bool = False
    chunks: int | None = None  # set for a message reassembled from spew chunks
    duplicated: int | None = None
    reordered: int | None = None
    format: SyslogFormat | None = None
    facility: int | None = None
    severity: int | None = None
    timestamp: str | None = None
    hostname: str | None = None
    app_name: str | None = None
    procid: str | None = None
    msgid: str | None = None
    structured_data: StructuredData | None = None
    message: str | None = None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.base64 is None):
            raise LocalProtocolError("a record holds exactly one of text and base64")
        if self.size < 0 or not 0 <= self.source_port <= 65535:
            raise LocalProtocolError(f"bad size {self.size} or port {self.source_port}")

    def to_json(self) -> str:
        """One JSON line (no newline), fields in declaration order, empty ones left out."""
        # A shallow read of the fields: asdict() deep-copies every value only for json to walk it
        # again, and was a quarter of the sink's time per record (scripts/bench, py-spy).
        data = {}
        for key in _RECORD_FIELDS:
            value = getattr(self, key)
            if value is not None and value is not False:
                data[key] = value
        return _RECORD_ENCODER.encode(data)

    @classmethod
    def from_json(cls, line: str) -> Record:
        """Read back a line written by ``to_json``; ``RemoteProtocolError`` if it is not one."""
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise RemoteProtocolError(f"not JSON: {line[:80]!r}") from exc
        if not isinstance(data, dict) or not set(data) <= {f.name for f in fields(cls)}:
            raise RemoteProtocolError(f"not an object of record fields: {line[:80]!r}")
        try:
            return cls(**data)
        except (TypeError, LocalProtocolError) as exc:  # a required field missing, or an invalid value
            raise RemoteProtocolError(f"not a valid record ({exc}): {line[:80]!r}") from exc

    @property
    def payload(self) -> bytes:
        """The bytes received (for a truncated datagram, the part kept)."""
        if self.text is not None:
            return self.text.encode("utf-8")
        return b64decode(self.base64 or "")


_RECORD_FIELDS = tuple(f.name for f in fields(Record))  # declaration order, for to_json
# One encoder for every record: json.dumps with options builds a JSONEncoder per call.
_RECORD_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def make_record(payload: bytes, source: Address, received: float, *, size: int | None = None) -> Record:
    """A ``Record`` for ``payload`` from ``source``, received at epoch time ``received``.

    ``size`` is the datagram's real length when the receive buffer cut it short.
    A payload that is not UTF-8 is kept as base64; its syslog fields are still
    parsed from a lenient decoding, so a stray byte does not hide the severity.
    """
    try:
        text: str | None = payload.decode("utf-8")
        encoded = None
    except UnicodeDecodeError:
        text, encoded = None, b64encode(payload).decode("ascii")
    real_size = len(payload) if size is None else size
    syslog: Mapping[str, Any] = parse_syslog(text if text is not None else payload.decode("utf-8", "replace")) or {}
    return Record(  # built once with its syslog fields (a replace() would build and validate it twice)
        received=iso_utc(received),
        source_host=source[0],
        source_port=source[1],
        size=real_size,
        text=text,
        base64=encoded,
        truncated=real_size > len(payload),
        **syslog,
    )


def iso_utc(epoch: float) -> str:
    """``2026-11-22T02:40:38.865728Z`` for an epoch time."""
    fraction_s, whole = math.modf(epoch)  # rounded as datetime.fromtimestamp does (half to even)
    second, fraction = int(whole), round(fraction_s * 1e6)
    if fraction >= 1_000_000:
        second, fraction = second + 1, fraction - 1_000_000
    elif fraction < 0:
        second, fraction = second - 1, fraction + 1_000_000
    return f"{_ISO_SECOND(second)}{fraction:06d}Z"  # the date and time to the second: once per second


_ISO_SECOND = PerSecond(lambda second: datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S."))


# --------------------------------------------------------------------------- chunks

CHUNK_MAGIC = b"\x00creosote1 "
MAX_CHUNKS = 65535
MAX_MSG_ID = 2**64 - 1
_MAX_HEADER = len(CHUNK_MAGIC) + 16 + 1 + 5 + 1 + 5 + 1  # magic, 16 hex digits, " ", i, "/", n, "\n"
_CHUNK_HEADER = re.compile(rb"([0-9a-f]{1,16}) (0|[1-9][0-9]{0,4})/([1-9][0-9]{0,4})")


@dataclass(frozen=True, slots=True)
class Chunk:
    """Chunk ``index`` (from 0) of ``total`` of message ``msg_id``."""

    msg_id: int
    index: int
    total: int
    payload: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.msg_id <= MAX_MSG_ID:
            raise LocalProtocolError(f"message id {self.msg_id} is not a 64-bit unsigned number")
        if not 0 <= self.index < self.total <= MAX_CHUNKS:
            raise LocalProtocolError(f"chunk {self.index}/{self.total} is out of range (0 <= i < n <= {MAX_CHUNKS})")

    def header(self) -> bytes:
        """The header line that precedes the payload on the wire."""
        return _chunk_header(self.msg_id, self.index, self.total)


def _chunk_header(msg_id: int, index: int, total: int) -> bytes:
    return CHUNK_MAGIC + f"{msg_id:x} {index}/{total}\n".encode("ascii")


def encode_chunks(message: bytes, msg_id: int, max_datagram: int) -> list[bytes]:
    """Cut ``message`` into chunk datagrams of at most ``max_datagram`` bytes, header included."""
    if not 0 <= msg_id <= MAX_MSG_ID:
        raise LocalProtocolError(f"message id {msg_id} is not a 64-bit unsigned number")
    if not _MAX_HEADER < max_datagram <= MAX_UDP_PAYLOAD:
        raise LocalProtocolError(f"max_datagram must be in {_MAX_HEADER + 1}..{MAX_UDP_PAYLOAD}, not {max_datagram}")
    pieces = chunks(message, _chunk_room(len(message), msg_id, max_datagram))
    return [_chunk_header(msg_id, i, len(pieces)) + piece for i, piece in enumerate(pieces)]


def _chunk_room(length: int, msg_id: int, max_datagram: int) -> int:
    """Payload bytes per chunk: the header grows with the digits of n, which depends on the room."""
    total = 1
    while True:
        room = max_datagram - len(_chunk_header(msg_id, total - 1, total))
        needed = max(1, math.ceil(length / room))
        if needed > MAX_CHUNKS:
            raise LocalProtocolError(f"a {length}-byte message needs more than {MAX_CHUNKS} chunks")
        if needed <= total:  # fewer chunks never means longer headers, so every header fits
            return room
        total = needed


def decode_chunk(datagram: bytes) -> Chunk | None:
    """The chunk in ``datagram``; ``None`` if it is a plain datagram.

    Raises ``RemoteProtocolError`` when the datagram starts like a chunk but its
    header is malformed.
    """
    if not datagram.startswith(CHUNK_MAGIC):
        return None
    end = datagram.find(b"\n", len(CHUNK_MAGIC), _MAX_HEADER)
    if end < 0:
        raise RemoteProtocolError(f"chunk header without end of line: {datagram[:_MAX_HEADER]!r}")
    match = _CHUNK_HEADER.fullmatch(datagram, len(CHUNK_MAGIC), end)
    if match is None:
        raise RemoteProtocolError(f"malformed chunk header: {datagram[:end]!r}")
    msg_id, index, total = int(match.group(1), 16), int(match.group(2)), int(match.group(3))
    if not index < total <= MAX_CHUNKS:
        raise RemoteProtocolError(f"chunk {index}/{total} is out of range (0 <= i < n <= {MAX_CHUNKS})")
    return Chunk(msg_id, index, total, datagram[end + 1 :])


def frame_message(message: bytes, msg_id: int, max_datagram: int) -> list[bytes]:
    """The datagrams for one message: itself if it fits and cannot be mistaken, else chunks."""
    looks_like_ours = message.startswith(b"\x00creosote")  # a chunk header or the probe
    if len(message) <= max_datagram and not looks_like_ours:
        return [message]
    return encode_chunks(message, msg_id, max_datagram)


# --------------------------------------------------------------------------- redirector hops

HOP_MAGIC = b"\x00creosote-hops "
# Redirectors a datagram may pass. topology/relay.yaml chains two; eight leaves room for longer chains
# and bounds a loop's echo to eight sends of each datagram.
MAX_HOPS = 8
_HOP_COUNT = re.compile(rb"([1-9])\n")  # one digit: MAX_HOPS is below 10, and a hop line keeps its length


class HopLimitExceeded(RemoteProtocolError):
    """A datagram has passed ``MAX_HOPS`` redirectors: they are in a loop, or the chain is too long."""


def split_hops(datagram: bytes) -> tuple[int, bytes]:
    """How many redirectors ``datagram`` passed (0 if it has no hop line) and what it carries.

    Raises ``RemoteProtocolError`` for a datagram that starts like a hop line
    but is not a valid one.
    """
    if not datagram.startswith(HOP_MAGIC):
        return 0, datagram
    match = _HOP_COUNT.match(datagram, len(HOP_MAGIC))
    if match is None:
        raise RemoteProtocolError(f"malformed hop line: {datagram[: len(HOP_MAGIC) + 4]!r}")
    return int(match.group(1)), datagram[match.end() :]


def add_hop(datagram: bytes, *, max_hops: int = MAX_HOPS) -> bytes:
    """What a redirector sends on: ``datagram`` with a hop line counting one more redirector.

    Raises ``HopLimitExceeded`` when it has passed ``max_hops`` already.
    """
    if not 1 <= max_hops <= 9:
        raise LocalProtocolError(f"max_hops must be 1..9 (one digit on the wire), not {max_hops}")
    hops, payload = split_hops(datagram)
    if hops >= max_hops:
        raise HopLimitExceeded(f"passed {hops} redirectors already (at most {max_hops}): a loop?")
    return HOP_MAGIC + b"%d\n" % (hops + 1) + payload


# --------------------------------------------------------------------------- reassembly


@dataclass(frozen=True, slots=True)
class LossCounts:
    """Chunk accounting for one source, or for all.

    No count can grow faster than chunks arrive, whatever the chunks claim: a
    header saying ``0/65535`` is one chunk, not 65,534 lost ones (see ``lost``).
    """

    completed: int = 0  # messages reassembled
    incomplete: int = 0  # messages given up on (expired, evicted or too large)
    # Chunks the given-up messages never received, each message counting at most as many as it did
    # receive: a lower bound, so that a sender claiming huge totals cannot inflate it (a chunk header
    # of n=65535 once counted 65,534 lost chunks a datagram: 1.84e9 after 28,000 datagrams).
    lost: int = 0
    duplicated: int = 0  # chunks received again
    reordered: int = 0  # chunks that arrived after a later chunk of their message
    late: int = 0  # chunks of a message already given up on
    too_large: int = 0  # messages refused because they would be longer than the largest kept

    def __add__(self, other: LossCounts) -> LossCounts:
        # Twice per given-up message (the totals, the source's): a flood of new message ids evicts one a
        # datagram, and dataclasses.fields() on each made this half of feed()'s time (cProfile).
        return LossCounts(*map(operator.add, _loss_values(self), _loss_values(other)))


_loss_values: Callable[[LossCounts], tuple[int, ...]] = operator.attrgetter(*(f.name for f in fields(LossCounts)))


@dataclass(frozen=True, slots=True)
class Message:
    """A message reassembled from all its chunks."""

    source: Address
    msg_id: int
    data: bytes
    chunks: int
    duplicated: int
    reordered: int


GiveUpReason = Literal["expired", "evicted", "too_large"]


@dataclass(frozen=True, slots=True)
class Incomplete:
    """A message given up on: idle too long, pushed out to stay in budget, or longer than the largest kept."""

    source: Address
    msg_id: int
    have: int  # chunks received before giving up
    total: int
    reason: GiveUpReason


ReassemblyEvent = Message | Incomplete


def make_message_record(message: Message, received: float) -> Record:
    """The record for a reassembled message, with its chunk count and any anomalies."""
    record = make_record(message.data, message.source, received)
    return replace(
        record,
        chunks=message.chunks,
        duplicated=message.duplicated or None,
        reordered=message.reordered or None,
    )


MIB = 2**20
# The largest message put back together. Recording one costs more than its bytes: text, syslog message
# and their JSON escapes (six bytes for a control character) peaked at 24.4 times the message in objects
# (tracemalloc, a 1 MiB "<13>" + control characters message; 4.0 for plain text, 8.3 for binary) and
# 34 MiB of RSS above the sink's 17 (VmHWM). 10 MiB of that once peaked the sink at 270 MiB RSS: past a
# 128 MiB container's limit.
MAX_MESSAGE_BYTES = 1 * MIB
# What pending messages may hold, charged at what they really cost (_Pending.real_cost). With the
# interpreter (17 MiB at ready), the completion above (34 MiB) and the kernel's receive queue (8 MiB for
# SO_RCVBUF 4 MiB), 83 MiB of a 128 MiB container at the worst.
MAX_PENDING_BYTES = 24 * MIB
MAX_SOURCE_BYTES = 4 * MIB  # per source: one sender cannot take the whole budget from the others
MAX_PENDING_PER_SOURCE = 64  # message ids waiting at once, per source
# A pending message's memory besides its four buffers (which sys.getsizeof measures as allocated):
# the _Pending object, its key (a (host, port) tuple, the host string, the id), its entries in two
# OrderedDicts and, when it is its source's only one, the source's. tracemalloc measured 495 bytes a
# message for 100,000 ids from one source, 824 for one id from each of 10,000 ports; the rest covers
# malloc's headers and rounding. Charged this way, RSS grew by 0.68-0.99 of the charge for those
# shapes and for 6 x 60,000 2-byte chunks; the old charge (payload + 64 bytes a chunk) covered
# 0.06-0.51 of RSS growth for the same three. tests/unit/test_creosote.py checks it with tracemalloc.
_MESSAGE_OVERHEAD = 1024
_INDEX = "H"  # array type of a chunk index: 0..65534
_OFFSET = "I"  # array type of an offset in a message's bytes: at least 32 bits
if array(_OFFSET).itemsize < 4:  # pragma: no cover - every platform CPython runs on has a 32-bit int
    _OFFSET = "L"


@dataclass(slots=True, eq=False)
class _Pending:
    """A message being put back together: its payloads end to end, in the order they came.

    Four flat buffers, whatever the chunk count: a dict of bytes objects cost a 2-byte chunk about
    110 bytes (object header, dict slot, int key), where these cost it 8, and their real size is
    ``sys.getsizeof`` of each.
    """

    total: int
    seen: bytearray  # one bit per chunk index
    data: bytearray = field(default_factory=bytearray)
    order: array[int] = field(default_factory=lambda: array(_INDEX))  # chunk index of each payload in data
    ends: array[int] = field(default_factory=lambda: array(_OFFSET))  # where each payload ends in data
    last_seen: float = 0.0
    highest: int = -1
    cost: int = 0  # what was charged for it
    duplicated: int = 0
    reordered: int = 0

    @property
    def have(self) -> int:
        return len(self.order)

    def has(self, index: int) -> bool:
        return bool(self.seen[index >> 3] >> (index & 7) & 1)

    def add(self, index: int, payload: bytes) -> None:
        self.seen[index >> 3] |= 1 << (index & 7)
        self.data += payload
        self.order.append(index)
        self.ends.append(len(self.data))

    def real_cost(self) -> int:
        """Bytes this message holds, as allocated (bytearray and array over-allocate as they grow)."""
        return (
            _MESSAGE_OVERHEAD
            + sys.getsizeof(self.seen)
            + sys.getsizeof(self.data)
            + sys.getsizeof(self.order)
            + sys.getsizeof(self.ends)
        )

    def joined(self) -> bytes:
        """The message, its payloads in index order (all present)."""
        if not self.reordered:  # every chunk came after the ones before it: data is already in order
            return bytes(self.data)
        view = memoryview(self.data)
        starts = [0, *self.ends[:-1]]
        spans = sorted(zip(self.order, starts, self.ends, strict=True))
        return b"".join(view[start:end] for _, start, end in spans)


def _one_chunk_cost() -> int:
    pending = _Pending(total=1, seen=bytearray(1))
    pending.add(0, bytes(MAX_UDP_PAYLOAD))
    return pending.real_cost()


_LARGEST_ONE_CHUNK = _one_chunk_cost()  # the least a byte cap must hold: one message of one chunk


@dataclass(slots=True)
class _Source:
    messages: OrderedDict[int, None] = field(default_factory=OrderedDict)  # msg ids, least recently active first
    cost: int = 0


_Key = tuple[Address, int]


class Reassembler:
    """Reassemble chunked messages from many sources, with bounded memory.

    ``feed`` takes one chunk and returns what it completed or gave up on;
    ``expire`` gives up on messages idle for ``timeout`` seconds. Memory is
    charged at what pending messages really hold (``pending_bytes``) and capped
    per source (``max_pending`` messages, ``max_bytes``) and in total
    (``max_total_bytes``): over a cap, the least recently active message goes
    first (``evicted``). A message longer than ``max_message`` bytes is refused
    (``too_large``), at its first chunk when that chunk shows it: every chunk
    but the last carries as many bytes as the first (``encode_chunks`` cuts
    them so). Per-source counts are kept for the ``max_sources`` most recent
    sources; the totals cover everyone. Chunks of a message already finished
    (the last ``max_closed``) count as duplicated or late instead of starting
    it over.
    """

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        max_pending: int = MAX_PENDING_PER_SOURCE,
        max_message: int = MAX_MESSAGE_BYTES,
        max_bytes: int = MAX_SOURCE_BYTES,
        max_total_bytes: int = MAX_PENDING_BYTES,
        max_sources: int = 1024,
        max_closed: int = 4096,
    ) -> None:
        if min(timeout, max_pending, max_message, max_sources, max_closed) <= 0:
            raise LocalProtocolError("reassembly timeout and limits must be positive")
        if min(max_bytes, max_total_bytes) < _MESSAGE_OVERHEAD + MAX_UDP_PAYLOAD:
            raise LocalProtocolError(f"byte caps must hold a message of one chunk ({_LARGEST_ONE_CHUNK} bytes)")
        self.timeout = timeout
        self._max_pending, self._max_message = max_pending, max_message
        self._max_bytes, self._max_total_bytes = max_bytes, max_total_bytes
        self._max_sources, self._max_closed = max_sources, max_closed
        self._pending: OrderedDict[_Key, _Pending] = OrderedDict()  # least recently active first
        self._sources: dict[Address, _Source] = {}  # only sources with pending messages
        self._total_cost = 0
        self._closed: OrderedDict[_Key, bool] = OrderedDict()  # recently finished -> was it completed?
        self._by_source: OrderedDict[Address, LossCounts] = OrderedDict()
        self._totals = LossCounts()

    @property
    def totals(self) -> LossCounts:
        """Counts over every source since the start."""
        return self._totals

    def by_source(self) -> dict[Address, LossCounts]:
        """Counts for the most recently active sources."""
        return dict(self._by_source)

    @property
    def pending_bytes(self) -> int:
        """Memory held by incomplete messages, as allocated."""
        return self._total_cost

    @property
    def pending_messages(self) -> int:
        """Messages waiting for chunks."""
        return len(self._pending)

    def feed(self, chunk: Chunk, source: Address, now: float) -> list[ReassemblyEvent]:
        """Add a chunk received at monotonic time ``now``.

        Raises ``RemoteProtocolError`` if the chunk disagrees with earlier ones
        about its message's chunk count (state is then unchanged).
        """
        key = (source, chunk.msg_id)
        if key in self._closed:
            self._count(source, LossCounts(duplicated=1) if self._closed[key] else LossCounts(late=1))
            return []
        pending = self._pending.get(key)
        events: list[ReassemblyEvent] = []
        if pending is None:
            if chunk.index < chunk.total - 1 and (chunk.total - 1) * len(chunk.payload) > self._max_message:
                return [self._refuse(key, chunk.total)]
            events += self._make_room_for_message(source)
            pending = self._open(key, chunk.total)
        elif pending.total != chunk.total:
            raise RemoteProtocolError(f"chunk says {chunk.total} chunks, message {chunk.msg_id:x} has {pending.total}")
        elif pending.has(chunk.index):
            pending.duplicated += 1
            self._count(source, LossCounts(duplicated=1))
            return []
        self._store(key, pending, chunk, now)
        if pending.have == pending.total:
            events.append(self._complete(key))
        elif len(pending.data) > self._max_message:
            events.append(self._give_up(key, "too_large"))
        else:
            events += self._make_room(source)
        return events

    def expire(self, now: float) -> list[Incomplete]:
        """Give up on messages with no chunk for ``timeout`` seconds before ``now``."""
        expired: list[Incomplete] = []
        while self._pending:
            key, pending = next(iter(self._pending.items()))
            if now - pending.last_seen < self.timeout:
                break
            expired.append(self._give_up(key, "expired"))
        return expired

    def _open(self, key: _Key, total: int) -> _Pending:
        pending = self._pending[key] = _Pending(total=total, seen=bytearray((total + 7) >> 3))
        self._sources.setdefault(key[0], _Source()).messages[key[1]] = None
        self._charge(key, pending, pending.real_cost())
        return pending

    def _store(self, key: _Key, pending: _Pending, chunk: Chunk, now: float) -> None:
        if chunk.index < pending.highest:
            pending.reordered += 1
            self._count(key[0], LossCounts(reordered=1))
        pending.highest = max(pending.highest, chunk.index)
        pending.add(chunk.index, chunk.payload)
        pending.last_seen = now
        self._charge(key, pending, pending.real_cost() - pending.cost)
        self._pending.move_to_end(key)
        self._sources[key[0]].messages.move_to_end(key[1])

    def _complete(self, key: _Key) -> Message:
        pending = self._forget(key, completed=True)
        self._count(key[0], LossCounts(completed=1))
        return Message(key[0], key[1], pending.joined(), pending.total, pending.duplicated, pending.reordered)

    def _make_room_for_message(self, source: Address) -> list[ReassemblyEvent]:
        """Give up on the source's least recently active messages until one more may wait."""
        held = self._sources.get(source)
        evicted: list[ReassemblyEvent] = []
        while held is not None and len(held.messages) >= self._max_pending:
            evicted.append(self._give_up((source, next(iter(held.messages))), "evicted"))
            held = self._sources.get(source)
        return evicted

    def _make_room(self, source: Address) -> list[ReassemblyEvent]:
        """Give up on least recently active messages, the source's then anyone's, until every cap holds.

        This ends: each round removes a message, and with none left nothing is
        charged. The message just fed is its source's most recent, so it goes
        last, and only when it alone is over a cap.
        """
        evicted: list[ReassemblyEvent] = []
        while True:
            held = self._sources.get(source)
            if held is not None and held.cost > self._max_bytes:
                victim = source, next(iter(held.messages))
            elif self._total_cost > self._max_total_bytes:
                victim = next(iter(self._pending))
            else:
                return evicted
            evicted.append(self._give_up(victim, "evicted"))

    def _refuse(self, key: _Key, total: int) -> Incomplete:
        self._close(key, completed=False)
        self._count(key[0], LossCounts(incomplete=1, too_large=1))
        return Incomplete(key[0], key[1], 0, total, "too_large")

    def _give_up(self, key: _Key, reason: GiveUpReason) -> Incomplete:
        pending = self._forget(key, completed=False)
        if reason == "too_large":
            counts = LossCounts(incomplete=1, too_large=1)  # refused, not lost: the rest will come late
        else:
            counts = LossCounts(incomplete=1, lost=min(pending.total - pending.have, pending.have))
        self._count(key[0], counts)
        return Incomplete(key[0], key[1], pending.have, pending.total, reason)

    def _forget(self, key: _Key, *, completed: bool) -> _Pending:
        pending = self._pending[key]
        self._charge(key, pending, -pending.cost)
        del self._pending[key]
        held = self._sources[key[0]]
        del held.messages[key[1]]
        if not held.messages:
            del self._sources[key[0]]
        self._close(key, completed=completed)
        return pending

    def _close(self, key: _Key, *, completed: bool) -> None:
        self._closed[key] = completed
        if len(self._closed) > self._max_closed:
            self._closed.popitem(last=False)

    def _charge(self, key: _Key, pending: _Pending, cost: int) -> None:
        pending.cost += cost
        self._sources[key[0]].cost += cost
        self._total_cost += cost

    def _count(self, source: Address, counts: LossCounts) -> None:
        self._totals += counts
        self._by_source[source] = self._by_source.get(source, LossCounts()) + counts
        self._by_source.move_to_end(source)
        if len(self._by_source) > self._max_sources:
            self._by_source.popitem(last=False)
