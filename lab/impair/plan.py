"""What to run in a node's namespace, as argv lists: pure, no Docker, no shell.

An impairment is a ``Plan`` of commands (iptables rules into our own mangle chain,
tc qdiscs with our own handles, and the delay line to start); a partition is a
filter chain. Undoing either starts from what the namespace holds now: the
listing of ``iptables -S`` and ``tc qdisc show`` is parsed here into the exact
``-D``/``-F``/``-X``/``tc qdisc del`` commands that remove what we added and
nothing else (``TESTBED-*`` chains, root qdiscs with handles ``7e57:``/``7e58:``).
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from common.units import plain_number
from lab.model import Impairment

Backend = Literal["netem", "nfqueue"]
Command = tuple[str, ...]
FAMILIES = ("iptables", "ip6tables")

QUEUE_BASE = 7357  # NFQUEUE numbers are per namespace; + ifindex for one-interface scopes
# A queue nobody binds. "-j DROP" on a node's own output makes its send() fail with EPERM, which
# no real network does (an app would crash where it should time out); a packet sent to an unbound
# queue without --queue-bypass is freed silently instead, and the sender sees success.
BLACKHOLE_QUEUE = 65535
BLACKHOLE: Command = ("-j", "NFQUEUE", "--queue-num", str(BLACKHOLE_QUEUE))
RESENT_MARK = "0x7e57"  # tools.delayline marks the copies it sends again; our chains let them pass
HANDLE_ALL = "7e57:"
HANDLE_ONE = "7e58:"
CHAIN_IMPAIR = "TESTBED-IMP"
CHAIN_PARTITION = "TESTBED-P-"
NETEM_LIMIT = 10000  # packets; netem's default of 1000 overflows at high rate x delay
TBF_LATENCY_MS = 100  # how long a packet may wait in tbf before it is dropped (its queue size)


# --------------------------------------------------------------------------- interfaces and scopes


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


# --------------------------------------------------------------------------- impairments


@dataclass(frozen=True)
class Plan:
    """The commands that realise an impairment in a namespace, and the delay line to run (if any)."""

    commands: tuple[Command, ...]
    delayline: Command | None = None


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
        args += ["loss", f"{plain_number(spec.loss_pct)}%"]
    if spec.rate_kbit is not None:
        args += ["rate", f"{plain_number(spec.rate_kbit)}kbit"]
    return args


def tbf_args(rate_kbit: float) -> list[str]:
    """``tbf`` parameters: the rate alone, as netem's ``rate`` would shape it."""
    burst = str(tbf_burst_bytes(rate_kbit))
    return ["tbf", "rate", f"{plain_number(rate_kbit)}kbit", "burst", burst, "latency", f"{TBF_LATENCY_MS}ms"]


def delayline_command(spec: Impairment, scope: Scope) -> Command | None:
    """The delay line for ``spec``, or None when there is nothing to delay."""
    if not (spec.delay_ms or spec.jitter_ms):
        return None
    return (
        "python3", "-m", "tools.delayline",
        "--queue", str(scope.queue),
        "--delay-ms", plain_number(spec.delay_ms),
        "--jitter-ms", plain_number(spec.jitter_ms),
        "--mark", RESENT_MARK,
    )  # fmt: skip


def plan_impairment(
    spec: Impairment,
    scope: Scope,
    links: Sequence[Link],
    *,
    backend: Backend,
    families: Sequence[str] = FAMILIES,
) -> Plan:
    """What to run in the node's namespace so that its egress (in ``scope``) gets ``spec``."""
    devices = scope.devices(links)
    if spec.empty or not devices:
        return Plan(())
    if backend == "netem":
        root = ("root", "handle", scope.handle)
        return Plan(tuple(("tc", "qdisc", "add", "dev", dev, *root, *netem_args(spec)) for dev in devices))
    commands: list[Command] = []
    delayline = delayline_command(spec, scope)
    if spec.loss_pct or delayline:
        for ipt in families:
            commands += _impair_chain(ipt, spec, scope, delayed=delayline is not None)
    if spec.rate_kbit is not None:
        tbf = tbf_args(spec.rate_kbit)
        commands += [("tc", "qdisc", "add", "dev", dev, "root", "handle", scope.handle, *tbf) for dev in devices]
    return Plan(tuple(commands), delayline)


def _impair_chain(ipt: str, spec: Impairment, scope: Scope, *, delayed: bool) -> list[Command]:
    table = (ipt, "-w", "-t", "mangle")
    rules: list[Command] = [(*table, "-N", scope.chain)]
    if scope.interface is None:
        rules.append((*table, "-A", scope.chain, "-o", "lo", "-j", "RETURN"))
    if delayed:
        # The delay line's own copies, sent again when due: they have had their delay (and loss).
        rules.append((*table, "-A", scope.chain, "-m", "mark", "--mark", RESENT_MARK, "-j", "RETURN"))
    if spec.loss_pct:
        # Before the delay: a lost packet must not wait out its delay first.
        probability = plain_number(spec.loss_pct / 100)
        statistic = ("-m", "statistic", "--mode", "random", "--probability", probability)
        rules.append((*table, "-A", scope.chain, *statistic, *BLACKHOLE))
    if delayed:
        # --queue-bypass: if the delay line dies, packets flow undelayed instead of being dropped.
        queue = ("-j", "NFQUEUE", "--queue-num", str(scope.queue), "--queue-bypass")
        rules.append((*table, "-A", scope.chain, *queue))
    where = () if scope.interface is None else ("-o", scope.interface)
    rules.append((*table, "-A", "POSTROUTING", *where, "-j", scope.chain))
    return rules


