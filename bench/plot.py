"""``results/bench.svg``: four panels drawn with matplotlib from a bench result.

Line servers' throughput and p99 latency against connections (the smallest line
size), the log sinks' highest lossless rate and the chat fan-out's deliveries/s,
with the run's facts beneath. Host side only: the only module that imports
matplotlib (the load generators in the containers have the standard library
alone). The figure has its own Agg canvas, so no pyplot state and no display
are involved; text stays text in the SVG (``svg.fonttype: none``), and the ids
and the date are fixed so that re-rendering the same result writes the same file.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from bench.report import CALIBRATION, MODELS, PEER, find

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

COLORS = {
    "threaded": "#1f77b4", "iterative": "#7f7f7f", "forking": "#9467bd", "selectors": "#2ca02c",
    "asyncio": "#ff7f0e", "stdlib": "#d62728", "redis-ping": "#17becf",
    "creosote": "#1f77b4", "rsyslog": "#d62728", "chat": "#1f77b4", "redis": "#d62728",
}
DASHED = (PEER, CALIBRATION)  # the peers, beside the models drawn solid
STYLE: dict[RcKeyType, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # matplotlib ships it: the same text widths on every machine
    "font.size": 8.5,
    "axes.titlesize": 9,
    "axes.titleweight": "bold",
    "axes.edgecolor": "#444",
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.color": "#ddd",
    "legend.frameon": False,
    "svg.fonttype": "none",
    "svg.hashsalt": "bench",  # fixed clip-path ids: the same result, the same file
}
SIZE_INCHES = (9.2, 6.3)
PANELS = ("upper-rps", "upper-p99", "udp-lossless", "chat-deliveries")  # each panel's SVG group id


def fmt_tick(value: float) -> str:
    """An axis or bar label: ``12.5k`` for thousands, ``0.1`` or ``10`` below."""
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    return float(next(m * exp for m in (1, 2, 2.5, 5, 10) if m * exp >= value))


def _no_data(ax: Axes) -> None:
    ax.set_xlabel("(no data)")
    ax.set_xticks([])
    ax.set_yticks([])


def _line_panel(ax: Axes, title: str, series: Mapping[str, Sequence[tuple[float, float]]], *, ylabel: str,
                log_y: bool) -> None:
    """One line per server against connections (log x); ``log_y`` for latencies."""
    ax.set_title(title)
    points = [p for pts in series.values() for p in pts if p[1] and p[1] > 0]
    if not points:
        _no_data(ax)
        return
    for name, pts in series.items():
        kept = [(x, y) for x, y in pts if y and y > 0]
        if kept:
            ax.plot([x for x, _ in kept], [y for _, y in kept], color=COLORS.get(name, "#000"), linewidth=2,
                    linestyle="--" if name in DASHED else "-", marker="o", markersize=4, label=name)
    xs = sorted({p[0] for p in points})
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(xs))  # the measured counts, not decades
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_tick(v)))
    ax.set_xlabel("concurrent connections")
    ys = [p[1] for p in points]
    if log_y:
        ax.set_yscale("log")
        ax.set_ylim(10 ** math.floor(math.log10(min(ys))), 10 ** math.ceil(math.log10(max(ys))))
        ax.yaxis.set_minor_locator(NullLocator())
    else:
        top = _nice_max(max(ys))
        ax.set_ylim(0, top)
        ax.yaxis.set_major_locator(FixedLocator([top * i / 4 for i in range(5)]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_tick(v)))
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper left", ncols=2)


def _bar_panel(ax: Axes, title: str, groups: Sequence[str], series: Mapping[str, Sequence[float | None]], *,
               ylabel: str, xlabel: str, lower_bounds: Mapping[str, Sequence[bool]] | None = None) -> None:
    """Grouped bars, each labelled; a bar in ``lower_bounds`` reads "≥" (the load, not the server, stopped there)."""
    ax.set_title(title)
    values = [v for vs in series.values() for v in vs if v]
    if not values:
        _no_data(ax)
        return
    width = 0.7 / max(len(series), 1)
    for s, (name, vs) in enumerate(series.items()):
        bound = (lower_bounds or {}).get(name, [])
        xs, heights, labels = [], [], []
        for g, value in enumerate(vs):
            if not value:
                continue
            xs.append(g - 0.35 + (s + 0.5) * width)
            heights.append(value)
            prefix = "≥ " if g < len(bound) and bound[g] else ""
            labels.append(prefix + fmt_tick(round(value, -2) if value >= 1000 else round(value)))
        bars = ax.bar(xs, heights, width=width * 0.95, color=COLORS.get(name, "#000"), label=name, zorder=2)
        ax.bar_label(bars, labels=labels, padding=2, fontsize=7)
    top = _nice_max(max(values) * 1.15)  # headroom for the legend
    ax.set_ylim(0, top)
    ax.yaxis.set_major_locator(FixedLocator([top * i / 4 for i in range(5)]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_tick(v)))
    ax.set_xticks(range(len(groups)), groups)
    ax.set_xlim(-0.5, len(groups) - 0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper left", ncols=2)


def figure(result: Mapping[str, Any]) -> Figure:
    """The two-by-two grid of a result (any section may be missing: its panel says "(no data)")."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=SIZE_INCHES, layout="constrained")
        FigureCanvasAgg(fig)
        (rps, p99), (udp_ax, chat_ax) = fig.subplots(2, 2)
        for ax, gid in zip((rps, p99, udp_ax, chat_ax), PANELS, strict=True):
            ax.set_gid(gid)
        upper = [r for r in result.get("upper", {}).get("summary", []) if r["server"] != CALIBRATION]
        size = min((r["size"] for r in upper), default=64)
        servers = [s for s in [*MODELS, PEER] if any(r["server"] == s for r in upper)]

        def series(key: str) -> dict[str, list[tuple[float, float]]]:
            return {s: [(r["conns"], r[key]) for r in upper if r["server"] == s and r["size"] == size and r[key]]
                    for s in servers}

        _line_panel(rps, f"Line servers: requests/s ({size} B lines)", series("rps"), ylabel="requests/s",
                    log_y=False)
        _line_panel(p99, f"Line servers: p99 latency ({size} B lines)", series("p99_ms"), ylabel="p99 (ms, log)",
                    log_y=True)
        udp = result.get("udp", {}).get("summary", [])
        sizes = sorted({r["size"] for r in udp})
        sinks = ("creosote", "rsyslog")
        _bar_panel(udp_ax, "Log sinks: highest lossless rate", [f"{s} B" for s in sizes],
                   {name: [(find(udp, server=name, size=s) or {}).get("max_lossless_rate") for s in sizes]
                    for name in sinks},
                   ylabel="datagrams/s", xlabel="datagram size",
                   lower_bounds={name: [(find(udp, server=name, size=s) or {}).get("ceiling") in ("sender", "ladder")
                                        for s in sizes] for name in sinks})
        chat = result.get("chat", {}).get("summary", [])
        counts = sorted({r["clients"] for r in chat})
        _bar_panel(chat_ax, "Chat fan-out: deliveries/s", [str(c) for c in counts],
                   {name: [(find(chat, target=name, clients=c) or {}).get("deliveries_per_s") for c in counts]
                    for name in ("chat", "redis")},
                   ylabel="deliveries/s", xlabel="clients")
        meta = result.get("meta", {})
        fig.supxlabel(f"scripts/bench, {meta.get('mode', '?')} run {meta.get('when', '')}: medians of "
                      f"{meta.get('reps', '?')} interleaved runs across a Docker network, {meta.get('cpus', '?')} CPUs",
                      color="#555", fontsize=8.5)
    return fig


def svg(result: Mapping[str, Any]) -> str:
    """The figure as SVG text (no date in it: the same result gives the same bytes)."""
    return svg_of(figure(result))


def svg_of(fig: Figure) -> str:
    """A figure in this style as SVG text, without a date: the same figure, the same bytes."""
    out = io.StringIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()
