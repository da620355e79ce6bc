"""daytime, echo and the upper-case line server with every model, as real processes on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Sequence

import pytest

from clients.check import Target, echo, run, run_check, upper
from clients.common import read_line
from clients.threaded import run_load
from protocols.framing import LineBuffer
from protocols.upper import parse_answer
from services.common import LISTEN_BACKLOG
from services.upper import BY_MODEL
from tests.local.conftest import StartServer

MODELS = list(BY_MODEL)
LOCAL = "127.0.0.1"
# Every upper check but silent-client: the iterative model serves one client at a time by design.
UPPER_CHECKS = ("one-line", "each-line", "coalesced", "split-line", "long-line", "bad-utf8")


def check_upper(port: int, *, only: Sequence[str] = UPPER_CHECKS) -> None:
    """clients.check's line-server checks."""
    report = run("upper", Target(LOCAL, port), only=only, timeout=10.0)
    assert report.passed, report.text()


def check_upper_bad_input(port: int) -> None:
    """Over-long and invalid lines get our server's error lines; the session goes on."""
    replies = upper.exchange(Target(LOCAL, port), [b"a" * 5000 + b"\n", b"\xff\xfe\n", b"still here\n"])
    assert replies[0].startswith(b"error: line longer than")
    assert replies[1] == b"error: line is not valid UTF-8"
    assert parse_answer(replies[2].decode())[1] == "STILL HERE"


def test_daytime_tcp_and_udp(server: StartServer) -> None:
    daytime = server("services.daytime")
    report = run("daytime", Target(LOCAL, daytime.tcp, daytime.udp), timeout=10.0)
    assert report.passed, report.text()
    for result in report.results:  # the time in RFC 867's suggested format, the one ours sends
        if result.name in ("daytime.tcp.time", "daytime.udp.any-datagram", "daytime.udp.empty-datagram"):
            assert result.detail.startswith("RFC 867's suggested format"), result.detail


def test_daytime_answers_a_client_that_talks_first(server: StartServer) -> None:
    """A client that sends before reading must still get the time (no RST eats the answer)."""
    daytime = server("services.daytime")
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", daytime.tcp), timeout=5) as sock:
            sock.sendall(b"hello?\n" * 100)
            data = sock.recv(4096)
        assert data.endswith(b"-UTC\r\n")


@pytest.mark.parametrize("size", [1, 1000, 1 << 20, 8 << 20])
def test_echo_tcp_is_byte_exact(server: StartServer, size: int) -> None:
    started = server("services.echo")
    result = run_check(echo.exact(size), Target(LOCAL, started.tcp), timeout=10.0)
    assert result.passed, result.text()


def test_echo_udp(server: StartServer) -> None:
    started = server("services.echo")
    report = run("echo", Target(LOCAL, started.tcp, started.udp), only=["udp.datagrams"], timeout=10.0)
    assert report.passed, report.text()


def test_echo_udp_empty_and_largest_datagram(server: StartServer) -> None:
    echo = server("services.echo")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.connect(("127.0.0.1", echo.udp))
        sock.send(b"")
        assert sock.recv(100) == b""
        big = bytes(range(256)) * 253 + b"\x00" * 232  # 65,000 bytes
        assert len(big) == 65000
        sock.send(big)
        assert sock.recv(65535) == big


@pytest.mark.parametrize("model", MODELS)
def test_upper_conformance(server: StartServer, model: str) -> None:
    started = server("services.upper", "--model", model)
    check_upper(started.tcp, only=UPPER_CHECKS if model == "iterative" else (*UPPER_CHECKS, "silent-client"))
    check_upper_bad_input(started.tcp)


@pytest.mark.parametrize("model", MODELS)
def test_the_line_server_runs_each_model_with_that_models_limits(server: StartServer, model: str) -> None:
    upper = server("services.upper", "--model", model)
    _, clients, _ = BY_MODEL[model]
    assert (upper.fields["model"], upper.fields["max_clients"]) == (model, str(clients))
    overridden = server("services.upper", "--model", model, "--max-clients", "3")
    assert (overridden.fields["model"], overridden.fields["max_clients"]) == (model, "3")


@pytest.mark.parametrize("model", ["threaded", "forking", "selectors", "asyncio"])
def test_upper_many_concurrent_clients(server: StartServer, model: str) -> None:
    upper = server("services.upper", "--model", model)
    report = run_load("127.0.0.1", upper.tcp, sessions=300, lines=3, size=64, timeout=20)
    assert report.errors == []
    assert len(report.latencies) == 900


