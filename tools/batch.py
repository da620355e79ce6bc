"""Run a list of commands given as JSON argv lists, with no shell: the lab's sidecars use it.

    python3 -m tools.batch run  '[["iptables", "-w", "-N", "X"], ["tc", "qdisc", "show"]]'
        runs them in order and stops at the first that fails, naming it (exit 1)
    python3 -m tools.batch show '[["iptables", "-w", "-S"], ...]'
        runs every one and prints a JSON list of {"code", "out", "err"}, one per command

One ``docker exec`` then does what would take one per command (each costs ~50-80 ms),
and nothing a user typed is ever parsed by a shell.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Sequence

TIMEOUT = 30.0  # seconds for one command; iptables -w waits for the xtables lock at most this long


def parse(text: str) -> list[list[str]]:
    """A JSON list of non-empty argv lists of strings; ValueError otherwise."""
    commands = json.loads(text)
    if not isinstance(commands, list) or not all(
        isinstance(argv, list) and argv and all(isinstance(arg, str) for arg in argv) for argv in commands
    ):
        raise ValueError("expected a JSON list of non-empty lists of strings")
    return commands


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(list(argv), 127, "", str(exc))


def run(commands: Sequence[Sequence[str]]) -> int:
    """Run ``commands`` in order; at the first failure say which and why on stderr and return 1."""
    for argv in commands:
        result = _run(argv)
        if result.returncode != 0:
            why = (result.stderr or result.stdout).strip()
            print(f"failed: {shlex.join(argv)}: {why}", file=sys.stderr)
            return 1
    return 0


def show(commands: Sequence[Sequence[str]]) -> int:
    """Run every command and print each one's exit code and output as one JSON list."""
    results = [_run(argv) for argv in commands]
    json.dump([{"code": r.returncode, "out": r.stdout, "err": r.stderr} for r in results], sys.stdout)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("run", "show"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        commands = parse(args[1])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run(commands) if args[0] == "run" else show(commands)


if __name__ == "__main__":
    sys.exit(main())
