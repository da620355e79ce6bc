"""The lab as text for other tools: Graphviz DOT and a Mermaid flowchart, and the facts every picture shows.

``lab.graph`` lays the SVG out itself; these exports leave the layout to the
tool that reads them (Graphviz, or Mermaid in a Markdown page), as containerlab's
graph command does. So that no format knows more than another,
the text of each box and each line comes from the helpers here: a member's
name, service or router role, command, published ports, node-wide impairment and
profiles; a network's subnet; a link's address and impairment.

In both formats a member is linked to each network it is on, networks and
members being nodes of the graph (a network is not an edge, since it joins more
than two members).
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from lab import model

COLOURS = {
    "bar": "#dbe8f6",
    "bar_edge": "#4a78a8",
    "host": "#ffffff",
    "host_edge": "#333333",
    "router": "#ffe7c2",
    "router_edge": "#b86b00",
    "port": "#1b7f3b",
    "impair": "#c0392b",
    "muted": "#666666",
}

COMMAND_WIDTH = 44  # characters of a command shown in a box; longer ones end in "…"


# --------------------------------------------------------------------------- the facts


def title(topology: model.Topology) -> str:
    """``lab two-lans — a client LAN and ...``: the heading of every picture."""
    return f"lab {topology.name}" + (f" — {topology.description}" if topology.description else "")


def subnet_text(network: model.Network) -> str:
    """The network's subnet, or that Docker picks one (then addresses are dynamic and not drawn)."""
    return str(network.subnet) if network.subnet is not None else "subnet chosen by Docker"


def port_summary(member: model.Node) -> list[str]:
    """``127.0.0.1:10013 → 13/tcp+udp``: one line per host port."""
    merged: dict[tuple[int, int], list[str]] = {}
    for port in member.publish:
        merged.setdefault((port.host, port.container), []).append(port.protocol)
    return [f"127.0.0.1:{host} → {inside}/{'+'.join(protos)}" for (host, inside), protos in merged.items()]


def member_lines(member: model.Node, *, address: bool) -> tuple[tuple[str, str], ...]:
    """The text of a member's box as (kind, text): kind is the SVG's CSS class.

    With ``address``, a member on one network shows its address in the box (the
    SVG's choice: its line to the bar is short); the text formats label every
    edge with its address instead.
    """
    lines = [("name", member.name)]
    lines.append(("muted", "router (forwards)" if member.is_router else f"service: {member.service}"))
    if address and len(member.attachments) == 1 and member.attachments[0].address is not None:
        lines.append(("text", str(member.attachments[0].address)))
    if member.command is not None:
        command = " ".join(member.command)
        short = command if len(command) <= COMMAND_WIDTH else command[: COMMAND_WIDTH - 1] + "…"
        lines.append(("muted", "$ " + short))
    for port in port_summary(member):
        lines.append(("port", port))
    if member.impair is not None:
        lines.append(("impair", member.impair.describe()))
    if member.profiles:
        lines.append(("muted", f"profile: {', '.join(member.profiles)}"))
    return tuple(lines)


def network_order(topology: model.Topology) -> list[str]:
    """Networks breadth-first through routers from the first one, so neighbours are drawn next to each other."""
    order: list[str] = []
    for start in (n.name for n in topology.networks):
        if start in order:
            continue
        queue = deque([start])
        order.append(start)
        while queue:
            here = queue.popleft()
            for router in topology.routers:
                if here in router.networks:
                    for there in router.networks:
                        if there not in order:
                            order.append(there)
                            queue.append(there)
    return order


@dataclass(frozen=True)
class Link:
    """A member's interface on a network, as an edge; ``member_above`` says which end is drawn higher."""

    member: model.Node
    attachment: model.Attachment
    member_above: bool


