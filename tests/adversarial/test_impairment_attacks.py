"""The adversarial tier, on an impairment: a UDP flood into a delayed echo server, beside a well-behaved client.

The delay line (``tools.delayline``, in a sidecar of 96 MiB) holds a copy of every packet echo sends until
it is due. A UDP flood into a long delay once held copies until the kernel OOM-killed the sidecar in about
5 s, and the delay was gone. It now holds at most 48 MiB (each copy charged its bytes and its overhead)
and drops the rest, counting them (``overflow``). The flood here comes from a node of the lab (only the
lab's own containers see it), as fast as one sender goes, into the longest delay allowed (10 s): the
held bytes are echo's answer rate times the delay. On this shared 2-CPU machine the flooder sent 15,000
to 40,000 datagrams a second and echo passed 3,000 to 13,000 a second into the delay line (2026-12-02);
filling the budget takes 2,900 a second at 10 s, and 140,000 at 200 ms, which would never test it.

Judged afterwards: the sidecar still runs, never restarted, its memory peak under its limit; the delay
still applies to the well-behaved client (each round trip at least the delay); ``lab ps``
shows no dead sidecar; and the delay line's own last line (it is stopped as ``--clear`` stops it) says
it ran with the documented budget, never held more, and dropped (and counted, and said so while it
lasted) only at the budget; each run prints whether the flood filled it. Marked ``adversarial`` (and
``docker``).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from docker.models.containers import Container

from common.waiting import wait_until
from lab import cli, engine, impair
from lab.impair.sidecar import SIDECAR_LABEL, STOP_TIMEOUT
from lab.model import LAB_LABEL, Impairment
from lab.topology_fixture import TopologyLab
from tools.delayline import HELD_OVERHEAD

pytestmark = [pytest.mark.docker, pytest.mark.adversarial, pytest.mark.timeout(300)]

TOPOLOGY = Path(__file__).parent / "topologies" / "impair-flood.yaml"
DELAY_S = 10.0
FLOOD_SECONDS = 10.0
DATAGRAM = 1472  # the most a datagram carries in one 1500-byte frame: the most bytes held per packet echoed
BUDGET = 48 << 20  # bytes the delay line may hold (docs/limits.md)

# Run inside the nodes with `python3 -c`: stdlib only, bounded, JSON out.
FLOOD = r"""
import json, socket, sys, time
host, seconds, size = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((host, 7))
payload = b"f" * size
sent = errors = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    for _ in range(1000):
        try:
            s.send(payload)
            sent += 1
        except OSError:  # a full buffer or an ICMP error met on a connected socket: keep flooding
            errors += 1
print(json.dumps({"sent": sent, "errors": errors, "per_second": sent / seconds}))
"""

# Numbered datagrams every `gap` seconds for `seconds`, then listen until `wait` after the last: round trips.
PINGS = r"""
import json, socket, sys, time
host, seconds, gap, wait = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((host, 7))
sent, rtts = {}, {}
start = time.monotonic()
while True:
    now = time.monotonic()
    sending = now < start + seconds
    if sending and now >= start + len(sent) * gap:
        sent[len(sent)] = now
        s.send(b"ping %06d" % (len(sent) - 1))
        continue
    last = max(sent.values())
    if not sending and (len(rtts) == len(sent) or now >= last + wait):
        break
    s.settimeout(max(0.001, (start + len(sent) * gap if sending else last + wait) - now))
    try:
        data = s.recv(64)
    except (TimeoutError, ConnectionRefusedError):
        continue
    if data.startswith(b"ping "):
        i = int(data[5:])
        rtts.setdefault(i, time.monotonic() - sent[i])
