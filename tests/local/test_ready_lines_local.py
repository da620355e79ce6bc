"""Each built-in server's ready line is the one its lab node's label names, so ``lab up`` takes it.

``lab up`` ends a node's wait at the line ``<time> <server> ready ...`` whose server is the
node's ``testbed.ready-line`` label (``lab.readiness``). A label naming anything else makes the
wait fall back, silently, to the first health check. Here every server of the default lab starts
as its node runs it (its module and model, on 127.0.0.1 port 0) and its own line is held against
the rendered label.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from common.eventlog import says_ready
from lab import compose
from lab.loader import load
from lab.model import READY_LINE_LABEL
from tests.local.conftest import ROOT, StartServer

SERVICES = compose.render(load(Path(ROOT) / "topology" / "default.yaml"))["services"]
LABELLED = sorted(name for name, service in SERVICES.items() if READY_LINE_LABEL in service["labels"])


def test_every_server_of_the_default_lab_is_labelled() -> None:
    assert set(LABELLED) == {name for name, service in SERVICES.items() if "healthcheck" in service}
    assert len(LABELLED) >= 6, LABELLED


@pytest.mark.parametrize("node", LABELLED)
def test_the_servers_own_ready_line_is_the_one_its_label_names(server: StartServer, node: str) -> None:
    command = list(SERVICES[node]["command"])
    assert command[:2] == ["python3", "-m"], command
    module, options = command[2], command[3 : command.index("--port")]
    started = server(module, *options)
    ready = next(line for line in started.output if " ready " in line)
    label = SERVICES[node]["labels"][READY_LINE_LABEL]
    assert says_ready(ready.rstrip("\n"), label), f"{node}: label {label!r}, but the server said {ready!r}"
