"""Reading an exercise folder: ``exercise.yaml`` (and the topology it names) into ``lab.exercises.model``.

Every mistake is one line, ``file:line: field: what; fix``, all reported at once,
as ``lab validate`` reports a topology's; a topology's own problems come with its
file's name. Nothing here touches Docker.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from yaml.nodes import Node, ScalarNode, SequenceNode

from common import units
from lab import model
from lab.exercises.model import KINDS, Exercise, Expect, Solution, Step
from lab.loader import TopologyError
from lab.loader import load as load_topology
from lab.yamlread import TOP, Problem, Reader, ReadError, suggest

EXERCISES = Path(__file__).resolve().parent.parent.parent / "exercises"  # the course's exercises, one folder each
FILE = "exercise.yaml"
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,38}$")
ROLES = ("client", "server")
STEP_KEYS = ("title", "node", "run", "timeout", "capture", "expect", "why")
SOLUTION_KEYS = ("node", "role", "usage", "contract", "steps")


class ExerciseError(ReadError):
    """An exercise folder that cannot be run; ``problems`` lists every reason, in file order."""


def names(root: Path = EXERCISES) -> list[str]:
    """The exercises under ``root``: every folder with an exercise.yaml, sorted."""
    return sorted(p.parent.name for p in root.glob(f"*/{FILE}"))


def find(name: str, root: Path = EXERCISES) -> Path:
    """The folder of exercise ``name`` (or ``name`` itself if it is a folder with an exercise.yaml)."""
    given = Path(name)
    if (given / FILE).is_file():
        return given
    if NAME.fullmatch(name) and (root / name / FILE).is_file():
        return root / name
    known = names(root)
    raise ExerciseError([_problem(str(root), f"no exercise {name!r}", suggest(name, known, "exercise"))])


def load(folder: Path) -> Exercise:
    """Read one exercise folder; ``ExerciseError`` lists every problem (the topology's included)."""
    path = folder / FILE
    reader = Reader(str(path))
    text = reader.read(path, fix=f"every exercise folder holds an {FILE}")
    root = None if text is None else reader.compose(text, empty="start with summary:, topology: and steps:")
    if root is None:
        raise ExerciseError(reader.problems)
    values = reader.mapping(root, TOP, ("summary", "topology", "steps", "solution"),
                            required=("summary", "topology", "steps"))  # fmt: skip
    if not (folder / "README.md").is_file():
        reader.fail(1, "(folder)", f"{folder.name}/ has no README.md", "write the question and its answer there")
    summary = reader.text(values["summary"], "summary", hint="write one line") if "summary" in values else None
    topology = _topology(reader, folder, values["topology"]) if "topology" in values else None
    steps = _steps(reader, values["steps"], "steps", topology) if "steps" in values else ()
    solution = _solution(reader, values["solution"], topology) if "solution" in values else None
    if reader.problems:
        raise ExerciseError(reader.problems)
    assert summary is not None and topology is not None
    return Exercise(folder.name, folder.resolve(), " ".join(summary.split()), topology, steps, solution)


def _problem(file: str, what: str, fix: str) -> Problem:
    return Problem(file, 1, "(exercise)", what, fix)


def _topology(reader: Reader, folder: Path, node: Node) -> model.Topology | None:
    text = reader.text(node, "topology", hint="write the topology file's name, like lab.yaml")
    if text is None:
        return None
    try:
        return load_topology(folder / text)
    except TopologyError as exc:  # its own file:line problems, then a pointer from this file
        reader.problems.extend(exc.problems)
        reader.fail(node, "topology", f"{text} has {len(exc.problems)} problem(s), listed above", "fix them there")
        return None


def _steps(reader: Reader, node: Node, where: str, topology: model.Topology | None) -> tuple[Step, ...]:
    found = []
    items = reader.sequence(node, where, "steps")
    if not items and isinstance(node, SequenceNode):
        reader.fail(node, where, "no steps", "add at least one step: title:, node:, run:")
    for index, item in enumerate(items, 1):
        step = _step(reader, item, f"{where}[{index}]", topology)
        if step is not None:
            found.append(step)
    return tuple(found)


def _step(reader: Reader, node: Node, where: str, topology: model.Topology | None) -> Step | None:
    values = reader.mapping(node, where, STEP_KEYS, required=("title", "node"))
    title = reader.text(values["title"], f"{where}.title") if "title" in values else None
    host = reader.text(values["node"], f"{where}.node") if "node" in values else None
    if host is not None and topology is not None and topology.member(host) is None:
        valid = [n.name for n in topology.members]
        reader.fail(values["node"], f"{where}.node", f"no node {host!r} in the topology", suggest(host, valid, "node"))
    run: tuple[str, ...] = ()
    if "run" in values:
        run = _command(reader, values["run"], f"{where}.run")
    timeout = 30.0
    if "timeout" in values:
        forms = "a duration like 10s"
        ms = reader.quantity(values["timeout"], f"{where}.timeout", units.parse_duration_ms, forms=forms)
        if ms is not None and ms <= 0:
            reader.fail(values["timeout"], f"{where}.timeout", "a step needs time to run", "write a duration like 10s")
        timeout = (ms or 30_000.0) / 1000
    capture = reader.text(values["capture"], f"{where}.capture") if "capture" in values else None
    if capture is not None and topology is not None and capture not in [n.name for n in topology.networks]:
        valid = [n.name for n in topology.networks]
        fix = suggest(capture, valid, "network")
        reader.fail(values["capture"], f"{where}.capture", f"no network {capture!r}", fix)
    if capture is not None and not run:
        reader.fail(values["capture"], f"{where}.capture", "a capture needs traffic", "add run: the command to capture")
    expect = _expectations(reader, values["expect"], f"{where}.expect") if "expect" in values else ()
    why = (reader.text(values["why"], f"{where}.why") or "") if "why" in values else ""
    if title is None or host is None:
        return None
    return Step(title, host, run, timeout, capture, expect, " ".join(why.split()))


def _command(reader: Reader, node: Node, where: str) -> tuple[str, ...]:
    if isinstance(node, ScalarNode):
        text = reader.text(node, where, hint="write a command like [python3, /code/probe.py]")
        try:
            words = shlex.split(text or "")
        except ValueError as exc:
            reader.fail(node, where, f"cannot split it into words ({exc})", "write it as a list of words")
            return ()
    else:
        words = [w for w in (reader.text(i, where) for i in reader.sequence(node, where, "words")) if w is not None]
    if not words:
        reader.fail(node, where, "an empty command", "write a command like [python3, /code/probe.py]")
    return tuple(words)


def _expectations(reader: Reader, node: Node, where: str) -> tuple[Expect, ...]:
    found = []
    for index, item in enumerate(reader.sequence(node, where, "expectations"), 1):
        at = f"{where}[{index}]"
        values = reader.mapping(item, at, (*KINDS, "claim", "mistake"), required=("claim",))
        kinds = [k for k in KINDS if k in values]
        if len(kinds) != 1:
            what = "no" if not kinds else f"{len(kinds)} ({', '.join(kinds)})"
            reader.fail(item, at, f"{what} observations named", f"write exactly one of {', '.join(KINDS)}")
            continue
        kind = kinds[0]
        value = _value(reader, values[kind], f"{at}.{kind}", kind)
        claim = reader.text(values["claim"], f"{at}.claim") if "claim" in values else None
        mistake = reader.text(values["mistake"], f"{at}.mistake") if "mistake" in values else ""
        if value is not None and claim is not None:
            found.append(Expect(kind, value, " ".join(claim.split()), " ".join((mistake or "").split())))
    return tuple(found)


def _value(reader: Reader, node: Node, where: str, kind: str) -> str | int | float | None:
    if kind in ("output", "absent"):
        text = reader.text(node, where, hint="write a regular expression")
        if text is None:
            return None
        try:
            re.compile(text)
        except re.error as exc:
            reader.fail(node, where, f"not a regular expression: {exc}", "escape it, or quote it in single quotes")
            return None
        return text
    if kind == "exit":
        text = reader.text(node, where, hint="write an exit status from 0 to 255")
        if text is None or not text.isdigit() or int(text) > 255:
            if text is not None:
                reader.fail(node, where, f"{text!r} is not an exit status", "write a whole number from 0 to 255")
            return None
        return int(text)
    ms = reader.quantity(node, where, units.parse_duration_ms, forms="a duration like 5s")
    return None if ms is None else ms / 1000


def _solution(reader: Reader, node: Node, topology: model.Topology | None) -> Solution | None:
    values = reader.mapping(node, "solution", SOLUTION_KEYS, required=SOLUTION_KEYS)
    texts = {k: reader.text(values[k], f"solution.{k}") for k in ("node", "role", "usage", "contract") if k in values}
    role = texts.get("role")
    if role is not None and role not in ROLES:
        reader.fail(values["role"], "solution.role", f"unknown role {role!r}", suggest(role, ROLES, "role"))
    host = texts.get("node")
    reference: Path | None = None
    if host is not None and topology is not None:
        member = topology.member(host)
        code = member.program.code if member is not None and member.program is not None else None
        if code is None or code.is_dir():
            reader.fail(values["node"], "solution.node", f"{host!r} is not a node with code: FILE in the topology",
                        "name the node whose code: is the reference program (one file)")  # fmt: skip
        reference = code
    steps = _steps(reader, values["steps"], "solution.steps", topology) if "steps" in values else ()
    if any(v is None for v in texts.values()) or len(texts) < 4 or reference is None or not steps:
        return None
    return Solution(texts["node"] or "", texts["role"] or "", texts["usage"] or "",
                    " ".join((texts["contract"] or "").split()), reference, steps)  # fmt: skip
