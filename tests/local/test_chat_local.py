"""The chat server in-process on 127.0.0.1, port 0, with real sockets.

Every socket has a timeout and every wait has a deadline: nothing here can hang,
and nothing sleeps to wait for readiness (a server is ready when it greets).
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from common.eventlog import EventLog
from protocols.chat import PRESENCE_BURST
from protocols.framing import LineBuffer
from services.chat import PRESENCE_WINDOW, ChatServer
from tests.local.conftest import StartServer

ROOT = Path(__file__).resolve().parents[2]
GREETING_LINES = 4
TIMEOUT = 5.0


class LineClient:
    """A test's chat member: a socket with a timeout, read a line at a time."""

    def __init__(self, address: tuple[str, int], *, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect, so the TCP window is small from the start
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(address)
        self._lines = LineBuffer(max_line=1 << 20)
        self.eof = False
        self.guest = ""  # the nick the room gave on arrival

    def send(self, data: str | bytes) -> None:
        self.sock.sendall(data.encode() + b"\n" if isinstance(data, str) else data)

    def line(self) -> str:
        """The next line; ``AssertionError`` at EOF, ``TimeoutError`` after ``TIMEOUT`` of silence."""
        while (line := self._lines.next_line()) is None:
            data = self.sock.recv(65536)
            if not data:
                self.eof = True
                raise AssertionError("the server closed the connection")
            self._lines.feed(data)
        return line.decode()

    def greeting(self) -> list[str]:
        lines = [self.line() for _ in range(GREETING_LINES)]
        assert lines[0] == "Welcome to my chat room!"
        self.guest = lines[1].removeprefix("* you are ").split(";")[0]
        return lines

    def until(self, wanted: str) -> list[str]:
        """Read up to and including ``wanted``; return the lines before it."""
        deadline = time.monotonic() + TIMEOUT
        skipped: list[str] = []
        while (line := self.line()) != wanted:
            skipped.append(line)
            assert time.monotonic() < deadline, f"no {wanted!r} within {TIMEOUT} s; got {skipped[-5:]}"
        return skipped

    def rest(self) -> list[str]:
        """Every line until the server closes (EOF or reset), within ``TIMEOUT``."""
        deadline = time.monotonic() + TIMEOUT
        out: list[str] = []
        while time.monotonic() < deadline:
            try:
                out.append(self.line())
            except AssertionError:
                return out
            except ConnectionResetError:
                self.eof = True
                return out
        raise AssertionError(f"still open after {TIMEOUT} s; read {out[-5:]}")

    def close(self) -> None:
        self.sock.close()


@dataclass
class Running:
    server: ChatServer
    address: tuple[str, int]
    log: io.StringIO
    clients: list[LineClient]

    def connect(self, *, rcvbuf: int | None = None) -> LineClient:
        client = LineClient(self.address, rcvbuf=rcvbuf)
        self.clients.append(client)
        return client

    def member(self, nick: str) -> LineClient:
        """A member who has read the greeting and taken ``nick``."""
        client = self.connect()
        client.greeting()
        client.send(f"/nick {nick}")
        assert client.line() == f"* you are now {nick}"
        return client


class StartChat(Protocol):
    """The ``start_chat`` fixture: a chat server on 127.0.0.1, port 0, with these options."""

    def __call__(
        self, *, max_clients: int = ..., idle_timeout: float = ..., queue_limit: int = ..., evict_grace: float = ...
    ) -> Running: ...


@pytest.fixture
def start_chat() -> Iterator[StartChat]:
    """Start chat servers (options as ``ChatServer``'s); all are stopped at the end."""
    running: list[Running] = []

    def start(
        *, max_clients: int = 1000, idle_timeout: float = 600.0, queue_limit: int = 65536, evict_grace: float = 1.0
    ) -> Running:
        log = io.StringIO()
        server = ChatServer(
            host="127.0.0.1",
            port=0,
            max_clients=max_clients,
            idle_timeout=idle_timeout,
            queue_limit=queue_limit,
            evict_grace=evict_grace,
            log=EventLog("chat", stream=log, log_loopback=True),
        )
        run = Running(server, server.start(), log, [])
        running.append(run)
        return run

    yield start
    for run in running:
        for client in run.clients:
            client.close()
        run.server.stop()


def test_three_members_talk_whisper_list_and_leave(start_chat: StartChat) -> None:
    room = start_chat()
    alice = room.member("alice")
    bob = room.member("bob")
    assert alice.until("* bob joined") == []  # announced once it chose a nick, under that nick
    carol = room.member("carol")
    for member in (alice, bob):
        assert member.until("* carol joined") == []

    alice.send("hello, room")
    assert bob.until("<alice> hello, room") == []
    assert carol.until("<alice> hello, room") == []

    bob.send("/msg carol just between us")
    assert bob.line() == "-> *carol* just between us"
    assert carol.line() == "*bob* just between us"

    carol.send("/who")
    assert carol.line() == "* here (3): alice, bob, carol"

    bob.send("/quit")
    assert bob.rest() == ["* bye, bob"]
    assert alice.line() == "* bob left (quit)"  # and not bob's whisper: alice got nothing private
    # carol reads what is waiting first: closing with unread input makes the kernel send RST,
    # which the room rightly reports as "connection reset" instead.
    assert carol.line() == "* bob left (quit)"
    carol.close()
    assert alice.line() == "* carol left (disconnected)"
    assert " leave " in room.log.getvalue()


def test_a_reader_that_never_reads_is_dropped_and_the_room_goes_on(start_chat: StartChat) -> None:
    room = start_chat(queue_limit=16 * 1024)
    alice = room.member("alice")
    bob = room.member("bob")
    slow = room.connect(rcvbuf=4096)  # reads nothing, ever, from here on
    slow.send("/nick slow")
    alice.until("* slow joined")
    bob.until("* slow joined")

    dropped = threading.Event()
    bob_lines: list[str] = []
    # Alice floods no faster than bob reads, two lines ahead at most: bob keeps up as a live client would,
    # even on a machine so loaded that his reading thread falls behind (16 KiB are four of these lines).
    credit = threading.Semaphore(2)

    def bob_reads() -> None:
        while not dropped.is_set():
            line = bob.line()
            bob_lines.append(line)
            credit.release()
            if line == "* slow dropped (too slow)":
                dropped.set()

    reader = threading.Thread(target=bob_reads, daemon=True)
    reader.start()
    said = "<alice> " + "x" * 4000
    deadline = time.monotonic() + 20
    sent = 0
    while not dropped.is_set():
        assert reader.is_alive() or dropped.is_set(), f"bob stopped reading after {len(bob_lines)} lines"
        assert time.monotonic() < deadline, f"slow reader not dropped after {sent} lines"
        if not credit.acquire(timeout=0.1):  # bob has not read the last lines yet (or the drop came meanwhile)
            continue
        if dropped.is_set():
            break
        alice.send(said.removeprefix("<alice> "))
        sent += 1
    reader.join(TIMEOUT)
    assert not reader.is_alive()
    assert alice.until("* slow dropped (too slow)") == []

    alice.send("still here?")
    seen = bob_lines + bob.until("<alice> still here?")
    assert seen.count(said) == sent  # the reader who kept up lost nothing
    assert set(seen) == {said, "* slow dropped (too slow)"}
    slow.rest()
    assert slow.eof
    assert " drop " in room.log.getvalue()


def test_an_over_long_line_is_an_error_for_its_sender_only(start_chat: StartChat) -> None:
    room = start_chat()
    alice = room.member("alice")
    bob = room.member("bob")
    alice.until("* bob joined")
    alice.send(b"y" * 5000 + b"\n")
    assert alice.line() == "error: line longer than 4096 bytes"
    alice.send("and now a normal line")
    assert bob.line() == "<alice> and now a normal line"  # nothing of the long line came first
    bob.send("got it")
    assert alice.line() == "<bob> got it"


def test_garbage_is_answered_to_its_sender_alone(start_chat: StartChat) -> None:
    room = start_chat()
    alice = room.member("alice")
    bob = room.member("bob")
    alice.until("* bob joined")
    bob.send(b"\xff\xfe\x00\n" * 50 + b"\x1b[2J\x07\n")
    assert [bob.line() for _ in range(50)] == ["error: invalid UTF-8 (send text encoded as UTF-8)"] * 50
    assert alice.line() == "<bob> [2J"  # the escape sequence lost its ESC: it cannot repaint alice's screen
    bob.send("fine")
    assert alice.line() == "<bob> fine"  # and none of the invalid lines reached alice


def test_a_reset_connection_is_a_departure(start_chat: StartChat) -> None:
    room = start_chat()
    alice = room.member("alice")
    ghost = room.member("ghost")
    alice.until("* ghost joined")
    ghost.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ghost.close()  # RST, no FIN
    assert alice.line() == "* ghost left (connection reset)"
    alice.send("/who")
    assert alice.line() == "* here (1): alice"


def test_over_the_cap_an_error_line_then_close(start_chat: StartChat) -> None:
    # A full room seats a newcomer in place of a member idle past the grace; a minute's grace: nobody is.
    room = start_chat(max_clients=2, evict_grace=60.0)
    first = room.member("one")
    room.member("two")
    third = room.connect()
    assert third.rest() == ["error: server full (2 clients), try again later"]
    first.send("/quit")
    first.rest()
    deadline = time.monotonic() + TIMEOUT
    while True:  # the departure is processed asynchronously: retry until a seat is free
        again = room.connect()
        if again.line().startswith("Welcome"):
            break
        assert time.monotonic() < deadline, "no seat after a member left"
    assert " busy " in room.log.getvalue()


def test_idle_members_are_closed_with_a_notice(start_chat: StartChat) -> None:
    room = start_chat(idle_timeout=0.3)
    alice = room.connect()
    alice.greeting()
    bob = room.connect()
    bob.greeting()
    # Neither said a word within ANNOUNCE_GRACE: neither was announced, nor is its departure news.
    assert alice.until("* closing: nothing received for 0.3 s") == []
    assert alice.rest() == []
    assert bob.until("* closing: nothing received for 0.3 s") == []


def test_stop_tells_everyone_and_closes(start_chat: StartChat) -> None:
    room = start_chat()
    alice = room.member("alice")
    started = time.monotonic()
    room.server.stop()
    assert alice.rest() == ["* server shutting down"]
    assert time.monotonic() - started < 1.0
    assert room.log.getvalue().rstrip().endswith("stopped")


def _python(*args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_sigterm_closes_everyone_and_exits_0_within_a_second(server: StartServer) -> None:
    chat = server("services.chat")
    member = LineClient(("127.0.0.1", chat.tcp))
    try:
        member.greeting()
        assert chat.terminate(within=1.0) < 1.0
        assert member.rest() == ["* server shutting down"]
    finally:
        member.close()


def test_the_chat_client_from_a_pipe(start_chat: StartChat) -> None:
    room = start_chat()
    alice = room.member("alice")
    host, port = room.address
    args = ["--host", host, "--port", str(port), "--nick", "bob", "--linger", "0.3"]
    with _python("-m", "clients.chat", *args, stdin=subprocess.PIPE) as proc:
        out, err = proc.communicate(b"hello from a pipe\n/who\n", timeout=15)
    assert proc.returncode == 0, err
    assert alice.until("<bob> hello from a pipe") == ["* bob joined"]
    text = out.decode()
    assert "* here (2): alice, bob" in text
    assert text.rstrip().endswith("* bye, bob")
    assert alice.line() == "* bob left (quit)"


def test_the_chat_client_says_when_the_server_is_unreachable() -> None:
    with socket.socket() as placeholder:  # a port that was free a moment ago and has no listener
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    with _python("-m", "clients.chat", "--host", "127.0.0.1", "--port", str(port), stdin=subprocess.DEVNULL) as proc:
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 1
    assert err.decode() == f"error: 127.0.0.1:{port} refused the connection; is the server running?\n"


def _churn(port: int, count: int) -> None:
    """``count`` connections that close at once: a third reset (SO_LINGER 0), a third say a line, a third just go."""
    for i in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            if i % 3 == 0:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif i % 3 == 1:
                sock.sendall(b"hi\n")


def test_churn_takes_no_seats_makes_no_tracebacks_and_little_traffic(server: StartServer) -> None:
    # 2,000 connects and closes in about a second. Before: the room counted up to 1,000 members
    # that had gone, turned newcomers away as full, logged ~300 ENOTCONN tracebacks, and sent the
    # idle member ~2,600 join and leave lines. The bound below: PRESENCE_BURST lines told one by
    # one and one summary line per PRESENCE_WINDOW, for every window the churn and the wait span.
    chat = server("services.chat", "--max-clients", "50")
    clients: list[LineClient] = []
    try:
        idle = LineClient(("127.0.0.1", chat.tcp))
        clients.append(idle)
        idle.greeting()
        heard: list[str] = []
        last = "<{}> hello after the storm"
        done = threading.Event()

        def listen() -> None:  # the idle member keeps reading, or it would be dropped as too slow
            idle.sock.settimeout(0.1)
            while not done.is_set() and not (heard and heard[-1].endswith("> hello after the storm")):
                with contextlib.suppress(TimeoutError):
                    heard.append(idle.line())

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        began = time.monotonic()
        _churn(chat.tcp, 2000)

        newcomer = LineClient(("127.0.0.1", chat.tcp))
        clients.append(newcomer)
        newcomer.greeting()  # a seat, not "server full"
        deadline = time.monotonic() + TIMEOUT
        while True:  # the churners still in flight leave as the server reads their EOF
            newcomer.send("/who")
            who = [newcomer.line()]
            while not who[-1].startswith("* here ("):
                who.append(newcomer.line())
            if who[-1] == f"* here (2): {idle.guest}, {newcomer.guest}":
                break
            assert time.monotonic() < deadline, f"members never came back to 2: {who[-1][:80]}"
        newcomer.send("hello after the storm")
        listener.join(TIMEOUT)
        done.set()
        assert heard[-1] == last.format(newcomer.guest), heard[-3:]
        windows = (time.monotonic() - began) / PRESENCE_WINDOW + 2
        presence = [line for line in heard if line.startswith("* ")]
        assert len(presence) <= (PRESENCE_BURST + 1) * windows, presence[:10]
        assert chat.terminate(within=1.0) < 1.0
        log = chat.log_text()
        assert "Traceback" not in log and "Errno" not in log
        assert " busy " not in log  # 50 seats were always enough: nobody stayed

    finally:
        for client in clients:
            client.close()


def test_health_checks_are_not_announced(start_chat: StartChat) -> None:
    room = start_chat()
    alice = room.member("alice")
    for _ in range(10):  # clients/healthcheck.sh chat 5000/tcp: connect, half-close, read the greeting
        with socket.create_connection(room.address, timeout=TIMEOUT) as probe:
            probe.shutdown(socket.SHUT_WR)
            assert probe.recv(4096).startswith(b"Welcome to my chat room!")
    room.member("bob")
    assert alice.line() == "* bob joined"  # the first line alice reads: the ten probes made none
