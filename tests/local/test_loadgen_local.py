"""The load generators as the bench image runs them (``python -S -m bench.loadgen``), against servers on 127.0.0.1.

``-S`` leaves site-packages out, as in the image: only the standard library and
this checkout. Each run is a few tenths of a second of load on loopback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.local.conftest import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
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
