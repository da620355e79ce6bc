"""The picture: well-formed SVG with every host, router and network, PNG only through Graphviz."""

from __future__ import annotations

import itertools
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab import graph
from lab.loader import load

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("name", ["default", "two-lans", "wan", "relay"])
def test_svg_is_well_formed_and_shows_every_member_and_network(name: str) -> None:
    topology = load(ROOT / "topology" / f"{name}.yaml")
    root = ET.fromstring(graph.svg(topology))
    assert root.tag == f"{SVG}svg"
    groups = {g.get("id") for g in root.iter(f"{SVG}g")}
    assert groups == {f"node-{m.name}" for m in topology.members}
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    for network in topology.networks:
        assert f"network {network.name}" in texts


def test_routers_are_drawn_differently_from_hosts() -> None:
    root = ET.fromstring(graph.svg(load(ROOT / "topology" / "two-lans.yaml")))
    router = next(g for g in root.iter(f"{SVG}g") if g.get("id") == "node-router")
    host = next(g for g in root.iter(f"{SVG}g") if g.get("id") == "node-daytime")
    assert router.find(f"{SVG}ellipse") is not None and host.find(f"{SVG}rect") is not None


def test_published_ports_and_impairments_are_labelled() -> None:
    default = graph.svg(load(ROOT / "topology" / "default.yaml"))
    assert "127.0.0.1:10013 → 13/tcp+udp" in default
    wan = graph.svg(load(ROOT / "topology" / "wan.yaml"))
    assert "delay 40ms±5ms loss 2%" in wan


def test_boxes_in_a_row_do_not_overlap() -> None:
    boxes, _, width, _ = graph.layout(load(ROOT / "topology" / "default.yaml"))
    rows: dict[float, list[graph.Box]] = {}
    for box in boxes:
        rows.setdefault(round(box.y + box.height / 2), []).append(box)
    for row in rows.values():
        row.sort(key=lambda b: b.x)
        assert all(a.x + a.width < b.x for a, b in itertools.pairwise(row))
        assert row[0].x >= 0 and row[-1].x + row[-1].width <= width


def test_dot_names_every_member(tmp_path: Path) -> None:
    topology = load(ROOT / "topology" / "two-lans.yaml")
    text = graph.write(topology, tmp_path / "lab.dot").read_text()
    assert text.startswith('graph "lab:two-lans"')
    for member in topology.members:
        assert f'"node:{member.name}"' in text


def test_png_without_graphviz_says_to_use_svg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(graph.GraphError, match=r"write lab\.svg instead"):
        graph.write(load(ROOT / "topology" / "default.yaml"), tmp_path / "lab.png")


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(graph.GraphError, match=r"write \.svg, \.dot or \.png"):
        graph.write(load(ROOT / "topology" / "default.yaml"), tmp_path / "lab.jpg")
