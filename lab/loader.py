"""Topology YAML → validated ``lab.model.Topology``, before any Docker call.

Every value keeps the line it came from (``lab.yamlread``). Checking goes in
two passes: the shape of each entry on its own (``lab.shapes``: types, unknown
keys, units), then what only the whole lab can tell (``lab.crosscheck``:
unknown networks, duplicate hostnames, addresses outside their subnet, nodes no
router leads to). Every problem found is reported, each as one line::

    topology/bad.yaml:12: nodes.web.service: unknown service 'daytme'; write 'daytime' instead (valid services: ...)

The schema this enforces is documented in ``topology/schema.json``.
"""

from __future__ import annotations

from pathlib import Path

from lab import model
from lab.crosscheck import check_lab
from lab.draft import assign_addresses
from lab.shapes import LAB_NAME, read_document
from lab.yamlread import Problem, Reader, ReadError, key_line

__all__ = ["LAB_NAME", "Problem", "TopologyError", "key_line", "load", "load_text"]


class TopologyError(ReadError):
    """A topology file that cannot become a lab; ``problems`` lists every reason, in file order."""


def load_text(text: str, *, source: str | Path) -> model.Topology:
    """Parse and validate a topology; raise ``TopologyError`` listing every problem."""
    reader = Reader(str(source))
    root = reader.compose(text, empty="start with name:, networks: and nodes:")
    if root is None:
        raise TopologyError(reader.problems)
    draft = read_document(reader, root)
    check_lab(reader, draft)
    if not reader.problems:  # assigning needs sound subnets and static addresses; otherwise it adds only noise
        assign_addresses(reader, draft)
    if reader.problems:
        raise TopologyError(reader.problems)
    return draft.build(Path(source))


def load(path: str | Path) -> model.Topology:
    """Read a topology file; a missing or unreadable file is a ``TopologyError`` too, with line 1."""
    reader = Reader(str(path))
    text = reader.read(Path(path), fix="give the path of a topology YAML file, like topology/default.yaml")
    if text is None:
        raise TopologyError(reader.problems)
    return load_text(text, source=path)
