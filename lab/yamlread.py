"""Reading a YAML file by hand, so every value keeps its line and every mistake is reported in one pass.

The file is composed into a YAML node tree (``yaml.compose``), not loaded into
plain dicts: a node knows the line it came from. A ``Reader`` walks that tree
for one file and collects a ``Problem`` for each mistake instead of raising at
the first, each printed as one line::

    topology/bad.yaml:12: nodes.web.service: unknown service 'daytme'; write 'daytime' instead (...)

A file format built on it (``lab.loader`` for topologies) reads in this order::

    reader = Reader(str(path))
    text = reader.read(path, fix="give the path of a ... file")
    root = None if text is None else reader.compose(text, empty="start with name: ...")
    values = reader.mapping(root, TOP, ("name", "steps"), required=("name",))
    ...
    if reader.problems:
        raise ScheduleError(reader.problems)  # a subclass of ReadError

The reader never raises for a bad file; the format decides when the problems
found so far are enough to stop.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from common import units
from common.errors import TestbedError

# A 5 MB topology took 44 s and 686 MB to read; the largest real one is a few KiB.
MAX_FILE_BYTES = 1 << 20

__all__ = ["TOP", "Problem", "ReadError", "Reader", "describe", "is_null", "key_line", "line_of", "suggest"]

TOP = "(top)"  # the field of the document itself, and of its top-level keys' parent
_NULL = "tag:yaml.org,2002:null"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file, where it is, and what to write instead."""

    file: str
    line: int
    field: str
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.what}; {self.fix}"


class ReadError(TestbedError):
    """A file that cannot become its model; ``problems`` lists every reason, in file order.

    Each format subclasses it (``lab.loader.TopologyError``), so a caller can
    catch one format's errors without the others'.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: p.line))
        super().__init__("\n".join(str(p) for p in self.problems))


def line_of(node: Node) -> int:
    """The 1-based line a node starts on."""
    return int(node.start_mark.line) + 1


def is_null(node: Node) -> bool:
    """True for a value left empty (``key:``), ``~`` or ``null``."""
    return isinstance(node, ScalarNode) and node.tag == _NULL


def describe(node: Node) -> str:
    """What a node is, for "expected X, found Y" messages: ``a mapping``, ``a list``, ``nothing`` or its value."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if is_null(node):
        return "nothing"
    return f"{node.value!r}"


def suggest(value: str, valid: Sequence[str], noun: str) -> str:
    """The fix for a value not in ``valid``: the closest valid one when there is one, and the whole list."""
    close = difflib.get_close_matches(value, valid, n=1, cutoff=0.6)
    listing = ", ".join(sorted(valid))
    if close:
        return f"write '{close[0]}' instead (valid {noun}s: {listing})"
    return f"write one of: {listing}"


