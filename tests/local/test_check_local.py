"""``python3 -m clients.check`` as users run it: against our servers (all pass) and the wrong ones in examples/mistakes.

Every server is a process on 127.0.0.1, port 0, waited for by its ``ready`` line.
The checker runs as a subprocess too, so its exit status, its output and its
JSON are what a user (or ``lab check``) gets.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from clients.check import SUITES
from tests.local.conftest import ROOT, ServerProcess, StartMistake, StartServer

LOCAL = "127.0.0.1"
MISTAKE_TIMEOUT = "2"  # s: a wrong server fails by making the checker wait, so keep the waits short


@dataclass
class Checked:
    """One run of the checker: its exit status, what it printed, and the report when ``--json``."""

    code: int
    stdout: str
    stderr: str

    def report(self) -> dict[str, Any]:
        report = json.loads(self.stdout)
        assert isinstance(report, dict)
        return report

    def failed(self) -> set[str]:
        return {check["name"] for check in self.report()["checks"] if not check["passed"]}

    def passed(self) -> set[str]:
        return {check["name"] for check in self.report()["checks"] if check["passed"]}


def check(*argv: str, timeout: float = 120) -> Checked:
    """``python3 -m clients.check ARGV`` from the repository root."""
    done = subprocess.run(
        [sys.executable, "-m", "clients.check", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Checked(done.returncode, done.stdout, done.stderr)


def target(started: ServerProcess, field: str = "tcp") -> str:
    return f"{LOCAL}:{started.fields[field]}"


# --------------------------------------------------------------------------- our servers pass


OURS: dict[str, tuple[str, list[str]]] = {  # protocol -> (server module, its extra arguments)
    "daytime": ("services.daytime", []),
    "echo": ("services.echo", []),
    "upper": ("services.upper", ["--model", "threaded"]),
    "chat": ("services.chat", []),
    "doctor": ("services.doctor", []),
    "creosote": ("services.creosote", []),
}


@pytest.mark.parametrize("protocol", sorted(OURS))
def test_our_server_passes_every_check(server: StartServer, protocol: str) -> None:
    module, extra = OURS[protocol]
    started = server(module, *extra)
    udp = ["--udp-port", started.fields["udp"]] if "udp" in started.fields else []
    where = target(started, "port" if protocol == "creosote" else "tcp")
    done = check(protocol, where, *udp)
    assert done.code == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[1].rstrip(":") for line in lines[:-1]] == SUITES[protocol].names()
    assert all(line.startswith("ok   ") for line in lines[:-1]), done.stdout
    assert lines[-1].startswith(f"{protocol} at {where}: {len(SUITES[protocol].checks)} checks, all passed")
    assert done.stderr == ""


@pytest.mark.parametrize("model", ["selectors", "asyncio", "forking"])
def test_every_concurrent_model_passes_the_line_checks(server: StartServer, model: str) -> None:
    started = server("services.upper", "--model", model)
    done = check("upper", target(started))
    assert done.code == 0, done.stdout


def test_our_iterative_model_fails_silent_client_by_design(server: StartServer) -> None:
    """One client at a time is the iterative model's nature: a silent client holds it until its idle timeout."""
    started = server("services.upper", "--model", "iterative")  # idle timeout 60 s: longer than the checker waits
    done = check("upper", target(started), "--json", "--timeout", "1")
    assert done.code == 1
    assert done.failed() == {"upper.silent-client"}, done.stdout


# --------------------------------------------------------------------------- wrong servers fail


@dataclass(frozen=True)
class Mistake:
    """A wrong server, the checks it must fail and some it must pass (as measured)."""

    script: str
    protocol: str
    fails: frozenset[str]
    passes: frozenset[str]
    only: str = ""


MISTAKES = [
    Mistake(
        "echo_one_recv",
        "echo",
        frozenset({"echo.tcp.1-mib", "echo.tcp.8-mib", "echo.tcp.slow-writes", "echo.tcp.slow-reader"}),
        frozenset({"echo.tcp.one-byte", "echo.tcp.1000-bytes"}),
        only="tcp.*",
    ),
    Mistake(
        "echo_send_not_sendall",
        "echo",
        frozenset({"echo.tcp.slow-reader"}),
        frozenset({"echo.tcp.one-byte", "echo.tcp.1000-bytes", "echo.tcp.slow-writes", "echo.tcp.coalesced"}),
        only="tcp.*",
    ),
    Mistake(
        "upper_no_framing",
        "upper",
        frozenset({"upper.coalesced", "upper.split-line", "upper.long-line"}),
        frozenset({"upper.one-line", "upper.silent-client"}),
    ),
    Mistake(
        "upper_iterative_no_timeout",
        "upper",
        frozenset({"upper.silent-client"}),
        frozenset(SUITES["upper"].names()) - {"upper.silent-client"},
    ),
    Mistake(
        "daytime_never_closes",
        "daytime",
        frozenset({"daytime.tcp.closes"}),
        frozenset({"daytime.tcp.one-line", "daytime.tcp.time", "daytime.tcp.client-talks-first"}),
        only="tcp.*",
    ),
    Mistake(
        "chat_blocking_broadcast",
        "chat",
        frozenset({"chat.slow-reader"}),
        frozenset(SUITES["chat"].names()) - {"chat.slow-reader"},
    ),
    Mistake(
        "doctor_one_recv",
        "doctor",
        frozenset({"doctor.coalesced", "doctor.split-line", "doctor.quit"}),
        frozenset({"doctor.greeting", "doctor.each-line"}),
    ),
    Mistake(
        "creosote_no_reassembly",
        "creosote",
        frozenset({"creosote.spew-chunks", "creosote.spew-reordered"}),
        frozenset({"creosote.ping", "creosote.rfc3164", "creosote.rfc5424"}),
    ),
]


