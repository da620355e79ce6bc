"""The protocols' exceptions.

Split the way h11 and trio split theirs: the *peer* sent something wrong (remote)
versus *our* code misused an API (local). All derive from the project's root error.
"""

from __future__ import annotations

from common.errors import TestbedError

__all__ = ["LineTooLong", "LocalProtocolError", "RemoteProtocolError"]


class RemoteProtocolError(TestbedError):
    """The peer sent bytes the protocol does not allow."""


class LocalProtocolError(TestbedError):
    """Our side tried something the protocol does not allow."""


class LineTooLong(RemoteProtocolError):
    """A line grew past the framing's cap without a terminator."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"line longer than {limit} bytes")
        self.limit = limit
