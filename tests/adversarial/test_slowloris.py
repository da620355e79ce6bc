"""Slowloris against the default lab, through its host ports, beside a well-behaved client.

Measured before the admission policy: 1,100 connections trickling a byte every 5 s held all 1,024 of
threaded's slots for as long as they liked (a well-behaved client got 0 of 81 answers); chat's 1,000 the same
way; doctor's slots were held by connections that sent nothing at all (its idle timeout is 300 s). Through a
host port every client has the same source address (Docker's port proxy), so the attackers and the
well-behaved client share one source: what saves the client is the line deadline and the eviction of the
connection longest without progress, not a per-address limit.

Each test judges what the well-behaved client saw, what the attackers were told, and the server: no
restart, no OOM kill, its own health check passing, its host port answering, its Docker log bounded. That
each trickler is closed by its line deadline is played against every model and chat on 127.0.0.1 in
tests/local/test_admission_local.py (here it would take chat's 30 s).

The attack is paced in real time, a byte a second: a newcomer in the first second of it finds every slot
taken by a connection younger than the eviction grace and is turned away (by design; through Docker's port
proxy it may see an empty close instead of the busy line), so the newcomers come after two seconds.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest

from lab.topology_fixture import TopologyLab
from tests.adversarial.streams import read_until

pytestmark = [pytest.mark.docker, pytest.mark.adversarial, pytest.mark.timeout(300)]

TRICKLE_EVERY = 1.0  # seconds between the attackers' bytes (5 s in the measured attack: any pace works)
EVICTED = b"error: server full, closing the longest-idle connection"
LOG_BOUND = 256 * 1024  # bytes of Docker log an attack may add (event lines are rate-limited)


@pytest.fixture
def default_lab(topology: Callable[..., TopologyLab]) -> TopologyLab:
    """The default lab, one for the module (the factory keeps it for the module's tests)."""
    return topology("topology/default.yaml", scope="module")


@contextmanager
def connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections to a host port, closed on the way out."""
    with ExitStack() as stack:
        opened = []
        for _ in range(count):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
            sock.setblocking(False)
            opened.append(sock)
        yield opened


def trickle(socks: list[socket.socket], told: dict[int, bytes]) -> None:
    """One byte on every connection still open (never a newline); what a closed one was told goes in ``told``."""
    for sock in socks:
        if sock.fileno() in told:
            continue
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            data = None
        except OSError:
            data = b""
        if data is not None and not data.endswith(b"\n") and data:
            data = None  # part of a greeting (doctor, chat): wait for the rest
        if data is not None and (data == b"" or b"error:" in data):
            told[sock.fileno()] = data
            continue
        try:
            sock.send(b"x")
        except OSError as exc:
            told[sock.fileno()] = f"closed: {exc.strerror}".encode()


def served(port: int, exchange: Callable[[socket.socket], bool]) -> bool | str:
    """A fresh client's whole exchange within 10 s: True, or what it read instead (the busy line, say)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.settimeout(10)
        try:
            if exchange(client):
                return True
        except OSError as exc:
            return f"{exc!r}, after reading {drain(client)!r}"
        return f"read {drain(client)!r}"


def upper_exchange(client: socket.socket) -> bool:
    answers = 0
    for number in range(5):
        client.sendall(f"hello {number}\n".encode())
        answers += f"HELLO {number}".encode() in read_until(client, b"\n")
    return answers == 5


def chat_exchange(client: socket.socket) -> bool:
    greeting = read_until(client, b"\n")
    client.sendall(b"/who\n")
    return greeting.startswith(b"Welcome") and b"here (" in read_until(client, b"here (")


def doctor_exchange(client: socket.socket) -> bool:
    greeting = read_until(client, b"\n")
    client.sendall(b"I feel tired\n")
    return greeting.startswith(b"Good day") and len(read_until(client, b"\n")) > 0


def log_size(lab: TopologyLab, node: str) -> int:
    return len(lab.node(node).container.logs())


def assert_server_held(lab: TopologyLab, node: str, port: int, log_before: int) -> None:
    attrs = lab.node(node).container.attrs
    assert (attrs["RestartCount"], attrs["State"]["OOMKilled"], attrs["State"]["Status"]) == (0, False, "running")
    test = attrs["Config"]["Healthcheck"]["Test"]
    check = lab.exec(node, *test[1:])  # the container's own health check, run now
    assert check.code == 0, check.output
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        pass  # the host port answers
    grown = log_size(lab, node) - log_before
    assert grown < LOG_BOUND, f"{node}'s Docker log grew {grown} bytes in the attack"


@pytest.mark.parametrize(
    ("node", "port", "attackers", "exchange"),
    [
        ("threaded", 9000, 1100, upper_exchange),  # more than its 1,024 slots, as measured
        ("chat", 5000, 1050, chat_exchange),  # more than its 1,000 seats
    ],
)
def test_tricklers_filling_every_slot_leave_a_well_behaved_client_served(
    default_lab: TopologyLab, node: str, port: int, attackers: int, exchange: Callable[[socket.socket], bool]
) -> None:
    host_port = default_lab.host_port(node, port)
    log_before = log_size(default_lab, node)
    told: dict[int, bytes] = {}
    with connections(host_port, attackers) as socks:
        for _ in range(2):  # two seconds of the attack: past the 1 s grace every trickler is evictable
            trickle(socks, told)
            time.sleep(TRICKLE_EVERY)  # the attack's pace, not a readiness wait
        # The server is full of tricklers now; each newcomer closes the one longest without a whole line.
        turned_away = set(told)  # those over the cap, told so when they connected
        results = [served(host_port, exchange) for _ in range(3)]
        assert results == [True, True, True], (
            f"a well-behaved client of {node} was not served: {results}; told {len(told)} of {len(socks)} so far: "
            f"{sorted(set(told.values()))[:5]}; its log ends:\n{default_lab.node(node).logs()[-600:]}"
        )
        trickle(socks, told)
        _wait_readable([sock for sock in socks if sock.fileno() not in told], TRICKLE_EVERY)
        trickle(socks, told)
    # The first newcomer displaced a trickler (each next one took the seat its predecessor left), and was
    # told why.
    displaced = [reason for sock, reason in told.items() if sock not in turned_away]
    assert any(EVICTED in reason for reason in displaced), f"no trickler was displaced; they were told {displaced}"
    assert_server_held(default_lab, node, host_port, log_before)


def test_silent_connections_filling_doctor_give_way_to_a_newcomer(default_lab: TopologyLab) -> None:
    """doctor's slots held by connections that never send a byte (its idle timeout is 300 s)."""
    host_port = default_lab.host_port("doctor", 5001)
    log_before = log_size(default_lab, "doctor")
    with connections(host_port, 280) as socks:
        time.sleep(1.5)  # the eviction grace: a victim must have been silent at least 1 s (not a readiness wait)
        newcomer = served(host_port, doctor_exchange)
        assert newcomer is True, f"a newcomer to a doctor full of silent connections was not served: {newcomer}"
        _wait_readable(socks, 2.0)
        evicted = sum(EVICTED in drain(sock) for sock in socks)
    assert evicted >= 1, "no silent connection was told it was evicted"
    assert_server_held(default_lab, "doctor", host_port, log_before)


def drain(sock: socket.socket) -> bytes:
    """Everything a non-blocking connection has received so far."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (BlockingIOError, OSError):
            return data
        if not chunk:
            return data
        data += chunk


def _wait_readable(socks: list[socket.socket], timeout: float) -> None:
    """Pace the trickle: wait up to ``timeout`` for any connection to say something (a close, an error line)."""
    sel = selectors.DefaultSelector()
    try:
        for sock in socks:
            if sock.fileno() >= 0:
                sel.register(sock, selectors.EVENT_READ)
        sel.select(timeout=timeout)
    finally:
        sel.close()
