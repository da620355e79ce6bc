"""Records: what creosote keeps of each datagram or reassembled message, as JSON lines."""

from __future__ import annotations

import json
import json.encoder
import math
import operator
from base64 import b64decode, b64encode
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from protocols.creosote.syslog import StructuredData, SyslogFields, SyslogFormat, parse_syslog
from protocols.creosote.wire import Address
from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.stamps import PerSecond

# --------------------------------------------------------------------------- records

RecordValues = tuple[Any, ...]  # a Record's fields in declaration order (record_values, json_line)


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
        _check_size_and_port(self.size, self.source_port)

    def to_json(self) -> str:
        """One JSON line (no newline), fields in declaration order, empty ones left out (``json_line``)."""
        return json_line(self.values())

    def values(self) -> RecordValues:
        """Every field, in declaration order: what ``json_line`` takes and ``Record(*values)`` rebuilds."""
        return _RECORD_VALUES(self)

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


_RECORD_FIELDS = tuple(f.name for f in fields(Record))  # declaration order, for json_line
_RECORD_KEYS = tuple(f'"{name}":' for name in _RECORD_FIELDS)  # ASCII names: nothing to escape
_RECORD_VALUES = operator.attrgetter(*_RECORD_FIELDS)  # every field in one call
# One encoder for every record: json.dumps with options builds a JSONEncoder per call.
_RECORD_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_encode_string = json.encoder.encode_basestring  # what _RECORD_ENCODER uses for a str (ensure_ascii=False)
_FROM_PAYLOAD = _RECORD_FIELDS.index("text")  # the fields from here on are cut from the payload (json_line)
_JSON_SPECIAL = bytes(range(0x20)) + b'"\\'  # what encode_basestring escapes (ensure_ascii=False)
# A parsed message's fields are the Record's last ones, in its order (record_values appends them).
_SYSLOG_FIELDS = _RECORD_FIELDS[-len(SyslogFields.__annotations__) :]
if set(_SYSLOG_FIELDS) != set(SyslogFields.__annotations__):
    raise ImportError("Record must end with the fields of SyslogFields")
_SYSLOG_VALUES = operator.itemgetter(*_SYSLOG_FIELDS)
_NO_SYSLOG = (None,) * len(_SYSLOG_FIELDS)


def make_record(payload: bytes, source: Address, received: float, *, size: int | None = None) -> Record:
    """A ``Record`` for ``payload`` from ``source``, received at epoch time ``received``.

    ``size`` is the datagram's real length when the receive buffer cut it short.
    A payload that is not UTF-8 is kept as base64; its syslog fields are still
    parsed from a lenient decoding, so a stray byte does not hide the severity.
    """
    return Record(*record_values(payload, source, received, size=size))


def record_values(payload: bytes, source: Address, received: float, *, size: int | None = None) -> RecordValues:
    """The fields of ``make_record(...)`` in declaration order, without building the ``Record``.

    For a sink that writes most records only as JSON lines (``json_line``): a
    frozen ``Record`` of twenty fields cost 2-4 us to build, a sixth of the
    sink's time per datagram (py-spy, 100 B). The values are valid by
    construction: exactly one of text and base64, the size never negative.
    """
    try:
        text: str | None = payload.decode("utf-8")
        encoded = None
    except UnicodeDecodeError:
        text, encoded = None, b64encode(payload).decode("ascii")
    real_size = len(payload) if size is None else size
    _check_size_and_port(real_size, source[1])
    truncated = real_size > len(payload)
    head = (iso_utc(received), source[0], source[1], real_size, text, encoded, truncated, None, None, None)
    syslog = parse_syslog(text if text is not None else payload.decode("utf-8", "replace"))
    return head + (_NO_SYSLOG if syslog is None else _SYSLOG_VALUES(syslog))


def _check_size_and_port(size: int, port: int) -> None:
    """What a record's size and source port must be, for a ``Record`` and for ``record_values`` alike."""
    if size < 0 or not 0 <= port <= 65535:
        raise LocalProtocolError(f"bad size {size} or port {port}")


def plain_json(payload: bytes) -> bool:
    """Whether no string cut from ``payload`` needs escaping in JSON: no control byte, quote or backslash.

    In UTF-8 those are single bytes that no multi-byte character contains, so one
    look at the bytes answers for every field decoded from them (``json_line``).
    """
    return len(payload.translate(None, _JSON_SPECIAL)) == len(payload)


def json_line(values: RecordValues, *, plain: bool = False) -> str:
    """A record's JSON line (no newline) from its field values: the non-empty ones, in declaration order.

    What ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))`` writes for the
    non-empty fields, joined here: strings through the encoder's own escaping
    (``encode_basestring``), numbers as ``repr``, the rest (``structured_data``,
    ``truncated``) through the encoder. The encoder's call builds its C encoder
    anew each time, and was a third of this function's time (``timeit``, 100 B).
    ``plain`` (``plain_json`` of the payload the values came from) writes the
    strings taken from the payload as they are: the escaper copies them a character
    at a time, 3 us for 1 KB, twice a record (text and message), where
    ``plain_json`` looks once in 0.8 us. The fields before them (the time, the
    source) are escaped either way: they do not come from the payload.
    """
    # One join of small pieces and the escaped values, no concatenation in between: a 1 MiB
    # message of control characters escapes to 6 MiB, and every extra copy of it is RSS.
    parts = ["{"]
    _add_fields(parts, _RECORD_KEYS[:_FROM_PAYLOAD], values[:_FROM_PAYLOAD], plain=False)
    _add_fields(parts, _RECORD_KEYS[_FROM_PAYLOAD:], values[_FROM_PAYLOAD:], plain=plain)
    parts[-1] = "}"  # the last comma (received is never empty, so there is one)
    return "".join(parts)


def _add_fields(parts: list[str], keys: tuple[str, ...], values: RecordValues, *, plain: bool) -> None:
    for key, value in zip(keys, values, strict=True):
        if value is None or value is False:
            continue
        kind = value.__class__
        if kind is str:
            if plain:
                parts += (key, '"', value, '"', ",")
            else:
                parts += (key, _encode_string(value), ",")
        elif kind is int:
            parts += (key, int.__repr__(value), ",")
        else:
            parts += (key, _RECORD_ENCODER.encode(value), ",")


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
