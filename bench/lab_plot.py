"""``results/bench-lab.svg``: the lab's start and stop beside what the engine itself takes, and the targets.

Drawn with matplotlib from a ``scripts/bench-lab`` result (its JSON), in bench.plot's style. Two panels
of horizontal bars, each the median of the run's rounds with a line over the rounds' range:

- start: six bare containers, ``docker compose up -d``, ``up -d`` then the wait of ``lab up``, and
  Compose's own ``up -d --wait``; the targets as dashed lines (the wait's 1.25x ``up -d``, the stretch's
  1.5x the bare containers);
- stop: the same containers and ports removed by plain ``docker`` (the engine's floor), and
  ``docker compose down``; the 1 s target.

Like bench.plot, the ids and the date are fixed, so the same result always gives the same file.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.plot import STYLE, svg_of

PANELS = ("lab-start", "lab-stop")  # each panel's SVG group id
START = (
    ("baseline", "six bare containers"),
    ("up_no_wait", "docker compose up -d"),
    ("events_up", "up -d, then the wait of lab up"),
    ("warm_up", "docker compose up -d --wait"),
)
STOP = (
    ("bare_down", "docker rm -f, network rm"),
    ("down", "docker compose down"),
)
COLORS = {"baseline": "#7f7f7f", "bare_down": "#7f7f7f", "up_no_wait": "#1f77b4", "events_up": "#2ca02c",
          "warm_up": "#ff7f0e", "down": "#1f77b4"}  # fmt: skip
TARGET_COLORS = ("#d62728", "#9467bd")  # the first target, the second
SIZE_INCHES = (9.2, 4.4)


def _bars(ax: Axes, title: str, rows: Sequence[tuple[str, str]], samples: Mapping[str, Sequence[float]],
          targets: Sequence[tuple[float, str]]) -> None:  # fmt: skip
    """One bar a row (the median; a line over the rounds' range), top to bottom; each target a dashed line."""
    ax.set_title(title, loc="left")
    shown = [(key, label) for key, label in rows if samples.get(key)]
    if not shown:
        ax.set_xlabel("(no data)")
        ax.set_xticks([])
        ax.set_yticks([])
        return
    for y, (key, _label) in enumerate(reversed(shown)):
        values = samples[key]
        middle = statistics.median(values)
        ax.barh(y, middle, height=0.6, color=COLORS.get(key, "#1f77b4"), zorder=2)
        ax.plot([min(values), max(values)], [y, y], color="#222", linewidth=1.2, zorder=3)
        ax.text(max(values) + 0.04, y, f"{middle:.2f} s", va="center", fontsize=8)
    ax.set_yticks(range(len(shown)), [label for _key, label in reversed(shown)])
    top = max(max(samples[key]) for key, _label in shown)
    for (at, label), color in zip(targets, TARGET_COLORS, strict=False):
        ax.axvline(at, color=color, linestyle="--", linewidth=1.2, zorder=4, label=f"{label} ({at:.2f} s)")
        top = max(top, at)
    if targets:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5)  # beside the bars, never on them
    ax.set_xlim(0, top * 1.25)
    ax.set_ylim(-0.6, len(shown) - 0.1)
    ax.grid(axis="x", color="#ddd")
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("seconds (bar: median; line: the rounds' range)")


def figure(result: Mapping[str, Any]) -> Figure:
    """The two panels of a bench-lab result (a missing row is left out; an empty panel says "(no data)")."""
    samples: Mapping[str, Sequence[float]] = result.get("samples_s", {})
    medians = {key: statistics.median(values) for key, values in samples.items() if values}
    targets = result.get("targets", {})
    start_targets = []
    if "up_no_wait" in medians and "warm_up_over_up_no_wait_max" in targets:
        ratio = targets["warm_up_over_up_no_wait_max"]
        start_targets.append((ratio * medians["up_no_wait"], f"target: {ratio:g}x up -d"))
    if "baseline" in medians and "warm_up_over_baseline_max" in targets:
        ratio = targets["warm_up_over_baseline_max"]
        start_targets.append((ratio * medians["baseline"], f"stretch: {ratio:g}x bare"))
    stop_targets = [(targets["down_max_s"], f"target {targets['down_max_s']:g} s")] if "down_max_s" in targets else []
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=SIZE_INCHES, layout="constrained")
        FigureCanvasAgg(fig)
        start_ax, stop_ax = fig.subplots(2, 1, height_ratios=(len(START), len(STOP) + 0.6))
        for ax, gid in zip((start_ax, stop_ax), PANELS, strict=True):
            ax.set_gid(gid)
        _bars(start_ax, "Starting the default lab", START, samples, start_targets)
        _bars(
            stop_ax,
            "Taking it down (grey: the same containers and ports, by plain docker)",
            STOP,
            samples,
            stop_targets,
        )
        rounds = len(samples.get("down", []))
        fig.supxlabel(f"scripts/bench-lab {result.get('when', '')}: Docker {result.get('engine', '?')}, "
                      f"{result.get('machine', {}).get('cpus', '?')} CPUs, {rounds} interleaved rounds",
                      color="#555", fontsize=8.5)  # fmt: skip
    return fig


def svg(result: Mapping[str, Any]) -> str:
    """The figure as SVG text (no date in it: the same result gives the same bytes)."""
    return svg_of(figure(result))