class Reader:
    """Walks one file's YAML node tree, collecting problems instead of stopping at the first.

    Every method that reads a value reports what is wrong with it and returns
    ``None`` (or an empty container), so a caller carries on with the rest.
    ``where`` is the dotted field a problem is reported under, like
    ``nodes.web.impair.delay``.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def fail(self, at: Node | int, where: str, what: str, fix: str) -> None:
        """Report a problem at a node's line, or at a line number."""
        line = at if isinstance(at, int) else line_of(at)
        self.problems.append(Problem(self.file, line, where, what, fix))

    def read(self, path: Path, *, fix: str) -> str | None:
        """The file's text; ``None``, reported at line 1, when it is missing, unreadable or too large (``fix``)."""
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                self.fail(1, "(file)", f"larger than {MAX_FILE_BYTES // 1024} KiB", "a lab file is a few KiB: " + fix)
                return None
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.fail(1, "(file)", f"cannot read it ({reason})", fix)
            return None

    def compose(self, text: str, *, empty: str) -> Node | None:
        """The document's root node; ``None``, reported, for a syntax error or an empty file (``empty`` is its fix)."""
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 1
            self.fail(line, "(yaml)", f"not valid YAML: {exc.problem}", "fix the syntax at that line")
            return None
        except ReaderError as exc:  # a control character: not a MarkedYAMLError, no mark to read
            line = text.count("\n", 0, exc.position) + 1
            what = f"not valid YAML: character #x{exc.character:04x} ({exc.reason})"
            self.fail(line, "(yaml)", what, "remove it, or write it as an escape in a double-quoted string")
            return None
        except RecursionError:  # PyYAML composes nested lists and mappings recursively, one frame per level
            self.fail(1, "(yaml)", "lists and mappings nested too deeply to read", "nest them less deeply")
            return None
        if root is None:
            self.fail(1, TOP, "the file is empty", empty)
        return root

    def mapping(self, node: Node, where: str, keys: Sequence[str], *, required: Sequence[str] = ()) -> dict[str, Node]:
        """A mapping's values by key; unknown and duplicate keys reported with the closest valid key."""
        if not isinstance(node, MappingNode):
            self.fail(
                node,
                where,
                f"expected a mapping of {', '.join(keys)}, found {describe(node)}",
                "write key: value lines",
            )
            return {}
        values: dict[str, Node] = {}
        misspelt: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = key if where == TOP else f"{where}.{key}"
            if key in values:
                self.fail(
                    key_node, path, "duplicate key", f"keep one '{key}' (the first is at line {line_of(values[key])})"
                )
            elif key not in keys:
                self.fail(key_node, path, "unknown key", suggest(key, keys, "key"))
                misspelt.update(difflib.get_close_matches(key, keys, n=1, cutoff=0.6))
            else:
                values[key] = value_node
        for key in required:
            if key not in values and key not in misspelt:  # a misspelt key is reported once, as unknown
                self.fail(node, where, f"'{key}' is missing", f"add {key}: ...")
        return values

    def sequence(self, node: Node, where: str, what: str) -> list[Node]:
        """A list's items; anything else is reported (``what`` names one item, like ``ports``)."""
        if isinstance(node, SequenceNode):
            return list(node.value)
        self.fail(
            node, where, f"expected a list of {what}, found {describe(node)}", f"write one '- ...' line per {what}"
        )
        return []

    def text(self, node: Node, where: str, *, pattern: re.Pattern[str] | None = None, hint: str = "") -> str | None:
        """A scalar as the user wrote it (so ``10013:13`` is not read as a YAML 1.1 base-60 number).

        With ``pattern``, a value it does not match is reported with ``hint``.
        """
        if not isinstance(node, ScalarNode) or is_null(node):
            self.fail(node, where, f"expected a single value, found {describe(node)}", hint or "write a plain value")
            return None
        value = str(node.value)
        # fullmatch: with match, "$" also matches before a final newline, and "web\n" would pass as a name.
        if pattern is not None and not pattern.fullmatch(value):
            self.fail(node, where, f"{value!r} is not allowed here", hint)
            return None
        return value

    def quantity(self, node: Node, where: str, parse: Callable[[str], float], *, forms: str) -> float | None:
        """A number with its unit, read by one of ``common.units``' parsers, so a file and a command line agree.

        A refusal is the grammar's own: ``UnitError``'s message, then its fix.
        ``forms`` (like ``units.DURATION_FORMS``) is the hint when the value is
        not a single scalar at all.
        """
        text = self.text(node, where, hint=f"write {forms}")
        if text is None:
            return None
        try:
            value = parse(text)
        except units.UnitError as exc:
            self.fail(node, where, str(exc), exc.fix)
            return None
        if not math.isfinite(value):  # hundreds of digits overflow a float; no model takes infinity
            self.fail(node, where, f"{text!r} is too large", f"write {forms}")
            return None
        return value


def key_line(source: str | Path, key: str) -> int:
    """The line of a top-level key in a YAML file (1 when it cannot tell), for errors raised after loading."""
    try:
        root = yaml.compose(Path(source).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return 1
    if isinstance(root, MappingNode):
        for key_node, _ in root.value:
            if key_node.value == key:
                return line_of(key_node)
    return 1
