"""The chat room: many people, one conversation, plain text lines.

The course's chat server was one-on-one and took one ``recv`` for one message,
in ASCII, with no limits. Here the room is a pure object: connection ids and
lines in, ``Delivery`` and ``Broadcast`` records (who gets which bytes) out; the service that owns
the sockets only carries them. Plain ``nc`` is a usable client.

Wire format: UTF-8 lines of at most 4096 bytes, ``\n``-terminated (a ``\r``
before it is dropped); every line the server sends ends in ``\n``. Notices
start with ``* ``, errors with ``error: `` and go to their cause alone::

    Welcome to my chat room!                      the greeting: this line and three notices
    * you are guest1; pick a nick with /nick NAME
    * commands: /nick NAME, /who, /msg NICK TEXT, /quit, /help; anything else is said to the room
    * here: alice, bob                            or "* nobody else is here yet", "* 25 others here (/who ...)"
    <alice> hello                                 alice said "hello" to the room (not echoed to alice)
    <alice> /shrug                                alice typed "//shrug": a leading "//" says a "/"
    *alice* psst                                  alice to you alone (/msg you psst)
    -> *bob* psst                                 your /msg to bob, echoed to you
    * here (3): alice, bob, guest3                /who
    * you are now alice                           /nick alice; the others read "* guest1 is now alice"
    * bye, alice                                  /quit; then the server closes
    * alice joined                                when alice speaks, whispers, takes a nick, or after a grace
    * alice left (quit|disconnected|connection reset|idle|line too slow|server full)   if she was announced
    * alice dropped (too slow)                    she did not read what was sent to her
    * 97 joined, 98 left (/who lists who is here) past PRESENCE_BURST arrivals and departures in a window
    * closing: nothing received for 600 s         to an idle member, then close
    * server shutting down                        to everyone, then close
    error: line longer than 4096 bytes            also: invalid UTF-8, unknown command, invalid or taken
    error: no such nick: carol                    nick, usage, "server full (N clients), try again later"
    error: line not completed within 30 s, closing    to a member whose line took too long, then close
    error: server full, closing the longest-idle connection   to the member closed to seat a newcomer
"""

from __future__ import annotations

import re
from typing import NamedTuple, Protocol, TypeAlias

from protocols.errors import LineTooLong, LocalProtocolError
from protocols.framing import DEFAULT_MAX_LINE, LineBuffer

PORT = 5000
GREETING = "Welcome to my chat room!"
COMMANDS = "/nick NAME, /who, /msg NICK TEXT, /quit, /help"
MAX_NICK = 32
_LIST_IN_GREETING = 20  # more members than this: the greeting gives their number, /who the names
# ASCII only: Unicode look-alikes ("alice" spelt with a Cyrillic a) would let one member pass for another.
_NICK = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_NICK}}}")
# What others see is cleaned: C0/C1 controls (but tab) and DEL are dropped, so an
# escape sequence cannot repaint their terminals and a lone \r cannot overwrite a
# line; bidi embeddings, overrides and isolates (U+202A-202E, U+2066-2069) are
# dropped, so "<bob> \u202egnp.exe" cannot show a reversed name or spill its
# reordering into the next nick; the line and paragraph separators U+2028/2029
# become spaces, as a terminal or chat client may start a new line at them and
# let a member forge a line that seems to come from someone else.
_CONTROLS: dict[int, str | None] = {
    **dict.fromkeys([*range(0x00, 0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0)]),
    **dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)]),
    0x2028: " ",
    0x2029: " ",
}
# Arrivals and departures: the first PRESENCE_BURST of a window are told one by
# one, the rest counted and told as one line at the window's end (``tick``). A
# churn of 700 connections a second to a room of 300 made 700 x 2 x 300 = 420,000
# lines a second; with this, each member reads at most PRESENCE_BURST + 1 a window.
PRESENCE_BURST = 5

ConnId = int


class Delivery(NamedTuple):
    """Bytes for one connection; ``close`` asks the carrier to close it after sending them.

    Immutable like a frozen dataclass, and cheaper to build: 225 ns against 770 ns (three
    ``object.__setattr__`` calls); a fan-out is one ``Broadcast``, not one of these per recipient.
    """

    conn: ConnId
    data: bytes
    close: bool = False


class Broadcast(NamedTuple):
    """The same bytes for several connections: what one member says, for everyone else in the room.

    One object for a fan-out, not a ``Delivery`` per recipient: at 100 clients
    building those, and handing each to the carrier, was a fifth of the chat
    server's time (py-spy). ``each_delivery`` spells it out per connection.
    """

    conns: tuple[ConnId, ...]
    data: bytes


