"""Who may hold a connection, and for how long: the admission policy of every TCP server.

Before it, any byte reset a connection's idle timer and nothing limited one
source: 1,100 connections trickling a byte every 5 s held all 1,024 of
``threaded``'s slots for as long as they liked (a well-behaved client got 0 of
81 answers), chat's 1,000 the same way, and doctor's 256 without sending a byte
(its idle timeout is 300 s). Three rules now:

* **A line has a deadline.** A line must end (``\\n``) within ``line_deadline``
  seconds of its first byte, whatever trickles in meanwhile; else the client
  gets one error line and is closed. Servers of bytes, not lines (echo), have
  no deadline (``None``): there every byte is progress.
* **A full server makes room.** A newcomer to a full server closes the
  connection that has gone longest without progress (a whole line; for echo,
  a byte), provided that one has gone at least ``grace`` seconds. Only when
  every connection made progress within the grace is the newcomer refused
  (the busy line). A trickler makes no progress, so it is always first to go.
* **Sources share.** Free slots are anyone's: one source may fill the whole
  server, as it must, for through a Docker host port every client has the
  same address (the port proxy's). Each source is sure of ``per_source``
  slots, and what it holds beyond them is borrowed. When the server is full, a
  newcomer from a source holding its share (or more) may only close one of
  that source's own connections; a newcomer from a source under its share
  first takes back a borrowed slot (the longest-idle connection of a source
  over its share, at once, grace or not), and else closes the longest-idle
  connection of anyone. So a host-port crowd competes among itself, and a
  flood from one address, once it holds its share, only displaces itself.

Pure: no sockets and no clock reads (every call is given ``now``, in the
seconds of ``time.monotonic``), so the unit tests drive it with made-up times.
The runners and chat turn a ``Verdict`` into socket calls.
"""

from __future__ import annotations

from dataclasses import dataclass

IDLE = "idle"  # why a connection ran out of time: nothing at all received for idle_timeout
LINE_DEADLINE = "line-deadline"  # or a line begun line_deadline ago is still not finished
EVICTED = "evicted"  # or a newcomer needed its slot

EVICTED_MESSAGE = b"error: server full, closing the longest-idle connection\n"
# A victim must have gone this long without progress: a connection just admitted
# has not had time to say anything, and evicting it would only trade one newcomer
# for another.
DEFAULT_GRACE = 1.0


def deadline_message(seconds: float) -> bytes:
    """What a client whose line took too long reads before the close."""
    return f"error: line not completed within {seconds:g} s, closing\n".encode()


@dataclass(frozen=True, slots=True)
class Rules:
    """What one server allows: slots, each source's share, and the time a client gets."""

    max_clients: int
    per_source: int
    idle_timeout: float
    line_deadline: float | None  # None: the protocol is bytes, not lines
    grace: float = DEFAULT_GRACE

    def __post_init__(self) -> None:
        if self.max_clients < 1:
            raise ValueError(f"max_clients must be at least 1, not {self.max_clients}")
        if not 1 <= self.per_source <= self.max_clients:
            raise ValueError(f"per_source must be from 1 to max_clients ({self.max_clients}), not {self.per_source}")
        if not self.idle_timeout > 0:
            raise ValueError(f"idle_timeout must be positive, not {self.idle_timeout}")
        if self.line_deadline is not None and not self.line_deadline > 0:
            raise ValueError(f"line_deadline must be positive (or None for a byte stream), not {self.line_deadline}")
        if not self.grace >= 0:
            raise ValueError(f"grace must be 0 or more, not {self.grace}")


