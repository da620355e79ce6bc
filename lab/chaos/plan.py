"""A schedule's steps for one seed: the fixed steps and the random ones drawn with ``random.Random(seed)``.

Pure: the same schedule and seed give the same steps, and ``lines`` gives the same
bytes, on any machine (``random.Random`` with an int seed is stable across Python
versions for ``random()``, which every draw here goes through). Random steps are drawn
like Jepsen's ``stagger``: the gap before each is uniform in ``[0, 2 * every)``, so
``every`` is the mean. Times are whole milliseconds and values are rounded (1 ms,
0.1 %, 1 kbit/s), so what is printed is exactly what runs. A drawn step that would
conflict with one already placed (the same node at the same time,
``Step.conflicts``) is left out, never moved: moving it would shift every later draw.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence

from common import units
from lab import model
from lab.chaos.schedule import IMPAIRMENTS, LIFE, RandomSpec, Schedule, Step


def expand(schedule: Schedule, seed: int) -> tuple[Step, ...]:
    """Every step of ``schedule`` for ``seed``, in the order they start."""
    placed = list(schedule.steps)
    if schedule.random is not None:
        placed += _draw(schedule.random, schedule, random.Random(seed), placed)
    return tuple(sorted(placed, key=lambda s: (s.at_ms, s.origin != "random", s.origin, s.nodes)))


def _draw(spec: RandomSpec, schedule: Schedule, rng: random.Random, fixed: Sequence[Step]) -> list[Step]:
    drawn: list[Step] = []
    at = 0.0
    while True:
        # Every draw happens whether or not the step is kept, so one refusal never shifts the rest.
        at += rng.random() * 2 * spec.every_ms
        length = round(spec.for_ms[0] + rng.random() * (spec.for_ms[1] - spec.for_ms[0]))
        do = spec.do[int(rng.random() * len(spec.do))]
        node = spec.nodes[int(rng.random() * len(spec.nodes))]
        impairment = _impairment(spec, do, rng)
        start = round(at)
        if start >= schedule.duration_ms:
            return drawn
        length = min(length, schedule.duration_ms - start)
        if length < spec.for_ms[0] and do not in LIFE:
            continue  # too little time left for the shortest step asked for
        nodes = (node, schedule.client) if do == "partition" else (node,)
        step = Step(start, length, do, nodes, None, impairment, origin="random", line=spec.line)
        if not any(step.conflicts(other) for other in [*fixed, *drawn]):
            drawn.append(step)


def _impairment(spec: RandomSpec, do: str, rng: random.Random) -> model.Impairment | None:
    """The drawn values of an impairment (always four draws, so every step costs the same draws)."""
    draws = {key: _between(spec.range_of(key), rng) for key in IMPAIRMENTS}
    if do not in IMPAIRMENTS:
        return None
    delay = round(draws["delay"]) if do in ("delay", "jitter") else 0
    jitter = min(round(draws["jitter"]), delay) if do == "jitter" else 0
    loss = round(draws["loss"], 1) if do == "loss" else 0.0
    rate = float(round(draws["rate"])) if do == "rate" else None
    return model.Impairment(delay_ms=delay, jitter_ms=jitter, loss_pct=loss, rate_kbit=rate)


def _between(bounds: tuple[float, float], rng: random.Random) -> float:
    low, high = bounds
    return low + rng.random() * (high - low)


# --------------------------------------------------------------------------- printing


def step_fields(step: Step, index: int) -> dict[str, object]:
    """A step as the plan and the history write it, keys in a fixed order."""
    fields: dict[str, object] = {"index": index, "at_ms": step.at_ms, "for_ms": step.for_ms, "do": step.do}
    if step.do == "partition":
        fields["between"] = list(step.nodes)
    else:
        fields["node"] = step.nodes[0]
    if step.network is not None:
        fields["network"] = step.network
    fields.update(impairment_fields(step.impairment))
    fields["origin"] = step.origin
    fields["line"] = step.line
    return fields


def impairment_fields(impairment: model.Impairment | None) -> dict[str, str]:
    """``{"delay": "100ms", "loss": "5%"}``: the values set, in the units a schedule is written in."""
    if impairment is None:
        return {}
    found = {
        "delay": f"{units.plain_number(impairment.delay_ms)}ms" if impairment.delay_ms else None,
        "jitter": f"{units.plain_number(impairment.jitter_ms)}ms" if impairment.jitter_ms else None,
        "loss": f"{units.plain_number(impairment.loss_pct)}%" if impairment.loss_pct else None,
        "rate": f"{units.plain_number(impairment.rate_kbit)}kbit" if impairment.rate_kbit is not None else None,
    }
    return {key: value for key, value in found.items() if value is not None}


def lines(steps: Sequence[Step]) -> str:
    """The plan as JSON lines, one step each: the bytes ``lab chaos plan`` prints."""
    return "".join(json.dumps(step_fields(step, i), ensure_ascii=True) + "\n" for i, step in enumerate(steps))
