"""``python3 -m services``: list the servers of this image, how to start one, and how the lab starts each.

The node image's default command, so ``docker run --rm testbed/node`` says what it holds.
"""

from __future__ import annotations

import ast
import pkgutil
import sys
from pathlib import Path

import services
from protocols.registry import SERVICES

NOT_SERVERS = {"admission", "chat_connection", "chat_server", "common", "launch", "runners", "__main__"}


def summaries() -> list[tuple[str, str]]:
    """(module, first docstring line) of every server module, read without importing (no side effects)."""
    found = []
    for info in pkgutil.iter_modules(services.__path__):
        if info.name in NOT_SERVERS:
            continue
        where = Path(services.__path__[0], info.name)
        source = (where / "__init__.py" if info.ispkg else where.with_suffix(".py")).read_text(encoding="utf-8")
        found.append((info.name, _summary(ast.get_docstring(ast.parse(source)) or "", info.name)))
    return sorted(found)


def _summary(doc: str, name: str) -> str:
    """The docstring's first paragraph, without the ``python -m services.NAME`` it may open with."""
    text = doc.removeprefix(f"``python -m services.{name}``").lstrip(":. \n")
    paragraph = " ".join(text.split("\n\n", 1)[0].split()).rstrip(".")
    return paragraph[:1].upper() + paragraph[1:]


def main() -> int:
    print("The servers of this image; each takes --help, --host and --port:\n")
    for name, summary in summaries():
        print(f"  python3 -m services.{name:<10} {summary}")
    print("\nThe lab's services run them so (protocols/registry.py; the lab may add options, like creosote's")
    print("--log-file on its volume):\n")
    for spec in SERVICES.values():
        ports = " ".join(str(port) for port in spec.ports)
        print(f"  {spec.name:<10} {ports:<14} {' '.join(spec.command)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
