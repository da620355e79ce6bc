"""The ``selectors`` model: one thread, one loop, every client (the seeds' ``select`` server).

Output is buffered per peer and bounded (``Limits.max_output``): a peer that
stops reading stops being read from, instead of growing our memory. The loop
admits and evicts itself (``services.admission``) and looks at every clock
once a turn: idle peers and lines past their deadline are closed there.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import time
from dataclasses import dataclass, field

from common.eventlog import EventLog
from protocols.session import Output, Session, SessionFactory
from services.admission import EVICTED, IDLE, Admission, Clock
from services.common import peer_name, source_of
from services.runners.limits import LINGER, POLL, Limits
from services.runners.sockets import OVERLOAD_ERRNOS, reject
from services.runners.stopping import StopSwitch

_WAKE = object()  # the selector key data of the stop switch's socket pair


@dataclass(eq=False)
class _Peer:
    """The loop's record of one connection."""

    conn: socket.socket
    name: str
    session: Session
    clock: Clock
    outbuf: bytearray = field(default_factory=bytearray)
    closing: bool = False  # the session is done: flush, then half-close
    draining: bool = False  # FIN sent: discard input until the peer's EOF (see sockets.close_gracefully)
    drain_began: float = 0.0
    reading: bool = True
    reason: str = "closed"  # what the disconnect line will say, once the close is done


def serve_selectors(
    listener: socket.socket, factory: SessionFactory, *, limits: Limits, log: EventLog, stop: StopSwitch
) -> None:
    """One thread, one ``selectors`` loop, every client.

    With no client the loop waits without a timeout (there is no clock to look
    at); the stop switch wakes it through a socket pair of its own.
    """
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    wake_read, wake_write = socket.socketpair()
    sel.register(wake_read, selectors.EVENT_READ, _WAKE)
    stop.wake_on_stop(lambda: wake_write.send(b"x"))
    admission = Admission(limits.rules)
    peers: dict[int, _Peer] = {}
    by_clock: dict[Clock, _Peer] = {}

    def update(peer: _Peer) -> None:
        if peer.closing and not peer.outbuf and not peer.draining:
            try:
                peer.conn.shutdown(socket.SHUT_WR)
            except OSError:
                drop(peer, peer.reason)
                return
            peer.draining, peer.drain_began = True, time.monotonic()
        mask = selectors.EVENT_READ if peer.draining or (peer.reading and not peer.closing) else 0
        mask |= selectors.EVENT_WRITE if peer.outbuf else 0
        sel.modify(peer.conn, mask, peer)

    def drop(peer: _Peer, reason: str) -> None:
        if peers.pop(peer.conn.fileno(), None) is None:
            return
        admission.release(peer.clock)
        by_clock.pop(peer.clock, None)
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(peer.conn)
        peer.conn.close()
        log.connection("disconnect", peer.name, reason=reason)

    def dismiss(peer: _Peer, why: str) -> None:
        """Close ``peer`` for ``why`` (a line's deadline, an eviction): the line that says so, then FIN.

        Its slot is free at once. A peer that is not taking its output, or is
        leaving already, is not waited for: it is closed now.
        """
        admission.release(peer.clock)
        by_clock.pop(peer.clock, None)
        peer.reason = why
        if peer.outbuf or peer.closing:
            drop(peer, why)
        else:
            apply(peer, Output(limits.message(why), close=True))

    def apply(peer: _Peer, out: Output) -> None:
        peer.outbuf += out.data
        peer.closing = peer.closing or out.close
        peer.reading = len(peer.outbuf) < limits.max_output
        flush(peer)

    def flush(peer: _Peer) -> None:
        if peer.outbuf:
            try:
                sent = peer.conn.send(peer.outbuf)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                drop(peer, exc.strerror or "send failed")
                return
            del peer.outbuf[:sent]
            peer.reading = len(peer.outbuf) < limits.max_output
        if peer.conn.fileno() in peers:
            update(peer)

    def accept_all() -> None:
        while True:
            try:
                conn, address = listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in OVERLOAD_ERRNOS:
                    log("accept-overload", error=os.strerror(exc.errno or 0))
                    return
                raise
            now = time.monotonic()
            verdict = admission.admit(source_of(address), now)
            if verdict.admitted is None:
                reject(conn, address, limits, log)
                continue
            victim = by_clock.get(verdict.victim) if verdict.victim is not None else None
            if victim is not None:
                log.limited("evict", peer=victim.name, idle=f"{victim.clock.idle(now):.1f}", by=peer_name(address))
                victim.clock.evicted = True
                dismiss(victim, EVICTED)
            conn.setblocking(False)
            peer = _Peer(conn, peer_name(address), factory(), verdict.admitted)
            peers[conn.fileno()] = peer
            by_clock[peer.clock] = peer
            sel.register(conn, selectors.EVENT_READ, peer)
            log.connection("connect", peer.name)
            apply(peer, peer.session.start())

    def read(peer: _Peer) -> None:
        try:
            data = peer.conn.recv(limits.recv_size)
        except BlockingIOError:
            return
        except OSError as exc:
            drop(peer, exc.strerror or "recv failed")
            return
        if peer.draining:
            if not data:
                drop(peer, peer.reason)
            return
        peer.clock.received(data, time.monotonic())
        if not data:
            # The peer is done sending; what the session answers to EOF is its last word.
            peer.draining, peer.drain_began = True, time.monotonic()
        apply(peer, peer.session.receive_data(data))
        if not data and not peer.outbuf:
            drop(peer, "eof")

    def expire(now: float) -> None:
        for peer in list(peers.values()):
            if peer.draining:
                if now - peer.drain_began > LINGER:
                    drop(peer, peer.reason)
                continue
            why = peer.clock.expired(now)
            if why == IDLE:
                with contextlib.suppress(OSError):
                    peer.conn.send(limits.idle_message)
                drop(peer, IDLE)
            elif why is not None and not peer.closing:
                dismiss(peer, why)

    try:
        while not stop.is_set():
            for key, mask in sel.select(timeout=POLL if peers else None):
                if key.data is None:
                    accept_all()
                    continue
                if key.data is _WAKE:
                    continue
                peer = key.data
                if mask & selectors.EVENT_WRITE and peer.conn.fileno() in peers:
                    peer.clock.sent(time.monotonic())
                    flush(peer)
                if mask & selectors.EVENT_READ and peer.conn.fileno() in peers:
                    read(peer)
            expire(time.monotonic())
    finally:
        for peer in list(peers.values()):
            drop(peer, "server stopping")
        sel.close()
        wake_read.close()
        wake_write.close()
