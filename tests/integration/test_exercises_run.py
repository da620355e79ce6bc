"""``lab exercise run``: every exercise's reference steps on a real lab show what its README says.

This module runs half of them, ``test_exercises_run_servers`` the other half (``exercise_labs.RUN_GROUPS``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.exercises import loader
from tests.integration import exercise_labs

NAMES = exercise_labs.RUN_GROUPS["test_exercises_run"]


def test_every_exercise_is_run_by_exactly_one_module() -> None:
    grouped = [name for group in exercise_labs.RUN_GROUPS.values() for name in group]
    assert sorted(grouped) == loader.names()


@pytest.mark.parametrize("name", NAMES)
def test_reference_steps_show_the_observations(name: str, node_image: str, tmp_path: Path) -> None:
    outcome = exercise_labs.run(name, tmp_path)
    assert outcome.verdicts, f"{name} checks nothing"
    assert outcome.passed, exercise_labs.transcript(outcome)
