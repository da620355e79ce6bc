"""A record's JSON line is exactly what ``json.dumps`` writes for its non-empty fields, whatever the payload.

``Record.to_json`` joins the line itself (faster than the encoder's call); this
checks it against the encoder on every kind of field, on random and hostile
payloads, so the file format cannot drift. The sink writes most lines without a
``Record`` (``json_line`` of ``record_values``): those are checked against
``to_json``.
"""

from __future__ import annotations

import json
import random
from dataclasses import fields

import pytest

from protocols.creosote import Record, json_line, make_record, plain_json, record_values
from protocols.errors import LocalProtocolError

PAYLOADS = [
    b"<14>1 2026-01-01T00:00:00.000000Z loadgen bench - - - " + b"x" * 45,
    b'<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
    b'eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] \xef\xbb\xbfAn application event',
    b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
    b"<13>hello\x00",
    b'<14>1 - - - - - [a@1 k="v\\"q\\\\"] quote " backslash \\ tab \t newline \n bell \x07 del \x7f',
    "<14>1 - - - - - - é ü 漢字 \U0001f600 \u2028 \u202e".encode(),
    b"\xff\xfe\x00 not utf-8",
    b"",
    b"no pri at all",
]


def _expected(record: Record) -> str:
    data = {f.name: getattr(record, f.name) for f in fields(Record)}
    kept = {k: v for k, v in data.items() if v is not None and v is not False}
    return json.dumps(kept, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_line_is_the_encoders(payload: bytes) -> None:
    record = make_record(payload, ("10.0.0.2", 40000), 1_764_700_000.123456, size=len(payload) + 7)
    line = record.to_json()
    assert line == _expected(record)
    assert Record.from_json(line) == record


def test_random_bytes_give_the_encoders_line_too() -> None:
    rng = random.Random(18)
    alphabet = [bytes([b]) for b in range(256)] + ["é".encode(), "\u2028".encode(), b"<14>1 ", b" - ", b'"', b"\\"]
    for _ in range(500):
        payload = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 120)))
        record = make_record(payload, ("::1", rng.randrange(65536)), rng.uniform(0, 2e9))
        assert record.to_json() == _expected(record), payload


def _fast_line(payload: bytes, source: tuple[str, int], received: float, size: int | None = None) -> str:
    """The sink's way: the line from the field values, strings unescaped when the payload needs none."""
    return json_line(record_values(payload, source, received, size=size), plain=plain_json(payload))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_sinks_line_without_a_record_is_the_records(payload: bytes) -> None:
    record = make_record(payload, ("10.0.0.2", 40000), 1_764_700_000.123456, size=len(payload) + 7)
    assert _fast_line(payload, ("10.0.0.2", 40000), 1_764_700_000.123456, size=len(payload) + 7) == record.to_json()
    assert Record(*record.values()) == record


def test_random_bytes_give_the_records_line_without_a_record_too() -> None:
    rng = random.Random(19)
    alphabet = [bytes([b]) for b in range(256)] + ["é".encode(), "\u2028".encode(), b"<14>1 ", b" - ", b'"', b"\\"]
    for _ in range(500):
        payload = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 120)))
        source = ('fe80::1%e\\t"h', rng.randrange(65536))  # a scope id is no payload: escaped whatever plain says
        received = rng.uniform(0, 2e9)
        assert _fast_line(payload, source, received) == make_record(payload, source, received).to_json(), payload


@pytest.mark.parametrize("special", [*(bytes([b]) for b in range(0x20)), b'"', b"\\"])
def test_a_byte_json_escapes_makes_the_payload_not_plain(special: bytes) -> None:
    payload = b"<14>1 - host app - - - before " + special + b" after"
    assert not plain_json(payload)
    # Written unescaped anyway, the line would not be the encoder's: the check is what keeps it right.
    unchecked = json_line(record_values(payload, ("10.0.0.2", 1), 0.0), plain=True)
    assert unchecked != make_record(payload, ("10.0.0.2", 1), 0.0).to_json()


def test_text_beyond_ascii_is_plain() -> None:
    assert plain_json("<14>1 - h a - - - é 漢字 \U0001f600 \u2028 \x7f".encode())


def test_record_values_refuses_what_a_record_refuses() -> None:
    with pytest.raises(LocalProtocolError):
        record_values(b"x", ("10.0.0.2", 70000), 0.0)
    with pytest.raises(LocalProtocolError):
        record_values(b"x", ("10.0.0.2", 1), 0.0, size=-1)
