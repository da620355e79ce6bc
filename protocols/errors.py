"""The project's exceptions.

One base class, split the way h11 and trio split theirs: the *peer* sent something
wrong (remote) versus *our* code misused an API (local).
"""

from __future__ import annotations


class TestbedError(Exception):
    """Base of every error this project raises on purpose."""

    __test__ = False  # not a pytest test class, despite the name


class RemoteProtocolError(TestbedError):
    """The peer sent bytes the protocol does not allow."""


class LocalProtocolError(TestbedError):
    """Our side tried something the protocol does not allow."""


class LineTooLong(RemoteProtocolError):
    """A line grew past the framing's cap without a terminator."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"line longer than {limit} bytes")
        self.limit = limit