Output: TypeAlias = Delivery | Broadcast  # what the room returns: bytes for one connection, or for several


def each_delivery(outputs: list[Output]) -> list[Delivery]:
    """``outputs`` as one ``Delivery`` per connection, in order: for a carrier or a test that wants them so."""
    spelled: list[Delivery] = []
    for output in outputs:
        if isinstance(output, Broadcast):
            spelled += (Delivery(conn, output.data) for conn in output.conns)
        else:
            spelled.append(output)
    return spelled


class EventSink(Protocol):
    """Where the room reports what happened (``services.common.EventLog`` fits)."""

    def __call__(self, event: str, /, **fields: object) -> None: ...


def _line(text: str) -> bytes:
    return (text + "\n").encode("utf-8")


def error_line(message: str) -> bytes:
    """An ``error: ...`` line, as every error the server sends looks."""
    return _line(f"error: {message}")


def full_message(max_clients: int) -> bytes:
    """What a client over the server's cap reads before it is closed."""
    return error_line(f"server full ({max_clients} clients), try again later")


def valid_nick(nick: str) -> bool:
    """Whether ``nick`` is 1-32 ASCII letters, digits, ``_`` or ``-``."""
    return _NICK.fullmatch(nick) is not None


def clean_text(text: str) -> str:
    """``text`` safe to show on others' terminals: no controls (tab kept), no bidi overrides, no line separators."""
    return text.translate(_CONTROLS)


