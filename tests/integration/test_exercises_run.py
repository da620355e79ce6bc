"""``lab exercise run``: every exercise's reference steps on a real lab show what its README says."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.exercises import loader
from tests.integration import exercise_labs


@pytest.mark.parametrize("name", loader.names())
def test_reference_steps_show_the_observations(name: str, node_image: str, tmp_path: Path) -> None:
    outcome = exercise_labs.run(name, tmp_path)
    assert outcome.verdicts, f"{name} checks nothing"
    assert outcome.passed, exercise_labs.transcript(outcome)
