"""The contract between a stream protocol and the runners that serve it.

A session is the server's side of one TCP connection, with no socket in sight:
bytes in, bytes out. Every concurrency model in ``services.runners`` drives the
same session class, so comparing models never means copying a server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Output:
    """What a session wants sent, and whether to close afterwards."""

    data: bytes = b""
    close: bool = False


class Session(Protocol):
    """One connection's protocol state.

    ``start`` is called once when the peer connects (a greeting, or the whole
    answer for daytime). ``receive_data`` gets every chunk the peer sends, in
    order, and ``b""`` once at EOF; after an ``Output`` with ``close=True`` it is
    not called again.
    """

    def start(self) -> Output: ...

    def receive_data(self, data: bytes) -> Output: ...


SessionFactory = Callable[[], Session]
