"""The picture in every format: SVG laid out here, PNG rendered from it by rsvg-convert, DOT and Mermaid as text.

DOT and Mermaid are read back by small parsers written here, so a test sees
what another tool would: every declared node, every edge between declared ids,
and labels decoded from each format's escapes. All formats must show the same
facts (members, routers, networks and subnets, addresses, ports, impairments,
profiles).
"""

from __future__ import annotations

import html
import itertools
import re
import shutil
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
import yaml

from lab import graph, graph_text, model
from lab.loader import load

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _topology(name: str) -> model.Topology:
    return load(ROOT / "topology" / f"{name}.yaml")


def _awkward() -> model.Topology:
    """Names and text that break naive quoting: a node called ``end`` (a Mermaid keyword), networks whose
    plain ids clash (``a-b``, ``a_b``), and quotes, pipes, entities, HTML, ``$$`` and ``%%{`` in free text."""
    slow = model.Impairment(delay_ms=5, loss_pct=1)
    return model.Topology(
        name="odd",
        source=Path("odd.yaml"),
        description='quotes " and <b>tags</b> &amp; &#35; | pipes',
        networks=(model.Network("a-b", IPv4Network("10.9.1.0/24")), model.Network("a_b")),
        nodes=(
            model.Node(
                "end",
                "echo",
                (model.Attachment("a-b", IPv4Address("10.9.1.5"), slow),),
                command=("sh", "-c", 'echo "x|y" #1; $$a$$ %%{i}%% \\n'),
                impair=model.Impairment(rate_kbit=100),
                profiles=("p.1", "q"),
            ),
            model.Node("o", "daytime", (model.Attachment("a_b"),), publish=(model.Port(10013, 13, "tcp"),)),
        ),
        routers=(
            model.Node(
                "x",
                "router",
                (model.Attachment("a-b", IPv4Address("10.9.1.254")), model.Attachment("a_b")),
                is_router=True,
            ),
        ),
    )


TOPOLOGIES = ["two-lans", "wan", "default", "awkward"]


def _any(name: str) -> model.Topology:
    return _awkward() if name == "awkward" else _topology(name)


def _member_facts(member: model.Node) -> list[str]:
    """What any picture must say about a member, on its box or on its lines to networks."""
    facts = [member.name, "router (forwards)" if member.is_router else f"service: {member.service}"]
    for attachment in member.attachments:
        if attachment.address is not None:
            facts.append(str(attachment.address))
        if attachment.impair is not None:
            facts.append(attachment.impair.describe())
    facts += [f"127.0.0.1:{port.host} → {port.container}/" for port in member.publish]
    if member.impair is not None:
        facts.append(member.impair.describe())
    facts += list(member.profiles)
    if member.command is not None:
        command = " ".join(member.command)
        facts.append("$ " + (command if len(command) <= 44 else command[:43]))  # a long one ends in "…"
    return facts


def _network_facts(network: model.Network) -> list[str]:
    return [network.name, str(network.subnet) if network.subnet is not None else "subnet chosen by Docker"]


# --------------------------------------------------------------------------- reading DOT and Mermaid back


@dataclass
class Parsed:
    """A graph read back from text: its title, labels (decoded lines) by id, and edges with their label lines."""

    title: str
    nodes: dict[str, list[str]]
    edges: list[tuple[str, str, list[str]]]


DOT_STRING = r'"(?:[^"\\]|\\.)*"'
DOT_NODE = re.compile(rf"^  (?P<id>{DOT_STRING}) \[(?P<attrs>.*)\];$")
DOT_EDGE = re.compile(rf"^  (?P<a>{DOT_STRING}) -- (?P<b>{DOT_STRING}) \[(?P<attrs>.*)\];$")
DOT_ATTR = re.compile(rf"(\w+)=({DOT_STRING})(?:, |$)")


def _dot_unquote(text: str) -> str:
    """What Graphviz shows for a quoted string: backslash escapes, then HTML entities."""
    return html.unescape(re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], text[1:-1]))


def _dot_attrs(text: str) -> dict[str, str]:
    attrs = {key: _dot_unquote(value) for key, value in DOT_ATTR.findall(text)}
    assert ", ".join(f"{k}={v}" for k, v in DOT_ATTR.findall(text)) == text, f"unparsed attributes: {text}"
    return attrs


def parse_dot(text: str) -> Parsed:
    lines = text.splitlines()
    assert re.fullmatch(rf"graph {DOT_STRING} {{", lines[0]) and lines[-1] == "}"
    parsed = Parsed("", {}, [])
    for line in lines[1:-1]:
        if settings := re.fullmatch(r"  graph \[(.*)\];", line):
            parsed.title = _dot_attrs(settings[1])["label"]
        elif re.fullmatch(r"  (node|edge) \[.*\];", line):
            continue
        elif edge := DOT_EDGE.fullmatch(line):
            label = _dot_attrs(edge["attrs"]).get("label", "")
            parsed.edges.append((_dot_unquote(edge["a"]), _dot_unquote(edge["b"]), label.splitlines()))
        elif node := DOT_NODE.fullmatch(line):
            name = _dot_unquote(node["id"])
            assert name not in parsed.nodes, f"{name} declared twice"
            parsed.nodes[name] = _dot_attrs(node["attrs"])["label"].splitlines()
        else:
            pytest.fail(f"not a DOT statement this exporter writes: {line!r}")
    return parsed


