"""The ``upper`` section: closed-loop requests to every concurrency model and the stdlib peer, interleaved.

Each round runs every (line size, connections) cell once per server, the
servers' order rotated every round and reversed every other one, so a slow
moment of the shared machine does not always land on the same server. Redis
PING calibrates what the generator itself can drive, twice: from the same
Python generator, and from Debian's redis-benchmark (C). Every run carries its
generator's CPU and verdict (``bench.generators.judge``).
"""

from __future__ import annotations

from typing import Any

from bench import generators, report
from bench.harness import Bench
from bench.options import LINE_SERVERS, Options
from bench.progress import say


def run(bench: Bench, opts: Options) -> dict[str, Any]:
    """Every round of every cell; the raw runs and their medians."""
    servers = [s for s in LINE_SERVERS if s in opts.servers]
    for name in servers:
        service, _, command = LINE_SERVERS[name]
        # The forking model holds a process per connection: 1,000 of them need more than 1 GB.
        bench.start(name, service, command=command, mem_limit="4g" if name == "forking" else "1g")
    bench.start_redis()
    say(f"upper: {', '.join(servers)} + Redis PING calibration; sizes {opts.sizes}, conns {opts.conns}")
    runs: list[dict[str, Any]] = []
    for rep in range(opts.reps):
        for size in opts.sizes:
            for conns in opts.conns:
                # The iterative server serves one client at a time: the others would only time out.
                names = [s for s in servers if s != "iterative" or conns == 1]
                shift = rep % len(names)
                order = names[shift:] + names[:shift]
                if rep % 2:
                    order.reverse()
                cell = []
                for result in cell_runs(bench, opts, order, conns=conns, size=size, rep=rep):
                    runs.append(result)
                    name = result["server"]
                    cell.append(f"{name} {result['rps'] / 1000:.1f}k/s p99 {result['p99_ms'] or 0:.1f} ms"
                                + (f" errors {result['errors']}" if result["errors"] else ""))
                say(f"upper round {rep + 1}/{opts.reps}, {size} B x {conns}: " + ", ".join(cell))
        calib = []
        for conns in opts.conns:
            [result] = cell_runs(bench, opts, ["redis"], conns=conns, size=6, rep=rep, mode="ping")
            result["server"] = report.CALIBRATION
            c_result = redis_benchmark(bench, opts, conns=conns, rep=rep)
            runs += [result, c_result]
            calib.append(f"{conns}: {result['rps'] / 1000:.1f}k/s (generator {result['loadgen_busiest']:.0%} busy), "
                         f"redis-benchmark {c_result['rps'] / 1000:.1f}k/s ({c_result['loadgen_busiest']:.0%})")
        say(f"upper round {rep + 1}/{opts.reps}, Redis PING calibration: " + "; ".join(calib))
    for result in runs:
        result.pop("latency_us", None)
    return {"runs": runs, "summary": report.summarize_upper(runs)}


def cell_runs(bench: Bench, opts: Options, names: list[str], *, conns: int, size: int, rep: int,
              mode: str = "upper") -> list[dict[str, Any]]:
    """One closed-loop run per server, in the order given, from one load generator invocation."""
    targets = []
    for name in names:
        port = 6379 if name == "redis" else LINE_SERVERS[name][1]
        targets += ["--target", f"{bench.ips[name]}:{port}"]
    results: list[dict[str, Any]] = bench.exec_json(
        "python3", "-m", "bench.loadgen", "upper", *targets,
        "--conns", str(conns), "--size", str(size), "--duration", str(opts.duration),
        "--warmup", str(opts.warmup), "--procs", str(opts.upper_procs), "--mode", mode, "--seed", str(rep + 1),
    )["runs"]
    for name, result in zip(names, results, strict=True):
        t0, t1 = result["t0_ns"], result["t1_ns"]
        window = result["window_s"]
        result.update(
            server=name, rep=rep, **bench.window_cores(name, t0, t1),
            loadgen_util=result["loadgen_cpu_s"] / (window * opts.upper_procs) if window else 0,
        )
        generators.judge(result)
    return results


def redis_benchmark(bench: Bench, opts: Options, *, conns: int, rep: int) -> dict[str, Any]:
    """Redis PING from Debian's redis-benchmark (C, one thread): the second calibration."""
    result = bench.exec_json("python3", "-m", "bench.loadgen", "redis-benchmark", "--host", bench.ips["redis"],
                             "--conns", str(conns), "--duration", str(opts.duration))
    result.update(server=report.CALIBRATION_C, size=6, rep=rep, starved=0, **bench.window_cores(
        "redis", result["t0_ns"], result["t1_ns"]), loadgen_util=result["loadgen_cpu_s"] / result["window_s"])
    return generators.judge(result)
