"""The one grammar for the lab's units: durations, percentages, rates and sizes.

The topology loader, ``lab impair`` and every later file format read units here,
so ``rate: 10mbit`` in a file and ``--rate 10mbit`` on a command line mean the same,
and a unit nobody knows is refused the same way everywhere.

Rates take tc's *bit* units. tc(8) also reads ``mbps`` as megaBYTES per second,
which most people read as megabits: a silent factor of 8. Those byte units are
refused with the bit rate to write instead.
"""

from __future__ import annotations

import math
import re

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_QUANTITY = re.compile(rf"^\s*{_NUMBER}\s*([a-zµ%]*)\s*$", re.IGNORECASE)

DURATION_FORMS = "a duration like 80ms, 1s, 1.5s or 250us"
PERCENT_FORMS = "a percentage from 0% to 100%, like 5% or 0.5%"
SIZE_FORMS = "a size like 16MiB, 512KiB or 1048576 (bytes; kB, MB, GB are the decimal ones)"
RATE_FORMS = "a rate like 1mbit, 512kbit or 1gbit (bits per second; kibit, mibit, gibit are the binary ones)"

DURATION_MS = {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}
RATE_KBIT = {
    "bit": 1e-3,
    "kbit": 1.0,
    "mbit": 1e3,
    "gbit": 1e6,
    "kibit": 1.024,
    "mibit": 1024 * 1.024,
    "gibit": 1024 * 1024 * 1.024,
}
SIZE_BYTES = {"": 1, "b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "kb": 10**3, "mb": 10**6, "gb": 10**9}
BYTE_RATES = {
    "bps": ("bit", "bytes"),
    "kbps": ("kbit", "kilobytes"),
    "mbps": ("mbit", "megabytes"),
    "gbps": ("gbit", "gigabytes"),
}


class UnitError(ValueError):
    """A quantity that is not of the grammar; ``fix`` says what to write instead."""

    def __init__(self, text: str, kind: str, fix: str) -> None:
        super().__init__(f"{text!r} is not a {kind}")
        self.text = text
        self.kind = kind
        self.fix = fix

    def explained(self) -> str:
        """The message with its fix, for a command line: ``'80' is not a duration (write ...)``."""
        return f"{self} ({self.fix})"


def _split(text: str, kind: str, forms: str) -> tuple[float, str]:
    match = _QUANTITY.match(text)
    if match is None:
        raise UnitError(text, kind, f"write {forms}")
    return float(match.group(1)), match.group(2).lower()


def parse_duration_ms(text: str) -> float:
    """``80ms`` -> 80.0, ``1s`` -> 1000.0, ``250us`` (or ``µs``) -> 0.25; a bare ``0`` is 0."""
    value, unit = _split(text, "duration", DURATION_FORMS)
    if unit == "" and value == 0:
        return 0.0
    if unit not in DURATION_MS:
        raise UnitError(text, "duration", f"write {DURATION_FORMS}")
    return value * DURATION_MS[unit]


def parse_percent(text: str) -> float:
    """``5%`` -> 5.0, ``0.5%`` -> 0.5, from 0 to 100; a bare ``0`` is 0."""
    value, unit = _split(text, "percentage", PERCENT_FORMS)
    if (unit != "%" and not (unit == "" and value == 0)) or value > 100:
        raise UnitError(text, "percentage", f"write {PERCENT_FORMS}")
    return value


def parse_rate_kbit(text: str) -> float:
    """``1mbit`` -> 1000.0 kbit/s, ``512kbit`` -> 512.0; above 0. ``10mbps`` is refused (see the module)."""
    value, unit = _split(text, "rate", RATE_FORMS)
    if unit in BYTE_RATES:
        bits, bytes_ = BYTE_RATES[unit]
        raise UnitError(
            text,
            "rate in bits",
            f"tc reads {unit} as {bytes_} per second; write {plain_number(value)}{bits} for {plain_number(value)} "
            f"{bits}/s, or {plain_number(value * 8)}{bits} if you meant {bytes_}",
        )
    if unit not in RATE_KBIT or value <= 0:
        raise UnitError(text, "rate", f"write {RATE_FORMS}")
    return value * RATE_KBIT[unit]


def parse_size_bytes(text: str) -> int:
    """``16MiB`` -> 16777216, ``1.5KiB`` -> 1536, ``2MB`` -> 2000000, a bare ``4096`` -> 4096 bytes."""
    value, unit = _split(text, "size", SIZE_FORMS)
    if unit not in SIZE_BYTES:
        raise UnitError(text, "size", f"write {SIZE_FORMS}")
    return round(value * SIZE_BYTES[unit])


def plain_size(size: int) -> str:
    """Bytes as written back to a user, in the largest binary unit that divides them: 16MiB, 1536, 4KiB."""
    for unit in ("gib", "mib", "kib"):
        if size and size % SIZE_BYTES[unit] == 0:
            return f"{size // SIZE_BYTES[unit]}{unit[0].upper()}iB"
    return str(size)


def plain_number(value: float) -> str:
    """A number for a command line or a message, without float noise or exponents: 80, 0.25, 1000."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"
