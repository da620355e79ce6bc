"""Sockets for checks: every wait bounded by the check's deadline, every exchange in its transcript.

A server's misbehaviour (it closed, reset, went silent, stopped reading) comes
out as ``CheckFailed`` with a sentence saying so, never as a raw ``OSError``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

from clients.check.core import CheckFailed, Context, size
from protocols.errors import LineTooLong
from protocols.framing import LineBuffer

MAX_REPLY_LINE = 1 << 20  # a reply to a long line can be long; past this the reply itself is wrong
READ_SIZE = 1 << 16
SEND_PIECE = 1 << 16  # sendall's timeout covers its whole call (3.5+): pieces keep it per piece


class Broken(CheckFailed):
    """The connection was refused, reset or broken; ``reset`` when the server sent RST."""

    def __init__(self, detail: str, *, reset: bool = False) -> None:
        super().__init__(detail)
        self.reset = reset


class Silent(CheckFailed):
    """Nothing (or nothing whole) came within the time allowed."""


def _broken(exc: OSError, doing: str) -> Broken:
    """What an ``OSError`` on a connection means, in words."""
    if isinstance(exc, ConnectionRefusedError):
        return Broken(f"connection refused while {doing}: is the server still running?")
    if isinstance(exc, ConnectionResetError):
        return Broken(f"the server reset the connection (RST) while {doing}", reset=True)
    if isinstance(exc, BrokenPipeError):
        return Broken(f"the server had closed the connection while {doing}")
    return Broken(f"the connection broke while {doing}: {exc.strerror or exc}")


class Stream:
    """One TCP connection to the target, seen through a check's context."""

    def __init__(self, context: Context, *, who: str = "", rcvbuf: int | None = None, mss: int | None = None) -> None:
        self.context = context
        self.who = f"{who} " if who else ""
        self.lines = LineBuffer(max_line=MAX_REPLY_LINE)
        target = context.target
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
            family, _, _, _, address = infos[0]
        except socket.gaierror as exc:
            raise CheckFailed(f"cannot resolve {target.host!r} ({exc.strerror})") from exc
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:  # before connect: the window we advertise is small from the start
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if mss is not None and hasattr(socket, "TCP_MAXSEG"):
                with contextlib.suppress(OSError):  # a hint: where the system refuses it, the check still runs
                    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
            self.sock.settimeout(context.wait_for())
            self.sock.connect(address)
        except TimeoutError as exc:
            self.sock.close()
            raise CheckFailed(f"{who or 'we'} could not connect within {context.timeout:g} s") from exc
        except OSError as exc:
            self.sock.close()
            raise _broken(exc, "connecting") from exc

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def abort(self) -> None:
        """Shut the connection both ways now: a thread blocked on it wakes up."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def note(self, text: str) -> None:
        self.context.transcript.note(text, who=self.who.strip())

    # -- sending -------------------------------------------------------------

    def send(self, data: bytes, *, record: bool = True) -> None:
        """Send all of ``data``; ``CheckFailed`` if the server stops taking it within the timeout."""
        if record:
            self.context.transcript.sent(data, who=self.who)
        view = memoryview(data)
        for start in range(0, len(data), SEND_PIECE):
            try:
                self.sock.settimeout(self.context.wait_for())
                self.sock.sendall(view[start : start + SEND_PIECE])
            except TimeoutError as exc:
                raise CheckFailed(
                    f"the server stopped reading: {size(start)} of {size(len(data))} sent, "
                    f"then nothing more taken for {self.context.timeout:g} s"
                ) from exc
            except OSError as exc:
                raise _broken(exc, f"we were sending ({size(start)} of {size(len(data))} sent)") from exc

    def send_in_background(self, data: bytes, *, then_close_write: bool = True) -> Sender:
        """Send ``data`` from a thread (so we can read at the same time), then half-close."""
        self.context.transcript.sent(data, who=self.who)
        return Sender(self, data, then_close_write=then_close_write)

    def close_write(self) -> None:
        """Half-close: tell the server that was everything (TCP FIN)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        self.note("> FIN (we are done sending)")

    # -- receiving -----------------------------------------------------------

    def recv(self, limit: float | None, doing: str, read_size: int = READ_SIZE) -> bytes:
        """One ``recv`` waiting at most ``limit`` s (default: the timeout); ``TimeoutError`` when nothing came."""
        wait = self.context.wait_for(limit)
        if wait <= 0:
            raise TimeoutError  # settimeout(0) would make the socket non-blocking, not wait no time
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(read_size)
        except TimeoutError:
            raise  # an OSError too, but not a broken connection
        except OSError as exc:
            raise _broken(exc, doing) from exc

    def line(self, *, expecting: str, record: bool = True) -> bytes:
        """The next line (without its terminator); ``CheckFailed`` at EOF or after a timeout."""
        line = self.line_or_eof(expecting=expecting, record=record)
        if line is None:
            raise CheckFailed(f"the server closed the connection; we were waiting for {expecting}")
        return line

    def line_or_eof(self, *, expecting: str, record: bool = True) -> bytes | None:
        """The next line, or ``None`` at EOF; ``Silent`` when nothing whole comes within the timeout."""
        waited = self.context.window()
        end = time.monotonic() + waited
        while True:
            try:
                line = self.lines.next_line()
            except LineTooLong as exc:
                raise CheckFailed(f"a reply line longer than {size(exc.limit)}") from exc
            if line is not None:
                if record:
                    self.context.transcript.line(line, who=self.who)
                return line
            if self.lines.eof:
                self.note("< EOF (the server closed)")
                return None
            try:
                data = self.recv(max(0.0, end - time.monotonic()), f"waiting for {expecting}")
            except TimeoutError as exc:
                pending = f" ({self.lines.pending} B of an unfinished line)" if self.lines.pending else ""
                raise Silent(f"no {expecting} within {self.context.seconds(waited)}{pending}") from exc
            self.lines.feed(data)

    def maybe_line(self, within: float) -> bytes | None:
        """A line if one comes within ``within`` s (a quiet window), else ``None`` (EOF included)."""
        end = time.monotonic() + within
        while True:
            line = self.lines.next_line()
            if line is not None:
                self.context.transcript.line(line, who=self.who)
                return line
            left = end - time.monotonic()
            if self.lines.eof or left <= 0:
                return None
            try:
                self.lines.feed(self.recv(left, "in a quiet window"))
            except TimeoutError:
                return None

    def eof(self, *, after: str) -> None:
        """Expect the server to close (EOF, or a reset after its last words) within the timeout, sending nothing."""
        waited = self.context.window()
        end = time.monotonic() + waited
        while not self.lines.eof:
            line = self.lines.next_line()
            if line is not None:
                self.context.transcript.line(line, who=self.who)
                raise CheckFailed(f"more after {after}, where the server should have closed")
            try:
                data = self.recv(max(0.0, end - time.monotonic()), f"waiting for the close after {after}")
            except TimeoutError as exc:
                raise Silent(
                    f"the server did not close the connection within {self.context.seconds(waited)} after {after}",
                    expected="the server closes the connection",
                ) from exc
            except Broken as exc:  # a reset after the last line: closed, if rudely
                self.note(f"< {exc.detail}")
                return
            self.lines.feed(data)
        self.note("< EOF (the server closed)")

    def read_exactly(self, count: int, *, expecting: str) -> bytes:
        """``count`` bytes (raw, not lines); ``CheckFailed`` if fewer come before EOF or a timeout."""
        parts: list[bytes] = []
        got = 0
        while got < count:
            try:
                data = self.recv(None, f"reading {expecting}", min(READ_SIZE, count - got))
            except TimeoutError as exc:
                raise Silent(
                    f"{size(got)} of {expecting} came back, then nothing for {self.context.timeout:g} s"
                ) from exc
            if not data:
                raise CheckFailed(f"the server closed the connection after {size(got)} of {expecting}")
            parts.append(data)
            got += len(data)
        data = b"".join(parts)
        self.context.transcript.received(data, who=self.who)
        return data

    def read_to_eof(self, *, limit: int, read_size: int = 1 << 20, pace: float = 0.0) -> bytes:
        """Everything until the server closes (at most ``limit`` bytes); ``pace`` s between reads for a slow reader.

        ``CheckFailed`` if the server goes quiet for a timeout, or resets the connection.
        """
        parts: list[bytes] = []
        got = reads = 0
        try:
            while got <= limit:
                data = self.recv(None, "reading the reply", read_size)
                if not data:
                    break
                parts.append(data)
                got += len(data)
                reads += 1
                if pace:
                    self.context.pause(pace)
        except TimeoutError as exc:
            self._summarise(parts, got, reads)
            raise Silent(f"{size(got)} came back, then nothing for {self.context.timeout:g} s") from exc
        except Broken as exc:
            self._summarise(parts, got, reads)
            raise Broken(f"{exc.detail}, after {size(got)} came back", reset=exc.reset) from exc
        except CheckFailed:
            self._summarise(parts, got, reads)
            raise
        self._summarise(parts, got, reads)
        self.note("< EOF (the server closed)")
        return b"".join(parts)

    def _summarise(self, parts: list[bytes], got: int, reads: int) -> None:
        if parts:
            first = parts[0]
            self.context.transcript.received(first, who=self.who)
            if reads > 1:
                self.note(f"< ... {reads} reads in all, {size(got)}")


