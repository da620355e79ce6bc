"""Naming workloads on the command line, and reading the sink's records file: pure parts of lab.chaos.workloads."""

from __future__ import annotations

import json

import pytest

from lab.chaos.workloads import Workload, parse_list, sequence_numbers


def test_a_workload_talks_to_its_namesake_on_the_services_port_unless_told() -> None:
    assert parse_list("chat,creosote,echo,threaded") == [
        Workload("chat", "chat", 5000), Workload("creosote", "creosote", 7739), Workload("echo", "echo", 7),
        Workload("threaded", "threaded", 9000),
    ]  # fmt: skip
    assert Workload.parse("echo=my-echo:7007") == Workload("echo", "my-echo", 7007)
    assert Workload.parse("threaded=web") == Workload("threaded", "web", 9000)
    assert parse_list("none") == [] and parse_list("") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("daytime", "unknown workload 'daytime': write one of chat, creosote, echo, threaded"),
        ("echo=x:port", "'port' is not a port; write echo=x:7"),
        ("echo=x:70000", "'70000' is not a port"),
        ("chat,chat", "workload chat named twice"),
    ],
)
def test_a_bad_workload_says_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_list(text)


def test_the_argv_carries_the_tag_and_a_limit_of_its_own() -> None:
    argv = Workload("echo", "my-echo", 7007).argv("abcd")
    assert argv[:3] == ["python3", "-m", "clients.workloads.echo"]
    assert argv[argv.index("--host") + 1] == "my-echo" and argv[argv.index("--port") + 1] == "7007"
    assert argv[argv.index("--tag") + 1] == "abcd" and "--max-seconds" in argv


def test_only_the_runs_own_records_are_counted_duplicates_twice() -> None:
    lines = [json.dumps({"text": text}) for text in ("chaos abcd 1", "chaos abcd 2", "chaos other 3", "chaos abcd 2",
                                                     "hello", "chaos abcd x")]  # fmt: skip
    lines += ["not json", json.dumps({"base64": "AAEC", "text": None})]
    assert sequence_numbers("\n".join(lines), "abcd") == [1, 2, 2]
