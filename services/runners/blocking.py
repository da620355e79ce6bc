"""The blocking models: one connection served to its end by one thread (iterative, threaded).

``handle_connection`` serves any session with blocking I/O; the forking model
runs it in a child process. Its timeouts are the kernel's (``SO_RCVTIMEO``):
the idle timeout while no line is begun, the nearer of it and the line's
deadline while one is, so a client trickling bytes is closed on time.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

from common.eventlog import EventLog
from protocols.session import SessionFactory
from services.admission import EVICTED, Admission, Clock
from services.common import peer_name, source_of
from services.runners.limits import Limits
from services.runners.sockets import (
    accept,
    close_gracefully,
    evict,
    reject,
    set_kernel_timeouts,
    set_receive_timeout,
)
from services.runners.stopping import StopSwitch, shut_for_reading


def handle_connection(
    conn: socket.socket,
    peer: object,
    factory: SessionFactory,
    limits: Limits,
    log: EventLog,
    clock: Clock | None = None,
    *,
    on_progress: Callable[[Clock], None] | None = None,
) -> None:
    """Serve one connection to the end with blocking I/O (iterative/threaded/forking).

    ``clock`` is the connection's in the server's ``Admission`` (a fresh one when
    ``None``); ``on_progress`` is told after every read (the forking model
    publishes the time to its parent).
    """
    name = peer_name(peer)
    if clock is None:
        clock = Clock(limits.rules, source_of(peer), time.monotonic())
    log.connection("connect", name)
    reason = "closed"
    linger = True
    try:
        set_kernel_timeouts(conn, limits.idle_timeout)
        waiting = limits.idle_timeout  # recv's kernel timeout now
        session = factory()
        out = session.start()
        if out.data:
            conn.sendall(out.data)
        while not out.close:
            wanted = _receive_timeout(clock, limits, time.monotonic())
            if wanted != waiting:
                set_receive_timeout(conn, wanted)
                waiting = wanted
            try:
                data = conn.recv(limits.recv_size)
            except (TimeoutError, BlockingIOError):  # BlockingIOError: SO_RCVTIMEO ran out
                why = clock.expired(time.monotonic())
                if why is None:
                    continue  # the kernel's timer ran out a hair before ours
                reason = why
                with contextlib.suppress(OSError):
                    conn.settimeout(1.0)
                    conn.sendall(limits.message(why))
                break
            if clock.evicted:  # evict() shut the socket under us: EOF, or the last bytes before it
                break
            clock.received(data, time.monotonic())
            if on_progress is not None:
                on_progress(clock)
            out = session.receive_data(data)
            if out.data:
                conn.sendall(out.data)
            if not data:
                reason, linger = "eof", False
                break
    except (TimeoutError, BlockingIOError):  # BlockingIOError: SO_SNDTIMEO ran out, the peer stopped reading
        reason, linger = "send-timeout", False
    except OSError as exc:
        reason, linger = exc.strerror or type(exc).__name__, False
    except BaseException:  # Stopped (SIGTERM) in the iterative model: close now, don't linger
        reason, linger = "server stopping", False
        raise
    finally:
        if clock.evicted:  # told already, and both directions are shut
            reason, linger = EVICTED, False
        if linger:
            close_gracefully(conn)
        else:
            conn.close()
        log.connection("disconnect", name, reason=reason)


def _receive_timeout(clock: Clock, limits: Limits, now: float) -> float:
    """``recv``'s timeout: the idle timeout (it restarts with every call), or less when a line's deadline is nearer."""
    if clock.line_started is None:
        return limits.idle_timeout
    return max(0.001, clock.due()[0] - now)


def serve_iterative(
    listener: socket.socket, factory: SessionFactory, *, limits: Limits, log: EventLog, stop: StopSwitch
) -> None:
    """One client at a time: the others wait in the listen backlog (the seeds' first server).

    Nobody can be admitted beside the one served, so there is no one to evict:
    the line deadline and the idle timeout bound how long each client keeps it.
    """
    listen_until_stopped(listener, stop)
    while not stop.is_set():
        accepted = accept(listener, log, stop)
        if accepted is not None:
            handle_connection(*accepted, factory, limits, log)


def serve_threaded(
    listener: socket.socket, factory: SessionFactory, *, limits: Limits, log: EventLog, stop: StopSwitch
) -> None:
    """A thread per connection, at most ``max_clients`` of them admitted (``services.admission``).

    The acceptor evicts: it shuts a victim's socket (``sockets.evict``), which
    wakes the victim's worker, and starts the newcomer's. For the moment the
    victim's worker takes to end there is one thread more than the cap.
    """
    listen_until_stopped(listener, stop)
    admission = Admission(limits.rules)
    live: dict[Clock, tuple[socket.socket, str]] = {}
    lock = threading.Lock()  # the acceptor admits, workers release

    def worker(conn: socket.socket, peer: object, clock: Clock) -> None:
        try:
            handle_connection(conn, peer, factory, limits, log, clock)
        finally:
            with lock:
                live.pop(clock, None)
                admission.release(clock)

    try:
        while not stop.is_set():
            accepted = accept(listener, log, stop)
            if accepted is None:
                continue
            conn, peer = accepted
            now = time.monotonic()
            with lock:
                verdict = admission.admit(source_of(peer), now)
                clock = verdict.admitted
                if clock is not None:
                    live[clock] = (conn, peer_name(peer))
                victim = live.get(verdict.victim) if verdict.victim is not None else None
            if clock is None:
                reject(conn, peer, limits, log)
                continue
            if verdict.victim is not None and victim is not None:
                victim_conn, victim_name = victim
                log.limited("evict", peer=victim_name, idle=f"{verdict.victim.idle(now):.1f}", by=peer_name(peer))
                evict(victim_conn, verdict.victim)
            try:
                threading.Thread(target=worker, args=(conn, peer, clock), daemon=True).start()
            except RuntimeError:  # "can't start new thread": the pids or memory limit, not a bug
                with lock:
                    live.pop(clock, None)
                    admission.release(clock)
                reject(conn, peer, limits, log)
    finally:
        with lock:
            for conn, _ in live.values():
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


def listen_until_stopped(listener: socket.socket, stop: StopSwitch) -> None:
    """Block in ``accept`` with no timeout: the stop switch wakes it by shutting the listener."""
    listener.settimeout(None)
    stop.wake_on_stop(shut_for_reading(listener))
