"""common.units, common.argtypes and model.Impairment.parse: one grammar for the file and the command line."""

from __future__ import annotations

import argparse
import re

import pytest

from common import argtypes, units
from lab.model import Impairment


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("80ms", 80),
        ("1s", 1000),
        ("1.5s", 1500),
        ("250us", 0.25),
        ("250µs", 0.25),
        ("10 ms", 10),
        ("0", 0),
        (".5s", 500),
    ],
)
def test_durations(text: str, ms: float) -> None:
    assert units.parse_duration_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["80", "80 min", "-5ms", "ms", "", "1e3ms", "5%"])
def test_bad_durations_say_what_to_write(text: str) -> None:
    with pytest.raises(units.UnitError, match="is not a duration") as caught:
        units.parse_duration_ms(text)
    assert caught.value.fix == f"write {units.DURATION_FORMS}"


@pytest.mark.parametrize(("text", "pct"), [("5%", 5), ("0.5%", 0.5), ("100%", 100), ("0", 0), ("0%", 0)])
def test_percentages(text: str, pct: float) -> None:
    assert units.parse_percent(text) == pct


@pytest.mark.parametrize("text", ["5", "120%", "-1%", "five%"])
def test_bad_percentages(text: str) -> None:
    with pytest.raises(units.UnitError, match="is not a percentage"):
        units.parse_percent(text)


@pytest.mark.parametrize(
    ("text", "kbit"),
    [("1mbit", 1000), ("512kbit", 512), ("1Gbit", 1_000_000), ("1mibit", 1048.576), ("100bit", 0.1)],
)
def test_rates_are_bits_per_second(text: str, kbit: float) -> None:
    assert units.parse_rate_kbit(text) == pytest.approx(kbit)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("10mbps", "write 10mbit for 10 mbit/s, or 80mbit if you meant megabytes"),
        ("1kbps", "write 1kbit for 1 kbit/s, or 8kbit if you meant kilobytes"),
    ],
)
def test_byte_rates_are_refused_with_the_bit_rate_to_write(text: str, hint: str) -> None:
    with pytest.raises(units.UnitError, match="is not a rate in bits") as caught:
        units.parse_rate_kbit(text)
    assert hint in caught.value.fix


@pytest.mark.parametrize("text", ["1mb", "0kbit", "fast", "-1mbit"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(units.UnitError, match="is not a rate"):
        units.parse_rate_kbit(text)


def test_impairment_parse_names_the_field_and_the_fix() -> None:
    assert Impairment.parse(delay="80ms", jitter="10ms", loss="5%", rate="1mbit") == Impairment(80, 10, 5, 1000)
    assert Impairment.parse(delay="", loss="0") == Impairment()
    with pytest.raises(ValueError, match=r"^rate: '10mbps' is not a rate in bits \(tc reads mbps as megabytes"):
        Impairment.parse(rate="10mbps")
    with pytest.raises(ValueError, match=r"^delay: '80' is not a duration \(write a duration like 80ms"):
        Impairment.parse(delay="80")
    with pytest.raises(ValueError, match="jitter: 10ms without a delay"):
        Impairment.parse(jitter="10ms")


@pytest.mark.parametrize(
    "fields",
    [{"delay_ms": -1}, {"loss_pct": 100.5}, {"rate_kbit": 0}, {"delay_ms": float("nan")}, {"jitter_ms": 5}],
)
def test_the_model_refuses_what_cannot_be_applied(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Impairment(**fields)


def test_empty() -> None:
    assert Impairment().empty
    assert not Impairment(rate_kbit=100).empty
    assert not Impairment(loss_pct=0.1).empty


def test_argument_types_refuse_with_one_line() -> None:
    assert argtypes.port_number("0") == 0
    assert argtypes.positive_int("3") == 3
    assert argtypes.non_negative_float("0") == 0
    assert argtypes.int_in(1, 0xFFFFFFFF, "a mark", base=0)("0x7e57") == 0x7E57
    assert argtypes.duration_ms("80ms") == 80
    for parse, text, message in (
        (argtypes.port_number, "65536", "out of range (0-65535)"),
        (argtypes.port_number, "x", "is not a port number"),
        (argtypes.positive_int, "0", "must be at least 1"),
        (argtypes.positive_float, "0", "must be greater than 0"),
        (argtypes.positive_float, "nan", "must be a finite number"),
        (argtypes.non_negative_float, "-1", "0 or more"),
        (argtypes.non_negative_int, "-1", "0 or more"),
        (argtypes.int_in(1, 0xFFFFFFFF, "a mark", base=0), "0", "out of range (1-0xffffffff)"),
        (argtypes.rate_kbit, "10mbps", "tc reads mbps as megabytes"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
            parse(text)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"delay": "100000s"}, "delay: 1e+08ms is more than 10s"),
        ({"delay": "80ms", "jitter": "11s"}, "jitter: 11000ms is more than 10s"),
        ({"rate": "1bit"}, "rate: 0.001kbit is below 8kbit"),
    ],
)
def test_impairments_are_bounded(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Impairment.parse(**fields)
    assert Impairment.parse(delay="10s", rate="8kbit") == Impairment(delay_ms=10_000, rate_kbit=8)


@pytest.mark.parametrize(
    ("text", "size"),
    [("16MiB", 16 * 2**20), ("1.5KiB", 1536), ("2MB", 2_000_000), ("4096", 4096), ("1 gib", 2**30), ("10b", 10)],
)
def test_sizes(text: str, size: int) -> None:
    assert units.parse_size_bytes(text) == size


@pytest.mark.parametrize("text", ["16M", "16Mbit", "-1MiB", "MiB", "", "lots"])
def test_bad_sizes_say_what_to_write(text: str) -> None:
    with pytest.raises(units.UnitError, match="is not a size") as caught:
        units.parse_size_bytes(text)
    assert caught.value.fix == f"write {units.SIZE_FORMS}"


def test_a_size_below_its_least_says_why() -> None:
    parse = argtypes.size_at_least(2**20, "a file must hold a message")
    assert parse("1MiB") == 2**20
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape("1023KiB is less than 1MiB: a file must hold")):
        parse("1023KiB")
    assert [units.plain_size(n) for n in (16 * 2**20, 1536, 2**30, 0)] == ["16MiB", "1536", "1GiB", "0"]
