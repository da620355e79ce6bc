"""``lab chaos plan|run|check``: fault schedules from the command line, over ``RunningLab.faults``.

``plan`` prints a schedule's steps for a seed, one JSON line each (the same seed, the
same bytes). ``run`` runs it on a running lab with the workloads, writes the history
and the timeline, prints a verdict per checker, and exits 1 when one failed or the lab
could not be put back. ``check`` checks and draws a saved history again.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from lab import backends, chaos
from lab.chaos import timeline
from lab.chaos.checkers import Verdict
from lab.cli import indented, say, target
from lab.cli_table import UsageError


def _seed(args: argparse.Namespace) -> int:
    if args.seed is not None:
        return int(args.seed)
    seed = secrets.randbelow(2**31)
    print(f"seed {seed} (replay with --seed {seed})", file=sys.stderr)
    return seed


def cmd_plan(args: argparse.Namespace) -> int:
    schedule = chaos.load(args.file)
    sys.stdout.write(chaos.lines(chaos.expand(schedule, _seed(args))))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    schedule = chaos.load(args.file)
    lab = target(args)
    try:
        chosen = chaos.workloads.parse_list(args.workload) if args.workload is not None else \
            chaos.workloads.defaults(lab)  # fmt: skip
    except ValueError as exc:
        raise UsageError(str(exc), "see lab chaos run --help") from None
    seed = _seed(args)
    history_path = args.history or backends.state_dir(args.state_dir) / lab.name / f"chaos-{seed}.jsonl"
    picture = args.timeline or history_path.with_suffix(".svg")
    steps = chaos.expand(schedule, seed)
    say(f"lab {lab.name}: {schedule.source}, seed {seed}: {len(steps)} steps over {schedule.duration_ms / 1000:g} s")
    say("workloads: " + (", ".join(f"{w.name} -> {w.node}:{w.port}" for w in chosen) or "none"))
    signal.signal(signal.SIGTERM, _interrupted)  # `kill PID` heals the lab too, as Ctrl-C does
    # A shell starts a background job (`cmd &` without job control) with SIGINT ignored, and Python keeps
    # it so: `kill -INT` would then not stop the run at all. Ctrl-C heals the lab however it was started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    failure: chaos.ChaosError | None = None
    try:
        with lab.faults(schedule, seed=seed, workloads=chosen, history=history_path, say=indented) as history:
            say("every workload is ready; the schedule starts")
    except chaos.ChaosError as exc:
        failure = exc
    return _report(history, picture, history_path, failure)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_check(args: argparse.Namespace) -> int:
    try:
        history = chaos.History.read(args.history_file)
    except chaos.HistoryError as exc:
        raise UsageError(str(exc), "give a history written by lab chaos run") from None
    return _report(history, args.timeline or args.history_file.with_suffix(".svg"), None, None)


def _report(history: chaos.History, picture: Path, written: Path | None, failure: Exception | None) -> int:
    verdicts = chaos.check(history)
    print(table(verdicts))
    for verdict in verdicts:
        if not verdict.ok:
            print(f"\n{verdict}")
    picture.parent.mkdir(parents=True, exist_ok=True)
    picture.write_text(timeline.svg(history, verdicts), encoding="utf-8")
    print(f"\nwrote {picture}" + (f" and the history {written}" if written else ""))
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    return 0 if chaos.passed(verdicts) else 1


def table(verdicts: Sequence[Verdict]) -> str:
    """One line per checker: its name, pass or FAIL, what it counted."""
    if not verdicts:
        return "no workload ran: nothing to check"
    rows = [("CHECKER", "RESULT", "CHECKED")] + [(v.checker, "pass" if v.ok else "FAIL", v.summary) for v in verdicts]
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{r[0]:<{width[0]}}  {r[1]:<{width[1]}}  {r[2]}" for r in rows)


def cmd_chaos(args: argparse.Namespace) -> int:
    return {"plan": cmd_plan, "run": cmd_run, "check": cmd_check}[args.chaos_verb](args)