def links(topology: model.Topology) -> list[Link]:
    """Every member-to-network edge, oriented as the SVG stacks them, so DOT and Mermaid rank the same way.

    Graphviz and Mermaid put an edge's first end above its second. A host on the
    first network hangs above its bar and every other host below its own; a
    router (or a host on several networks) sits below the first of its networks
    and above the rest, so a chain of LANs reads top to bottom as in the SVG.
    """
    order = network_order(topology)
    found = []
    for member in topology.members:
        between = member.is_router or len(member.attachments) > 1
        first = min(member.networks, key=order.index)
        for attachment in member.attachments:
            above = attachment.network != first if between else attachment.network == order[0]
            found.append(Link(member, attachment, above))
    return found


def link_lines(attachment: model.Attachment) -> list[str]:
    """The label of a member's link to a network: its address and the link's impairment."""
    lines = [] if attachment.address is None else [str(attachment.address)]
    if attachment.impair is not None:
        lines.append(attachment.impair.describe())
    return lines


# --------------------------------------------------------------------------- DOT


def dot_string(text: str) -> str:
    """A DOT quoted string that Graphviz shows as ``text``.

    The language escapes only ``"``, but Graphviz reads ``\\n``-style escapes
    and HTML entities (``&#35;`` shows as ``#``) in labels, so ``\\`` and ``&``
    are escaped too, and a newline becomes ``\\n``.
    """
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;").replace("\n", "\\n")
    return f'"{escaped}"'


def _dot_id(kind: str, name: str) -> str:
    return dot_string(f"{kind}:{name}")


def _dot_attrs(**attrs: str) -> str:
    return "[" + ", ".join(f"{key}={dot_string(value)}" for key, value in attrs.items()) + "]"


def dot(topology: model.Topology) -> str:
    """The lab as Graphviz DOT: networks as rounded boxes, hosts as boxes, routers as ovals, addresses on edges."""
    lines = [
        f"graph {_dot_id('lab', topology.name)} {{",
        f"  graph {_dot_attrs(label=title(topology), labelloc='t', rankdir='TB', fontname='monospace')};",
        "  node [fontname=monospace, fontsize=11];",
        "  edge [fontname=monospace, fontsize=9];",
    ]
    for network in topology.networks:
        attrs = _dot_attrs(
            shape="box",
            style="rounded,filled",
            fillcolor=COLOURS["bar"],
            color=COLOURS["bar_edge"],
            label=f"network {network.name}\n{subnet_text(network)}",
        )
        lines.append(f"  {_dot_id('net', network.name)} {attrs};")
    for member in topology.members:
        styles = ["filled"]
        if member.profiles:
            styles.append("dashed")  # started only with a profile, as in the SVG
        kind = "router" if member.is_router else "host"
        attrs = _dot_attrs(
            shape="ellipse" if member.is_router else "box",
            style=",".join(styles),
            fillcolor=COLOURS[kind],
            color=COLOURS[f"{kind}_edge"],
            label="\n".join(text for _, text in member_lines(member, address=False)),
        )
        lines.append(f"  {_dot_id('node', member.name)} {attrs};")
    for link in links(topology):
        edge = {"label": "\n".join(link_lines(link.attachment))}
        if link.attachment.impair is not None:
            edge |= {"color": COLOURS["impair"], "fontcolor": COLOURS["impair"], "style": "dashed"}
        ends = (_dot_id("node", link.member.name), _dot_id("net", link.attachment.network))
        tail, head = ends if link.member_above else ends[::-1]
        lines.append(f"  {tail} -- {head} {_dot_attrs(**edge)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- Mermaid

# Characters a Mermaid label may hold as they are; every other ASCII character is
# written as an entity code (#34; for "). A quoted label ends at the first ", and
# #, <, >, & and ` start entity codes, HTML and Markdown in Mermaid's renderer.
# $ and % are safe alone but not doubled: $$ starts KaTeX maths (Mermaid 10.9+)
# and %%{...}%% is a directive wherever it appears. Non-ASCII text (→, ±, —) is safe.
_MERMAID_SAFE = re.compile(r"[A-Za-z0-9 .,:/+\-_=@()'!?~\[\]{}$%]|[^\x00-\x7f]")
_MERMAID_SAFE_ALONE = "$%"


def mermaid_text(text: str) -> str:
    """Text safe inside a quoted Mermaid label: unsafe characters become ``#<code>;`` entity codes."""
    out = []
    for i, c in enumerate(text):
        doubled = c in _MERMAID_SAFE_ALONE and c * 2 in text[max(i - 1, 0) : i + 2]
        out.append(c if _MERMAID_SAFE.fullmatch(c) and not doubled else f"#{ord(c)};")
    return "".join(out)


def _mermaid_label(lines: Iterable[str]) -> str:
    return '"' + "<br>".join(mermaid_text(line) for line in lines) + '"'


class _MermaidIds:
    """Node ids that Mermaid reads as plain ids, one per (kind, name).

    A bare name can break the parse (``end`` is a keyword; ``o``/``x`` right
    after ``---`` make a circle or cross edge), and ``-`` is part of edge syntax,
    so ids take a prefix and keep only letters, digits and ``_``; a clash
    (``a-b`` and ``a_b``) gets a number.
    """

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], str] = {}

    def __call__(self, kind: str, name: str) -> str:
        key = (kind, name)
        if key not in self._ids:
            base = f"{kind}_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
            taken = set(self._ids.values())
            candidate, n = base, 2
            while candidate in taken:
                candidate, n = f"{base}_{n}", n + 1
            self._ids[key] = candidate
        return self._ids[key]