@pytest.mark.parametrize("wrong", MISTAKES, ids=[m.script for m in MISTAKES])
def test_a_wrong_server_fails_the_check_that_names_its_mistake(mistake: StartMistake, wrong: Mistake) -> None:
    started = mistake(wrong.script)
    only = ["--only", wrong.only] if wrong.only else []
    done = check(wrong.protocol, f"{LOCAL}:{started.port}", *only, "--json", "--timeout", MISTAKE_TIMEOUT)
    assert done.code == 1, done.stdout + done.stderr
    assert wrong.fails <= done.failed(), done.stdout
    assert wrong.passes <= done.passed(), done.stdout
    for result in done.report()["checks"]:  # every failure says what happened, with what was sent and seen
        if not result["passed"]:
            assert result["detail"] and result["transcript"], result


def test_a_failure_prints_its_transcript_under_it(mistake: StartMistake) -> None:
    started = mistake("upper_no_framing")
    done = check("upper", f"{LOCAL}:{started.port}", "--only", "split-line", "--timeout", MISTAKE_TIMEOUT)
    assert done.code == 1
    failure, sent, answer, expected, summary = done.stdout.splitlines()
    assert failure.startswith('FAIL upper.split-line: answered half a line ("[')
    assert failure.endswith('] SL"): one recv is not one line')
    assert sent == '       > 2 B "sl"'
    assert answer.startswith('       < line "[') and answer.endswith('] SL"')
    assert expected == "       expected: no answer until the line's \\n arrives"
    assert summary.startswith(f"upper at {LOCAL}:{started.port}: 1 checks, 1 failed")


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port nobody listens on, held (bound, not listening) so nothing else takes it meanwhile."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind((LOCAL, 0))  # TCP: refused; UDP (creosote): nothing is bound there either, ICMP says so
        yield tcp.getsockname()[1]


@pytest.mark.parametrize("protocol", sorted(SUITES))
def test_an_unreachable_target_is_exit_2_and_one_line(protocol: str, closed_port: int) -> None:
    done = check(protocol, f"{LOCAL}:{closed_port}", "--timeout", "1")
    assert done.code == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("error: "), done.stderr
    assert str(closed_port) in done.stderr


def test_an_unreachable_target_with_json_is_a_report_with_an_error(closed_port: int) -> None:
    done = check("echo", f"{LOCAL}:{closed_port}", "--json", "--timeout", "1")
    assert done.code == 2
    report = done.report()
    assert report["passed"] is False and report["checks"] == []
    assert "refused" in report["error"]
    assert done.stderr.startswith("error: ")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["nosuch", "127.0.0.1:7"], "unknown protocol 'nosuch'"),
        (["echo", "127.0.0.1:7", "--only", "tcp.9-mib"], "no echo check is called tcp.9-mib"),
        (["echo"], "HOST:PORT is required"),
        (["echo", "127.0.0.1:70000"], "out of range"),
        (["echo", "127.0.0.1:0"], "port 0"),
        (["echo", "127.0.0.1:7", "--timeout", "0"], "must be greater than 0"),
    ],
)
def test_a_usage_error_is_exit_2(argv: list[str], says: str) -> None:
    done = check(*argv)
    assert done.code == 2
    assert says in done.stderr.splitlines()[-1], done.stderr


def test_the_json_report(server: StartServer) -> None:
    started = server("services.echo")
    done = check("echo", target(started), "--udp-port", started.fields["udp"], "--only", "tcp.one-byte,udp.*", "--json")
    assert done.code == 0, done.stdout
    report = done.report()
    assert set(report) == {"protocol", "target", "udp_port", "passed", "error", "seconds", "checks"}
    assert report["protocol"] == "echo" and report["target"] == target(started)
    assert report["udp_port"] == started.udp and report["passed"] is True and report["error"] is None
    assert [c["name"] for c in report["checks"]] == [
        "echo.tcp.one-byte",
        "echo.udp.datagrams",
        "echo.udp.empty-datagram",
    ]
    for one in report["checks"]:
        assert set(one) == {"name", "passed", "detail", "transcript", "seconds"}
        assert one["passed"] is True and one["transcript"] == [] and one["seconds"] >= 0


def test_a_line_server_by_its_service_name_and_default_port() -> None:
    done = check("iterative", "--list")
    assert done.code == 0
    assert [line.split()[0] for line in done.stdout.splitlines()] == SUITES["upper"].names()
