"""``python -m clients.workloads.chat``: members of one room send numbered messages; everyone records what came.

Each member (``m1``, ``m2``, ...) is a thread with its own connection. It waits for
the greeting's presence line (``* here: ...``, ``* nobody else is here yet``), says
``join``, then sends ``chaos TAG MEMBER SEQ`` every interval and records every such
line it reads from the others (``recv``). Sequence numbers run on across
reconnections, so a message lost while a member was away shows as a gap.

When a connection breaks (EOF, reset, a send that times out) the member says
``error`` and comes back with backoff. On SIGTERM everyone stops sending, and each
member keeps reading until it has every other member's last message, or for at
most ``DRAIN_SECONDS``; then it says ``/quit``.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import select
import socket
import sys
import threading
import time

from clients.workloads.common import CONNECT_TIMEOUT, Backoff, Events, Resolver, Stop, describe, parser, run
from protocols.chat import PORT
from protocols.framing import LineBuffer

GREETING_TIMEOUT = 5.0
SEND_TIMEOUT = 5.0  # a send that waits this long has no connection behind it
DRAIN_SECONDS = 10.0
_PRESENCE = re.compile(r"\* (here: |nobody else is here yet|\d+ others here)")
MAX_INCOMING_LINE = 1 << 16


class Room:
    """What the members share: who sent what last, and who has read whom up to where."""

    def __init__(self, members: list[str]) -> None:
        self.lock = threading.Lock()
        self.last_sent = dict.fromkeys(members, 0)
        self.read = {m: dict.fromkeys(members, 0) for m in members}
        self.joined: set[str] = set()
        self.connected: set[str] = set()
        self.stopped = threading.Event()  # sending is over; draining

    def caught_up(self, member: str) -> bool:
        """Whether ``member`` has read the last message of every other member still connected."""
        with self.lock:
            return all(self.read[member][other] >= self.last_sent[other]
                       for other in self.connected if other != member)  # fmt: skip


class Member:
    """One member's life: connect, greet, talk, drain, come back after a fault."""

    def __init__(self, name: str, room: Room, args: argparse.Namespace, events: Events, stop: Stop) -> None:
        self.name, self.room, self.args, self.events, self.stop = name, room, args, events, stop
        self.pattern = re.compile(rf"<[^>]*> chaos {re.escape(args.tag)} (m\d+) (\d+)")
        self.session = 0
        self.server = Resolver(args.host, args.port)

    def live(self) -> None:
        backoff = Backoff()
        while not self.stop.is_set():
            try:
                sock = self.server.connect()
            except OSError as exc:
                self.events.emit("error", member=self.name, what=f"connect: {describe(exc)}")
                backoff.wait(self.stop)
                continue
            try:
                with sock:
                    sock.settimeout(SEND_TIMEOUT)
                    lines = LineBuffer(max_line=MAX_INCOMING_LINE)
                    self._greeted(sock, lines)
                    backoff.reset()
                    self.session += 1
                    with self.room.lock:
                        self.room.connected.add(self.name)
                        self.room.joined.add(self.name)
                    self.events.emit("join", member=self.name, session=self.session)
                    self._talk(sock, lines)
                    self._drain(sock, lines)
                    return
            except (OSError, ConnectionError) as exc:
                self.events.emit("error", member=self.name, what=describe(exc))
            finally:
                with self.room.lock:
                    self.room.connected.discard(self.name)
            backoff.wait(self.stop)

    def _greeted(self, sock: socket.socket, lines: LineBuffer) -> None:
        deadline = time.monotonic() + GREETING_TIMEOUT
        while True:
            for line in self._read(sock, lines, until=deadline):
                if _PRESENCE.match(line):
                    return
            if time.monotonic() >= deadline:
                raise TimeoutError("no greeting")

    def _talk(self, sock: socket.socket, lines: LineBuffer) -> None:
        due = time.monotonic()
        while not self.stop.is_set():
            if time.monotonic() >= due:
                with self.room.lock:
                    seq = self.room.last_sent[self.name] + 1
                # Timed before it goes: a member whose join was recorded after this moment may rightly miss
                # it (the server had it first); timed after sendall, a busy machine once made it look owed.
                began = time.monotonic()
                sock.sendall(f"chaos {self.args.tag} {self.name} {seq}\n".encode())
                with self.room.lock:
                    self.room.last_sent[self.name] = seq
                self.events.emit("send", at=began, member=self.name, seq=seq)
                due = max(due + self.args.interval, time.monotonic())
            self._record(self._read(sock, lines, until=min(due, time.monotonic() + 0.5)))

    def _drain(self, sock: socket.socket, lines: LineBuffer) -> None:
        deadline = time.monotonic() + DRAIN_SECONDS
        while not self.room.caught_up(self.name) and time.monotonic() < deadline:
            self._record(self._read(sock, lines, until=min(deadline, time.monotonic() + 0.2)))
        self.events.emit("left", member=self.name, caught_up=self.room.caught_up(self.name))
        with contextlib.suppress(OSError):  # leaving politely; a broken connection now changes nothing
            sock.sendall(b"/quit\n")

    def _read(self, sock: socket.socket, lines: LineBuffer, *, until: float) -> list[str]:
        """The whole lines that arrive before ``until`` (at least those already there); EOF raises."""
        readable, _, _ = select.select([sock], [], [], max(0.0, until - time.monotonic()))
        if readable:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("EOF")
            lines.feed(data)
        return [line.decode("utf-8", errors="replace") for line in lines.lines()]

    def _record(self, texts: list[str]) -> None:
        for text in texts:
            match = self.pattern.fullmatch(text)
            if match is None:
                continue  # notices: joins, departures
            sender, seq = match[1], int(match[2])
            with self.room.lock:
                if sender in self.room.read[self.name]:
                    self.room.read[self.name][sender] = max(self.room.read[self.name][sender], seq)
            self.events.emit("recv", member=self.name, sender=sender, seq=seq)


def main(args: argparse.Namespace, events: Events, stop: Stop) -> None:
    names = [f"m{i}" for i in range(1, args.members + 1)]
    room = Room(names)
    members = [Member(name, room, args, events, stop) for name in names]
    threads = [threading.Thread(target=m.live, name=m.name, daemon=True) for m in members]
    for thread in threads:
        thread.start()
    while not stop.wait(0.1):
        with room.lock:
            everyone = len(room.joined) == len(names)
        if everyone:
            events.emit("ready")
            break
    while not stop.wait(0.5):
        pass
    events.emit("stop")
    for thread in threads:
        thread.join(DRAIN_SECONDS + SEND_TIMEOUT + GREETING_TIMEOUT + CONNECT_TIMEOUT)


def build() -> argparse.ArgumentParser:
    command = parser("chat", "Members of one chat room send numbered messages; everyone records what came.",
                     port=PORT, interval=0.25)  # fmt: skip
    command.add_argument("--members", type=int, default=3, help="how many members (default: %(default)s)")
    return command


if __name__ == "__main__":
    sys.exit(run(main, build))
