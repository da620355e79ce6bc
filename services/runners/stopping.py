"""A stop flag that wakes the loops blocked on it, so an idle server sleeps in the kernel.

The loops used to look at a plain flag four times a second: a timeout on every
``accept``, ``recvfrom`` and ``select``. In the default lab those wake-ups were
about half of what an idle server container costs (its health check is the other
half). Now the loops block with no timeout, and setting the switch wakes them:

* a listening socket shut for reading makes a blocked ``accept`` fail at once
  (``EINVAL``) and every later one too;
* a datagram socket shut for reading makes ``recvfrom`` return an empty datagram
  from nobody (Linux does this even for unconnected sockets, for this purpose);
* a selector or an asyncio loop is woken through a callback (``wake_on_stop``).

In a container the switch is seldom what stops a server: SIGTERM raises
``Stopped`` in the main thread (``services.common.raise_on_signals``), which
interrupts a blocking call at once. The switch serves in-process servers (tests,
embedding) and the other threads.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

Waker = Callable[[], object]  # what it returns is ignored


class StopSwitch(threading.Event):
    """A ``threading.Event`` that also runs its wakers, once, when set."""

    def __init__(self) -> None:
        super().__init__()
        self._wakers: list[Waker] = []
        self._wakers_lock = threading.Lock()

    def wake_on_stop(self, waker: Waker) -> None:
        """Run ``waker`` when the switch is set: at once if it is set already."""
        with self._wakers_lock:
            if not self.is_set():
                self._wakers.append(waker)
                return
        _run(waker)

    def set(self) -> None:
        super().set()
        with self._wakers_lock:
            wakers, self._wakers = self._wakers, []
        for waker in wakers:
            _run(waker)


def shut_for_reading(sock: socket.socket) -> Waker:
    """A waker that shuts ``sock`` for reading (see the module's docstring for what that wakes)."""

    def waker() -> None:
        sock.shutdown(socket.SHUT_RD)

    return waker


def _run(waker: Waker) -> None:
    # ENOTCONN from an unconnected datagram socket (which is woken all the same), EBADF from one closed
    # meanwhile: neither means the loop is still asleep.
    with contextlib.suppress(OSError):
        waker()
