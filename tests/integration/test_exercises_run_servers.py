"""``lab exercise run``, the other half: servers, concurrency, ports and names (see ``test_exercises_run``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration import exercise_labs

NAMES = exercise_labs.RUN_GROUPS["test_exercises_run_servers"]


@pytest.mark.parametrize("name", NAMES)
def test_reference_steps_show_the_observations(name: str, node_image: str, tmp_path: Path) -> None:
    outcome = exercise_labs.run(name, tmp_path)
    assert outcome.verdicts, f"{name} checks nothing"
    assert outcome.passed, exercise_labs.transcript(outcome)
