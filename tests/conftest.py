"""Suite-wide settings: tests under tests/integration need Docker and are marked so.

``pytest -m "not docker"`` runs the unit and in-process tests alone, in seconds.
The container fixtures come from the ``lab.testing`` plugin.
"""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION in Path(item.fspath).parents:
            item.add_marker(pytest.mark.docker)
