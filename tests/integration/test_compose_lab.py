"""The default lab exactly as compose.yaml describes it: healthy, hardened, reachable by hostname.

It runs under its own project name with the host ports reset (a developer's own
lab may hold 10013 and friends), and labels every resource for the sweep. On Docker 25
or newer it runs with compose.engine25.yaml on top, as scripts/up does.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab import compose as renderer
from lab.engine import engine_major
from lab.testing import RUN_ID, RUN_LABELS

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["daytime", "echo", "creosote", "chat", "doctor", "threaded"]


def lab_files() -> list[str]:
    """The files scripts/up gives Compose on this engine."""
    modern = engine_major() >= renderer.START_INTERVAL_ENGINE
    return [str(ROOT / name) for name in ("compose.yaml", "compose.engine25.yaml")[: 2 if modern else 1]]


def compose(project: str, override: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    files = [argument for path in [*lab_files(), str(override)] for argument in ("-f", path)]
    argv = ["docker", "compose", "-p", project, *files, *args]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=180)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def project(node_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    name = f"testbed-suite-{RUN_ID}"
    spec = yaml.safe_load((ROOT / "compose.yaml").read_text())
    override = {
        "services": {service: {"ports": [], "labels": RUN_LABELS} for service in spec["services"]},
        "networks": {"lab": {"labels": RUN_LABELS}},
        "volumes": {"creosote-log": {"labels": RUN_LABELS}},
    }
    path = tmp_path_factory.mktemp("compose") / "override.yaml"
    # "!reset" drops the host ports the base file publishes.
    path.write_text(yaml.safe_dump(override).replace("ports: []", "ports: !reset []"))
    try:
        compose(name, path, "up", "-d", "--wait")
        yield name, path
    finally:
        compose(name, path, "--profile", "tools", "down", "-v", "--remove-orphans", check=False)


def test_every_service_is_healthy(project: tuple[str, Path]) -> None:
    result = compose(*project, "ps", "--format", "json")
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    if len(rows) == 1 and isinstance(rows[0], list):
        rows = rows[0]
    health = {row["Service"]: row["Health"] for row in rows}
    assert health == dict.fromkeys(SERVICES, "healthy")


def test_health_checks_are_timed_for_the_engine(project: tuple[str, Path]) -> None:
    """Docker 25+: often while starting, then seldom (an idle lab costs next to nothing); older: every second."""
    inspect = subprocess.run(
        ["docker", "inspect", *[f"{project[0]}-{service}-1" for service in SERVICES]],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    checks = [container["Config"]["Healthcheck"] for container in json.loads(inspect.stdout)]
    second = 1_000_000_000
    if engine_major() >= renderer.START_INTERVAL_ENGINE:
        assert all(c["StartInterval"] == second // 4 and c["Interval"] == 30 * second for c in checks), checks
    else:
        assert all(c["Interval"] == second and not c.get("StartInterval") for c in checks), checks


def test_client_reaches_every_server_by_hostname(project: tuple[str, Path]) -> None:
    result = compose(*project, "run", "--rm", "-T", "client")
    assert "6 of 6 servers answered" in result.stdout, result.stdout


@pytest.mark.parametrize("service", SERVICES)
def test_hardened_non_root_with_its_own_hostname(project: tuple[str, Path], service: str) -> None:
    result = compose(*project, "exec", "-T", service, "sh", "-c", "id -u; hostname; touch /probe 2>&1 || true")
    uid, hostname, *touch = result.stdout.splitlines()
    assert uid == "10001"
    assert hostname == service
    assert "Read-only file system" in " ".join(touch)
    inspect = subprocess.run(
        ["docker", "inspect", f"{project[0]}-{service}-1"], capture_output=True, text=True, check=True
    )
    host_config = json.loads(inspect.stdout)[0]["HostConfig"]
    assert host_config["CapDrop"] == ["ALL"] and not host_config["CapAdd"]
    assert "no-new-privileges:true" in host_config["SecurityOpt"]
    assert host_config["ReadonlyRootfs"] and host_config["Init"]
    assert host_config["Memory"] > 0 and host_config["PidsLimit"] > 0


def test_sigterm_stops_every_server_cleanly(project: tuple[str, Path]) -> None:
    """docker stop's SIGTERM ends each server itself (exit 0), not the SIGKILL after the grace period (137)."""
    compose(*project, "stop", "-t", "10")
    for service in SERVICES:
        inspect = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.ExitCode}}", f"{project[0]}-{service}-1"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert inspect.stdout.strip() == "0", service
    compose(*project, "up", "-d", "--wait")
