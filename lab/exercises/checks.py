"""Judging what a step printed against its expectations, and writing the transcript a learner reads.

Pure functions of an ``Observed`` (exit status, output, seconds, whether it was
stopped): unit-tested with planted outputs, no lab needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.exercises.model import Expect, Step

WIDTH = 100  # the transcript's lines are cut here, so a flood of output stays readable
SHOWN_LINES = 40  # a step's output beyond this many lines is cut in the middle


@dataclass(frozen=True)
class Observed:
    """What one step did: its command, exit status, output and wall time; ``stopped`` if its timeout ended it."""

    command: str
    code: int
    output: str
    seconds: float
    stopped: bool = False


@dataclass(frozen=True)
class Verdict:
    """One expectation judged: passed or not, and what was seen."""

    expect: Expect
    passed: bool
    seen: str


def judge(expect: Expect, observed: Observed) -> Verdict:
    """Whether ``observed`` shows what ``expect`` claims, and what was seen, in words."""
    ran = _how_it_ended(observed)
    if expect.kind in ("output", "absent"):
        found = re.search(str(expect.value), observed.output, re.MULTILINE)
        seen = f"found {found.group(0)!r}" if found else f"no match for {expect.value!r}"
        return Verdict(expect, bool(found) == (expect.kind == "output"), seen)
    if expect.kind == "exit":
        return Verdict(expect, not observed.stopped and observed.code == expect.value, ran)
    limit = float(expect.value)
    if expect.kind == "within":
        return Verdict(expect, not observed.stopped and observed.seconds <= limit, f"{ran} (limit {limit:g} s)")
    if expect.kind == "after":
        return Verdict(expect, observed.seconds >= limit, f"{ran} (at least {limit:g} s expected)")
    raise ValueError(f"unknown expectation kind {expect.kind!r}")


def judge_step(step: Step, observed: Observed) -> list[Verdict]:
    return [judge(expect, observed) for expect in step.expect]


def _how_it_ended(observed: Observed) -> str:
    if observed.stopped:
        return f"did not end by itself: stopped after {observed.seconds:.1f} s"
    return f"exited {observed.code} after {observed.seconds:.1f} s"


def transcript(index: int, total: int, step: Step, observed: Observed, verdicts: list[Verdict]) -> str:
    """A step as the learner reads it: the command, its output, how it ended, each check, and why."""
    lines = [f"--- step {index}/{total}: {step.title} (on {step.node})", f"$ {observed.command}"]
    lines += [f"  | {line}"[:WIDTH] for line in _cut(observed.output.rstrip("\n").splitlines())]
    lines.append(f"  ({_how_it_ended(observed)})")
    for verdict in verdicts:
        mark = "ok  " if verdict.passed else "FAIL"
        lines.append(f"  {mark} {verdict.expect.claim}: {verdict.seen}")
        if not verdict.passed and verdict.expect.mistake:
            lines.append(f"       likely mistake: {verdict.expect.mistake}")
    if step.why:
        lines += ["  why:", *_wrap(step.why, "    ")]
    return "\n".join(lines)


def _cut(lines: list[str]) -> list[str]:
    if len(lines) <= SHOWN_LINES:
        return lines
    half = SHOWN_LINES // 2
    return [*lines[:half], f"... {len(lines) - SHOWN_LINES} lines not shown ...", *lines[-half:]]


def _wrap(text: str, indent: str) -> list[str]:
    lines: list[str] = []
    current = indent
    for word in text.split():
        if len(current) + len(word) + 1 > WIDTH and current.strip():
            lines.append(current.rstrip())
            current = indent
        current += word + " "
    if current.strip():
        lines.append(current.rstrip())
    return lines


def tally(verdicts: list[Verdict]) -> str:
    """``3 of 4 checks passed`` and, when some failed, which."""
    passed = sum(v.passed for v in verdicts)
    failed = [v.expect.claim for v in verdicts if not v.passed]
    head = f"{passed} of {len(verdicts)} checks passed"
    return head if not failed else head + "; failed: " + "; ".join(failed)
