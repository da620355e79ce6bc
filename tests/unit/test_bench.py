"""The benchmark's pure parts: histogram and percentile math, aggregation, targets, Markdown, the plot.

No Docker: the measuring is exercised by running scripts/bench; what it computes
from its measurements, and how it draws them, is checked here.
"""

from __future__ import annotations

import io
import json
import math
import random
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from bench import plot, report, tables
from bench.loadgen import chat, udp, upper
from bench.stats import Histogram, bucket_bounds, bucket_of, median, merge_all, percentile
from common.eventlog import EventLog

# --------------------------------------------------------------------------- histogram


def test_small_values_have_exact_buckets() -> None:
    for value in range(128):
        assert bucket_bounds(bucket_of(value)) == (value, value)


@pytest.mark.parametrize("value", [128, 129, 255, 256, 1000, 4095, 10**6, 2**40 + 12345])
def test_every_value_falls_inside_its_bucket_within_one_64th(value: int) -> None:
    low, high = bucket_bounds(bucket_of(value))
    assert low <= value <= high
    assert (high - low + 1) / low <= 1 / 64


def test_buckets_are_monotonic_and_contiguous() -> None:
    previous = bucket_of(0)
    for value in range(1, 70000):
        index = bucket_of(value)
        assert index in (previous, previous + 1)
        previous = index


def test_histogram_percentiles_match_nearest_rank_within_resolution() -> None:
    rng = random.Random(7)
    values = [int(rng.lognormvariate(7, 1.2)) for _ in range(20000)]
    hist = Histogram()
    for value in values:
        hist.record(value)
    for p in (50, 90, 95, 99, 99.9, 100):
        exact = percentile(values, p)
        assert abs(hist.percentile(p) - exact) <= exact / 64 + 1, p


def test_histogram_of_small_values_is_exact() -> None:
    hist = Histogram()
    for value in [5, 1, 3, 2, 4]:
        hist.record(value)
    assert [hist.percentile(p) for p in (20, 40, 60, 80, 100)] == [1, 2, 3, 4, 5]


def test_merging_equals_recording_everything_in_one() -> None:
    rng = random.Random(3)
    parts = [Histogram() for _ in range(3)]
    whole = Histogram()
    for _ in range(3000):
        value = rng.randrange(10**6)
        rng.choice(parts).record(value)
        whole.record(value)
    merged = merge_all(parts)
    assert (merged.counts, merged.total, merged.maximum) == (whole.counts, whole.total, whole.maximum)


def test_histogram_survives_json() -> None:
    hist = Histogram()
    for value in (3, 300, 30000):
        hist.record(value)
    again = Histogram.from_json(json.loads(json.dumps(hist.to_json())))
    assert (again.counts, again.total, again.maximum) == (hist.counts, hist.total, hist.maximum)


def test_empty_histogram_and_bad_percentiles() -> None:
    assert math.isnan(Histogram().percentile(50))
    with pytest.raises(ValueError):
        Histogram().percentile(0)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_nearest_rank_percentile_of_raw_values() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 1) == 7
    assert math.isnan(percentile([], 50))


def test_median_skips_missing_values() -> None:
    assert median([3, None, 1, math.nan, 2]) == 2
    assert math.isnan(median([None, math.nan]))


# --------------------------------------------------------------------------- load generator helpers


def test_request_lines_and_datagrams_have_the_exact_size() -> None:
    assert len(upper.make_line(64, seed=1)) == 64
    assert upper.make_line(1024, seed=1).endswith(b"\n")
    assert len(udp.syslog_datagram(100)) == 100
    assert len(udp.syslog_datagram(1000)) == 1000
    with pytest.raises(ValueError):
        udp.syslog_datagram(10)


def test_chat_messages_carry_sender_sequence_and_time_through_both_framings() -> None:
    text = chat.chat_message(3, 17, 123456789, 64)
    assert len(text) == 64
    as_chat = b"<guest4> " + text + b"\n"
    as_redis = b"*3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$64\r\n" + text + b"\r\n"
    for wire in (as_chat, as_redis):
        assert chat.MESSAGE.findall(wire) == [(b"3", b"17", b"123456789")]
    assert chat.resp_publish(b"room", b"hi") == b"*3\r\n$7\r\nPUBLISH\r\n$4\r\nroom\r\n$2\r\nhi\r\n"


# --------------------------------------------------------------------------- aggregation and targets


def _upper_run(server: str, conns: int, rps: float, p99: float, *, errors: int = 0, size: int = 64) -> dict[str, Any]:
    return {"server": server, "conns": conns, "size": size, "rps": rps, "p50_ms": p99 / 4, "p99_ms": p99,
            "errors": errors, "starved": 0, "server_cores": rps / 50000, "loadgen_cores": 0.5, "loadgen_util": 0.5,
            "machine_cores": 1.5, "softirq_cores": 0.3}


