"""The ``chat`` section: the chat room and Redis pub/sub, the same fan-out from one load generator.

For each client count one generator joins both rooms and alternates
measurement phases between them (ABBA), so both see the same senders, the same
recipients and the same moments of the shared machine. The generator is the
compiled ``bench-chat-driver`` unless ``--chat-generator python``.
"""

from __future__ import annotations

from typing import Any

from bench import generators, report
from bench.harness import Bench
from bench.options import Options
from bench.progress import say
from protocols.registry import SERVICES


def run(bench: Bench, opts: Options) -> dict[str, Any]:
    """Every client count, ``--reps`` phases on each room; the phases and their medians."""
    chat = SERVICES["chat"]
    bench.start("chat", "chat", command=[*chat.command, "--max-clients", "1100"])
    bench.start_redis()
    say(f"chat: chat room vs Redis pub/sub at {opts.clients} clients, {opts.chat_senders} senders, "
        f"{opts.reps} rounds each; generator {generators.CHAT_GENERATORS[opts.chat_generator]}")
    phases: list[dict[str, Any]] = []
    for clients in opts.clients:
        result = bench.exec_json(*generators.chat_command(
            opts.chat_generator, chat=f"{bench.ips['chat']}:{chat.ports[0].number}", redis=f"{bench.ips['redis']}:6379",
            clients=clients, senders=opts.chat_senders, duration=opts.duration, warmup=opts.warmup, rounds=opts.reps,
            procs=opts.chat_procs))
        cell = []
        for rnd, phase in enumerate(result["phases"]):
            phase.pop("latency_us", None)
            t0, t1 = phase["t0_ns"], phase["t1_ns"]
            phase.update(clients=clients, round=rnd // 2, setup_s=result["setup_s"].get(phase["target"]),
                         **bench.window_cores(phase["target"], t0, t1))
            phase.setdefault("procs", 1 + opts.chat_procs)
            phases.append(generators.judge(phase))
            rate, p95 = phase["deliveries_per_s"] / 1000, phase["p95_ms"] or 0
            cell.append(f"{phase['target']} {rate:.0f}k/s p95 {p95:.1f} ms (generator {phase['loadgen_busiest']:.0%}"
                        + (" BOUND)" if phase["generator_bound"] else ")"))
        say(f"chat {clients} clients: " + ", ".join(cell))
    return {"generator": generators.CHAT_GENERATORS[opts.chat_generator], "phases": phases,
            "summary": report.summarize_chat(phases)}
