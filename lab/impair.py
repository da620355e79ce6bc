"""Impair a node's links, partition nodes, cut nodes off networks: at runtime, through the Docker API.

Every change runs in a *sidecar*: a ``testbed/node`` container started with
``--network container:<node>`` and ``--cap-add NET_ADMIN``, so it shares the node's network
namespace and holds the capability for it; the node itself keeps ``cap_drop: [ALL]``. Sidecars
carry the labels ``testbed.lab=<project>`` and ``testbed.sidecar=<role>`` (plus a role label, such
as ``testbed.impair=<container>``), which is how ``clear``, ``heal`` and a lab's teardown find them.

Two backends, chosen by probing the kernel once per process:

``netem``
    ``tc qdisc add dev X root netem delay .. loss .. rate ..`` on each interface.
``nfqueue``
    for kernels without ``sch_netem`` (like this project's CI): delay and jitter by an NFQUEUE
    rule feeding ``lab.delayline`` (which runs as the sidecar's main process), loss by the
    iptables ``statistic`` match (into a queue nobody reads, which drops silently: ``-j DROP``
    would fail the node's own ``send()`` with EPERM), rate by a ``tbf`` qdisc. The rules live in our own mangle chain
    hooked into ``POSTROUTING``, so forwarded traffic (a router node's) is impaired too, as with
    netem.

Differences a user may notice: the delay line never reorders packets (netem does, with jitter);
``tc``-based parts (rate, netem) sit on an interface and vanish if Docker recreates it (a
``disconnect``/``reconnect``), while iptables rules stay; a node restart starts it afresh, with
no impairment at all, and leaves the old sidecar behind (``clear`` or ``apply`` again).

Everything is idempotent: applying again replaces the previous impairment, clearing or healing
twice is harmless, and teardown removes only chains and qdiscs we name (``TESTBED-*`` chains,
root qdiscs with our handles ``7e57:``/``7e58:``), never anything else in the namespace.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import shlex
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import docker
import docker.errors
from docker import DockerClient
from docker.models.containers import Container
from docker.models.networks import Network

from lab.model import Impairment, NetworkRef, NodeRef
from protocols.errors import TestbedError

__all__ = [
    "ImpairError",
    "Impairment",
    "apply",
    "clear",
    "disconnect",
    "heal",
    "parse_impairment",
    "partition",
    "reconnect",
]

IMAGE = os.environ.get("TESTBED_NODE_IMAGE", "testbed/node:latest")
Backend = Literal["netem", "nfqueue"]
Command = tuple[str, ...]

LAB_LABEL = "testbed.lab"
SIDECAR_LABEL = "testbed.sidecar"  # impair | partition | disconnect | capture | probe
IMPAIR_LABEL = "testbed.impair"  # the node's container name
SCOPE_LABEL = "testbed.impair.scope"  # "*" (every interface) or one interface name
PARTITION_LABEL = "testbed.partition"  # the partition's id, shared by both sides
PEER_LABEL = "testbed.partition.peer"
DISCONNECTED_LABEL = "testbed.disconnected"  # container name; the marker remembers how to reconnect
NETWORK_LABEL = "testbed.disconnected.network"
ALIASES_LABEL = "testbed.disconnected.aliases"
IPV4_LABEL = "testbed.disconnected.ipv4"

QUEUE_BASE = 7357  # NFQUEUE numbers are per namespace; + ifindex for one-interface scopes
# A queue nobody binds. "-j DROP" on a node's own output makes its send() fail with EPERM, which
# no real network does (an app would crash where it should time out); a packet sent to an unbound
# queue without --queue-bypass is freed silently instead, and the sender sees success.
BLACKHOLE_QUEUE = 65535
RESENT_MARK = "0x7e57"  # lab.delayline marks the copies it sends again; our chains let them pass
HANDLE_ALL = "7e57:"
HANDLE_ONE = "7e58:"
CHAIN_IMPAIR = "TESTBED-IMP"
CHAIN_PARTITION = "TESTBED-P-"
NETEM_LIMIT = 10000  # packets; netem's default of 1000 overflows at high rate x delay
TBF_LATENCY_MS = 100  # how long a packet may wait in tbf before it is dropped (its queue size)
READY_TIMEOUT = 15.0
SLEEPER: Command = ("sleep", "infinity")


class ImpairError(TestbedError):
    """An impairment, partition or capture could not be made or undone (the message says why)."""


# --------------------------------------------------------------------------- parsing

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_UNIT = re.compile(rf"^\s*{_NUMBER}\s*([a-zµ%]*)\s*$", re.IGNORECASE)
DURATION_FORMS = "a duration like 80ms, 1s, 1.5s or 250us"
PERCENT_FORMS = "a percentage from 0% to 100%, like 5% or 0.5%"
RATE_FORMS = (
    "a rate like 1mbit, 512kbit or 10mbps (tc's units: bit/kbit/mbit/gbit are bits per second, "
    "kibit/mibit/gibit the binary ones, bps/kbps/mbps/gbps BYTES per second)"
)
DURATION_MS = {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}
RATE_KBIT = {
    "bit": 1e-3,
    "kbit": 1.0,
    "mbit": 1e3,
    "gbit": 1e6,
    "kibit": 1.024,
    "mibit": 1024 * 1.024,
    "gibit": 1024 * 1024 * 1.024,
    "bps": 8e-3,
    "kbps": 8.0,
    "mbps": 8e3,
    "gbps": 8e6,
}


def _split(text: str, what: str, forms: str) -> tuple[float, str]:
    match = _UNIT.match(text)
    if match is None:
        raise ValueError(f"{what}: {text!r} is not {forms}")
    return float(match.group(1)), match.group(2).lower()


def parse_duration_ms(text: str, *, what: str = "delay") -> float:
    """``80ms`` -> 80.0, ``1s`` -> 1000.0, ``250us`` -> 0.25; a bare ``0`` is allowed."""
    value, unit = _split(text, what, DURATION_FORMS)
    if unit == "" and value == 0:
        return 0.0
    if unit not in DURATION_MS:
        raise ValueError(f"{what}: {text!r} is not {DURATION_FORMS}")
    return value * DURATION_MS[unit]


def parse_percent(text: str, *, what: str = "loss") -> float:
    """``5%`` -> 5.0, ``0.5%`` -> 0.5 (0 to 100); a bare ``0`` is allowed."""
    value, unit = _split(text, what, PERCENT_FORMS)
    if (unit != "%" and not (unit == "" and value == 0)) or value > 100:
        raise ValueError(f"{what}: {text!r} is not {PERCENT_FORMS}")
    return value


def parse_rate_kbit(text: str, *, what: str = "rate") -> float:
    """``1mbit`` -> 1000.0 kbit/s, ``10mbps`` -> 80000.0 (bytes, as in tc(8)); must be above 0."""
    value, unit = _split(text, what, RATE_FORMS)
    if unit not in RATE_KBIT or value <= 0:
        raise ValueError(f"{what}: {text!r} is not {RATE_FORMS}")
    return value * RATE_KBIT[unit]


def parse_impairment(delay: str | None, jitter: str | None, loss: str | None, rate: str | None) -> Impairment:
    """Build an ``Impairment`` from the strings a user typed (``None`` or ``""``: not asked for).

    Raises ``ValueError`` naming the bad value and the accepted forms.
    """
    spec = Impairment(
        delay_ms=parse_duration_ms(delay, what="delay") if delay else 0.0,
        jitter_ms=parse_duration_ms(jitter, what="jitter") if jitter else 0.0,
        loss_pct=parse_percent(loss, what="loss") if loss else 0.0,
        rate_kbit=parse_rate_kbit(rate, what="rate") if rate else None,
    )
    check_impairment(spec)
    return spec


def check_impairment(spec: Impairment) -> None:
    """Raise ``ValueError`` if ``spec`` cannot be applied (the model's dataclass does not check)."""
    for what, value in (("delay", spec.delay_ms), ("jitter", spec.jitter_ms), ("loss", spec.loss_pct)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{what}: {value!r} must be a finite number >= 0")
    if spec.loss_pct > 100:
        raise ValueError(f"loss: {spec.loss_pct:g}% is not {PERCENT_FORMS}")
    if spec.jitter_ms and not spec.delay_ms:
        raise ValueError(f"jitter: {spec.jitter_ms:g}ms without a delay; add a delay too, e.g. delay 80ms")
    if spec.rate_kbit is not None and not (math.isfinite(spec.rate_kbit) and spec.rate_kbit > 0):
        raise ValueError(f"rate: {spec.rate_kbit!r} is not {RATE_FORMS}")


def is_empty(spec: Impairment) -> bool:
    """True when ``spec`` changes nothing (applying it is the same as clearing)."""
    return not (spec.delay_ms or spec.jitter_ms or spec.loss_pct) and spec.rate_kbit is None


# --------------------------------------------------------------------------- planning (pure)


@dataclass(frozen=True)
class Link:
    """One interface of a namespace, as ``ip -o link show`` lists it."""

    index: int
    name: str
    up: bool
    mac: str = ""


_LINK = re.compile(r"^(\d+):\s+([^:@\s]+)(?:@\S*)?:\s+<([^>]*)>(?:.*?link/\S+\s+([0-9a-f:]{17}))?", re.IGNORECASE)


def parse_links(text: str) -> list[Link]:
    """Parse ``ip -o link show``."""
    links = []
    for line in text.splitlines():
        match = _LINK.match(line.strip())
        if match:
            flags = match.group(3).split(",")
            links.append(Link(int(match.group(1)), match.group(2), "UP" in flags, (match.group(4) or "").lower()))
    return links


@dataclass(frozen=True)
class Scope:
    """What one impairment covers: every interface but ``lo`` (``interface=None``), or one interface.

    Each scope has its own chain, queue and qdisc handle, so a per-link impairment and another
    link's can live side by side (a whole-node and a per-link one on the same interface cannot:
    the interface has one root qdisc, and a packet is queued once per hook).
    """

    interface: str | None = None
    ifindex: int = 0

    @property
    def label(self) -> str:
        return self.interface or "*"

    @property
    def chain(self) -> str:
        return CHAIN_IMPAIR if self.interface is None else f"{CHAIN_IMPAIR}-{self.interface}"

    @property
    def queue(self) -> int:
        return QUEUE_BASE if self.interface is None else QUEUE_BASE + self.ifindex

    @property
    def handle(self) -> str:
        return HANDLE_ALL if self.interface is None else HANDLE_ONE

    def devices(self, links: Sequence[Link]) -> list[str]:
        """The interfaces to shape: the scope's own, or every interface that is up, but ``lo``."""
        if self.interface is not None:
            return [self.interface]
        return [link.name for link in links if link.up and link.name != "lo"]


@dataclass(frozen=True)
class Plan:
    """The commands that realise an impairment in a namespace, and the delay line to run (if any)."""

    commands: tuple[Command, ...]
    delayline: Command | None = None


def _num(value: float) -> str:
    """A number for a command line, without float noise or exponents: 80, 0.25, 1000."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _us(ms: float) -> str:
    """A tc time in whole microseconds (tc parses ``80000us`` exactly, no float rounding)."""
    return f"{round(ms * 1000)}us"


def tbf_burst_bytes(rate_kbit: float) -> int:
    """tbf's bucket: 10 ms of the rate, but at least a few full frames (a frame larger than the bucket is
    dropped, and GSO segments must fit) and at most 1 MiB."""
    return int(min(max(rate_kbit * 1000 / 8 / 100, 4 * 1514), 1 << 20))


def netem_args(spec: Impairment) -> list[str]:
    """``netem`` parameters for ``spec``."""
    args = ["netem", "limit", str(NETEM_LIMIT)]
    if spec.delay_ms or spec.jitter_ms:
        args += ["delay", _us(spec.delay_ms)]
        if spec.jitter_ms:
            args.append(_us(spec.jitter_ms))
    if spec.loss_pct:
        args += ["loss", f"{_num(spec.loss_pct)}%"]
    if spec.rate_kbit is not None:
        args += ["rate", f"{_num(spec.rate_kbit)}kbit"]
    return args


def tbf_args(rate_kbit: float) -> list[str]:
    """``tbf`` parameters: the rate alone, as netem's ``rate`` would shape it."""
    return [
        "tbf",
        "rate",
        f"{_num(rate_kbit)}kbit",
        "burst",
        str(tbf_burst_bytes(rate_kbit)),
        "latency",
        f"{TBF_LATENCY_MS}ms",
    ]


def delayline_command(spec: Impairment, scope: Scope) -> Command | None:
    """The delay line for ``spec``, or None when there is nothing to delay."""
    if not (spec.delay_ms or spec.jitter_ms):
        return None
    return (
        "python3", "-m", "lab.delayline",
        "--queue", str(scope.queue),
        "--delay-ms", _num(spec.delay_ms),
        "--jitter-ms", _num(spec.jitter_ms),
        "--mark", RESENT_MARK,
    )  # fmt: skip


BLACKHOLE: Command = ("-j", "NFQUEUE", "--queue-num", str(BLACKHOLE_QUEUE))


def plan_impairment(
    spec: Impairment,
    scope: Scope,
    links: Sequence[Link],
    *,
    backend: Backend,
    families: Sequence[str] = ("iptables", "ip6tables"),
) -> Plan:
    """What to run in the node's namespace so that its egress (in ``scope``) gets ``spec``."""
    devices = scope.devices(links)
    if is_empty(spec) or not devices:
        return Plan(())
    if backend == "netem":
        return Plan(
            tuple(
                ("tc", "qdisc", "add", "dev", dev, "root", "handle", scope.handle, *netem_args(spec)) for dev in devices
            )
        )
    commands: list[Command] = []
    delayline = delayline_command(spec, scope)
    if spec.loss_pct or delayline:
        for ipt in families:
            table = (ipt, "-w", "-t", "mangle")
            commands.append((*table, "-N", scope.chain))
            if scope.interface is None:
                commands.append((*table, "-A", scope.chain, "-o", "lo", "-j", "RETURN"))
            if delayline:
                # The delay line's own copies, sent again when due: they have had their delay (and loss).
                commands.append((*table, "-A", scope.chain, "-m", "mark", "--mark", RESENT_MARK, "-j", "RETURN"))
            if spec.loss_pct:
                # Before the delay: a lost packet must not wait out its delay first.
                probability = _num(spec.loss_pct / 100)
                commands.append((*table, "-A", scope.chain, "-m", "statistic", "--mode", "random",
                                 "--probability", probability, *BLACKHOLE))  # fmt: skip
            if delayline:
                # --queue-bypass: if the delay line dies, packets flow undelayed instead of being dropped.
                commands.append((*table, "-A", scope.chain, "-j", "NFQUEUE", "--queue-num", str(scope.queue),
                                 "--queue-bypass"))  # fmt: skip
            where = () if scope.interface is None else ("-o", scope.interface)
            commands.append((*table, "-A", "POSTROUTING", *where, "-j", scope.chain))
    if spec.rate_kbit is not None:
        commands += [("tc", "qdisc", "add", "dev", dev, "root", "handle", scope.handle, *tbf_args(spec.rate_kbit))
                     for dev in devices]  # fmt: skip
    return Plan(tuple(commands), delayline)


def script(commands: Sequence[Command]) -> str:
    """One ``sh`` script running ``commands`` in order, stopping at the first that fails and naming it."""
    lines = ["set -u"]
    for command in commands:
        text = shlex.join(command)
        lines.append(f"{text} || {{ echo {shlex.quote('failed: ' + text)} >&2; exit 1; }}")
    return "\n".join(lines) + "\n"


def chain_teardown(table: str, pattern: str) -> str:
    """Shell that removes every chain matching the ERE ``pattern`` in ``table`` and every jump to it.

    The jumps are found by listing the table (``-S``) and replaying each ``-A`` as ``-D``, so rules
    are removed by exactly the spec they were added with, whatever it was.
    """
    quoted = shlex.quote(f"^({pattern})$")
    return f"""for ipt in iptables ip6tables; do
  $ipt -w -t {table} -S >/dev/null 2>&1 || continue
  $ipt -w -t {table} -S | awk -v pat={quoted} '$1 == "-A" && $(NF-1) == "-j" && $NF ~ pat' \\
    | sed 's/^-A /-D /' | while read -r rule; do $ipt -w -t {table} $rule; done
  for chain in $($ipt -w -t {table} -S | awk -v pat={quoted} '$1 == "-N" && $2 ~ pat {{print $2}}'); do
    $ipt -w -t {table} -F "$chain" && $ipt -w -t {table} -X "$chain"
  done
  if $ipt -w -t {table} -S | awk -v pat={quoted} '$1 == "-N" && $2 ~ pat' | grep -q .; then
    echo "$ipt: chains matching {pattern} are still there" >&2; rc=1
  fi
done
"""


def qdisc_teardown(handles: Sequence[str], devices: Sequence[str] | None = None) -> str:
    """Shell that deletes root qdiscs carrying one of our ``handles`` (on ``devices``, or every interface)."""
    alternatives = "|".join(re.escape(h.rstrip(":")) for h in handles)
    listing = (
        " ".join(shlex.quote(d) for d in devices)
        if devices is not None
        else ("$(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1)")
    )
    return f"""for dev in {listing}; do
  [ "$dev" = lo ] && continue
  if tc qdisc show dev "$dev" root 2>/dev/null | grep -Eq '^qdisc [a-z_]+ ({alternatives}): root'; then
    tc qdisc del dev "$dev" root || rc=1
  fi
done
"""


def impair_teardown(scope: Scope | None) -> str:
    """Shell that undoes ``apply`` for one scope, or for every scope (``None``); safe to run twice."""
    if scope is None:
        chains = f"{CHAIN_IMPAIR}(-.+)?"
        qdiscs = qdisc_teardown([HANDLE_ALL, HANDLE_ONE])
    else:
        chains = re.escape(scope.chain)
        qdiscs = qdisc_teardown([scope.handle], [scope.interface] if scope.interface else None)
    return "rc=0\n" + chain_teardown("mangle", chains) + qdiscs + "exit $rc\n"


def partition_id(a: str, b: str) -> str:
    """The same short id for the pair whichever way round it is named."""
    first, second = sorted((a, b))
    return hashlib.sha256(f"{first}\0{second}".encode()).hexdigest()[:10]


def partition_commands(chain: str, peer_v4: Sequence[str], peer_v6: Sequence[str]) -> tuple[Command, ...]:
    """Drop everything to and from the peer's addresses, in a chain jumped to first from INPUT and OUTPUT.

    Outgoing packets go to the black-hole queue rather than DROP, so the node's connect() times out
    as across a real partition instead of failing at once with EPERM.
    """
    commands: list[Command] = []
    for ipt, addresses in (("iptables", peer_v4), ("ip6tables", peer_v6)):
        if not addresses:
            continue
        commands.append((ipt, "-w", "-N", chain))
        for address in addresses:
            commands.append((ipt, "-w", "-A", chain, "-s", address, "-j", "DROP"))
            commands.append((ipt, "-w", "-A", chain, "-d", address, *BLACKHOLE))
        commands.append((ipt, "-w", "-I", "INPUT", "1", "-j", chain))
        commands.append((ipt, "-w", "-I", "OUTPUT", "1", "-j", chain))
    return tuple(commands)


def partition_teardown(chain: str) -> str:
    """Shell that removes one partition's chain and its jumps."""
    return "rc=0\n" + chain_teardown("filter", re.escape(chain)) + "exit $rc\n"


# --------------------------------------------------------------------------- Docker plumbing


@contextlib.contextmanager
def engine() -> Iterator[DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise ImpairError(f"no Docker engine answers ({exc}); start one (scripts/setup)") from exc
    try:
        yield client
    finally:
        client.close()


def _container(client: DockerClient, name: str) -> Container:
    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        raise ImpairError(f"no container {name} (is the lab up?)") from None


def running_container(client: DockerClient, name: str) -> Container:
    container = _container(client, name)
    if container.status != "running":
        raise ImpairError(f"container {name} is {container.status}, not running (start the lab first)")
    return container


def _sidecars(client: DockerClient, labels: dict[str, str]) -> list[Container]:
    """Our sidecars (running or not) carrying every ``label: value`` given."""
    wanted = [f"{key}={value}" for key, value in labels.items()]
    return list(client.containers.list(all=True, filters={"label": wanted}))


def start_sidecar(
    client: DockerClient,
    *,
    project: str,
    role: str,
    command: Sequence[str],
    network_mode: str,
    caps: Sequence[str] = ("NET_ADMIN",),
    name: str | None = None,
    labels: dict[str, str] | None = None,
) -> Container:
    """Start a sidecar from the node image; root inside, but with only ``caps``."""
    if name is not None:
        # A sidecar of ours with this name is a leftover (its node was restarted, say): replace it.
        for stale in client.containers.list(
            all=True, filters={"name": f"^/{re.escape(name)}$", "label": SIDECAR_LABEL}
        ):
            stale.remove(force=True)
    try:
        container: Container = client.containers.run(
            IMAGE,
            list(command),
            detach=True,
            name=name,
            network_mode=network_mode,
            user="0",
            cap_drop=["ALL"],
            cap_add=list(caps),
            security_opt=["no-new-privileges:true"],
            init=True,  # a signal reaches our command (PID 1 would ignore SIGTERM)
            mem_limit="96m",
            pids_limit=64,
            labels={LAB_LABEL: project, SIDECAR_LABEL: role, **(labels or {})},
        )
    except docker.errors.ImageNotFound:
        raise ImpairError(f"image {IMAGE} is missing; build it with scripts/setup") from None
    except docker.errors.APIError as exc:
        raise ImpairError(f"cannot start the {role} sidecar: {exc.explanation or exc}") from exc
    return container


def _run_in(container: Container, argv: Sequence[str], *, user: str = "0") -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``argv`` run inside ``container``."""
    result = container.exec_run(list(argv), user=user, demux=True)
    output: Any = result.output  # with demux, a (stdout, stderr) pair; the stubs do not know
    out, err = output if isinstance(output, tuple) else (output, b"")
    code = -1 if result.exit_code is None else int(result.exit_code)
    return code, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")


def _exec(container: Container, argv: Sequence[str]) -> str:
    """Run ``argv`` in a sidecar as root; its stdout, or ImpairError with its stderr."""
    code, out, err = _run_in(container, argv)
    if code != 0:
        shown = "its script" if list(argv[:2]) == ["sh", "-c"] else shlex.join(argv)
        raise ImpairError(f"{container.name}: {shown} exited {code}: {(err or out).strip()}")
    return out


def container_logs(container: Container) -> str:
    with contextlib.suppress(docker.errors.APIError):
        return bytes(container.logs()).decode(errors="replace").strip()
    return ""


def _one_shot(
    client: DockerClient, *, project: str, network_mode: str, command: Sequence[str], role: str
) -> tuple[int, str]:
    """Run a short command in a throwaway sidecar; (exit code, output)."""
    container = start_sidecar(client, project=project, role=role, command=command, network_mode=network_mode)
    try:
        status = container.wait(timeout=60)
        return int(status.get("StatusCode", -1)), container_logs(container)
    finally:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)


def _sweep(client: DockerClient, *, project: str, container: Container, teardown: str) -> None:
    """Run a teardown script in the node's namespace from a throwaway sidecar (no sidecar of ours is left)."""
    code, output = _one_shot(
        client, project=project, role="sweep", network_mode=f"container:{container.id}", command=["sh", "-c", teardown]
    )
    if code != 0:
        raise ImpairError(f"cleaning up {container.name} failed ({code}): {output}")


def _wait_for_log(container: Container, marker: str, *, timeout: float = READY_TIMEOUT) -> None:
    """Wait until ``marker`` shows in the sidecar's output; fail with its logs if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker in container_logs(container):
            return
        container.reload()
        if container.status != "running":
            break
        time.sleep(0.05)  # between looks at the log, not in place of one
    raise ImpairError(
        f"{container.name} did not report {marker.strip()!r} ({container.status}): {container_logs(container)}"
    )


def _remove(container: Container, teardown: str | None) -> bool:
    """Undo a sidecar's work (if it still runs) and remove it; True if the teardown ran and succeeded."""
    cleaned = False
    try:
        container.reload()
        if teardown is not None and container.status == "running":
            with contextlib.suppress(ImpairError, docker.errors.APIError):
                _exec(container, ["sh", "-c", teardown])
                cleaned = True
            # SIGTERM: the delay line accepts what it holds and unbinds its queue.
            container.stop(timeout=5)
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    return cleaned


_NETEM: dict[str, bool] = {}


def netem_available(client: DockerClient, *, project: str = "probe") -> bool:
    """Whether ``sch_netem`` works on the engine's kernel (probed once per engine and process)."""
    key = str(client.api.base_url)
    if key not in _NETEM:
        # In a namespace of its own (--network none), so the probe's qdisc dies with it.
        code, _output = _one_shot(
            client,
            project=project,
            role="probe",
            network_mode="none",
            command=["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
        )
        _NETEM[key] = code == 0
    return _NETEM[key]


# --------------------------------------------------------------------------- impairments


def node_links(container: Container) -> list[Link]:
    """The node's interfaces, listed from inside it (no capability needed to read them)."""
    code, out, err = _run_in(container, ["ip", "-o", "link", "show"], user="node")
    if code != 0:
        raise ImpairError(f"{container.name}: cannot list its interfaces: {(err or out).strip()}")
    return parse_links(out)


def resolve_scope(node: NodeRef, container: Container, links: Sequence[Link]) -> Scope:
    """Resolve ``node.interface``: an interface name, or a network the node is on (topology or Docker name)."""
    wanted = node.interface
    if wanted is None:
        return Scope()
    by_name = {link.name: link for link in links}
    if wanted in by_name:
        return Scope(wanted, by_name[wanted].index)
    networks = container.attrs["NetworkSettings"]["Networks"] or {}
    for name in (wanted, f"{node.project}_{wanted}"):
        mac = str((networks.get(name) or {}).get("MacAddress") or "").lower()
        match = next((link for link in links if mac and link.mac == mac), None)
        if match is not None:
            return Scope(match.name, match.index)
    choices = sorted({link.name for link in links if link.name != "lo"} | set(networks))
    raise ImpairError(f"{node.container} has no interface or network {wanted!r} (it has: {', '.join(choices)})")


def apply(node: NodeRef, spec: Impairment, *, backend: Backend | None = None) -> str:
    """Impair the egress of ``node`` (every interface but ``lo``, or ``node.interface``); replace what was there.

    Returns the backend used, ``"netem"`` or ``"nfqueue"`` (``backend`` forces one, for tests).
    """
    check_impairment(spec)
    with engine() as client:
        container = running_container(client, node.container)
        links = node_links(container)
        scope = resolve_scope(node, container, links)
        chosen: Backend = backend or ("netem" if netem_available(client, project=node.project) else "nfqueue")
        _clear(client, node, container, scope, sweep=is_empty(spec))
        if is_empty(spec):
            return chosen
        delayline = delayline_command(spec, scope) if chosen == "nfqueue" else None
        suffix = "" if scope.interface is None else f"-{scope.interface}"
        sidecar = start_sidecar(
            client,
            project=node.project,
            role="impair",
            command=delayline or SLEEPER,
            network_mode=f"container:{container.id}",
            # NET_RAW: the delay line sends copies of the node's packets again from a raw socket.
            caps=("NET_ADMIN", "NET_RAW") if delayline else ("NET_ADMIN",),
            name=f"{node.container}-impair{suffix}",
            labels={
                IMPAIR_LABEL: node.container,
                SCOPE_LABEL: scope.label,
                "testbed.impair.spec": spec.describe(),
                "testbed.impair.backend": chosen,
            },
        )
        try:
            # Leftovers of a sidecar removed behind our back would make the setup fail half-way.
            _exec(sidecar, ["sh", "-c", impair_teardown(scope)])
            families = ["iptables"]
            with contextlib.suppress(ImpairError):  # no IPv6 netfilter in this kernel: IPv4 alone
                _exec(sidecar, ["ip6tables", "-w", "-t", "mangle", "-S"])
                families.append("ip6tables")
            plan = plan_impairment(spec, scope, links, backend=chosen, families=families)
            if delayline:
                _wait_for_log(sidecar, " ready ")  # bound to its queue before any rule sends packets there
            _exec(sidecar, ["sh", "-c", script(plan.commands)])
        except BaseException:
            _remove(sidecar, impair_teardown(scope))
            raise
        return chosen


def _clear(
    client: DockerClient, node: NodeRef, container: Container | None, scope: Scope | None, *, sweep: bool = True
) -> None:
    """Remove the impairment sidecars of ``node`` (one scope, or all) and undo their rules and qdiscs.

    With ``sweep``, a teardown also runs from a throwaway sidecar when no sidecar of ours could do it
    (none was left, or one had died), since its rules and qdiscs outlive it.
    """
    labels = {IMPAIR_LABEL: node.container}
    if scope is not None:
        labels[SCOPE_LABEL] = scope.label
    sidecars = _sidecars(client, labels)
    cleaned = True
    for sidecar in sidecars:
        label = sidecar.labels.get(SCOPE_LABEL, "*")
        own = scope or (Scope() if label == "*" else Scope(label))
        cleaned = _remove(sidecar, impair_teardown(own)) and cleaned
    if sweep and (not sidecars or not cleaned) and container is not None and container.status == "running":
        _sweep(client, project=node.project, container=container, teardown=impair_teardown(scope))


def clear(node: NodeRef) -> None:
    """Remove everything ``apply`` added to ``node`` (only ``node.interface``'s when it names one)."""
    with engine() as client:
        try:
            container: Container | None = client.containers.get(node.container)
        except docker.errors.NotFound:
            container = None  # gone with its namespace; only the sidecars may be left
        scope = None
        if container is not None and container.status == "running" and node.interface is not None:
            scope = resolve_scope(node, container, node_links(container))
        _clear(client, node, container, scope)


# --------------------------------------------------------------------------- partitions


def _addresses(container: Container) -> tuple[list[str], list[str]]:
    """Every IPv4 and IPv6 address the container has on its networks."""
    v4: list[str] = []
    v6: list[str] = []
    for endpoint in (container.attrs["NetworkSettings"]["Networks"] or {}).values():
        if endpoint.get("IPAddress"):
            v4.append(endpoint["IPAddress"])
        if endpoint.get("GlobalIPv6Address"):
            v6.append(endpoint["GlobalIPv6Address"])
    return sorted(set(v4)), sorted(set(v6))


def partition(a: NodeRef, b: NodeRef) -> None:
    """Drop all traffic between ``a`` and ``b``, both ways, until ``heal``; partitioning twice is harmless.

    Each side gets a sidecar whose iptables chain drops packets to and from every address the other
    has now (an address the peer gets later, after a reconnect, is not covered).
    """
    if a.container == b.container:
        raise ValueError(f"cannot partition {a.node} from itself")
    if a.project != b.project:
        raise ValueError(f"{a.node} and {b.node} are in different labs ({a.project}, {b.project})")
    pid = partition_id(a.container, b.container)
    chain = f"{CHAIN_PARTITION}{pid}"
    with engine() as client:
        ends = [running_container(client, a.container), running_container(client, b.container)]
        existing = [s for s in _sidecars(client, {PARTITION_LABEL: pid}) if s.status == "running"]
        if len(existing) == 2:
            return
        _heal_one(client, pid)
        started: list[Container] = []
        try:
            for me, peer, ref in ((ends[0], ends[1], a), (ends[1], ends[0], b)):
                v4, v6 = _addresses(peer)
                if not v4 and not v6:
                    raise ImpairError(f"{peer.name} has no address to partition from")
                sidecar = start_sidecar(
                    client,
                    project=ref.project,
                    role="partition",
                    command=SLEEPER,
                    network_mode=f"container:{me.id}",
                    name=f"{me.name}-partition-{pid}",
                    labels={PARTITION_LABEL: pid, PEER_LABEL: str(peer.name), "testbed.partition.node": str(me.name)},
                )
                started.append(sidecar)
                _exec(sidecar, ["sh", "-c", partition_teardown(chain)])  # leftovers of a lost sidecar
                _exec(sidecar, ["sh", "-c", script(partition_commands(chain, v4, v6))])
        except BaseException:
            for sidecar in started:
                _remove(sidecar, partition_teardown(chain))
            raise


def _heal_one(client: DockerClient, pid: str) -> bool:
    """Remove one partition (both sides); True if anything of it was there."""
    sidecars = _sidecars(client, {PARTITION_LABEL: pid})
    chain = f"{CHAIN_PARTITION}{pid}"
    for sidecar in sidecars:
        if not _remove(sidecar, partition_teardown(chain)):
            node_name = sidecar.labels.get("testbed.partition.node", "")
            with contextlib.suppress(docker.errors.NotFound):
                node = client.containers.get(node_name)
                if node.status == "running":
                    _sweep(
                        client,
                        project=sidecar.labels.get(LAB_LABEL, ""),
                        container=node,
                        teardown=partition_teardown(chain),
                    )
    return bool(sidecars)


def heal(project: str) -> int:
    """Undo every partition of ``project`` and reconnect what ``disconnect`` cut off; how many it undid."""
    with engine() as client:
        healed = 0
        sidecars = _sidecars(client, {LAB_LABEL: project, SIDECAR_LABEL: "partition"})
        ids = {s.labels.get(PARTITION_LABEL, "") for s in sidecars}
        for pid in sorted(ids - {""}):
            healed += _heal_one(client, pid)
        for marker in _sidecars(client, {LAB_LABEL: project, SIDECAR_LABEL: "disconnect"}):
            _reconnect_marker(client, marker)
            healed += 1
        return healed


def partitions(project: str) -> list[tuple[str, str]]:
    """The partitions of ``project`` in force, as pairs of container names."""
    with engine() as client:
        pairs = {
            tuple(sorted((s.labels.get("testbed.partition.node", ""), s.labels.get(PEER_LABEL, ""))))
            for s in _sidecars(client, {LAB_LABEL: project, SIDECAR_LABEL: "partition"})
        }
        return sorted((p[0], p[1]) for p in pairs)


# --------------------------------------------------------------------------- networks


def _network(client: DockerClient, network: NetworkRef | str) -> Network:
    name = network if isinstance(network, str) else network.docker_name
    try:
        return client.networks.get(name)
    except docker.errors.NotFound:
        raise ImpairError(f"no network {name} (is the lab up?)") from None


def disconnect(node: NodeRef, network: NetworkRef | str) -> None:
    """Detach ``node`` from ``network`` through the Docker API (a ``str`` is Docker's name for it).

    How it was attached (its aliases, a static address) is kept on a created-but-never-started marker
    container labelled for the lab, so ``reconnect`` (or ``heal``) restores it exactly, from any process.
    """
    with engine() as client:
        container = _container(client, node.container)
        net = _network(client, network)
        markers = _sidecars(client, {DISCONNECTED_LABEL: node.container, NETWORK_LABEL: str(net.name)})
        endpoint = (container.attrs["NetworkSettings"]["Networks"] or {}).get(net.name)
        if endpoint is None:
            if markers:
                return  # already disconnected by us
            raise ImpairError(f"{node.container} is not attached to {net.name}")
        for marker in markers:  # stale: reconnected behind our back
            marker.remove(force=True)
        short_id = str(container.id)[:12]
        aliases = [a for a in endpoint.get("Aliases") or [] if a != short_id and not str(container.id).startswith(a)]
        ipam = endpoint.get("IPAMConfig") or {}
        try:
            marker = client.containers.create(
                IMAGE,
                ["true"],
                name=f"{node.container}-disconnected-{str(net.id)[:12]}",
                network_mode="none",
                labels={
                    LAB_LABEL: node.project,
                    SIDECAR_LABEL: "disconnect",
                    DISCONNECTED_LABEL: node.container,
                    NETWORK_LABEL: str(net.name),
                    ALIASES_LABEL: ",".join(aliases),
                    IPV4_LABEL: str(ipam.get("IPv4Address") or ""),
                },
            )
        except docker.errors.APIError as exc:
            raise ImpairError(f"cannot record how {node.container} was attached: {exc.explanation or exc}") from exc
        try:
            net.disconnect(container)
        except docker.errors.APIError as exc:
            marker.remove(force=True)
            raise ImpairError(f"cannot disconnect {node.container} from {net.name}: {exc.explanation or exc}") from exc


def reconnect(node: NodeRef, network: NetworkRef | str) -> None:
    """Attach ``node`` to ``network`` again, with the aliases and address it had; harmless if attached."""
    with engine() as client:
        container = _container(client, node.container)
        net = _network(client, network)
        markers = _sidecars(client, {DISCONNECTED_LABEL: node.container, NETWORK_LABEL: str(net.name)})
        if markers:
            _reconnect_marker(client, markers[0])
            for extra in markers[1:]:
                extra.remove(force=True)
            return
        if net.name in (container.attrs["NetworkSettings"]["Networks"] or {}):
            return
        try:
            net.connect(container, aliases=[node.node])
        except docker.errors.APIError as exc:
            raise ImpairError(f"cannot connect {node.container} to {net.name}: {exc.explanation or exc}") from exc


def _reconnect_marker(client: DockerClient, marker: Container) -> None:
    labels = marker.labels
    try:
        container = client.containers.get(labels[DISCONNECTED_LABEL])
        net = client.networks.get(labels[NETWORK_LABEL])
    except docker.errors.NotFound:
        marker.remove(force=True)  # the node or the network is gone: nothing to reconnect
        return
    container.reload()
    if net.name not in (container.attrs["NetworkSettings"]["Networks"] or {}):
        aliases = [a for a in labels.get(ALIASES_LABEL, "").split(",") if a]
        try:
            net.connect(container, aliases=aliases or None, ipv4_address=labels.get(IPV4_LABEL) or None)
        except docker.errors.APIError as exc:
            raise ImpairError(f"cannot reconnect {container.name} to {net.name}: {exc.explanation or exc}") from exc
    marker.remove(force=True)


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class Active:
    """One runtime change in force: what (role), on which container, and its details."""

    role: str
    container: str
    detail: str


def active(project: str) -> list[Active]:
    """Impairments, partitions and disconnections in force in ``project`` (for ``lab status``)."""
    with engine() as client:
        found = []
        for sidecar in _sidecars(client, {LAB_LABEL: project}):
            labels = sidecar.labels
            role = labels.get(SIDECAR_LABEL, "")
            if role == "impair":
                scope = labels.get(SCOPE_LABEL, "*")
                where = "" if scope == "*" else f" on {scope}"
                detail = f"{labels.get('testbed.impair.spec', '')}{where} ({labels.get('testbed.impair.backend', '')})"
                found.append(Active(role, labels.get(IMPAIR_LABEL, ""), detail))
            elif role == "partition":
                found.append(
                    Active(role, labels.get("testbed.partition.node", ""), f"from {labels.get(PEER_LABEL, '')}")
                )
            elif role == "disconnect":
                found.append(Active(role, labels.get(DISCONNECTED_LABEL, ""), f"from {labels.get(NETWORK_LABEL, '')}"))
        return sorted(found, key=lambda a: (a.container, a.role, a.detail))
