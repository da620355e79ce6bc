"""The bench's command line, in-process: help, argument errors, defaults, ``--render``; no Docker.

What runs in the bench image's containers is checked to import on the standard
library alone (``python -S``: no site-packages), as it runs there.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench import cli, options, report, tables
from bench.options import parse

ROOT = Path(__file__).resolve().parents[2]
FLAGS = ["-h", "--help", "--quick", "--sections", "--reps", "--duration", "--warmup", "--conns", "--sizes",
         "--servers", "--upper-procs", "--udp-sizes", "--udp-rates", "--udp-procs", "--udp-duration",
         "--docker-logs", "--clients", "--chat-senders", "--chat-procs", "-o", "--output", "--render",
         "--udp-work", "--udp-generator", "--chat-generator", "--pin"]


def _help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def test_help_names_every_option_and_what_is_written(capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    text = _help(capsys)
    assert text.startswith("usage: scripts/bench [-h] [--quick]")
    assert set(FLAGS) <= set(re.findall(r"(?<![\w-])--?[a-z][a-z-]*", text))
    words = " ".join(text.split())
    assert "Writes results/bench.json, results/bench.md and results/bench.svg" in words
    assert "(default: threaded,iterative,forking,selectors,asyncio,stdlib)" in words


def test_python_m_bench_prints_the_same_help(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    in_process = _help(capsys)
    done = subprocess.run([sys.executable, "-m", "bench", "--help"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "COLUMNS": "100"}, cwd="/")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == in_process


@pytest.mark.parametrize("argv", [
    ["--bogus"],
    ["--sections", "upper,tcp"],
    ["--servers", "threaded,twisted"],
    ["--conns", "1,x"],
    ["--sizes", "0"],
    ["--reps"],
    ["--duration", "soon"],
    ["--udp-work", "parsed,json"],
    ["--udp-generator", "rust"],
    ["--chat-generator", "go"],
])
def test_argument_errors_exit_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and err.endswith(" (see scripts/bench --help)\n")


def test_unknown_names_say_which_and_what_to_write_instead(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["--sections", "upper,tcp,udp,lan"])
    assert "unknown section lan, tcp: choose from upper,udp,chat,lab" in capsys.readouterr().err


def test_quick_picks_the_smaller_defaults_and_explicit_values_win() -> None:
    full, quick = parse([]), parse(["--quick"])
    assert (full.reps, full.duration, full.warmup, full.sizes, full.udp_sizes, full.udp_duration) == \
        (3, 1.5, 0.3, [64, 1024], [100, 1000], 10.0)
    assert (quick.reps, quick.duration, quick.warmup, quick.sizes, quick.udp_sizes, quick.udp_duration) == \
        (1, 1.0, 0.2, [64], [100], 2.0)
    assert full.udp_rates == list(options.UDP_RATES) and quick.udp_rates == list(options.QUICK_UDP_RATES)
    assert full.sections == frozenset(options.SECTIONS) and full.servers == list(options.LINE_SERVERS)
    assert full.output == ROOT / "results" / "bench.json" and full.render is None
    assert (full.udp_work, full.udp_generator, full.chat_generator, full.pin) == \
        (["parsed", "raw"], "sendmmsg", "epoll", False)
    assert parse(["--udp-work", "raw,parsed", "--pin"]).udp_work == ["parsed", "raw"]  # the table's order
    given = parse(["--quick", "--warmup", "0", "--reps", "5", "--conns", "7,70", "--sections", "udp"])
    assert (given.warmup, given.reps, given.conns, given.sections) == (0.0, 5, [7, 70], frozenset({"udp"}))
    assert given.argv == ["--quick", "--warmup", "0", "--reps", "5", "--conns", "7,70", "--sections", "udp"]


def _result() -> dict[str, object]:
    runs = [{"server": server, "conns": conns, "size": 64, "rps": rps, "p50_ms": 0.5, "p99_ms": p99, "errors": 0}
            for server, conns, rps, p99 in [("threaded", 10, 20000, 2.0), ("threaded", 100, 18000, 30.0),
                                            ("stdlib", 10, 21000, 1.5), ("stdlib", 100, 12000, 40.0)]]
    return {"meta": {"mode": "quick", "when": "2026-01-01T00:00:00Z", "cpus": 2, "reps": 1},
            "upper": {"runs": runs, "summary": report.summarize_upper(runs)}}


def test_render_writes_json_markdown_and_svg_beside_the_output(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "old.json"
    source.write_text(json.dumps(_result()))
    out = tmp_path / "new" / "bench.json"
    assert cli.main(["--render", str(source), "-o", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["targets"][0]["target"] == "threaded vs stdlib server"
    table = out.with_suffix(".md").read_text()
    assert table == tables.markdown(written)
    assert "| threaded | 20.0k (0.50 / 2.00) | 18.0k (0.50 / 30) | 0 |" in table
    ET.fromstring(out.with_suffix(".svg").read_text())
    printed = capsys.readouterr().out
    assert f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.svg')}" in printed
    assert printed.endswith(table)


def test_render_of_an_unreadable_json_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    for path in (broken, tmp_path / "missing.json"):
        assert cli.main(["--render", str(path), "-o", str(tmp_path / "out.json")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: --render {path}: ")
    assert not (tmp_path / "out.json").exists()


def _imported_after(code: str, *flags: str) -> set[str]:
    """Top-level modules a fresh interpreter has imported after ``code`` (run from the repository)."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, *flags, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_what_runs_in_the_containers_needs_only_the_standard_library() -> None:
    # -S: no site-packages at all, as in the bench image, so any third-party import fails here.
    modules = _imported_after("import bench.loadgen, bench.stats, bench.peers.stdlib_upper", "-S")
    assert "bench" in modules
    assert not modules & {"docker", "matplotlib", "yaml", "lab", "pytest"}


def test_the_command_line_imports_neither_docker_nor_matplotlib_until_it_needs_them() -> None:
    modules = _imported_after("import bench.cli, bench.__main__; bench.options.parse(['--quick'])")
    assert "bench" in modules
    assert not modules & {"docker", "matplotlib", "lab", "pytest"}
