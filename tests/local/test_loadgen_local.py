"""The load generators as the bench image runs them, against servers on 127.0.0.1.

The Python ones as ``python -S -m bench.loadgen`` (``-S`` leaves site-packages
out, as in the image: only the standard library and this checkout); the compiled
ones built from ``bench/native`` with this host's compiler (skipped without one).
Each run is a few tenths of a second of load on loopback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench import generators
from clients.common import ClientError
from clients.spew import ping
from common.waiting import wait_until
from lab.testing import in_ci
from tests.local.conftest import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
LOCAL = "127.0.0.1"
Start = Callable[..., ServerProcess]


def loadgen(*argv: str) -> dict[str, Any]:
    """Run one load generator; its JSON result (it must exit 0 and print nothing else)."""
    done = subprocess.run([sys.executable, "-S", "-m", "bench.loadgen", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_upper_measures_closed_loop_requests_with_every_reply_checked(server: Start) -> None:
    upper = server("services.upper", "--model", "selectors")
    result = loadgen("upper", "--host", "127.0.0.1", "--port", str(upper.tcp), "--conns", "4", "--procs", "2",
                     "--duration", "0.3", "--warmup", "0.1", "--size", "64")
    assert (result["conns"], result["errors"], result["starved"], result["procs"]) == (4, 0, 0, 2)
    assert result["requests"] > 0 and result["rps"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["t0_ns"] < result["t1_ns"] and 0.25 < result["window_s"] < 1


def test_upper_counts_wrong_replies_as_errors(server: Start) -> None:
    echo = server("services.echo")  # answers, but not upper-cased and stamped
    result = loadgen("upper", "--target", f"127.0.0.1:{echo.tcp}", "--conns", "2", "--duration", "0.2",
                     "--warmup", "0.05", "--timeout", "1")
    [run] = result["runs"]
    assert run["requests"] == 0 and run["error_kinds"] == {"wrong reply": 2}


def test_udp_paces_datagrams_and_never_sends_more_than_asked(server: Start) -> None:
    sink = server("services.creosote")
    result = loadgen("udp", "--host", "127.0.0.1", "--port", sink.fields["port"], "--size", "100", "--rate", "2000",
                     "--duration", "0.3", "--procs", "2")
    assert (result["size"], result["send_errors"], result["procs"]) == (100, 0, 2)
    asked = 2000 * result["elapsed_s"]
    assert asked * 0.5 < result["sent"] <= asked + 2  # one datagram of rounding per sender


def test_chat_delivers_every_message_to_every_other_member(server: Start) -> None:
    chat = server("services.chat")
    result = loadgen("chat", "--chat", f"127.0.0.1:{chat.tcp}", "--clients", "4", "--senders", "2",
                     "--duration", "0.3", "--warmup", "0.1", "--rounds", "1", "--procs", "1")
    assert (result["clients"], result["senders"], result["fanout"]) == (4, 2, 3)
    [phase] = result["phases"]
    assert phase["target"] == "chat" and phase["errors"] == 0
    assert phase["messages"] > 0 and phase["deliveries"] >= phase["messages"]
    assert 0 < phase["p50_ms"] <= phase["p99_ms"]


# --------------------------------------------------------------------------- the compiled generators


def records(port: int) -> int | None:
    """A local sink's record count (None while it does not answer)."""
    try:
        return ping(LOCAL, port, timeout=0.5)
    except ClientError:
        return None


