"""What ``lab ps`` says of host ports: Docker's bindings read, the probes summed up, the verdict and the advice."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab import reach
from lab.backends import Row, table
from lab.reach import Published, Reach

TCP = Published("127.0.0.1", 15000, 5000, "tcp")
UDP = Published("127.0.0.1", 10007, 7, "udp")
RESTART = "docker restart testbed-default-chat-1"


def test_bindings_asked_for_are_read_with_the_port_docker_chose_when_it_chose() -> None:
    bindings = {
        "7/tcp": [{"HostIp": "127.0.0.1", "HostPort": "10007"}],
        "7/udp": [{"HostIp": "127.0.0.1", "HostPort": "10007"}],
        "9/tcp": [{"HostIp": "127.0.0.1", "HostPort": "0"}],
        "13/tcp": [{"HostIp": "", "HostPort": ""}],
    }
    bound = {"9/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32771"}], "7/tcp": None}
    found = reach.published_from_docker(bindings, bound)  # type: ignore[arg-type]  # Docker's JSON as it comes
    assert [str(p) for p in found] == [
        "0.0.0.0:0->13/tcp",  # left to Docker, and nothing bound now (a node cut off its network)
        "127.0.0.1:10007->7/tcp",
        "127.0.0.1:10007->7/udp",
        "127.0.0.1:32771->9/tcp",
    ]


@pytest.mark.parametrize(
    ("host_ip", "address"),
    [("127.0.0.1", "127.0.0.1:80"), ("*", "127.0.0.1:80"), ("0.0.0.0", "127.0.0.1:80"), ("::", "[::1]:80")],
)
def test_a_wildcard_binding_is_probed_on_the_loopback(host_ip: str, address: str) -> None:
    assert Published(host_ip, 80, 8080, "tcp").address == address


@pytest.mark.parametrize(
    ("reaches", "cell"),
    [
        ([], ""),
        ([Reach(TCP, "ok")], "tcp ok"),
        ([Reach(TCP, "ok"), Reach(UDP, "not probed", "udp")], "tcp ok, udp not probed"),
        ([Reach(UDP, "not probed", "udp")], "udp not probed"),
        ([Reach(TCP, "refused")], "15000/tcp refused"),
        ([Reach(TCP, "closed"), Reach(UDP, "not probed", "udp")], "15000/tcp closed at once, udp not probed"),
        ([Reach(TCP, "timeout")], "15000/tcp no answer in 1 s"),
        ([Reach(TCP, "failed", "EHOSTUNREACH")], "15000/tcp failed (EHOSTUNREACH)"),
        ([Reach(TCP, "not probed", "published on box-2")], "15000/tcp not probed (published on box-2)"),
    ],
)
def test_the_cell_says_what_each_port_did(reaches: list[Reach], cell: str) -> None:
    assert reach.summary(reaches) == cell


@pytest.mark.parametrize(
    ("state", "reaches", "said"),
    [
        ("running (healthy)", [Reach(TCP, "refused")], "healthy, host port 127.0.0.1:15000 refused"),
        ("running", [Reach(TCP, "closed")], "running, host port 127.0.0.1:15000 closed at once"),
        (
            "running (healthy)",
            [Reach(TCP, "refused"), Reach(Published("127.0.0.1", 15001, 5001, "tcp"), "timeout")],
            "healthy, host port 127.0.0.1:15000 refused; host port 127.0.0.1:15001 no answer in 1 s",
        ),
        ("running (healthy)", [Reach(TCP, "ok"), Reach(UDP, "not probed", "udp")], None),
        ("running (healthy)", [Reach(TCP, "not probed", "the engine runs on another machine")], None),
        ("running (healthy)", [], None),
    ],
)
def test_the_verdict_puts_what_docker_says_beside_what_this_machine_saw(
    state: str, reaches: list[Reach], said: str | None
) -> None:
    assert reach.verdict(state, reaches) == said


def test_a_refusal_points_at_the_proxy_and_the_restart_that_replaces_it() -> None:
    advice = reach.advice([Reach(TCP, "refused")], restart=RESTART)
    assert "port proxy" in advice and "health check runs inside the container" in advice
    assert advice.endswith(RESTART)


def test_a_node_cut_off_its_network_is_healed_not_restarted() -> None:
    advice = reach.advice([Reach(TCP, "refused")], restart=RESTART, cut_off=True)
    assert "lab heal" in advice and RESTART not in advice


def test_a_hang_up_points_at_the_server_inside_not_the_proxy() -> None:
    advice = reach.advice([Reach(TCP, "closed")], restart=RESTART, logs="lab logs -t x chat")
    assert "nothing listens behind it" in advice and advice.endswith("lab logs -t x chat")


def test_udp_and_unbound_ports_are_not_probed_and_no_socket_is_opened() -> None:
    assert reach.probe(UDP) == Reach(UDP, "not probed", "udp")
    unbound = Published("0.0.0.0", 0, 9, "tcp")
    assert reach.probe(unbound) == Reach(unbound, "not probed", "no host port bound now")


def test_the_table_has_a_column_for_the_probes_only_when_there_were_probes() -> None:
    rows = [
        Row("chat", "node", "running (healthy)", "lab=10.0.0.5", (TCP,), probes=(Reach(TCP, "refused"),)),
        Row("creosote", "node", "running (healthy)", "lab=10.0.0.4", (UDP,), probes=(Reach(UDP, "not probed"),)),
    ]
    lines = table(rows).splitlines()
    assert lines[0].endswith("  FROM THIS HOST")
    assert lines[1].startswith("chat") and lines[1].endswith("127.0.0.1:15000->5000/tcp  15000/tcp refused")
    assert lines[2].endswith("udp not probed")
    unprobed = table([Row("chat", "node", "running (healthy)", "lab=10.0.0.5", (TCP,))]).splitlines()
    assert "FROM THIS HOST" not in unprobed[0] and unprobed[1].endswith("127.0.0.1:15000->5000/tcp")


@pytest.mark.parametrize(
    ("probe", "protocol"),
    [
        (["sh", "/opt/testbed/clients/healthcheck.sh", "echo", "7/tcp", "7/udp"], "echo"),
        (["sh", "/opt/testbed/clients/healthcheck.sh", "upper", "9000/tcp"], "upper"),
        (["sh", "/opt/testbed/clients/healthcheck.sh", "tcp", "8080/tcp"], "tcp"),  # a program node's: no line
        (["/bin/sh", "-c", "nc -z 127.0.0.1 80"], ""),  # the image's own check
        (["sh", "/opt/testbed/clients/healthcheck.sh"], ""),  # no protocol after it
        (None, ""),  # no health check
    ],
)
def test_the_probe_speaks_the_protocol_of_the_nodes_own_health_check(probe: list[str] | None, protocol: str) -> None:
    assert reach.checked_protocol(probe) == protocol


def test_only_protocols_where_the_client_speaks_first_get_a_line() -> None:
    assert set(reach.OPENINGS) == {"echo", "upper"}  # daytime, chat and doctor speak first; tcp is any server
    bindings = {"7/tcp": [{"HostIp": "127.0.0.1", "HostPort": "10007"}]}
    assert [p.protocol for p in reach.published_from_docker(bindings, {}, protocol="echo")] == ["echo"]  # type: ignore[arg-type]


def test_the_line_sent_first_is_the_one_the_health_check_sends() -> None:
    # healthcheck.sh and the probe here speak to the same servers: one line, held equal across the two languages.
    script = (Path(__file__).resolve().parents[2] / "clients" / "healthcheck.sh").read_text(encoding="utf-8")
    for protocol, line in reach.OPENINGS.items():
        sent = re.search(rf"^\s*{protocol}/tcp\) tcp_line \"\$1\" '([^']*)'", script, re.MULTILINE)
        assert sent is not None, f"healthcheck.sh has no {protocol}/tcp check"
        assert sent.group(1).replace("\\n", "\n").encode() == line, protocol
