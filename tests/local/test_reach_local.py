"""``lab.reach.probe`` against real sockets on 127.0.0.1: each outcome made honestly, no Docker."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from lab import reach
from lab.reach import Published

Start = Callable[[str], int]


def published(port: int, protocol: str = "") -> Published:
    return Published("127.0.0.1", port, port, "tcp", protocol)


@pytest.fixture
def server() -> Iterator[Start]:
    """Start a listener on 127.0.0.1, port 0, that treats what it accepts one way; its port.

    ``quiet`` keeps a connection open, saying nothing (an echo server waiting for its client);
    ``greet`` speaks and closes (daytime: that is an answer); ``hang_up`` closes at once, without a
    byte (what Docker's proxy does when nothing listens behind it).
    """
    listeners: list[socket.socket] = []
    held: list[socket.socket] = []
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def handle(kind: str, conn: socket.socket) -> None:
        if kind == "quiet":
            held.append(conn)
            return
        with conn:
            if kind == "greet":
                conn.sendall(b"Welcome\n")

    def start(kind: str) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.05)
        listeners.append(listener)

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                handle(kind, conn)

        threads.append(threading.Thread(target=serve))
        threads[-1].start()
        return int(listener.getsockname()[1])

    yield start
    stop.set()
    for thread in threads:
        thread.join()
    for sock in listeners + held:
        sock.close()


@pytest.mark.parametrize(("kind", "outcome"), [("quiet", "ok"), ("greet", "ok"), ("hang_up", "closed")])
def test_an_accepted_connection_counts_only_if_it_is_not_hung_up_at_once(
    server: Start, kind: str, outcome: str
) -> None:
    assert reach.probe(published(server(kind))).outcome == outcome


def test_a_port_nothing_listens_on_is_refused() -> None:
    with socket.socket() as bound:  # bound, never listening: the port stays ours, and refuses
        bound.bind(("127.0.0.1", 0))
        assert reach.probe(published(bound.getsockname()[1])).outcome == "refused"


def test_many_ports_are_probed_at_once(server: Start) -> None:
    ports = [published(server("quiet")) for _ in range(12)]
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        ports.append(published(bound.getsockname()[1]))
        started = time.monotonic()
        found = reach.probe_all(ports, window=0.3)
        elapsed = time.monotonic() - started
    assert [r.outcome for r in found] == ["ok"] * 12 + ["refused"]
    assert [r.port for r in found] == ports  # in the order asked
    assert elapsed < 2.0, f"{elapsed:.2f} s: one after another would take 3.6 s"


@pytest.fixture
def echo() -> Iterator[tuple[int, Callable[[], bytes]]]:
    """A server for one connection that sends back the first line it reads: its port, and a call that
    waits for that connection to end and gives what the server read (``b""``: nothing, then EOF)."""
    heard: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            heard.append(conn.makefile("rb").readline())
            conn.sendall(heard[-1])

    thread = threading.Thread(target=serve)
    thread.start()

    def read() -> bytes:
        thread.join(timeout=15)
        assert heard, "the server never read the probe's connection"
        return heard[0]

    with listener:
        yield int(listener.getsockname()[1]), read
        thread.join(timeout=15)


def test_a_server_that_waits_for_its_client_gets_its_protocols_line_and_its_reply_ends_the_probe(
    echo: tuple[int, Callable[[], bytes]],
) -> None:
    port, heard = echo
    assert reach.probe(published(port, "echo"), window=60).outcome == "ok"  # ended by the reply
    assert heard() == b"probe\n"  # the line healthcheck.sh sends an echo server


def test_a_port_of_no_known_protocol_is_sent_nothing(echo: tuple[int, Callable[[], bytes]]) -> None:
    port, heard = echo
    assert reach.probe(published(port), window=0.3).outcome == "ok"  # open and quiet, as before
    assert heard() == b""


def test_a_hang_up_is_closed_even_after_the_line_was_sent(server: Start) -> None:
    assert reach.probe(published(server("hang_up"), "upper")).outcome == "closed"
