"""The sink's socket loop: receive, answer the probe, hand every other datagram to a handler.

The loop knows nothing of records; a handler (``bucket.Bucket`` or ``relay.Relay``)
does the work, so tests can run either in a thread and stop it.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from common.errors import TestbedError
from common.eventlog import EventLog
from protocols.creosote import Address, is_ping, pong
from services.common import Stopped, peer_name

# Longest blocking receive while idle: how late, at most, a timer with nothing due says so (the loss report
# every 10 s, a partial message's expiry). stop() does not wait for it: it wakes the loop.
MAX_TICK = 1.0
TICK_EVERY = 0.001  # the handler's timers (flushes, expiry) are looked at this often under load
_TRANSIENT = {errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH}  # ICMP echoes
_OVERLOAD = {errno.ENOBUFS, errno.ENOMEM}
# MSG_TRUNC: Linux returns a datagram's real length even when it exceeds the buffer. A plain int:
# or-ing the enum flags on every receive costs more than the flag test itself.
_RECV_FLAGS = int(socket.MSG_TRUNC | socket.MSG_DONTWAIT)

SockAddr = tuple[Any, ...]  # what recvfrom returns and sendto takes: 2-tuple (IPv4) or 4-tuple (IPv6)


@dataclass(frozen=True, slots=True)
class Datagram:
    """One received datagram and when it came."""

    data: bytes
    reply_to: SockAddr
    size: int  # its real length: more than len(data) when the receive buffer cut it short
    received: float  # epoch seconds, for the record
    now: float  # monotonic seconds, for timeouts

    @property
    def source(self) -> Address:
        """``(host, port)`` of the sender."""
        return str(self.reply_to[0]), int(self.reply_to[1])


class Handler(Protocol):
    """What the socket loop drives: bucket or relay."""

    count: int  # records made or datagrams relayed; reported by the probe

    def handle(self, datagram: Datagram) -> None:
        """Process one datagram (may raise ``TestbedError`` for a bad one)."""

    def timeout(self, now: float) -> float | None:
        """Seconds until ``tick`` has work to do, ``None`` if it has none pending."""

    def tick(self, now: float) -> None:
        """Do time-driven work: flushing, expiry, reports."""

    def close(self) -> None:
        """Finish pending work (flush); called once the loop ends."""


class Sink:
    """The UDP loop: receive, answer the probe, hand every other datagram to ``handler``.

    ``serve_forever`` runs until ``stop`` (from any thread: it wakes the loop
    through a socket pair of its own) or until ``Stopped`` arrives from a signal
    handler; either way the handler is closed, so buffered records are flushed.
    """

    def __init__(self, sock: socket.socket, handler: Handler, *, log: EventLog, buffer_size: int) -> None:
        self._sock = sock
        self._handler = handler
        self._log = log
        self._buffer = memoryview(bytearray(buffer_size))  # reused: the payload copy is the only allocation
        self._poller = select.poll()  # waits only when the queue is empty (see _receive)
        self._poller.register(sock, select.POLLIN)
        self._wake_read, self._wake_write = socket.socketpair()
        self._poller.register(self._wake_read, select.POLLIN)
        self._stopping = threading.Event()
        self._closed = False
        self.errors = 0
        host, port = sock.getsockname()[:2]
        self.address: Address = (str(host), int(port))  # the real port when bound to port 0

    @property
    def handler(self) -> Handler:
        """What handles the datagrams: a ``Bucket`` or a ``Relay``."""
        return self._handler

    def serve_forever(self) -> None:
        """Receive and handle datagrams until stopped."""
        next_tick = 0.0
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                if now >= next_tick:  # not per datagram: at 30,000/s the timers would cost a tenth
                    self._handler.tick(now)
                    self._log.tick(now)
                    next_tick = now + TICK_EVERY
                datagram = self._receive()
                if datagram is not None:
                    self._dispatch(datagram)
        finally:
            self._handler.close()

    def stop(self) -> None:
        """Ask ``serve_forever`` to return; safe from any thread."""
        self._stopping.set()
        with contextlib.suppress(OSError):  # closed already: the loop is over
            self._wake_write.send(b"x")

    def close(self) -> None:
        """Close the handler and the socket; log the final counts."""
        if self._closed:
            return
        self._closed = True
        self._handler.close()
        self._sock.close()
        self._wake_read.close()
        self._wake_write.close()
        self._log.end_second()
        self._log("stopped", count=self._handler.count, errors=self.errors)

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _receive(self) -> Datagram | None:
        # Non-blocking first: under load the queue is never empty, and one recvfrom per datagram is
        # all it costs. A socket timeout would add a poll() before, and settimeout() an ioctl, to
        # every datagram (scripts/bench measured them at ~15 % of the sink's time per record).
        try:
            size, reply_to = self._sock.recvfrom_into(self._buffer, 0, _RECV_FLAGS)
        except BlockingIOError:
            wait = self._handler.timeout(time.monotonic())
            wait = MAX_TICK if wait is None else min(max(wait, 0.001), MAX_TICK)
            if not self._poller.poll(wait * 1000):
                return None
            try:
                size, reply_to = self._sock.recvfrom_into(self._buffer, 0, _RECV_FLAGS)
            except BlockingIOError:
                return None
            except OSError as exc:
                self._survive(exc)
                return None
        except OSError as exc:
            self._survive(exc)
            return None
        data = self._buffer[: min(size, len(self._buffer))].tobytes()
        return Datagram(data, reply_to, size, time.time(), time.monotonic())

    def _survive(self, exc: OSError) -> None:
        """Log a receive error that a later datagram may not have; re-raise any other."""
        if exc.errno not in _TRANSIENT | _OVERLOAD:
            raise exc
        self._log.limited("receive_error", error=exc.strerror or str(exc))
        if exc.errno in _OVERLOAD:
            self._stopping.wait(0.1)  # the kernel is short of memory: give it a moment (trio does the same)

    def _dispatch(self, datagram: Datagram) -> None:
        if is_ping(datagram.data):
            self._answer_ping(datagram.reply_to)
            return
        try:
            self._handler.handle(datagram)
        except TestbedError as exc:
            self._count_error("bad_datagram", datagram, exc)
        except Stopped:
            raise
        except Exception as exc:
            # A sink must outlive its own bugs on hostile input; the event line makes the bug visible.
            self._count_error("internal_error", datagram, exc)

    def _answer_ping(self, reply_to: SockAddr) -> None:
        try:
            self._sock.sendto(pong(self._handler.count), reply_to)
        except OSError as exc:
            self._log.limited("pong_error", peer=peer_name(reply_to), error=exc.strerror or str(exc))

    def _count_error(self, event: str, datagram: Datagram, exc: Exception) -> None:
        self.errors += 1
        self._log.limited(
            event,
            now=datagram.now,
            peer=peer_name(datagram.reply_to),
            size=datagram.size,
            error=f"{type(exc).__name__}: {exc}",
        )
