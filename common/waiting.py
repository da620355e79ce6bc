"""Waiting for something to become true: one loop, instead of a deadline loop in every module."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

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


def within(call: Callable[[], T], *, timeout: float) -> T | None:
    """``call()``'s result if it returns within ``timeout`` seconds, else ``None``; its exception propagates.

    For a call that may hang (a command in a container), bounded as a health check's timeout
    bounds it. A call still running at the timeout is left to end in its own daemon thread.
    """
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the caller
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="within", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return None
    returned, value = outcome[0]
    if not returned:
        raise value
    return cast(T, value)
