"""The Compose renderer: compose.yaml is exactly what topology/default.yaml renders to; routers and routes render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import compose
from lab.loader import load, load_text
from protocols.registry import SERVICES

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_compose_file_is_the_render_of_the_default_topology() -> None:
    rendered = compose.to_yaml(load(ROOT / "topology" / "default.yaml"), source_label="topology/default.yaml")
    checked_in = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    assert rendered == checked_in, (
        "compose.yaml differs from topology/default.yaml's render; "
        "regenerate it: lab render topology/default.yaml -o compose.yaml"
    )


def test_write_labels_the_source_relative_to_the_output(tmp_path: Path) -> None:
    topology = load(ROOT / "topology" / "default.yaml")
    text = compose.write(topology, tmp_path / "deep" / "compose.yaml").read_text(encoding="utf-8")
    assert text.startswith("# GENERATED from ")
    assert yaml.safe_load(text) == compose.render(topology)


def services(name: str) -> dict[str, Any]:
    document = compose.render(load(ROOT / "topology" / f"{name}.yaml"))
    result: dict[str, Any] = document["services"]
    return result


def test_default_lab_is_hardened_everywhere() -> None:
    document = compose.render(load(ROOT / "topology" / "default.yaml"))
    assert document["name"] == "testbed"
    for name, service in document["services"].items():
        assert service["cap_drop"] == ["ALL"], name
        assert service["security_opt"] == ["no-new-privileges:true"], name
        assert service["read_only"] is True and service["init"] is True, name
        assert "user" not in service and "cap_add" not in service, name  # the image's non-root user
        assert all(port.startswith("127.0.0.1:") for port in service.get("ports", [])), name
        assert service["labels"]["testbed.lab"] == "default", name
        # a server with a health check names the server it runs, so lab up can take its ready line (lab.readiness)
        ready_line = {"testbed.ready-line": SERVICES[name].protocol} if "healthcheck" in service else {}
        assert service["labels"] == {"testbed.lab": "default", **ready_line}, name
    assert document["networks"]["lab"]["labels"] == {"testbed.lab": "default"}
    assert document["volumes"]["creosote-log"]["labels"] == {"testbed.lab": "default"}
    assert document["services"]["iterative"]["profiles"] == ["models"]
    assert document["services"]["threaded"]["labels"]["testbed.ready-line"] == "upper"  # it logs `upper ready`
    assert document["services"]["client"]["profiles"] == ["tools"]


def test_two_lans_renders_the_router_with_forwarding_and_net_admin() -> None:
    router = services("two-lans")["router"]
    assert router["sysctls"] == {"net.ipv4.ip_forward": 1}
    assert router["cap_drop"] == ["ALL"] and router["cap_add"] == ["NET_ADMIN", "NET_RAW"]
    assert router["networks"] == {
        "clients": {"ipv4_address": "10.71.1.254"},
        "servers": {"ipv4_address": "10.71.2.254"},
    }
    assert router["labels"]["testbed.role"] == "router"


def test_two_lans_routes_go_in_one_shot_helpers_not_the_servers() -> None:
    rendered = services("two-lans")
    helper = rendered["daytime-routes"]
    assert helper["network_mode"] == "service:daytime"
    assert helper["command"] == ["sh", "-ec", "ip route replace 10.71.1.0/24 via 10.71.2.254"]
    assert helper["cap_add"] == ["NET_ADMIN"] and helper["restart"] == "no"
    assert rendered["client-routes"]["command"][-1] == "ip route replace 10.71.2.0/24 via 10.71.1.254"
    assert "cap_add" not in rendered["daytime"]
    assert compose.route_helpers(load(ROOT / "topology" / "two-lans.yaml")) == (
        "client-routes",
        "daytime-routes",
        "echo-routes",
    )


def test_names_behind_the_router_resolve_through_extra_hosts() -> None:
    rendered = services("two-lans")
    assert rendered["client"]["extra_hosts"] == ["daytime:10.71.2.13", "echo:10.71.2.10"]
    assert rendered["daytime"]["extra_hosts"] == ["client:10.71.1.10"]
    assert rendered["client"]["networks"] == {"clients": {"ipv4_address": "10.71.1.10"}}


def test_routers_behind_routers_get_their_routes_in_their_own_command() -> None:
    gw_b = services("wan")["gw-b"]
    assert gw_b["command"] == ["sh", "-ec", "ip route replace 10.72.1.0/24 via 10.72.0.2; exec sleep infinity"]


def test_other_labs_get_their_own_project_and_labels() -> None:
    document = compose.render(load(ROOT / "topology" / "relay.yaml"))
    assert document["name"] == "testbed-relay"
    assert {s["labels"]["testbed.lab"] for s in document["services"].values()} == {"relay"}
    # Redirectors record nothing: only the sink keeps a log volume.
    assert list(document["volumes"]) == ["sink-log"]
    assert document["services"]["relay-1"]["ports"] == ["127.0.0.1:27739:7739/udp"]


@pytest.mark.parametrize("name", ["default", "two-lans", "wan", "relay"])
def test_rendered_text_is_the_document(name: str) -> None:
    topology = load(ROOT / "topology" / f"{name}.yaml")
    assert yaml.safe_load(compose.to_yaml(topology, source_label="x")) == compose.render(topology)


def test_command_override_and_string_commands() -> None:
    topology = load_text(
        "name: c\nnetworks: [lab]\nnodes:\n"
        "  - {name: t, service: threaded, command: 'python3 -m services.upper --model forking'}\n",
        source="c.yaml",
    )
    assert compose.render(topology)["services"]["t"]["command"][-2:] == ["--model", "forking"]


def test_every_long_running_container_rotates_its_log() -> None:
    """Docker keeps output forever unless told: each server's log is capped (max-size x max-file)."""
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for name, service in services.items():
        if service.get("restart", "no") != "no":
            options = service["logging"]["options"]
            assert options["max-size"] == "10m" and options["max-file"] == "3", name


