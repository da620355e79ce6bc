"""The concurrency models, each able to serve any stream ``Session``.

The course shows one server five ways: iterative (one client at a time),
thread-per-connection, fork-per-connection, a ``select`` loop and asyncio. Here
each model is one function with the same signature, driving the same sans-IO
session class, and each one hardens what the slides left out:

* a cap on concurrent clients (over it: the busy message, then close),
* an idle timeout (a client that says nothing is closed: no slowloris),
* every socket closed in ``finally``; accept errors that mean overload
  (EMFILE, ENFILE, ENOBUFS, ENOMEM) logged and retried after a pause,
* bounded output buffers in the event-loop models (a peer that stops reading
  stops being read from, instead of growing our memory).
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from common.eventlog import EventLog
from protocols.session import Output, Session, SessionFactory
from services.common import LISTEN_BACKLOG, bind_tcp, peer_name

if TYPE_CHECKING:  # imported where the asyncio model runs: it is a third of every other server's start-up
    import asyncio

MODELS = ("iterative", "threaded", "forking", "selectors", "asyncio")

# Errors from accept() that mean "out of resources now", not "broken": pause, retry.
_OVERLOAD_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_OVERLOAD_PAUSE = 0.1
# How often blocking loops look at the stop flag (and the forking model reaps).
_POLL = 0.25
# How long a closing connection waits for the peer's EOF (see close_gracefully).
_LINGER = 2.0


@dataclass(frozen=True, slots=True)
class Limits:
    """What one server allows each client and all of them together."""

    max_clients: int = 256
    idle_timeout: float = 60.0
    recv_size: int = 65536
    max_output: int = 1 << 20  # event-loop models: stop reading a peer with this much unsent
    busy_message: bytes = b"error: server busy, try again later\n"
    idle_message: bytes = b"error: idle timeout, closing\n"

    def __post_init__(self) -> None:
        if self.max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        if self.idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")


def _accept(listener: socket.socket, log: EventLog) -> tuple[socket.socket, object] | None:
    """One accept with the listener's poll timeout; ``None`` when nothing came."""
    try:
        return listener.accept()
    except TimeoutError:
        return None
    except OSError as exc:
        if exc.errno in _OVERLOAD_ERRNOS:
            log("accept-overload", error=os.strerror(exc.errno or 0))
            time.sleep(_OVERLOAD_PAUSE)
            return None
        raise


def close_gracefully(conn: socket.socket, *, linger: float = _LINGER) -> None:
    """Send FIN, discard what the peer still sends until its EOF (or ``linger``), then close.

    Closing a socket with unread input makes the kernel answer with RST, and an
    RST can destroy our last reply before the client reads it (a daytime client
    that sent a line first would see nothing). Reading to EOF avoids that.
    """
    try:
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(linger)
        deadline = time.monotonic() + linger
        while time.monotonic() < deadline and conn.recv(65536):
            pass
    except OSError:
        pass
    finally:
        conn.close()


def _reject(conn: socket.socket, peer: object, limits: Limits, log: EventLog) -> None:
    """Tell a client over the cap why it is turned away, without ever blocking on it."""
    log("busy", peer=peer_name(peer), max_clients=limits.max_clients)
    with contextlib.suppress(OSError):
        conn.setblocking(False)
        conn.send(limits.busy_message)
    conn.close()


def set_kernel_timeouts(conn: socket.socket, seconds: float) -> None:
    """Make ``recv`` and ``send`` on a blocking socket give up after ``seconds`` (``BlockingIOError``).

    The kernel enforces these (SO_RCVTIMEO/SO_SNDTIMEO), so each call is one
    system call. A Python socket timeout (``settimeout``) instead puts a
    ``poll()`` before every ``recv`` and ``send``: twice the system calls and
    twice the GIL hand-offs, and with a hundred threads the hand-offs cost more
    than the work (scripts/bench measured ``threaded`` at 0.26x the stdlib server).
    """
    conn.settimeout(None)
    whole = int(seconds)
    timeval = struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


