"""The bench's images: built from their sources when these (or the base image) changed, and their sizes.

``testbed/bench`` is the node image plus ``bench/`` (the load generators), the
compiled generators of ``bench/native`` and Debian's ``redis-benchmark``; the
rsyslog and Redis peers are Debian's packages on the base image. Every tag
follows the node image's (``bench.harness.bench_image``). Each image is
labelled with a digest of its build context and base, so an unchanged one is
never rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from pathlib import Path

import docker
import docker.errors

from bench.harness import BASE_IMAGE, BENCH_IMAGE, NODE_IMAGE, REDIS_IMAGE, RSYSLOG_IMAGE
from bench.options import ROOT
from bench.progress import say

BENCH_DIR = ROOT / "bench"


def context_digest(paths: list[Path], *extra: str) -> str:
    """A digest of the files' paths and contents (``__pycache__`` left out) and of ``extra``."""
    h = hashlib.sha256()
    for path in sorted(paths):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(ROOT)).encode())
            h.update(path.read_bytes())
    for text in extra:
        h.update(text.encode())
    return h.hexdigest()[:16]


def ensure_image(client: docker.DockerClient, tag: str, context: Path, *, bases: dict[str, str]) -> None:
    """Build ``tag`` from ``context`` unless an image with the same sources and bases exists.

    ``bases``: build argument -> image (each ``FROM ${ARG}`` of the Dockerfile).
    """
    base_ids = [f"{arg}={client.images.get(image).id}" for arg, image in sorted(bases.items())]
    digest = context_digest(list(context.rglob("*")), *base_ids)
    with contextlib.suppress(docker.errors.ImageNotFound):
        if client.images.get(tag).labels.get("testbed.bench.context") == digest:
            return
    say(f"building {tag}")
    # The legacy builder, as scripts/setup: no buildx plugin needed.
    result = subprocess.run(
        ["docker", "build", "-q", *(f"--build-arg={arg}={image}" for arg, image in bases.items()),
         "--label", f"testbed.bench.context={digest}", "--label", "testbed.bench=1", "-t", tag, str(context)],
        env={**os.environ, "DOCKER_BUILDKIT": "0"}, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"building {tag} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")


def ensure_images(client: docker.DockerClient) -> None:
    """The bench image and both peers' images, each built only when its sources or base changed."""
    # The bench image compiles its generators in a stage on the base image (Debian's gcc), then
    # copies them onto the node image.
    ensure_image(client, BENCH_IMAGE, BENCH_DIR, bases={"NODE_IMAGE": NODE_IMAGE, "BASE_IMAGE": BASE_IMAGE})
    ensure_image(client, RSYSLOG_IMAGE, BENCH_DIR / "peers" / "rsyslog", bases={"BASE_IMAGE": BASE_IMAGE})
    ensure_image(client, REDIS_IMAGE, BENCH_DIR / "peers" / "redis", bases={"BASE_IMAGE": BASE_IMAGE})


def image_sizes(client: docker.DockerClient) -> dict[str, int | None]:
    """Every image the bench uses and its size in bytes (None: not on this engine)."""
    sizes: dict[str, int | None] = {}
    for name in (BASE_IMAGE, NODE_IMAGE, BENCH_IMAGE, RSYSLOG_IMAGE, REDIS_IMAGE):
        try:
            sizes[name] = int(client.images.get(name).attrs["Size"])
        except docker.errors.ImageNotFound:
            sizes[name] = None
    return sizes
