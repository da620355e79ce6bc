"""The history of a chaos run: an append-only log of JSON lines, what the checkers and the timeline read.

Each line is one entry with a ``kind``:

``run``
    the header: lab, schedule, seed, tag, client host, workloads, and the run's start
    (``mono``: ``time.monotonic()``, one clock for the host and every container on it;
    ``wall``: epoch seconds).
``step``
    one fault: its planned fields (as ``lab chaos plan`` prints them), then ``start``
    (applying began), ``applied`` (applying returned), ``undo`` (undoing began) and
    ``end`` (undoing returned), each monotonic, with ``start_wall`` and ``end_wall``;
    ``result`` is ``ok`` or what failed.
``event``
    one thing a workload's client saw (``workload``, ``event``, ``mono``, ``wall``
    and the event's own fields: sequence numbers, errors).
``workload``
    how a workload ended: its node, exit code, the tail of its error output.
``end``
    what the runner undid and checked when it stopped.

A checker reads only this (``lab.chaos.checkers``), so a history saved by ``lab
chaos run --history`` can be checked and drawn again later.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

Entry = dict[str, Any]
KINDS = ("run", "step", "event", "workload", "end")


class HistoryError(ValueError):
    """A history file that is not one (a line that is not a JSON object with a known kind)."""


@dataclass(frozen=True)
class Window:
    """When a fault was (possibly) in force: from the moment applying began to the moment undoing ended."""

    index: int
    do: str
    nodes: tuple[str, ...]
    start: float
    end: float
    applied: float | None = None  # when it was fully in force (None: it never was)
    undo: float | None = None

    def touches(self, nodes: Iterable[str]) -> bool:
        return bool(set(self.nodes) & set(nodes))

    def near(self, when: float, *, before: float, after: float) -> bool:
        """Whether ``when`` falls in the window widened by ``before`` and ``after`` seconds."""
        return self.start - before <= when <= self.end + after


@dataclass
class History:
    """Every entry of one run, in the order written; ``path``, when set, gets each line as it is added."""

    entries: list[Entry] = field(default_factory=list)
    path: Path | None = None
    _file: TextIO | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, kind: str, **fields: Any) -> Entry:
        """Append an entry (and its line to ``path``, flushed: a run that dies leaves what it saw)."""
        if kind not in KINDS:
            raise ValueError(f"unknown history entry kind {kind!r}: one of {', '.join(KINDS)}")
        entry = {"kind": kind, **fields}
        with self._lock:  # the runner's step threads add entries too
            self.entries.append(entry)
            if self.path is not None:
                if self._file is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._file = self.path.open("w", encoding="utf-8")
                self._file.write(_line(entry))
                self._file.flush()
        return entry

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    # ----------------------------------------------------------------- reading

    @property
    def run(self) -> Entry:
        return next((e for e in self.entries if e["kind"] == "run"), {})

    @property
    def end(self) -> Entry:
        return next((e for e in self.entries if e["kind"] == "end"), {})

    @property
    def steps(self) -> list[Entry]:
        return [e for e in self.entries if e["kind"] == "step"]

    def events(self, workload: str, event: str | None = None) -> list[Entry]:
        """A workload's events (of one kind), in time order."""
        found = [e for e in self.entries if e["kind"] == "event" and e.get("workload") == workload]
        found = [e for e in found if event is None or e.get("event") == event]
        return sorted(found, key=lambda e: _number(e.get("mono")))

    def workload(self, name: str) -> Entry:
        """How workload ``name`` ended (``{}`` if the history does not say)."""
        return next((e for e in self.entries if e["kind"] == "workload" and e.get("name") == name), {})

    @property
    def workloads(self) -> dict[str, str]:
        """The workloads of the run and the node each one talked to."""
        return {str(k): str(v) for k, v in (self.run.get("workloads") or {}).items()}

    @property
    def client(self) -> str:
        return str(self.run.get("client", "client"))

    def windows(self, *, do: Iterable[str] | None = None, touching: Iterable[str] | None = None) -> list[Window]:
        """The faults that were begun (of the kinds ``do``, on any of the nodes ``touching``), in start order."""
        kinds = None if do is None else set(do)
        found = []
        for step in self.steps:
            if step.get("start") is None or (kinds is not None and step.get("do") not in kinds):
                continue
            nodes = tuple(step.get("between") or [step.get("node", "")])
            start = _number(step["start"])
            end = _number(step.get("end"), default=math.inf)  # never undone: in force to the end
            window = Window(int(step.get("index", -1)), str(step.get("do")), nodes, start, end,
                            _optional(step.get("applied")), _optional(step.get("undo")))  # fmt: skip
            if touching is None or window.touches(touching):
                found.append(window)
        return sorted(found, key=lambda w: w.start)

    # ----------------------------------------------------------------- files

    def lines(self) -> str:
        return "".join(_line(e) for e in self.entries)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.lines(), encoding="utf-8")

    @classmethod
    def from_lines(cls, text: str, *, source: str = "history") -> History:
        entries = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as exc:
                raise HistoryError(f"{source}:{number}: not JSON ({exc})") from None
            if not isinstance(entry, dict) or entry.get("kind") not in KINDS:
                raise HistoryError(f"{source}:{number}: not a history entry (a JSON object with kind: run, step, ...)")
            entries.append(entry)
        return cls(entries)

    @classmethod
    def read(cls, path: Path) -> History:
        return cls.from_lines(path.read_text(encoding="utf-8"), source=str(path))


def _line(entry: Entry) -> str:
    return json.dumps(entry, ensure_ascii=True, allow_nan=False) + "\n"


def _number(value: object, *, default: float = math.nan) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _optional(value: object) -> float | None:
    number = _number(value)
    return None if math.isnan(number) else number
