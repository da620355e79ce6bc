"""Daytime (RFC 867): connect or send a datagram, get the date and time as one line.

RFC 867 fixes no syntax; it suggests ``Weekday, Month Day, Year HH:MM:SS-ZONE``,
which is what we send, in ASCII and always UTC, ending in CRLF.
"""

from __future__ import annotations

from datetime import UTC, datetime

from protocols.errors import RemoteProtocolError
from protocols.session import Output

PORT = 13
_FORMAT = "%A, %B %d, %Y %H:%M:%S-UTC"


def format_daytime(when: datetime) -> bytes:
    """The daytime line for ``when`` (converted to UTC), CRLF included."""
    return when.astimezone(UTC).strftime(_FORMAT).encode("ascii") + b"\r\n"


def parse_daytime(data: bytes) -> datetime:
    """Parse a daytime answer back into an aware UTC datetime.

    Raises ``RemoteProtocolError`` when the bytes are not one daytime line.
    """
    if not data.endswith(b"\r\n") or data.count(b"\n") != 1:
        raise RemoteProtocolError(f"daytime answer must be one CRLF-terminated line, got {data[:80]!r}")
    try:
        text = data[:-2].decode("ascii")
        return datetime.strptime(text, _FORMAT).replace(tzinfo=UTC)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RemoteProtocolError(f"not a daytime line: {data[:80]!r}") from exc


class DaytimeSession:
    """TCP daytime: the answer on connect, then close; whatever the client sends is ignored."""

    def __init__(self, *, now: datetime | None = None) -> None:
        self._now = now

    def start(self) -> Output:
        return Output(format_daytime(self._now or datetime.now(UTC)), close=True)

    def receive_data(self, data: bytes) -> Output:
        return Output(close=True)


def answer_datagram(_request: bytes, *, now: datetime | None = None) -> bytes:
    """UDP daytime: any datagram, even an empty one, gets the time in one datagram."""
    return format_daytime(now or datetime.now(UTC))
