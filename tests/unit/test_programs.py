"""Nodes of the user's own program (code:, image:, build:): read with file:line errors, rendered hardened."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import compose, swarm
from lab.loader import TopologyError, load_text
from lab.model import Probe, Program, Topology
from protocols import registry

ROOT = Path(__file__).resolve().parents[2]


def topology(tmp_path: Path, nodes: str) -> Topology:
    source = tmp_path / "lab.yaml"
    text = f"name: mine\nnetworks: [lan]\nnodes:\n{nodes}"
    source.write_text(text)
    return load_text(text, source=source)


def problems(tmp_path: Path, nodes: str) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        topology(tmp_path, nodes)
    return [str(p) for p in caught.value.problems]


def test_a_code_file_runs_with_python_from_the_read_only_mount(tmp_path: Path) -> None:
    (tmp_path / "server.py").write_text("print('hi')\n")
    lab = topology(tmp_path, "  - name: web\n    code: server.py\n    ports: [7007/tcp, 7007/udp]\n    probe: echo\n"
                             "    publish: true\n    networks: [lan]\n")  # fmt: skip
    node = lab.nodes[0]
    assert node.kind == "code" and node.service == ""
    assert node.program == Program(
        kind="code", ports=(registry.Port(7007, "tcp"), registry.Port(7007, "udp")), probe=Probe("echo"),
        code=tmp_path / "server.py",
    )  # fmt: skip
    assert [p.compose() for p in node.publish] == ["127.0.0.1:17007:7007/tcp", "127.0.0.1:17007:7007/udp"]
    service = compose.render(lab)["services"]["web"]
    assert service["command"] == ["python3", "/code/server.py"]
    assert service["volumes"] == [
        {"type": "bind", "source": str(tmp_path / "server.py"), "target": "/code/server.py", "read_only": True}
    ]
    assert node.program is not None
    assert list(service["healthcheck"]["test"]) == ["CMD", *registry.health_command("echo", node.program.ports)]
    assert_hardened(service, user="node")
    assert lab.warnings() == []


def assert_hardened(service: dict[str, Any], *, user: str) -> None:
    assert service["user"] == user
    assert list(service["cap_drop"]) == ["ALL"]
    assert service["read_only"] is True
    assert service["security_opt"] == ["no-new-privileges:true"]
    assert service["mem_limit"] and service["pids_limit"]
    assert "cap_add" not in service


def test_an_image_runs_as_an_unprivileged_uid_and_is_probed_from_outside(tmp_path: Path) -> None:
    lab = topology(tmp_path, "  - name: app\n    image: shop/app:1.2\n    ports: [8080/tcp]\n    probe: tcp\n"
                             "    environment: {MODE: lab, PORT: '8080'}\n    networks: [lan]\n")  # fmt: skip
    service = compose.render(lab)["services"]["app"]
    assert service["image"] == "shop/app:1.2" and service["pull_policy"] == "missing"
    assert service["environment"] == {"MODE": "lab", "PORT": "8080"}
    assert "command" not in service and "healthcheck" not in service  # its own command; probed by lab up
    assert_hardened(service, user=compose.PROGRAM_USER)


def test_build_gets_a_tag_of_the_lab_and_node(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    lab = topology(tmp_path, "  - name: app\n    build: app\n    networks: [lan]\n")
    service = compose.render(lab)["services"]["app"]
    assert service["build"] == {"context": str(tmp_path / "app")}
    assert service["image"] == "testbed-mine-app:latest" and service["pull_policy"] == "build"


def test_relaxed_hardening_is_rendered_and_warned_about(tmp_path: Path) -> None:
    lab = topology(tmp_path, "  - name: app\n    image: app\n    cap_add: [NET_ADMIN, CAP_NET_RAW]\n"
                             "    read_only: false\n    user: root\n    networks: [lan]\n")  # fmt: skip
    service = compose.render(lab)["services"]["app"]
    assert list(service["cap_add"]) == ["NET_ADMIN", "NET_RAW"]
    assert service["read_only"] is False and service["user"] == "root"
    assert list(service["cap_drop"]) == ["ALL"]  # everything else still dropped
    assert lab.warnings() == [
        "nodes.app: runs with cap_add NET_ADMIN, NET_RAW; a writable root (read_only: false); user root "
        "(less hardened than the default)"
    ]


def test_a_folder_of_code_needs_a_command(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    assert problems(tmp_path, "  - name: web\n    code: srv\n    networks: [lan]\n") == [
        f"{tmp_path / 'lab.yaml'}:5: nodes.web.command: srv/ is a folder, so what to run is not known; "
        "add command:, like [python3, /code/server.py]"
    ]
    lab = topology(
        tmp_path, "  - name: web\n    code: srv\n    command: [python3, /code/main.py]\n    networks: [lan]\n"
    )
    assert compose.render(lab)["services"]["web"]["volumes"][0]["target"] == "/code"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("    code: missing.py\n", "nodes.web.code: no file or folder 'missing.py'"),
        ("    image: app\n    ports: [70000/tcp]\n", "nodes.web.ports: '70000/tcp' is not a port"),
        ("    image: app\n    ports: [7/sctp]\n", "nodes.web.ports: '7/sctp' is not a port"),
        (
            "    image: app\n    ports: [7/tcp]\n    probe: ecko\n",
            "nodes.web.probe: unknown probe 'ecko'; write 'echo'",
        ),
        ("    image: app\n    probe: echo\n", "nodes.web.probe: probe echo needs the node's ports"),
        ("    build: nowhere\n", "nodes.web.build: no file or folder 'nowhere'"),
        ("    service: echo\n    image: app\n", "nodes.web.image: a node is one kind"),
        ("    service: echo\n    probe: tcp\n", "nodes.web.probe: probe: is for code: and image: nodes"),
        ("    image: app\n    cap_add: [net admin]\n", "nodes.web.cap_add: 'net admin' is not allowed here"),
        ("    image: app\n    read_only: maybe\n", "nodes.web.read_only: expected true or false"),
        ("    image: app\n    shared: [My Folder]\n", "nodes.web.shared: 'My Folder' is not allowed here"),
        ("    service: echo\n    shared: [sockets]\n", "nodes.web.shared: shared: is for code: and image: nodes"),
        ("    image: App Server\n", "nodes.web.image: 'App Server' is not allowed here"),
        ("    networks: [lan]\n", "nodes.web: no service:, code:, image: or build:"),
    ],
)
def test_mistakes_are_one_line_each_with_the_field(tmp_path: Path, fields: str, expected: str) -> None:
    networks = "" if "networks" in fields else "    networks: [lan]\n"
    found = problems(tmp_path, f"  - name: web\n{fields}{networks}")
    assert any(expected in line for line in found), found
    assert all(line.startswith(f"{tmp_path / 'lab.yaml'}:") for line in found)


def test_a_command_probe_is_the_health_check_in_any_image(tmp_path: Path) -> None:
    lab = topology(
        tmp_path, "  - name: app\n    image: app\n    probe: {exec: [pgrep, -x, app]}\n    networks: [lan]\n"
    )
    assert list(compose.render(lab)["services"]["app"]["healthcheck"]["test"]) == ["CMD", "pgrep", "-x", "app"]


def test_swarm_takes_the_pinned_image_and_keeps_the_hardening(tmp_path: Path) -> None:
    (tmp_path / "server.py").write_text("")
    lab = topology(tmp_path, "  - name: web\n    code: server.py\n    ports: [7/tcp]\n    publish: [17:7]\n"
                             "    networks: [lan]\n  - name: app\n    image: app\n    networks: [lan]\n")  # fmt: skip
    stack = swarm.render(lab, image="sha256:node", program_images={"app": "sha256:app"})["services"]
    assert stack["web"]["image"] == "sha256:node" and stack["app"]["image"] == "sha256:app"
    for body in stack.values():
        assert list(body["cap_drop"]) == ["ALL"] and body["read_only"] is True
        assert "build" not in body and "restart" not in body and body["deploy"]["resources"]["limits"]["pids"]
    assert stack["web"]["ports"] == [{"target": 7, "published": 17, "protocol": "tcp", "mode": "host"}]


def test_the_examples_are_valid_topologies() -> None:
    from lab.loader import load

    for example in sorted((ROOT / "examples").glob("*/lab.yaml")):
        lab = load(example)
        assert any(node.program is not None for node in lab.nodes), example
        yaml.safe_load(compose.to_yaml(lab, source_label="x"))


def test_a_shared_folder_is_one_tmpfs_volume_mounted_in_each_node_that_names_it(tmp_path: Path) -> None:
    (tmp_path / "srv.py").write_text("print('hi')\n")
    lab = topology(tmp_path, "  - name: a\n    code: srv.py\n    shared: [sockets, sockets]\n    networks: [lan]\n"
                             "  - name: b\n    image: app\n    shared: [sockets]\n    networks: [lan]\n"
                             "  - name: c\n    code: srv.py\n    networks: [lan]\n")  # fmt: skip
    assert lab.nodes[0].program is not None and lab.nodes[0].program.shared == ("sockets",)
    document = compose.render(lab)
    mount = {"type": "volume", "source": "shared-sockets", "target": "/shared/sockets"}
    assert document["services"]["a"]["volumes"][1:] == [mount]
    assert document["services"]["b"]["volumes"] == [mount]
    assert all(v.get("source") != "shared-sockets" for v in document["services"]["c"]["volumes"])
    volume = document["volumes"]["shared-sockets"]
    assert volume["driver_opts"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=16m,mode=1777"}
    assert volume["labels"]["testbed.lab"] == "mine"
    assert_hardened(document["services"]["a"], user="node")
    stack = swarm.render(lab, image="sha256:node", program_images={"b": "sha256:app"})
    assert stack["volumes"]["shared-sockets"]["driver_opts"] == volume["driver_opts"]
    assert mount in stack["services"]["b"]["volumes"]
