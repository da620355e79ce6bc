"""When each held packet is due: delay, jitter, loss and (not) reordering, as pure arithmetic on a heap."""

from __future__ import annotations

import heapq
import random
from typing import Generic, TypeVar

T = TypeVar("T")


class Schedule(Generic[T]):
    """When each held packet is due: a heap of (due time, arrival number, item).

    Delays are drawn uniformly from ``delay ± jitter`` (floored at 0). Without ``reorder`` a packet
    is never due before the one that arrived ahead of it, so jitter stretches gaps instead of
    swapping packets; the due packets are then always the oldest ones, in arrival order. (When
    packets come closer together than the jitter, that skews their delays up a little.)
    """

    def __init__(
        self,
        *,
        delay: float,
        jitter: float = 0.0,
        loss: float = 0.0,
        reorder: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        if delay < 0 or jitter < 0 or not 0 <= loss <= 1:
            raise ValueError("delay and jitter must be >= 0 and loss within 0..1")
        self.delay = delay
        self.jitter = jitter
        self.loss = loss
        self.reorder = reorder
        self._rng = rng or random.Random()
        self._heap: list[tuple[float, int, T]] = []
        self._arrivals = 0
        self._last_due = float("-inf")
        self.late_max = 0.0  # seconds the latest release came after its due time
        self.late_over_1ms = 0  # releases more than 1 ms late (a busy CPU, not the schedule)

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, item: T, now: float) -> bool:
        """Hold a packet that arrived at ``now``; False means drop it now (loss) instead."""
        if self.loss and self._rng.random() < self.loss:
            return False
        wait = self.delay
        if self.jitter:
            wait = max(0.0, wait + self._rng.uniform(-self.jitter, self.jitter))
        due = now + wait
        if not self.reorder:
            due = max(due, self._last_due)
            self._last_due = due
        self._arrivals += 1
        heapq.heappush(self._heap, (due, self._arrivals, item))
        return True

    def next_due(self) -> float | None:
        """When the earliest held packet is due, or None if nothing is held."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[T]:
        """The packets due at ``now``, earliest first."""
        due: list[T] = []
        while self._heap and self._heap[0][0] <= now:
            when, _arrival, item = heapq.heappop(self._heap)
            due.append(item)
            late = now - when
            if late > 0.001 and late != float("inf"):
                self.late_over_1ms += 1
                self.late_max = max(self.late_max, late)
        return due

    def pop_all(self) -> list[T]:
        """Every held packet, earliest first (used when stopping)."""
        return self.pop_due(float("inf"))