def handle_connection(
    conn: socket.socket, peer: object, factory: SessionFactory, limits: Limits, log: EventLog
) -> None:
    """Serve one connection to the end with blocking I/O (iterative/threaded/forking)."""
    name = peer_name(peer)
    log.connection("connect", name)
    reason = "closed"
    linger = True
    try:
        set_kernel_timeouts(conn, limits.idle_timeout)
        session = factory()
        out = session.start()
        if out.data:
            conn.sendall(out.data)
        while not out.close:
            try:
                data = conn.recv(limits.recv_size)
            except (TimeoutError, BlockingIOError):  # BlockingIOError: SO_RCVTIMEO ran out
                reason = "idle"
                with contextlib.suppress(OSError):
                    conn.settimeout(1.0)
                    conn.sendall(limits.idle_message)
                break
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
        if linger:
            close_gracefully(conn)
        else:
            conn.close()
        log.connection("disconnect", name, reason=reason)


def serve_iterative(
    listener: socket.socket, factory: SessionFactory, *, limits: Limits, log: EventLog, stop: threading.Event
) -> None:
    """One client at a time: the others wait in the listen backlog (the seeds' first server)."""
    listener.settimeout(_POLL)
    while not stop.is_set():
        accepted = _accept(listener, log)
        if accepted is not None:
            handle_connection(*accepted, factory, limits, log)


def serve_threaded(
    listener: socket.socket, factory: SessionFactory, *, limits: Limits, log: EventLog, stop: threading.Event
) -> None:
    """A thread per connection, at most ``max_clients`` of them."""
    listener.settimeout(_POLL)
    slots = threading.BoundedSemaphore(limits.max_clients)
    live: set[socket.socket] = set()
    live_lock = threading.Lock()

    def worker(conn: socket.socket, peer: object) -> None:
        try:
            handle_connection(conn, peer, factory, limits, log)
        finally:
            with live_lock:
                live.discard(conn)
            slots.release()

    try:
        while not stop.is_set():
            accepted = _accept(listener, log)
            if accepted is None:
                continue
            conn, peer = accepted
            if not slots.acquire(blocking=False):
                _reject(conn, peer, limits, log)
                continue
            with live_lock:
                live.add(conn)
            try:
                threading.Thread(target=worker, args=(conn, peer), daemon=True).start()
            except RuntimeError:  # "can't start new thread": the pids or memory limit, not a bug
                with live_lock:
                    live.discard(conn)
                slots.release()
                _reject(conn, peer, limits, log)
    finally:
        with live_lock:
            for conn in live:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


def serve_forking(
    listener: socket.socket, factory: SessionFactory, *, limits: Limits, log: EventLog, stop: threading.Event
) -> None:
    """A child process per connection (the seeds' ``os.fork`` server), children reaped."""
    listener.settimeout(_POLL)
    children: set[int] = set()

    def reap() -> None:
        while children:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                children.clear()
                return
            if pid == 0:
                return
            children.discard(pid)

    try:
        while not stop.is_set():
            reap()
            accepted = _accept(listener, log)
            if accepted is None:
                continue
            conn, peer = accepted
            if len(children) >= limits.max_clients:
                reap()
                if len(children) >= limits.max_clients:
                    _reject(conn, peer, limits, log)
                    continue
            try:
                pid = _fork_with_signals_held()
            except OSError as exc:  # EAGAIN/ENOMEM: the pids or memory limit
                log("fork-failed", error=exc.strerror or str(exc))
                _reject(conn, peer, limits, log)
                continue
            if pid == 0:  # child: serve this one client, never return into the accept loop
                status = 0
                try:
                    listener.close()
                    handle_connection(conn, peer, factory, limits, log)
                except BaseException:
                    status = 1
                finally:
                    os._exit(status)
            children.add(pid)
            conn.close()
    finally:
        for pid in children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _fork_with_signals_held() -> int:
    """``os.fork`` with SIGTERM/SIGINT blocked across it.

    A stop signal that lands *during* fork would have its Python handler run in
    an at-fork hook, where the exception is swallowed and the stop is lost. Held
    back, it is delivered right after, in the parent. The child goes back to the
    default action, so the parent's SIGTERM at shutdown ends it at once.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        pid = os.fork()
        if pid == 0:
            for signum in _STOP_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    return pid


@dataclass
class _Peer:
    """An event-loop model's record of one connection."""

    conn: socket.socket
    name: str
    session: Session
    last_active: float
    outbuf: bytearray = field(default_factory=bytearray)
    closing: bool = False  # the session is done: flush, then half-close
    draining: bool = False  # FIN sent: discard input until the peer's EOF (see close_gracefully)
    reading: bool = True


