"""The checkers, fed histories by hand: a clean one passes, and each planted violation fails.

A checker that cannot fail is a defect, so every rule a checker states has a test here
where a history breaks it, and the checker is seen to say so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence, Set
from pathlib import Path
from typing import Any

import pytest

from clients.workloads.echo import payload
from clients.workloads.threaded import request
from lab.chaos.checkers import check, check_chat, check_creosote, check_echo, check_threaded, passed
from lab.chaos.history import History, HistoryError

T0 = 1000.0
TAG = "cafe0123"


def history(workloads: dict[str, str], *, steps: Sequence[dict[str, Any]] = (),
            events: Sequence[dict[str, Any]] = (), ended: dict[str, int] | None = None) -> History:  # fmt: skip
    """A run's history: the header, steps (times in seconds from the start), events, how each workload ended."""
    made = History()
    made.add("run", lab="t", seed=1, tag=TAG, client="client", workloads=workloads, duration_ms=20_000, mono=T0)
    for index, step in enumerate(steps):
        fields = {k: v for k, v in step.items() if k not in ("start", "end")}
        start, end = T0 + step["start"], T0 + step["end"]
        made.add("step", index=index, start=start, applied=start + 0.1, undo=end - 0.1, end=end, result="ok", **fields)
    for name in workloads:
        made.add("event", workload=name, event="ready", mono=T0)
    for event in events:
        made.add("event", **{**event, "mono": T0 + event["mono"]})
    for name in workloads:
        made.add("workload", name=name, node=workloads[name], exit=(ended or {}).get(name, 0), stderr="")
    return made


def failing(verdict: Any, *words: str) -> None:
    assert not verdict.ok, verdict
    text = "\n".join(verdict.violations)
    for word in words:
        assert word in text, text


# --------------------------------------------------------------------------- chat