@pytest.mark.parametrize("model", MODELS)
def test_sigterm_stops_within_a_second(server: StartServer, model: str) -> None:
    upper = server("services.upper", "--model", model)
    with socket.create_connection(("127.0.0.1", upper.tcp), timeout=5):  # a client still connected
        assert upper.terminate(within=1.0) < 1.0


@pytest.mark.parametrize("model", ["threaded", "selectors", "asyncio", "forking"])
def test_client_cap_answers_busy_then_closes(server: StartServer, model: str) -> None:
    upper = server("services.upper", "--model", model, "--max-clients", "2")
    held = [socket.create_connection(("127.0.0.1", upper.tcp), timeout=5) for _ in range(2)]
    try:
        for sock in held:  # both admitted: each answers
            sock.sendall(b"hi\n")
            assert read_line(sock, LineBuffer()) is not None
        with socket.create_connection(("127.0.0.1", upper.tcp), timeout=5) as third:
            third.sendall(b"me too\n")
            assert third.recv(4096).startswith(b"error: server busy")
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize("model", MODELS)
def test_idle_client_is_closed_with_a_reason(server: StartServer, model: str) -> None:
    upper = server("services.upper", "--model", model, "--idle-timeout", "0.5")
    with socket.create_connection(("127.0.0.1", upper.tcp), timeout=5) as sock:
        began = time.monotonic()
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        assert data == b"error: idle timeout, closing\n"
        assert 0.4 < time.monotonic() - began < 3.0


@pytest.mark.parametrize("model", ["threaded", "selectors", "asyncio", "forking"])
def test_silent_and_abandoned_clients_do_not_block_others(server: StartServer, model: str) -> None:
    """Slowloris-style: many connections that say nothing (or half a line) while others are served."""
    upper = server("services.upper", "--model", model, "--max-clients", "200")
    silent = [socket.create_connection(("127.0.0.1", upper.tcp), timeout=5) for _ in range(50)]
    for index, sock in enumerate(silent):
        if index % 2:
            sock.sendall(b"half a line without its end")
    try:
        check_upper(upper.tcp, only=["each-line", "coalesced", "split-line", "silent-client"])
    finally:
        for index, sock in enumerate(silent):
            if index % 3 == 0:
                sock.shutdown(socket.SHUT_WR)  # half-open
            sock.close()
    check_upper(upper.tcp, only=["each-line", "coalesced", "split-line"])


def test_garbage_does_not_hurt_other_clients(server: StartServer) -> None:
    upper = server("services.upper")
    done = threading.Event()

    def spray() -> None:
        with socket.create_connection(("127.0.0.1", upper.tcp), timeout=5) as sock:
            for i in range(200):
                sock.sendall(bytes((i * 7 + j) % 256 for j in range(997)))
        done.set()

    sprayer = threading.Thread(target=spray)
    sprayer.start()
    check_upper(upper.tcp, only=["each-line", "coalesced", "split-line"])
    sprayer.join(10)
    assert done.is_set()


@pytest.mark.parametrize("model", ["threaded", "selectors", "asyncio"])
def test_a_thousand_connections_at_once(server: StartServer, model: str) -> None:
    upper = server("services.upper", "--model", model)
    report = run_load("127.0.0.1", upper.tcp, sessions=1000, lines=2, size=32, timeout=30)
    assert report.errors == []
    assert len(report.latencies) == 2000


def _listen_backlog(port: int) -> int:
    """The listen queue's size of the server on ``port``: ``ss`` shows it as a listener's Send-Q."""
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(out.split()[2])


@pytest.mark.parametrize("model", [*MODELS, "chat"])
def test_every_listener_queues_a_thousand_connections(server: StartServer, model: str) -> None:
    """asyncio calls listen() again with its own backlog (100 unless told): 1,000 clients at once overflowed it."""
    if shutil.which("ss") is None:
        pytest.fail("ss (iproute2) is needed to read the listen queue: apt-get install iproute2")
    started = server("services.chat") if model == "chat" else server("services.upper", "--model", model)
    # "ready" comes before the event loop's own listen(): one exchange first, so that has happened.
    with socket.create_connection(("127.0.0.1", started.tcp), timeout=5) as sock:
        sock.sendall(b"/quit\n" if model == "chat" else b"x\n")
        assert read_line(sock, LineBuffer())  # a reply (chat: its welcome), whatever it says
    assert _listen_backlog(started.tcp) == LISTEN_BACKLOG