def serve_selectors(
    listener: socket.socket, factory: SessionFactory, *, limits: Limits, log: EventLog, stop: threading.Event
) -> None:
    """One thread, one ``selectors`` loop, every client (the seeds' ``select`` server)."""
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    peers: dict[int, _Peer] = {}

    def update(peer: _Peer) -> None:
        if peer.closing and not peer.outbuf and not peer.draining:
            try:
                peer.conn.shutdown(socket.SHUT_WR)
            except OSError:
                drop(peer, "closed")
                return
            peer.draining, peer.last_active = True, time.monotonic()
        mask = selectors.EVENT_READ if peer.draining or (peer.reading and not peer.closing) else 0
        mask |= selectors.EVENT_WRITE if peer.outbuf else 0
        sel.modify(peer.conn, mask, peer)

    def drop(peer: _Peer, reason: str) -> None:
        if peers.pop(peer.conn.fileno(), None) is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(peer.conn)
        peer.conn.close()
        log.connection("disconnect", peer.name, reason=reason)

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
                if exc.errno in _OVERLOAD_ERRNOS:
                    log("accept-overload", error=os.strerror(exc.errno or 0))
                    return
                raise
            if len(peers) >= limits.max_clients:
                _reject(conn, address, limits, log)
                continue
            conn.setblocking(False)
            peer = _Peer(conn, peer_name(address), factory(), time.monotonic())
            peers[conn.fileno()] = peer
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
                drop(peer, "closed")
            return
        peer.last_active = time.monotonic()
        if not data:
            # The peer is done sending; what the session answers to EOF is its last word.
            peer.draining = True
        apply(peer, peer.session.receive_data(data))
        if not data and not peer.outbuf:
            drop(peer, "eof")

    def expire_idle(now: float) -> None:
        for peer in list(peers.values()):
            if peer.draining and now - peer.last_active > _LINGER:
                drop(peer, "closed")
            elif now - peer.last_active > limits.idle_timeout:
                with contextlib.suppress(OSError):
                    peer.conn.send(limits.idle_message)
                drop(peer, "idle")

    try:
        while not stop.is_set():
            for key, mask in sel.select(timeout=_POLL):
                if key.data is None:
                    accept_all()
                    continue
                peer = key.data
                if mask & selectors.EVENT_WRITE and peer.conn.fileno() in peers:
                    peer.last_active = time.monotonic()
                    flush(peer)
                if mask & selectors.EVENT_READ and peer.conn.fileno() in peers:
                    read(peer)
            expire_idle(time.monotonic())
    finally:
        for peer in list(peers.values()):
            drop(peer, "server stopping")
        sel.close()


def serve_asyncio(
    listener: socket.socket, factory: SessionFactory, *, limits: Limits, log: EventLog, stop: threading.Event
) -> None:
    """asyncio streams: a coroutine per client on one event loop."""
    import asyncio

    asyncio.run(_serve_asyncio(listener, factory, limits, log, stop))