print(json.dumps({"sent": len(sent), "received": len(rtts), "rtts": sorted(rtts.values())}))
"""

# One TCP connection: how long the connect took, and one exchange on it.
TCP_EXCHANGE = r"""
import json, socket, sys, time
start = time.monotonic()
s = socket.create_connection((sys.argv[1], 7), timeout=float(sys.argv[2]))
connected = time.monotonic()
s.sendall(b"still delayed\n")
answer = b""
while not answer.endswith(b"\n"):
    chunk = s.recv(64)
    if not chunk:
        break
    answer += chunk
done = time.monotonic()
print(json.dumps({"connect": connected - start, "exchange": done - connected, "answer": answer.decode()}))
"""


@pytest.fixture
def flood_lab(topology: Callable[..., TopologyLab]) -> Iterator[TopologyLab]:
    """The module's lab, with 5 s of delay on echo through the delay line; cleared afterwards."""
    lab = topology(TOPOLOGY, scope="module")
    # Forced to the delay line: on a kernel with sch_netem, lab impair would choose netem, and there would
    # be no delay line to attack.
    assert impair.apply(lab.ref("echo"), Impairment(delay_ms=DELAY_S * 1000), backend="nfqueue") == "nfqueue"
    try:
        yield lab
    finally:
        lab.clear("echo")


def run_json(lab: TopologyLab, node: str, script: str, *args: object) -> Any:
    ran = lab.exec(node, "python3", "-c", script, *map(str, args))
    assert ran.exit_code == 0, f"{node}: exit {ran.exit_code}: {ran.output}"
    return json.loads(ran.out)


def the_sidecar(lab: TopologyLab) -> Container:
    found = engine.labelled({LAB_LABEL: lab.project, SIDECAR_LABEL: "impair"})
    assert len(found) == 1, [c.name for c in found]
    found[0].reload()
    return found[0]


def memory_now(container: Container) -> tuple[int, int]:
    """(usage, peak) in bytes; the peak is the engine's own (cgroup v1 ``max_usage``) where it keeps one."""
    raw = container.stats(stream=False, one_shot=True)
    assert isinstance(raw, dict), "stream=False gives one reading"
    stats = raw["memory_stats"]
    return int(stats.get("usage", 0)), int(stats.get("max_usage", 0))


OVERFLOW = re.compile(r" delayline overflow dropped=(\d+) total=(\d+) ")