# --------------------------------------------------------------------------- partitions


def partition_id(a: str, b: str) -> str:
    """The same short id for the pair whichever way round it is named."""
    first, second = sorted((a, b))
    return hashlib.sha256(f"{first}\0{second}".encode()).hexdigest()[:10]


def partition_chain(pid: str) -> str:
    return f"{CHAIN_PARTITION}{pid}"


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


# --------------------------------------------------------------------------- what is there, and undoing it


TABLES = ("mangle", "filter")


def listing_commands() -> tuple[Command, ...]:
    """What to list in a namespace before undoing anything: both families' tables, and the qdiscs."""
    rules = tuple((ipt, "-w", "-t", table, "-S") for ipt in FAMILIES for table in TABLES)
    return (*rules, ("tc", "qdisc", "show"))


@dataclass(frozen=True)
class Listed:
    """A namespace's rules and qdiscs as listed; a family whose listing failed (no IPv6 netfilter) is absent."""

    rules: Mapping[tuple[str, str], str]  # (family, table) -> ``iptables -S`` output
    qdiscs: str

    @property
    def families(self) -> tuple[str, ...]:
        """The families this namespace has netfilter for."""
        return tuple(ipt for ipt in FAMILIES if (ipt, "mangle") in self.rules)


def parse_listing(results: Sequence[tuple[int, str]]) -> Listed:
    """``Listed`` from the (exit code, stdout) of each of ``listing_commands()``, in order."""
    commands = listing_commands()
    if len(results) != len(commands):
        raise ValueError(f"expected {len(commands)} listings, got {len(results)}")
    rules = {
        (argv[0], argv[3]): out for argv, (code, out) in zip(commands[:-1], results[:-1], strict=True) if code == 0
    }
    return Listed(rules, results[-1][1] if results[-1][0] == 0 else "")


def chain_teardown(listed: Listed, table: str, pattern: str) -> list[Command]:
    """Remove every chain of ``table`` whose name matches the regex ``pattern``, and every jump to it.

    A jump is removed by replaying its ``-A`` line as ``-D``: exactly the spec it was added with.
    """
    wanted = re.compile(f"^(?:{pattern})$")
    commands: list[Command] = []
    for (ipt, listed_table), text in sorted(listed.rules.items()):
        if listed_table != table:
            continue
        rules = [shlex.split(line) for line in text.splitlines() if line.strip()]
        chains = [rule[1] for rule in rules if len(rule) == 2 and rule[0] == "-N" and wanted.match(rule[1])]
        jumps = [rule for rule in rules if _jumps_to(rule, wanted) and rule[1] not in chains]
        base = (ipt, "-w", "-t", table)
        commands += [(*base, "-D", *rule[1:]) for rule in jumps]
        commands += [(*base, "-F", chain) for chain in chains]
        commands += [(*base, "-X", chain) for chain in chains]
    return commands


def _jumps_to(rule: Sequence[str], wanted: re.Pattern[str]) -> bool:
    return len(rule) >= 4 and rule[0] == "-A" and rule[-2] in ("-j", "-g") and bool(wanted.match(rule[-1]))


_QDISC = re.compile(r"^qdisc\s+\S+\s+([0-9a-f]+:)\s+dev\s+(\S+)\s+root\b")


def qdisc_teardown(listed: Listed, handles: Sequence[str], devices: Sequence[str] | None = None) -> list[Command]:
    """Delete the root qdiscs carrying one of our ``handles`` (on ``devices``, or on any interface)."""
    commands: list[Command] = []
    for line in listed.qdiscs.splitlines():
        match = _QDISC.match(line.strip())
        if match and match.group(1) in handles and (devices is None or match.group(2) in devices):
            commands.append(("tc", "qdisc", "del", "dev", match.group(2), "root"))
    return commands


def impair_teardown(listed: Listed, scope: Scope | None) -> list[Command]:
    """Undo ``plan_impairment`` for one scope, or for every scope (``None``); nothing when nothing is there."""
    if scope is None:
        chains = re.escape(CHAIN_IMPAIR) + "(?:-.+)?"
        return chain_teardown(listed, "mangle", chains) + qdisc_teardown(listed, (HANDLE_ALL, HANDLE_ONE))
    devices = [scope.interface] if scope.interface else None
    return chain_teardown(listed, "mangle", re.escape(scope.chain)) + qdisc_teardown(listed, (scope.handle,), devices)


def partition_teardown(listed: Listed, chain: str) -> list[Command]:
    """Undo ``partition_commands`` for one chain."""
    return chain_teardown(listed, "filter", re.escape(chain))
