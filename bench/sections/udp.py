"""The ``udp`` section: creosote and rsyslog, the highest rate each records with < 0.1 % loss.

For each datagram size a ladder of rates, both sinks tried at every step (the
order alternating), a sink leaving the ladder at its first lossy step; the best
rate of each is then repeated so that its verdict is a median too.
"""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

from docker.types import LogConfig

from bench import report
from bench.harness import RSYSLOG_IMAGE, Bench, data_mount, rsyslog_ready
from bench.options import Options
from bench.progress import say
from protocols.registry import SERVICES

RCVBUF = 4 * 2**20  # what both sinks ask for: net.core.rmem_max caps it for non-root anyway


def run(bench: Bench, opts: Options) -> dict[str, Any]:
    """The log sinks: a ladder of rates per size, each sink beside the other at every step."""
    log_file = ["--log-file", "/data/records.jsonl", "--rcvbuf", str(RCVBUF)]
    # Its per-record stdout line goes nowhere here (log driver "none"): the sinks are compared on
    # their own work, not on dockerd's JSON logging. "creosote+logs" measures it as the lab runs it.
    bench.start("creosote", "creosote", command=[*SERVICES["creosote"].command, *log_file],
                mounts=data_mount(), log_config=LogConfig(type="none"))
    bench.start("rsyslog", "rsyslog", command=["rsyslogd", "-n", "-f", "/etc/rsyslog-bench.conf", "-i",
                                               "/data/rsyslogd.pid"],
                image=RSYSLOG_IMAGE, ready=rsyslog_ready, mounts=data_mount())
    sinks = ["creosote", "rsyslog"]
    if opts.docker_logs:
        bench.start("creosote-logs", "creosote", command=[*SERVICES["creosote"].command, *log_file],
                    mounts=data_mount())
        sinks.append("creosote-logs")
    say(f"udp: {', '.join(sinks)}; sizes {opts.udp_sizes}; {opts.udp_duration:g} s per trial; "
        f"rates {', '.join(f'{r // 1000}k' for r in opts.udp_rates)}")
    trials: list[dict[str, Any]] = []
    for size in opts.udp_sizes:
        alive = [s for s in sinks if s != "creosote-logs" or size == min(opts.udp_sizes)]
        for step, rate in enumerate(opts.udp_rates):
            if not alive:
                break
            # A copy either way: a sink that drops out is removed from `alive` inside the loop, and
            # iterating `alive` itself would then skip the sink after it (its trial never ran).
            order = list(alive) if step % 2 == 0 else alive[::-1]
            cell = []
            for sink in order:
                tries = [trial(bench, opts, sink, size=size, rate=rate)]
                if tries[0]["loss"] >= report.LOSS_LIMIT:
                    # One lossy trial may be a neighbour's burst on this shared machine: decide this step
                    # on the median of --reps trials, as the summary does.
                    tries += [trial(bench, opts, sink, size=size, rate=rate) for _ in range(opts.reps - 1)]
                trials += tries
                loss = statistics.median(t["loss"] for t in tries)
                sent_ok = all(t["rate_sent"] >= 0.97 * rate for t in tries)
                cell.append(f"{sink} loss {100 * loss:.2f} %" + ("" if sent_ok else " (sender short)"))
                if loss >= report.LOSS_LIMIT or not sent_ok:
                    alive.remove(sink)
            say(f"udp {size} B at {rate // 1000}k/s: " + ", ".join(cell))
        # Repeat the best rate of each sink so its verdict is a median too.
        summary = {r["server"]: r for r in report.summarize_udp(trials) if r["size"] == size}
        for _ in range(opts.reps - 1):
            for sink in sinks:
                best = summary.get(sink, {}).get("max_lossless_rate")
                done = sum(1 for t in trials if t["server"] == sink and t["size"] == size and t["rate_asked"] == best)
                if best and done < opts.reps:
                    trials.append(trial(bench, opts, sink, size=size, rate=best))
        final = {r["server"]: r for r in report.summarize_udp(trials) if r["size"] == size}
        say(f"udp {size} B: " + ", ".join(f"{s} {(final[s]['max_lossless_rate'] or 0):,.0f}/s" for s in final))
    return {"trials": trials, "summary": report.summarize_udp(trials)}


def _records(bench: Bench, sink: str) -> int:
    if sink == "rsyslog":
        return int(bench.sh(bench.nodes[sink], "wc -l < /data/messages.log").strip() or 0)
    code, out = bench.nodes[sink].probe()
    if code != 0:
        raise RuntimeError(f"{sink} does not answer its probe: {out.strip()}")
    found = re.search(r"(\d+) records", out)  # "creosote ok: 7739/udp N records"
    if found is None:
        raise RuntimeError(f"{sink}'s probe did not say how many records it holds: {out.strip()}")
    return int(found[1])


def _rcvbuf_errors(bench: Bench, sink: str) -> int:
    lines = [line.split() for line in bench.sh(bench.nodes[sink], "cat /proc/net/snmp").splitlines()
             if line.startswith("Udp:")]
    return int(dict(zip(lines[0], lines[1], strict=True))["RcvbufErrors"])


def trial(bench: Bench, opts: Options, sink: str, *, size: int, rate: int) -> dict[str, Any]:
    """Send ``rate`` datagrams/s for ``--udp-duration`` s; count what the sink recorded."""
    node = bench.nodes[sink]
    # Start each trial with empty files: the tmpfs holds a few trials, not a whole ladder.
    bench.sh(node, ": > /data/messages.log" if sink == "rsyslog" else ": > /data/records.jsonl")
    before, errors_before = _records(bench, sink), _rcvbuf_errors(bench, sink)
    port = 5514 if sink == "rsyslog" else SERVICES["creosote"].ports[0].number
    result = bench.exec_json(
        "python3", "-m", "bench.loadgen", "udp", "--host", bench.ips[sink], "--port", str(port),
        "--size", str(size), "--rate", str(rate), "--duration", str(opts.udp_duration), "--procs", str(opts.udp_procs),
    )
    # Wait until the count stops growing: queued datagrams are still being recorded, and rsyslog
    # writes its file asynchronously (flushInterval 1 s).
    settle = 1.3 if sink == "rsyslog" else 0.3
    after, last_change = _records(bench, sink), time.monotonic()
    while time.monotonic() - last_change < settle:
        time.sleep(0.1)
        now = _records(bench, sink)
        if now != after:
            after, last_change = now, time.monotonic()
    received = after - before
    t0, t1 = result["t0_ns"], result["t1_ns"]
    result.update(
        server=sink, received=received, loss=max(0.0, 1 - received / result["sent"]) if result["sent"] else 1.0,
        rcvbuf_errors=_rcvbuf_errors(bench, sink) - errors_before, **bench.window_cores(sink, t0, t1),
    )
    return result