def test_a_udp_flood_into_a_long_delay_fills_the_budget_not_the_sidecars_memory(
    flood_lab: TopologyLab, capsys: pytest.CaptureFixture[str]
) -> None:
    sidecar = the_sidecar(flood_lab)
    started_at, limit = sidecar.attrs["State"]["StartedAt"], int(sidecar.attrs["HostConfig"]["Memory"])
    assert limit > 0, "the sidecar must have a memory limit for this test to mean anything"

    # Beside the flood: the sidecar's memory sampled (where the engine keeps no peak), and a client
    # pinging echo twice a second, as a well-behaved one would.
    flooding = threading.Event()
    samples: list[int] = []

    def sample() -> None:
        while not flooding.is_set():
            usage, peak = memory_now(sidecar)
            samples.append(max(usage, peak))

    def answered() -> dict[str, Any] | None:
        got: dict[str, Any] = run_json(flood_lab, "client", PINGS, "echo", 1.0, 0.2, DELAY_S + 2)
        return got if got["received"] == got["sent"] else None

    with ThreadPoolExecutor(max_workers=3) as pool:  # leaving it waits for every thread, a failure's too
        sampling = pool.submit(sample)
        pinging = pool.submit(run_json, flood_lab, "client", PINGS, "echo", FLOOD_SECONDS, 0.5, DELAY_S + 3)
        try:
            flood = run_json(flood_lab, "flooder", FLOOD, "echo", FLOOD_SECONDS, DATAGRAM)
        finally:
            flooding.set()
        sampling.result()
        # Once the flood is over, a TCP connection and an exchange, each through the delay: beside the
        # pings below, as each of them waits out the delay too.
        exchanging = pool.submit(run_json, flood_lab, "client", TCP_EXCHANGE, "echo", DELAY_S * 4)

        # The sidecar survived: the same container, running, never restarted nor OOM-killed.
        after = the_sidecar(flood_lab)
        state = after.attrs["State"]
        survived = (after.id, state["Status"], state["OOMKilled"], after.attrs["RestartCount"], state["StartedAt"])
        assert survived == (sidecar.id, "running", False, 0, started_at), f"{survived}: {engine.logs(after)[-2000:]}"
        peak = max([*samples, *memory_now(after)])
        assert peak < limit, f"memory peaked at {peak / 2**20:.1f} MiB of {limit / 2**20:.0f} MiB"

        # The delay still applies to the well-behaved client, once what the flood left has gone out.
        pings = wait_until(answered, timeout=60, interval=0, what="echo's answers to come back after the flood")
        tcp, seen = exchanging.result(), pinging.result()
    assert min(pings["rtts"]) >= DELAY_S, pings
    assert tcp["answer"] == "still delayed\n" and tcp["connect"] >= DELAY_S and tcp["exchange"] >= DELAY_S, tcp

    # And lab ps says the impairment is in force, with no dead-sidecar notice.
    capsys.readouterr()
    assert cli.main(["ps", "-t", flood_lab.name]) == 0
    shown = capsys.readouterr().out
    assert "NOT IN FORCE" not in shown and f"impair  delay {DELAY_S * 1000:g}ms (nfqueue)" in shown, shown

    # Stopped as lab impair --clear stops it (SIGTERM), it says what it held at most, and what it dropped.
    after.stop(timeout=STOP_TIMEOUT)
    log = engine.logs(after)
    assert log.splitlines()[-1].split()[1:3] == ["delayline", "stopped"], log[-2000:]
    last = dict(field.split("=", 1) for field in log.splitlines()[-1].split()[3:])
    held, overflow = int(last["max_held_bytes"]), int(last["overflow"])
    assert int(last["budget"]) == BUDGET, last  # the documented budget is the one it runs with
    assert held <= BUDGET, f"held {held / 2**20:.1f} MiB, past its budget"
    # The flood's strength is the machine's (see the module docstring): it drops only at the budget (held
    # within one datagram's charge of it), and says so while it drops; a flood too weak to fill it, nothing.
    reached = held + DATAGRAM + 28 + HELD_OVERHEAD > BUDGET
    reports = [int(m.group(2)) for m in OVERFLOW.finditer(log)]
    assert overflow == 0 or reached, last
    assert bool(reports) == (overflow > 0) and (not reports or reports[-1] <= overflow), (last, reports)

    budget = f"dropped {overflow} at its budget" if reached else f"held {held / 2**20:.1f} MiB at most (not reached)"
    with capsys.disabled():
        print(
            f"\nmeasured: flood {flood['sent']} datagrams of {DATAGRAM} bytes in {FLOOD_SECONDS:g} s"
            f" ({flood['per_second']:.0f}/s) into {DELAY_S:g} s of delay; echo answered {last['received']} of them"
            f" into the delay line, which {budget}; sidecar memory peak {peak / 2**20:.1f} MiB of"
            f" {limit / 2**20:.0f} MiB; the well-behaved client got {seen.get('received')} of {seen.get('sent')}"
            f" pings back during the flood; after it, round trips {min(pings['rtts']):.2f}-{max(pings['rtts']):.2f} s,"
            f" TCP connect {tcp['connect']:.2f} s and exchange {tcp['exchange']:.2f} s"
        )


def test_lab_impair_refuses_a_delay_above_the_bound(flood_lab: TopologyLab, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert cli.main(["impair", "-t", flood_lab.name, "echo", "--delay", "11s"]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", "error: delay: 11000ms is more than 10s (write at most 10s) (see lab impair --help)\n")
    in_force = [(c.role, c.detail) for c in flood_lab.changes()]
    assert in_force == [("impair", f"delay {DELAY_S * 1000:g}ms (nfqueue)")]  # the impairment is left as it was
