"""What a creosote attack is judged on: a well-behaved sender beside it, and the server's state before and after.

Not the attack's own success: whether the server was restarted or OOM-killed, how much memory it took at
its peak and holds now, how much it logged, whether its host port still answers, and which of the
well-behaved sender's records are in its records files (all of them, or each one missing accounted for by
the kernel's receive queue).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from clients.common import ClientError
from clients.spew import ping
from common.waiting import wait_until
from lab.engine import Ran
from lab.topology_fixture import TopologyLab

MIB = 2**20
RECORDS_DIR = "/var/log/creosote"
SERVICE_PORT = 7739

# Finds the server's own process, python3 with the argument services.creosote (not PID 1, docker-init, whose
# arguments follow its own name), and prints its peak and current resident memory.
_PEAK_RSS = """
import os, pathlib
for proc in pathlib.Path("/proc").iterdir():
    if proc.name.isdigit() and int(proc.name) != os.getpid():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\\0")
            if argv[0].endswith(b"python3") and b"services.creosote" in argv:
                fields = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines())
                print(int(fields["VmHWM"].split()[0]) * 1024, int(fields["VmRSS"].split()[0]) * 1024)
        except OSError:
            pass
"""


def udp_counters(lab: TopologyLab, node: str) -> dict[str, int]:
    """The ``Udp:`` counters of the node's network namespace (``RcvbufErrors``: datagrams its queue dropped)."""
    ran = lab.exec(node, "cat", "/proc/net/snmp")
    assert ran.code == 0, ran.output
    names, values = [line.split()[1:] for line in ran.out.splitlines() if line.startswith("Udp:")][:2]
    return dict(zip(names, map(int, values), strict=True))


def peak_rss(lab: TopologyLab, node: str) -> tuple[int, int]:
    """The server process's peak resident memory since it started (VmHWM) and its resident memory now, in bytes."""
    ran = lab.exec(node, "python3", "-c", _PEAK_RSS)
    assert ran.code == 0 and len(ran.out.split()) == 2, ran.output
    peak, now = map(int, ran.out.split())
    return peak, now


def stats_memory(lab: TopologyLab, node: str) -> tuple[int, int]:
    """Memory used and the limit as ``docker stats`` shows them: the cgroup's usage less its inactive file cache."""
    stats_now: dict[str, Any] = lab.node(node).container.stats(stream=False)  # type: ignore[assignment]
    memory = stats_now["memory_stats"]
    stats = memory.get("stats", {})
    cache = stats.get("inactive_file", stats.get("total_inactive_file", 0))
    return int(memory["usage"]) - int(cache), int(memory["limit"])


def pong(port: int) -> int | None:
    """The records count a creosote answers on 127.0.0.1:``port``, or None while it does not answer."""
    try:
        return ping("127.0.0.1", port, timeout=1.0)
    except ClientError:
        return None


@dataclass(frozen=True)
class Before:
    """The server's state before an attack."""

    node: str
    restarts: int
    started_at: str
    since: int  # epoch seconds: its Docker log from here on is what the attack made it write
    udp: dict[str, int]  # udp_counters


def before(lab: TopologyLab, node: str = "creosote") -> Before:
    attrs = lab.node(node).container.attrs
    since = int(time.time())  # Docker's `since` is whole seconds: the log measured may start up to 1 s early
    return Before(node, attrs["RestartCount"], attrs["State"]["StartedAt"], since, udp_counters(lab, node))


@dataclass(frozen=True)
class After:
    """What the server showed once the attack was over (all of it checked by ``judge``)."""

    log: bytes
    peak_rss: int
    rss: int
    memory: int
    limit: int
    received: int  # datagrams the node's sockets received during the attack (InDatagrams)
    rcvbuf_errors: int  # ... and those the kernel dropped, their queue full (RcvbufErrors)

    @property
    def dropped_share(self) -> float:
        """Of the datagrams that reached the node, the share its receive queue dropped."""
        return self.rcvbuf_errors / max(1, self.received + self.rcvbuf_errors)

    def summary(self) -> str:
        return (f"log +{len(self.log):,} B, peak RSS {self.peak_rss / MIB:.1f} MiB (now {self.rss / MIB:.1f}), "
                f"memory {self.memory / MIB:.1f} of {self.limit / MIB:.0f} MiB, {self.received:,} datagrams "
                f"received, {self.rcvbuf_errors:,} dropped by the kernel's queue")  # fmt: skip


