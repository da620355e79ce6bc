"""The ``udp`` section: creosote and rsyslog, the highest rate each records with < 0.1 % loss.

Each sink is measured doing one kind of work, and compared with the other
doing the same (``bench.report.UDP_PAIRS``): ``parsed`` (every datagram parsed
as syslog and written as a JSON line of its fields: creosote's records,
rsyslog's ``parsed.conf``) and ``raw`` (every datagram written as the line it
came as: ``creosote --raw``, rsyslog's ``raw.conf``).

For each datagram size a ladder of rates, every sink tried at every step (the
order alternating), a sink leaving the ladder at its first lossy step or at the
first step its sender could not offer; the best rate of each is then repeated so
that its verdict is a median too. Every trial is one run of the UDP generator
(``--udp-generator``, the compiled sendmmsg sender by default) in the load
generator container, its CPU and verdict beside the sink's count.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass
from typing import Any

from docker.types import LogConfig

from bench import generators, report
from bench.harness import RSYSLOG_IMAGE, SINK_MEMORY, Bench, data_mount, rsyslog_ready
from bench.options import Options
from bench.progress import say
from protocols.registry import SERVICES

RCVBUF = 4 * 2**20  # what both sinks ask for: net.core.rmem_max caps it for non-root anyway
RSYSLOG_PORT = 5514
RSYSLOG_FILE = "/data/messages.log"
CREOSOTE_FILE = "/data/records.jsonl"


@dataclass(frozen=True)
class Sink:
    """One sink container: which server, doing which work."""

    name: str  # the container's name and the rows' "server"
    server: str  # "creosote" or "rsyslog"
    work: str  # "parsed" or "raw"
    docker_logs: bool = False  # creosote's stdout through Docker's json-file log, as the lab runs it


SINKS = (
    Sink("creosote", "creosote", "parsed"), Sink("rsyslog", "rsyslog", "parsed"),
    Sink("creosote-raw", "creosote", "raw"), Sink("rsyslog-raw", "rsyslog", "raw"),
)
LOGS_SINK = Sink("creosote-logs", "creosote", "parsed", docker_logs=True)


def _start(bench: Bench, sink: Sink) -> None:
    if sink.server == "rsyslog":
        bench.start(sink.name, "rsyslog", image=RSYSLOG_IMAGE, ready=rsyslog_ready, mounts=data_mount(),
                    mem_limit=SINK_MEMORY,
                    command=["rsyslogd", "-n", "-f", f"/etc/rsyslog-bench/{sink.work}.conf", "-i",
                             "/data/rsyslogd.pid"])
        return
    command = [*SERVICES["creosote"].command, "--log-file", CREOSOTE_FILE, "--rcvbuf", str(RCVBUF)]
    if sink.work == "raw":
        command.append("--raw")
    # Its per-record stdout line goes nowhere (log driver "none"): the sinks are compared on their
    # own work, not on dockerd's JSON logging. "creosote-logs" measures it as the lab runs it.
    logs: dict[str, Any] = {} if sink.docker_logs else {"log_config": LogConfig(type="none")}
    bench.start(sink.name, "creosote", command=command, mounts=data_mount(), mem_limit=SINK_MEMORY, **logs)


def run(bench: Bench, opts: Options) -> dict[str, Any]:
    """The log sinks: a ladder of rates per size, each sink beside the others at every step."""
    sinks = [s for s in SINKS if s.work in opts.udp_work]
    if opts.docker_logs:
        sinks.append(LOGS_SINK)
    for sink in sinks:
        _start(bench, sink)
    by_name = {s.name: s for s in sinks}
    generator = generators.UDP_GENERATORS[opts.udp_generator]
    say(f"udp: {', '.join(by_name)}; sizes {opts.udp_sizes}; {opts.udp_duration:g} s per trial; "
        f"rates {', '.join(f'{r // 1000}k' for r in opts.udp_rates)}; generator {generator}")
    trials: list[dict[str, Any]] = []
    for size in opts.udp_sizes:
        alive = [s for s in by_name if not by_name[s].docker_logs or size == min(opts.udp_sizes)]
        for step, rate in enumerate(opts.udp_rates):
            if not alive:
                break
            # A copy either way: a sink that drops out is removed from `alive` inside the loop, and
            # iterating `alive` itself would then skip the sink after it (its trial never ran).
            order = list(alive) if step % 2 == 0 else alive[::-1]
            cell = []
            for name in order:
                tries = [trial(bench, opts, by_name[name], size=size, rate=rate)]
                if tries[0]["loss"] >= report.LOSS_LIMIT or tries[0]["generator_bound"]:
                    # One bad trial may be a neighbour's burst on this shared machine: decide this step
                    # on the median of --reps trials, as the summary does.
                    tries += [trial(bench, opts, by_name[name], size=size, rate=rate) for _ in range(opts.reps - 1)]
                trials += tries
                loss = statistics.median(t["loss"] for t in tries)
                short = statistics.median(t["rate_sent"] for t in tries) < generators.SHORT_OF_RATE * rate
                gen = statistics.median(t["loadgen_busiest"] or 0 for t in tries)
                cell.append(f"{name} loss {100 * loss:.2f} % (generator {gen:.0%}" + (", SHORT)" if short else ")"))
                if loss >= report.LOSS_LIMIT or short:
                    alive.remove(name)
            say(f"udp {size} B at {rate // 1000}k/s: " + ", ".join(cell))
        # Repeat the best rate of each sink so its verdict is a median too.
        summary = {r["server"]: r for r in report.summarize_udp(trials) if r["size"] == size}
        for _ in range(opts.reps - 1):
            for name in by_name:
                best = summary.get(name, {}).get("max_lossless_rate")
                done = sum(1 for t in trials if t["server"] == name and t["size"] == size and t["rate_asked"] == best)
                if best and done < opts.reps:
                    trials.append(trial(bench, opts, by_name[name], size=size, rate=best))
        final = {r["server"]: r for r in report.summarize_udp(trials) if r["size"] == size}
        say(f"udp {size} B: " + ", ".join(f"{s} {(final[s]['max_lossless_rate'] or 0):,.0f}/s" for s in final))
    return {"generator": generator, "trials": trials, "summary": report.summarize_udp(trials)}


def _records(bench: Bench, sink: Sink) -> int:
    if sink.server == "rsyslog":
        return int(bench.sh(bench.nodes[sink.name], f"wc -l < {RSYSLOG_FILE}").strip() or 0)
    code, out = bench.nodes[sink.name].probe()
    if code != 0:
        raise RuntimeError(f"{sink.name} does not answer its probe: {out.strip()}")
    found = re.search(r"(\d+) records", out)  # "creosote ok: 7739/udp N records"
    if found is None:
        raise RuntimeError(f"{sink.name}'s probe did not say how many records it holds: {out.strip()}")
    return int(found[1])


def _rcvbuf_errors(bench: Bench, sink: Sink) -> int:
    lines = [line.split() for line in bench.sh(bench.nodes[sink.name], "cat /proc/net/snmp").splitlines()
             if line.startswith("Udp:")]
    return int(dict(zip(lines[0], lines[1], strict=True))["RcvbufErrors"])


def trial(bench: Bench, opts: Options, sink: Sink, *, size: int, rate: int) -> dict[str, Any]:
    """Send ``rate`` datagrams/s for ``--udp-duration`` s; count what the sink recorded."""
    node = bench.nodes[sink.name]
    # Each trial starts and ends with an empty file: the tmpfs holds one trial, not a whole ladder.
    empty = f": > {RSYSLOG_FILE if sink.server == 'rsyslog' else CREOSOTE_FILE}"
    bench.sh(node, empty)
    before, errors_before = _records(bench, sink), _rcvbuf_errors(bench, sink)
    port = RSYSLOG_PORT if sink.server == "rsyslog" else SERVICES["creosote"].ports[0].number
    result = bench.exec_json(*generators.udp_command(
        opts.udp_generator, host=bench.ips[sink.name], port=port, size=size, rate=rate, duration=opts.udp_duration,
        procs=opts.udp_procs))
    # Wait until the count stops growing: queued datagrams are still being recorded, and rsyslog
    # writes its file asynchronously (flushInterval 1 s).
    settle = 1.3 if sink.server == "rsyslog" else 0.3
    after, last_change = _records(bench, sink), time.monotonic()
    while time.monotonic() - last_change < settle:
        time.sleep(0.1)
        now = _records(bench, sink)
        if now != after:
            after, last_change = now, time.monotonic()
    received = after - before
    bench.sh(node, empty)
    t0, t1 = result["t0_ns"], result["t1_ns"]
    cores = bench.window_cores(sink.name, t0, t1)
    result.update(
        server=sink.name, work=sink.work, received=received,
        loss=max(0.0, 1 - received / result["sent"]) if result["sent"] else 1.0,
        rcvbuf_errors=_rcvbuf_errors(bench, sink) - errors_before, **cores,
        server_us_per_datagram=report.us_per_datagram(cores["server_cores"], received, result["elapsed_s"]),
    )
    return generators.judge(result)
