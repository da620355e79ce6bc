"""``python3 -m clients.check PROTOCOL HOST:PORT``: does a server keep its protocol, the hard parts included?

Each protocol's checks live in a module of their own (``daytime``, ``echo``,
``upper``, ``chat``, ``doctor``, ``creosote``); ``core`` runs them and ``wire``
gives them sockets that cannot hang. The same checks test this project's servers
(tests/local, tests/integration) and yours (``lab check``).
"""

from __future__ import annotations

from collections.abc import Sequence

from clients.check import chat, creosote, daytime, doctor, echo, upper
from clients.check.core import (
    Check,
    CheckFailed,
    Context,
    Report,
    Result,
    Suite,
    Target,
    run_check,
    run_checks,
    select,
)

__all__ = [
    "ALIASES",
    "SUITES",
    "Check",
    "CheckFailed",
    "Context",
    "Report",
    "Result",
    "Suite",
    "Target",
    "run",
    "run_check",
    "run_checks",
    "select",
]

SUITES: dict[str, Suite] = {
    suite.protocol: suite
    for suite in (daytime.SUITE, echo.SUITE, upper.SUITE, chat.SUITE, doctor.SUITE, creosote.SUITE)
}

# The lab's line servers by service name: each speaks upper, on a port of its own.
ALIASES: dict[str, tuple[str, int]] = {
    "threaded": ("upper", 9000),
    "iterative": ("upper", 9001),
    "forking": ("upper", 9002),
    "selectors": ("upper", 9003),
    "asyncio": ("upper", 9004),
}


def run(
    protocol: str,
    target: Target,
    *,
    only: Sequence[str] | None = None,
    timeout: float = 5.0,
    deadline: float = 300.0,
) -> Report:
    """Run ``protocol``'s checks (those ``only`` names, fnmatch patterns, when given) against ``target``.

    No first contact: the checks report an unreachable server as failures.
    ``LookupError`` for an unknown protocol or a pattern that matches nothing.
    """
    suite = SUITES[protocol]
    checks = select(suite, only) if only else None
    return run_checks(suite, target, checks=checks, timeout=timeout, deadline=deadline)
