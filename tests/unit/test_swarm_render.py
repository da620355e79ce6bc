"""The Swarm renderer: the same topology as a stack file, in words ``docker stack deploy`` (Docker 20.10) takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import compose, swarm
from lab.catalogue import SERVICES
from lab.loader import TopologyError, load, load_text

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "topology" / "default.yaml"
# Keys Swarm ignores or refuses (checked with docker stack config/deploy on 20.10): never rendered.
NOT_FOR_SWARM = {"restart", "security_opt", "tmpfs", "mem_limit", "pids_limit", "profiles", "pull_policy"}
PLACED = """\
name: placed
networks: [lab]
nodes:
  - name: east
    service: echo
    placement: {labels: {zone: east}, role: worker}
  - name: anywhere
    service: daytime
    publish: [10013]
"""


def stack(name: str = "default", **options: Any) -> dict[str, Any]:
    document: dict[str, Any] = swarm.render(load(ROOT / "topology" / f"{name}.yaml"), **options)
    return document


def test_default_lab_is_one_service_per_server_on_an_attachable_overlay() -> None:
    document = stack(image="sha256:abc")
    assert document["version"] == "3.9"
    assert list(document["services"]) == ["daytime", "echo", "creosote", "chat", "doctor", "threaded"]
    assert document["networks"] == {
        "lab": {"driver": "overlay", "attachable": True, "labels": {"testbed.lab": "default"}}
    }
    assert document["volumes"] == {"creosote-log": {"labels": {"testbed.lab": "default"}}}
    assert {s["image"] for s in document["services"].values()} == {"sha256:abc"}


def test_every_service_uses_dns_round_robin_and_host_mode_ports() -> None:
    topology = load(DEFAULT)
    for name, service in stack()["services"].items():
        node = topology.member(name)
        assert node is not None
        assert service["deploy"]["endpoint_mode"] == "dnsrr", name  # no VIP: no IPVS needed
        assert service["hostname"] == name
        assert service["ports"] == [
            {"target": p.container, "published": p.host, "protocol": p.protocol, "mode": "host"} for p in node.publish
        ], name


def test_hardening_carries_over_where_swarm_has_it() -> None:
    for name, service in stack()["services"].items():
        spec = SERVICES[name]
        assert service["cap_drop"] == ["ALL"] and service["read_only"] is True and service["init"] is True, name
        assert not NOT_FOR_SWARM & set(service), name
        assert service["volumes"][0] == {"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": 16 * 1024 * 1024}}
        assert service["deploy"]["resources"] == {"limits": {"memory": spec.mem_limit, "pids": spec.pids_limit}}
        assert service["deploy"]["restart_policy"] == {"condition": "any", "delay": "1s"}
        assert service["healthcheck"] == compose.healthcheck(spec)
        assert service["labels"] == {"testbed.lab": "default", "testbed.node": name}
        assert service["deploy"]["labels"] == {"testbed.lab": "default"}
    assert stack()["services"]["creosote"]["volumes"][1] == "creosote-log:/var/log/creosote"


def test_profiles_are_chosen_when_rendering_and_clients_are_left_out() -> None:
    models = stack(profiles=["models"])["services"]
    assert {"iterative", "forking", "selectors", "asyncio"} <= set(models)
    topology = load(DEFAULT)
    assert "client" not in stack(profiles=["tools"])["services"]
    assert [n.name for n in swarm.left_out(topology, ["tools"])] == ["client"]
    assert swarm.left_out(topology) == ()


def test_port_offset_moves_every_published_port() -> None:
    daytime = stack(port_offset=20000)["services"]["daytime"]
    assert [p["published"] for p in daytime["ports"]] == [30013, 30013]
    with pytest.raises(ValueError, match="outside 1-65535"):
        stack(port_offset=60000)


def test_placement_becomes_constraints_and_compose_ignores_it() -> None:
    topology = load_text(PLACED, source="placed.yaml")
    services = swarm.render(topology)["services"]
    assert services["east"]["deploy"]["placement"] == {
        "constraints": ["node.labels.zone == east", "node.role == worker"]
    }
    assert "placement" not in services["anywhere"]["deploy"]
    unplaced = load_text(PLACED.replace("    placement: {labels: {zone: east}, role: worker}\n", ""), source="p.yaml")
    assert compose.render(topology) == compose.render(unplaced)


def test_routers_are_refused_with_the_line_of_routers() -> None:
    path = ROOT / "topology" / "two-lans.yaml"
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("routers:"))
    with pytest.raises(TopologyError) as caught:
        swarm.render(load(path))
    assert str(caught.value) == (
        f"{path}:{line}: routers: lab up --swarm does not support routers yet (router); "
        "run this lab with lab up (Compose), or put the nodes on one network for Swarm"
    )


def test_subnets_are_kept_and_addresses_left_to_swarm() -> None:
    topology = load_text(
        "name: s\nnetworks:\n  - {name: lan, subnet: 10.77.0.0/24}\nnodes:\n"
        "  - {name: e, service: echo, networks: {lan: 10.77.0.20}}\n",
        source="s.yaml",
    )
    document = swarm.render(topology)
    assert document["networks"]["lan"]["ipam"] == {"config": [{"subnet": "10.77.0.0/24"}]}
    assert document["services"]["e"]["networks"] == ["lan"]


@pytest.mark.parametrize("profiles", [(), ("models", "tools")])
def test_text_is_the_document_and_says_how_it_differs(profiles: tuple[str, ...]) -> None:
    topology = load(DEFAULT)
    text = swarm.to_yaml(topology, source_label="topology/default.yaml", profiles=profiles)
    assert yaml.safe_load(text) == swarm.render(topology, profiles=profiles)
    assert text.startswith("# GENERATED from topology/default.yaml for Docker Swarm")
    assert "EVERY interface" in text and "docker stack deploy --resolve-image never" in text
    assert ("docker run --rm --network testbed_lab" in text) == ("tools" in profiles)


def test_stack_name_is_the_compose_project() -> None:
    assert swarm.stack_name(load(DEFAULT)) == "testbed"
    assert swarm.stack_name(load(ROOT / "topology" / "relay.yaml")) == "testbed-relay"
