"""creosote, the UDP log sink, in its container: many senders, chunking, real syslog, restarts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from common.waiting import wait_until
from lab.testing import Lab, Node

LOG = "/var/log/creosote/records.jsonl"

Record = dict[str, Any]  # one JSON line of the sink's log: its fields depend on the record's format


@pytest.fixture(scope="module")
def sink(lab: Lab) -> Node:
    volume = lab.volume("creosote-log")
    return lab.start_server(
        "creosote",
        command=["python3", "-m", "services.creosote", "--log-file", LOG, "--reassembly-timeout", "1"],
        volumes={volume: "/var/log/creosote"},
    )


def records(node: Node) -> list[Record]:
    code, output = node.exec("cat", LOG)
    assert code == 0, output
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def wait_for_records(
    node: Node, predicate: Callable[[Record], bool], *, count: int = 1, timeout: float = 10.0
) -> list[Record]:
    """Poll the sink's log file until ``count`` records match (a deadline, never a fixed sleep)."""
    found: list[Record] = []

    def enough() -> list[Record] | None:
        nonlocal found
        found = [r for r in records(node) if predicate(r)]
        return found if len(found) >= count else None

    try:
        return wait_until(enough, timeout=timeout, interval=0.1, what=f"{count} records")
    except TimeoutError:
        raise AssertionError(
            f"{len(found)} of {count} records after {timeout} s; log tail:\n{node.logs()[-2000:]}"
        ) from None


def text_is(text: str) -> Callable[[Record], bool]:
    """A predicate for ``wait_for_records`` (bound now, not to a loop variable read later)."""
    return lambda r: r.get("text") == text


def test_three_client_hosts_at_once(lab: Lab, sink: Node) -> None:
    senders = [
        lab.start_client(
            "python3",
            "-m",
            "clients.spew",
            "--host",
            "creosote",
            "--count",
            "50",
            "--interval",
            "0.001",
            f"hello from sender-{i}",
            hostname=f"sender-{i}",
        )
        for i in range(3)
    ]
    for sender in senders:
        lab.finish(sender).check()
    for i in range(3):
        got = wait_for_records(sink, text_is(f"hello from sender-{i}"), count=50)
        assert len({r["source_host"] for r in got}) == 1  # each sender seen from its own address


def test_long_message_is_chunked_and_reassembled(lab: Lab, sink: Node) -> None:
    script = (
        "import sys; from clients.spew import spew; "
        "sys.exit(0 if spew(b'A' * 100000 + b'END', 'creosote', 7739, max_datagram=1400) else 1)"
    )
    lab.run_client("python3", "-c", script).check()
    [record] = wait_for_records(sink, lambda r: str(r.get("text", "")).endswith("END"))
    assert record["size"] == 100003
    assert int(record["chunks"]) > 70


def test_lost_chunk_is_counted(lab: Lab, sink: Node) -> None:
    script = (
        "import socket; from protocols.creosote import encode_chunks\n"
        "parts = encode_chunks(b'x' * 5000, 0xbeef, 1000)\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "[s.sendto(p, ('creosote', 7739)) for i, p in enumerate(parts) if i != 2]\n"
    )
    lab.run_client("python3", "-c", script).check()

    def given_up() -> str | None:
        logs = sink.logs()
        return logs if "incomplete" in logs else None

    logs = wait_until(given_up, timeout=10, interval=0.1, what="the sink to give the message up")
    assert "lost=" in logs, logs[-2000:]


@pytest.mark.parametrize("style", ["--rfc5424", "--rfc3164"])
def test_real_syslog_sender(lab: Lab, sink: Node, style: str) -> None:
    marker = f"syslog-{style.strip('-')}-{time.monotonic_ns()}"
    lab.run_client("logger", "-n", "creosote", "-P", "7739", "-d", style, "-t", "labtest", marker).check()
    [record] = wait_for_records(sink, lambda r: r.get("message") == marker)
    assert record["format"] == style.strip("-")
    assert record["app_name"] == "labtest"


def test_restart_loses_no_record_written_before_it(lab: Lab, sink: Node) -> None:
    lab.run_client(
        "python3",
        "-m",
        "clients.spew",
        "--host",
        "creosote",
        "--count",
        "200",
        "--interval",
        "0.001",
        "before-restart",
    ).check()
    wait_for_records(sink, lambda r: r.get("text") == "before-restart", count=200)
    sink.restart()
    after = [r for r in records(sink) if r.get("text") == "before-restart"]
    assert len(after) == 200
    lab.run_client("python3", "-m", "clients.spew", "--host", "creosote", "after-restart").check()
    wait_for_records(sink, lambda r: r.get("text") == "after-restart")
    assert len([r for r in records(sink) if r.get("text") == "before-restart"]) == 200


def test_garbage_datagrams_do_not_stop_the_sink(lab: Lab, sink: Node) -> None:
    script = (
        "import os, socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "for size in (0, 1, 65000, 3000):\n"
        "    s.sendto(os.urandom(size), ('creosote', 7739))\n"
        "s.sendto(b'\\x00creosote1 zz 9/1\\n', ('creosote', 7739))\n"
    )
    lab.run_client("python3", "-c", script).check()
    result = lab.run_client("python3", "-m", "clients.probe", "creosote", "--host", "creosote").check()
    assert "creosote ok" in result.stdout
    wait_for_records(sink, lambda r: r.get("size") == 65000)
