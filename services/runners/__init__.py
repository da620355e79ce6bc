"""The concurrency models, each able to serve any stream ``Session``.

The course shows one server five ways: iterative (one client at a time),
thread-per-connection, fork-per-connection, a ``select`` loop and asyncio. Here
each model is one function with the same signature, driving the same sans-IO
session class (``blocking``, ``forking``, ``selecting``, ``streams``), and each
one hardens what the slides left out:

* one admission policy (``services.admission``): a cap on clients and a share
  per source address; a full server closes its longest-idle connection for a
  newcomer, and only when everyone is busy answers the busy line,
* an idle timeout, and a deadline for each line, so a client trickling bytes
  cannot hold a connection (slowloris),
* every socket closed in ``finally``; accept errors that mean overload
  (EMFILE, ENFILE, ENOBUFS, ENOMEM) logged and retried after a pause,
* bounded output buffers in the event-loop models (a peer that stops reading
  stops being read from, instead of growing our memory).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from common.eventlog import EventLog
from protocols.session import SessionFactory
from services.common import bind_tcp, peer_name
from services.runners.blocking import handle_connection, serve_iterative, serve_threaded
from services.runners.forking import serve_forking
from services.runners.limits import DEFAULT_LINE_DEADLINE, Limits
from services.runners.selecting import serve_selectors
from services.runners.sockets import close_gracefully, set_kernel_timeouts
from services.runners.stopping import StopSwitch, shut_for_reading
from services.runners.streams import cap_transport_reads, serve_asyncio

__all__ = [
    "DEFAULT_LINE_DEADLINE",
    "MODELS",
    "DatagramAnswer",
    "Limits",
    "StopSwitch",
    "StreamServer",
    "cap_transport_reads",
    "close_gracefully",
    "handle_connection",
    "serve_asyncio",
    "serve_datagrams",
    "serve_forking",
    "serve_iterative",
    "serve_selectors",
    "serve_stream",
    "serve_threaded",
    "set_kernel_timeouts",
]

MODELS = ("iterative", "threaded", "forking", "selectors", "asyncio")

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
    stop: StopSwitch | None = None,
) -> None:
    """Serve ``factory``'s sessions on ``listener`` with one concurrency model.

    Blocks until ``stop`` is set (or ``Stopped`` is raised by a signal handler).
    """
    try:
        runner = _RUNNERS[model]
    except KeyError:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}") from None
    runner(listener, factory, limits=limits or Limits(), log=log, stop=stop or StopSwitch())


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
        self._stop = StopSwitch()
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
    stop: StopSwitch,
    max_datagram: int = 65535,
) -> None:
    """Answer each datagram with at most one datagram; nothing a peer sends stops it.

    The receive buffer holds the largest UDP payload, so no datagram is cut. It
    blocks with no timeout; the stop switch wakes it by shutting the socket.
    """
    buffer = bytearray(max_datagram)
    view = memoryview(buffer)
    sock.settimeout(None)
    stop.wake_on_stop(shut_for_reading(sock))
    while not stop.is_set():
        try:
            size, address = sock.recvfrom_into(buffer)
        except OSError as exc:  # e.g. ICMP port unreachable reported on a later recv
            log("udp-error", error=exc.strerror or type(exc).__name__)
            continue
        if address is None:  # woken by the stop switch, not a datagram
            continue
        reply = answer(bytes(view[:size]))
        if reply is None:
            continue
        try:
            sock.sendto(reply, address)
        except OSError as exc:
            log("udp-error", peer=peer_name(address), error=exc.strerror or type(exc).__name__)
