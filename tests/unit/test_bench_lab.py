"""scripts/bench-lab's pure parts: the ports its bare ``down`` publishes, its SVG, and ``--plot``."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bench import lab_plot

ROOT = Path(__file__).resolve().parents[2]
BENCH_LAB = ROOT / "scripts" / "bench-lab"


def load_bench_lab() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("bench_lab", str(BENCH_LAB))
    spec = importlib.util.spec_from_loader("bench_lab", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_each_service_publishes_its_own_ports_as_docker_run_takes_them() -> None:
    config = {
        "services": {
            "daytime": {
                "ports": [
                    {"mode": "ingress", "host_ip": "127.0.0.1", "target": 13, "published": "10013", "protocol": "tcp"},
                    {"mode": "ingress", "host_ip": "127.0.0.1", "target": 13, "published": "10013", "protocol": "udp"},
                ]
            },
            "creosote": {"ports": [{"target": 7739, "published": "17739", "protocol": "udp"}]},
            "client": {},
        }
    }
    assert load_bench_lab().run_ports(config) == {
        "daytime": ["127.0.0.1:10013:13/tcp", "127.0.0.1:10013:13/udp"],
        "creosote": ["0.0.0.0:17739:7739/udp"],  # no host address: every address, as Compose publishes it
        "client": [],
    }


def test_a_port_without_a_protocol_is_tcp() -> None:
    config = {"services": {"echo": {"ports": [{"host_ip": "127.0.0.1", "target": 7, "published": "10007"}]}}}
    assert load_bench_lab().run_ports(config) == {"echo": ["127.0.0.1:10007:7/tcp"]}


# --------------------------------------------------------------------------- the SVG (bench/lab_plot.py)

SVG = "{http://www.w3.org/2000/svg}"
RESULT: dict[str, Any] = {
    "when": "2026-01-01T00:00:00Z",
    "engine": "26.1.5",
    "machine": {"cpus": 2},
    "samples_s": {
        # a slow round in each, so that a mean would show otherwise than the median
        "baseline": [0.9, 1.3, 0.8], "up_no_wait": [1.4, 1.3, 1.8], "warm_up": [2.0, 1.9, 2.6],
        "events_up": [1.6, 2.2, 1.5], "up_before_events": [1.4, 1.4, 1.3], "down": [1.1, 1.0, 1.5],
        "bare_down": [0.9, 1.3, 0.95], "cold_up": [],
    },
    "targets": {"warm_up_over_baseline_max": 1.5, "warm_up_over_up_no_wait_max": 1.25, "down_max_s": 1.0},
}  # fmt: skip


def panels(svg: str) -> dict[str, str]:
    """Each panel's SVG group id and all the text drawn in it."""
    root = ET.fromstring(svg)
    assert root.tag == SVG + "svg"
    return {g.attrib["id"]: " ".join("".join(t.itertext()) for t in g.iter(SVG + "text"))
            for g in root.iter(SVG + "g") if g.attrib.get("id") in lab_plot.PANELS}  # fmt: skip


def test_the_svg_shows_each_row_at_its_median_and_each_target_where_it_falls() -> None:
    svg = lab_plot.svg(RESULT)
    assert "Matplotlib v" in svg  # drawn by matplotlib, not by hand
    start, stop = (panels(svg)[gid] for gid in lab_plot.PANELS)
    for label, median in [
        ("six bare containers", "0.90 s"),
        ("docker compose up -d", "1.40 s"),
        ("up -d, then the wait of lab up", "1.60 s"),
        ("docker compose up -d --wait", "2.00 s"),
    ]:
        assert label in start and median in start, label
    assert "target: 1.25x up -d (1.75 s)" in start  # 1.25 x the median up -d
    assert "stretch: 1.5x bare (1.35 s)" in start
    assert "docker compose down" in stop and "1.10 s" in stop
    assert "docker rm -f, network rm" in stop and "0.95 s" in stop
    assert "target 1 s (1.00 s)" in stop
    assert "scripts/bench-lab 2026-01-01T00:00:00Z: Docker 26.1.5, 2 CPUs, 3 interleaved rounds" in "".join(
        ET.fromstring(svg).itertext()
    )


def test_a_result_without_the_floor_leaves_its_row_out_and_an_empty_one_says_no_data() -> None:
    older = {**RESULT, "samples_s": {k: v for k, v in RESULT["samples_s"].items() if k != "bare_down"}}
    stop = panels(lab_plot.svg(older))["lab-stop"]
    assert "docker compose down" in stop and "docker rm -f" not in stop
    assert all("(no data)" in text for text in panels(lab_plot.svg({})).values())


def test_the_same_result_draws_the_same_bytes() -> None:
    assert lab_plot.svg(RESULT) == lab_plot.svg(RESULT)
    assert "<dc:date>" not in lab_plot.svg(RESULT)


# --------------------------------------------------------------------------- --plot RESULT


def test_plot_draws_an_earlier_result_beside_it(tmp_path: Path) -> None:
    result = tmp_path / "run.json"
    result.write_text(json.dumps(RESULT))
    done = subprocess.run([sys.executable, str(BENCH_LAB), "--plot", str(result)], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run.svg").read_text() == lab_plot.svg(RESULT)


@pytest.mark.parametrize(("text", "says"), [
    (None, "No such file or directory (give the JSON a bench-lab run wrote"),
    ("not json", "not JSON"),
    ("[1, 2]", "no samples_s object in it"),
    ('{"samples_s": 3}', "no samples_s object in it"),
])  # fmt: skip
def test_plot_refuses_what_is_not_a_result_naming_the_file(tmp_path: Path, text: str | None, says: str) -> None:
    result = tmp_path / "run.json"
    if text is not None:
        result.write_text(text)
    done = subprocess.run([sys.executable, str(BENCH_LAB), "--plot", str(result)], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: --plot {result}: ") and says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run.svg").exists()
