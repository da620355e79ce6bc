"""From raw benchmark runs to medians, target verdicts, a Markdown table and an SVG plot.

Pure functions over plain dicts (the shapes ``scripts/bench`` writes into
``results/bench.json``), so they are unit-tested without Docker and can re-render
an old result. The SVG is written by hand (no matplotlib): four small panels,
fixed fonts, nothing that needs a browser to look right.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from xml.sax.saxutils import escape

from bench.stats import median

LOSS_LIMIT = 0.001  # "lossless": under 0.1 % of datagrams lost
MODELS = ("threaded", "iterative", "forking", "selectors", "asyncio")
PEER = "stdlib"
CALIBRATION = "redis-ping"
COUSINS = ("iterative", "forking", "selectors", "asyncio")

Row = dict[str, Any]


# --------------------------------------------------------------------------- aggregation


def _group(rows: Iterable[Row], *keys: str) -> dict[tuple[Any, ...], list[Row]]:
    groups: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in keys)].append(row)
    return dict(groups)


def _median_of(rows: Sequence[Row], key: str) -> float | None:
    value = median(row.get(key) for row in rows)
    return None if math.isnan(value) else value


def summarize_upper(runs: Iterable[Row]) -> list[Row]:
    """Medians per (server, conns, size) of the closed-loop line runs; errors are summed."""
    out = []
    for (server, conns, size), rows in sorted(_group(runs, "server", "conns", "size").items(), key=_upper_order):
        out.append({
            "server": server, "conns": conns, "size": size, "runs": len(rows),
            "rps": _median_of(rows, "rps"), "p50_ms": _median_of(rows, "p50_ms"), "p99_ms": _median_of(rows, "p99_ms"),
            "errors": sum(int(r.get("errors") or 0) for r in rows),
            "starved": max(int(r.get("starved") or 0) for r in rows),
            "server_cores": _median_of(rows, "server_cores"), "loadgen_cores": _median_of(rows, "loadgen_cores"),
            "machine_cores": _median_of(rows, "machine_cores"), "softirq_cores": _median_of(rows, "softirq_cores"),
            "loadgen_util": _median_of(rows, "loadgen_util"),
            # CPU per request: what a model costs, whatever else the shared machine was doing.
            "server_us_per_request": _median_of(
                [{"v": 1e6 * r["server_cores"] / r["rps"] if r.get("server_cores") and r.get("rps") else None}
                 for r in rows], "v"),
        })
    return out


def _upper_order(item: tuple[tuple[Any, ...], list[Row]]) -> tuple[int, int, int]:
    server, conns, size = item[0]
    order = [*MODELS, PEER, "redis-ping"]
    return (order.index(server) if server in order else len(order), int(size), int(conns))


def summarize_chat(phases: Iterable[Row]) -> list[Row]:
    """Medians per (target, clients) of the fan-out phases; errors are summed."""
    out = []
    for (target, clients), rows in sorted(_group(phases, "target", "clients").items()):
        out.append({
            "target": target, "clients": clients, "runs": len(rows),
            "deliveries_per_s": _median_of(rows, "deliveries_per_s"),
            "p50_ms": _median_of(rows, "p50_ms"), "p95_ms": _median_of(rows, "p95_ms"),
            "p99_ms": _median_of(rows, "p99_ms"),
            "errors": sum(int(r.get("errors") or 0) for r in rows),
            "server_cores": _median_of(rows, "server_cores"), "loadgen_cores": _median_of(rows, "loadgen_cores"),
            "machine_cores": _median_of(rows, "machine_cores"), "softirq_cores": _median_of(rows, "softirq_cores"),
        })
    return out


def summarize_udp(trials: Iterable[Row]) -> list[Row]:
    """Per (server, size): the highest rate whose median loss stays under ``LOSS_LIMIT``.

    ``ceiling`` says why the ladder stopped: ``"loss"`` (the next rate lost
    datagrams: the sink's limit), ``"sender"`` (the sender could not reach the
    next rate: only a lower bound is known) or ``"ladder"`` (the top rate tried).
    """
    out = []
    for (server, size), rows in sorted(_group(trials, "server", "size").items()):
        by_rate = _group(rows, "rate_asked")
        steps = []
        for (rate,), tries in sorted(by_rate.items()):
            steps.append({
                "rate": rate, "runs": len(tries), "loss": _median_of(tries, "loss"),
                "rate_sent": _median_of(tries, "rate_sent"), "rcvbuf_errors": _median_of(tries, "rcvbuf_errors"),
                "server_cores": _median_of(tries, "server_cores"), "loadgen_cores": _median_of(tries, "loadgen_cores"),
                "machine_cores": _median_of(tries, "machine_cores"),
            })
        best: Row | None = None
        ceiling = "ladder"
        for step in steps:
            if step["rate_sent"] is not None and step["rate_sent"] < 0.97 * step["rate"]:
                ceiling = "sender"
                break
            if step["loss"] is None or step["loss"] >= LOSS_LIMIT:
                ceiling = "loss"
                break
            best = step
        first_bad = next((s for s in steps if best is None or s["rate"] > best["rate"]), None)
        out.append({
            "server": server, "size": size, "max_lossless_rate": best["rate"] if best else None,
            "at_max": best, "first_failing": first_bad, "ceiling": ceiling, "steps": steps,
        })
    return out


def _find(rows: Iterable[Row], **match: Any) -> Row | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# --------------------------------------------------------------------------- targets


def evaluate_targets(upper: Sequence[Row], udp: Sequence[Row], chat: Sequence[Row]) -> list[Row]:
    """Every target of the issue, with what was measured and whether it is met (None: not measured)."""
    targets: list[Row] = []

    def add(name: str, goal: str, measured: str, met: bool | None) -> None:
        targets.append({"target": name, "goal": goal, "measured": measured, "met": met})

    sizes = sorted({r["size"] for r in upper})
    # threaded vs the stdlib ThreadingTCPServer: the worst cell counts.
    ratios = [
        (_ratio(t["rps"], p["rps"]), t["conns"], t["size"])
        for t in upper if t["server"] == "threaded"
        for p in [_find(upper, server=PEER, conns=t["conns"], size=t["size"])] if p
    ]
    valid = [(r, c, s) for r, c, s in ratios if r is not None]
    if valid:
        worst = min(valid, key=lambda r: r[0])
        add("threaded vs stdlib server", "≥ 0.8x everywhere",
            f"worst {worst[0]:.2f}x ({worst[1]} conns, {worst[2]} B); "
            + ", ".join(f"{c}/{s}B {r:.2f}x" for r, c, s in valid), worst[0] >= 0.8)
    # "The fastest cousin ≥ 1.5x it at 100 connections": "it" read both ways, threaded and the stdlib server.
    for size in sizes:
        cousins = [r for r in upper if r["server"] in COUSINS and r["conns"] == 100 and r["size"] == size and r["rps"]]
        if not cousins:
            continue
        best = max(cousins, key=lambda r: r["rps"])
        for name, label in (("threaded", "threaded"), (PEER, "stdlib server")):
            base = _find(upper, server=name, conns=100, size=size)
            if base and base["rps"]:
                ratio = best["rps"] / base["rps"]
                add(f"fastest cousin vs {label}, 100 conns, {size} B", "≥ 1.5x",
                    f"{best['server']} {ratio:.2f}x", ratio >= 1.5)
    for server in ("threaded", "forking", "selectors", "asyncio"):
        rows = [r for r in upper if r["server"] == server and r["conns"] == 1000]
        if rows:
            errors = sum(r["errors"] for r in rows)
            add(f"{server}: 1,000 connections", "0 errors", f"{errors} errors", errors == 0)
    for server in ("threaded", "forking", "selectors", "asyncio"):
        rows = [r for r in upper if r["server"] == server and r["conns"] == 100 and r["p99_ms"] is not None]
        if rows:
            worst_p99 = max(r["p99_ms"] for r in rows)
            add(f"{server}: p99 at 100 conns", "≤ 10 ms", f"{worst_p99:.1f} ms (worst size)", worst_p99 <= 10)
    for size in sorted({r["size"] for r in udp}):
        cre = _find(udp, server="creosote", size=size)
        rsy = _find(udp, server="rsyslog", size=size)
        rate = cre["max_lossless_rate"] if cre else None
        shown = f"{rate:,.0f}/s" if rate else "none lossless"
        add(f"creosote lossless, {size} B", "≥ 15,000/s", shown, bool(rate and rate >= 15000))
        add(f"creosote lossless, {size} B", "≥ 100,000/s", shown, bool(rate and rate >= 100000))
        peer = rsy["max_lossless_rate"] if rsy else None
        if peer:
            bound = "≥ " if rsy and rsy["ceiling"] != "loss" else ""
            ratio = (rate or 0) / peer
            add(f"creosote vs rsyslog, {size} B", "≥ 0.5x",
                f"{ratio:.2f}x (rsyslog {bound}{peer:,.0f}/s)", ratio >= 0.5)
    chat100 = _find(chat, target="chat", clients=100)
    redis100 = _find(chat, target="redis", clients=100)
    if chat100 and chat100["deliveries_per_s"] is not None:
        rate = chat100["deliveries_per_s"]
        add("chat deliveries, 100 clients", "≥ 100,000/s", f"{rate:,.0f}/s", rate >= 100000)
        ratio = _ratio(rate, redis100["deliveries_per_s"] if redis100 else None)
        if ratio is not None:
            add("chat vs Redis pub/sub, 100 clients", "≥ 0.3x", f"{ratio:.2f}x", ratio >= 0.3)
    chat1000 = _find(chat, target="chat", clients=1000)
    if chat1000 and chat1000["p95_ms"] is not None:
        add("chat p95 delivery, 1,000 clients", "≤ 250 ms", f"{chat1000['p95_ms']:.1f} ms",
            chat1000["p95_ms"] <= 250 and chat1000["errors"] == 0)
    return targets


# --------------------------------------------------------------------------- Markdown


def _num(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if digits == 0 and abs(value) >= 10000:
        return f"{value / 1000:,.1f}k"
    return f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"


def markdown(result: Mapping[str, Any]) -> str:
    """The README's benchmark tables."""
    lines: list[str] = []
    meta = result.get("meta", {})
    lines.append(
        f"{meta.get('mode', '?')} run, {meta.get('when', '?')}: {meta.get('cpus', '?')} CPUs, "
        f"kernel {meta.get('kernel', '?')}, Docker {meta.get('docker', '?')}; medians of "
        f"{meta.get('reps', '?')} interleaved runs, {meta.get('duration_s', '?')} s each "
        f"(UDP: {meta.get('udp_duration_s', '?')} s)."
    )
    summary = result.get("upper", {}).get("summary", [])
    upper = [r for r in summary if r["server"] != CALIBRATION]
    if upper:
        conns = sorted({r["conns"] for r in upper})
        for size in sorted({r["size"] for r in upper}):
            lines += ["", f"**Line servers, {size} B lines**: requests/s (p50 / p99 ms), errors; "
                      "one request in flight per connection", ""]
            lines.append("| server | " + " | ".join(f"{c} conns" for c in conns) + " | errors |")
            lines.append("|---|" + "---:|" * len(conns) + "---:|")
            for server in [*MODELS, PEER]:
                rows = [r for r in upper if r["server"] == server and r["size"] == size]
                if not rows:
                    continue
                cells = []
                for c in conns:
                    r = _find(rows, conns=c)
                    cells.append("n/a" if r is None else f"{_num(r['rps'])} ({_ms(r['p50_ms'])} / {_ms(r['p99_ms'])})")
                name = "stdlib ThreadingTCPServer (peer)" if server == PEER else server
                lines.append(f"| {name} | " + " | ".join(cells) + f" | {sum(r['errors'] for r in rows)} |")
        lines += ["", "CPU inside the measured windows (median): server CPU per request: server + load generator "
                  "cores [whole machine, of which softirq; 2 cores in all]", "",
                  "| server | " + " | ".join(f"{c} conns" for c in conns) + " |", "|---|" + "---:|" * len(conns)]
        size = min(r["size"] for r in upper)
        for server in [*MODELS, PEER, CALIBRATION]:
            rows = [r for r in summary if r["server"] == server and (r["size"] == size or server == CALIBRATION)]
            if rows:
                cells = [_cpu_cell(_find(rows, conns=c)) for c in conns]
                label = "Redis PING (calibration: the generator's own ceiling)" if server == CALIBRATION else server
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
        calib = [r for r in summary if r["server"] == CALIBRATION]
        if calib:
            lines += ["", "Load generator check: against Redis PING (a C server) it drives "
                      + ", ".join(f"{_num(r['rps'])}/s at {r['conns']}" for r in calib)
                      + " connections (generator busy "
                      + ", ".join(f"{100 * (r['loadgen_util'] or 0):.0f} %" for r in calib) + ")."]
    udp = result.get("udp", {}).get("summary", [])
    if udp:
        lines += ["", "**Log sinks**: highest rate with < 0.1 % loss (datagrams/s, 4 MiB receive buffer)", "",
                  "| size | creosote | rsyslog (peer) | ratio | what stops creosote |", "|---|---:|---:|---:|---|"]
        for size in sorted({r["size"] for r in udp}):
            cre, rsy = _find(udp, server="creosote", size=size), _find(udp, server="rsyslog", size=size)
            lines.append(
                f"| {size} B | {_udp_cell(cre)} | {_udp_cell(rsy)} | "
                f"{_fmt_ratio(cre, rsy)} | {_udp_reason(cre)} |"
            )
        for row in udp:
            if row["server"] == "creosote-logs":
                lines += ["", f"creosote as the lab runs it (each record's stdout line through Docker's json-file "
                          f"log): {_udp_cell(row)}/s lossless at {row['size']} B; {_udp_reason(row)}."]
    chat = result.get("chat", {}).get("summary", [])
    if chat:
        lines += ["", "**Chat fan-out** (messages times recipients): deliveries/s (p50 / p95 ms)", "",
                  "| clients | chat | Redis pub/sub (peer) | ratio |", "|---:|---:|---:|---:|"]
        for clients in sorted({r["clients"] for r in chat}):
            c, r = _find(chat, target="chat", clients=clients), _find(chat, target="redis", clients=clients)
            ratio = _ratio(c["deliveries_per_s"] if c else None, r["deliveries_per_s"] if r else None)
            lines.append(f"| {clients} | {_chat_cell(c)} | {_chat_cell(r)} | "
                         f"{'-' if ratio is None else f'{ratio:.2f}x'} |")
    images = result.get("images", {})
    if images:
        lines += ["", "| image | size |", "|---|---:|"]
        for name, size in images.items():
            lines.append(f"| `{name}` | {size / 1e6:.0f} MB |" if size else f"| `{name}` | - |")
    lab = result.get("lab")
    if lab:
        lines += ["", "Lab life cycle (from `scripts/bench-lab`, " + str(lab.get("when", "?")) + "): "
                  + ", ".join(f"{k} {v:.2f} s" for k, v in lab.get("median_s", {}).items()
                              if isinstance(v, int | float) and not math.isnan(v))]
    targets = result.get("targets", [])
    if targets:
        lines += ["", "| target | goal | measured | met |", "|---|---|---|---|"]
        for t in targets:
            verdict = {True: "yes", False: "**no**", None: "-"}[t["met"]]
            lines.append(f"| {t['target']} | {t['goal']} | {t['measured']} | {verdict} |")
    return "\n".join(lines) + "\n"


