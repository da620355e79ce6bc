"""The exercise format without a lab: loading (each mistake one file:line line), judging, transcripts."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.capture import Packet
from lab.cli import main
from lab.exercises import checks, loader, packets, runner
from lab.exercises.model import Expect, Step

TOPOLOGY = """\
name: ex-tiny
networks: [lan]
nodes:
  - name: client
    code: .
    command: [sleep, infinity]
  - name: solution
    code: ref.py
    command: [python3, /code/ref.py, "9000"]
"""
GOOD = """\
summary: a tiny exercise
topology: lab.yaml
steps:
  - title: say hello
    node: client
    run: [python3, -c, "print('hello')"]
    timeout: 5s
    expect:
      - output: hel+o
        claim: it says hello
solution:
  node: solution
  role: server
  usage: python3 FILE PORT
  contract: answers
  steps:
    - title: ask it
      node: client
      run: [python3, /code/ask.py, solution, "9000"]
      expect:
        - exit: 0
          claim: it answers
          mistake: it did not answer
"""


def folder(tmp_path: Path, exercise: str, *, readme: bool = True) -> Path:
    where = tmp_path / "tiny"
    where.mkdir()
    (where / "lab.yaml").write_text(TOPOLOGY)
    (where / "ref.py").write_text("print('ref')\n")
    (where / "exercise.yaml").write_text(exercise)
    if readme:
        (where / "README.md").write_text("# tiny\n")
    return where


def problems(tmp_path: Path, exercise: str, **kwargs: bool) -> str:
    with pytest.raises(loader.ExerciseError) as caught:
        loader.load(folder(tmp_path, exercise, **kwargs))
    return str(caught.value)


def test_a_good_exercise_loads(tmp_path: Path) -> None:
    exercise = loader.load(folder(tmp_path, GOOD))
    assert exercise.summary == "a tiny exercise"
    assert exercise.steps[0].timeout == 5.0
    assert exercise.steps[0].expect[0] == Expect("output", "hel+o", "it says hello")
    assert exercise.solution is not None and exercise.solution.reference.name == "ref.py"
    assert exercise.solution.steps[0].expect[0].value == 0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("node: client\n    run", "node: clinet\n    run"),
            "exercise.yaml:5: steps[1].node: no node 'clinet' in the topology; write 'client' instead",
        ),
        (("output: hel+o", "output: hel(o"), "steps[1].expect[1].output: not a regular expression"),
        (("timeout: 5s", "timeout: 5 parsecs"), "steps[1].timeout:"),
        (("role: server", "role: sever"), "solution.role: unknown role 'sever'; write 'server' instead"),
        (("node: solution\n  role", "node: client\n  role"), "solution.node: 'client' is not a node with code: FILE"),
        (
            ("      - output: hel+o\n", "      - output: hel+o\n        exit: 0\n"),
            "2 (output, exit) observations named",
        ),
        (("topology: lab.yaml", "topology: nope.yaml"), "nope.yaml:1: (file): cannot read it"),
        (("summary: a tiny exercise\n", "sumary: a tiny exercise\n"), "sumary: unknown key; write 'summary' instead"),
    ],
)
def test_each_mistake_is_one_line_naming_file_field_and_fix(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    assert change[0] in GOOD
    assert expected in problems(tmp_path, GOOD.replace(*change))


def test_a_folder_without_readme_is_refused(tmp_path: Path) -> None:
    assert "(folder): tiny/ has no README.md; write the question" in problems(tmp_path, GOOD, readme=False)


def test_an_unknown_exercise_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exercise", "show", "udp-no-servr"]) == 2
    err = capsys.readouterr().err
    assert "no exercise 'udp-no-servr'" in err and "write 'udp-no-server' instead" in err
    assert "Traceback" not in err


def test_list_names_every_exercise_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exercise", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == loader.names()
    assert {"udp-no-server", "two-clients", "partial-reads"} <= set(loader.names())


def test_check_without_the_solution_file_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["exercise", "check", "two-clients", "--solution", str(tmp_path / "missing.py")]) == 2
    assert "no file" in capsys.readouterr().err


def test_every_shipped_exercise_loads() -> None:
    for name in loader.names():
        exercise = loader.load(loader.find(name))
        assert exercise.steps and all(step.expect or not step.run for step in exercise.steps), name


OBSERVED = checks.Observed("python3 x.py", 0, "ConnectionRefusedError after 0.001 s\n", 0.4)
STOPPED = checks.Observed("python3 x.py", 124, "waiting\n", 7.0, stopped=True)


@pytest.mark.parametrize(
    ("expect", "observed", "passed"),
    [
        (Expect("output", r"Refused\w+ after 0\.\d+", "told"), OBSERVED, True),
        (Expect("output", "timeout", "told"), OBSERVED, False),
        (Expect("absent", "timeout", "quiet"), OBSERVED, True),
        (Expect("absent", "Refused", "quiet"), OBSERVED, False),
        (Expect("exit", 0, "ok"), OBSERVED, True),
        (Expect("exit", 0, "ok"), STOPPED, False),
        (Expect("within", 5.0, "ends"), OBSERVED, True),
        (Expect("within", 10.0, "ends"), STOPPED, False),  # stopped by its timeout: it did not end by itself
        (Expect("after", 3.0, "waits"), STOPPED, True),
        (Expect("after", 3.0, "waits"), OBSERVED, False),
    ],
)
def test_judge(expect: Expect, observed: checks.Observed, passed: bool) -> None:
    assert checks.judge(expect, observed).passed is passed


def test_a_transcript_shows_output_verdicts_the_mistake_and_why() -> None:
    step = Step("ask", "client", ("python3", "x.py"), expect=(Expect("within", 5.0, "it ends", "it waits forever"),),
                why="Because the error goes to connected sockets only.")  # fmt: skip
    verdicts = checks.judge_step(step, STOPPED)
    text = checks.transcript(1, 2, step, STOPPED, verdicts)
    assert "--- step 1/2: ask (on client)" in text
    assert "  | waiting" in text
    assert "FAIL it ends: did not end by itself: stopped after 7.0 s (limit 5 s)" in text
    assert "likely mistake: it waits forever" in text
    assert "why:\n    Because the error goes" in text
    assert checks.tally(verdicts) == "0 of 1 checks passed; failed: it ends"


def test_a_long_output_is_cut_in_the_middle() -> None:
    many = checks.Observed("x", 0, "".join(f"line {i}\n" for i in range(100)), 0.1)
    text = checks.transcript(1, 1, Step("s", "n", ("x",)), many, [])
    assert "line 0" in text and "line 99" in text and "60 lines not shown" in text and "line 50" not in text


def test_a_conversation_names_hosts_and_flags() -> None:
    names = {"10.0.0.2": "client", "10.0.0.3": "echo"}
    found = packets.conversation(
        [Packet(6, "10.0.0.2", "10.0.0.3", 40000, 7, 0x02), Packet(6, "10.0.0.3", "10.0.0.2", 7, 40000, 0x12),
         Packet(6, "10.0.0.2", "10.0.0.3", 40000, 7, 0x18, 6), Packet(17, "1.1.1.1", "8.8.8.8", 1, 53)],
        names,
    )  # fmt: skip
    assert found == ["client:40000 -> echo:7 tcp SYN", "echo:7 -> client:40000 tcp SYN,ACK",
                     "client:40000 -> echo:7 tcp ACK,PSH 6 bytes"]  # fmt: skip


def test_a_solution_replaces_the_reference_in_its_node(tmp_path: Path) -> None:
    exercise = loader.load(folder(tmp_path, GOOD))
    mine = tmp_path / "mine.py"
    mine.write_text("print('mine')\n")
    swapped = runner.with_program(exercise.topology, "solution", mine)
    node = swapped.member("solution")
    assert node is not None and node.program is not None
    assert node.program.code == mine
    assert node.command == ("python3", "/code/mine.py", "9000")
    assert swapped.member("client") == exercise.topology.member("client")
    with pytest.raises(ValueError, match="nobody is not a code: node of ex-tiny"):
        runner.with_program(exercise.topology, "nobody", mine)


def test_the_staged_solution_has_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A relative bind source is read from the Compose file's folder: the program became an empty folder there.
    mine = tmp_path / "mine.py"
    mine.write_text("print('hi')\n")
    monkeypatch.chdir(tmp_path)
    copy = runner.staged(mine, Path(".lab") / "ex-x")
    assert copy.is_absolute()
    assert copy == tmp_path / ".lab" / "ex-x" / "solution" / "mine.py"
    assert copy.read_text() == "print('hi')\n"
