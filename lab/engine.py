"""The Docker engine as every part of the lab reaches it: one client, the node image, containers, exec, logs.

The backends, the runtime helpers (``lab.impair``, ``lab.capture``) and the pytest
plugin all come through here, so "no engine answers", "no such container" and
"the image is missing" read the same wherever they happen.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import ipaddress
import os
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from common.errors import TestbedError
from common.waiting import wait_until
from lab import model

# Labels Docker's own tools put on what they create.
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
CONFIG_LABEL = "com.docker.compose.project.config_files"
STACK_LABEL = "com.docker.stack.namespace"  # on a stack's services, networks, volumes and task containers


class LabError(TestbedError):
    """Something the engine refused or could not do; ``hint`` says what to try."""

    def __init__(self, what: str, hint: str = "") -> None:
        super().__init__(f"{what} ({hint})" if hint else what)
        self.what = what
        self.hint = hint


# The engine a block of code talks to instead of $DOCKER_HOST's: another machine's (``reaching``).
_reaching: contextvars.ContextVar[str | None] = contextvars.ContextVar("reaching", default=None)


_clients: dict[str | None, docker.DockerClient] = {}  # one per engine URL (None: $DOCKER_HOST's)


def _client_for(url: str | None) -> docker.DockerClient:
    """The client of the engine at ``url`` (``None``: ``$DOCKER_HOST``), or a ``LabError`` saying how to get one."""
    if url in _clients:
        return _clients[url]
    found = None
    try:
        # ssh:// goes through the ssh command (its config, keys and agent), as the docker CLI does.
        found = (
            docker.from_env()
            if url is None
            else docker.DockerClient(base_url=url, use_ssh_client=url.startswith("ssh://"))
        )
        found.ping()
    except Exception as exc:  # the SDK raises unrelated types (requests, FileNotFound, DockerException)
        if found is not None:
            found.close()
        where = "" if url is None else f" at {url}"
        raise LabError(
            f"no Docker engine answers{where} ({type(exc).__name__})", "start one with scripts/setup"
        ) from None
    _clients[url] = found
    return found


def client() -> docker.DockerClient:
    """The client for the engine of ``DOCKER_HOST`` (one per process), or of the machine ``reaching`` names."""
    return _client_for(_reaching.get())


def client_at(url: str) -> docker.DockerClient:
    """The client for the engine at ``url`` (``tcp://``, ``ssh://``, ``unix://``), kept like ``client()``'s."""
    return _client_for(url)


def forget_client(url: str | None) -> None:
    """Close and drop the client of one engine (it restarted, or moved to another port)."""
    gone = _clients.pop(url, None)
    if gone is not None:
        gone.close()


def forget_clients() -> None:
    """Drop every client (after ``DOCKER_HOST`` changed, or when a test session ends)."""
    for url in list(_clients):
        forget_client(url)
    engine_major.cache_clear()


@contextlib.contextmanager
def reaching(url: str | None) -> Iterator[None]:
    """Within the block, ``client()`` and ``docker`` commands (``DOCKER_HOST``) talk to the engine at ``url``.

    ``None`` changes nothing: the engine stays ``$DOCKER_HOST``'s.
    """
    if url is None:
        yield
        return
    token = _reaching.set(url)
    before = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = url
    try:
        yield
    finally:
        _reaching.reset(token)
        if before is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = before


_elsewhere: set[str] = set()  # engine URLs on 127.0.0.1 whose machine is not this one (a simulated cluster's)


def use(url: str, *, elsewhere: bool = False) -> None:
    """From now on, in this process and the ``docker`` commands it runs, the engine is the one at ``url``.

    ``elsewhere``: its machine is not this one though its URL says 127.0.0.1 (a machine of
    a simulated cluster, whose published ports are on the machine's own interfaces).
    """
    os.environ["DOCKER_HOST"] = url
    if elsewhere:
        mark_elsewhere([url])
    forget_clients()


def mark_elsewhere(urls: Iterable[str]) -> None:
    """Say that the engines at ``urls`` run on other machines, though reached through 127.0.0.1."""
    _elsewhere.update(urls)


@functools.cache
def engine_major() -> int:
    """The engine's major release (``26`` for 26.1.5), from its version string; 0 when it does not say."""
    version = str(client().version().get("Version", ""))
    digits = version.split(".", 1)[0]
    return int(digits) if digits.isdigit() else 0


def on_this_machine() -> bool:
    """Whether the engine runs here, so that the 127.0.0.1 it publishes ports on is this machine's.

    The SDK names a unix socket's engine ``localhost``; ``tcp://`` and ``ssh://`` engines elsewhere keep
    their host's name.
    """
    if (_reaching.get() or os.environ.get("DOCKER_HOST")) in _elsewhere:
        return False
    return urllib.parse.urlsplit(str(client().api.base_url)).hostname in ("localhost", "127.0.0.1", "::1")


def machine_name() -> str:
    """The engine's own name for its machine (its hostname): the MACHINE of its Swarm tasks."""
    return str(client().info().get("Name", ""))


def node_image() -> str:
    """The node image every node and sidecar runs: ``$TESTBED_NODE_IMAGE``, else ``testbed/node:latest``."""
    return os.environ.get(model.IMAGE_VARIABLE) or model.DEFAULT_NODE_IMAGE


def get_container(name: str) -> Container:
    """A container by name or id, or a ``LabError``."""
    try:
        return client().containers.get(name)
    except docker.errors.NotFound:
        raise LabError(f"no container {name}", "is the lab up? lab ps shows it") from None


def running_container(name: str) -> Container:
    """A container that runs now, or a ``LabError`` saying what state it is in."""
    container = get_container(name)
    if container.status != "running":
        raise LabError(f"container {name} is {container.status}, not running", "start the lab first")
    return container


def labelled(labels: dict[str, str] | Sequence[str], *, running_only: bool = False) -> list[Container]:
    """Containers carrying every label given (``key=value`` pairs, or bare keys)."""
    return list(client().containers.list(all=not running_only, filters={"label": _wanted(labels)}))


def _wanted(labels: dict[str, str] | Sequence[str]) -> list[str]:
    return [f"{k}={v}" for k, v in labels.items()] if isinstance(labels, dict) else list(labels)


@dataclass(frozen=True)
class Listed:
    """A container as the engine lists it: enough to name, sort and remove it.

    The SDK's ``containers.list`` inspects every container it lists, one request each (about
    4 ms apiece here); the list alone is one request, however many containers match.
    """

    id: str
    name: str
    labels: dict[str, str]
    network_mode: str

    @classmethod
    def from_list(cls, entry: dict[str, Any]) -> Listed:
        """One entry of the engine's container list (``GET /containers/json``)."""
        names = entry.get("Names") or []
        return cls(id=str(entry["Id"]), name=str(names[0]).lstrip("/") if names else str(entry["Id"])[:12],
                   labels=dict(entry.get("Labels") or {}),
                   network_mode=str((entry.get("HostConfig") or {}).get("NetworkMode", "")))  # fmt: skip

    def remove(self) -> bool:
        """Remove it, running or not; False if it was gone already."""
        try:
            client().api.remove_container(self.id, force=True)
        except docker.errors.NotFound:
            return False
        return True


def listed(filters: dict[str, Any], *, running_only: bool = False) -> list[Listed]:
    """The containers matching ``filters`` (the engine's own: ``{"label": [...]}``), in one request."""
    return [Listed.from_list(entry) for entry in client().api.containers(all=not running_only, filters=filters)]


def listed_by_label(labels: dict[str, str] | Sequence[str], *, running_only: bool = False) -> list[Listed]:
    """``listed`` for the containers carrying every label given (``key=value`` pairs, or bare keys)."""
    return listed({"label": _wanted(labels)}, running_only=running_only)


@dataclass(frozen=True)
class Ran:
    """What a command run inside a container did."""

    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        """What it printed, stdout then stderr."""
        return self.out + self.err

    @property
    def exit_code(self) -> int:
        """``code``, by the name subprocess and testcontainers give it."""
        return self.code


def text(output: bytes | Iterable[bytes] | None) -> str:
    """``exec_run`` or ``logs`` output (bytes unless streamed) as text."""
    if output is None:
        return ""
    data = output if isinstance(output, bytes) else b"".join(output)
    return data.decode("utf-8", errors="replace")


def run_in(container: Container, argv: Sequence[str], *, user: str | None = None) -> Ran:
    """Run ``argv`` inside ``container`` without a terminal; its exit code and output."""
    result = container.exec_run(list(argv), user=user or "", demux=True)
    output: Any = result.output  # with demux, a (stdout, stderr) pair; the stubs do not know
    out, err = output if isinstance(output, tuple) else (output, b"")
    return Ran(-1 if result.exit_code is None else int(result.exit_code), text(out), text(err))


def logs(container: Container) -> str:
    """Everything the container has written so far ("" once it is gone)."""
    try:
        return text(container.logs()).strip()
    except docker.errors.APIError:
        return ""


CLIENT_TIMEOUT = 900.0  # seconds a one-shot client may run (a full conformance check takes well under a minute)


def run_client(
    argv: Sequence[str],
    *,
    labels: dict[str, str],
    network: str | None = None,
    beside: Container | None = None,
    timeout: float = CLIENT_TIMEOUT,
) -> Ran:
    """Run a one-shot client of the node image, hardened like a node; what it printed.

    On ``network`` it is a host of its own there; ``beside`` a container, it shares that
    container's network namespace (its addresses, routes and names). The container is
    removed afterwards, whatever happened; ``labels`` (the lab's) let a teardown find it
    should this process die first.
    """
    where: dict[str, Any] = {"network_mode": f"container:{beside.id}"} if beside is not None else {"network": network}
    container = client().containers.run(
        node_image(),
        list(argv),
        detach=True,
        **where,
        user="node",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"],
        read_only=True,
        tmpfs={"/tmp": "size=16m"},
        mem_limit="512m",
        pids_limit=256,
        labels=labels,
    )
    try:
        try:
            status = container.wait(timeout=timeout)
        except Exception:  # the SDK lets the HTTP read timeout through as requests' own type
            raise LabError(f"{' '.join(argv[:4])} did not finish within {timeout:g} s", "see its output") from None
        out = text(container.logs(stdout=True, stderr=False))
        err = text(container.logs(stdout=False, stderr=True))
        return Ran(int(status.get("StatusCode", -1)), out, err)
    finally:
        container.remove(force=True)


def wait_for_output(container: Container, marker: str, *, timeout: float = 30.0) -> str:
    """Wait until ``marker`` shows in the container's output and return it all.

    Fails at once, with the output so far, if the container stops first.
    """

    def seen() -> str | None:
        output = logs(container)
        if marker in output:
            return output
        container.reload()
        if container.status != "running":
            raise LabError(f"{container.name} stopped ({container.status}) before {marker.strip()!r}: {output}")
        return None

    try:
        return wait_until(seen, timeout=timeout, what=f"{container.name} to print {marker.strip()!r}")
    except TimeoutError as exc:
        raise LabError(f"{exc}: {logs(container)}") from None


def taken_subnets(docker_client: docker.DockerClient) -> list[ipaddress.IPv4Network]:
    """The IPv4 subnets of every network on the engine, whoever made it: where a new lab must not go."""
    taken = []
    for network in docker_client.networks.list():
        for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
            subnet = ipaddress.ip_network(config.get("Subnet") or "0.0.0.0/32", strict=False)
            if isinstance(subnet, ipaddress.IPv4Network) and subnet.prefixlen < 32:
                taken.append(subnet)
    return taken
