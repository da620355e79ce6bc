"""The load generators' pure parts: their command lines, their output read and checked, the verdict on each row.

No Docker and no sockets: what decides whether a figure is the server's or its
generator's, and how the tables say so, is checked here against right and wrong
input.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench import generators, report, tables
from bench.generators import GeneratorOutputError, bound_reason, busiest_cores, judge, read_result, udp_command
from bench.harness import bench_image, image_tag
from bench.loadgen import redis_bench

NS = 1_000_000_000

# What bench-udp-sender printed on this machine (bench/native/udp_sender.c), a 100 B trial at 100,000/s.
C_SENDER = (
    '{"generator": "udp-sendmmsg", "target": "127.0.0.1:47486", "size": 100, "rate_asked": 100000, '
    '"sent": 197750, "send_errors": 0, "last_error": "", "elapsed_s": 2.000325, "rate_sent": 98858.9, '
    '"loadgen_cpu_s": 0.8133, "cpu_user_s": 0.0087, "cpu_sys_s": 0.8045, "procs": 1, "batch": 32, "calls": 9660, '
    '"wakeups": 1044, "max_behind": 6422, "t0_ns": 11434232841640, "t1_ns": 11436233166719}\n'
)
# redis-benchmark 7.0.15 --csv, as Debian's redis-tools prints it.
REDIS_CSV = (
    '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",'
    '"max_latency_ms"\n"PING_INLINE","37383.18","0.175","0.032","0.143","0.279","0.647","11.983"\n'
)


# --------------------------------------------------------------------------- command lines and images


def test_udp_commands_name_the_compiled_or_the_python_sender() -> None:
    c = udp_command("sendmmsg", host="10.0.0.2", port=7739, size=100, rate=50000, duration=10.0, procs=2)
    assert c == ["bench-udp-sender", "--host", "10.0.0.2", "--port", "7739", "--size", "100", "--rate", "50000",
                 "--duration", "10"]
    py = udp_command("python", host="h", port=1, size=1000, rate=15000, duration=2.5, procs=2)
    assert py[:4] == ["python3", "-m", "bench.loadgen", "udp"] and py[-2:] == ["--procs", "2"]
    assert "--duration" in py and py[py.index("--duration") + 1] == "2.5"
    with pytest.raises(ValueError, match="choose from sendmmsg, python"):
        udp_command("rust", host="h", port=1, size=100, rate=1, duration=1, procs=1)


def test_chat_commands_name_the_compiled_or_the_python_driver_and_only_the_rooms_given() -> None:
    c = generators.chat_command("epoll", chat="10.0.0.4:5000", redis=None, clients=100, senders=10, duration=1.5,
                                warmup=0.3, rounds=3, procs=1)
    assert c == ["bench-chat-driver", "--chat", "10.0.0.4:5000", "--clients", "100", "--senders", "10",
                 "--duration", "1.5", "--warmup", "0.3", "--rounds", "3"]
    py = generators.chat_command("python", chat="c:5000", redis="r:6379", clients=10, senders=10, duration=1,
                                 warmup=0, rounds=1, procs=2)
    assert py[:4] == ["python3", "-m", "bench.loadgen", "chat"] and py[-2:] == ["--procs", "2"]
    assert py[4:8] == ["--chat", "c:5000", "--redis", "r:6379"]
    with pytest.raises(ValueError, match="choose from epoll, python"):
        generators.chat_command("go", chat="c:1", redis=None, clients=2, senders=1, duration=1, warmup=0, rounds=1,
                                procs=0)


@pytest.mark.parametrize(("node", "tag"), [
    ("testbed/node:latest", "latest"), ("testbed/node:wt-bench", "wt-bench"), ("testbed/node", "latest"),
    ("registry.example:5000/testbed/node", "latest"), ("registry.example:5000/node:v2", "v2"),
])
def test_bench_images_follow_the_node_images_tag(node: str, tag: str) -> None:
    assert image_tag(node) == tag
    assert bench_image("bench", node) == f"testbed/bench:{tag}"
    assert bench_image("bench-rsyslog", node) == f"testbed/bench-rsyslog:{tag}"


# --------------------------------------------------------------------------- reading the generators' output


def test_the_c_senders_output_reads_as_a_udp_trial() -> None:
    trial = read_result(C_SENDER)
    assert (trial["generator"], trial["sent"], trial["rate_asked"]) == ("udp-sendmmsg", 197750, 100000)
    assert busiest_cores(trial) == pytest.approx(0.8133 / 2.000325, rel=1e-3)


def test_a_generator_that_does_not_say_its_name_is_named_by_the_caller() -> None:
    runs = read_result(json.dumps({"runs": [{"t0_ns": 1, "t1_ns": 2, "loadgen_cpu_s": 0.1}]}), generator="x")
    assert runs["runs"][0]["generator"] == "x"
    named = read_result(C_SENDER, generator="other")
    assert named["generator"] == "udp-sendmmsg"  # its own name wins


@pytest.mark.parametrize(("text", "why"), [
    ("", "not JSON"),
    ("error: --host and --port are required", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"sent": 5, "t0_ns": 1, "t1_ns": 2}', "no loadgen_cpu_s"),
    ('{"t0_ns": "soon", "t1_ns": 2, "loadgen_cpu_s": 0}', "no t0_ns"),
    ('{"t0_ns": 5, "t1_ns": 5, "loadgen_cpu_s": 0}', "ends before it starts"),
    ('{"runs": [{"t0_ns": 1, "t1_ns": 2, "loadgen_cpu_s": 0}, {"t0_ns": 1}]}', "no t1_ns, loadgen_cpu_s"),
    ('{"phases": [7]}', "a run is not a JSON object"),
    ('{"runs": {"t0_ns": 1}}', "runs are not a list"),
])
def test_wrong_output_is_refused_with_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(GeneratorOutputError, match=why):
        read_result(text)


def test_redis_benchmarks_csv_reads_as_figures() -> None:
    assert redis_bench.parse_csv(REDIS_CSV) == {"rps": 37383.18, "p50_ms": 0.143, "p99_ms": 0.647,
                                                "max_ms": 11.983}
    for wrong in ("", REDIS_CSV.replace("PING_INLINE", "PING_MBULK"), REDIS_CSV.replace('"0.143"', '"fast"'),
                  'Could not connect to Redis at 127.0.0.1:1: Connection refused\n'):
        with pytest.raises(ValueError):
            redis_bench.parse_csv(wrong)


def test_redis_benchmark_is_asked_for_inline_pings_enough_for_every_connection() -> None:
    argv = redis_bench.command(host="10.0.0.3", port=6379, conns=100, requests=75000)
    assert argv == ["redis-benchmark", "-h", "10.0.0.3", "-p", "6379", "-c", "100", "-n", "75000", "-t",
                    "ping_inline", "--csv"]
    assert redis_bench.requests_for(1.5, 10) == 75000
    assert redis_bench.requests_for(0.1, 1000) == 50000  # at least 50 per connection


# --------------------------------------------------------------------------- the verdict


def _row(**fields: Any) -> dict[str, Any]:
    return {"t0_ns": 0, "t1_ns": 2 * NS, **fields}


def test_the_busiest_process_counts_not_the_average() -> None:
    assert busiest_cores(_row(loadgen_cpu_s=1.2, busiest_cpu_s=1.9, procs=2)) == pytest.approx(0.95)
    # Without a busiest figure the whole is spread over the processes.
    assert busiest_cores(_row(loadgen_cpu_s=1.2, procs=2)) == pytest.approx(0.3)
    assert busiest_cores(_row()) is None
    assert busiest_cores({"t0_ns": 5, "t1_ns": 5, "loadgen_cpu_s": 1}) is None


@pytest.mark.parametrize(("busiest", "asked", "sent", "reason"), [
    (0.5, None, None, None),
    (0.89, 100000, 97000, None),
    (0.9, None, None, "generator busy 90% of a core"),
    (0.99, 15000, 15000, "generator busy 99% of a core"),
    (0.4, 100000, 96999, "generator sent 96,999 of 100,000/s"),
    (0.95, 100000, 50000, "generator sent 50,000 of 100,000/s"),  # the rate first: it says more
    (None, None, None, None),
])
def test_bound_reason(busiest: float | None, asked: float | None, sent: float | None, reason: str | None) -> None:
    assert bound_reason(busiest=busiest, rate_asked=asked, rate_sent=sent) == reason


def test_judge_marks_a_saturated_generator_and_leaves_a_comfortable_one_alone() -> None:
    hot = judge(_row(loadgen_cpu_s=1.92, busiest_cpu_s=1.92))
    assert (hot["loadgen_busiest"], hot["generator_bound"]) == (0.96, "generator busy 96% of a core")
    cool = judge(_row(loadgen_cpu_s=0.8, rate_asked=50000, rate_sent=49990.0))
    assert (cool["loadgen_busiest"], cool["generator_bound"]) == (0.4, None)


def test_a_summary_row_is_generator_bound_when_any_of_its_runs_was() -> None:
    rows = [{"generator": "upper-python", "loadgen_busiest": b, "generator_bound": r}
            for b, r in [(0.5, None), (0.95, "generator busy 95% of a core"), (0.6, None)]]
    fields = report.generator_fields(rows)
    assert fields == {"generator": "upper-python", "loadgen_busiest": 0.6,
                      "generator_bound": "generator busy 95% of a core", "bound_runs": 1}
    assert report.generator_fields(rows[::2])["generator_bound"] is None


@pytest.mark.parametrize(("ours_floor", "peer_floor", "value", "expected"), [
    (False, False, 60, ("", True)), (False, False, 40, ("", False)),
    (False, True, 40, ("≤ ", False)), (False, True, 60, ("≤ ", None)),  # the peer might do more
    (True, False, 60, ("≥ ", True)), (True, False, 40, ("≥ ", None)),  # we might do more
    (True, True, 60, ("~", None)),
])
def test_a_floor_decides_a_target_only_on_its_side(ours_floor: bool, peer_floor: bool, value: float,
                                                   expected: tuple[str, bool | None]) -> None:
    ratio, sign, met = report.compare(value, 100, 0.5, value_is_floor=ours_floor, peer_is_floor=peer_floor)
    assert ratio == value / 100 and (sign, met) == expected


# --------------------------------------------------------------------------- the UDP ladder and its table


def _trial(server: str, rate: int, loss: float, *, sent: float | None = None, busiest: float = 0.3,
           work: str = "parsed") -> dict[str, Any]:
    sent = rate if sent is None else sent
    row = judge({"server": server, "work": work, "size": 100, "rate_asked": rate, "rate_sent": sent, "loss": loss,
                 "generator": "udp-sendmmsg", "t0_ns": 0, "t1_ns": NS, "loadgen_cpu_s": busiest,
                 "rcvbuf_errors": int(loss * rate), "server_cores": 0.9, "loadgen_cores": busiest,
                 "machine_cores": 1.7})
    return row


def test_loss_at_a_rate_the_sender_fell_short_of_is_still_the_sinks_loss() -> None:
    trials = [_trial("creosote", 50000, 0), _trial("creosote", 100000, 0.5, sent=86000),
              _trial("rsyslog", 50000, 0), _trial("rsyslog", 100000, 0, sent=86000)]
    summary = {r["server"]: r for r in report.summarize_udp(trials)}
    assert (summary["creosote"]["max_lossless_rate"], summary["creosote"]["ceiling"]) == (50000, "loss")
    assert (summary["rsyslog"]["max_lossless_rate"], summary["rsyslog"]["ceiling"]) == (50000, "sender")
    assert summary["rsyslog"]["first_failing"]["generator_bound"] == "generator sent 86,000 of 100,000/s"
    verdicts = {t["target"]: (t["measured"], t["met"]) for t in report.evaluate_targets([], list(summary.values()), [])}
    # rsyslog's 50,000 is a floor: 1.0x is then only an upper bound, which cannot say the target is met.
    assert verdicts["creosote vs rsyslog (parsed, the same work), 100 B"] == ("≤ 1.00x (rsyslog ≥ 50,000/s)", None)


def test_the_udp_table_names_the_generator_and_marks_its_ceiling() -> None:
    trials = [_trial("creosote", 15000, 0, busiest=0.12), _trial("creosote", 30000, 0.2, busiest=0.25),
              _trial("rsyslog", 15000, 0), _trial("rsyslog", 30000, 0, sent=20000, busiest=0.95),
              _trial("creosote-raw", 15000, 0, work="raw"), _trial("rsyslog-raw", 15000, 0, work="raw")]
    text = tables.markdown({"udp": {"summary": report.summarize_udp(trials)}})
    assert "Generator `udp-sendmmsg`: bench-udp-sender (C)" in text
    assert "| 100 B | parsed (syslog fields as JSON lines) | 15,000 (gen 12 %) | ≥ 15,000 (gen 30 %) | ≤ 1.00x |" \
        in text
    assert "at 30,000/s the generator sent 20.0k/s ‡ (a floor)" in text
    assert "(gen 95 % ‡)" in text
    assert "| 100 B | raw (each datagram as a line) | ≥ 15,000 (gen 30 %) | ≥ 15,000 (gen 30 %) | ~1.00x |" in text


def test_a_sinks_cpu_per_datagram_is_its_cores_over_what_it_recorded() -> None:
    assert report.us_per_datagram(0.86, 300_000, 6.0) == 17.2  # 0.86 cores for 50,000 records/s
    assert report.us_per_datagram(None, 300_000, 6.0) is None
    assert report.us_per_datagram(0.5, 0, 6.0) is None  # nothing recorded: no cost per record
    trial = _trial("creosote", 50000, 0)
    trial["server_us_per_datagram"] = 17.2
    text = tables.markdown({"udp": {"summary": report.summarize_udp([trial])}})
    assert "| ≥ 50,000 (17.2 µs; gen 30 %) |" in text


def test_a_result_from_before_the_generators_were_judged_still_renders_and_says_so() -> None:
    # Summary rows as results/bench.json held them before: no generator, no work, no verdict.
    old_udp: list[dict[str, Any]] = [
        {"server": name, "size": 100, "max_lossless_rate": rate, "ceiling": ceiling, "at_max": {"rate": rate},
         "first_failing": None, "steps": []}
        for name, rate, ceiling in [("creosote", 15000, "loss"), ("rsyslog", 75000, "sender")]
    ]
    old_chat = [{"target": t, "clients": 100, "deliveries_per_s": r, "p50_ms": 1.0, "p95_ms": 2.0, "errors": 0}
                for t, r in (("chat", 129_600.0), ("redis", 183_600.0))]
    result: dict[str, Any] = {"udp": {"summary": old_udp}, "chat": {"summary": old_chat}}
    result["targets"] = report.evaluate_targets([], old_udp, old_chat)
    text = tables.markdown(result)
    assert "| 100 B | (not recorded: measured before the pairs) | 15,000 | ≥ 75,000 | ≤ 0.20x |" in text
    assert "The generator and its CPU were not recorded in this result" in text
    assert "| chat vs Redis pub/sub, 100 clients | ≥ 1.0x | 0.71x | **no** |" in text


def test_gen_cells() -> None:
    assert tables.gen_cell({"loadgen_busiest": 0.461}) == "gen 46 %"
    assert tables.gen_cell({"loadgen_busiest": 0.96, "generator_bound": "x", "runs": 3, "bound_runs": 3}) \
        == "gen 96 % ‡"
    assert tables.gen_cell({"loadgen_busiest": 0.7, "generator_bound": "x", "runs": 3, "bound_runs": 1}) \
        == "gen 70 % ‡1/3"
    assert tables.gen_cell({"generator": "upper-python"}) == "gen ?"
    assert tables.gen_cell({}) == ""  # an old result: nothing recorded
    assert tables.gen_cell(None) == ""


def test_every_generator_has_a_description() -> None:
    assert set(generators.UDP_GENERATORS.values()) <= set(generators.GENERATORS)
    assert set(generators.CHAT_GENERATORS.values()) <= set(generators.GENERATORS)
    assert all(text for text in generators.GENERATORS.values())


def test_a_redis_figure_below_what_another_generator_got_is_a_floor_not_a_verdict() -> None:
    """redis-benchmark got 35.8k/s where the Python generator got 59.8k/s: Redis does at least 59.8k/s."""
    def row(server: str, rps: float) -> dict[str, object]:
        return {"server": server, "conns": 100, "size": 64, "rps": rps, "p99_ms": 5.0, "generator_bound": None}

    upper = [row("selectors", 65_832.0), row(report.CALIBRATION, 59_774.0), row(report.CALIBRATION_C, 35_842.0)]
    verdicts = {t["target"]: (t["measured"], t["met"]) for t in report.evaluate_targets(upper, [], [])}
    slow = verdicts["selectors vs Redis PING, 100 conns, 64 B (Redis driven by redis-benchmark)"]
    assert slow[1] is None and slow[0].startswith("≤ 1.84x") and "59,774/s with another generator" in slow[0]
    fast = verdicts["selectors vs Redis PING, 100 conns, 64 B (the same generator)"]
    assert fast == ("1.10x (65,832 vs 59,774/s)", True)