@pytest.fixture(scope="session")
def native(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bench/native built with this host's compiler, as the bench image's build stage builds it."""
    if not (shutil.which("make") and shutil.which("cc")):
        if in_ci():
            pytest.fail("make and cc are required in CI (scripts/setup installs them on Debian)")
        pytest.skip("no make and cc on this host (the bench image builds bench/native with Debian's gcc)")
    out = tmp_path_factory.mktemp("native")
    done = subprocess.run(["make", "-s", "-C", str(ROOT / "bench" / "native"), f"OUT={out}"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


def test_the_compiled_sender_paces_what_it_sends_and_the_sink_gets_every_datagram(server: Start,
                                                                                   native: Path) -> None:
    sink = server("services.creosote")
    done = subprocess.run([str(native / "bench-udp-sender"), "--host", LOCAL, "--port", sink.fields["port"],
                           "--size", "100", "--rate", "5000", "--duration", "0.4", "--batch", "8"],
                          capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stderr) == (0, "")
    trial = generators.read_result(done.stdout)
    assert (trial["generator"], trial["size"], trial["send_errors"], trial["batch"]) == ("udp-sendmmsg", 100, 0, 8)
    asked = 5000 * trial["elapsed_s"]
    assert asked - 8 - 5000 * 0.02 <= trial["sent"] <= asked + 1  # paced: never ahead, at most a batch behind
    assert 0.35 < trial["elapsed_s"] < 0.6 and trial["t1_ns"] > trial["t0_ns"]
    assert 0 < trial["loadgen_cpu_s"] < trial["elapsed_s"]
    # Every datagram is a whole record: the sink's count reaches what was sent.
    wait_until(lambda: records(int(sink.fields["port"])) == trial["sent"], timeout=5,
               what="the sink to count every datagram sent")


def test_a_sender_short_of_the_rate_says_so_and_still_stops_on_time(server: Start, native: Path) -> None:
    sink = server("services.creosote", "--raw", "--log-file", "/dev/null")
    done = subprocess.run([str(native / "bench-udp-sender"), "--host", LOCAL, "--port", sink.fields["port"],
                           "--rate", "1000000000", "--duration", "0.3"], capture_output=True, text=True, timeout=30)
    trial = generators.judge(generators.read_result(done.stdout))
    assert trial["elapsed_s"] < 0.5  # behind from the first moment, it does not try to catch up past --duration
    assert trial["rate_sent"] < 0.97 * trial["rate_asked"]
    assert trial["generator_bound"] is not None and trial["generator_bound"].startswith("generator sent ")


@pytest.mark.parametrize(("argv", "why"), [
    ([], "--host and --port are required"),
    (["--host", LOCAL, "--port", "9", "--rate", "0"], "--rate must be at least 1 and under 2e9 datagrams/s"),
    (["--host", LOCAL, "--port", "9", "--rate", "9", "--duration", "0"],
     "--duration must be more than 0 and under 86400 seconds"),
    (["--host", LOCAL, "--port", "9", "--rate", "10", "--size", "20"], "--size must be 55 to 65507 bytes"),
    (["--host", LOCAL, "--port", "9", "--rate", "10", "--batch", "5000"], "--batch must be 1 to 1024"),
    (["--host", LOCAL, "--port", "9", "--rate", "ten"], "a number was expected"),
    (["--host", LOCAL, "--port", "9", "--rate", "10", "--bogus", "1"], "unknown option"),
    (["--host", LOCAL, "--port"], "every option takes a value"),
])
def test_the_compiled_sender_refuses_bad_options_in_one_line(native: Path, argv: list[str], why: str) -> None:
    done = subprocess.run([str(native / "bench-udp-sender"), *argv], capture_output=True, text=True, timeout=10)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"error: {why} (usage: bench-udp-sender ") and done.stderr.count("\n") == 1


def test_the_compiled_chat_driver_delivers_every_message_to_every_other_member(server: Start, native: Path) -> None:
    chat = server("services.chat")
    done = subprocess.run([str(native / "bench-chat-driver"), "--chat", f"{LOCAL}:{chat.tcp}", "--clients", "4",
                           "--senders", "2", "--duration", "0.3", "--warmup", "0.1", "--rounds", "2"],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    result = generators.read_result(done.stdout)
    assert (result["generator"], result["clients"], result["senders"], result["fanout"]) == ("chat-epoll", 4, 2, 3)
    assert set(result["setup_s"]) == {"chat"}
    assert [phase["target"] for phase in result["phases"]] == ["chat", "chat"]
    for phase in result["phases"]:
        assert phase["errors"] == 0 and phase["messages"] > 0
        # Each message reaches the 3 other members; the window may cut short each of the 2 senders' messages in
        # flight at its start and at its end (3 members x 2 senders x 2 edges).
        edges = 3 * 2 * 2
        assert 3 * phase["messages"] - edges <= phase["deliveries"] <= 3 * phase["messages"] + edges
        assert 0 < phase["p50_ms"] <= phase["p95_ms"] <= phase["p99_ms"]
        assert 0.25 < phase["window_s"] < 1 and 0 < phase["busiest_cpu_s"] == phase["loadgen_cpu_s"]


@pytest.mark.parametrize(("argv", "why"), [
    ([], "give --chat, --redis or both"),
    (["--chat", "nowhere"], "--chat and --redis take HOST:PORT"),
    (["--chat", f"{LOCAL}:1", "--clients", "1"], "--clients must be 2 or more"),
    (["--chat", f"{LOCAL}:1", "--duration", "0"], "--duration and --timeout must be more than 0"),
])
def test_the_compiled_chat_driver_refuses_bad_options_in_one_line(native: Path, argv: list[str], why: str) -> None:
    done = subprocess.run([str(native / "bench-chat-driver"), *argv], capture_output=True, text=True, timeout=10)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"error: {why}") and done.stderr.count("\n") == 1
