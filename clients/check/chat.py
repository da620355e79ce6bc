"""The chat room (protocols.chat): greeting, nicks, the room, private messages, /who, /quit, slow readers.

Every member the checks bring takes a fresh nick with a random suffix, and
every wait skips the room's other traffic, so the checks also hold in a room
where people are talking.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from types import TracebackType

from clients.check.core import Check, CheckFailed, Context, Suite, show
from clients.check.wire import Stream
from protocols.chat import GREETING, PORT

GREETING_LINES = 4
FLOOD_LINES = 512
FLOOD_LINE = 4000  # bytes: 2 MiB in all, more than the kernel buffers in front of a member who never reads
SLOW_RCVBUF = 4096
SLOW_MSS = 1400  # see clients.check.echo.SLOW_READER_MSS: loopback's huge segments hide a blocked sender


class Member:
    """One connection to the room, by a name used in the transcript (and, with a suffix, as its nick)."""

    def __init__(self, context: Context, who: str, *, rcvbuf: int | None = None, mss: int | None = None) -> None:
        self.stream = Stream(context, who=who, rcvbuf=rcvbuf, mss=mss)
        self.who = who
        self.nick = ""

    def __enter__(self) -> Member:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stream.close()

    def say(self, text: str) -> None:
        self.stream.send(text.encode() + b"\n")

    def greeting(self) -> str:
        """Read the greeting; the guest nick it gives."""
        lines = [
            self.stream.line(expecting=f"greeting line {i + 1} of {GREETING_LINES}") for i in range(GREETING_LINES)
        ]
        if lines[0] != GREETING.encode():
            raise CheckFailed(f"the first line is {show(lines[0])}", expected=f"{GREETING!r}, then three notices")
        if not lines[1].startswith(b"* you are "):
            raise CheckFailed(f"the second line is {show(lines[1])}", expected="* you are guestN; pick a nick ...")
        if not all(line.startswith(b"* ") for line in lines[2:]):
            raise CheckFailed("the greeting's last lines are not notices", expected="* commands: ...; * here: ...")
        self.nick = lines[1].removeprefix(b"* you are ").split(b";")[0].decode("utf-8", errors="replace")
        return self.nick

    def until(self, wanted: Callable[[bytes], bool], *, expecting: str) -> tuple[list[bytes], bytes]:
        """Read lines until one is ``wanted``: the lines before it (the room's other traffic), and it."""
        skipped: list[bytes] = []
        while not wanted(line := self.stream.line(expecting=expecting)):
            skipped.append(line)
        return skipped, line

    def until_line(self, text: str) -> list[bytes]:
        """Read up to the line ``text``; the lines before it."""
        wanted = text.encode()
        return self.until(lambda line: line == wanted, expecting=repr(text))[0]

    def join(self) -> Member:
        """Greeting read and a fresh nick taken (``<who><random>``)."""
        self.greeting()
        nick = f"{self.who}{secrets.token_hex(3)}"
        self.say(f"/nick {nick}")
        self.until_line(f"* you are now {nick}")
        self.nick = nick
        return self


def greeting(context: Context) -> str | None:
    with Member(context, "alice") as alice:
        return f"arrived as {alice.greeting()}"


def nick(context: Context) -> str | None:
    with Member(context, "alice") as alice:
        alice.join()
    return None


def broadcast(context: Context) -> str | None:
    """What one member says, the other reads as ``<nick> text``; the speaker does not get it back."""
    with Member(context, "alice").join() as alice, Member(context, "bob").join() as bob:
        said = f"hello from alice {secrets.token_hex(4)}"
        alice.say(said)
        bob.until_line(f"<{alice.nick}> {said}")
        alice.say("/who")
        before, _ = alice.until(lambda line: line.startswith(b"* here ("), expecting="answer to /who")
        if any(said.encode() in line for line in before):
            raise CheckFailed("the speaker got its own words back", expected="what a member says goes to the others")
    return None


def private(context: Context) -> str | None:
    """``/msg NICK TEXT``: NICK reads ``*sender* TEXT``, the sender ``-> *NICK* TEXT``."""
    with Member(context, "alice").join() as alice, Member(context, "bob").join() as bob:
        words = f"psst {secrets.token_hex(4)}"
        alice.say(f"/msg {bob.nick} {words}")
        bob.until_line(f"*{alice.nick}* {words}")
        alice.until_line(f"-> *{bob.nick}* {words}")
    return None


def who(context: Context) -> str | None:
    """``/who`` lists everyone here, both members included."""
    with Member(context, "alice").join() as alice, Member(context, "bob").join() as bob:
        alice.say("/who")
        _, answer = alice.until(lambda line: line.startswith(b"* here ("), expecting="answer to /who")
        listed = answer.partition(b"): ")[2].decode("utf-8", errors="replace").split(", ")
        missing = [member.nick for member in (alice, bob) if member.nick not in listed]
        if missing:
            raise CheckFailed(f"/who leaves out {', '.join(missing)}", expected="* here (N): every nick in the room")
        return f"{len(listed)} here"


def quit_(context: Context) -> str | None:
    """``/quit``: ``* bye, NICK``, then the server closes; the others read ``* NICK left (quit)``."""
    with Member(context, "alice").join() as alice, Member(context, "bob").join() as bob:
        alice.say("/quit")
        alice.until_line(f"* bye, {alice.nick}")
        alice.stream.eof(after="the goodbye")
        told = f"* {alice.nick} left (quit)".encode()
        # Past a few arrivals and departures a second the room counts them into one line
        # (protocols.chat.PRESENCE_BURST); a run of checks makes that many. Then /who must say she went.
        _, line = bob.until(
            lambda line: line == told or line.endswith(b" left (/who lists who is here)"),
            expecting=f"* {alice.nick} left (quit)",
        )
        if line != told:
            bob.say("/who")
            _, answer = bob.until(lambda line: line.startswith(b"* here ("), expecting="answer to /who")
            if alice.nick in answer.partition(b"): ")[2].decode("utf-8", errors="replace").split(", "):
                raise CheckFailed(f"{alice.nick} quit but /who still lists her", expected="/quit leaves the room")
    return None


def slow_reader(context: Context) -> str | None:
    """A member who never reads must not stall the room: while alice floods, bob reads all of it."""
    with (
        Member(context, "alice").join() as alice,
        Member(context, "bob").join() as bob,
        Member(context, "slow", rcvbuf=SLOW_RCVBUF, mss=SLOW_MSS) as slow,
    ):
        slow_nick = slow.greeting()
        slow.stream.note("(a small window; reads nothing more, ever)")
        # In the room before the flood: /who says so at once (a silent member may be announced only later).
        alice.say("/who")
        _, answer = alice.until(lambda line: line.startswith(b"* here ("), expecting="answer to /who")
        if slow_nick not in answer.partition(b"): ")[2].decode("utf-8", errors="replace").split(", "):
            raise CheckFailed(f"/who does not list {slow_nick}, who has joined", expected=f"{slow_nick} in /who")
        marker = f"done {secrets.token_hex(4)}"
        reader = _Reader(bob, f"<{alice.nick}> {marker}".encode())
        flood = "x" * FLOOD_LINE
        alice.stream.note(f"> {FLOOD_LINES} lines of {FLOOD_LINE} B ('xxx...'), then {marker!r}")
        try:
            for _ in range(FLOOD_LINES):
                alice.stream.send(flood.encode() + b"\n", record=False)
            alice.say(marker)
        except CheckFailed as exc:
            raise CheckFailed(
                f"the room stalled behind a member who does not read: {exc.detail}",
                expected="the server drops (or buffers for) a member who does not read; the others go on",
            ) from exc
        finally:
            trouble = reader.join(context)
        if trouble is not None:
            raise CheckFailed(
                f"the room stalled behind a member who does not read: bob read {reader.count} lines, then "
                f"{trouble.detail}",
                expected="bob reads everything alice says while another member reads nothing",
            )
        gone = f"* {slow_nick} ".encode()
        dropped = any(line.startswith(gone) and (b" dropped" in line or b" left" in line) for line in reader.lines)
    return f"bob read {reader.count} lines; the member who reads nothing was {'dropped' if dropped else 'kept'}"


class _Reader:
    """Bob, reading in a thread until he sees ``wanted`` (a member that keeps up, as a live client does)."""

    def __init__(self, member: Member, wanted: bytes) -> None:
        self.member, self.wanted = member, wanted
        self.count = 0
        self.lines: list[bytes] = []  # the notices among what he read
        self.error: CheckFailed | None = None
        self._thread = threading.Thread(target=self._run, name="check-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (line := self.member.stream.line(expecting="more of alice's lines", record=False)) != self.wanted:
                self.count += 1
                if line.startswith(b"* "):
                    self.lines.append(line)
            self.member.stream.context.transcript.line(line, who="bob ")
        except CheckFailed as exc:
            self.error = exc

    def join(self, context: Context) -> CheckFailed | None:
        self._thread.join(max(0.0, context.remaining()))
        if self._thread.is_alive():
            self.member.stream.abort()
            self._thread.join(1.0)
            return CheckFailed(f"did not see the end of the flood in time ({self.count} lines read)")
        return self.error


SUITE = Suite(
    "chat",
    PORT,
    (
        Check("chat.greeting", greeting, "on connect: the welcome line and three notices naming the guest nick"),
        Check("chat.nick", nick, "/nick NAME: * you are now NAME"),
        Check("chat.broadcast", broadcast, "what one member says, another reads as <nick> text"),
        Check("chat.msg", private, "/msg NICK TEXT reaches NICK alone, and is echoed to the sender"),
        Check("chat.who", who, "/who lists everyone here"),
        Check("chat.quit", quit_, "/quit: goodbye, the server closes, the others are told"),
        Check("chat.slow-reader", slow_reader, "a member who never reads does not stall the others", 6.0),
    ),
)
