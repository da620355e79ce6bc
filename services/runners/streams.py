"""The asyncio model: a coroutine per client on one event loop (asyncio streams).

Every wait of a connection's coroutine is under an ``asyncio.timeout`` kept in
``timers``: the read's ends at the idle timeout or the line's deadline,
whichever is nearer, and an eviction reschedules it to now, so the victim's
own coroutine wakes, writes why and closes, like every other close.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import TYPE_CHECKING

from common.eventlog import EventLog
from protocols.session import SessionFactory
from services.admission import EVICTED, Admission, Clock
from services.common import LISTEN_BACKLOG, peer_name, source_of
from services.runners.limits import LINGER, Limits
from services.runners.stopping import StopSwitch

if TYPE_CHECKING:  # imported where the asyncio model runs: it is a third of every other server's start-up
    import asyncio


def serve_asyncio(
    listener: socket.socket, factory: SessionFactory, *, limits: Limits, log: EventLog, stop: StopSwitch
) -> None:
    """asyncio streams: a coroutine per client on one event loop."""
    import asyncio

    asyncio.run(_serve_asyncio(listener, factory, limits, log, stop))


async def _serve_asyncio(
    listener: socket.socket, factory: SessionFactory, limits: Limits, log: EventLog, stop: StopSwitch
) -> None:
    import asyncio

    admission = Admission(limits.rules)
    timers: dict[Clock, asyncio.Timeout] = {}  # each connection's current wait
    names: dict[Clock, str] = {}

    def wake(victim: Clock, now: float, by: str) -> None:
        log.limited("evict", peer=names.get(victim, "?"), idle=f"{victim.idle(now):.1f}", by=by)
        victim.evicted = True
        timer = timers.get(victim)
        if timer is not None:
            with contextlib.suppress(RuntimeError):  # that wait is over: the victim is closing already
                timer.reschedule(asyncio.get_running_loop().time())

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        name = peer_name(peer)
        now = time.monotonic()
        verdict = admission.admit(source_of(peer), now)
        clock = verdict.admitted
        if clock is None:
            log("busy", peer=name, max_clients=limits.max_clients)
            writer.write(limits.busy_message)
            writer.close()
            return
        names[clock] = name
        if verdict.victim is not None:
            wake(verdict.victim, now, name)
        log.connection("connect", name)
        reason = "closed"
        cap_transport_reads(writer.transport, limits.recv_size)
        try:
            session = factory()
            out = session.start()
            writer.write(out.data)
            async with asyncio.timeout(limits.idle_timeout) as timers[clock]:
                await writer.drain()
            while not out.close:
                # asyncio.timeout, not wait_for: in 3.11 wait_for wraps every read and drain in a
                # new Task, a tenth of this loop's time per request (scripts/bench, py-spy).
                try:
                    async with asyncio.timeout(_read_timeout(clock, limits)) as timers[clock]:
                        data = await reader.read(limits.recv_size)
                except TimeoutError:
                    why = EVICTED if clock.evicted else clock.expired(time.monotonic())
                    if why is None:
                        continue  # the loop's timer ran out a hair before our clock
                    reason = why
                    writer.write(limits.message(why))
                    break
                clock.received(data, time.monotonic())
                out = session.receive_data(data)
                writer.write(out.data)
                async with asyncio.timeout(limits.idle_timeout) as timers[clock]:
                    await writer.drain()
                if not data:
                    reason = "eof"
                    break
            if reason != "eof":
                timers.pop(clock, None)  # nothing to wake any more: it is leaving
                await _close_gracefully_async(reader, writer)
        except TimeoutError:
            reason = EVICTED if clock.evicted else "send-timeout"
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
        finally:
            admission.release(clock)
            timers.pop(clock, None)
            names.pop(clock, None)
            writer.close()
            log.connection("disconnect", name, reason=reason)

    listener.setblocking(False)
    # backlog: start_server calls listen() again, with 100 unless told; 1,000 clients at once overflowed it.
    server = await asyncio.start_server(handle, sock=listener, limit=limits.recv_size, backlog=LISTEN_BACKLOG)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()

    def end_serving() -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed already: a signal ended it first
            loop.call_soon_threadsafe(stopped.set)

    stop.wake_on_stop(end_serving)  # at once if set already
    async with server:
        await stopped.wait()


def _read_timeout(clock: Clock, limits: Limits) -> float:
    """The idle timeout (from now: a read is only waited for after the last one), or the line's deadline if nearer."""
    if clock.line_started is None:
        return limits.idle_timeout
    return max(0.0, clock.due()[0] - time.monotonic())


def cap_transport_reads(transport: asyncio.BaseTransport, size: int) -> None:
    """Have the transport ``recv`` at most ``size`` bytes at a time.

    asyncio's selector transports (3.11) read with ``recv(256 KiB)``: an allocation
    that large sits past glibc's mmap/trim thresholds and costs page faults on
    every read, more than the read itself for a short line (scripts/bench
    measured ~13 µs per call). ``max_size`` is the transport's read size; a
    transport without it (another event loop) is left alone.
    """
    if isinstance(getattr(transport, "max_size", None), int):
        transport.max_size = size  # type: ignore[attr-defined]  # private to the selector transports


async def _close_gracefully_async(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The asyncio twin of ``sockets.close_gracefully``: FIN, then read to the peer's EOF briefly."""
    import asyncio

    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(LINGER):  # the flush too: a peer that reads nothing must not hold us
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            while await reader.read(65536):
                pass
