"""``python -m services.chat``: the chat room (protocols.chat) on one asyncio loop.

The course's chat server served one person at a time and blocked on each of
them. Here every member shares one room, and nobody can hold it up:

* **slow readers**: output goes straight to each transport; what the kernel will
  not take waits in that transport's buffer, and a member whose buffer passes
  ``--queue-limit`` bytes is dropped (``* nick dropped (too slow)`` to the room);
* **floods**: each member gets at most ``LINES_PER_TURN`` lines handled per turn
  of the loop, then waits for the others;
* **fan-out**: a member's output within one loop turn is joined and written
  once, so n members talking at once cost O(n) writes per turn, not O(n²);
* **everything else**: a cap on members, an idle timeout, over-long lines and
  invalid UTF-8 answered with an error line to the sender alone, and every close
  bounded in time (a peer that never reads is aborted after ``CLOSE_GRACE``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import fcntl
import signal
import socket
import struct
import sys
import termios
import threading
from collections.abc import Sequence

from common.argtypes import positive_float, positive_int
from common.eventlog import EventLog
from protocols.chat import PORT, ChatConnection, ChatRoom, Delivery, full_message
from protocols.framing import DEFAULT_MAX_LINE
from services.common import LISTEN_BACKLOG, base_parser, bind_tcp, peer_name, run_main
from services.runners import cap_transport_reads

DEFAULT_MAX_CLIENTS = 1000
DEFAULT_IDLE_TIMEOUT = 600.0
DEFAULT_QUEUE_LIMIT = 64 * 1024
LINES_PER_TURN = 64  # lines of one member handled before the loop serves the others
FLUSH_AT = 16 * 1024  # a member's pending output this large is written at once, not at the end of the turn
CLOSE_GRACE = 2.0  # seconds a closing connection may take to flush and see the peer's EOF
READ_SIZE = 65536  # bytes per recv (asyncio's default 256 KiB costs page faults per read: see cap_transport_reads)
STOP_GRACE = 0.5  # seconds everyone gets to read "* server shutting down" (SIGTERM must end in < 1 s)
# A silent member is announced after this long; one that speaks or takes a nick, at once. The
# health check (clients/healthcheck.sh: connect, half-close, read the greeting) is gone in
# milliseconds, so it is never announced: it made 18 join and leave lines in 10 s to an idle member.
ANNOUNCE_GRACE = 5.0
PRESENCE_WINDOW = 1.0  # seconds between ChatRoom.tick() calls: one "* N joined, M left" line at most per window
# The peer closed under us: the socket calls that meet it raise these. Seen at 700 connects
# and closes a second: write_eof() raised ENOTCONN inside connection_made (4,458 tracebacks in
# 15 s), the close timer was never set, and the room filled with closed connections.
_GONE = frozenset({errno.ENOTCONN, errno.ECONNRESET, errno.EPIPE})
_TCP_CLOSE, _TCP_CLOSE_WAIT = 7, 8  # linux/include/net/tcp_states.h


class _Member(asyncio.Protocol):
    """One connection: its framing, its pending output, its state; the hub does the rest."""

    def __init__(self, hub: ChatServer) -> None:
        self.hub = hub
        self.conn = 0
        self.peer = "?"
        self.transport: asyncio.Transport | None = None
        self.lines: ChatConnection | None = None  # None: turned away (server full)
        self.last_active = 0.0
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.dirty = False  # waiting in the hub's flush list
        self.closing = False  # accepts no more output
        self.close_after_flush = False
        self.peer_eof = False
        self.paused = False  # reading paused while lines wait their turn
        self.announcer: asyncio.TimerHandle | None = None  # ANNOUNCE_GRACE's timer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        cap_transport_reads(transport, READ_SIZE)
        self.transport = transport
        try:
            self.hub.admit(self)
        except OSError as exc:
            if exc.errno not in _GONE:
                raise
            self.hub.lost(self)

    def data_received(self, data: bytes) -> None:
        if self.lines is None or self.closing:
            return  # turned away or on the way out: input is discarded until the peer's EOF
        self.last_active = self.hub.now()
        self.lines.feed(data)
        self.hub.handle_lines(self)

    def eof_received(self) -> bool:
        self.peer_eof = True
        if self.lines is None or self.closing:
            return False  # the transport closes itself once our output is flushed
        self.hub.eof(self)
        return True  # stay open: the leave notice and close come through the hub

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.hub.forget(self, "connection reset" if exc is not None else "disconnected")


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
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        max_line: int = DEFAULT_MAX_LINE,
        log: EventLog | None = None,
    ) -> None:
        if max_clients < 1 or idle_timeout <= 0 or queue_limit < 1:
            raise ValueError("max_clients, idle_timeout and queue_limit must be positive")
        self.host, self.port = host, port
        self.max_clients, self.idle_timeout, self.queue_limit = max_clients, idle_timeout, queue_limit
        self.max_line = max_line
        self.log = log or EventLog("chat")
        self.room = ChatRoom(on_event=self._room_event)
        self._members: dict[int, _Member] = {}  # every open connection, members and the turned-away
        self._next_conn = 0
        self._outbox: list[Delivery] = []
        self._delivering = False
        self._dirty: list[_Member] = []
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
        server = await loop.create_server(lambda: _Member(self), sock=listener, backlog=LISTEN_BACKLOG)
        host, port = listener.getsockname()[:2]
        self.log(
            "ready",
            host=host,
            tcp=port,
            model="asyncio",
            max_clients=self.max_clients,
            idle_timeout=self.idle_timeout,
            queue_limit=self.queue_limit,
        )
        self._ready.set()
        self._sweeper = loop.call_later(self._sweep_interval(), self._sweep)
        self._ticker = loop.call_later(PRESENCE_WINDOW, self._tick)
        try:
            await self._stopping.wait()
        finally:
            self._sweeper.cancel()
            self._ticker.cancel()
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

    # -- connections (called by _Member) -------------------------------------

    def admit(self, member: _Member) -> None:
        """A new connection: into the room, or turned away with an error line when it is full.

        A peer that closed before we got to it takes no seat: reset, it is
        aborted; half-closed with nothing sent (the health check), it is greeted
        and leaves at once, even when the room is full; half-closed after a few
        lines (``echo hi | nc``), it is let in beyond the cap, as it leaves once
        they are read.
        """
        transport = member.transport
        assert transport is not None and self._loop is not None
        self._next_conn += 1
        member.conn = self._next_conn
        member.peer = peer_name(transport.get_extra_info("peername"))
        member.last_active = self.now()
        self._members[member.conn] = member
        state = _peer_state(transport)
        if state == "reset":
            self.lost(member)
            return
        if state == "open" and len(self.room) - len(self._leaving) >= self.max_clients:
            self.log("busy", peer=member.peer, max_clients=self.max_clients)
            self._enqueue(member, full_message(self.max_clients), close=True)
            return
        member.lines = ChatConnection(self.room, member.conn, max_line=self.max_line)
        self.deliver(member.lines.start())
        if state == "eof":
            self.eof(member)
            return
        if state == "closing":
            self._leaving.add(member.conn)
        member.announcer = self._loop.call_later(ANNOUNCE_GRACE, self._announce, member)

    def eof(self, member: _Member) -> None:
        """The peer will send nothing more: its last lines, then its departure."""
        member.peer_eof = True
        if member.lines is not None:
            member.lines.feed(b"")
            self.handle_lines(member)

    def lost(self, member: _Member) -> None:
        """The peer is gone (reset, or the socket calls say so): abort, and free its seat now."""
        member.closing = True
        member.pending.clear()
        member.pending_size = 0
        if member.transport is not None:
            member.transport.abort()
        self.forget(member, "connection reset")

    def _announce(self, member: _Member) -> None:
        member.announcer = None
        self.deliver(self.room.announce(member.conn))

    def handle_lines(self, member: _Member) -> None:
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

    def forget(self, member: _Member, reason: str) -> None:
        """The connection is closed: tell the room if it was still a member."""
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

    def deliver(self, deliveries: list[Delivery]) -> None:
        """Queue each delivery on its connection; drops it causes are delivered in turn, not recursively."""
        self._outbox.extend(deliveries)
        if self._delivering:
            return
        self._delivering = True
        try:
            while self._outbox:
                batch, self._outbox = self._outbox, []
                for delivery in batch:
                    member = self._members.get(delivery.conn)
                    if member is not None:
                        self._enqueue(member, delivery.data, close=delivery.close)
        finally:
            self._delivering = False

    def _enqueue(self, member: _Member, data: bytes, *, close: bool) -> None:
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

    def _flush(self, member: _Member) -> None:
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

    def _close(self, member: _Member) -> None:
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
                if exc.errno not in _GONE:
                    raise
                self.lost(member)
                return
        self._loop.call_later(CLOSE_GRACE, transport.abort)

    def _drop(self, member: _Member, reason: str) -> None:
        """Throw a member out at once; its unsent output is discarded."""
        member.closing = True
        member.pending.clear()
        member.pending_size = 0
        if member.transport is not None:
            member.transport.abort()
        self.deliver(self.room.drop(member.conn, reason))

    # -- time -----------------------------------------------------------------

    def _sweep_interval(self) -> float:
        return max(0.05, min(1.0, self.idle_timeout / 4))

    def _sweep(self) -> None:
        """Close members idle longer than ``idle_timeout`` (one timer for all, not one per member)."""
        assert self._loop is not None
        deadline = self.now() - self.idle_timeout
        for member in list(self._members.values()):
            if not member.closing and member.last_active < deadline:
                self.deliver(self.room.expire(member.conn, self.idle_timeout))
        self._sweeper = self._loop.call_later(self._sweep_interval(), self._sweep)

    def _tick(self) -> None:
        assert self._loop is not None
        self.deliver(self.room.tick())
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


def _peer_state(transport: asyncio.Transport) -> str:
    """From the kernel's TCP state: ``"reset"``, ``"eof"`` (half-closed, nothing to read), ``"closing"``
    (half-closed after some bytes), or ``"open"``.

    Under churn a whole accept batch is admitted before any of it is read: at 2,000
    connects and closes on 127.0.0.1 the room counted 1,000 members that had all
    gone, and turned 408 newcomers away as "server full". Asking the kernel costs
    two system calls per connection and needs no read.
    """
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6) or not hasattr(socket, "TCP_INFO"):
        return "open"
    try:
        state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
        if state == _TCP_CLOSE:
            return "reset"
        queued = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return "open"  # the reads and writes to come will say what happened
    if state != _TCP_CLOSE_WAIT:
        return "open"
    return "closing" if queued else "eof"


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m services.chat``."""
    parser = base_parser(
        "chat",
        "Multi-user chat room over TCP (plain nc is a client): UTF-8 lines, /nick /who /msg /quit /help.",
        port=PORT,
    )
    parser.add_argument(
        "--max-clients",
        type=positive_int,
        default=DEFAULT_MAX_CLIENTS,
        help="members allowed at once; more get an error line and are closed (default: %(default)s)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=positive_float,
        default=DEFAULT_IDLE_TIMEOUT,
        help="seconds a member may send nothing before it is closed (default: %(default)s)",
    )
    parser.add_argument(
        "--queue-limit",
        type=positive_int,
        default=DEFAULT_QUEUE_LIMIT,
        metavar="BYTES",
        help="output held for a member the kernel will not take more from; past it the member is dropped "
        "as too slow (default: %(default)s)",
    )
    return parser


def _serve(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    server = ChatServer(max_clients=args.max_clients, idle_timeout=args.idle_timeout, queue_limit=args.queue_limit)
    listener = bind_tcp(args.host, args.port)
    try:
        asyncio.run(server.serve(listener, handle_signals=True))
    finally:
        listener.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chat server; SIGTERM or SIGINT closes everyone and exits 0."""
    return run_main(_serve, argv)


if __name__ == "__main__":
    sys.exit(main())
