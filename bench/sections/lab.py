"""The ``lab`` section: the images' sizes and, when it exists, ``scripts/bench-lab``'s last result."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import docker

from bench.images import image_sizes
from bench.options import ROOT

BENCH_LAB_JSON = ROOT / "results" / "bench-lab.json"


def facts(client: docker.DockerClient) -> tuple[dict[str, int | None], dict[str, Any] | None]:
    """(image sizes, the lab life cycle's medians or None); an unreadable bench-lab JSON counts as none."""
    lab = None
    if BENCH_LAB_JSON.exists():
        with contextlib.suppress(ValueError, OSError):
            data = json.loads(BENCH_LAB_JSON.read_text())
            lab = {"when": data.get("when"), "median_s": data.get("median_s", {}), "source": "results/bench-lab.json"}
    return image_sizes(client), lab
