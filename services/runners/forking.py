"""The forking model: a child process per connection (the seeds' ``os.fork`` server), children reaped.

The parent admits and evicts, but the children do the reading, so the parent
cannot see their clocks. Each child publishes the time of its last progress in
its slot of a small anonymous shared ``mmap`` (8 bytes a child, inherited
across ``fork``; ``multiprocessing``'s shared values would bring a lock or a
manager process for what one aligned store does), and the parent reads the
slots only when the server is full and a victim must be chosen. A torn read
would cost at worst one choice of victim; 8-byte aligned stores do not tear on
the 64-bit machines this runs on. To evict, the parent sends the child
``SIGUSR1``: its handler tells the client why and shuts the socket
(``sockets.evict``), which ends the ``recv`` or ``send`` the child waits in.
"""

from __future__ import annotations

import contextlib
import functools
import mmap
import os
import signal
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from common.eventlog import EventLog
from protocols.session import SessionFactory
from services.admission import Admission, Clock
from services.common import peer_name, source_of
from services.runners.blocking import handle_connection
from services.runners.limits import POLL, Limits
from services.runners.sockets import accept, evict, reject
from services.runners.stopping import StopSwitch

EVICT_SIGNAL = signal.SIGUSR1
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class ProgressBoard:
    """Each child's last progress (``time.monotonic``, the same clock in every process), in shared memory."""

    _SLOT = struct.Struct("d")

    def __init__(self, slots: int) -> None:
        self._map = mmap.mmap(-1, slots * self._SLOT.size)  # anonymous and MAP_SHARED: children write, we read
        self._free = list(range(slots - 1, -1, -1))

    def take(self, now: float) -> int | None:
        """A free slot, set to ``now``; ``None`` when every slot has a child."""
        if not self._free:
            return None
        slot = self._free.pop()
        self.write(slot, now)
        return slot

    def give_back(self, slot: int) -> None:
        self._free.append(slot)

    def write(self, slot: int, when: float) -> None:
        self._SLOT.pack_into(self._map, slot * self._SLOT.size, when)

    def read(self, slot: int) -> float:
        value: float = self._SLOT.unpack_from(self._map, slot * self._SLOT.size)[0]
        return value

    def close(self) -> None:
        self._map.close()


@dataclass(slots=True)
class _Child:
    clock: Clock  # the parent's copy; its last_progress is refreshed from the board
    slot: int
    name: str


def serve_forking(
    listener: socket.socket, factory: SessionFactory, *, limits: Limits, log: EventLog, stop: StopSwitch
) -> None:
    """A child process per connection, at most ``max_clients`` admitted (``services.admission``)."""
    # Unlike the other models, this one still wakes every POLL while idle: it reaps its children between
    # accepts (a SIGCHLD handler would need the main thread, and the in-process server runs in another).
    listener.settimeout(POLL)
    admission = Admission(limits.rules)
    # Room for every child alive: the admitted, and the evicted not yet reaped (they end within a poll or two).
    board = ProgressBoard(2 * limits.max_clients)
    children: dict[int, _Child] = {}
    pids: dict[Clock, int] = {}

    def reap() -> None:
        while children:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = children.pop(pid, None)
            if child is not None:
                admission.release(child.clock)
                pids.pop(child.clock, None)
                board.give_back(child.slot)

    try:
        while not stop.is_set():
            reap()
            accepted = accept(listener, log, stop)
            if accepted is None:
                continue
            conn, peer = accepted
            now = time.monotonic()
            if len(admission) >= limits.max_clients:
                reap()
                for child in children.values():  # what the children have done, for the choice of a victim
                    child.clock.last_progress = board.read(child.slot)
            slot = board.take(now)
            verdict = admission.admit(source_of(peer), now) if slot is not None else None
            clock = verdict.admitted if verdict is not None else None
            if verdict is None or clock is None or slot is None:
                if slot is not None:
                    board.give_back(slot)
                reject(conn, peer, limits, log)
                continue
            victim = verdict.victim
            if victim is not None and victim in pids:
                log.limited("evict", peer=children[pids[victim]].name, idle=f"{victim.idle(now):.1f}",
                            by=peer_name(peer))  # fmt: skip
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pids.pop(victim), EVICT_SIGNAL)
            try:
                pid = _fork_with_signals_held(on_evict=functools.partial(evict, conn, clock))
            except OSError as exc:  # EAGAIN/ENOMEM: the pids or memory limit
                log("fork-failed", error=exc.strerror or str(exc))
                admission.release(clock)
                board.give_back(slot)
                reject(conn, peer, limits, log)
                continue
            if pid == 0:  # child: serve this one client, never return into the accept loop
                _serve_child(listener, conn, peer, factory, limits, log, clock, board, slot)
            children[pid] = _Child(clock, slot, peer_name(peer))
            pids[clock] = pid
            conn.close()
    finally:
        for pid in children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        board.close()


def _serve_child(
    listener: socket.socket,
    conn: socket.socket,
    peer: object,
    factory: SessionFactory,
    limits: Limits,
    log: EventLog,
    clock: Clock,
    board: ProgressBoard,
    slot: int,
) -> NoReturn:
    """The child's whole life: serve ``conn``, publishing progress on the board, then exit."""
    status = 0
    try:
        listener.close()
        handle_connection(
            conn, peer, factory, limits, log, clock, on_progress=lambda c: board.write(slot, c.last_progress)
        )
    except BaseException:
        status = 1
    finally:
        os._exit(status)


def _fork_with_signals_held(*, on_evict: Callable[[], None]) -> int:
    """``os.fork`` with SIGTERM/SIGINT (and the evict signal) blocked across it.

    A stop signal that lands *during* fork would have its Python handler run in
    an at-fork hook, where the exception is swallowed and the stop is lost. Held
    back, it is delivered right after, in the parent. The child goes back to the
    default action, so the parent's SIGTERM at shutdown ends it at once, and
    has its ``on_evict`` handler in place before the parent can ask it to leave.
    """
    held = {*_STOP_SIGNALS, EVICT_SIGNAL}
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        pid = os.fork()
        if pid == 0:
            for signum in _STOP_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(EVICT_SIGNAL, lambda signum, frame: on_evict())
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
    return pid
