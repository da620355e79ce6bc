"""From raw benchmark runs to medians and target verdicts.

Pure functions over plain dicts (the shapes ``python -m bench`` writes into
``results/bench.json``), so they are unit-tested without Docker and can re-render
an old result. Every summary row carries its generator, that generator's CPU and
whether it was the limit (``bench.generators``). The Markdown is ``bench.tables``'s,
the plot ``bench.plot``'s (matplotlib, imported only there).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from bench.generators import SHORT_OF_RATE
from bench.stats import median
from protocols.registry import SERVICES

LOSS_LIMIT = 0.001  # "lossless": under 0.1 % of datagrams lost
# The line servers, as the registry lists them (threaded first): each runs the line server with one model.
MODELS = tuple(name for name, spec in SERVICES.items() if spec.protocol == "upper")
PEER = "stdlib"
CALIBRATION = "redis-ping"  # Redis PING from the line servers' own generator
CALIBRATION_C = "redis-benchmark"  # ... and from Debian's redis-benchmark
CALIBRATIONS = (CALIBRATION, CALIBRATION_C)
# Each pair does the same work with each datagram: (creosote's row, rsyslog's row).
UDP_PAIRS = {"parsed": ("creosote", "rsyslog"), "raw": ("creosote-raw", "rsyslog-raw")}
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


def generator_fields(rows: Sequence[Row]) -> Row:
    """What a summary row says of its generator: its name, median CPU and whether it was the limit.

    A row counts as generator-bound when any of its runs was (``bound_runs`` of
    ``runs`` says how many): a median over runs half of which measured the
    generator is not the server's figure either.
    """
    reasons = [r["generator_bound"] for r in rows if r.get("generator_bound")]
    names = sorted({str(r["generator"]) for r in rows if r.get("generator")})
    return {
        "generator": ", ".join(names) or None,
        "loadgen_busiest": _median_of(rows, "loadgen_busiest"),
        "generator_bound": reasons[0] if reasons else None,
        "bound_runs": len(reasons),
    }


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
            **generator_fields(rows),
        })
    return out


def _upper_order(item: tuple[tuple[Any, ...], list[Row]]) -> tuple[int, int, int]:
    server, conns, size = item[0]
    order = [*MODELS, PEER, *CALIBRATIONS]
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
            **generator_fields(rows),
        })
    return out


def summarize_udp(trials: Iterable[Row]) -> list[Row]:
    """Per (server, size): the highest rate whose median loss stays under ``LOSS_LIMIT``.

    ``ceiling`` says why the ladder stopped: ``"loss"`` (the next rate lost
    datagrams: the sink's limit, even when the sender fell short of that rate),
    ``"sender"`` (nothing lost, but the sender could not reach the next rate:
    only a floor is known) or ``"ladder"`` (the top rate tried, also a floor).
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
                "server_us_per_datagram": _median_of(tries, "server_us_per_datagram"), **generator_fields(tries),
            })
        best: Row | None = None
        ceiling = "ladder"
        for step in steps:
            # Loss first: a sink that lost datagrams at the rate its sender managed lost them at any rate
            # above; a sender short of the rate with nothing lost leaves only a floor.
            if step["loss"] is None or step["loss"] >= LOSS_LIMIT:
                ceiling = "loss"
                break
            if step["rate_sent"] is not None and step["rate_sent"] < SHORT_OF_RATE * step["rate"]:
                ceiling = "sender"
                break
            best = step
        first_bad = next((s for s in steps if best is None or s["rate"] > best["rate"]), None)
        out.append({
            "server": server, "size": size, "work": rows[0].get("work"),
            "generator": generator_fields(rows)["generator"],
            "max_lossless_rate": best["rate"] if best else None,
            "at_max": best, "first_failing": first_bad, "ceiling": ceiling, "steps": steps,
        })
    return out


def compare(value: float, peer: float, goal: float, *, value_is_floor: bool,
            peer_is_floor: bool) -> tuple[float, str, bool | None]:
    """``value / peer`` against ``goal``: (ratio, "≤ " or "≥ " or "", met; None when the figures cannot say).

    A figure that is a floor (the generator's limit, not the server's: the server
    might do more) makes the ratio a bound: a peer's floor an upper bound on the
    ratio, our own floor a lower one. A bound decides the target only on its side.
    """
    ratio = value / peer
    if value_is_floor and peer_is_floor:
        return ratio, "~", None
    if peer_is_floor:
        return ratio, "≤ ", False if ratio < goal else None
    if value_is_floor:
        return ratio, "≥ ", True if ratio >= goal else None
    return ratio, "", ratio >= goal


