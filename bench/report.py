"""From raw benchmark runs to medians, target verdicts and the Markdown tables.

Pure functions over plain dicts (the shapes ``python -m bench`` writes into
``results/bench.json``), so they are unit-tested without Docker and can re-render
an old result. The plot is ``bench.plot``'s (matplotlib, imported only there).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bench.stats import median
from protocols.registry import SERVICES

LOSS_LIMIT = 0.001  # "lossless": under 0.1 % of datagrams lost
# The line servers, as the registry lists them (threaded first): each runs the line server with one model.
MODELS = tuple(name for name, spec in SERVICES.items() if spec.protocol == "upper")
PEER = "stdlib"
CALIBRATION = "redis-ping"
COUSINS = tuple(name for name in MODELS if name != "threaded")

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


def find(rows: Iterable[Row], **match: Any) -> Row | None:
    """The first row whose fields equal ``match`` (None: no such row)."""
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
        for p in [find(upper, server=PEER, conns=t["conns"], size=t["size"])] if p
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
            base = find(upper, server=name, conns=100, size=size)
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
        cre = find(udp, server="creosote", size=size)
        rsy = find(udp, server="rsyslog", size=size)
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
    chat100 = find(chat, target="chat", clients=100)
    redis100 = find(chat, target="redis", clients=100)
    if chat100 and chat100["deliveries_per_s"] is not None:
        rate = chat100["deliveries_per_s"]
        add("chat deliveries, 100 clients", "≥ 100,000/s", f"{rate:,.0f}/s", rate >= 100000)
        ratio = _ratio(rate, redis100["deliveries_per_s"] if redis100 else None)
        if ratio is not None:
            add("chat vs Redis pub/sub, 100 clients", "≥ 0.3x", f"{ratio:.2f}x", ratio >= 0.3)
    chat1000 = find(chat, target="chat", clients=1000)
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
                    r = find(rows, conns=c)
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
                cells = [_cpu_cell(find(rows, conns=c)) for c in conns]
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
            cre, rsy = find(udp, server="creosote", size=size), find(udp, server="rsyslog", size=size)
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
            c, r = find(chat, target="chat", clients=clients), find(chat, target="redis", clients=clients)
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