class ChatRoom:
    """Who is here under which nick, and what each line they send means.

    Connection ids are the caller's (any int, unique while connected). Every
    method returns the deliveries to make, in order; nothing here does I/O.
    """

    def __init__(self, *, on_event: EventSink | None = None) -> None:
        self._nicks: dict[ConnId, str] = {}
        self._by_key: dict[str, ConnId] = {}  # casefolded nick -> conn: "Bob" and "bob" are one nick
        self._guests = 0
        self._on_event = on_event
        self._announced: set[ConnId] = set()  # members the others have been told of
        self._told = 0  # arrivals and departures told one by one in this window
        self._held_joins = 0  # and those only counted, for tick() to tell
        self._held_leaves = 0

    def __contains__(self, conn: object) -> bool:
        return conn in self._nicks

    def __len__(self) -> int:
        return len(self._nicks)

    def nick(self, conn: ConnId) -> str | None:
        """The nick of ``conn``, ``None`` if it is not in the room."""
        return self._nicks.get(conn)

    def nicks(self) -> list[str]:
        """Everyone's nick, sorted case-insensitively."""
        return sorted(self._nicks.values(), key=str.casefold)

    # -- arriving and leaving ------------------------------------------------

    def join(self, conn: ConnId) -> list[Output]:
        """Admit ``conn`` under a fresh ``guestN`` nick and greet it; the others are told later (``announce``).

        A connection that closes without a word (a health check's bare connect,
        a port scan) is never announced, so it costs the others nothing.
        """
        if conn in self._nicks:
            raise LocalProtocolError(f"connection {conn} is already in the room")
        others = self.nicks()
        nick = self._fresh_guest()
        self._add(conn, nick)
        self._emit("join", conn=conn, nick=nick)
        return [Delivery(conn, self._greeting(nick, others))]

    def announce(self, conn: ConnId) -> list[Output]:
        """Tell the others ``conn`` is here, once: when it first shows itself, or when the carrier's grace ends."""
        if conn not in self._nicks or conn in self._announced:
            return []
        self._announced.add(conn)
        return self._presence(conn, f"* {self._nicks[conn]} joined", joined=True)

    def announced(self, conn: ConnId) -> bool:
        """Whether the others have been told ``conn`` is here."""
        return conn in self._announced

    def tick(self) -> list[Output]:
        """End a window of arrivals and departures: one line for those only counted, to every member.

        The carrier calls this on a clock (the chat server: once a second).
        """
        held = [(self._held_joins, "joined"), (self._held_leaves, "left")]
        self._told = self._held_joins = self._held_leaves = 0
        counts = ", ".join(f"{n} {what}" for n, what in held if n)
        if not counts:
            return []
        return [Broadcast(tuple(self._nicks), _line(f"* {counts} (/who lists who is here)"))]

    def _presence(self, conn: ConnId, text: str, *, joined: bool) -> list[Output]:
        if self._told < PRESENCE_BURST:
            self._told += 1
            return self._to_others(conn, _line(text))
        if joined:
            self._held_joins += 1
        else:
            self._held_leaves += 1
        return []

    def _greeting(self, nick: str, others: list[str]) -> bytes:
        if not others:
            here = "* nobody else is here yet"
        elif len(others) <= _LIST_IN_GREETING:
            here = f"* here: {', '.join(others)}"
        else:  # a crowd: the list would be a wall of text (and n² bytes for n arrivals)
            here = f"* {len(others)} others here (/who lists them)"
        greeting = [
            GREETING,
            f"* you are {nick}; pick a nick with /nick NAME",
            f"* commands: {COMMANDS}; anything else is said to the room",
            here,
        ]
        return _line("\n".join(greeting))

    def leave(self, conn: ConnId, reason: str) -> list[Output]:
        """``conn`` is gone (EOF, reset, idle...): tell the others. Unknown ``conn``: nothing."""
        return self._remove(conn, f"left ({reason})", event="leave", reason=reason)

    def drop(self, conn: ConnId, reason: str) -> list[Output]:
        """The server threw ``conn`` out (e.g. ``"too slow"``): tell the others, not ``conn``."""
        return self._remove(conn, f"dropped ({reason})", event="drop", reason=reason)

    def expire(self, conn: ConnId, idle_seconds: float) -> list[Output]:
        """``conn`` said nothing for too long: a notice to it (then close), and to the others."""
        return self.dismiss(conn, _line(f"* closing: nothing received for {idle_seconds:g} s"), "idle")

    def dismiss(self, conn: ConnId, notice: bytes, reason: str) -> list[Output]:
        """The server closes ``conn`` (idle, a line too slow, making room): ``notice`` to it, then close;
        the others read that it left for ``reason``. Unknown ``conn``: nothing."""
        if conn not in self._nicks:
            return []
        return [Delivery(conn, notice, close=True), *self.leave(conn, reason)]

    def shutdown(self) -> list[Output]:
        """The server is stopping: tell everyone and close every connection."""
        notice = _line("* server shutting down")
        deliveries: list[Output] = [Delivery(conn, notice, close=True) for conn in self._nicks]
        # No per-member departure notices: everyone is leaving at once (and n² of them would be slow).
        self._nicks.clear()
        self._by_key.clear()
        self._announced.clear()
        return deliveries

    # -- what members say ----------------------------------------------------

    def receive_line(self, conn: ConnId, line: bytes) -> list[Output]:
        """Act on one line from ``conn`` (without its ``\\n``): a command, or words for the room."""
        if conn not in self._nicks:
            raise LocalProtocolError(f"connection {conn} is not in the room")
        try:
            text = clean_text(line.decode("utf-8")).strip()
        except UnicodeDecodeError:
            return self.error(conn, "invalid UTF-8 (send text encoded as UTF-8)")
        if not text:
            return []  # a bare Enter in nc: nothing to say
        if text.startswith("//"):
            return self._say(conn, text[1:])  # "//x" says "/x" to the room
        if text.startswith("/"):
            return self._command(conn, text)
        return self._say(conn, text)

    def error(self, conn: ConnId, message: str) -> list[Output]:
        """An ``error:`` line for ``conn`` alone (also used by the framing for over-long lines)."""
        self._emit("error", conn=conn, nick=self._nicks.get(conn), error=message)
        return [Delivery(conn, error_line(message))]

    def _say(self, conn: ConnId, text: str) -> list[Output]:
        return [*self.announce(conn), *self._to_others(conn, _line(f"<{self._nicks[conn]}> {text}"))]

    def _command(self, conn: ConnId, text: str) -> list[Output]:
        name, _, rest = text.partition(" ")
        rest = rest.strip()
        match name.lower():
            case "/nick":
                return self._rename(conn, rest)
            case "/who":
                return self._who(conn)
            case "/msg":
                return self._private(conn, rest)
            case "/quit":
                return self._quit(conn)
            case "/help":
                return [Delivery(conn, _line(f"* commands: {COMMANDS}; anything else is said to the room"))]
            case _:
                return self.error(conn, f"unknown command {name} (commands: {COMMANDS})")

    def _rename(self, conn: ConnId, nick: str) -> list[Output]:
        if not nick:
            return self.error(conn, "usage: /nick NAME")
        if not valid_nick(nick):
            return self.error(conn, f"invalid nick {nick!r} (1-{MAX_NICK} letters, digits, _ or -)")
        holder = self._by_key.get(nick.casefold())
        if holder is not None and holder != conn:
            return self.error(conn, f"nick {nick} is taken")
        old = self._nicks[conn]
        del self._by_key[old.casefold()]
        self._add(conn, nick)
        self._emit("nick", conn=conn, old=old, new=nick)
        mine = Delivery(conn, _line(f"* you are now {nick}"))
        if conn not in self._announced:  # the others first hear of it under the nick it chose
            return [mine, *self.announce(conn)]
        return [mine, *self._to_others(conn, _line(f"* {old} is now {nick}"))]

    def _who(self, conn: ConnId) -> list[Output]:
        nicks = self.nicks()
        return [Delivery(conn, _line(f"* here ({len(nicks)}): {', '.join(nicks)}"))]

    def _private(self, conn: ConnId, rest: str) -> list[Output]:
        target, _, words = rest.partition(" ")
        words = words.strip()
        if not target or not words:
            return self.error(conn, "usage: /msg NICK TEXT")
        to = self._by_key.get(target.casefold())
        if to is None:
            return self.error(conn, f"no such nick: {target}")
        sender, receiver = self._nicks[conn], self._nicks[to]
        return [
            *self.announce(conn),
            Delivery(to, _line(f"*{sender}* {words}")),
            Delivery(conn, _line(f"-> *{receiver}* {words}")),
        ]

    def _quit(self, conn: ConnId) -> list[Output]:
        bye = Delivery(conn, _line(f"* bye, {self._nicks[conn]}"), close=True)
        return [bye, *self.leave(conn, "quit")]

    # -- bookkeeping ---------------------------------------------------------

    def _fresh_guest(self) -> str:
        while True:
            self._guests += 1
            nick = f"guest{self._guests}"
            if nick.casefold() not in self._by_key:  # someone may have taken it with /nick
                return nick

    def _add(self, conn: ConnId, nick: str) -> None:
        self._nicks[conn] = nick
        self._by_key[nick.casefold()] = conn

    def _remove(self, conn: ConnId, what: str, *, event: str, reason: str) -> list[Output]:
        nick = self._nicks.pop(conn, None)
        if nick is None:
            return []
        del self._by_key[nick.casefold()]
        self._emit(event, conn=conn, nick=nick, reason=reason)
        if conn not in self._announced:
            return []  # never announced: its leaving is no news either
        self._announced.discard(conn)
        return self._presence(conn, f"* {nick} {what}", joined=False)

    def _to_others(self, conn: ConnId, data: bytes) -> list[Output]:
        others = [*self._nicks]
        if conn in self._nicks:
            others.remove(conn)
        return [Broadcast(tuple(others), data)] if others else []

    def _emit(self, event: str, **fields: object) -> None:
        if self._on_event is not None:
            self._on_event(event, **fields)


