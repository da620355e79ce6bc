"""What a stream server allows each client and all of them together, and the timings every model shares."""

from __future__ import annotations

from dataclasses import dataclass

from services.admission import (
    DEFAULT_GRACE,
    EVICTED,
    EVICTED_MESSAGE,
    IDLE,
    LINE_DEADLINE,
    Rules,
    deadline_message,
    half_of,
)

# How often blocking loops look at the stop flag (and the forking model reaps).
POLL = 0.25
# How long a closing connection waits for the peer's EOF (see sockets.close_gracefully).
LINGER = 2.0
# A line server's default: whole lines come in one segment, so 10 s is generous to any real client.
DEFAULT_LINE_DEADLINE = 10.0


@dataclass(frozen=True, slots=True)
class Limits:
    """What one server allows each client and all of them together (``services.admission`` says how)."""

    max_clients: int = 256
    idle_timeout: float = 60.0
    line_deadline: float | None = DEFAULT_LINE_DEADLINE  # None: bytes, not lines (echo): no deadline
    per_source: int | None = None  # the slots one source address is sure of; None: half of max_clients
    evict_grace: float = DEFAULT_GRACE
    recv_size: int = 65536
    max_output: int = 1 << 20  # event-loop models: stop reading a peer with this much unsent
    busy_message: bytes = b"error: server busy, try again later\n"
    idle_message: bytes = b"error: idle timeout, closing\n"

    def __post_init__(self) -> None:
        _ = self.rules  # validates every number, naming the one that is wrong

    @property
    def rules(self) -> Rules:
        """The admission rules these limits make."""
        return Rules(
            max_clients=self.max_clients,
            per_source=half_of(self.max_clients) if self.per_source is None else self.per_source,
            idle_timeout=self.idle_timeout,
            line_deadline=self.line_deadline,
            grace=self.evict_grace,
        )

    def message(self, why: str) -> bytes:
        """The line a client closed for ``why`` (``IDLE``, ``LINE_DEADLINE``, ``EVICTED``) reads last."""
        if why == IDLE:
            return self.idle_message
        if why == LINE_DEADLINE and self.line_deadline is not None:
            return deadline_message(self.line_deadline)
        if why == EVICTED:
            return EVICTED_MESSAGE
        raise ValueError(f"no message for {why!r}")
