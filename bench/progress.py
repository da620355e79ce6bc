"""Progress lines on stdout while the bench runs, each with the minutes since the start."""

from __future__ import annotations

import time

_STARTED = time.monotonic()  # when the bench was imported: the run's start, near enough


def say(text: str) -> None:
    """A progress line, with the minutes since the start (the full run should stay near 15)."""
    print(f"==> [{(time.monotonic() - _STARTED) / 60:4.1f} min] {text}", flush=True)