def _cpu_cell(row: Row | None) -> str:
    if row is None or row.get("server_cores") is None:
        return "-"
    text = f"{row['server_cores']:.2f} + {row['loadgen_cores'] or 0:.2f}"
    if row.get("server_us_per_request") is not None:
        text = f"{row['server_us_per_request']:.1f} µs: " + text
    if row.get("machine_cores") is not None:
        text += f" [{row['machine_cores']:.2f}, {row.get('softirq_cores') or 0:.2f}]"
    return text


def _udp_cell(row: Row | None) -> str:
    if row is None:
        return "-"
    rate = row["max_lossless_rate"]
    if rate is None:
        return "none"
    return ("≥ " if row["ceiling"] != "loss" else "") + f"{rate:,.0f}"


def _fmt_ratio(cre: Row | None, rsy: Row | None) -> str:
    ratio = _ratio(cre["max_lossless_rate"] if cre else None, rsy["max_lossless_rate"] if rsy else None)
    if ratio is None:
        return "-"
    return ("≤ " if rsy and rsy["ceiling"] != "loss" else "") + f"{ratio:.2f}x"


def _udp_reason(row: Row | None) -> str:
    if row is None:
        return ""
    bad = row.get("first_failing")
    if row["ceiling"] == "sender":
        return "the sender's rate (a lower bound)"
    if row["ceiling"] == "ladder" or bad is None:
        return "top of the ladder"
    def cores(key: str) -> str:
        value = bad.get(key) if bad else None
        return "?" if value is None else f"{value:.2f}"

    return (f"at {bad['rate']:,.0f}/s: {100 * (bad['loss'] or 0):.1f} % lost in the receive queue "
            f"({_num(bad.get('rcvbuf_errors'))} buffer overflows); sink {cores('server_cores')} cores, "
            f"sender {cores('loadgen_cores')}, machine {cores('machine_cores')} of 2")