MERMAID_ID = r"[A-Za-z_][A-Za-z0-9_]*"
MERMAID_LABEL = r'"[^"]*"'  # a quoted label cannot hold ", so an escaped one is whole here
SHAPES = {"[": "]", "(": ")", "([": "])"}
MERMAID_NODE = re.compile(
    rf"^  (?P<id>{MERMAID_ID})(?P<open>\(\[|\[|\()(?P<label>{MERMAID_LABEL})(?P<close>\]\)|\]|\)):::(?P<cls>\w+)$"
)
MERMAID_EDGE = re.compile(rf"^  (?P<a>{MERMAID_ID}) ---(?:\|(?P<label>{MERMAID_LABEL})\|)? (?P<b>{MERMAID_ID})$")
MERMAID_STYLE = re.compile(rf"^  (classDef \w+ \S.*|class {MERMAID_ID}(,{MERMAID_ID})* \w+|linkStyle [\d,]+ \S+.*)$")


def _mermaid_lines(label: str | None) -> list[str]:
    if not label:
        return []
    decoded = re.sub(r"#(\d+);", lambda m: chr(int(m[1])), label[1:-1])
    return decoded.split("<br>")


def parse_mermaid(text: str) -> Parsed:
    """The flowchart and the title in its front matter; every line must be one this exporter writes."""
    head, front, body = text.split("---\n", 2)
    assert head == ""
    lines = body.splitlines()
    assert lines[0] == "flowchart TB"
    settings = yaml.safe_load(front)
    assert set(settings) == {"title"}
    parsed = Parsed(settings["title"], {}, [])
    for line in lines[1:]:
        if node := MERMAID_NODE.fullmatch(line):
            assert SHAPES[node["open"]] == node["close"], line
            assert node["id"] not in parsed.nodes, f"{node['id']} declared twice"
            parsed.nodes[node["id"]] = _mermaid_lines(node["label"])
        elif edge := MERMAID_EDGE.fullmatch(line):
            parsed.edges.append((edge["a"], edge["b"], _mermaid_lines(edge["label"])))
        else:
            assert MERMAID_STYLE.fullmatch(line), f"not a Mermaid statement this exporter writes: {line!r}"
    return parsed


def assert_same_graph(topology: model.Topology, parsed: Parsed) -> None:
    """Every member and network declared once, every edge between declared ids, and every fact in its place."""
    assert parsed.title == f"lab {topology.name}" + (f" — {topology.description}" if topology.description else "")
    names: dict[str, tuple[str, str]] = {}  # id -> ("net" | "node", name)
    for node_id, lines in parsed.nodes.items():
        first = lines[0]
        names[node_id] = ("net", first.removeprefix("network ")) if first.startswith("network ") else ("node", first)
    assert sorted(name for kind, name in names.values() if kind == "net") == sorted(n.name for n in topology.networks)
    assert sorted(name for kind, name in names.values() if kind == "node") == sorted(m.name for m in topology.members)
    links: dict[tuple[str, str], list[str]] = {}
    for a, b, label in parsed.edges:
        assert a in names and b in names, f"edge {a} -- {b} between undeclared ids"
        ends = dict([names[a], names[b]])
        assert set(ends) == {"net", "node"}, f"edge {a} -- {b} must join a member and a network"
        links[(ends["node"], ends["net"])] = label
    expected = {(m.name, a.network) for m in topology.members for a in m.attachments}
    assert set(links) == expected and len(parsed.edges) == len(expected)
    ids = {value: key for key, value in names.items()}
    for network in topology.networks:
        assert parsed.nodes[ids[("net", network.name)]] == [f"network {network.name}", *_network_facts(network)[1:]]
    for member in topology.members:
        shown = "\n".join(parsed.nodes[ids[("node", member.name)]])
        shown += "\n" + "\n".join(line for (name, _), label in links.items() if name == member.name for line in label)
        for fact in _member_facts(member):
            assert fact in shown, f"{member.name}: {fact!r} missing from {shown!r}"


# --------------------------------------------------------------------------- SVG


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


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_svg_shows_every_fact(name: str) -> None:
    topology = _any(name)
    root = ET.fromstring(graph.svg(topology))
    texts = "\n".join(t.text or "" for t in root.iter(f"{SVG}text"))
    for member in topology.members:
        for fact in _member_facts(member):
            assert fact in texts, f"{member.name}: {fact!r}"
    for network in topology.networks:
        for fact in _network_facts(network):
            assert fact in texts


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