def half_of(max_clients: int) -> int:
    """The default share of one source: half the slots (at least one)."""
    return max(1, max_clients // 2)


class Clock:
    """One connection's times: opened, last byte either way, last progress, and the unfinished line's start.

    Its owner calls ``received`` for every chunk read (and ``sent`` where output
    that flows should count as activity); ``due`` says when it runs out of time.
    A threaded server's worker writes its clock while the acceptor reads it:
    each is one float assignment, atomic under the GIL, and a stale read costs
    at worst a choice of victim one read out of date.
    """

    __slots__ = ("evicted", "last_io", "last_progress", "line_started", "opened", "rules", "source")

    def __init__(self, rules: Rules, source: str, now: float) -> None:
        self.rules = rules
        self.source = source
        self.opened = now
        self.last_io = now  # the idle timeout counts from here
        self.last_progress = now  # eviction ranks by this: the last whole line (a byte, for byte streams)
        self.line_started: float | None = None  # the first byte of a line not yet ended
        self.evicted = False

    def received(self, data: bytes, now: float) -> None:
        """Note ``data`` read at ``now``; ``b""`` (EOF) changes nothing."""
        if not data:
            return
        self.last_io = now
        if self.rules.line_deadline is None:
            self.last_progress = now
            return
        end = data.rfind(b"\n")
        if end < 0:
            if self.line_started is None:
                self.line_started = now
            return
        self.last_progress = now
        self.line_started = now if end < len(data) - 1 else None

    def sent(self, now: float) -> None:
        """Note output the peer took at ``now``: it is not silent, though it may make no progress."""
        self.last_io = now

    def due(self) -> tuple[float, str]:
        """When the connection runs out of time, and why (``IDLE`` or ``LINE_DEADLINE``)."""
        when, why = self.last_io + self.rules.idle_timeout, IDLE
        if self.line_started is not None and self.rules.line_deadline is not None:
            deadline = self.line_started + self.rules.line_deadline
            if deadline <= when:
                return deadline, LINE_DEADLINE
        return when, why

    def expired(self, now: float) -> str | None:
        """``IDLE`` or ``LINE_DEADLINE`` once the connection is out of time, else ``None``."""
        when, why = self.due()
        return why if now >= when else None

    def idle(self, now: float) -> float:
        """Seconds without progress: how eviction ranks connections."""
        return now - self.last_progress


@dataclass(frozen=True, slots=True)
class Verdict:
    """A newcomer's fate: its clock when admitted (``None``: refused), and whom it displaces."""

    admitted: Clock | None
    victim: Clock | None = None


class Admission:
    """The connections a server holds, by source; ``admit`` decides each newcomer's fate.

    A ``Verdict``'s victim is out of the table already: its owner sets its
    ``evicted``, tells it ``EVICTED_MESSAGE`` and closes it. ``release`` a connection once it has
    closed (or is on its way out); releasing twice, or a victim, does nothing.
    """

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self._clocks: dict[Clock, None] = {}  # every admitted connection, oldest first
        self._by_source: dict[str, dict[Clock, None]] = {}

    def __len__(self) -> int:
        return len(self._clocks)

    def __contains__(self, clock: object) -> bool:
        return clock in self._clocks

    def held_by(self, source: str) -> int:
        """How many connections ``source`` holds."""
        return len(self._by_source.get(source, ()))

    def admit(self, source: str, now: float) -> Verdict:
        """Admit a newcomer from ``source`` at ``now``, making room if the server is full (module docstring)."""
        if len(self._clocks) >= self.rules.max_clients:
            victim = self._victim(source, now)
            if victim is None:
                return Verdict(None)
            self.release(victim)
        else:
            victim = None
        clock = Clock(self.rules, source, now)
        self._clocks[clock] = None
        self._by_source.setdefault(source, {})[clock] = None
        return Verdict(clock, victim)

    def release(self, clock: Clock) -> None:
        """Forget a connection that has closed."""
        if clock not in self._clocks:
            return
        del self._clocks[clock]
        mine = self._by_source[clock.source]
        del mine[clock]
        if not mine:
            del self._by_source[clock.source]

    def _victim(self, source: str, now: float) -> Clock | None:
        share = self.rules.per_source
        mine = self._by_source.get(source, {})
        if len(mine) >= share:
            return _longest_idle(mine, now, self.rules.grace)
        borrowed = [clock for held in self._by_source.values() if len(held) > share for clock in held]
        return _longest_idle(borrowed, now, 0.0) or _longest_idle(self._clocks, now, self.rules.grace)


def _longest_idle(clocks: dict[Clock, None] | list[Clock], now: float, grace: float) -> Clock | None:
    """The connection longest without progress, if it has gone ``grace`` seconds."""
    best: Clock | None = None
    for clock in clocks:
        if best is None or clock.last_progress < best.last_progress:
            best = clock
    if best is None or best.idle(now) < grace:
        return None
    return best
