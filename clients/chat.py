"""``python -m clients.chat``: talk in the chat room, and see the room while you type.

The course's client alternated ``input()`` and one ``recv``, so it showed what
others said only after you spoke. Here a reader thread prints every incoming
line as it arrives while the main thread sends what you type. With stdin a pipe
it sends every line, waits until the room has been quiet for ``--linger``
seconds, then says ``/quit``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from clients.common import ClientError, client_parser, connect, run_client
from protocols.chat import PORT
from protocols.errors import LineTooLong
from protocols.framing import LineBuffer

MAX_INCOMING_LINE = 1 << 20  # /who in a crowded room is one long line
_POLL = 0.2  # how often the stdin loop looks whether the server has closed
_SEND_TIMEOUT = 10.0


class RoomReader:
    """Prints the server's lines as they come; remembers when the last one came."""

    def __init__(self, sock: socket.socket, out: TextIO) -> None:
        self._sock = sock
        self._out = out
        self.closed = threading.Event()
        self.last_heard = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="chat-reader", daemon=True)

    def start(self) -> None:
        """Start printing in the background."""
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait for the reader to finish (after the server closed or the socket was shut down)."""
        self._thread.join(timeout)

    def _run(self) -> None:
        lines = LineBuffer(max_line=MAX_INCOMING_LINE)
        try:
            while True:
                try:
                    data = self._sock.recv(65536)
                except TimeoutError:
                    continue  # a quiet room, not an error
                except OSError:
                    break
                if not data:
                    break
                self.last_heard = time.monotonic()
                lines.feed(data)
                self._print_lines(lines)
        finally:
            self.closed.set()

    def _print_lines(self, lines: LineBuffer) -> None:
        while True:
            try:
                line = lines.next_line()
            except LineTooLong as exc:
                self._show(f"(client: skipped a {exc})")
                continue
            if line is None:
                return
            self._show(line.decode("utf-8", errors="replace"))

    def _show(self, text: str) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            self._out.write(text + "\n")
            self._out.flush()


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m clients.chat``."""
    parser = client_parser(
        "chat",
        "Join the chat room: incoming lines are shown as they arrive; type to talk, /quit to leave. "
        "With stdin a pipe, sends every line, waits for --linger seconds of quiet, then quits.",
        host="chat",
        port=PORT,
    )
    parser.add_argument("--nick", help="nick to take on arrival (1-32 letters, digits, _ or -)")
    parser.add_argument(
        "--linger",
        type=float,
        default=1.0,
        help="after stdin ends, seconds of quiet to wait for replies before /quit (default: %(default)s)",
    )
    return parser


def pump_stdin(send: Callable[[bytes], None], reader: RoomReader, stdin_fd: int) -> bool:
    """Send stdin's lines until stdin ends; ``False`` if the server closed first.

    Reads the raw descriptor with ``select``, never ``sys.stdin``'s buffer,
    so a line typed is sent at once and a closed server is noticed while waiting.
    """
    lines = LineBuffer(max_line=MAX_INCOMING_LINE)
    while not reader.closed.is_set():
        readable, _, _ = select.select([stdin_fd], [], [], _POLL)
        if not readable:
            continue
        data = os.read(stdin_fd, 65536)
        if not data and lines.pending:
            lines.feed(b"\n")  # a last line without its newline is still sent
        lines.feed(data)
        for line in lines.lines():
            send(line)
        if not data:
            return True
    return False


def wait_for_quiet(reader: RoomReader, linger: float) -> None:
    """Wait until nothing has arrived for ``linger`` seconds (or the server closed)."""
    while not reader.closed.is_set():
        quiet_for = time.monotonic() - reader.last_heard
        if quiet_for >= linger:
            return
        reader.closed.wait(linger - quiet_for)


def chat(sock: socket.socket, args: argparse.Namespace, *, stdin_fd: int, out: TextIO) -> int:
    """One visit to the room: nick, talk, quit; the exit code.

    Raises ``ClientError`` when the server ends the visit (it closed first, or the connection broke).
    """
    reader = RoomReader(sock, out)
    quit_sent = False

    def send(line: bytes) -> None:
        nonlocal quit_sent
        quit_sent = quit_sent or line.strip().lower() == b"/quit"
        sock.sendall(line + b"\n")

    reader.start()
    try:
        if args.nick:
            send(f"/nick {args.nick}".encode())
        if pump_stdin(send, reader, stdin_fd):
            reader.last_heard = max(reader.last_heard, time.monotonic())  # the quiet counts from our last line
            wait_for_quiet(reader, args.linger)
            if not reader.closed.is_set():
                send(b"/quit")
                reader.closed.wait(args.timeout)
        reader.join(timeout=1.0)  # print whatever came with the close (e.g. "* bye, alice")
        if not quit_sent:
            raise ClientError("the chat server closed the connection")
        return 0
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            send(b"/quit")
        raise
    except OSError as exc:
        raise ClientError(f"the connection to the chat server broke ({exc})") from exc
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes the reader's recv
        reader.join(timeout=1.0)
        sock.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Visit the chat room; ``ClientError`` when the server cannot be reached or ends the visit."""
    args = build_parser().parse_args(argv)
    sock = connect(args.host, args.port, timeout=args.timeout)
    sock.settimeout(_SEND_TIMEOUT)  # sends may wait this long; the reader treats a timeout as quiet
    return chat(sock, args, stdin_fd=sys.stdin.fileno(), out=sys.stdout)


if __name__ == "__main__":
    sys.exit(run_client(main))
