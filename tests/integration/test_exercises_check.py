"""``lab exercise check``: a right solution passes and the classic wrong one fails, naming its mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration import exercise_labs

EXERCISES = exercise_labs.EXERCISES

WRONG = [
    ("udp-no-server", "mistakes/no_timeout.py", "an unconnected socket never hears the ICMP error"),
    ("two-clients", "mistakes/iterative.py", "the server serves one client at a time (iterative)"),
    ("partial-reads", "mistakes/one_recv.py", "one recv returns only what has arrived so far"),
    ("partial-reads", "mistakes/no_compare.py", "the bytes read back are not the 1 MiB sent"),
]
RIGHT = [
    ("udp-no-server", "right/timeout_only.py"),
    ("two-clients", "right/selecting.py"),
    ("partial-reads", "right/length_loop.py"),
]


@pytest.mark.parametrize(("name", "wrong", "mistake"), WRONG, ids=[w[1] for w in WRONG])
def test_the_classic_mistake_fails_and_is_named(name: str, wrong: str, mistake: str, node_image: str,
                                                tmp_path: Path) -> None:  # fmt: skip
    outcome = exercise_labs.run(name, tmp_path, solution=EXERCISES / name / wrong)
    text = exercise_labs.transcript(outcome)
    assert not outcome.passed, text
    assert "FAIL" in text
    assert mistake in " ".join(text.split()), text


@pytest.mark.parametrize(("name", "right"), RIGHT, ids=[r[0] for r in RIGHT])
def test_a_right_solution_passes(name: str, right: str, node_image: str, tmp_path: Path) -> None:
    outcome = exercise_labs.run(name, tmp_path, solution=EXERCISES / name / right)
    assert outcome.passed, exercise_labs.transcript(outcome)
    assert outcome.verdicts
