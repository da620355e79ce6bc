"""Waiting for something to become true: one loop, instead of a deadline loop in every module."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.05) -> T:
    """Call ``check`` until it returns something other than ``None`` or ``False``; return that.

    Raises ``TimeoutError("<what>: not within <timeout> s")`` when the time is up (``check`` is
    called once more at the deadline). Exceptions from ``check`` propagate at once: a check
    raises when waiting longer cannot help (the container it waits on has exited).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"waited for {what}: not within {timeout:g} s")
        time.sleep(interval)  # between looks, not in place of one