def judge(lab: TopologyLab, was: Before, *, log_bound: int) -> After:
    """Assert the server held: the same process (no restart, no OOM kill), memory under its limit at its peak and
    now, at most ``log_bound`` bytes of Docker log since ``was``, and its host port answering."""
    node = was.node
    attrs = lab.node(node).container.attrs
    state = (attrs["RestartCount"], attrs["State"]["OOMKilled"], attrs["State"]["StartedAt"])
    assert state == (was.restarts, False, was.started_at), f"{node} was restarted or killed: {state}"
    peak, rss = peak_rss(lab, node)
    memory, limit = stats_memory(lab, node)
    log = lab.node(node).container.logs(since=was.since)
    udp = {key: value - was.udp[key] for key, value in udp_counters(lab, node).items()}
    after = After(log, peak, rss, memory, limit, udp["InDatagrams"], udp["RcvbufErrors"])
    print(f"{node}: {after.summary()}")  # shown with -s: the figures the comments cite
    assert peak < limit and memory < limit, after.summary()
    assert len(log) <= log_bound, f"{len(log):,} bytes of log (bound {log_bound:,}); its tail:\n{log[-1500:]!r}"
    port = lab.host_port(node, SERVICE_PORT, "udp")
    wait_until(lambda: pong(port) is not None, timeout=10, what=f"{node}'s host port to answer")
    return after


def assert_arrived(arrived: set[int], sent: int, after: After) -> None:
    """Every record a well-behaved sender sent arrived, or each one missing is matched by a datagram the kernel's
    full receive queue dropped during the attack (a bound, not proof: the kernel does not say whose it dropped)."""
    missing = sent - len(arrived)
    assert arrived <= set(range(sent)), f"records never sent: {sorted(arrived - set(range(sent)))[:10]}"
    assert missing <= after.rcvbuf_errors, f"{missing} of {sent} missing; {after.rcvbuf_errors} dropped by the kernel"


def during(attack: Callable[[], Ran], *senders: WellBehaved) -> Ran:
    """Run ``attack`` (a blocking ``run_on``) in a thread while ``senders`` send; what the attack printed."""
    with ThreadPoolExecutor(1) as pool:
        future: Future[Ran] = pool.submit(attack)
        with ExitStack() as stack:
            for sender in senders:
                stack.enter_context(sender)
            ran = future.result()  # the senders send until the attack is over
    assert ran.code == 0, ran.output
    print(f"attack: {ran.out.strip()}")
    return ran


class WellBehaved:
    """A sender of numbered syslog records at a steady rate to 127.0.0.1:``port``, in a thread, while in its block.

    On leaving the block it sends one more record, ``<tag> end``, once the attack is over: ``arrived`` waits for
    it, so the server has drained its queue before the records are counted.
    """

    def __init__(self, port: int, tag: str, *, per_second: float = 100) -> None:
        self.port, self.tag, self.interval = port, tag, 1 / per_second
        self.sent = 0
        self._stop = threading.Event()  # set when the block ends: the attack is over
        self._thread = threading.Thread(target=self._run, name=f"well-behaved {tag}", daemon=True)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def __enter__(self) -> WellBehaved:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.sendto(f"<14>{self.tag} end".encode(), ("127.0.0.1", self.port))
        self._sock.close()

    def _run(self) -> None:
        began = time.monotonic()
        while not self._stop.wait(max(0.0, began + self.sent * self.interval - time.monotonic())):  # pacing
            self._sock.sendto(f"<14>{self.tag} {self.sent}".encode(), ("127.0.0.1", self.port))
            self.sent += 1

    def arrived(self, lab: TopologyLab, node: str = "creosote") -> set[int]:
        """The numbers of this sender's records in the node's records files (rotated ones too)."""
        wait_until(lambda: "end" in self._found(lab, node), timeout=15, what=f"{self.tag}'s last record")
        return {int(n) for n in self._found(lab, node) if n != "end"}

    def _found(self, lab: TopologyLab, node: str) -> list[str]:
        ran = lab.exec(node, "sh", "-c", f"cat {RECORDS_DIR}/records.jsonl* | grep -F -e '<14>{self.tag} ' || true")
        assert ran.code == 0, ran.output
        texts: list[Any] = [json.loads(line).get("text", "") for line in ran.out.splitlines() if line.strip()]
        return [text.rsplit(" ", 1)[1] for text in texts]
