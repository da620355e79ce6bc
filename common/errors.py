"""The project's root exception.

Protocol errors (remote versus local, the way h11 and trio split theirs) live in
``protocols.errors``; the lab's errors subclass this one too, so a command line
can catch everything the project raises on purpose in one place.
"""

from __future__ import annotations


class TestbedError(Exception):
    """Base of every error this project raises on purpose."""

    __test__ = False  # not a pytest test class, despite the name
