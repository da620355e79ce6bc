"""argparse types shared by every command line: one message style for every bad number.

Each returns the parsed value or raises ``argparse.ArgumentTypeError``, which
argparse turns into ``error: argument --x: <message>`` and exit code 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from common import units


def _number(text: str, kind: type[int] | type[float], noun: str, *, base: int = 10) -> float:
    try:
        value = int(text, base) if kind is int else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number")
    return value


def port_number(text: str) -> int:
    """A TCP/UDP port, 0 meaning 'any free port'."""
    value = int(_number(text, int, "a port number (0-65535)"))
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is out of range (0-65535)")
    return value


def positive_int(text: str) -> int:
    """A count, at least 1."""
    value = int(_number(text, int, "a whole number"))
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def positive_float(text: str) -> float:
    """Seconds (or another quantity), greater than zero."""
    value = _number(text, float, "a number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
    return value


def non_negative_float(text: str) -> float:
    """A finite number, zero or more (a pause, a delay, a percentage)."""
    value = _number(text, float, "a number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number, 0 or more")
    return value


def int_in(low: int, high: int, noun: str, *, base: int = 10) -> Callable[[str], int]:
    """A whole number from ``low`` to ``high``; ``base=0`` also takes ``0x..`` (a mark, a mask)."""

    shown = f"{low}-{high:#x}" if base == 0 else f"{low}-{high}"

    def parse(text: str) -> int:
        value = int(_number(text, int, f"{noun} ({shown})", base=base))
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of range ({shown})")
        return value

    parse.__name__ = noun.replace(" ", "_")  # argparse names the type in some messages
    return parse


def _unit(parser: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            return parser(text)
        except units.UnitError as exc:
            raise argparse.ArgumentTypeError(exc.explained()) from None

    parse.__name__ = parser.__name__.removeprefix("parse_")
    return parse


duration_ms = _unit(units.parse_duration_ms)
percent = _unit(units.parse_percent)
rate_kbit = _unit(units.parse_rate_kbit)


def size_at_least(least: int, why: str) -> Callable[[str], int]:
    """A size in bytes (``16MiB``, ``1048576``; ``common.units``) of at least ``least``; ``why`` says why not less."""

    def parse(text: str) -> int:
        try:
            value = units.parse_size_bytes(text)
        except units.UnitError as exc:
            raise argparse.ArgumentTypeError(exc.explained()) from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{text} is less than {units.plain_size(least)}: {why}")
        return value

    parse.__name__ = "size"
    return parse


def non_negative_int(text: str) -> int:
    """A whole number, zero or more (an offset)."""
    value = int(_number(text, int, "a whole number"))
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return value
