"""The `topology` fixture as a user has it: the example test file, copied outside the repository, run by pytest.

It must pass under CI=true, and leave no container, network or sidecar of its labs behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from lab.engine import PROJECT_LABEL

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_runs_from_outside_the_repository(
    docker_client: docker.DockerClient, node_image: str, tmp_path: Path
) -> None:
    project = tmp_path / "my-tests"
    project.mkdir()
    shutil.copy(ROOT / "examples" / "test_across_the_network.py", project / "test_mine.py")
    text = (
        (project / "test_mine.py")
        .read_text()
        .replace('"topology/two-lans.yaml"', repr(str(ROOT / "topology" / "two-lans.yaml")))
    )
    (project / "test_mine.py").write_text(text)
    before = {c.id for c in docker_client.containers.list(all=True, ignore_removed=True)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project / "test_mine.py")],
        cwd=project, env={**os.environ, "CI": "true"}, capture_output=True, text=True, timeout=540, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "5 passed" in result.stdout, result.stdout[-2000:]
    # Only the example's labs: other tests may start containers meanwhile.
    ours = [c for c in docker_client.containers.list(all=True, ignore_removed=True) if c.id not in before]
    left = [c.name for c in ours if str(c.labels.get(PROJECT_LABEL, "")).startswith("testbed-two-lans-")]
    assert left == [], left
    networks = [n.name for n in docker_client.networks.list() if str(n.name).startswith("testbed-two-lans-")]
    assert networks == [], networks