def chat_events(*, skip: Set[tuple[str, str, int]] = frozenset(),
                extra: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:  # fmt: skip
    """Two members m1, m2 join at 0.5 s; each sends 1..10, one every second; the other reads each 0.01 s later."""
    events: list[dict[str, Any]] = [
        {"workload": "chat", "event": "join", "member": m, "mono": 0.5} for m in ("m1", "m2")
    ]
    for seq in range(1, 11):
        for sender, reader in (("m1", "m2"), ("m2", "m1")):
            events.append({"workload": "chat", "event": "send", "member": sender, "seq": seq, "mono": float(seq)})
            if (reader, sender, seq) not in skip:
                events.append({"workload": "chat", "event": "recv", "member": reader, "sender": sender, "seq": seq,
                               "mono": seq + 0.01})  # fmt: skip
    return events + list(extra)


def test_chat_passes_when_everyone_sees_everything_in_order() -> None:
    verdict = check_chat(history({"chat": "chat"}, events=chat_events()))
    assert verdict.ok, verdict
    assert "2 members, 20 messages, 20 deliveries; 0 missed" in verdict.summary


def test_chat_fails_a_gap_with_no_fault_near() -> None:
    verdict = check_chat(history({"chat": "chat"}, events=chat_events(skip={("m2", "m1", 5)})))
    failing(verdict, "m2 never saw m1's message 5")


def test_chat_excuses_a_gap_inside_a_fault_on_the_room_or_the_clients_only() -> None:
    events = chat_events(skip={("m2", "m1", 5)})
    on_room = [{"do": "kill", "node": "chat", "start": 4.0, "end": 6.0}]
    on_clients = [{"do": "partition", "between": ["chat", "client"], "start": 4.5, "end": 5.5}]
    elsewhere = [{"do": "kill", "node": "echo", "start": 4.0, "end": 6.0}]
    long_before = [{"do": "kill", "node": "chat", "start": 0.5, "end": 1.0}]  # ends 4 s before; AFTER is 5 s
    assert check_chat(history({"chat": "chat"}, steps=on_room, events=events)).ok
    assert check_chat(history({"chat": "chat"}, steps=on_clients, events=list(events))).ok
    failing(check_chat(history({"chat": "chat"}, steps=elsewhere, events=list(events))), "message 5")
    assert check_chat(history({"chat": "chat"}, steps=long_before, events=list(events))).ok
    too_early = [{"do": "kill", "node": "chat", "start": 7.5, "end": 8.0}]  # starts 2.5 s after; BEFORE is 2 s
    failing(check_chat(history({"chat": "chat"}, steps=too_early, events=list(events))), "message 5")


def test_chat_fails_a_message_seen_twice() -> None:
    again = {"workload": "chat", "event": "recv", "member": "m2", "sender": "m1", "seq": 3, "mono": 3.5}
    failing(check_chat(history({"chat": "chat"}, events=chat_events(extra=[again]))), "m1's message 3 twice")


def test_chat_fails_messages_out_of_order() -> None:
    events = chat_events(skip={("m2", "m1", 4)})
    events.append({"workload": "chat", "event": "recv", "member": "m2", "sender": "m1", "seq": 4, "mono": 5.5})
    failing(check_chat(history({"chat": "chat"}, events=events)), "message 4 after 5: out of order")


def test_chat_fails_a_message_nobody_sent() -> None:
    forged = {"workload": "chat", "event": "recv", "member": "m2", "sender": "m1", "seq": 99, "mono": 10.5}
    failing(check_chat(history({"chat": "chat"}, events=chat_events(extra=[forged]))), "99, which m1 never sent")


def test_chat_does_not_owe_a_member_what_was_said_before_it_joined() -> None:
    events = [e for e in chat_events(skip={("m2", "m1", 1), ("m2", "m1", 2)}) if e["event"] != "join"]
    events += [{"workload": "chat", "event": "join", "member": "m1", "mono": 0.5},
               {"workload": "chat", "event": "join", "member": "m2", "mono": 2.5}]  # fmt: skip
    assert check_chat(history({"chat": "chat"}, events=events)).ok


def test_chat_fails_when_the_workload_crashed_or_never_got_ready() -> None:
    failing(check_chat(history({"chat": "chat"}, events=chat_events(), ended={"chat": 1})), "exited 1")
    quiet = history({"chat": "chat"}, events=chat_events())
    quiet.entries = [e for e in quiet.entries if e.get("event") != "ready"]
    failing(check_chat(quiet), "never said ready")


# --------------------------------------------------------------------------- creosote


def creosote(stored: list[int], *, steps: Sequence[dict[str, Any]] = (), flushed: list[int] | None = None,
             sent: int = 20) -> History:  # fmt: skip
    """Datagrams 1..sent, one every 0.5 s; the file holds ``stored``."""
    events: list[dict[str, Any]] = [{"workload": "creosote", "event": "send", "seq": s, "mono": s * 0.5}
                                    for s in range(1, sent + 1)]  # fmt: skip
    if flushed is not None:
        events.append({"workload": "creosote", "event": "flushed", "seqs": flushed, "mono": 6.0})
    events.append({"workload": "creosote", "event": "stored", "seqs": stored, "mono": 15.0})
    return history({"creosote": "creosote"}, steps=list(steps), events=events)


def test_creosote_passes_when_every_datagram_is_a_record() -> None:
    verdict = check_creosote(creosote(list(range(1, 21))))
    assert verdict.ok, verdict
    assert "20 datagrams, 20 records; 0 lost" in verdict.summary


def test_creosote_fails_a_lost_datagram_with_nothing_near() -> None:
    failing(check_creosote(creosote([s for s in range(1, 21) if s != 9])), "datagram 9 (sent at 4.5 s)")


@pytest.mark.parametrize(
    ("step", "excused"),
    [
        ({"do": "kill", "node": "creosote"}, True),
        ({"do": "pause", "node": "creosote"}, True),
        ({"do": "partition", "between": ["creosote", "client"]}, True),
        ({"do": "loss", "node": "client", "loss": "20%"}, True),
        ({"do": "disconnect", "node": "client"}, True),
        ({"do": "loss", "node": "creosote", "loss": "20%"}, False),  # the sink's egress: it sends nothing
        ({"do": "delay", "node": "client", "delay": "100ms"}, False),  # delays, never drops
        ({"do": "partition", "between": ["creosote", "echo"]}, False),  # not the datagrams' path
        ({"do": "kill", "node": "echo"}, False),
    ],
)  # fmt: skip
def test_creosote_excuses_a_loss_only_in_a_window_that_can_drop_it(step: dict[str, Any], excused: bool) -> None:
    verdict = check_creosote(creosote([s for s in range(1, 21) if s != 9], steps=[{**step, "start": 4.0, "end": 5.0}]))
    assert verdict.ok is excused, verdict


def test_creosote_fails_a_record_twice_and_a_record_never_sent() -> None:
    failing(check_creosote(creosote([*range(1, 21), 7])), "datagram 7 is in the file 2 times")
    failing(check_creosote(creosote([*range(1, 21), 50])), "record 50 is in the file, yet it was never sent")


def test_creosote_fails_when_a_record_flushed_before_a_kill_is_gone_after_it() -> None:
    kill = [{"do": "kill", "node": "creosote", "start": 6.1, "end": 8.0}]
    kept = [s for s in range(1, 21) if s not in (3,)]
    failing(check_creosote(creosote(kept, steps=kill, flushed=list(range(1, 12)))), "1 records in the file before")
    assert check_creosote(creosote(list(range(1, 21)), steps=kill, flushed=list(range(1, 12)))).ok


def test_creosote_fails_when_the_file_was_never_read() -> None:
    made = creosote(list(range(1, 21)))
    made.entries = [e for e in made.entries if e.get("event") != "stored"]
    failing(check_creosote(made), "were never read")


# --------------------------------------------------------------------------- echo


def exchange(seq: int, *, got: bytes | None = None, error: str | None = None) -> dict[str, Any]:
    data = payload(TAG, seq) if got is None else got
    digest = hashlib.sha256(data).hexdigest()
    return {"workload": "echo", "event": "exchange", "seq": seq, "size": len(payload(TAG, seq)), "got": len(data),
            "sha256": digest, "error": error, "began": T0 + seq, "mono": seq + 0.1}  # fmt: skip


def test_echo_passes_exact_exchanges_and_reported_errors() -> None:
    cut = payload(TAG, 3)[:10]
    events = [exchange(1), exchange(2), exchange(3, got=cut, error="timeout")]
    verdict = check_echo(history({"echo": "echo"}, events=events))
    assert verdict.ok, verdict
    assert "3 exchanges: 2 byte-exact, 1 ended in a reported error" in verdict.summary


def test_echo_fails_corrupted_bytes_even_with_an_error() -> None:
    bad = bytearray(payload(TAG, 2))
    bad[0] ^= 0xFF
    failing(check_echo(history({"echo": "echo"}, events=[exchange(1), exchange(2, got=bytes(bad))])), "exchange 2")
    failing(check_echo(history({"echo": "echo"}, events=[exchange(2, got=bytes(bad[:5]), error="reset")])),
            "corrupted")  # fmt: skip


def test_echo_fails_a_silently_short_answer() -> None:
    short = payload(TAG, 4)[:-1]
    failing(check_echo(history({"echo": "echo"}, events=[exchange(4, got=short)])), "silently cut short")


def test_echo_fails_more_bytes_than_were_sent() -> None:
    failing(check_echo(history({"echo": "echo"}, events=[exchange(5, got=payload(TAG, 5) + b"x")])), "exchange 5")


# --------------------------------------------------------------------------- threaded


def line(seq: int, *, reply: str | None = "", error: str | None = None) -> dict[str, Any]:
    sent = request(TAG, seq)
    answer = f"[Wed Dec  2 18:00:00 2026] {sent.upper()}" if reply == "" else reply
    return {"workload": "threaded", "event": "exchange", "seq": seq, "sent": sent, "reply": answer, "error": error,
            "began": T0 + seq, "mono": seq + 0.1}  # fmt: skip


def test_threaded_passes_matching_replies_and_reported_errors() -> None:
    events = [line(1), line(2), line(3, reply=None, error="timeout")]
    verdict = check_threaded(history({"threaded": "threaded"}, events=events))
    assert verdict.ok, verdict
    assert "2 replies matched their requests; 1 connection errors" in verdict.summary


def test_threaded_fails_a_reply_to_another_request() -> None:
    swapped = line(2, reply=f"[Wed Dec  2 18:00:00 2026] {request(TAG, 1).upper()}")
    failing(check_threaded(history({"threaded": "threaded"}, events=[line(1), swapped])), "line 2: asked")


def test_threaded_fails_a_reply_without_its_stamp_or_case() -> None:
    failing(check_threaded(history({"threaded": "threaded"}, events=[line(1, reply=request(TAG, 1).upper())])),
            "line 1")  # fmt: skip
    lower = line(2, reply=f"[Wed Dec  2 18:00:00 2026] {request(TAG, 2)}")
    failing(check_threaded(history({"threaded": "threaded"}, events=[lower])), "line 2")


def test_threaded_fails_a_missing_reply_without_an_error() -> None:
    failing(check_threaded(history({"threaded": "threaded"}, events=[line(1, reply=None)])), "no reply and no error")


def test_threaded_fails_a_request_that_is_not_the_runs() -> None:
    made = line(1)
    made["sent"] = "chaos other 1 word"
    failing(check_threaded(history({"threaded": "threaded"}, events=[made])), "is not line 1 of the run")


# --------------------------------------------------------------------------- all of them, and the file


def test_check_runs_the_checker_of_every_workload_of_the_run() -> None:
    made = history({"echo": "echo", "threaded": "threaded"}, events=[exchange(1), line(1)])
    verdicts = check(made)
    assert [v.checker for v in verdicts] == ["echo", "threaded"]
    assert passed(verdicts)
    broken = history({"echo": "echo", "threaded": "threaded"}, events=[exchange(1), line(1, reply=None)])
    assert not passed(check(broken))


def test_a_history_reads_back_as_it_was_written(tmp_path: Path) -> None:
    made = history({"chat": "chat"}, steps=[{"do": "kill", "node": "chat", "start": 4.0, "end": 6.0}],
                   events=chat_events(skip={("m2", "m1", 5)}))  # fmt: skip
    path = tmp_path / "h.jsonl"
    made.write(path)
    again = History.read(path)
    assert again.entries == made.entries
    assert check_chat(again) == check_chat(made)
    assert [w.nodes for w in again.windows()] == [("chat",)]


def test_a_line_that_is_not_an_entry_is_refused_with_its_number() -> None:
    with pytest.raises(HistoryError, match=r"h:2: not JSON"):
        History.from_lines('{"kind": "run"}\nnot json\n', source="h")
    with pytest.raises(HistoryError, match=r"h:1: not a history entry"):
        History.from_lines('{"kind": "nonsense"}\n', source="h")


# --------------------------------------------------------------------------- the command line, on a saved history


def test_lab_chaos_check_reads_a_history_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It checks and draws a saved history, and says by its exit status whether every checker passed."""
    from lab.cli import main

    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    history({"chat": "chat"}, events=chat_events()).write(good)
    history({"chat": "chat"}, events=chat_events(skip={("m2", "m1", 5)})).write(bad)
    assert main(["chaos", "check", str(good)]) == 0
    assert (tmp_path / "good.svg").read_text().startswith("<svg")
    assert main(["chaos", "check", str(bad), "--timeline", str(tmp_path / "bad-picture.svg")]) == 1
    out = capsys.readouterr().out
    assert "chat     FAIL" in out and "m2 never saw m1's message 5" in out
    assert (tmp_path / "bad-picture.svg").exists()
    (tmp_path / "junk.jsonl").write_text("not json\n")
    assert main(["chaos", "check", str(tmp_path / "junk.jsonl")]) == 2
    assert "junk.jsonl:1: not JSON" in capsys.readouterr().err
