"""Latency histograms and the percentile and median math the benchmarks share.

Load generators record every request's latency into a ``Histogram``: log-linear
buckets (64 per power of two, so any value is known within 1/64 ≈ 1.6 %),
cheap to update from a hot loop, small to ship as JSON, and mergeable across
processes and containers, which raw samples would not be (a million latencies
per run) and averages of percentiles are not (p99 of a merge is not the mean of
p99s). Standard library only: this module runs inside the client containers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence

SUB_BUCKETS = 64  # per power of two: the relative resolution is 1/SUB_BUCKETS
_SHIFT = SUB_BUCKETS.bit_length() - 1  # 6
_LINEAR = 2 * SUB_BUCKETS  # values below this get a bucket each (exact)


def bucket_of(value: int) -> int:
    """The bucket index of a non-negative integer (microseconds, say); monotonic in ``value``."""
    if value < _LINEAR:
        return max(value, 0)
    exponent = value.bit_length() - _SHIFT - 1  # value >> exponent lands in [SUB_BUCKETS, 2*SUB_BUCKETS)
    return exponent * SUB_BUCKETS + (value >> exponent)


def bucket_bounds(index: int) -> tuple[int, int]:
    """The smallest and largest value that fall in bucket ``index`` (inclusive)."""
    if index < _LINEAR:
        return index, index
    exponent = index // SUB_BUCKETS - 1
    low = (index - exponent * SUB_BUCKETS) << exponent
    return low, low + (1 << exponent) - 1


def bucket_value(index: int) -> float:
    """A bucket's representative value: the middle of its range."""
    low, high = bucket_bounds(index)
    return (low + high) / 2


class Histogram:
    """Counts of values (integers, e.g. microseconds) in log-linear buckets."""

    __slots__ = ("counts", "maximum", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.maximum = 0

    def record(self, value: int) -> None:
        """Count one value (negative values count as 0)."""
        index = bucket_of(value)
        self.counts[index] = self.counts.get(index, 0) + 1
        self.total += 1
        if value > self.maximum:
            self.maximum = value

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s counts to this one."""
        for index, count in other.counts.items():
            self.counts[index] = self.counts.get(index, 0) + count
        self.total += other.total
        self.maximum = max(self.maximum, other.maximum)

    def percentile(self, p: float) -> float:
        """The nearest-rank ``p``-th percentile (0 < p ≤ 100); NaN when empty.

        Nearest rank (the smallest value with at least p % of values at or below
        it) never invents a value between two samples; the bucket's middle is
        returned, clamped to the largest value seen.
        """
        if not 0 < p <= 100:
            raise ValueError(f"percentile must be in (0, 100], not {p}")
        if not self.total:
            return math.nan
        rank = math.ceil(p / 100 * self.total)
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return min(bucket_value(index), float(self.maximum))
        return float(self.maximum)  # unreachable: the counts sum to total

    def to_json(self) -> dict[str, object]:
        """A JSON-ready form (bucket keys as strings, as JSON requires)."""
        return {"counts": {str(k): v for k, v in sorted(self.counts.items())}, "max": self.maximum}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Histogram:
        """Rebuild a histogram from ``to_json``'s output."""
        hist = cls()
        counts = data.get("counts", {})
        if not isinstance(counts, Mapping):
            raise ValueError("histogram counts must be an object")
        for key, count in counts.items():
            hist.counts[int(key)] = int(count)
            hist.total += int(count)
        maximum = data.get("max", 0)
        hist.maximum = int(maximum) if isinstance(maximum, int | float | str) else 0
        return hist


def merge_all(histograms: Iterable[Histogram]) -> Histogram:
    """One histogram holding every count of ``histograms``."""
    merged = Histogram()
    for hist in histograms:
        merged.merge(hist)
    return merged


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of raw values (NaN when empty)."""
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], not {p}")
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


def median(values: Iterable[float | None]) -> float:
    """The median of the values that are numbers (None and NaN are skipped); NaN when none are."""
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(kept) if kept else math.nan
