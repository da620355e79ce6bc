"""The socket calls every model shares: accept under overload, turning away, timeouts, closing, evicting."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import threading
import time

from common.eventlog import EventLog
from services.admission import EVICTED_MESSAGE, Clock
from services.common import peer_name
from services.runners.limits import LINGER, Limits

# Errors from accept() that mean "out of resources now", not "broken": pause, retry.
OVERLOAD_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_OVERLOAD_PAUSE = 0.1


def accept(listener: socket.socket, log: EventLog, stop: threading.Event) -> tuple[socket.socket, object] | None:
    """One accept; ``None`` when nothing came (a timeout, overload), or the listener was shut to stop."""
    try:
        return listener.accept()
    except TimeoutError:
        return None
    except OSError as exc:
        if stop.is_set():  # shut for reading by the stop switch: EINVAL
            return None
        if exc.errno in OVERLOAD_ERRNOS:
            log("accept-overload", error=os.strerror(exc.errno or 0))
            time.sleep(_OVERLOAD_PAUSE)
            return None
        raise


def close_gracefully(conn: socket.socket, *, linger: float = LINGER) -> None:
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


def reject(conn: socket.socket, peer: object, limits: Limits, log: EventLog) -> None:
    """Tell a client over the cap why it is turned away, without ever blocking on it."""
    log("busy", peer=peer_name(peer), max_clients=limits.max_clients)
    with contextlib.suppress(OSError):
        conn.setblocking(False)
        conn.send(limits.busy_message)
    conn.close()


def evict(conn: socket.socket, clock: Clock) -> None:
    """Tell a connection displaced by a newcomer why, and end it under whoever serves it.

    Called from outside the thread (or in the process) that serves ``conn``: the
    line goes out with ``MSG_DONTWAIT``, which never blocks and leaves the
    socket's blocking mode alone, and ``SHUT_RDWR`` wakes the server of ``conn``
    whether it waits in ``recv`` (which returns EOF) or in ``send`` (EPIPE). It
    sees ``clock.evicted`` and closes. A victim is idle, so no reply of its own
    is being written; at worst the line lands between two of them.
    """
    with contextlib.suppress(OSError):
        conn.send(EVICTED_MESSAGE, socket.MSG_DONTWAIT)
    clock.evicted = True  # after the line: a worker that sees it closes the socket
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


def _timeval(seconds: float) -> bytes:
    whole = int(seconds)
    return struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))


def set_kernel_timeouts(conn: socket.socket, seconds: float) -> None:
    """Make ``recv`` and ``send`` on a blocking socket give up after ``seconds`` (``BlockingIOError``).

    The kernel enforces these (SO_RCVTIMEO/SO_SNDTIMEO), so each call is one
    system call. A Python socket timeout (``settimeout``) instead puts a
    ``poll()`` before every ``recv`` and ``send``: twice the system calls and
    twice the GIL hand-offs, and with a hundred threads the hand-offs cost more
    than the work (scripts/bench measured ``threaded`` at 0.26x the stdlib server).
    """
    conn.settimeout(None)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(seconds))
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(seconds))


def set_receive_timeout(conn: socket.socket, seconds: float) -> None:
    """Change only ``recv``'s kernel timeout (a line's deadline is nearer than the idle timeout).

    At least a millisecond: a zero timeval means "wait for ever".
    """
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(max(seconds, 0.001)))