def _bound_note(*rows: Row) -> str:
    notes = [f"{row.get('server', row.get('target'))}: {row['generator_bound']}" for row in rows
             if row.get("generator_bound")]
    return f"; generator-bound ({'; '.join(notes)})" if notes else ""


def us_per_datagram(cores: float | None, received: int, elapsed: float) -> float | None:
    """A sink's CPU per datagram recorded (µs): what its work costs, whoever else shared the machine."""
    if cores is None or not received or elapsed <= 0:
        return None
    return round(1e6 * cores / (received / elapsed), 2)


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
        rate = cre["max_lossless_rate"] if cre else None
        shown = (f"{'≥ ' if cre and cre['ceiling'] != 'loss' else ''}{rate:,.0f}/s" if rate else "none lossless")
        add(f"creosote lossless, {size} B", "≥ 15,000/s", shown, bool(rate and rate >= 15000))
        add(f"creosote lossless, {size} B", "≥ 100,000/s", shown,
            True if rate and rate >= 100000 else None if cre and cre["ceiling"] != "loss" else False)
        for work, (ours, peer) in UDP_PAIRS.items():
            mine, theirs = find(udp, server=ours, size=size), find(udp, server=peer, size=size)
            if not mine or not theirs or not theirs["max_lossless_rate"]:
                continue
            ratio, sign, met = compare(mine["max_lossless_rate"] or 0, theirs["max_lossless_rate"], 0.5,
                                       value_is_floor=mine["ceiling"] != "loss",
                                       peer_is_floor=theirs["ceiling"] != "loss")
            bound = "≥ " if theirs["ceiling"] != "loss" else ""
            add(f"{ours} vs {peer} ({work}, the same work), {size} B", "≥ 0.5x",
                f"{sign}{ratio:.2f}x ({peer} {bound}{theirs['max_lossless_rate']:,.0f}/s)", met)
    chat100 = find(chat, target="chat", clients=100)
    redis100 = find(chat, target="redis", clients=100)
    if chat100 and chat100["deliveries_per_s"] is not None:
        rate = chat100["deliveries_per_s"]
        add("chat deliveries, 100 clients", "≥ 100,000/s", f"{rate:,.0f}/s", rate >= 100000)
        if redis100 and redis100["deliveries_per_s"]:
            for goal in (0.3, 1.0):
                ratio, sign, met = compare(rate, redis100["deliveries_per_s"], goal,
                                           value_is_floor=bool(chat100.get("generator_bound")),
                                           peer_is_floor=bool(redis100.get("generator_bound")))
                add("chat vs Redis pub/sub, 100 clients", f"≥ {goal:.1f}x", f"{sign}{ratio:.2f}x"
                    + _bound_note(chat100, redis100), met)
    # Redis answers a 6-byte PING: the line servers' smallest line is the fair one to hold beside it.
    smallest = min((r["size"] for r in upper if r["server"] == "selectors"), default=None)
    selectors = [r for r in upper if r["server"] == "selectors" and r["conns"] == 100 and r["size"] == smallest]
    # Redis does at least what its fastest generator got from it: a slower generator's figure is a floor too.
    calibrated = [find(upper, server=calibration, conns=100) for calibration in CALIBRATIONS]
    redis_ceiling = max((float(r["rps"]) for r in calibrated if r and r["rps"]), default=0.0)
    for calibration, redis in zip(CALIBRATIONS, calibrated, strict=True):
        for row in selectors:
            if not (redis and redis["rps"] and row["rps"]):
                continue
            peer_is_floor = bool(redis.get("generator_bound")) or redis["rps"] < redis_ceiling
            ratio, sign, met = compare(row["rps"], redis["rps"], 0.9, value_is_floor=bool(row.get("generator_bound")),
                                       peer_is_floor=peer_is_floor)
            same = "the same generator" if calibration == CALIBRATION else "Redis driven by redis-benchmark"
            slower = ""
            if redis["rps"] < redis_ceiling:
                slower = f"; Redis did {redis_ceiling:,.0f}/s with another generator"
            add(f"selectors vs Redis PING, 100 conns, {row['size']} B ({same})", "≥ 0.9x",
                f"{sign}{ratio:.2f}x ({row['rps']:,.0f} vs {redis['rps']:,.0f}/s)" + _bound_note(row, redis) + slower,
                met)
    chat1000 = find(chat, target="chat", clients=1000)
    if chat1000 and chat1000["p95_ms"] is not None:
        add("chat p95 delivery, 1,000 clients", "≤ 250 ms", f"{chat1000['p95_ms']:.1f} ms",
            chat1000["p95_ms"] <= 250 and chat1000["errors"] == 0)
    return targets