def _chat_cell(row: Row | None) -> str:
    if row is None:
        return "-"
    errors = f", {row['errors']} undelivered" if row["errors"] else ""
    return f"{_num(row['deliveries_per_s'])} ({_ms(row['p50_ms'])} / {_ms(row['p95_ms'])}){errors}"


# --------------------------------------------------------------------------- SVG

COLORS = {
    "threaded": "#1f77b4", "iterative": "#7f7f7f", "forking": "#9467bd", "selectors": "#2ca02c",
    "asyncio": "#ff7f0e", "stdlib": "#d62728", "redis-ping": "#17becf",
    "creosote": "#1f77b4", "rsyslog": "#d62728", "chat": "#1f77b4", "redis": "#d62728",
}
PANEL_W, PANEL_H = 460, 300
MARGIN = {"left": 64, "right": 16, "top": 34, "bottom": 44}


def _scale(value: float, lo: float, hi: float, a: float, b: float, *, log: bool) -> float:
    if log:
        value, lo, hi = math.log10(value), math.log10(lo), math.log10(hi)
    return a if hi == lo else a + (value - lo) / (hi - lo) * (b - a)


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    return float(next(m * exp for m in (1, 2, 2.5, 5, 10) if m * exp >= value))


def _fmt_tick(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


class _Panel:
    """One chart in the grid: a frame, axes, and helpers that map data to pixels."""

    def __init__(self, out: list[str], x: float, y: float, title: str) -> None:
        self.out, self.x, self.y = out, x, y
        self.left, self.right = x + MARGIN["left"], x + PANEL_W - MARGIN["right"]
        self.top, self.bottom = y + MARGIN["top"], y + PANEL_H - MARGIN["bottom"]
        out.append(f'<text x="{x + PANEL_W / 2:.1f}" y="{y + 18:.1f}" text-anchor="middle" '
                   f'font-weight="bold">{escape(title)}</text>')
        out.append(f'<rect x="{self.left:.1f}" y="{self.top:.1f}" width="{self.right - self.left:.1f}" '
                   f'height="{self.bottom - self.top:.1f}" fill="none" stroke="#444"/>')

    def y_axis(self, lo: float, hi: float, *, log: bool, label: str) -> None:
        ticks = ([10 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
                 if log else [hi * i / 4 for i in range(5)])
        for tick in ticks:
            if not lo <= tick <= hi:
                continue
            py = _scale(tick, lo, hi, self.bottom, self.top, log=log)
            self.out.append(f'<line x1="{self.left:.1f}" y1="{py:.1f}" x2="{self.right:.1f}" y2="{py:.1f}" '
                            f'stroke="#ddd"/>')
            self.out.append(f'<text x="{self.left - 4:.1f}" y="{py + 4:.1f}" text-anchor="end">'
                            f'{_fmt_tick(tick)}</text>')
        cy = (self.top + self.bottom) / 2
        self.out.append(f'<text x="{self.x + 14:.1f}" y="{cy:.1f}" text-anchor="middle" '
                        f'transform="rotate(-90 {self.x + 14:.1f} {cy:.1f})">{escape(label)}</text>')

    def x_label(self, label: str) -> None:
        self.out.append(f'<text x="{(self.left + self.right) / 2:.1f}" y="{self.bottom + 34:.1f}" '
                        f'text-anchor="middle">{escape(label)}</text>')

    def legend(self, names: Sequence[str], *, dashed: Sequence[str] = ()) -> None:
        for i, name in enumerate(names):
            lx, ly = self.left + 8 + (i % 2) * 120, self.top + 12 + (i // 2) * 14
            dash = ' stroke-dasharray="4 3"' if name in dashed else ""
            self.out.append(f'<line x1="{lx:.1f}" y1="{ly - 4:.1f}" x2="{lx + 16:.1f}" y2="{ly - 4:.1f}" '
                            f'stroke="{COLORS.get(name, "#000")}" stroke-width="2"{dash}/>')
            self.out.append(f'<text x="{lx + 20:.1f}" y="{ly:.1f}">{escape(name)}</text>')


def _line_panel(out: list[str], x: float, y: float, title: str, series: Mapping[str, Sequence[tuple[float, float]]],
                *, ylabel: str, log_y: bool) -> None:
    panel = _Panel(out, x, y, title)
    points = [p for pts in series.values() for p in pts if p[1] and p[1] > 0]
    if not points:
        panel.x_label("(no data)")
        return
    xs = sorted({p[0] for p in points})
    x_lo, x_hi = min(xs), max(xs)
    if log_y:
        y_lo = 10 ** math.floor(math.log10(min(p[1] for p in points)))
        y_hi = 10 ** math.ceil(math.log10(max(p[1] for p in points)))
    else:
        y_lo, y_hi = 0.0, _nice_max(max(p[1] for p in points))
    panel.y_axis(y_lo, y_hi, log=log_y, label=ylabel)
    pad = 14
    for xv in xs:
        px = _scale(xv, x_lo, x_hi, panel.left + pad, panel.right - pad, log=x_lo > 0)
        out.append(f'<text x="{px:.1f}" y="{panel.bottom + 16:.1f}" text-anchor="middle">{_fmt_tick(xv)}</text>')
    panel.x_label("concurrent connections")
    for name, pts in series.items():
        coords = [
            (_scale(px, x_lo, x_hi, panel.left + pad, panel.right - pad, log=x_lo > 0),
             _scale(py, y_lo, y_hi, panel.bottom, panel.top, log=log_y))
            for px, py in pts if py and py > 0
        ]
        if not coords:
            continue
        color = COLORS.get(name, "#000")
        dash = ' stroke-dasharray="4 3"' if name in (PEER, "redis-ping") else ""
        path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        for cx, cy in coords:
            out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{color}"/>')
    panel.legend(list(series), dashed=[PEER, "redis-ping"])


def _bar_panel(out: list[str], x: float, y: float, title: str, groups: Sequence[str],
               series: Mapping[str, Sequence[float | None]], *, ylabel: str, xlabel: str,
               lower_bounds: Mapping[str, Sequence[bool]] | None = None) -> None:
    """Grouped bars; a bar in ``lower_bounds`` is labelled "≥" (the load, not the server, stopped there)."""
    panel = _Panel(out, x, y, title)
    values = [v for vs in series.values() for v in vs if v]
    if not values:
        panel.x_label("(no data)")
        return
    y_hi = _nice_max(max(values) * 1.15)  # headroom for the legend
    panel.y_axis(0.0, y_hi, log=False, label=ylabel)
    slot = (panel.right - panel.left) / max(len(groups), 1)
    width = slot * 0.7 / max(len(series), 1)
    for g, group in enumerate(groups):
        gx = panel.left + g * slot + slot * 0.15
        out.append(f'<text x="{panel.left + (g + 0.5) * slot:.1f}" y="{panel.bottom + 16:.1f}" '
                   f'text-anchor="middle">{escape(group)}</text>')
        for s, (name, vs) in enumerate(series.items()):
            value = vs[g] if g < len(vs) else None
            if not value:
                continue
            top = _scale(value, 0.0, y_hi, panel.bottom, panel.top, log=False)
            out.append(f'<rect x="{gx + s * width:.1f}" y="{top:.1f}" width="{width - 2:.1f}" '
                       f'height="{panel.bottom - top:.1f}" fill="{COLORS.get(name, "#000")}"/>')
            bound = (lower_bounds or {}).get(name, [])
            prefix = "≥ " if g < len(bound) and bound[g] else ""
            out.append(f'<text x="{gx + s * width + width / 2 - 1:.1f}" y="{top - 3:.1f}" text-anchor="middle" '
                       f'font-size="9">{prefix}{_fmt_tick(round(value, -2) if value >= 1000 else round(value))}</text>')
    panel.x_label(xlabel)
    panel.legend(list(series))


def svg(result: Mapping[str, Any]) -> str:
    """A two-by-two grid: line servers' throughput and p99, log sinks' lossless rate, chat fan-out."""
    out: list[str] = []
    width, height = 2 * PANEL_W, 2 * PANEL_H + 30
    upper = [r for r in result.get("upper", {}).get("summary", []) if r["server"] != CALIBRATION]
    size = min((r["size"] for r in upper), default=64)
    servers = [s for s in [*MODELS, PEER] if any(r["server"] == s for r in upper)]

    def series(key: str) -> dict[str, list[tuple[float, float]]]:
        return {s: [(r["conns"], r[key]) for r in upper if r["server"] == s and r["size"] == size and r[key]]
                for s in servers}

    _line_panel(out, 0, 0, f"Line servers: requests/s ({size} B lines)", series("rps"),
                ylabel="requests/s", log_y=False)
    _line_panel(out, PANEL_W, 0, f"Line servers: p99 latency ({size} B lines)", series("p99_ms"),
                ylabel="p99 (ms, log)", log_y=True)
    udp = result.get("udp", {}).get("summary", [])
    sizes = sorted({r["size"] for r in udp})
    _bar_panel(out, 0, PANEL_H, "Log sinks: highest lossless rate", [f"{s} B" for s in sizes],
               {name: [(_find(udp, server=name, size=s) or {}).get("max_lossless_rate") for s in sizes]
                for name in ("creosote", "rsyslog")},
               ylabel="datagrams/s", xlabel="datagram size",
               lower_bounds={name: [(_find(udp, server=name, size=s) or {}).get("ceiling") in ("sender", "ladder")
                                    for s in sizes] for name in ("creosote", "rsyslog")})
    chat = result.get("chat", {}).get("summary", [])
    counts = sorted({r["clients"] for r in chat})
    _bar_panel(out, PANEL_W, PANEL_H, "Chat fan-out: deliveries/s", [str(c) for c in counts],
               {name: [(_find(chat, target=name, clients=c) or {}).get("deliveries_per_s") for c in counts]
                for name in ("chat", "redis")},
               ylabel="deliveries/s", xlabel="clients")
    meta = result.get("meta", {})
    note = (f"scripts/bench, {meta.get('mode', '?')} run {meta.get('when', '')}: medians of "
            f"{meta.get('reps', '?')} interleaved runs across a Docker network, {meta.get('cpus', '?')} CPUs")
    out.append(f'<text x="{width / 2:.1f}" y="{height - 10:.1f}" text-anchor="middle" fill="#555">'
               f'{escape(note)}</text>')
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="11">'
            f'<rect width="100%" height="100%" fill="white"/>')
    return head + "\n" + "\n".join(out) + "\n</svg>\n"