# --------------------------------------------------------------------------- health checks for both engine eras


def test_the_lab_file_runs_on_every_engine_and_the_override_is_its_render() -> None:
    """compose.yaml has no start_interval (Compose refuses it before Docker 25); the override is rendered too."""
    topology = load(ROOT / "topology" / "default.yaml")
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert not [name for name, body in services.items() if "start_interval" in body.get("healthcheck", {})]
    rendered = compose.engine_override(
        topology, source_label="topology/default.yaml", output_name="compose.engine25.yaml"
    )
    assert rendered == (ROOT / "compose.engine25.yaml").read_text(encoding="utf-8"), (
        "compose.engine25.yaml differs from its render; regenerate it: "
        "lab render topology/default.yaml --engine-override -o compose.engine25.yaml"
    )


def test_the_override_times_exactly_the_checked_services_and_merges_into_the_rendering_for_new_engines() -> None:
    topology = load(ROOT / "topology" / "default.yaml")
    document = compose.render(topology)
    checked = {name for name, body in document["services"].items() if "healthcheck" in body}
    override = yaml.safe_load(compose.engine_override(topology, source_label="t.yaml", output_name="o.yaml"))[
        "services"
    ]
    assert set(override) == checked and checked
    modern = compose.with_start_interval(document)
    for name in checked:
        merged = {**document["services"][name]["healthcheck"], **override[name]["healthcheck"]}
        assert modern["services"][name]["healthcheck"] == merged
        assert merged["start_interval"] == "250ms" and merged["interval"] == "30s"
        assert document["services"][name]["healthcheck"]["interval"] == "1s"  # the input is left alone
    assert compose.with_start_interval(document)["networks"] == document["networks"]


def test_the_engine_version_for_start_interval_is_written_once_for_the_scripts_too() -> None:
    common = (ROOT / "scripts" / "common.sh").read_text(encoding="utf-8")
    bench = (ROOT / "scripts" / "bench-lab").read_text(encoding="utf-8")
    assert f"ENGINE_MIN_MAJOR={compose.START_INTERVAL_ENGINE}\n" in common
    assert f"START_INTERVAL_ENGINE = {compose.START_INTERVAL_ENGINE}\n" in bench