# --------------------------------------------------------------------------- DOT and Mermaid


@pytest.mark.parametrize("suffix", [".dot", ".gv"])
@pytest.mark.parametrize("name", TOPOLOGIES)
def test_dot_declares_every_node_and_links_only_declared_ids(name: str, suffix: str, tmp_path: Path) -> None:
    topology = _any(name)
    text = graph.write(topology, tmp_path / f"lab{suffix}").read_text(encoding="utf-8")
    assert text.startswith(f'graph "lab:{topology.name}" {{')
    parsed = parse_dot(text)
    assert set(parsed.nodes) == {f"node:{m.name}" for m in topology.members} | {
        f"net:{n.name}" for n in topology.networks
    }
    assert_same_graph(topology, parsed)


@pytest.mark.parametrize("suffix", [".mmd", ".mermaid"])
@pytest.mark.parametrize("name", TOPOLOGIES)
def test_mermaid_declares_every_node_and_links_only_declared_ids(name: str, suffix: str, tmp_path: Path) -> None:
    topology = _any(name)
    text = graph.write(topology, tmp_path / f"lab{suffix}").read_text(encoding="utf-8")
    assert_same_graph(topology, parse_mermaid(text))


def test_mermaid_ids_are_plain_and_distinct_for_awkward_names() -> None:
    parsed = parse_mermaid(graph_text.mermaid(_awkward()))
    assert {"node_end", "node_o", "node_x", "net_a_b", "net_a_b_2"} == set(parsed.nodes)


def test_impaired_links_and_profiled_members_are_styled_in_text_formats() -> None:
    text = graph_text.mermaid(_topology("wan"))
    edges = [line for line in text.splitlines() if MERMAID_EDGE.fullmatch(line)]
    impaired = [str(i) for i, line in enumerate(edges) if "delay" in line]
    assert impaired and f"  linkStyle {','.join(impaired)} stroke:#c0392b" in text
    profiled = graph_text.mermaid(_topology("default"))
    assert "  class node_iterative,node_forking,node_selectors,node_asyncio,node_client profiled" in profiled
    dot = graph_text.dot(_topology("default"))
    assert '"node:client" [shape="box", style="filled,dashed"' in dot


# --------------------------------------------------------------------------- PNG and refusals


@pytest.mark.parametrize("name", ["two-lans", "wan"])
def test_png_is_the_svg_rendered_by_rsvg_convert(name: str, tmp_path: Path) -> None:
    # Never skipped: scripts/setup (and so CI) installs librsvg2-bin.
    if shutil.which("rsvg-convert") is None:
        pytest.fail("rsvg-convert is not installed; run scripts/setup (it installs librsvg2-bin)", pytrace=False)
    topology = _topology(name)
    data = graph.write(topology, tmp_path / "lab.png").read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    root = ET.fromstring(graph.svg(topology))
    assert (width, height) == (int(root.get("width", "0")), int(root.get("height", "0")))
    # A blank page of this size compresses to a few kB; boxes and text take tens.
    assert len(data) > 10_000


def test_png_without_rsvg_convert_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(graph.GraphError, match=r"rsvg-convert is not installed \(install librsvg2-bin.*scripts/setup"):
        graph.write(_topology("two-lans"), tmp_path / "lab.png")
    assert not (tmp_path / "lab.png").exists()


def test_a_failing_renderer_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: "/bin/false")
    with pytest.raises(graph.GraphError, match=r"rsvg-convert failed: exit status 1"):
        graph.write(_topology("two-lans"), tmp_path / "lab.png")
    assert not (tmp_path / "lab.png").exists()


@pytest.mark.parametrize("output", ["lab.jpg", "lab"])
def test_unknown_format_is_refused_naming_every_suffix(output: str, tmp_path: Path) -> None:
    with pytest.raises(graph.GraphError, match=r"write one of \.svg, \.png, \.dot, \.gv, \.mmd, \.mermaid\)$"):
        graph.write(_topology("default"), tmp_path / output)
    assert list(tmp_path.iterdir()) == []


def test_text_formats_stack_the_lab_top_down_as_the_svg_does() -> None:
    # Graphviz and Mermaid rank an edge's first end above its second.
    wan = _topology("wan")
    chain = ["client", "site-a", "gw-a", "wan", "gw-b", "site-b", "echo"]
    kinds = ["node", "net"] * 4
    dot_pairs = {(a, b) for a, b, _ in parse_dot(graph_text.dot(wan)).edges}
    ids = [f"{kind}:{name}" for kind, name in zip(kinds, chain, strict=False)]
    assert set(itertools.pairwise(ids)) <= dot_pairs
    parsed = parse_mermaid(graph_text.mermaid(wan))
    ids = [f"{kind}_{name.replace('-', '_')}" for kind, name in zip(kinds, chain, strict=False)]
    assert set(itertools.pairwise(ids)) <= {(a, b) for a, b, _ in parsed.edges}