async def _serve_asyncio(
    listener: socket.socket, factory: SessionFactory, limits: Limits, log: EventLog, stop: threading.Event
) -> None:
    import asyncio

    active = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal active
        peer = writer.get_extra_info("peername")
        if active >= limits.max_clients:
            log("busy", peer=peer_name(peer), max_clients=limits.max_clients)
            writer.write(limits.busy_message)
            writer.close()
            return
        active += 1
        name = peer_name(peer)
        log.connection("connect", name)
        reason = "closed"
        cap_transport_reads(writer.transport, limits.recv_size)
        try:
            session = factory()
            out = session.start()
            writer.write(out.data)
            await writer.drain()
            while not out.close:
                # asyncio.timeout, not wait_for: in 3.11 wait_for wraps every read and drain in a
                # new Task, a tenth of this loop's time per request (scripts/bench, py-spy).
                try:
                    async with asyncio.timeout(limits.idle_timeout):
                        data = await reader.read(limits.recv_size)
                except TimeoutError:
                    reason = "idle"
                    writer.write(limits.idle_message)
                    break
                out = session.receive_data(data)
                writer.write(out.data)
                async with asyncio.timeout(limits.idle_timeout):
                    await writer.drain()
                if not data:
                    reason = "eof"
                    break
            if reason != "eof":
                await _close_gracefully_async(reader, writer)
        except TimeoutError:
            reason = "send-timeout"
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
        finally:
            active -= 1
            writer.close()
            log.connection("disconnect", name, reason=reason)

    listener.setblocking(False)
    # backlog: start_server calls listen() again, with 100 unless told; 1,000 clients at once overflowed it.
    server = await asyncio.start_server(handle, sock=listener, limit=limits.recv_size, backlog=LISTEN_BACKLOG)
    async with server:
        while not stop.is_set():
            await asyncio.sleep(_POLL)


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
    """The asyncio twin of ``close_gracefully``: FIN, then read to the peer's EOF briefly."""
    import asyncio

    await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()
    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(_LINGER):
            while await reader.read(65536):
                pass


_RUNNERS: dict[str, Callable[..., None]] = {
    "iterative": serve_iterative,
    "threaded": serve_threaded,
    "forking": serve_forking,
    "selectors": serve_selectors,
    "asyncio": serve_asyncio,
}


def serve_stream(
    listener: socket.socket,
    factory: SessionFactory,
    *,
    model: str = "threaded",
    limits: Limits | None = None,
    log: EventLog,
    stop: threading.Event | None = None,
) -> None:
    """Serve ``factory``'s sessions on ``listener`` with one concurrency model.

    Blocks until ``stop`` is set (or ``Stopped`` is raised by a signal handler).
    """
    try:
        runner = _RUNNERS[model]
    except KeyError:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}") from None
    runner(listener, factory, limits=limits or Limits(), log=log, stop=stop or threading.Event())


class StreamServer:
    """A stream server in a background thread, for in-process tests and embedding.

    ``start()`` binds (port 0 picks a free one) and returns the bound address;
    ``stop()`` ends the loop and closes the listener. The forking model forks
    the calling process, so run it as a subprocess instead.
    """

    def __init__(
        self,
        factory: SessionFactory,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = "threaded",
        limits: Limits | None = None,
        log: EventLog | None = None,
    ) -> None:
        if model not in _RUNNERS:
            raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
        self.factory, self.host, self.port, self.model = factory, host, port, model
        self.limits = limits or Limits()
        self.log = log or EventLog(model)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None

    def start(self) -> tuple[str, int]:
        """Bind, start serving in a thread, and return ``(host, port)``."""
        self._listener = bind_tcp(self.host, self.port)
        address = self._listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._run, name=f"{self.model}-server", daemon=True)
        self._thread.start()
        return address[0], address[1]

    def _run(self) -> None:
        assert self._listener is not None
        try:
            serve_stream(
                self._listener, self.factory, model=self.model, limits=self.limits, log=self.log, stop=self._stop
            )
        finally:
            self._listener.close()

    def stop(self) -> None:
        """Stop serving and wait for the loop to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> StreamServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


DatagramAnswer = Callable[[bytes], bytes | None]


def serve_datagrams(
    sock: socket.socket,
    answer: DatagramAnswer,
    *,
    log: EventLog,
    stop: threading.Event,
    max_datagram: int = 65535,
) -> None:
    """Answer each datagram with at most one datagram; nothing a peer sends stops it.

    The receive buffer holds the largest UDP payload, so no datagram is cut.
    """
    buffer = bytearray(max_datagram)
    view = memoryview(buffer)
    sock.settimeout(_POLL)
    while not stop.is_set():
        try:
            size, address = sock.recvfrom_into(buffer)
        except TimeoutError:
            continue
        except OSError as exc:  # e.g. ICMP port unreachable reported on a later recv
            log("udp-error", error=exc.strerror or type(exc).__name__)
            continue
        reply = answer(bytes(view[:size]))
        if reply is None:
            continue
        try:
            sock.sendto(reply, address)
        except OSError as exc:
            log("udp-error", peer=peer_name(address), error=exc.strerror or type(exc).__name__)
