"""What a correct server owes its clients through a fault schedule: one pure function of the history per workload.

Each checker reads only the history (``lab.chaos.history``) and returns a ``Verdict``:
whether it passed, what it counted, each violation in a sentence, and marks in time
for the timeline. No sockets, no Docker: a test hands it a history with a planted
violation and sees it fail.

A fault *excuses* a loss when its window touches the loss's path and lies near it:
from ``BEFORE`` seconds before the window opened (a message in flight when the sink
was killed) to ``AFTER`` seconds after it closed (a client reconnects with backoff of
at most 1 s, a started server takes about a second to listen, a connect to a host
behind a partition waits 2 s). Everything else a client saw is owed:

- **chat**: for each sender, every member sees its messages in order, never twice,
  and every message sent after the member first joined, unless a fault touching the
  room or the clients' host excuses the gap.
- **creosote**: every datagram sent is a record, unless a window that can drop it was
  near then: loss, a rate limit or a disconnection of the clients' host (an
  impairment acts on what a node sends, and the sink sends nothing); a kill, restart,
  pause or disconnection of the sink; a partition between the two. Delay and jitter excuse nothing. No record twice,
  none never sent, and every record in the file just before a kill or restart is
  there afterwards.
- **echo**: every exchange comes back byte-exact, or ends in a reported connection
  error with what did come back a true prefix of what was sent.
- **threaded**: every reply is ``[time] REQUEST UPPER-CASED`` for its own request.

And for all: the workload said ``ready``, did not crash, and exited 0.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from clients.workloads.echo import payload
from clients.workloads.threaded import request
from lab.chaos.history import History, Window
from protocols.upper import parse_answer

BEFORE = 2.0
AFTER = 5.0
SENDER_DROPS = ("loss", "rate", "disconnect")  # on the clients' host: what it sends
SINK_DROPS = ("kill", "restart", "pause", "disconnect")  # on the sink: what it is sent
SHOWN = 10  # violations spelled out per checker; the rest are counted


@dataclass(frozen=True)
class Verdict:
    """One checker's answer: ``ok``, what it counted, each violation, and (time, outcome) marks for the timeline."""

    checker: str
    ok: bool
    summary: str
    violations: tuple[str, ...] = ()
    marks: tuple[tuple[float, str], ...] = field(default=(), repr=False)  # outcome: ok, error, excused, violation

    def __str__(self) -> str:
        head = f"{self.checker}: {'pass' if self.ok else 'FAIL'}: {self.summary}"
        shown = [f"  - {v}" for v in self.violations[:SHOWN]]
        more = [f"  ... and {len(self.violations) - SHOWN} more"] if len(self.violations) > SHOWN else []
        return "\n".join([head, *shown, *more])


class _Findings:
    """Violations and marks as a checker finds them."""

    def __init__(self, history: History, name: str) -> None:
        self.history, self.name = history, name
        self.t0 = float(history.run.get("mono", 0.0))
        self.violations: list[str] = []
        self.marks: list[tuple[float, str]] = []

    def at(self, mono: object) -> str:
        """A time as seconds into the run: ``12.3 s``."""
        return f"{_float(mono) - self.t0:.1f} s" if isinstance(mono, (int, float)) else "at an unknown time"

    def violation(self, when: object, text: str) -> None:
        self.violations.append(text)
        if isinstance(when, (int, float)):
            self.marks.append((float(when), "violation"))

    def mark(self, when: object, outcome: str) -> None:
        if isinstance(when, (int, float)):
            self.marks.append((float(when), outcome))

    def verdict(self, summary: str) -> Verdict:
        return Verdict(self.name, not self.violations, summary, tuple(self.violations), tuple(sorted(self.marks)))


