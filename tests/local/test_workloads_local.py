"""The workloads against the real servers on 127.0.0.1, and their checkers on what they saw.

Each workload runs as a process against a server of ours until it has done some
work, is stopped with SIGTERM as the runner stops it, and its events become a
history. With no fault at all, every checker must pass; against a server that is
wrong on purpose (written here: it corrupts, or answers the line before), the
checker must fail.
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clients.workloads.common import Events
from common.waiting import wait_until
from lab.chaos.checkers import Verdict, check_chat, check_creosote, check_echo, check_threaded
from lab.chaos.history import History
from lab.chaos.workloads import sequence_numbers
from tests.local.conftest import ROOT, StartServer

TAG = "f00dcafe"


class Running:
    """A workload process; its stdout read line by line as it comes."""

    def __init__(self, name: str, port: int, *extra: str) -> None:
        self.name = name
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"clients.workloads.{name}", "--host", "127.0.0.1", "--port", str(port),
             "--tag", TAG, "--max-seconds", "60", *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def close(self) -> None:
        self._reader.join(5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def count(self, event: str) -> int:
        return sum(f'"event": "{event}"' in line for line in list(self.lines))

    def stop(self) -> History:
        """SIGTERM, as the runner stops it; its events, as the runner files them."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self._reader.join(5)
        assert self.process.stderr is not None
        history = History()
        history.add("run", tag=TAG, client="client", workloads={self.name: self.name}, mono=self.started)
        for line in self.lines:
            history.add("event", workload=self.name, **json.loads(line))
        history.add("workload", name=self.name, node=self.name, exit=code, stderr=self.process.stderr.read())
        return history


@contextlib.contextmanager
def workload(name: str, port: int, *extra: str, until: tuple[str, int]) -> Iterator[Callable[[], History]]:
    running = Running(name, port, *extra)
    try:
        event, count = until
        wait_until(lambda: running.count(event) >= count or running.process.poll() is not None, timeout=30,
                   what=f"{name} to record {count} {event} events")  # fmt: skip
        yield running.stop
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()
        running.close()


def passes(verdict: Verdict) -> Verdict:
    assert verdict.ok, verdict
    return verdict


def test_echo_workload_sees_every_byte_back(server: StartServer) -> None:
    echo = server("services.echo")
    with workload("echo", echo.tcp, "--interval", "0.02", until=("exchange", 20)) as stop:
        verdict = passes(check_echo(stop()))
    assert "0 ended in a reported error" in verdict.summary


def test_threaded_workload_gets_each_line_back_upper_cased(server: StartServer) -> None:
    upper = server("services.upper")
    with workload("threaded", upper.tcp, "--interval", "0.02", until=("exchange", 30)) as stop:
        passes(check_threaded(stop()))  # 30 lines: two connections (25 a connection)


def test_chat_workload_members_see_each_other(server: StartServer) -> None:
    chat = server("services.chat")
    with workload("chat", chat.tcp, "--interval", "0.05", until=("recv", 60)) as stop:
        history = stop()
    verdict = passes(check_chat(history))
    assert verdict.summary.startswith("3 members") and "0 missed" in verdict.summary
    assert all(e.get("caught_up") for e in history.events("chat", "left")), history.events("chat", "left")


def test_creosote_workload_finds_each_datagram_in_the_file(server: StartServer, tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    sink = server("services.creosote", "--log-file", str(records))
    with workload("creosote", sink.port, "--interval", "0.01", until=("send", 50)) as stop:
        history = stop()
    stored = wait_until(lambda: _complete(records, history), timeout=5, what="the sink to flush every record")
    history.add("event", workload="creosote", event="stored", seqs=stored, mono=time.monotonic())
    passes(check_creosote(history))
    # The same history with one record gone from the file, and no fault to excuse it:
    lost = History(list(history.entries))
    lost.add("event", workload="creosote", event="stored", seqs=stored[1:], mono=time.monotonic())
    assert not check_creosote(lost).ok


def _complete(records: Path, history: History) -> list[int] | None:
    seqs = sequence_numbers(records.read_text(encoding="utf-8"), TAG) if records.exists() else []
    return seqs if len(seqs) >= len(history.events("creosote", "send")) else None


# --------------------------------------------------------------------------- servers wrong on purpose


@contextlib.contextmanager
def wrong_server(handle: Callable[[socket.socket, int], None]) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that runs ``handle(connection, number)`` for each connection; its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)  # a blocked accept() would not notice the listener closing
    stopped = threading.Event()

    def serve() -> None:
        number = 0
        while not stopped.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            number += 1
            threading.Thread(target=handle, args=(conn, number), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stopped.set()
        thread.join(5)
        listener.close()


def corrupting_echo(conn: socket.socket, number: int) -> None:
    """Echoes, but flips one byte of every third exchange."""
    with conn:
        data = bytearray()
        while chunk := conn.recv(65536):
            data += chunk
        if number % 3 == 0:
            data[len(data) // 2] ^= 0x20
        conn.sendall(bytes(data))


def one_behind_upper(conn: socket.socket, number: int) -> None:
    """Answers each line with the one before it (the first with itself): replies that are not their requests'."""
    with conn, conn.makefile("rwb") as stream:
        previous: bytes | None = None
        for raw in stream:
            line = raw.rstrip(b"\n")
            stream.write(b"[Wed Dec  2 18:00:00 2026] " + (previous or line).upper() + b"\n")
            stream.flush()
            previous = line


@pytest.mark.parametrize(
    ("name", "handle", "check", "words"),
    [
        ("echo", corrupting_echo, check_echo, "corrupted"),
        ("threaded", one_behind_upper, check_threaded, "the reply was"),
    ],
)  # fmt: skip
def test_a_wrong_server_fails_its_checker(name: str, handle: Callable[[socket.socket, int], None],
                                          check: Callable[[History], Verdict], words: str) -> None:  # fmt: skip
    with wrong_server(handle) as port, workload(name, port, "--interval", "0.02", until=("exchange", 10)) as stop:
        verdict = check(stop())
    assert not verdict.ok
    assert words in "\n".join(verdict.violations), verdict


# A process that stops itself with SIGTERM while its main thread spins in ``Stop.wait``, again and again: the
# signal lands inside ``wait`` every time. A handler that takes a lock deadlocks here within a few hundred rounds
# (an ``Event``-based stop did, as a workload once hung after the runner's SIGTERM).
SIGNAL_IN_WAIT = """
import os, signal, threading, time
from clients.workloads.common import Stop
for round in range(300):
    stop = Stop(60)
    stop.install()
    threading.Timer(0.001, os.kill, (os.getpid(), signal.SIGTERM)).start()
    while not stop.wait(0.0):
        pass
print("stopped", round + 1)
"""


def test_a_stop_signal_that_lands_inside_wait_always_stops() -> None:
    try:
        done = subprocess.run([sys.executable, "-c", SIGNAL_IN_WAIT], cwd=ROOT, capture_output=True, text=True,
                              timeout=30)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("a workload's stop deadlocked in its own signal handler")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["stopped", "300"]


def test_an_event_timed_before_it_happened_keeps_that_time_on_both_clocks() -> None:
    out = io.StringIO()
    before = time.monotonic() - 1.0
    Events(out).emit("send", at=before, seq=1)
    Events(out).emit("recv", seq=1)
    sent, received = (json.loads(line) for line in out.getvalue().splitlines())
    assert sent["mono"] == round(before, 6) and sent["seq"] == 1
    assert received["mono"] - sent["mono"] >= 1.0
    assert abs((received["wall"] - sent["wall"]) - (received["mono"] - sent["mono"])) < 0.05  # the same second
