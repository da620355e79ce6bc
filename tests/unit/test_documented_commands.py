"""Every ``lab`` command written in the README and docs/ is one the command line accepts, as written.

The integration tests run the lab verbs for real; this keeps the documents from drifting
from the argument table (a renamed flag, a verb that lost ``-t``) without starting a lab.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from clients.check import SUITES, select
from lab.cli_table import parser

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def documented_commands() -> list[tuple[str, str]]:
    """(document, command line) for every line of a code block that runs ``lab``."""
    found = []
    for document in DOCUMENTS:
        for block in FENCE.findall(document.read_text(encoding="utf-8")):
            for line in block.splitlines():
                command = line.strip().removeprefix("$ ")
                command = re.sub(r"\s+#\s.*$", "", command)  # a comment after the command
                if command.startswith(("lab ", ".venv/bin/lab ")):
                    found.append((document.name, command))
    return found


COMMANDS = documented_commands()


def test_the_documents_show_the_lab_verbs() -> None:
    verbs = {shlex.split(command)[1] for _doc, command in COMMANDS}
    assert {"up", "down", "ps", "exec", "impair", "partition", "heal", "capture", "graph", "wipe"} <= verbs


@pytest.mark.parametrize(("document", "command"), COMMANDS, ids=[f"{d}: {c}" for d, c in COMMANDS])
def test_documented_command_parses(document: str, command: str) -> None:
    argv = shlex.split(command)[1:]
    try:
        parser().parse_args(argv)
    except SystemExit as exc:  # --help exits 0; a refused command line exits 2
        if exc.code != 0:
            pytest.fail(f"{document}: `{command}` is refused by the command line (exit {exc.code})")


def test_a_command_the_table_does_not_know_is_caught() -> None:
    with pytest.raises(SystemExit) as refused:
        parser().parse_args(["down", "-t", "two-lans", "--bogus"])
    assert refused.value.code == 2


CHECKS = [(d, c) for d, c in COMMANDS if shlex.split(c)[1] == "check" and "--only" in shlex.split(c)]


@pytest.mark.parametrize(("document", "command"), CHECKS, ids=[f"{d}: {c}" for d, c in CHECKS])
def test_documented_checks_name_checks_that_exist(document: str, command: str) -> None:
    """``--only`` names are the checker's own: a renamed check must not leave a command that fails as written."""
    args = parser().parse_args(shlex.split(command)[1:])
    patterns = [p for p in args.only.split(",") if p]
    try:
        select(SUITES[args.protocol], patterns)
    except LookupError as exc:
        pytest.fail(f"{document}: `{command}`: {exc}")


def test_a_check_name_the_checker_does_not_have_is_caught() -> None:
    with pytest.raises(LookupError, match=r"no upper check is called upper\.tcp\.coalesced"):
        select(SUITES["upper"], ["upper.tcp.coalesced"])
