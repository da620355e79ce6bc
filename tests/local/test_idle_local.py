"""An idle server sleeps in the kernel: no clock wakes it while nobody is connected.

Each server's threads used to wake four times a second or more to look at a stop flag (daytime and echo
eight, creosote five, chat two); in the default lab that was about half of what an idle container costs.
Counted here as the voluntary context switches of every thread of the server's process over two seconds
of silence: before, 4 to 20 of them; now a stray one at most (the interpreter's own housekeeping).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.local.conftest import ServerProcess, StartServer

WINDOW = 2.0  # seconds of silence watched
MOST_WAKE_UPS = 2  # in the window, every thread together


def wake_ups(pid: int) -> int:
    """Voluntary context switches so far of every thread of ``pid``: each is a sleep that ended."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:
            continue  # a thread that ended meanwhile
        total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("voluntary_ctxt"))
    return total


def idle_wake_ups(proc: ServerProcess) -> int:
    time.sleep(0.5)  # let start-up settle (imports, the ready line), then watch
    before = wake_ups(proc.process.pid)
    time.sleep(WINDOW)  # the measurement window itself, not a wait for readiness
    return wake_ups(proc.process.pid) - before


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("services.daytime", ()),  # TCP and UDP: two loops
        ("services.echo", ()),
        ("services.doctor", ()),
        *(("services.upper", ("--model", model)) for model in ("iterative", "threaded", "selectors", "asyncio")),
        ("services.chat", ()),
        ("services.creosote", ()),
    ],
    ids=lambda value: value if isinstance(value, str) else " ".join(value) or "default",
)
def test_an_idle_server_is_not_woken_by_a_clock(server: StartServer, module: str, args: tuple[str, ...]) -> None:
    proc = server(module, *args)
    woken = idle_wake_ups(proc)
    assert woken <= MOST_WAKE_UPS, f"{module} {' '.join(args)} woke {woken} times in {WINDOW} s of silence"
    assert proc.terminate() < 1.0  # SIGTERM still ends it at once
