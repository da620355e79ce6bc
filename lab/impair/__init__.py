"""Impair a node's links, partition nodes, cut nodes off networks: at runtime, through the Docker API.

- ``plan``: what to run in a namespace, as argv lists, and how to undo it (pure);
- ``sidecar``: the containers that run it in a node's namespace (shared with ``lab.capture``);
- ``links``: apply and clear delay, jitter, loss and rate limits (netem, or NFQUEUE and tbf);
- ``partition``: partitions and disconnections, and ``heal``.

Everything is idempotent, and a teardown removes only the chains and qdiscs we name.
"""

from lab.impair.links import apply, clear
from lab.impair.partition import Active, active, disconnect, heal, partition, partitions, reconnect, unpartition
from lab.impair.sidecar import ImpairError

__all__ = [
    "Active",
    "ImpairError",
    "active",
    "apply",
    "clear",
    "disconnect",
    "heal",
    "partition",
    "partitions",
    "reconnect",
    "unpartition",
]
