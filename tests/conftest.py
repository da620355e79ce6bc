"""Suite-wide settings: tests under tests/integration need Docker and are marked so.

``pytest -m "not docker"`` runs the unit and in-process tests alone, in seconds.
The container fixtures come from the ``lab.testing`` plugin.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.testing import in_ci

INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION in Path(item.fspath).parents:
            item.add_marker(pytest.mark.docker)


_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI a skipped test is a failure: the suite must never pass by skipping."""
    if in_ci() and _skipped and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nCI=true: {len(_skipped)} test(s) skipped, which fails the run: {', '.join(_skipped[:5])}")