def mermaid(topology: model.Topology) -> str:
    """The lab as a Mermaid flowchart: networks as rounded boxes, hosts as boxes, routers as stadiums."""
    ids = _MermaidIds()
    # The title goes in front matter as a JSON string, which YAML reads as a double-quoted scalar;
    # < is escaped there too, since Mermaid rewrites what looks like an HTML tag before it reads YAML.
    heading = json.dumps(title(topology), ensure_ascii=False).replace("<", "\\u003c")
    lines = ["---", f"title: {heading}", "---", "flowchart TB"]
    for network in topology.networks:
        label = _mermaid_label([f"network {network.name}", subnet_text(network)])
        lines.append(f"  {ids('net', network.name)}({label}):::network")
    for member in topology.members:
        label = _mermaid_label(text for _, text in member_lines(member, address=False))
        shape = f"([{label}])" if member.is_router else f"[{label}]"
        lines.append(f"  {ids('node', member.name)}{shape}:::{'router' if member.is_router else 'host'}")
    impaired: list[int] = []  # linkStyle counts edges in the order they are written
    for index, link in enumerate(links(topology)):
        text = link_lines(link.attachment)
        line = f"---|{_mermaid_label(text)}|" if text else "---"
        ends = (ids("node", link.member.name), ids("net", link.attachment.network))
        upper, lower = ends if link.member_above else ends[::-1]
        lines.append(f"  {upper} {line} {lower}")
        if link.attachment.impair is not None:
            impaired.append(index)
    lines += [
        f"  classDef network fill:{COLOURS['bar']},stroke:{COLOURS['bar_edge']}",
        f"  classDef host fill:{COLOURS['host']},stroke:{COLOURS['host_edge']}",
        f"  classDef router fill:{COLOURS['router']},stroke:{COLOURS['router_edge']}",
        "  classDef profiled stroke-dasharray:5 3",
    ]
    profiled = [ids("node", m.name) for m in topology.members if m.profiles]
    if profiled:
        lines.append(f"  class {','.join(profiled)} profiled")
    if impaired:
        style = f"stroke:{COLOURS['impair']},stroke-width:2.5px,stroke-dasharray:6 3"
        lines.append(f"  linkStyle {','.join(map(str, impaired))} {style}")
    return "\n".join(lines) + "\n"
