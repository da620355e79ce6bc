"""The chat server: ``ChatRoom`` carried over asyncio, every rule of ``services.chat`` in one class.

``services.chat`` is its command line; ``services.chat_connection`` its connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading

from common.eventlog import READY, EventLog
from protocols.chat import Broadcast, ChatConnection, ChatRoom, Delivery, Output, full_message
from protocols.framing import DEFAULT_MAX_LINE
from services.admission import (
    DEFAULT_GRACE,
    EVICTED_MESSAGE,
    IDLE,
    LINE_DEADLINE,
    Admission,
    Clock,
    Rules,
    deadline_message,
    half_of,
)
from services.chat_connection import GONE, Member, peer_state
from services.common import LISTEN_BACKLOG, bind_tcp, peer_name, source_of

DEFAULT_MAX_CLIENTS = 1000
DEFAULT_IDLE_TIMEOUT = 600.0
# People type here, and a client in character mode sends each key as it is typed: 30 s for a line.
DEFAULT_LINE_DEADLINE = 30.0
DEFAULT_QUEUE_LIMIT = 64 * 1024
LINES_PER_TURN = 64  # lines of one member handled before the loop serves the others
FLUSH_AT = 16 * 1024  # a member's pending output this large is written at once, not at the end of the turn
CLOSE_GRACE = 2.0  # seconds a closing connection may take to flush and see the peer's EOF
STOP_GRACE = 0.5  # seconds everyone gets to read "* server shutting down" (SIGTERM must end in < 1 s)
# A silent member is announced after this long; one that speaks or takes a nick, at once. The
# health check (clients/healthcheck.sh: connect, half-close, read the greeting) is gone in
# milliseconds, so it is never announced: it made 18 join and leave lines in 10 s to an idle member.
ANNOUNCE_GRACE = 5.0
PRESENCE_WINDOW = 1.0  # seconds between ChatRoom.tick() calls: one "* N joined, M left" line at most per window


class ChatServer:
    """The chat room served over TCP with asyncio.

    ``await serve(listener)`` runs until ``stop()``; ``start()``/``stop()`` run it
    in a background thread instead, for tests (``port=0`` picks a free port).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        per_source: int | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        line_deadline: float = DEFAULT_LINE_DEADLINE,
        evict_grace: float = DEFAULT_GRACE,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        max_line: int = DEFAULT_MAX_LINE,
        log: EventLog | None = None,
    ) -> None:
        if queue_limit < 1:
            raise ValueError("queue_limit must be positive")
        self.rules = Rules(  # raises ValueError naming a wrong number
            max_clients=max_clients,
            per_source=half_of(max_clients) if per_source is None else per_source,
            idle_timeout=idle_timeout,
            line_deadline=line_deadline,
            grace=evict_grace,
        )
        self.host, self.port = host, port
        self.max_clients, self.idle_timeout, self.queue_limit = max_clients, idle_timeout, queue_limit
        self.line_deadline = line_deadline
        self.max_line = max_line
        self.log = log or EventLog("chat")
        self.room = ChatRoom(on_event=self._room_event)
        self.admission = Admission(self.rules)
        self._seated: dict[Clock, Member] = {}  # the members admission counts, by their clock
        self._members: dict[int, Member] = {}  # every open connection, members and the turned-away
        self._next_conn = 0
        self._outbox: list[Output] = []
        self._delivering = False
        self._dirty: list[Member] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._all_gone: asyncio.Event | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._leaving: set[int] = set()  # members whose peer had half-closed on arrival: no seat
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    # -- running -------------------------------------------------------------

    async def serve(self, listener: socket.socket, *, handle_signals: bool = False) -> None:
        """Serve on ``listener`` until ``stop()`` (or SIGTERM/SIGINT with ``handle_signals``)."""
        loop = self._loop = asyncio.get_running_loop()
        self._stopping, self._all_gone = asyncio.Event(), asyncio.Event()
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._stopping.set)
        listener.setblocking(False)
        server = await loop.create_server(lambda: Member(self), sock=listener, backlog=LISTEN_BACKLOG)
        host, port = listener.getsockname()[:2]
        self.log(
            READY,
            host=host,
            tcp=port,
            model="asyncio",
            max_clients=self.max_clients,
            per_source=self.rules.per_source,
            idle_timeout=self.idle_timeout,
            line_deadline=self.line_deadline,
            queue_limit=self.queue_limit,
        )
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            for timer in (self._sweeper, self._ticker):
                if timer is not None:
                    timer.cancel()
            server.close()
            await self._close_everyone()
            self.log("stopped")

    def start(self) -> tuple[str, int]:
        """Bind, serve in a background thread, and return the bound ``(host, port)``."""
        listener = bind_tcp(self.host, self.port)
        host, port = listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._run_in_thread, args=(listener,), name="chat-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=5) or self._failure is not None:
            listener.close()
            raise RuntimeError(f"chat server did not start: {self._failure!r}")
        return host, port

    def _run_in_thread(self, listener: socket.socket) -> None:
        try:
            asyncio.run(self.serve(listener))
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            raise
        finally:
            listener.close()

    def stop(self) -> None:
        """Close every connection and stop serving (safe from any thread)."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended between the check and the call
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def now(self) -> float:
        """The loop's clock."""
        assert self._loop is not None
        return self._loop.time()

    # -- connections (called by Member) --------------------------------------

    def admit(self, member: Member) -> None:
        """A new connection: into the room, or turned away with an error line when it is full.

        The admission policy seats it, closing the longest-idle member if the
        room is full, or turns it away when every member was busy within the
        grace. A peer that closed before we got to it takes no seat: reset, it
        is aborted; half-closed with nothing sent (the health check), it is
        greeted and leaves at once, even when the room is full; half-closed
        after a few lines (``echo hi | nc``), it is let in beyond the cap, as it
        leaves once they are read.
        """
        transport = member.transport
        assert transport is not None and self._loop is not None
        self._next_conn += 1
        member.conn = self._next_conn
        address = transport.get_extra_info("peername")
        member.peer = peer_name(address)
        now = self.now()
        member.clock = Clock(self.rules, source_of(address), now)  # replaced by admission's when seated by it
        self._members[member.conn] = member
        self._keep_time()
        state = peer_state(transport)
        if state == "reset":
            self.lost(member)
            return
        if state == "open":
            verdict = self.admission.admit(source_of(address), now)
            if verdict.admitted is None:
                self.log("busy", peer=member.peer, max_clients=self.max_clients)
                self._enqueue(member, full_message(self.max_clients), close=True)
                return
            member.clock = verdict.admitted
            self._seated[member.clock] = member
            if verdict.victim is not None:
                self._evict(verdict.victim, now, by=member.peer)
        member.lines = ChatConnection(self.room, member.conn, max_line=self.max_line)
        self.deliver(member.lines.start())
        if state == "eof":
            self.eof(member)
            return
        if state == "closing":
            self._leaving.add(member.conn)
        member.announcer = self._loop.call_later(ANNOUNCE_GRACE, self._announce, member)

    def eof(self, member: Member) -> None:
        """The peer will send nothing more: its last lines, then its departure."""
        member.peer_eof = True
        if member.lines is not None:
            member.lines.feed(b"")
            self.handle_lines(member)

    def lost(self, member: Member) -> None:
        """The peer is gone (reset, or the socket calls say so): abort, and free its seat now."""
        member.closing = True
        member.pending.clear()
        member.pending_size = 0
        if member.transport is not None:
            member.transport.abort()
        self.forget(member, "connection reset")

    def _announce(self, member: Member) -> None:
        member.announcer = None
        self.deliver(self.room.announce(member.conn))

    def handle_lines(self, member: Member) -> None:
        """Handle one turn's worth of ``member``'s buffered lines; come back for the rest later."""
        lines, transport = member.lines, member.transport
        if lines is None or transport is None or member.closing:
            return
        self.deliver(lines.deliveries(max_lines=LINES_PER_TURN))
        if lines.backlog and not member.closing:
            if not member.paused:
                member.paused = True
                transport.pause_reading()
            assert self._loop is not None
            self._loop.call_soon(self.handle_lines, member)
        elif member.paused and not member.closing:
            member.paused = False
            transport.resume_reading()

    def _evict(self, victim: Clock, now: float, *, by: str) -> None:
        """Close the member whose seat a newcomer takes: one line saying why, and the room is told."""
        member = self._seated.get(victim)
        if member is None or member.closing:
            return
        self.log.limited("evict", peer=member.peer, idle=f"{victim.idle(now):.1f}", by=by)
        victim.evicted = True
        # Not in the room (it has just left, or its greeting is still to come): told and closed all the same.
        alone: list[Output] = [Delivery(member.conn, EVICTED_MESSAGE, close=True)]
        self.deliver(self.room.dismiss(member.conn, EVICTED_MESSAGE, "server full") or alone)

    def _unseat(self, member: Member) -> None:
        """Give the member's seat back: it is leaving, or gone."""
        if member.clock is not None:
            self.admission.release(member.clock)
            self._seated.pop(member.clock, None)

    def forget(self, member: Member, reason: str) -> None:
        """The connection is closed: tell the room if it was still a member."""
        self._unseat(member)
        if member.conn not in self._members:
            return
        self._leaving.discard(member.conn)
        if member.announcer is not None:
            member.announcer.cancel()
            member.announcer = None
        notices = self.room.leave(member.conn, reason)  # before forgetting it, so the log names its peer
        del self._members[member.conn]
        self.deliver(notices)
        if not self._members and self._all_gone is not None:
            self._all_gone.set()

    # -- output ---------------------------------------------------------------

    def deliver(self, deliveries: list[Output]) -> None:
        """Queue each delivery on its connection; drops it causes are delivered in turn, not recursively."""
        self._outbox.extend(deliveries)
        if self._delivering:
            return
        self._delivering = True
        try:
            while self._outbox:
                batch, self._outbox = self._outbox, []
                for output in batch:
                    if isinstance(output, Broadcast):
                        self._enqueue_all(output.conns, output.data)
                        continue
                    member = self._members.get(output.conn)
                    if member is not None:
                        self._enqueue(member, output.data, close=output.close)
        finally:
            self._delivering = False

    def _enqueue_all(self, conns: tuple[int, ...], data: bytes) -> None:
        members = self._members
        for conn in conns:
            member = members.get(conn)
            if member is not None:
                self._enqueue(member, data, close=False)

    def _enqueue(self, member: Member, data: bytes, *, close: bool) -> None:
        transport = member.transport
        if member.closing or transport is None:
            return
        if data:
            if transport.get_write_buffer_size() >= self.queue_limit:
                self._drop(member, "too slow")
                return
            member.pending.append(data)
            member.pending_size += len(data)
        if close:
            member.closing = member.close_after_flush = True
            self._unseat(member)
        if member.pending_size >= FLUSH_AT or close:
            self._flush(member)
        elif not member.dirty:
            member.dirty = True
            if not self._dirty:
                assert self._loop is not None
                self._loop.call_soon(self._flush_dirty)
            self._dirty.append(member)

    def _flush_dirty(self) -> None:
        dirty, self._dirty = self._dirty, []
        for member in dirty:
            self._flush(member)

    def _flush(self, member: Member) -> None:
        member.dirty = False
        transport = member.transport
        if transport is None or transport.is_closing():
            return
        if member.pending:
            transport.write(b"".join(member.pending))
            member.pending.clear()
            member.pending_size = 0
        if member.close_after_flush:
            self._close(member)

    def _close(self, member: Member) -> None:
        """Flush, send FIN, and give the peer ``CLOSE_GRACE`` to finish before aborting.

        Closing with the peer's input unread would make the kernel send RST,
        which can destroy our last line before the peer reads it.
        """
        transport = member.transport
        assert transport is not None and self._loop is not None
        if member.peer_eof or not transport.can_write_eof():
            transport.close()
        else:
            try:
                transport.write_eof()
            except OSError as exc:  # the peer's RST came between our last write and this FIN
                if exc.errno not in GONE:
                    raise
                self.lost(member)
                return
        self._loop.call_later(CLOSE_GRACE, transport.abort)

    def _drop(self, member: Member, reason: str) -> None:
        """Throw a member out at once; its unsent output is discarded."""
        member.closing = True
        self._unseat(member)
        member.pending.clear()
        member.pending_size = 0
        if member.transport is not None:
            member.transport.abort()
        self.deliver(self.room.drop(member.conn, reason))

    # -- time -----------------------------------------------------------------

    def _sweep_interval(self) -> float:
        return max(0.05, min(1.0, min(self.idle_timeout, self.line_deadline) / 4))

    def _sweep(self) -> None:
        """Close members idle past ``idle_timeout`` or with a line past its deadline (one timer for all)."""
        assert self._loop is not None
        now = self.now()
        for member in list(self._members.values()):
            why = None if member.closing or member.clock is None else member.clock.expired(now)
            if why == IDLE:
                self.deliver(self.room.expire(member.conn, self.idle_timeout))
            elif why == LINE_DEADLINE:
                self.deliver(self.room.dismiss(member.conn, deadline_message(self.line_deadline), "line too slow"))
        self._sweeper = self._loop.call_later(self._sweep_interval(), self._sweep) if self._members else None

    def _tick(self) -> None:
        assert self._loop is not None
        self.deliver(self.room.tick())
        # The tick after the last member left is the last: it has ended the window of their departures.
        self._ticker = self._loop.call_later(PRESENCE_WINDOW, self._tick) if self._members else None

    def _keep_time(self) -> None:
        """Start the sweeper and the presence ticker if they are not running: they run only while anyone is here.

        An empty room has no clock to look at, so an idle chat server sleeps in
        the kernel until someone connects (they used to wake it twice a second).
        """
        assert self._loop is not None
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(self._sweep_interval(), self._sweep)
        if self._ticker is None:
            self._ticker = self._loop.call_later(PRESENCE_WINDOW, self._tick)

    async def _close_everyone(self) -> None:
        self.deliver(self.room.shutdown())
        for member in list(self._members.values()):
            if not member.closing:  # not in the room: turned away, already on its way out
                self._enqueue(member, b"", close=True)
        self._flush_dirty()
        if self._members and self._all_gone is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_gone.wait(), STOP_GRACE)
        for member in list(self._members.values()):
            if member.transport is not None:
                member.transport.abort()
        await asyncio.sleep(0)  # let connection_lost run for the aborted ones

    # -- logging --------------------------------------------------------------

    def _room_event(self, event: str, /, **fields: object) -> None:
        conn = fields.get("conn")
        member = self._members.get(conn) if isinstance(conn, int) else None
        if member is None:
            self.log(event, **fields)
        elif event in {"join", "leave"}:
            self.log.connection(event, member.peer, **fields)  # muted for loopback peers: health checks
        else:
            self.log(event, peer=member.peer, **fields)
