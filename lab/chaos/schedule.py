"""A fault schedule: YAML → a validated ``Schedule`` (frozen dataclasses), every mistake reported as ``file:line``.

A schedule says what to break, when and for how long, on a lab that is already up::

    duration: 40s
    steps:                                  # fixed steps
      - {at: 2s, for: 4s, do: delay, node: echo, delay: 100ms}
      - {at: 8s, for: 4s, do: partition, between: [chat, client]}
    random:                                 # optional: expanded from a seed (lab.chaos.plan)
      every: 5s
      for: [1s, 3s]
      do: [delay, loss, kill, pause, partition]
      nodes: [chat, creosote, echo, threaded]

Every step is undone when its ``for`` ends: an impairment cleared, a partition healed,
a killed or stopped node started again, a paused one thawed, a disconnected one
reconnected. ``client`` (the default name; the top-level ``client:`` changes it) is the
host the workloads run on, so ``between: [chat, client]`` cuts the clients off the room.
The file reads like a topology (``lab.yamlread``), in ``common.units``' grammar.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from yaml.nodes import Node, SequenceNode

from common import units
from lab import model
from lab.shapes import HOSTNAME, NETWORK_NAME
from lab.yamlread import TOP, Reader, ReadError, describe, line_of, suggest

IMPAIRMENTS = ("delay", "jitter", "loss", "rate")
LIFE = ("kill", "restart", "pause")  # act on a node's processes, so never on the workloads' own host
ACTIONS = (*IMPAIRMENTS, "partition", *LIFE, "disconnect")
# The values each action takes; the first ones listed are required.
VALUES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "delay": (("delay",), ("jitter",)),
    "jitter": (("delay", "jitter"), ()),
    "loss": (("loss",), ()),
    "rate": (("rate",), ()),
}
UNITS = {
    "delay": (units.parse_duration_ms, units.DURATION_FORMS),
    "jitter": (units.parse_duration_ms, units.DURATION_FORMS),
    "loss": (units.parse_percent, units.PERCENT_FORMS),
    "rate": (units.parse_rate_kbit, units.RATE_FORMS),
}
# What a random step draws its values from when the file does not say (delay and jitter in ms,
# loss in %, rate in kbit/s): enough to be seen by a client, not so much that TCP gives up.
RANDOM_DEFAULTS: dict[str, tuple[float, float]] = {
    "delay": (50.0, 200.0),
    "jitter": (5.0, 30.0),
    "loss": (5.0, 30.0),
    "rate": (256.0, 2000.0),
}
DEFAULT_CLIENT = "client"
MAX_DURATION_MS = 3_600_000  # an hour; a schedule is a test, not a soak
TOP_KEYS = ("duration", "description", "client", "steps", "random")
STEP_KEYS = ("at", "for", "do", "node", "between", "network", *IMPAIRMENTS)
RANDOM_KEYS = ("every", "for", "do", "nodes", *IMPAIRMENTS)
NAME_HINT = "write a node's name (its hostname), like echo"


class ScheduleError(ReadError):
    """A schedule file that cannot become a ``Schedule``; ``problems`` lists every reason, in file order."""


@dataclass(frozen=True)
class Step:
    """One fault: ``do`` on ``nodes`` (one node, or a partition's two sides) from ``at_ms`` for ``for_ms``.

    ``origin`` is ``steps[i]`` for a fixed step and ``random`` for a drawn one; ``line`` is where in
    the file it comes from (the ``random:`` key for a drawn one).
    """

    at_ms: int
    for_ms: int
    do: str
    nodes: tuple[str, ...]
    network: str | None = None
    impairment: model.Impairment | None = None
    origin: str = ""
    line: int = 0

    @property
    def end_ms(self) -> int:
        return self.at_ms + self.for_ms

    def conflicts(self, other: Step) -> bool:
        """Whether the two may not be in force together: they overlap in time and act on a common node.

        Two partitions of different pairs may overlap (each has its own filter chain); anything else
        on one node would undo the other (a kill drops an impairment, a second delay replaces the first).
        """
        if not set(self.nodes) & set(other.nodes):
            return False
        if self.do == other.do == "partition" and set(self.nodes) != set(other.nodes):
            return False
        return self.at_ms < other.at_ms + max(other.for_ms, 1) and other.at_ms < self.at_ms + max(self.for_ms, 1)


@dataclass(frozen=True)
class RandomSpec:
    """How to draw random steps: a fault every ``every_ms`` on average, each ``for_ms`` long (a range)."""

    every_ms: int
    for_ms: tuple[int, int]
    do: tuple[str, ...]
    nodes: tuple[str, ...]
    ranges: tuple[tuple[str, float, float], ...]  # (value, low, high) for delay, jitter, loss, rate
    line: int = 0

    def range_of(self, value: str) -> tuple[float, float]:
        found = [(low, high) for name, low, high in self.ranges if name == value]
        return found[0] if found else RANDOM_DEFAULTS[value]


@dataclass(frozen=True)
class Schedule:
    """A whole schedule file."""

    duration_ms: int
    steps: tuple[Step, ...]
    random: RandomSpec | None = None
    client: str = DEFAULT_CLIENT
    description: str = ""
    source: str = ""


# --------------------------------------------------------------------------- reading


def _millis(reader: Reader, node: Node, where: str) -> int | None:
    value = reader.quantity(node, where, units.parse_duration_ms, forms=units.DURATION_FORMS)
    if value is not None and value > MAX_DURATION_MS:
        reader.fail(node, where, f"{node.value} is longer than an hour", "write at most 3600s")
        return None
    return None if value is None else round(value)


def _name(reader: Reader, node: Node, where: str) -> str | None:
    return reader.text(node, where, pattern=HOSTNAME, hint=NAME_HINT)


def _choice(reader: Reader, node: Node, where: str, valid: tuple[str, ...], noun: str) -> str | None:
    text = reader.text(node, where, hint=f"write one of: {', '.join(valid)}")
    if text is not None and text not in valid:
        reader.fail(node, where, f"unknown {noun} {text!r}", suggest(text, valid, noun))
        return None
    return text


def _impairment(reader: Reader, values: dict[str, Node], where: str, do: str, mapping: Node) -> model.Impairment | None:
    """The values ``do`` takes, read and checked together by ``model.Impairment``; the others refused."""
    required, optional = VALUES[do]
    before = len(reader.problems)
    read: dict[str, float] = {}
    for key in IMPAIRMENTS:
        if key not in values:
            if key in required:
                reader.fail(mapping, where, f"do: {do} needs {key}:", f"add {key}: like {_example(key)}")
        elif key not in required + optional:
            takes = ", ".join(f"{k}:" for k in required + optional)
            reader.fail(values[key], f"{where}.{key}", f"do: {do} takes {takes} only", f"write a step of do: {key}")
        else:
            parse, forms = UNITS[key]
            value = reader.quantity(values[key], f"{where}.{key}", parse, forms=forms)
            if value is not None:
                read[key] = value
    if len(reader.problems) > before:
        return None
    try:
        impairment = model.Impairment(delay_ms=read.get("delay", 0.0), jitter_ms=read.get("jitter", 0.0),
                                      loss_pct=read.get("loss", 0.0), rate_kbit=read.get("rate"))  # fmt: skip
    except ValueError as exc:  # the model's own bounds (at most 10 s of delay, at least 8 kbit/s)
        field, _, problem = str(exc).partition(": ")
        what, _, fix = problem.partition(" (")
        reader.fail(values.get(field, mapping), f"{where}.{field}", what, fix.rstrip(")") or "see docs/chaos.md")
        return None
    if impairment.empty:
        reader.fail(mapping, where, "every value is 0: nothing to break", "give a value above 0")
        return None
    return impairment


def _example(key: str) -> str:
    return {"delay": "100ms", "jitter": "20ms", "loss": "10%", "rate": "1mbit"}[key]


def _read_step(reader: Reader, node: Node, index: int, duration_ms: int | None, client: str) -> Step | None:
    where = f"steps[{index}]"
    values = reader.mapping(node, where, STEP_KEYS, required=("at", "for", "do"))
    if not values:
        return None
    before = len(reader.problems)
    at = _millis(reader, values["at"], f"{where}.at") if "at" in values else None
    length = _millis(reader, values["for"], f"{where}.for") if "for" in values else None
    do = _choice(reader, values["do"], f"{where}.do", ACTIONS, "action") if "do" in values else None
    if do is None:
        return None
    nodes = _targets(reader, values, node, where, do)
    network = None
    if "network" in values:
        if do in IMPAIRMENTS or do == "disconnect":
            network = reader.text(values["network"], f"{where}.network", pattern=NETWORK_NAME,
                                  hint="write a network's name from the topology, like lab")  # fmt: skip
        else:
            reader.fail(values["network"], f"{where}.network", f"do: {do} acts on the whole node",
                        "remove network:, or use it with an impairment or disconnect")  # fmt: skip
    impairment = _impairment(reader, values, where, do, node) if do in IMPAIRMENTS else None
    if do not in IMPAIRMENTS:
        for key in IMPAIRMENTS:
            if key in values:
                reader.fail(values[key], f"{where}.{key}", f"do: {do} takes no {key}:", f"write a step of do: {key}")
    if do in LIFE and client in nodes:
        reader.fail(node, f"{where}.node", f"{client} is the host the workloads run on; do: {do} would stop them",
                    "break a server, or partition, delay or disconnect the clients' host")  # fmt: skip
    if at is not None and length is not None:
        _check_times(reader, values, where, do, at, length, duration_ms)
    if len(reader.problems) > before or at is None or length is None or not nodes:
        return None
    return Step(at, length, do, nodes, network, impairment, origin=where, line=line_of(node))


def _targets(reader: Reader, values: dict[str, Node], node: Node, where: str, do: str) -> tuple[str, ...]:
    """``node:`` for every action but a partition, which takes ``between: [A, B]``."""
    wanted, other = ("between", "node") if do == "partition" else ("node", "between")
    if other in values:
        fix = "write between: [A, B] for a partition" if do == "partition" else "write node: NAME"
        reader.fail(values[other], f"{where}.{other}", f"do: {do} takes {wanted}:, not {other}:", fix)
        return ()
    if wanted not in values:
        fix = "add between: [A, B], like between: [chat, client]" if do == "partition" else "add node: NAME"
        reader.fail(node, where, f"do: {do} needs {wanted}:", fix)
        return ()
    if do != "partition":
        name = _name(reader, values["node"], f"{where}.node")
        return () if name is None else (name,)
    between = values["between"]
    names = [_name(reader, item, f"{where}.between") for item in reader.sequence(between, f"{where}.between", "node")]
    if not isinstance(between, SequenceNode) or None in names:
        return ()  # reported already
    if len(names) != 2 or names[0] == names[1]:
        found = ", ".join(map(str, names))
        reader.fail(between, f"{where}.between", f"a partition has two different sides, found [{found}]",
                    "write between: [A, B], like between: [chat, client]")  # fmt: skip
        return ()
    return (str(names[0]), str(names[1]))


def _check_times(reader: Reader, values: dict[str, Node], where: str, do: str, at: int, length: int,
                 duration_ms: int | None) -> None:  # fmt: skip
    if length == 0 and do not in ("kill", "restart"):
        reader.fail(values["for"], f"{where}.for", f"for: 0 undoes do: {do} at once",
                    "give a duration like 2s (0 is for kill and restart: start again at once)")  # fmt: skip
    if duration_ms is None:
        return
    if at >= duration_ms:
        reader.fail(values["at"], f"{where}.at", f"{_seconds(at)} is not before the end ({_seconds(duration_ms)})",
                    f"write an at: below {_seconds(duration_ms)}, or a longer duration:")  # fmt: skip
    elif at + length > duration_ms:
        reader.fail(values["for"], f"{where}.for", f"the step ends at {_seconds(at + length)}, after the schedule "
                    f"({_seconds(duration_ms)})", f"write for: {_seconds(duration_ms - at)} or less")  # fmt: skip


def _seconds(ms: int) -> str:
    return f"{units.plain_number(ms / 1000)}s"


def _key_line(root: Node, key: str) -> int:
    """The line of a top-level key (a drawn step points there)."""
    return next((line_of(k) for k, _ in root.value if k.value == key), line_of(root))


def _read_random(reader: Reader, node: Node, client: str, line: int) -> RandomSpec | None:
    values = reader.mapping(node, "random", RANDOM_KEYS, required=("every", "for", "do", "nodes"))
    before = len(reader.problems)
    every = _millis(reader, values["every"], "random.every") if "every" in values else None
    if every == 0:
        reader.fail(values["every"], "random.every", "every: 0 would never stop", "write a mean gap like 5s")
    spans = _range(reader, values["for"], "random.for", "duration") if "for" in values else None
    length = None if spans is None else (round(spans[0]), round(spans[1]))
    if length is not None and length[0] == 0:
        reader.fail(values["for"], "random.for", "a random step of 0 s changes nothing", "write for: [1s, 3s]")
    actions = [_choice(reader, item, "random.do", ACTIONS, "action") for item in _items(reader, values, "do")]
    names = [_name(reader, item, "random.nodes") for item in _items(reader, values, "nodes")]
    if client in names:
        reader.fail(values["nodes"], "random.nodes", f"{client} is the host the workloads run on",
                    f"list servers only: random partitions already cut a server off {client}")  # fmt: skip
    ranges = []
    for key in IMPAIRMENTS:
        if key in values:
            found = _range(reader, values[key], f"random.{key}", key)
            if found is not None:
                ranges.append((key, *found))
    if len(reader.problems) > before or every is None or length is None or None in actions or None in names:
        return None
    return RandomSpec(every, length, tuple(str(a) for a in actions), tuple(str(n) for n in names),
                      tuple(ranges), line=line)  # fmt: skip


def _items(reader: Reader, values: dict[str, Node], key: str) -> list[Node]:
    if key not in values:
        return []
    items = reader.sequence(values[key], f"random.{key}", "names" if key == "nodes" else "actions")
    if not items and isinstance(values[key], SequenceNode):
        reader.fail(values[key], f"random.{key}", "the list is empty", f"name at least one, like [{_first(key)}]")
    return items


def _first(key: str) -> str:
    return "echo" if key == "nodes" else "delay"


def _range(reader: Reader, node: Node, where: str, key: str) -> tuple[float, float] | None:
    """A value, or ``[low, high]``, in the key's units (a duration for ``for``)."""
    parse, forms = UNITS.get(key, UNITS["delay"])
    items = node.value if isinstance(node, SequenceNode) else [node]
    if len(items) not in (1, 2):
        reader.fail(node, where, f"expected a value or [low, high], found {describe(node)}", f"write [{forms}, ...]")
        return None
    read = [reader.quantity(item, where, parse, forms=forms) for item in items]
    if None in read:
        return None
    low, high = float(read[0] or 0), float(read[-1] or 0)
    if low > high:
        reader.fail(node, where, "the low end is above the high end", "write [low, high]")
        return None
    if key == "rate" and low == 0:
        reader.fail(node, where, "a rate of 0 stops everything", f"write {units.RATE_FORMS}")
        return None
    return low, high


def load_text(text: str, *, source: str | Path) -> Schedule:
    """Parse and check a schedule; ``ScheduleError`` listing every problem."""
    reader = Reader(str(source))
    root = reader.compose(text, empty="start with duration: and steps: or random:")
    if root is None:
        raise ScheduleError(reader.problems)
    values = reader.mapping(root, TOP, TOP_KEYS, required=("duration",))
    duration = _millis(reader, values["duration"], "duration") if "duration" in values else None
    if duration == 0:
        reader.fail(values["duration"], "duration", "a schedule of 0 s runs nothing", "write a duration like 40s")
        duration = None
    client = DEFAULT_CLIENT
    if "client" in values:
        client = _name(reader, values["client"], "client") or DEFAULT_CLIENT
    description = (reader.text(values["description"], "description") or "") if "description" in values else ""
    steps = []
    if "steps" in values:
        for index, item in enumerate(reader.sequence(values["steps"], "steps", "steps")):
            step = _read_step(reader, item, index, duration, client)
            if step is not None:
                steps.append(step)
    spec = _read_random(reader, values["random"], client, _key_line(root, "random")) if "random" in values else None
    if not steps and "steps" not in values and "random" not in values and not reader.problems:
        reader.fail(root, TOP, "nothing to do", "add steps: (fixed faults) or random: (drawn from a seed)")
    _check_overlaps(reader, steps)
    if reader.problems or duration is None:
        raise ScheduleError(reader.problems)
    return Schedule(duration, tuple(steps), spec, client, description, str(source))


def _check_overlaps(reader: Reader, steps: list[Step]) -> None:
    for later_index, later in enumerate(steps):
        for earlier in steps[:later_index]:
            if later.conflicts(earlier):
                common = ", ".join(sorted(set(later.nodes) & set(earlier.nodes)))
                reader.fail(later.line, later.origin, f"overlaps {earlier.origin} (line {earlier.line}) on {common}",
                            f"start it at {_seconds(earlier.end_ms)} or later, or act on another node")  # fmt: skip


def load(path: str | Path) -> Schedule:
    """Read a schedule file; a missing or unreadable one is a ``ScheduleError`` too, at line 1."""
    reader = Reader(str(path))
    text = reader.read(Path(path), fix="give the path of a schedule YAML file, like examples/chaos/default.yaml")
    if text is None:
        raise ScheduleError(reader.problems)
    return load_text(text, source=path)
