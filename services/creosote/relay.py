"""Redirector mode: relay every datagram to a target behind a hop line, so that a loop of redirectors stops."""

from __future__ import annotations

import socket

from common.eventlog import EventLog
from protocols.creosote import HopLimitExceeded, add_hop
from protocols.errors import RemoteProtocolError
from services.common import peer_name
from services.creosote.sink import Datagram, SockAddr

RESOLVE_RETRY = 1.0  # seconds between attempts to resolve a relay target that failed
RESOLVE_TTL = 30.0  # re-resolve a working target this often: a container may come back elsewhere


class Resolver:
    """A relay target's address, resolved lazily, refreshed, never raising.

    In a Compose lab the target may not exist yet when the relay starts, or may
    come back with a new address: a failed lookup is retried every
    ``RESOLVE_RETRY`` seconds, and a good one is refreshed every ``RESOLVE_TTL``
    (keeping the old address if the refresh fails).
    """

    def __init__(self, host: str, port: int, *, family: int, log: EventLog) -> None:
        self.host, self.port = host, port
        self._family = family
        self._log = log
        self._address: SockAddr | None = None
        self._next_lookup = 0.0

    def resolve(self, now: float) -> SockAddr | None:
        """The target's socket address, or ``None`` while it does not resolve."""
        if now >= self._next_lookup:
            self._lookup(now)
        return self._address

    def _lookup(self, now: float) -> None:
        try:
            infos = socket.getaddrinfo(self.host, self.port, self._family, socket.SOCK_DGRAM)
        except (OSError, UnicodeError) as exc:  # gaierror is an OSError; an invalid name is a UnicodeError
            self._next_lookup = now + RESOLVE_RETRY
            self._log("resolve_error", target=f"{self.host}:{self.port}", error=str(exc), retry_in=RESOLVE_RETRY)
            return
        address = infos[0][4]
        if address != self._address:
            self._log("resolved", target=f"{self.host}:{self.port}", address=peer_name(address))
        self._address = address
        self._next_lookup = now + RESOLVE_TTL


class Relay:
    """Redirector mode: send every datagram on behind a hop line (``add_hop``), from the sink's own socket."""

    def __init__(self, sock: socket.socket, resolver: Resolver, *, log: EventLog) -> None:
        self.count = 0
        self.dropped = 0
        self.looped = 0  # of the dropped: past the hop limit
        self._sock = sock
        self._resolver = resolver
        self._log = log

    def handle(self, datagram: Datagram) -> None:
        """Relay one datagram; drop it (with an event) when that cannot work."""
        if datagram.size > len(datagram.data):
            raise RemoteProtocolError("datagram cut short by the receive buffer: not relayed (raise --max-datagram)")
        try:
            forwarded = add_hop(datagram.data)  # a malformed hop line raises: a bad datagram
        except HopLimitExceeded as exc:
            self.looped += 1
            self._drop(datagram, str(exc))
            return
        target = self._resolver.resolve(datagram.now)
        if target is None:
            self._drop(datagram, "target does not resolve")
        elif tuple(target[:2]) == datagram.source:
            # Two relays each other's target: caught at once, where the hop limit would take MAX_HOPS sends.
            self._drop(datagram, "came from the target: relaying it back would loop")
        else:
            self._send(datagram, forwarded, target)

    def timeout(self, now: float) -> float | None:
        """A relay has no timed work."""
        return None

    def tick(self, now: float) -> None:
        """A relay has no timed work."""

    def close(self) -> None:
        """Nothing is buffered."""

    def _send(self, datagram: Datagram, forwarded: bytes, target: SockAddr) -> None:
        try:
            self._sock.sendto(forwarded, target)
        except OSError as exc:
            self._drop(datagram, exc.strerror or str(exc))
            return
        self.count += 1
        self._log.limited(
            "relay", now=datagram.now, peer=peer_name(datagram.reply_to), to=peer_name(target), size=datagram.size
        )

    def _drop(self, datagram: Datagram, reason: str) -> None:
        self.dropped += 1
        self._log.limited(
            "relay_dropped", now=datagram.now, peer=peer_name(datagram.reply_to), size=datagram.size, reason=reason
        )
