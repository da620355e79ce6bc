"""The Markdown tables of a bench result (``results/bench.md``): every row names its generator and its CPU.

Pure: a result dict in, text out. A figure measured while its generator was the
limit (``bench.generators.bound_reason``) carries ``‡`` and its reason, so no
row passes the generator's ceiling off as the server's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bench.generators import GENERATORS, SATURATED, SHORT_OF_RATE
from bench.report import CALIBRATION, CALIBRATION_C, MODELS, PEER, UDP_PAIRS, Row, compare, find

BOUND = "‡"
WORK = {"parsed": "parsed (syslog fields as JSON lines)", "raw": "raw (each datagram as a line)"}


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


def gen_cell(row: Row | None) -> str:
    """The generator's busiest process beside a figure: ``gen 46 %``, with ``‡`` when it was the limit."""
    if row is None or (row.get("loadgen_busiest") is None and not row.get("generator")):
        return ""  # a result from before the generators were named and judged
    busiest = row.get("loadgen_busiest")
    text = "gen ?" if busiest is None else f"gen {100 * busiest:.0f} %"
    if row.get("generator_bound"):
        runs = row.get("runs") or 1
        bound = row.get("bound_runs") or runs
        text += f" {BOUND}" if bound >= runs else f" {BOUND}{bound}/{runs}"
    return text


def _legend(names: list[str]) -> list[str]:
    """The paragraph under a table's title: which generators, and what ``gen`` and ``‡`` mean."""
    if names == ["?"]:
        return ["The generator and its CPU were not recorded in this result (measured before they were)."]
    described = "; ".join(f"`{n}`: {GENERATORS.get(n, n)}" for n in names)
    return [f"Generator {described}. *gen*: its busiest process's CPU in the window (% of a core). "
            f"{BOUND}: generator-bound (busiest process ≥ {100 * SATURATED:.0f} % of a core, or under "
            f"{100 * SHORT_OF_RATE:.0f} % of the rate asked): the generator's figure, a floor for the server's."]


def _generators(rows: list[Row]) -> list[str]:
    return sorted({name for r in rows for name in str(r.get("generator") or "?").split(", ")})


def markdown(result: Mapping[str, Any]) -> str:
    """Every table of ``result``, in the order ``results/bench.md`` shows them."""
    meta = result.get("meta", {})
    pinned = ("; servers pinned to CPU 0, load generators to CPU 1 (--cpuset-cpus)" if meta.get("pinned")
              else "; nothing pinned")
    lines = [
        f"{meta.get('mode', '?')} run, {meta.get('when', '?')}: {meta.get('cpus', '?')} CPUs, "
        f"kernel {meta.get('kernel', '?')}, Docker {meta.get('docker', '?')}; medians of "
        f"{meta.get('reps', '?')} interleaved runs, {meta.get('duration_s', '?')} s each "
        f"(UDP: {meta.get('udp_duration_s', '?')} s){pinned}."
    ]
    lines += _upper(result.get("upper", {}).get("summary", []))
    lines += _udp(result.get("udp", {}).get("summary", []))
    lines += _chat(result.get("chat", {}).get("summary", []))
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
            verdict = {True: "yes", False: "**no**", None: "undecided"}[t["met"]]
            lines.append(f"| {t['target']} | {t['goal']} | {t['measured']} | {verdict} |")
    return "\n".join(lines) + "\n"


def _upper_cell(row: Row | None) -> str:
    if row is None:
        return "n/a"
    return f"{_num(row['rps'])} ({_ms(row['p50_ms'])} / {_ms(row['p99_ms'])}) {gen_cell(row)}".rstrip()


