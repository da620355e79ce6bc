"""Fault schedules: seeded, replayable, with a history and checkers of what the clients saw.

- ``schedule``: the YAML file → a validated ``Schedule``, every mistake as ``file:line``;
- ``plan``: the steps for one seed (pure; the same seed gives the same bytes);
- ``runner``: applies each step at its time on a running lab and undoes it at its end;
- ``workloads``: the clients' host and the workload containers (``clients.workloads``);
- ``history``: the run's append-only log, JSON lines;
- ``checkers``: what a correct server owes its clients, one pure function per workload;
- ``timeline``: the run as an SVG picture.

``lab chaos plan|run|check`` and ``RunningLab.faults`` (the pytest face) are thin
layers over these.
"""

from lab.chaos.checkers import CHECKERS, Verdict, check, check_chat, check_creosote, check_echo, check_threaded, passed
from lab.chaos.history import History, HistoryError, Window
from lab.chaos.plan import expand, lines
from lab.chaos.runner import ChaosError, Runner
from lab.chaos.schedule import Schedule, ScheduleError, Step, load, load_text
from lab.chaos.workloads import Workload

__all__ = [
    "CHECKERS",
    "ChaosError",
    "History",
    "HistoryError",
    "Runner",
    "Schedule",
    "ScheduleError",
    "Step",
    "Verdict",
    "Window",
    "Workload",
    "check",
    "check_chat",
    "check_creosote",
    "check_echo",
    "check_threaded",
    "expand",
    "lines",
    "load",
    "load_text",
    "passed",
]
