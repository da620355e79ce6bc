"""Echo (RFC 862): every byte sent comes back, unchanged, in order.

Over TCP that is a stream, not messages: the reply arrives in whatever pieces
the network makes of it, which is what the echo client shows (the seeds' tmc.py).
"""

from __future__ import annotations

from protocols.session import Output

PORT = 7


class EchoSession:
    """TCP echo: a byte-exact mirror; EOF from the peer ends the session."""

    def start(self) -> Output:
        return Output()

    def receive_data(self, data: bytes) -> Output:
        return Output(data, close=not data)


def answer_datagram(request: bytes) -> bytes:
    """UDP echo: the datagram itself (an empty one gets an empty one back)."""
    return request
