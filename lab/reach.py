"""Whether a lab's published ports answer from this machine: what Docker's health check cannot see.

Docker runs a node's health check inside its container, so "healthy" means the server answers on
the container's own addresses. A host port is another path: Docker's port proxy (a ``docker-proxy``
process per published port, which the engine starts with the container and stops with it) accepts
on 127.0.0.1:HOST and connects to the container. Two ways that path breaks while Docker still says
healthy, and what a connect from this machine sees of each:

- the proxy is gone (connect/close churn through chat's port once made it run out of open files
  and exit; a node cut off its network loses it too): the host port **refuses** every connection;
- nothing listens in the container on that port: the proxy accepts, tries the container, and
  hangs up at once: the connection is **closed** before a byte comes (measured: 2 ms after it
  was accepted, on Docker 26).

So a probe connects, then waits ``HANGUP_WINDOW`` for a hang-up: a connection still open then (or
a server that spoke) is ``ok``. A server that speaks first (daytime, chat, doctor) ends the wait by
itself. Where the node's own health check speaks a protocol in which the client speaks first (echo,
upper), the probe sends that protocol's line first, so the server's reply ends it as soon. UDP is not
probed: a datagram socket's ``connect`` sends nothing, and a silent server (creosote answers nothing)
is no proof either way; ``lab check`` speaks a protocol for that. Everything here but ``probe`` and
``probe_all`` is pure.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

CONNECT_TIMEOUT = 1.0  # seconds for the connect itself: a loopback connect takes well under 10 ms
# How long an accepted connection must stay open to count. Docker's proxy hung up 2 ms after the
# accept when nothing listened behind it (a 2-CPU machine, 2026-12-02): 0.3 s leaves room for a busy one.
HANGUP_WINDOW = 0.3
MAX_PROBES = 32  # connects at once: ``lab ps`` waits about one window, however many ports

Outcome = Literal["ok", "refused", "closed", "timeout", "failed", "not probed"]
TROUBLE: tuple[Outcome, ...] = ("refused", "closed", "timeout", "failed")


@dataclass(frozen=True)
class Published:
    """One published port: where on the host (``host_ip`` ``*``: every interface), and where inside."""

    host_ip: str
    host_port: int  # 0: none bound now
    container_port: int
    transport: str  # "tcp" or "udp"
    protocol: str = ""  # what the node's own health check speaks there (healthcheck.sh's first argument), if known

    def __str__(self) -> str:
        return f"{self.host_ip}:{self.host_port}->{self.container_port}/{self.transport}"

    @property
    def address(self) -> str:
        """Where a client on this machine connects: a wildcard binding is reached on the loopback."""
        host = {"*": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host_ip, self.host_ip)
        return f"[{host}]:{self.host_port}" if ":" in host else f"{host}:{self.host_port}"


def published_from_docker(bindings: dict[str, list[dict[str, str]] | None],
                          bound: dict[str, list[dict[str, str]] | None], *,
                          protocol: str = "") -> tuple[Published, ...]:  # fmt: skip
    """A container's published ports: ``HostConfig.PortBindings`` (what was asked for, kept while the
    container is cut off its network) with the port Docker chose from ``NetworkSettings.Ports`` when
    the binding left it to Docker (``HostPort`` empty or 0); ``protocol``, its health check's."""
    found = []
    for inside, asked in sorted(bindings.items()):
        number, _, transport = inside.partition("/")
        chosen = [b for b in bound.get(inside) or [] if b.get("HostPort")]
        for index, binding in enumerate(asked or []):
            port = int(binding.get("HostPort") or 0)
            if not port and index < len(chosen):
                port = int(chosen[index]["HostPort"])
            found.append(Published(binding.get("HostIp") or "0.0.0.0", port, int(number), transport or "tcp",
                                   protocol))  # fmt: skip
    return tuple(found)


def checked_protocol(probe: Sequence[str] | None) -> str:
    """The protocol a node's health check speaks (``sh .../healthcheck.sh echo 7/tcp`` gives ``echo``), or ""."""
    words = list(probe or [])
    for index, word in enumerate(words[:-1]):
        if word.endswith("/healthcheck.sh"):
            return words[index + 1]
    return ""


# What a probe sends first, by protocol: a server of one where the client speaks first answers it at
# once, where the probe would otherwise wait out HANGUP_WINDOW. The line is the one healthcheck.sh sends.
OPENINGS = {"echo": b"probe\n", "upper": b"probe\n"}


@dataclass(frozen=True)
class Reach:
    """How one published port answered a connect from this machine."""

    port: Published
    outcome: Outcome
    detail: str = ""  # the errno name when it failed; why it was not probed


