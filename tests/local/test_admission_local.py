"""Slowloris and full servers on 127.0.0.1: every concurrency model, and chat, admit by one policy.

The servers run as real processes with small limits (``services.admission`` says what the limits mean).
The grace is the servers' own (``DEFAULT_GRACE``, 1 s): where a test lets time pass, it is that rule
being waited out, paced like the attack it plays, never a stand-in for a readiness check.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from common.waiting import wait_until
from protocols.chat import full_message
from protocols.framing import LineBuffer
from services.admission import DEFAULT_GRACE, EVICTED_MESSAGE, deadline_message
from services.upper import BUSY
from tests.local.conftest import ServerProcess, StartServer

CONCURRENT = ["threaded", "forking", "selectors", "asyncio", "chat"]
TRICKLE = 0.3  # seconds between the bytes of a slowloris connection
TALK = 0.2  # seconds between the lines of a busy client
TIMEOUT = 5.0
EVICTED = EVICTED_MESSAGE.decode().rstrip("\n")
CHAT_GREETING_LINES = 4


def start(server: StartServer, kind: str, *args: str) -> ServerProcess:
    """The line server with model ``kind``, or chat, with these options."""
    if kind == "chat":
        return server("services.chat", *args)
    return server("services.upper", "--model", kind, *args)


def busy_line(kind: str, max_clients: int) -> str:
    return (full_message(max_clients) if kind == "chat" else BUSY).decode().rstrip("\n")


class Client:
    """One connection from ``source`` (any 127.x address is this host), read a line at a time."""

    def __init__(self, port: int, *, source: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", port))
        self._lines = LineBuffer(max_line=1 << 16)
        self.seen: list[str] = []
        self.closed = False

    def line(self) -> str | None:
        """The next line, ``None`` once the server has closed (EOF or reset)."""
        while (line := self._lines.next_line()) is None:
            if self.closed or not self._receive(block=True):
                return None
        self.seen.append(line.decode())
        return self.seen[-1]

    def rest(self) -> list[str]:
        """Every line until the server closes."""
        lines = []
        while (line := self.line()) is not None:
            lines.append(line)
        return lines

    def poll_closed(self) -> bool:
        """Read what has come without waiting; whether the server has closed."""
        while not self.closed and self._receive(block=False):
            pass
        return self.closed

    def buffered(self) -> list[str]:
        """The whole lines read so far and not yet returned."""
        return [line.decode() for line in self._lines.lines()]

    def _receive(self, *, block: bool) -> bool:
        # Not MSG_DONTWAIT: on a socket with a timeout, Python waits for data before any recv.
        self.sock.settimeout(TIMEOUT if block else 0.0)
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return False
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return False
        self._lines.feed(data)
        return True

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


def greet(kind: str, client: Client) -> None:
    """Read what the server says on arrival (chat's greeting; the line server says nothing)."""
    if kind == "chat":
        lines = [client.line() for _ in range(CHAT_GREETING_LINES)]
        assert lines[0] == "Welcome to my chat room!", lines


def assert_served(kind: str, client: Client) -> None:
    """A newcomer is served: greeted, and its next line answered (not turned away)."""
    greet(kind, client)
    assert_answered(kind, client)


def admitted(kind: str, port: int, clients: list[Client], *, full: int) -> Client:
    """A newcomer to a server that ``full`` connections fill, let in, and greeted where the server greets.

    The connections in it age from when the server accepted them, which a loaded machine may do late; until
    one is past the grace, the server turns a newcomer away busy. Then another comes a quarter of the grace
    later, for up to four graces: the rule waited out. One still turned away after that fails the test.
    """
    give_up = time.monotonic() + 4 * DEFAULT_GRACE
    while True:
        client = Client(port)
        clients.append(client)
        if kind != "chat":
            client.send(b"hello\n")  # a line server says nothing on arrival, but a full one says busy at once
        first = client.line()
        if first != busy_line(kind, full) or time.monotonic() > give_up:
            break
        time.sleep(DEFAULT_GRACE / 4)
    assert first is not None and first != busy_line(kind, full), f"turned away for {4 * DEFAULT_GRACE:g} s: {first}"
    if kind == "chat":
        rest = [client.line() for _ in range(CHAT_GREETING_LINES - 1)]
        assert first == "Welcome to my chat room!", [first, *rest]
    else:
        assert first.endswith("HELLO"), first
    return client


def assert_answered(kind: str, client: Client) -> None:
    """The client's next line gets its own answer (earlier answers may still be waiting to be read)."""
    token = next(_tokens)
    if kind == "chat":
        client.send(f"/nick n{token}\n".encode())
        wanted = f"* you are now n{token}"
    else:
        client.send(f"ping {token}\n".encode())
        wanted = f"PING {token}"
    while (line := client.line()) is not None:
        assert not line.startswith("error: server"), line
        if line == wanted or line.endswith(f"] {wanted}"):
            return
    raise AssertionError(f"closed before answering; it read {client.seen[-5:]}")


_tokens = itertools.count(1)


def talk(clients: list[Client], quiet: dict[Client, threading.Event], stop: threading.Event) -> None:
    """Each client sends a whole line every ``TALK`` seconds until its ``quiet`` event (or ``stop``) is set."""
    while not stop.wait(TALK):
        for client in clients:
            if not quiet[client].is_set():
                with contextlib.suppress(OSError):
                    client.send(b"/who\n")


def trickle(clients: list[Client], stop: threading.Event) -> None:
    """Slowloris: one byte every ``TRICKLE`` seconds on each connection, never a newline."""
    while True:
        for client in clients:
            with contextlib.suppress(OSError):
                client.send(b"x")
        if stop.wait(TRICKLE):
            return


@contextlib.contextmanager
def running(target: object, *args: object) -> Iterator[threading.Event]:
    """Run ``target(*args, stop)`` in a thread for the block; set ``stop`` and join after it."""
    stop = threading.Event()
    thread = threading.Thread(target=target, args=(*args, stop), daemon=True)  # type: ignore[arg-type]
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(TIMEOUT)


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    """Every client a test opens (append to it): closed at the end."""
    opened: list[Client] = []
    yield opened
    for client in opened:
        client.close()


@pytest.mark.parametrize("kind", CONCURRENT)
def test_slowloris_connections_make_room_for_a_well_behaved_client(
    server: StartServer, clients: list[Client], kind: str
) -> None:
    """Before: 1,100 connections trickling a byte every 5 s held all of threaded's slots; nobody got in."""
    started = start(server, kind, "--max-clients", "20", "--line-deadline", "5")
    tricklers = [Client(started.tcp) for _ in range(20)]
    clients.extend(tricklers)
    with running(trickle, tricklers) as stop:
        stop.wait(DEFAULT_GRACE + 0.3)  # the attack, while the tricklers age past the grace
        good = admitted(kind, started.tcp, clients, full=20)
        assert_answered(kind, good)
        gone = wait_until(
            lambda: [t for t in tricklers if t.poll_closed()] or None, timeout=TIMEOUT, what="an eviction"
        )
    assert len(gone) == 1, [t.buffered() for t in gone]  # one newcomer, one connection displaced
    assert gone[0].buffered()[-1] == EVICTED


@pytest.mark.parametrize("kind", ["iterative", *CONCURRENT])
def test_a_trickled_line_gets_the_deadline_line_and_the_close(
    server: StartServer, clients: list[Client], kind: str
) -> None:
    started = start(server, kind, "--line-deadline", "1")
    trickler = Client(started.tcp)
    clients.append(trickler)
    greet(kind, trickler)
    began = time.monotonic()
    with running(trickle, [trickler]):
        lines = trickler.rest()  # old servers: TimeoutError, as the bytes kept the connection alive
    assert lines == [deadline_message(1).decode().rstrip("\n")]
    assert 0.9 < time.monotonic() - began < 1.0 + 2.0


def test_iterative_serves_the_next_client_once_the_trickler_in_front_runs_out(
    server: StartServer, clients: list[Client]
) -> None:
    """One client at a time: a trickler in front holds the server for the line deadline, not for ever."""
    started = start(server, "iterative", "--line-deadline", "1")
    trickler = Client(started.tcp)
    waiting = Client(started.tcp)  # in the listen backlog behind the trickler
    clients.extend([trickler, waiting])
    with running(trickle, [trickler]):
        assert_served("iterative", waiting)
    assert trickler.poll_closed()


@pytest.mark.parametrize("kind", CONCURRENT)
def test_a_full_server_refuses_while_everyone_talks_then_closes_the_longest_idle(
    server: StartServer, clients: list[Client], kind: str
) -> None:
    started = start(server, kind, "--max-clients", "3")
    # Opened oldest first; the first to fall silent is the newest, so a server that ranked by
    # arrival (or could not see its workers' reads, as the forking parent cannot) picks wrong.
    oldest, middle, newest = [Client(started.tcp) for _ in range(3)]
    clients.extend([oldest, middle, newest])
    quiet = {client: threading.Event() for client in clients}
    with running(talk, [oldest, middle, newest], quiet) as stop:
        stop.wait(DEFAULT_GRACE + 0.2)  # all three older than the grace, each with a line within it
        turned_away = Client(started.tcp)
        clients.append(turned_away)
        assert turned_away.rest() == [busy_line(kind, 3)]

        quiet[newest].set()
        stop.wait(0.3)
        quiet[middle].set()
        stop.wait(DEFAULT_GRACE + 0.2)  # both silent past the grace, newest for longer; oldest still talks
        newcomer = admitted(kind, started.tcp, clients, full=3)
        assert_answered(kind, newcomer)
        assert newest.rest()[-1] == EVICTED
    for client in (oldest, middle):
        assert not client.poll_closed()
        assert_answered(kind, client)


@pytest.mark.parametrize("kind", CONCURRENT)
def test_a_newcomer_from_another_address_takes_back_a_slot_the_crowd_borrowed(
    server: StartServer, clients: list[Client], kind: str
) -> None:
    """A crowd from one address (a Docker host port's) may fill the server, but only its share is its own."""
    started = start(server, kind, "--max-clients", "4", "--per-source", "2")
    crowd = [Client(started.tcp) for _ in range(4)]
    clients.extend(crowd)
    quiet = {client: threading.Event() for client in crowd}
    with running(talk, crowd, quiet):
        one_more = Client(started.tcp)  # from the crowd's address: it holds more than its share, all busy
        clients.append(one_more)
        assert one_more.rest() == [busy_line(kind, 4)]
        outsider = Client(started.tcp, source="127.0.0.2")
        clients.append(outsider)
        assert_served(kind, outsider)
        gone = wait_until(lambda: [c for c in crowd if c.poll_closed()] or None, timeout=TIMEOUT, what="an eviction")
    assert len(gone) == 1
    assert gone[0].buffered()[-1] == EVICTED
