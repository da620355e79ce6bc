"""A picture of a lab: networks as bars, hosts as boxes hanging off them, routers as ovals between.

Pure Python SVG, laid out here so the picture needs no Graphviz; PNG is the same
SVG rendered by librsvg's ``rsvg-convert``, and ``lab.graph_text`` writes DOT and
Mermaid for those who lay the lab out (or embed it) elsewhere. ``write`` picks
the format from the file's suffix. The layout is a stack: networks are
horizontal bars in router order (breadth-first from the first network), each
host sits beside the bar it is on, and routers (and hosts on several networks)
sit between the bars they join. Every line is vertical, so nothing crosses a
box; a dot marks where a line really attaches to a bar.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from common.errors import TestbedError
from lab import model
from lab.graph_text import COLOURS, dot, member_lines, mermaid, network_order, title

FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"
SIZE = 12  # font size of box text; a monospace glyph is about 0.6 em wide
CHAR = SIZE * 0.6
LINE = 16
PAD = 10
GAP_X = 28
BAR_H = 26
ROW_GAP = 44  # room for the lines (and their address labels) between a row and a bar
MARGIN = 24
TOP = 56
TITLE_SIZE = SIZE + 5
LEGEND = "box: host · oval: router · bar: network · green: port on 127.0.0.1 · red dashed: impaired · dashed: profile"


class GraphError(TestbedError):
    """The picture cannot be written in the asked format."""


@dataclass(frozen=True)
class Box:
    """A member placed on the canvas: its text lines and where it sits."""

    member: model.Node
    lines: tuple[tuple[str, str], ...]  # (css class, text)
    x: float
    y: float
    width: float
    height: float

    @property
    def cx(self) -> float:
        return self.x + self.width / 2


# --------------------------------------------------------------------------- layout


def _lines(member: model.Node) -> tuple[tuple[str, str], ...]:
    return member_lines(member, address=True)


def _measure(lines: tuple[tuple[str, str], ...]) -> tuple[float, float]:
    width = max(len(text) for _, text in lines) * CHAR + 2 * PAD
    return max(width, 90.0), len(lines) * LINE + 2 * PAD - 4


@dataclass
class _Row:
    members: list[model.Node]
    y: float = 0
    height: float = 0


def _rows(topology: model.Topology, order: list[str]) -> list[tuple[str, _Row | int]]:
    """The vertical stack: ("row", members) and ("bar", network index) in drawing order."""
    index = {name: i for i, name in enumerate(order)}
    single: dict[int, list[model.Node]] = {i: [] for i in range(len(order))}
    between: dict[int, list[model.Node]] = {i: [] for i in range(len(order))}
    for member in topology.members:
        spots = sorted(index[n] for n in member.networks)
        if len(spots) == 1 and not member.is_router:
            single[spots[0]].append(member)
        else:
            between[spots[0]].append(member)
    last = len(order) - 1
    if last == 0:  # one network: hosts above and below the bar, so the picture stays readable
        half = (len(single[0]) + 1) // 2
        return [("row", _Row(single[0][:half])), ("bar", 0), ("row", _Row(single[0][half:] + between[0]))]
    stack: list[tuple[str, _Row | int]] = [("row", _Row(single[0])), ("bar", 0)]
    for i in range(1, last + 1):
        upper = between[i - 1] + (single[i] if i < last else [])
        stack += [("row", _Row(upper)), ("bar", i)]
    stack.append(("row", _Row(single[last] + between[last])))
    return stack


def layout(topology: model.Topology) -> tuple[list[Box], dict[str, float], float, float]:
    """Boxes, the y of each network bar, and the canvas size."""
    order = network_order(topology)
    stack = _rows(topology, order)
    measured = {m.name: _measure(_lines(m)) for m in topology.members}
    widths = [
        sum(measured[m.name][0] for m in row.members) + GAP_X * max(len(row.members) - 1, 0)
        for _, row in stack
        if isinstance(row, _Row)
    ]
    texts = [len(title(topology)) * TITLE_SIZE * 0.6, len(LEGEND) * CHAR]
    width = max([*widths, *texts, 560.0]) + 2 * MARGIN
    boxes: list[Box] = []
    bars: dict[str, float] = {}
    y = float(TOP)
    for _, item in stack:
        if isinstance(item, int):
            bars[order[item]] = y
            y += BAR_H + ROW_GAP
            continue
        if not item.members:
            continue
        height = max(measured[m.name][1] for m in item.members)
        row_width = sum(measured[m.name][0] for m in item.members) + GAP_X * (len(item.members) - 1)
        x = (width - row_width) / 2
        for member in item.members:
            w, h = measured[member.name]
            boxes.append(Box(member, _lines(member), x, y + (height - h) / 2, w, h))
            x += w + GAP_X
        y += height + ROW_GAP
    return boxes, bars, width, y - ROW_GAP + MARGIN + 30


# --------------------------------------------------------------------------- SVG


def _text(x: float, y: float, text: str, css: str, *, anchor: str = "start") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" class="{css}" text-anchor="{anchor}">{escape(text)}</text>'


def _bar(topology: model.Topology, name: str, y: float, width: float) -> list[str]:
    network = topology.network(name)
    label = f"network {name}" + (f"  {network.subnet}" if network.subnet else "  (subnet chosen by Docker)")
    return [
        f'<rect x="{MARGIN}" y="{y:.1f}" width="{width - 2 * MARGIN:.1f}" height="{BAR_H}" rx="6" class="bar"/>',
        _text(MARGIN + 10, y + BAR_H / 2 + 4, label, "barlabel"),
    ]


def _box(box: Box) -> list[str]:
    css = "router" if box.member.is_router else "host"
    dashed = ' stroke-dasharray="5 3"' if box.member.profiles else ""
    if box.member.is_router:
        shape = (
            f'<ellipse cx="{box.cx:.1f}" cy="{box.y + box.height / 2:.1f}" rx="{box.width / 2 + 14:.1f}" '
            f'ry="{box.height / 2 + 6:.1f}" class="{css}"{dashed}/>'
        )
    else:
        shape = (
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" height="{box.height:.1f}" '
            f'rx="4" class="{css}"{dashed}/>'
        )
    parts = [f"<g id={quoteattr('node-' + box.member.name)}>", shape]
    for i, (kind, text) in enumerate(box.lines):
        parts.append(_text(box.cx, box.y + PAD + 10 + i * LINE, text, kind, anchor="middle"))
    parts.append("</g>")
    return parts


def _links(box: Box, bars: dict[str, float]) -> list[str]:
    """A vertical line from the box to each bar it is on; an address label and a dot where it attaches."""
    parts = []
    for i, attachment in enumerate(box.member.attachments):
        bar_y = bars[attachment.network]
        above = bar_y > box.y
        start = (
            box.y + box.height + (6 if box.member.is_router else 0)
            if above
            else box.y - (6 if box.member.is_router else 0)
        )
        end = bar_y if above else bar_y + BAR_H
        x = box.cx + (i - (len(box.member.attachments) - 1) / 2) * 10
        impaired = attachment.impair is not None
        css = "link impaired" if impaired else "link"
        parts.append(f'<line x1="{x:.1f}" y1="{start:.1f}" x2="{x:.1f}" y2="{end:.1f}" class="{css}"/>')
        parts.append(f'<circle cx="{x:.1f}" cy="{end:.1f}" r="3.5" class="dot"/>')
        label_y = (start + end) / 2 + 4
        if attachment.address is not None and len(box.member.attachments) > 1:
            parts.append(_text(x + 5, label_y, str(attachment.address), "addr"))
        if attachment.impair is not None:
            parts.append(_text(x - 5, label_y, attachment.impair.describe(), "impair", anchor="end"))
    return parts


STYLE = f"""
text {{ font-family: {FONT}; font-size: {SIZE}px; fill: #222; }}
.name {{ font-weight: bold; font-size: {SIZE + 1}px; }}
.muted {{ fill: {COLOURS["muted"]}; }}
.port {{ fill: {COLOURS["port"]}; }}
.impair {{ fill: {COLOURS["impair"]}; }}
.addr {{ fill: {COLOURS["muted"]}; font-size: {SIZE - 1}px; }}
.title {{ font-size: {TITLE_SIZE}px; font-weight: bold; }}
.barlabel {{ font-weight: bold; fill: {COLOURS["bar_edge"]}; }}
.bar {{ fill: {COLOURS["bar"]}; stroke: {COLOURS["bar_edge"]}; stroke-width: 1.5; }}
.host {{ fill: {COLOURS["host"]}; stroke: {COLOURS["host_edge"]}; stroke-width: 1.2; }}
.router {{ fill: {COLOURS["router"]}; stroke: {COLOURS["router_edge"]}; stroke-width: 2; }}
.link {{ stroke: #555; stroke-width: 1.5; }}
.impaired {{ stroke: {COLOURS["impair"]}; stroke-width: 2.5; stroke-dasharray: 6 3; }}
.dot {{ fill: {COLOURS["bar_edge"]}; }}
"""


def svg(topology: model.Topology) -> str:
    """The lab as a standalone SVG document."""
    boxes, bars, width, height = layout(topology)
    heading = title(topology)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}">',
        f"<title>{escape(heading)}</title>",
        f"<style>{STYLE}</style>",
        f'<rect width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>',
        _text(MARGIN, 32, heading, "title"),
    ]
    for box in boxes:
        parts += _links(box, bars)
    for name, y in bars.items():
        parts += _bar(topology, name, y, width)
    for box in boxes:
        parts += _box(box)
    parts.append(_text(MARGIN, height - 12, LEGEND, "muted"))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- formats and PNG

# The suffix of the output file names its format.
FORMATS = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".mermaid": "mermaid"}
RSVG = "rsvg-convert"
RSVG_PACKAGE = "librsvg2-bin"  # Debian's package for rsvg-convert; scripts/setup installs it
RSVG_TIMEOUT_S = 60  # a lab picture renders in well under a second; this only stops a hung renderer


def write(topology: model.Topology, output: Path) -> Path:
    """Write the picture in the format the suffix names (see ``FORMATS``); PNG needs ``rsvg-convert``."""
    suffix = output.suffix.lower()
    kind = FORMATS.get(suffix)
    if kind is None:
        accepted = ", ".join(FORMATS)
        raise GraphError(f"cannot draw {output.name}: unknown format {suffix or '(none)'} (write one of {accepted})")
    if kind == "png":
        output.write_bytes(png(topology, name=output.name))
    else:
        text = {"svg": svg, "dot": dot, "mermaid": mermaid}[kind](topology)
        output.write_text(text, encoding="utf-8")
    return output


def png(topology: model.Topology, *, name: str = "lab.png") -> bytes:
    """The SVG picture rendered as PNG by rsvg-convert, at the SVG's size; ``name`` is for messages."""
    binary = shutil.which(RSVG)
    if binary is None:
        raise GraphError(
            f"cannot draw {name}: {RSVG} is not installed "
            f"(install {RSVG_PACKAGE}, which scripts/setup does, or write {Path(name).with_suffix('.svg').name})"
        )
    # SVG on stdin and PNG on stdout: no file name reaches the argv, and a
    # failed render leaves no half-written file behind.
    try:
        result = subprocess.run(
            [binary, "--format", "png"],
            input=svg(topology).encode(),
            capture_output=True,
            timeout=RSVG_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GraphError(f"cannot draw {name}: {RSVG} ran over {RSVG_TIMEOUT_S} s (write .svg instead)") from None
    if result.returncode != 0 or not result.stdout:
        detail = result.stderr.decode(errors="replace").strip()[:200] or f"exit status {result.returncode}"
        raise GraphError(f"cannot draw {name}: {RSVG} failed: {detail} (write .svg instead)")
    return result.stdout