def not_probed(port: Published, why: str) -> Reach:
    return Reach(port, "not probed", why)


# --------------------------------------------------------------------------- the probe (I/O)


def probe(port: Published, *, timeout: float = CONNECT_TIMEOUT, window: float = HANGUP_WINDOW) -> Reach:
    """Connect to a published TCP port from this machine; see the module docstring for what each outcome means."""
    if port.transport != "tcp":
        return not_probed(port, "udp")
    if not port.host_port:
        return not_probed(port, "no host port bound now")
    host, _, number = port.address.rpartition(":")
    try:
        sock = socket.create_connection((host.strip("[]"), int(number)), timeout=timeout)
    except ConnectionRefusedError:
        return Reach(port, "refused")
    except TimeoutError:
        return Reach(port, "timeout")
    except OSError as exc:
        return Reach(port, "failed", errno.errorcode.get(exc.errno or 0, str(exc)))
    with sock:
        sock.settimeout(window)
        try:
            if port.protocol in OPENINGS:
                sock.sendall(OPENINGS[port.protocol])
            first = sock.recv(1)
        except TimeoutError:
            return Reach(port, "ok")  # open and quiet: a server that waits for its client, in a protocol unknown here
        except (ConnectionResetError, BrokenPipeError):
            return Reach(port, "closed")
        except OSError as exc:
            return Reach(port, "failed", errno.errorcode.get(exc.errno or 0, str(exc)))
    return Reach(port, "ok" if first else "closed")


def probe_all(ports: Sequence[Published], *, timeout: float = CONNECT_TIMEOUT,
              window: float = HANGUP_WINDOW) -> list[Reach]:  # fmt: skip
    """``probe`` each port, at most ``MAX_PROBES`` at once; the results in the same order."""
    if not ports:
        return []
    with ThreadPoolExecutor(min(MAX_PROBES, len(ports))) as pool:
        return list(pool.map(lambda port: probe(port, timeout=timeout, window=window), ports))


# --------------------------------------------------------------------------- what to say (pure)


def said(reach: Reach) -> str:
    """An outcome in a few words, as ``lab ps`` prints it after the port."""
    return {
        "ok": "answers",
        "refused": "refused",
        "closed": "closed at once",
        "timeout": f"no answer in {CONNECT_TIMEOUT:g} s",
        "failed": f"failed ({reach.detail})",
        "not probed": f"not probed ({reach.detail})",
    }[reach.outcome]


def summary(reaches: Sequence[Reach]) -> str:
    """One cell of ``lab ps``: ``tcp ok``, ``tcp ok, udp not probed``, ``15000/tcp refused``..."""
    tcp = [r for r in reaches if r.port.transport == "tcp"]
    parts = []
    if tcp and all(r.outcome == "ok" for r in tcp):
        parts.append("tcp ok")
    else:
        parts += [f"{r.port.host_port}/tcp {said(r)}" for r in tcp if r.outcome != "ok"]
    if any(r.port.transport == "udp" for r in reaches):
        parts.append("udp not probed")
    return ", ".join(parts)


def trouble(reaches: Sequence[Reach]) -> list[Reach]:
    """The published ports that did not answer as a working one does."""
    return [r for r in reaches if r.outcome in TROUBLE]


def verdict(state: str, reaches: Sequence[Reach]) -> str | None:
    """What Docker says against what this machine saw: ``healthy, host port 127.0.0.1:15000 refused``; None if fine."""
    bad = trouble(reaches)
    if not bad:
        return None
    docker_says = state.partition("(")[2].rstrip(")") or state  # "running (healthy)" -> "healthy"
    ports = "; ".join(f"host port {r.port.address} {said(r)}" for r in bad)
    return f"{docker_says}, {ports}"


def advice(reaches: Sequence[Reach], *, restart: str, cut_off: bool = False, logs: str = "") -> str:
    """What to do next about ``trouble(reaches)``: the cause each outcome points at, then the command."""
    outcomes = {r.outcome for r in trouble(reaches)}
    if cut_off:
        return "it is cut off a network, and its ports went with it: lab heal reconnects it"
    if outcomes == {"closed"}:
        return f"Docker's proxy answers, but nothing listens behind it in the container: see {logs or 'its log'}"
    if "refused" in outcomes:
        return (f"Docker's port proxy for it is gone (the health check runs inside the container and cannot see "
                f"that); restarting the node starts a new one: {restart}")  # fmt: skip
    return f"the host port does not answer in time; {restart} starts it afresh, {logs or 'its log'} may say why"