def _upper(summary: list[Row]) -> list[str]:
    upper = [r for r in summary if r["server"] not in (CALIBRATION, CALIBRATION_C)]
    if not upper:
        return []
    lines: list[str] = []
    conns = sorted({r["conns"] for r in upper})
    head = ["| server | " + " | ".join(f"{c} conns" for c in conns) + " | errors |", "|---|" + "---:|" * len(conns)
            + "---:|"]
    for size in sorted({r["size"] for r in upper}):
        lines += ["", f"**Line servers, {size} B lines**: requests/s (p50 / p99 ms) and the generator's CPU; errors; "
                  "one request in flight per connection", "", *_legend(_generators(upper)), "", *head]
        for server in [*MODELS, PEER]:
            rows = [r for r in upper if r["server"] == server and r["size"] == size]
            if rows:
                name = "stdlib ThreadingTCPServer (peer)" if server == PEER else server
                cells = [_upper_cell(find(rows, conns=c)) for c in conns]
                lines.append(f"| {name} | " + " | ".join(cells) + f" | {sum(r['errors'] for r in rows)} |")
    calib = [r for r in summary if r["server"] in (CALIBRATION, CALIBRATION_C)]
    if calib:
        lines += ["", "**Calibration: Redis PING** (a C server), the same closed loop: requests/s (p50 / p99 ms) "
                  "and the generator's CPU; a generator-bound figure is that generator's ceiling, not Redis's", "",
                  *_legend(_generators(calib)), "",
                  "| generator | " + " | ".join(f"{c} conns" for c in conns) + " |", "|---|" + "---:|" * len(conns)]
        for server in (CALIBRATION, CALIBRATION_C):
            rows = [r for r in calib if r["server"] == server]
            if rows:
                name = rows[0].get("generator") or server
                lines.append(f"| {name} | " + " | ".join(_upper_cell(find(rows, conns=c)) for c in conns) + " |")
    lines += ["", "CPU inside the measured windows (median): server CPU per request: server + load generator "
              "cores [whole machine, of which softirq; 2 cores in all]", "",
              "| server | " + " | ".join(f"{c} conns" for c in conns) + " |", "|---|" + "---:|" * len(conns)]
    size = min(r["size"] for r in upper)
    for server in [*MODELS, PEER, CALIBRATION, CALIBRATION_C]:
        rows = [r for r in summary if r["server"] == server and (r["size"] == size or r in calib)]
        if rows:
            label = {CALIBRATION: "Redis PING (upper-python)", CALIBRATION_C: "Redis PING (redis-benchmark)"}.get(
                server, server)
            lines.append(f"| {label} | " + " | ".join(_cpu_cell(find(rows, conns=c)) for c in conns) + " |")
    return lines


def _cpu_cell(row: Row | None) -> str:
    if row is None or row.get("server_cores") is None:
        return "-"
    text = f"{row['server_cores']:.2f} + {row['loadgen_cores'] or 0:.2f}"
    if row.get("server_us_per_request") is not None:
        text = f"{row['server_us_per_request']:.1f} µs: " + text
    if row.get("machine_cores") is not None:
        text += f" [{row['machine_cores']:.2f}, {row.get('softirq_cores') or 0:.2f}]"
    return text


def _udp(udp: list[Row]) -> list[str]:
    if not udp:
        return []
    lines = ["", "**Log sinks**: highest rate with < 0.1 % loss (datagrams/s, 4 MiB receive buffer), each pair "
             "doing the same work with every datagram; at that rate, the sink's CPU per datagram (µs, all its "
             "threads) and the generator's CPU", "",
             *_legend(_generators(udp)), "",
             "| size | work | creosote | rsyslog (peer) | ratio | what stops creosote | what stops rsyslog |",
             "|---|---|---:|---:|---:|---|---|"]
    for size in sorted({r["size"] for r in udp}):
        for work, (ours, peer) in UDP_PAIRS.items():
            cre, rsy = find(udp, server=ours, size=size), find(udp, server=peer, size=size)
            if cre is None and rsy is None:
                continue
            recorded = (cre or rsy or {}).get("work")
            shown = WORK[work] if recorded == work else "(not recorded: measured before the pairs)"
            lines.append(f"| {size} B | {shown} | {udp_cell(cre)} | {udp_cell(rsy)} | {_fmt_ratio(cre, rsy)} "
                         f"| {udp_reason(cre)} | {udp_reason(rsy)} |")
    for row in udp:
        if row["server"] == "creosote-logs":
            lines += ["", f"creosote as the lab runs it (each record's stdout line through Docker's json-file "
                      f"log): {udp_cell(row)}/s lossless at {row['size']} B; {udp_reason(row)}."]
    return lines


