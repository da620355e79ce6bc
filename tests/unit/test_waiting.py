"""common.waiting: waiting until something holds, and a call bounded in time."""

from __future__ import annotations

import threading
import time

import pytest

from common.waiting import wait_until, within


def test_a_call_that_returns_in_time_gives_its_result() -> None:
    assert within(lambda: 7, timeout=5) == 7


def test_a_call_that_hangs_gives_none_at_the_timeout() -> None:
    release = threading.Event()
    began = time.monotonic()
    try:
        assert within(lambda: release.wait(30), timeout=0.2) is None
        assert time.monotonic() - began < 5
    finally:
        release.set()  # the call, left in its thread, ends here


def test_a_calls_exception_reaches_the_caller() -> None:
    def broken() -> int:
        raise LookupError("no such node")

    with pytest.raises(LookupError, match="no such node"):
        within(broken, timeout=5)


def test_wait_until_names_what_it_waited_for() -> None:
    with pytest.raises(TimeoutError) as caught:
        wait_until(lambda: None, timeout=0.1, what="the moon")
    assert str(caught.value) == "waited for the moon: not within 0.1 s"