class ChatConnection:
    """One member's byte stream, framed into lines for the room.

    ``feed`` takes what was received (``b""`` at EOF); ``deliveries`` turns up to
    ``max_lines`` whole lines into deliveries, so a carrier can take turns
    between a flooding client and everyone else (``backlog`` says lines may
    remain). An over-long line costs its sender one error line and nothing else.
    After ``/quit`` or EOF, ``finished`` is true and input is ignored.
    """

    def __init__(self, room: ChatRoom, conn: ConnId, *, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.room = room
        self.conn = conn
        self._lines = LineBuffer(max_line=max_line)
        self.backlog = False
        self.finished = False

    def start(self) -> list[Output]:
        """Join the room."""
        return self.room.join(self.conn)

    def feed(self, data: bytes) -> None:
        """Buffer received bytes; ``b""`` means the peer closed its side."""
        if self.finished:
            return
        if not data and self._lines.pending:
            self._lines.feed(b"\n")  # a last line without its newline still counts
        self._lines.feed(data)
        self.backlog = True

    def deliveries(self, *, max_lines: int | None = None) -> list[Output]:
        """Handle up to ``max_lines`` buffered lines (all when ``None``), then EOF if it came."""
        out: list[Output] = []
        handled = 0
        while self._present():
            if max_lines is not None and handled >= max_lines:
                return out  # backlog stays True: call again later
            handled += 1
            try:
                line = self._lines.next_line()
            except LineTooLong as exc:
                out += self.room.error(self.conn, str(exc))
                continue
            if line is None:
                break
            out += self.room.receive_line(self.conn, line)
        self.backlog = False
        if self._lines.eof and self._present():
            self.finished = True
            out += self.room.leave(self.conn, "disconnected")
            out.append(Delivery(self.conn, b"", close=True))
        return out

    def _present(self) -> bool:
        """Still in the room: not after /quit, EOF, or being dropped by the server."""
        if not self.finished and self.conn not in self.room:
            self.finished = True
        return not self.finished

    def receive_data(self, data: bytes) -> list[Output]:
        """``feed`` then ``deliveries`` for every line: the simple, unbudgeted way."""
        self.feed(data)
        return self.deliveries()