def udp_cell(row: Row | None) -> str:
    """A sink's highest lossless rate (``≥`` when the sender, not the sink, stopped the ladder) and its gen CPU."""
    if row is None:
        return "-"
    rate = row["max_lossless_rate"]
    if rate is None:
        return "none"
    at_max = row.get("at_max") or {}
    notes = [f"{at_max['server_us_per_datagram']:.1f} µs" if at_max.get("server_us_per_datagram") else "",
             gen_cell(at_max)]
    shown = "; ".join(n for n in notes if n)
    return ("≥ " if row["ceiling"] != "loss" else "") + f"{rate:,.0f}" + (f" ({shown})" if shown else "")


def _fmt_ratio(cre: Row | None, rsy: Row | None) -> str:
    a, b = (cre or {}).get("max_lossless_rate"), (rsy or {}).get("max_lossless_rate")
    if not a or not b or cre is None or rsy is None:
        return "-"
    ours, theirs = cre["ceiling"] != "loss", rsy["ceiling"] != "loss"
    sign = "~" if ours and theirs else "≤ " if theirs else "≥ " if ours else ""
    return f"{sign}{a / b:.2f}x"


def udp_reason(row: Row | None) -> str:
    """Why the ladder stopped for this sink, with the CPU of sink, generator and machine at that step."""
    if row is None:
        return ""
    bad = row.get("first_failing")
    if row["ceiling"] == "ladder" or bad is None:
        return "top of the ladder (a floor)"

    def cores(key: str) -> str:
        value = bad.get(key) if bad else None
        return "?" if value is None else f"{value:.2f}"

    gen = gen_cell(bad)
    where = f"sink {cores('server_cores')} cores, generator {cores('loadgen_cores')}" + (f" ({gen})" if gen else "") \
        + f", machine {cores('machine_cores')} of 2"
    if row["ceiling"] == "sender":
        return f"at {bad['rate']:,.0f}/s the generator sent {_num(bad.get('rate_sent'))}/s {BOUND} (a floor); {where}"
    sent = bad.get("rate_sent")
    short = f" (the generator sent {_num(sent)}/s {BOUND})" if sent is not None and sent < SHORT_OF_RATE * bad["rate"] \
        else ""
    return (f"at {bad['rate']:,.0f}/s{short}: {100 * (bad['loss'] or 0):.1f} % lost in the receive queue "
            f"({_num(bad.get('rcvbuf_errors'))} buffer overflows); {where}")


def _chat(chat: list[Row]) -> list[str]:
    if not chat:
        return []
    lines = ["", "**Chat fan-out** (messages times recipients): deliveries/s (p50 / p95 ms) and the generator's CPU",
             "", *_legend(_generators(chat)), "",
             "| clients | chat | Redis pub/sub (peer) | ratio |", "|---:|---:|---:|---:|"]
    for clients in sorted({r["clients"] for r in chat}):
        c, r = find(chat, target="chat", clients=clients), find(chat, target="redis", clients=clients)
        a, b = (c or {}).get("deliveries_per_s"), (r or {}).get("deliveries_per_s")
        ratio = "-"
        if a is not None and b and c is not None and r is not None:
            value, sign, _ = compare(a, b, 1.0, value_is_floor=bool(c.get("generator_bound")),
                                     peer_is_floor=bool(r.get("generator_bound")))
            ratio = f"{sign}{value:.2f}x"
        lines.append(f"| {clients} | {_chat_cell(c)} | {_chat_cell(r)} | {ratio} |")
    return lines


def _chat_cell(row: Row | None) -> str:
    if row is None:
        return "-"
    errors = f", {row['errors']} undelivered" if row["errors"] else ""
    figures = f"{_num(row['deliveries_per_s'])} ({_ms(row['p50_ms'])} / {_ms(row['p95_ms'])}){errors}"
    return f"{figures} {gen_cell(row)}".rstrip()