UPPER_RUNS = [
    *(_upper_run("threaded", 100, rps, 12) for rps in (40000, 42000, 10000)),
    *(_upper_run("stdlib", 100, rps, 14) for rps in (44000, 45000, 46000)),
    *(_upper_run("selectors", 100, rps, 5) for rps in (60000, 66000, 70000)),
    _upper_run("threaded", 1000, 14000, 400, errors=2),
    _upper_run("stdlib", 1000, 15000, 450),
]


def test_upper_summary_takes_medians_and_sums_errors() -> None:
    summary = report.summarize_upper(UPPER_RUNS)
    threaded = next(r for r in summary if r["server"] == "threaded" and r["conns"] == 100)
    assert (threaded["runs"], threaded["rps"], threaded["errors"]) == (3, 40000, 0)
    assert threaded["server_us_per_request"] == pytest.approx(20.0)
    assert [r["server"] for r in summary][:2] == ["threaded", "threaded"]  # models first, the peer after


def test_targets_say_what_is_met() -> None:
    targets = {(t["target"], t["goal"]): t for t in report.evaluate_targets(report.summarize_upper(UPPER_RUNS), [], [])}
    ratio = targets[("threaded vs stdlib server", "≥ 0.8x everywhere")]
    assert ratio["met"] is True and "worst 0.89x" in ratio["measured"]
    cousin = targets[("fastest cousin vs threaded, 100 conns, 64 B", "≥ 1.5x")]
    assert cousin["met"] is True and "selectors 1.65x" in cousin["measured"]
    vs_stdlib = targets[("fastest cousin vs stdlib server, 100 conns, 64 B", "≥ 1.5x")]
    assert (vs_stdlib["met"], vs_stdlib["measured"]) == (False, "selectors 1.47x")  # 66k / 45k
    assert targets[("threaded: 1,000 connections", "0 errors")]["met"] is False
    assert targets[("threaded: p99 at 100 conns", "≤ 10 ms")]["met"] is False


def _trial(server: str, rate: int, loss: float, *, sent_rate: float | None = None) -> dict[str, Any]:
    return {"server": server, "work": "parsed", "size": 100, "rate_asked": rate, "rate_sent": sent_rate or rate,
            "loss": loss,
            "rcvbuf_errors": int(loss * rate), "server_cores": 0.7, "loadgen_cores": 0.5, "machine_cores": 1.6}


def test_udp_ladder_finds_the_highest_lossless_rate_and_why_it_stopped() -> None:
    trials = [
        _trial("creosote", 15000, 0), _trial("creosote", 30000, 0.0004),
        _trial("creosote", 50000, 0.2), _trial("creosote", 50000, 0.0), _trial("creosote", 50000, 0.3),
        _trial("rsyslog", 15000, 0), _trial("rsyslog", 30000, 0), _trial("rsyslog", 50000, 0, sent_rate=41000),
    ]
    summary = {r["server"]: r for r in report.summarize_udp(trials)}
    assert (summary["creosote"]["max_lossless_rate"], summary["creosote"]["ceiling"]) == (30000, "loss")
    assert summary["creosote"]["first_failing"]["loss"] == 0.2  # the median of three
    assert (summary["rsyslog"]["max_lossless_rate"], summary["rsyslog"]["ceiling"]) == (30000, "sender")
    targets = report.evaluate_targets([], report.summarize_udp(trials), [])
    verdicts = {(t["target"], t["goal"]): t["met"] for t in targets}
    assert verdicts[("creosote lossless, 100 B", "≥ 15,000/s")] is True
    assert verdicts[("creosote lossless, 100 B", "≥ 100,000/s")] is False
    # rsyslog's 30,000 is the sender's floor, not rsyslog's ceiling: 1.0x is an upper bound, undecided.
    assert verdicts[("creosote vs rsyslog (parsed, the same work), 100 B", "≥ 0.5x")] is None


def test_chat_summary_and_targets() -> None:
    phases = [
        {"target": target, "clients": clients, "deliveries_per_s": rate, "p50_ms": 1.0, "p95_ms": p95,
         "p99_ms": p95 * 2, "errors": 0, "server_cores": 0.9, "loadgen_cores": 0.9}
        for target, clients, rate, p95 in [
            ("chat", 100, 300000, 3), ("chat", 100, 320000, 4), ("redis", 100, 400000, 2),
            ("chat", 1000, 280000, 60), ("redis", 1000, 380000, 30),
        ]
    ]
    summary = report.summarize_chat(phases)
    chat100 = next(r for r in summary if r["target"] == "chat" and r["clients"] == 100)
    assert (chat100["runs"], chat100["deliveries_per_s"]) == (2, 310000)
    verdicts = {(t["target"], t["goal"]): t["met"] for t in report.evaluate_targets([], [], summary)}
    assert verdicts == {("chat deliveries, 100 clients", "≥ 100,000/s"): True,
                        ("chat vs Redis pub/sub, 100 clients", "≥ 0.3x"): True,
                        ("chat vs Redis pub/sub, 100 clients", "≥ 1.0x"): False,  # 310k vs 400k
                        ("chat p95 delivery, 1,000 clients", "≤ 250 ms"): True}


