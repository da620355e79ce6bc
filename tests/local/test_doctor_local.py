"""The doctor served in-process on 127.0.0.1, port 0, by each in-process concurrency model.

Sockets have timeouts and waits have deadlines; readiness is the greeting.
"""

from __future__ import annotations

import io
import os
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from common.eventlog import EventLog
from protocols import doctor as dr
from protocols.doctor import Doctor, DoctorSession
from protocols.framing import LineBuffer
from services.runners import Limits, StreamServer
from tests.local.conftest import StartServer

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 5.0
SEED = 42
MODELS = ["threaded", "selectors", "asyncio", "iterative"]  # forking would fork the test process


def seeded_session() -> DoctorSession:
    return DoctorSession(Doctor(rng=random.Random(SEED)))


class Patient:
    """A test's client: send a line, read a line, with a timeout."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=TIMEOUT)
        self._lines = LineBuffer(max_line=1 << 16)

    def send(self, data: str | bytes) -> None:
        self.sock.sendall(data.encode() + b"\n" if isinstance(data, str) else data)

    def line(self) -> str:
        while (line := self._lines.next_line()) is None:
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            self._lines.feed(data)
        return line.decode()

    def ask(self, text: str) -> str:
        self.send(text)
        return self.line()

    def assert_closed(self) -> None:
        """The server closes next: EOF (or a reset) within ``TIMEOUT``, no more lines."""
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return
        assert data == b"", f"expected the end, got {data!r}"

    def close(self) -> None:
        self.sock.close()


class ServeDoctor(Protocol):
    """The ``serve_doctor`` fixture: a doctor server for ``model``; its (host, port)."""

    def __call__(self, model: str, limits: Limits | None = None) -> tuple[str, int]: ...


@pytest.fixture
def serve_doctor() -> Iterator[ServeDoctor]:
    """Start doctor servers (a model, optional limits); all stopped at the end."""
    servers: list[StreamServer] = []

    def start(model: str, limits: Limits | None = None) -> tuple[str, int]:
        server = StreamServer(seeded_session, model=model, limits=limits, log=EventLog("doctor", stream=io.StringIO()))
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize("model", MODELS)
def test_a_session_end_to_end(serve_doctor: ServeDoctor, model: str) -> None:
    patient = Patient(serve_doctor(model))
    twin = Doctor(rng=random.Random(SEED))  # the server's doctor is seeded alike: replies are predictable
    try:
        assert patient.line() == dr.GREETING
        for sentence in ["I am worried about my exams", "my father says I work too little", "whatever"]:
            assert patient.ask(sentence) == twin.reply(sentence)
        assert patient.ask("") == dr.FAREWELL
        patient.assert_closed()
    finally:
        patient.close()


def test_bad_lines_get_error_lines_and_the_session_goes_on(serve_doctor: ServeDoctor) -> None:
    patient = Patient(serve_doctor("threaded"))
    twin = Doctor(rng=random.Random(SEED))
    try:
        patient.line()
        assert patient.ask("q" * 5000) == "error: line longer than 4096 bytes"
        patient.send(b"\xc3\x28\n")
        assert patient.line() == "error: invalid UTF-8 (send text encoded as UTF-8)"
        assert patient.ask("I feel better now") == twin.reply("I feel better now")
    finally:
        patient.close()


def test_eof_gets_the_farewell(serve_doctor: ServeDoctor) -> None:
    patient = Patient(serve_doctor("selectors"))
    try:
        patient.line()
        patient.sock.shutdown(socket.SHUT_WR)
        assert patient.line() == dr.FAREWELL
        patient.assert_closed()
    finally:
        patient.close()


def test_over_the_cap_the_busy_line(serve_doctor: ServeDoctor) -> None:
    # A full server displaces a client idle past the grace; with a minute's grace, the first is never idle enough.
    address = serve_doctor("threaded", Limits(max_clients=1, evict_grace=60.0))
    first, second = Patient(address), None
    try:
        assert first.line() == dr.GREETING  # first holds the only seat
        second = Patient(address)
        assert second.line() == "error: server busy, try again later"
        second.assert_closed()
    finally:
        first.close()
        if second is not None:
            second.close()


def _python(*args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_the_doctor_client_from_a_pipe(serve_doctor: ServeDoctor) -> None:
    host, port = serve_doctor("threaded")
    with _python("-m", "clients.doctor", "--host", host, "--port", str(port), stdin=subprocess.PIPE) as proc:
        out, err = proc.communicate(b"I am tired of my job\nmy mother calls daily\n", timeout=15)
    assert proc.returncode == 0, err
    twin = Doctor(rng=random.Random(SEED))
    assert out.decode().splitlines() == [
        dr.GREETING,
        "> I am tired of my job",
        twin.reply("I am tired of my job"),
        "> my mother calls daily",
        twin.reply("my mother calls daily"),
        dr.FAREWELL,  # end of input sent the empty line
    ]


def test_the_doctor_client_says_when_the_server_is_unreachable() -> None:
    with socket.socket() as placeholder:  # a port that was free a moment ago and has no listener
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    with _python("-m", "clients.doctor", "--host", "127.0.0.1", "--port", str(port), stdin=subprocess.DEVNULL) as proc:
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 1
    assert err.decode() == f"error: 127.0.0.1:{port} refused the connection; is the server running?\n"


def test_the_service_stops_on_sigterm_within_a_second(server: StartServer) -> None:
    doctor = server("services.doctor")
    patient = Patient(("127.0.0.1", doctor.tcp))
    try:
        assert patient.line() == dr.GREETING
        assert doctor.terminate(within=1.0) < 1.0  # with the patient still connected
    finally:
        patient.close()
