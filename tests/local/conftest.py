"""Fixtures for servers run as real processes on 127.0.0.1, port 0 (no Docker): ours, and examples/mistakes."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServerProcess:
    """A server started with ``python -m services.<name> --port 0``; its ``ready`` line's fields."""

    process: subprocess.Popen[str]
    fields: dict[str, str]
    output: list[str]
    reader: threading.Thread | None = None

    def log_text(self, *, timeout: float = 5.0) -> str:
        """Everything the server logged, once it has exited."""
        self.process.wait(timeout=timeout)
        if self.reader is not None:
            self.reader.join(timeout)
        return "".join(self.output)

    def drain(self) -> None:
        """Collect the server's log lines until it exits (for diagnostics)."""
        assert self.process.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for line in self.process.stdout:
                self.output.append(line)

    @property
    def tcp(self) -> int:
        return int(self.fields["tcp"])

    @property
    def udp(self) -> int:
        return int(self.fields["udp"])

    @property
    def port(self) -> int:
        """The one port of a server that logs ``port=`` (creosote, the examples), not ``tcp=``/``udp=``."""
        return int(self.fields["port"])

    def terminate(self, *, within: float = 1.0) -> float:
        """SIGTERM, and return how long the server took to exit (fails past ``within``)."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"server ignored SIGTERM for {within} s") from None
        assert code == 0, f"exit status {code} after SIGTERM"
        return time.monotonic() - began


def _parse_ready(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def start_server(module: str, *args: str, timeout: float = 10.0) -> ServerProcess:
    """Start a server and block until it logs ``ready`` (its own readiness signal)."""
    return _start([sys.executable, "-m", module, "--host", "127.0.0.1", "--port", "0", *args], module, timeout)


def start_mistake(name: str, *args: str, timeout: float = 10.0) -> ServerProcess:
    """Start ``examples/mistakes/NAME.py`` (a wrong server on purpose) and block until it prints ``ready port=N``."""
    script = ROOT / "examples" / "mistakes" / f"{name}.py"
    return _start([sys.executable, str(script), "--host", "127.0.0.1", "--port", "0", *args], name, timeout)


def _start(argv: list[str], name: str, timeout: float) -> ServerProcess:
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        if not selector.select(timeout=deadline - time.monotonic()):
            break
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if " ready " in line or line.startswith("ready "):
            server = ServerProcess(process, _parse_ready(line), seen)
            # Keep reading: a server whose stdout pipe fills up blocks on its next log line.
            server.reader = threading.Thread(target=server.drain, daemon=True)
            server.reader.start()
            return server
    process.kill()
    process.wait()
    raise AssertionError(f"{name} never logged ready:\n{''.join(seen)}")


class StartServer(Protocol):
    """The ``server`` fixture: ``server("services.echo", "--max-clients", "2")``."""

    def __call__(self, module: str, *args: str) -> ServerProcess: ...


@pytest.fixture
def server() -> Iterator[StartServer]:
    """Factory: ``server("services.echo")``; every server started is stopped afterwards."""
    started: list[ServerProcess] = []

    def start(module: str, *args: str) -> ServerProcess:
        proc = start_server(module, *args)
        started.append(proc)
        return proc

    yield start
    _stop(started)


class StartMistake(Protocol):
    """The ``mistake`` fixture: ``mistake("echo_one_recv")``."""

    def __call__(self, name: str, *args: str) -> ServerProcess: ...


@pytest.fixture
def mistake() -> Iterator[StartMistake]:
    """Factory: ``mistake("echo_one_recv")`` starts ``examples/mistakes/echo_one_recv.py``; stopped afterwards."""
    started: list[ServerProcess] = []

    def start(name: str, *args: str) -> ServerProcess:
        proc = start_mistake(name, *args)
        started.append(proc)
        return proc

    yield start
    _stop(started)


def _stop(started: list[ServerProcess]) -> None:
    for proc in started:
        if proc.process.poll() is None:
            proc.process.kill()
            proc.process.wait()
        if proc.process.stdout:
            proc.process.stdout.close()
