"""A chaos run as a picture: the faults, node by node, against what each workload's clients saw, in time.

Pure Python SVG, drawn like ``lab.graph``. Time runs left to right from the moment
the schedule started. Each fault is a bar on the row of every node it touched: pale
from the moment applying began to the moment undoing ended, solid while it was fully
in force. Below, one row per workload, in bins of ``BIN`` seconds coloured by the
worst thing its clients saw in the bin (from the checkers' marks): a violation,
a loss the checker excused, a reported error, or only what they were owed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape, quoteattr

from lab.chaos.checkers import Verdict
from lab.chaos.history import History, Window

FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"
SIZE = 12
WIDTH = 980
LABEL_W = 130
RIGHT = 24
ROW = 24
BIN = 0.5
TOP = 70
# Okabe-Ito: told apart by most colour-blind eyes too.
ACTION_COLOURS = {
    "delay": "#0072b2", "jitter": "#56b4e9", "loss": "#e69f00", "rate": "#c9b400", "partition": "#cc79a7",
    "kill": "#d55e00", "restart": "#a6761d", "pause": "#7f7f7f", "disconnect": "#332288",
}  # fmt: skip
OUTCOMES = (("violation", "#000000"), ("excused", "#a58fd0"), ("error", "#ffbf47"), ("ok", "#009e73"))
Place = Callable[[float], float]  # a monotonic time -> its x on the canvas
RANK = {name: i for i, (name, _) in enumerate(OUTCOMES)}
OUTCOME_TEXT = {"ok": "what was owed", "error": "reported error", "excused": "lost in a fault window",
                "violation": "violation"}  # fmt: skip

STYLE = f"""
text {{ font-family: {FONT}; font-size: {SIZE}px; fill: #222; }}
.title {{ font-size: {SIZE + 4}px; font-weight: bold; }}
.muted {{ fill: #666; }}
.head {{ font-weight: bold; }}
.axis {{ stroke: #bbb; stroke-width: 1; }}
.grid {{ stroke: #eee; stroke-width: 1; }}
.row {{ fill: #fafafa; }}
.label {{ fill: #fff; font-size: {SIZE - 1}px; }}
.fail {{ fill: #c00; font-weight: bold; }}
.pass {{ fill: #009e73; font-weight: bold; }}
"""


def _text(x: float, y: float, text: str, css: str = "", *, anchor: str = "start") -> str:
    klass = f' class="{css}"' if css else ""
    return f'<text x="{x:.1f}" y="{y:.1f}"{klass} text-anchor="{anchor}">{escape(text)}</text>'


def _rect(x: float, y: float, w: float, h: float, fill: str, *, opacity: float = 1.0, tip: str = "") -> str:
    title = f"<title>{escape(tip)}</title>" if tip else ""
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 1.0):.1f}" height="{h:.1f}" fill={quoteattr(fill)} '
            f'fill-opacity="{opacity:g}">{title}</rect>')  # fmt: skip


def _span(history: History, verdicts: Sequence[Verdict], t0: float) -> float:
    """Seconds the picture covers: the schedule and everything seen after it."""
    ends = [float(history.run.get("duration_ms", 0)) / 1000]
    ends += [w.end - t0 for w in history.windows() if math.isfinite(w.end)]
    ends += [when - t0 for v in verdicts for when, _ in v.marks]
    return max(1.0, max(ends))


def svg(history: History, verdicts: Sequence[Verdict]) -> str:
    """The run as a standalone SVG document."""
    t0 = float(history.run.get("mono", 0.0))
    span = _span(history, verdicts, t0)
    plot = WIDTH - LABEL_W - RIGHT

    def x(mono: float) -> float:
        return LABEL_W + max(0.0, min(span, mono - t0)) / span * plot

    windows = history.windows()
    rows = sorted({n for w in windows for n in w.nodes}, key=lambda n: (n == history.client, n))
    faults_top = TOP + 24
    checks_top = faults_top + len(rows) * ROW + 40
    bottom = checks_top + len(verdicts) * ROW
    height = bottom + 76 + 18 * len(verdicts)
    ok = all(v.ok for v in verdicts)
    heading = (f"lab {history.run.get('lab', '?')}: {history.run.get('schedule', '?')}, seed {history.run.get('seed')}"
               f" — {'every checker passed' if ok else 'a checker FAILED'}")  # fmt: skip
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}">',
        f"<title>{escape(heading)}</title>",
        f"<style>{STYLE}</style>",
        f'<rect width="{WIDTH}" height="{height:.0f}" fill="#ffffff"/>',
        _text(16, 28, heading, "title"),
        _text(
            16,
            48,
            f"faults: pale while being applied or undone, solid while in force; below, what the clients "
            f"saw, in {BIN:g} s bins",
            "muted",
        ),
    ]
    parts += _axis(span, x, t0, faults_top - 8, bottom)
    parts.append(_text(16, faults_top - 10, "faults", "head"))
    for i, node in enumerate(rows):
        y = faults_top + i * ROW
        parts.append(_rect(LABEL_W, y + 2, plot, ROW - 4, "#f4f4f4"))
        parts.append(_text(LABEL_W - 8, y + ROW / 2 + 4, node + (" (clients)" if node == history.client else ""),
                           anchor="end"))  # fmt: skip
        for window in windows:
            if node in window.nodes:
                parts += _fault(window, x, y, history, t0)
    parts.append(_text(16, checks_top - 10, "what the clients saw", "head"))
    for i, verdict in enumerate(verdicts):
        y = checks_top + i * ROW
        parts.append(_rect(LABEL_W, y + 2, plot, ROW - 4, "#f4f4f4"))
        mark = "pass" if verdict.ok else "FAIL"
        parts.append(_text(LABEL_W - 8, y + ROW / 2 + 4, f"{verdict.checker} {mark}",
                           "pass" if verdict.ok else "fail", anchor="end"))  # fmt: skip
        parts += _bins(verdict, x, y, t0, span)
    y = bottom + 28
    for verdict in verdicts:
        parts.append(_text(16, y, f"{verdict.checker}: {verdict.summary}", "" if verdict.ok else "fail"))
        y += 18
    parts += _legend(16, y + 12)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _axis(span: float, place: Place, t0: float, top: float, bottom: float) -> list[str]:
    step = next(s for s in (1, 2, 5, 10, 20, 30, 60, 120, 300, 600) if span / s <= 16)
    parts = []
    for k in range(0, int(span // step) + 1):
        at = place(t0 + k * step)
        parts.append(f'<line x1="{at:.1f}" y1="{top:.1f}" x2="{at:.1f}" y2="{bottom:.1f}" class="grid"/>')
        parts.append(_text(at, bottom + 14, f"{k * step:g}s", "muted", anchor="middle"))
    return parts


def _fault(window: Window, place: Place, y: float, history: History, t0: float) -> list[str]:
    colour = ACTION_COLOURS.get(window.do, "#444")
    end = window.end if math.isfinite(window.end) else t0 + float(history.run.get("duration_ms", 0)) / 1000
    tip = (f"{window.do} {' | '.join(window.nodes)}: {window.start - t0:.1f}-{end - t0:.1f} s "
           f"(step {window.index})")  # fmt: skip
    left, right = place(window.start), place(end)
    parts = [_rect(left, y + 3, right - left, ROW - 6, colour, opacity=0.3, tip=tip)]
    if window.applied is not None:
        solid_end = window.undo if window.undo is not None else end
        a, b = place(window.applied), place(solid_end)
        parts.append(_rect(a, y + 3, b - a, ROW - 6, colour, tip=tip))
    if right - left > len(window.do) * SIZE * 0.6 + 6:
        parts.append(_text((left + right) / 2, y + ROW / 2 + 4, window.do, "label", anchor="middle"))
    return parts


def _bins(verdict: Verdict, place: Place, y: float, t0: float, span: float) -> list[str]:
    worst: dict[int, str] = {}
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for when, outcome in verdict.marks:
        index = int(max(0.0, when - t0) // BIN)
        counts[index][outcome] += 1
        if outcome in RANK and (index not in worst or RANK[outcome] < RANK[worst[index]]):
            worst[index] = outcome
    colours = dict(OUTCOMES)
    parts = []
    for index, outcome in sorted(worst.items()):
        start = t0 + index * BIN
        left, right = place(start), place(min(start + BIN, t0 + span))
        tip = f"{index * BIN:g}-{(index + 1) * BIN:g} s: " + ", ".join(
            f"{n} {OUTCOME_TEXT.get(o, o)}" for o, n in sorted(counts[index].items())
        )
        parts.append(_rect(left + 0.5, y + 5, right - left - 1, ROW - 10, colours[outcome], tip=tip))
    return parts


def _legend(x0: float, y: float) -> list[str]:
    parts, x = [], x0
    for action, colour in ACTION_COLOURS.items():
        parts.append(_rect(x, y - 10, 12, 12, colour))
        parts.append(_text(x + 16, y, action))
        x += 24 + len(action) * SIZE * 0.6
    y, x = y + 20, x0
    for outcome, colour in OUTCOMES:
        parts.append(_rect(x, y - 10, 12, 12, colour))
        parts.append(_text(x + 16, y, OUTCOME_TEXT[outcome]))
        x += 36 + len(OUTCOME_TEXT[outcome]) * SIZE * 0.6
    return parts
