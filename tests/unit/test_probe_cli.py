"""``python -m clients.probe``: what it checks for each way of naming a server, refused before any packet."""

from __future__ import annotations

import pytest

from clients import probe
from protocols.registry import SERVICES, Port


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["smtp", "--port", "25"], "unknown protocol 'smtp'"),
        (["upper"], "upper needs the ports to check"),
        (["tcp"], "tcp needs the ports to check"),
        (["upper", "--port", "9000/udp"], "upper has no check over udp (9000/udp)"),
        (["threaded", "--port", "9000/udp"], "upper has no check over udp"),  # a service's name: its protocol
        (["udp", "--port", "53"], "udp has no check over tcp (53/tcp)"),
        (["echo", "--port", "7/sctp"], "is not a port"),
        (["echo", "--timeout", "0"], "--timeout: give a positive number"),
    ],
)
def test_a_check_it_cannot_make_is_refused_with_its_reason(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        probe.main(argv)
    assert refused.value.code == 2
    assert says in capsys.readouterr().err


def test_a_service_name_means_its_protocol_on_its_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str, tuple[Port, ...]]] = []

    def record(protocol: str, host: str, ports: list[Port], *, timeout: float) -> str:
        asked.append((protocol, host, tuple(ports)))
        return "ok"

    monkeypatch.setattr(probe, "probe", record)
    probe.main(["forking", "--host", "forking"])
    probe.main(["forking", "--port", "19002"])
    probe.main(["echo", "--port", "7007", "--port", "7007/udp"])
    assert asked == [
        ("upper", "forking", SERVICES["forking"].ports),
        ("upper", "127.0.0.1", (Port(19002, "tcp"),)),
        ("echo", "127.0.0.1", (Port(7007, "tcp"), Port(7007, "udp"))),
    ]