class Sender:
    """``Stream.send`` in a thread: its error, if any, is kept for ``join``."""

    def __init__(self, stream: Stream, data: bytes, *, then_close_write: bool) -> None:
        self.error: CheckFailed | None = None
        self._stream = stream
        self._data = data
        self._close = then_close_write
        self._thread = threading.Thread(target=self._run, name="check-sender", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._stream.send(self._data, record=False)
            if self._close:
                self._stream.sock.shutdown(socket.SHUT_WR)
        except CheckFailed as exc:
            self.error = exc
        except OSError as exc:
            self.error = _broken(exc, "we were sending")

    def join(self) -> CheckFailed | None:
        """Wait (within the check's time) for the sender; its error, if any."""
        self._thread.join(max(0.0, self._stream.context.remaining()))
        if self._thread.is_alive():
            return CheckFailed("our sender is still blocked: the server stopped reading what we send")
        return self.error


class Datagrams:
    """A connected UDP socket to the target's UDP port: only the server's replies reach it."""

    def __init__(self, context: Context) -> None:
        self.context = context
        target = context.target
        self.port = target.udp
        try:
            family, _, _, _, address = socket.getaddrinfo(target.host, self.port, type=socket.SOCK_DGRAM)[0]
        except socket.gaierror as exc:
            raise CheckFailed(f"cannot resolve {target.host!r} ({exc.strerror})") from exc
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.connect(address)

    def __enter__(self) -> Datagrams:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.sock.close()

    def send(self, data: bytes, *, record: bool = True) -> None:
        if record:
            self.context.transcript.sent(data)
        try:
            self.sock.send(data)
        except OSError as exc:
            raise self._unreachable(exc) from exc

    def receive(self, *, expecting: str) -> bytes:
        """The next datagram from the server; ``Silent`` when none comes in time."""
        self.sock.settimeout(self.context.wait_for())
        try:
            data = self.sock.recv(65535)
        except TimeoutError as exc:
            raise Silent(
                f"no datagram back within {self.sock.gettimeout():g} s; we were waiting for {expecting}"
            ) from exc
        except OSError as exc:
            raise self._unreachable(exc) from exc
        self.context.transcript.received(data)
        return data

    def quiet(self, seconds: float) -> list[bytes]:
        """Every datagram that arrives within ``seconds`` (a window in which none should)."""
        end = time.monotonic() + seconds
        extra: list[bytes] = []
        while (left := min(end - time.monotonic(), self.context.remaining())) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                break
            except OSError as exc:
                raise self._unreachable(exc) from exc
            self.context.transcript.received(data)
            extra.append(data)
        return extra

    def _unreachable(self, exc: OSError) -> Broken:
        if isinstance(exc, ConnectionRefusedError):  # ICMP port unreachable, reported on a later call
            return Broken(f"nothing listens on UDP port {self.port} (ICMP port unreachable)")
        return Broken(f"UDP to port {self.port} failed: {exc.strerror or exc}")