def _float(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ran(found: _Findings) -> None:
    """The workload said ready, did not crash, exited 0 and printed only events."""
    history, name = found.history, found.name
    ended = history.workload(name)
    if not ended:
        found.violation(None, f"the history does not say how workload {name} ended (was it collected?)")
    elif ended.get("exit") != 0:
        found.violation(None, f"workload {name} exited {ended.get('exit')}: {str(ended.get('stderr', ''))[-300:]}")
    if ended.get("unreadable"):
        found.violation(None, f"workload {name} printed {ended['unreadable']} lines that are not events")
    if not history.events(name, "ready"):
        found.violation(None, f"workload {name} never said ready")
    for crash in history.events(name, "crashed"):
        found.violation(crash.get("mono"), f"workload {name} crashed: {crash.get('what')}")


def _judge_losses(found: _Findings, windows: list[Window], missing: Iterable[tuple[float, str]], *,
                  before: float, after: float) -> tuple[int, int]:  # fmt: skip
    """Each missing item excused by a fault window near its time, or a violation saying why: (lost, excused)."""
    lost = excused = 0
    for when, why in missing:
        lost += 1
        if _excused(windows, when, before=before, after=after):
            excused += 1
            found.mark(when, "excused")
        else:
            found.violation(when, why)
    return lost, excused


def _excused(windows: Iterable[Window], when: float, *, before: float, after: float) -> bool:
    return any(w.near(when, before=before, after=after) for w in windows)


# --------------------------------------------------------------------------- chat


def check_chat(history: History, *, before: float = BEFORE, after: float = AFTER) -> Verdict:
    """Per sender, each member sees its messages in order, never twice, and any gap inside a fault window."""
    found = _Findings(history, "chat")
    _ran(found)
    room = history.workloads.get("chat", "chat")
    windows = history.windows(touching={room, history.client})
    sent: dict[str, dict[int, float]] = defaultdict(dict)
    for event in history.events("chat", "send"):
        seq = _int(event.get("seq"))
        if seq is None or seq in sent[str(event.get("member"))]:
            found.violation(event.get("mono"), f"member {event.get('member')} sent number {event.get('seq')} twice")
        else:
            sent[str(event.get("member"))][seq] = _float(event.get("mono"))
    joined: dict[str, float] = {}
    for event in history.events("chat", "join"):
        joined.setdefault(str(event.get("member")), _float(event.get("mono")))
    for event in history.events("chat", "error"):
        found.mark(event.get("mono"), "error")
    seen: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for event in history.events("chat", "recv"):
        seen[(str(event.get("member")), str(event.get("sender")))].append((_int(event.get("seq")) or -1,
                                                                           _float(event.get("mono"))))  # fmt: skip
        found.mark(event.get("mono"), "ok")
    missing: list[tuple[float, str]] = []
    for member, first in sorted(joined.items()):
        for sender in sorted(set(sent) - {member}):
            got = seen.get((member, sender), [])
            _order(found, member, sender, got, sent[sender])
            received = {seq for seq, _ in got}
            missing += [
                (
                    when,
                    f"{member} never saw {sender}'s message {seq} (sent at {found.at(when)}), "
                    f"and no fault touched {room} or {history.client} near then",
                )
                for seq, when in sorted(sent[sender].items())
                if when >= first and seq not in received
            ]
    lost, excused = _judge_losses(found, windows, missing, before=before, after=after)
    deliveries = sum(len(v) for v in seen.values())
    messages = sum(len(v) for v in sent.values())
    return found.verdict(f"{len(joined)} members, {messages} messages, {deliveries} deliveries; {lost} missed "
                         f"({excused} in fault windows)")  # fmt: skip


def _order(found: _Findings, member: str, sender: str, got: list[tuple[int, float]], sent: dict[int, float]) -> None:
    last = 0
    seen: set[int] = set()
    for seq, when in got:
        if seq not in sent:
            found.violation(when, f"{member} saw {sender}'s message {seq}, which {sender} never sent")
        elif seq in seen:
            found.violation(when, f"{member} saw {sender}'s message {seq} twice (again at {found.at(when)})")
        elif seq < last:
            found.violation(when, f"{member} saw {sender}'s message {seq} after {last}: out of order")
        seen.add(seq)
        last = max(last, seq)


# --------------------------------------------------------------------------- creosote


def check_creosote(history: History, *, before: float = BEFORE, after: float = AFTER) -> Verdict:
    """Every lost datagram in a window that can drop it; no record twice; what was flushed before a kill stays."""
    found = _Findings(history, "creosote")
    _ran(found)
    sink = history.workloads.get("creosote", "creosote")
    windows = [w for w in history.windows() if _drops(w, sink, history.client)]
    sent = {seq: _float(e.get("mono")) for e in history.events("creosote", "send")
            if (seq := _int(e.get("seq"))) is not None}  # fmt: skip
    for event in history.events("creosote", "error"):
        found.mark(event.get("mono"), "error")
    reads = history.events("creosote", "stored")
    if not reads:
        found.violation(None, f"the records in {sink}'s file were never read after the run")
        return found.verdict(f"{len(sent)} datagrams sent; the file was not read")
    stored = Counter(s for s in reads[-1].get("seqs") or [] if isinstance(s, int))
    for seq, times in sorted(stored.items()):
        if times > 1:
            found.violation(sent.get(seq), f"datagram {seq} is in the file {times} times")
        if seq not in sent:
            found.violation(None, f"record {seq} is in the file, yet it was never sent")
    missing: list[tuple[float, str]] = []
    for seq, when in sorted(sent.items()):
        if seq in stored:
            found.mark(when, "ok")
        else:
            missing.append(
                (
                    when,
                    f"datagram {seq} (sent at {found.at(when)}) is not in the file, and nothing "
                    f"that drops datagrams touched {sink} or {history.client} near then",
                )
            )
    lost, excused = _judge_losses(found, windows, missing, before=before, after=after)
    kept = 0
    for snapshot in history.events("creosote", "flushed"):
        before_kill = {s for s in snapshot.get("seqs") or [] if isinstance(s, int)}
        gone = sorted(before_kill - set(stored))
        kept += len(before_kill) - len(gone)
        if gone:
            found.violation(snapshot.get("mono"), f"{len(gone)} records in the file before {sink} went down at "
                            f"{found.at(snapshot.get('mono'))} are gone after it (first: {gone[0]})")  # fmt: skip
    return found.verdict(f"{len(sent)} datagrams, {sum(stored.values())} records; {lost} lost ({excused} in "
                         f"fault windows); {len(history.events('creosote', 'flushed'))} snapshots before going down, "
                         f"{kept} records in them kept")  # fmt: skip


def _drops(window: Window, sink: str, client: str) -> bool:
    """Whether a fault can drop a datagram from the clients' host to the sink."""
    if window.do == "partition":
        return set(window.nodes) == {sink, client}
    return (window.do in SENDER_DROPS and client in window.nodes) or (window.do in SINK_DROPS and sink in window.nodes)


# --------------------------------------------------------------------------- echo and threaded


def check_echo(history: History) -> Verdict:
    """Each exchange is byte-exact or ends in a reported error, what came back being a true prefix."""
    found = _Findings(history, "echo")
    _ran(found)
    tag = str(history.run.get("tag", ""))
    exact = errors = 0
    for event in history.events("echo", "exchange"):
        seq, got, when = _int(event.get("seq")), _int(event.get("got")), event.get("began", event.get("mono"))
        if seq is None or got is None:
            found.violation(when, f"an exchange without a number or a length: {event}")
            continue
        expected = payload(tag, seq)
        error = event.get("error")
        if got > len(expected) or hashlib.sha256(expected[:got]).hexdigest() != event.get("sha256"):
            found.violation(when, f"exchange {seq}: the {got} bytes that came back are not the {len(expected)} sent "
                            f"(or their start): corrupted")  # fmt: skip
        elif error is None and got != len(expected):
            found.violation(when, f"exchange {seq}: {got} of {len(expected)} bytes came back and no error was "
                            "reported: silently cut short")  # fmt: skip
        elif error is None:
            exact += 1
            found.mark(when, "ok")
        else:
            errors += 1
            found.mark(when, "error")
    return found.verdict(f"{exact + errors + len(found.violations)} exchanges: {exact} byte-exact, {errors} ended "
                         f"in a reported error")  # fmt: skip


def check_threaded(history: History) -> Verdict:
    """Every reply is its own request, upper-cased, behind a time stamp; no request goes unanswered silently."""
    found = _Findings(history, "threaded")
    _ran(found)
    tag = str(history.run.get("tag", ""))
    matched = errors = 0
    for event in history.events("threaded", "exchange"):
        seq, sent, reply = _int(event.get("seq")), event.get("sent"), event.get("reply")
        when = event.get("began", event.get("mono"))  # on the timeline, an exchange is where it began
        if seq is None or sent != request(tag, seq):
            found.violation(when, f"line {seq}: the history's request {sent!r} is not line {seq} of the run")
        elif reply is None:
            if event.get("error") is None:
                found.violation(when, f"line {seq}: no reply and no error")
            else:
                errors += 1
                found.mark(when, "error")
        elif _upper(str(reply)) != sent.upper():
            found.violation(when, f"line {seq}: asked {sent!r}, the reply was {reply!r}")
        else:
            matched += 1
            found.mark(when, "ok")
    for event in history.events("threaded", "error"):
        errors += 1
        found.mark(event.get("mono"), "error")
    return found.verdict(f"{matched} replies matched their requests; {errors} connection errors")


def _upper(reply: str) -> str | None:
    try:
        return parse_answer(reply)[1]
    except ValueError:
        return None


CHECKERS: dict[str, Callable[[History], Verdict]] = {
    "chat": check_chat,
    "creosote": check_creosote,
    "echo": check_echo,
    "threaded": check_threaded,
}


def check(history: History) -> list[Verdict]:
    """Every checker of the run's workloads, in the workloads' order."""
    return [CHECKERS[name](history) for name in history.workloads if name in CHECKERS]


def passed(verdicts: Iterable[Verdict]) -> bool:
    return all(v.ok for v in verdicts)


__all__ = ["AFTER", "BEFORE", "CHECKERS", "Verdict", "check", "check_chat", "check_creosote", "check_echo",
           "check_threaded", "passed"]  # fmt: skip