# --------------------------------------------------------------------------- rendering


def _result() -> dict[str, Any]:
    trials = [_trial("creosote", 15000, 0), _trial("creosote", 30000, 0.1), _trial("rsyslog", 15000, 0),
              _trial("rsyslog", 30000, 0)]
    phases = [{"target": t, "clients": 10, "deliveries_per_s": 1e5, "p50_ms": 1, "p95_ms": 2, "p99_ms": 3,
               "errors": 0} for t in ("chat", "redis")]
    return {
        "meta": {"mode": "quick", "when": "2026-01-01T00:00:00Z", "cpus": 2, "reps": 3},
        "upper": {"summary": report.summarize_upper(UPPER_RUNS)},
        "udp": {"summary": report.summarize_udp(trials)},
        "chat": {"summary": report.summarize_chat(phases)},
        "images": {"testbed/base:bookworm": 117_000_000, "testbed/node:latest": 131_000_000},
    }


def test_markdown_has_every_table() -> None:
    text = tables.markdown(_result())
    assert "| server | 100 conns | 1000 conns | errors |" in text
    assert "| stdlib ThreadingTCPServer (peer) |" in text
    assert "| 100 B | parsed (syslog fields as JSON lines) | 15,000 | ≥ 30,000 |" in text
    assert "| 10 | 100.0k (1.00 / 2.00) | 100.0k (1.00 / 2.00) | 1.00x |" in text
    assert "| `testbed/node:latest` | 131 MB |" in text


SVG = "{http://www.w3.org/2000/svg}"
TITLES = {"upper-rps": "Line servers: requests/s (64 B lines)", "upper-p99": "Line servers: p99 latency (64 B lines)",
          "udp-lossless": "Log sinks: highest lossless rate", "chat-deliveries": "Chat fan-out: deliveries/s"}


def _panels(svg: str) -> dict[str, list[str]]:
    """Each panel's SVG group id and the texts drawn in it."""
    root = ET.fromstring(svg)
    assert root.tag == SVG + "svg"
    return {g.attrib["id"]: ["".join(t.itertext()) for t in g.iter(SVG + "text")]
            for g in root.iter(SVG + "g") if g.attrib.get("id") in plot.PANELS}


def test_svg_is_matplotlibs_with_four_named_panels_of_the_result() -> None:
    svg = plot.svg(_result())
    assert "Matplotlib v" in svg  # drawn by matplotlib, not by hand
    panels = _panels(svg)
    assert list(panels) == list(plot.PANELS)
    for gid, title in TITLES.items():
        assert title in panels[gid], gid
    for gid in ("upper-rps", "upper-p99"):
        assert {"threaded", "selectors", "stdlib", "concurrent connections"} <= set(panels[gid])
        assert "iterative" not in panels[gid]  # no runs, no line
    assert {"100 B", "15k", "≥ 30k", "creosote", "rsyslog"} <= set(panels["udp-lossless"])  # rsyslog: ladder's top
    assert {"10", "100k", "chat", "redis", "clients"} <= set(panels["chat-deliveries"])
    footer = ("scripts/bench, quick run 2026-01-01T00:00:00Z: medians of 3 interleaved runs across a Docker network, "
              "2 CPUs")
    assert footer in "".join(ET.fromstring(svg).itertext())


def test_svg_of_an_empty_result_still_has_every_panel_saying_no_data() -> None:
    panels = _panels(plot.svg({}))
    assert list(panels) == list(plot.PANELS)
    for texts in panels.values():
        assert "(no data)" in texts


def test_the_same_result_renders_to_the_same_bytes() -> None:
    assert plot.svg(_result()) == plot.svg(_result())
    assert "<dc:date>" not in plot.svg(_result())


@pytest.mark.parametrize(("value", "text"), [(0.1, "0.1"), (10, "10"), (1000, "1k"), (12500, "12.5k"),
                                             (118200, "118.2k")])
def test_tick_and_bar_labels(value: float, text: str) -> None:
    assert plot.fmt_tick(value) == text


# --------------------------------------------------------------------------- a server change the bench relies on


def test_deferred_event_lines_keep_their_order_and_wait_for_flush() -> None:
    out = io.StringIO()
    log = EventLog("creosote", stream=out)
    log.defer("record", n=1)
    log.defer("record", n=2)
    assert out.getvalue() == "" and log.deferred == 2
    log("loss", n=3)  # written at once, after the deferred lines
    log.defer("record", n=4)
    log.flush()
    events = [line.split()[2:] for line in out.getvalue().splitlines()]
    assert events == [["record", "n=1"], ["record", "n=2"], ["loss", "n=3"], ["record", "n=4"]]
    assert log.deferred == 0
