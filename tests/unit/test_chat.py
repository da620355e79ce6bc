"""The chat room without sockets: commands, broadcasts, nick rules, framing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.chat import (
    PRESENCE_BURST,
    Broadcast,
    ChatConnection,
    ChatRoom,
    Delivery,
    Output,
    clean_text,
    each_delivery,
    full_message,
    valid_nick,
)
from protocols.errors import LocalProtocolError


def lines_for(deliveries: list[Output], conn: int) -> list[str]:
    """Every line ``conn`` receives, decoded, in order."""
    data = b"".join(d.data for d in each_delivery(deliveries) if d.conn == conn)
    assert data == b"" or data.endswith(b"\n")
    return data.decode().splitlines()


def say(room: ChatRoom, conn: int, text: str | bytes) -> list[Output]:
    return room.receive_line(conn, text.encode() if isinstance(text, str) else text)


def present(room: ChatRoom, conn: int) -> list[Output]:
    """Join ``conn`` and announce it, as a member who has been here a while; a fresh presence window after."""
    out = [*room.join(conn), *room.announce(conn)]
    room.tick()
    return out


@pytest.fixture
def room() -> ChatRoom:
    """A room with guest1 (conn 1), guest2 (conn 2) and guest3 (conn 3), all announced."""
    room = ChatRoom()
    for conn in (1, 2, 3):
        present(room, conn)
    return room


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, object]]] = []

    def __call__(self, event: str, /, **fields: object) -> None:
        self.events.append((event, fields))


# -- joining and leaving -------------------------------------------------------


def test_first_join_greets_and_assigns_a_guest_nick() -> None:
    room = ChatRoom()
    out = room.join(7)
    assert lines_for(out, 7) == [
        "Welcome to my chat room!",
        "* you are guest1; pick a nick with /nick NAME",
        "* commands: /nick NAME, /who, /msg NICK TEXT, /quit, /help; anything else is said to the room",
        "* nobody else is here yet",
    ]
    assert room.nick(7) == "guest1"


def test_join_is_announced_to_the_others_and_lists_them_to_the_newcomer() -> None:
    room = ChatRoom()
    room.join(1)
    say(room, 1, "/nick zed")
    room.join(2)
    greeted = room.join(3)
    assert lines_for(greeted, 3)[-1] == "* here: guest2, zed"  # the quiet guest2 is listed: it can read
    out = room.announce(3)
    assert lines_for(out, 1) == ["* guest3 joined"]
    assert lines_for(out, 2) == ["* guest3 joined"]
    assert room.announce(3) == []  # once


def test_a_crowd_is_counted_not_listed_in_the_greeting() -> None:
    room = ChatRoom()
    for conn in range(30):
        room.join(conn)
    assert lines_for(room.join(99), 99)[-1] == "* 30 others here (/who lists them)"


def test_joining_twice_is_a_local_error(room: ChatRoom) -> None:
    with pytest.raises(LocalProtocolError):
        room.join(1)


def test_guest_numbers_skip_a_nick_someone_took() -> None:
    room = ChatRoom()
    room.join(1)
    say(room, 1, "/nick guest2")
    room.join(2)
    assert room.nick(2) == "guest3"


def test_leave_is_announced_to_the_others(room: ChatRoom) -> None:
    out = room.leave(2, "disconnected")
    assert lines_for(out, 1) == lines_for(out, 3) == ["* guest2 left (disconnected)"]
    assert lines_for(out, 2) == []
    assert 2 not in room
    assert room.leave(2, "disconnected") == []  # the second report of one departure says nothing


def test_drop_and_expire_notices(room: ChatRoom) -> None:
    dropped = room.drop(1, "too slow")
    assert lines_for(dropped, 2) == ["* guest1 dropped (too slow)"]
    assert lines_for(dropped, 1) == []
    expired = room.expire(2, 600)
    assert expired[0] == Delivery(2, b"* closing: nothing received for 600 s\n", close=True)
    assert lines_for(expired, 3) == ["* guest2 left (idle)"]
    assert room.nicks() == ["guest3"]


def test_dismiss_tells_its_member_why_then_closes_and_tells_the_room(room: ChatRoom) -> None:
    notice = b"error: line not completed within 30 s, closing\n"
    out = room.dismiss(1, notice, "line too slow")
    assert out[0] == Delivery(1, notice, close=True)
    assert lines_for(out, 2) == ["* guest1 left (line too slow)"]
    assert room.nicks() == ["guest2", "guest3"]
    assert room.dismiss(1, notice, "again") == []  # gone already: nothing


def test_shutdown_tells_and_closes_everyone(room: ChatRoom) -> None:
    out = each_delivery(room.shutdown())
    assert sorted(d.conn for d in out) == [1, 2, 3]
    assert all(d.close and d.data == b"* server shutting down\n" for d in out)
    assert len(room) == 0


def test_events_are_reported() -> None:
    recorder = Recorder()
    room = ChatRoom(on_event=recorder)
    room.join(1)
    say(room, 1, "/nick ann")
    say(room, 1, "/nope")
    room.leave(1, "quit")
    assert [event for event, _ in recorder.events] == ["join", "nick", "error", "leave"]
    assert recorder.events[1][1] == {"conn": 1, "old": "guest1", "new": "ann"}


# -- talking -------------------------------------------------------------------


def test_a_line_goes_to_everyone_else(room: ChatRoom) -> None:
    out = say(room, 1, "hello, world")
    assert lines_for(out, 2) == lines_for(out, 3) == ["<guest1> hello, world"]
    assert lines_for(out, 1) == []


def test_utf8_text_passes_and_control_characters_do_not(room: ChatRoom) -> None:
    out = say(room, 1, "caf\u00e9 \x1b[2J\u2603\x07")
    assert lines_for(out, 2) == ["<guest1> caf\u00e9 [2J\u2603"]


def test_invalid_utf8_is_an_error_to_the_sender_only(room: ChatRoom) -> None:
    out = say(room, 1, b"caf\xe9")
    assert out == [Delivery(1, b"error: invalid UTF-8 (send text encoded as UTF-8)\n")]


def test_a_blank_line_says_nothing(room: ChatRoom) -> None:
    assert say(room, 1, "   ") == []


def test_double_slash_says_a_line_that_starts_with_slash(room: ChatRoom) -> None:
    assert lines_for(say(room, 1, "//shrug"), 2) == ["<guest1> /shrug"]


def test_a_line_from_a_stranger_is_a_local_error(room: ChatRoom) -> None:
    with pytest.raises(LocalProtocolError):
        say(room, 42, "hi")


# -- commands ------------------------------------------------------------------


def test_nick_renames_and_tells_everyone(room: ChatRoom) -> None:
    out = say(room, 1, "/nick alice")
    assert lines_for(out, 1) == ["* you are now alice"]
    assert lines_for(out, 2) == ["* guest1 is now alice"]
    assert lines_for(say(room, 1, "hi"), 3) == ["<alice> hi"]


@pytest.mark.parametrize(
    "nick",
    ["a b", "x" * 33, "al!ce", "\u00e5sa", "bob.smith", "caf\u0435"],  # last one: Cyrillic e
)
def test_invalid_nicks_are_refused(room: ChatRoom, nick: str) -> None:
    out = each_delivery(say(room, 1, f"/nick {nick}"))
    assert len(out) == 1
    assert out[0].conn == 1
    assert out[0].data.startswith(b"error: invalid nick ")
    assert room.nick(1) == "guest1"


def test_nick_without_a_name_shows_usage(room: ChatRoom) -> None:
    assert lines_for(say(room, 1, "/nick"), 1) == ["error: usage: /nick NAME"]


@pytest.mark.parametrize("nick", ["a", "x" * 32, "A_b-9", "___"])
def test_valid_nicks(nick: str) -> None:
    assert valid_nick(nick)


def test_nicks_are_unique_ignoring_case(room: ChatRoom) -> None:
    say(room, 1, "/nick Bob")
    out = say(room, 2, "/nick bob")
    assert lines_for(out, 2) == ["error: nick bob is taken"]
    assert lines_for(out, 1) == []
    assert room.nick(2) == "guest2"


def test_changing_the_case_of_your_own_nick_is_allowed(room: ChatRoom) -> None:
    say(room, 1, "/nick bob")
    assert lines_for(say(room, 1, "/nick BOB"), 1) == ["* you are now BOB"]


def test_who_lists_every_nick_sorted(room: ChatRoom) -> None:
    say(room, 2, "/nick Zoe")
    say(room, 3, "/nick adam")
    out = say(room, 1, "/WHO")
    assert out == [Delivery(1, b"* here (3): adam, guest1, Zoe\n")]


def test_msg_goes_to_one_member_and_is_echoed(room: ChatRoom) -> None:
    say(room, 2, "/nick bob")
    out = say(room, 1, "/msg BOB  meet me at noon")
    assert lines_for(out, 2) == ["*guest1* meet me at noon"]
    assert lines_for(out, 1) == ["-> *bob* meet me at noon"]
    assert lines_for(out, 3) == []


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("/msg carol hi", "error: no such nick: carol"),
        ("/msg guest2", "error: usage: /msg NICK TEXT"),
        ("/msg", "error: usage: /msg NICK TEXT"),
    ],
)
def test_msg_errors(room: ChatRoom, line: str, error: str) -> None:
    out = say(room, 1, line)
    assert out == [Delivery(1, (error + "\n").encode())]


def test_quit_says_bye_closes_and_tells_the_others(room: ChatRoom) -> None:
    say(room, 1, "/nick alice")
    out = say(room, 1, "/quit")
    assert out[0] == Delivery(1, b"* bye, alice\n", close=True)
    assert lines_for(out, 2) == lines_for(out, 3) == ["* alice left (quit)"]
    assert 1 not in room


def test_unknown_command_is_an_error_with_help(room: ChatRoom) -> None:
    out = say(room, 1, "/dance wildly")
    assert out == [
        Delivery(1, b"error: unknown command /dance (commands: /nick NAME, /who, /msg NICK TEXT, /quit, /help)\n")
    ]


def test_help_lists_the_commands(room: ChatRoom) -> None:
    assert lines_for(say(room, 1, "/help"), 1) == [
        "* commands: /nick NAME, /who, /msg NICK TEXT, /quit, /help; anything else is said to the room"
    ]


def test_full_message() -> None:
    assert full_message(1000) == b"error: server full (1000 clients), try again later\n"


# -- framing -------------------------------------------------------------------


def joined(room: ChatRoom, conn: int, *, max_line: int = 4096) -> ChatConnection:
    connection = ChatConnection(room, conn, max_line=max_line)
    connection.start()
    room.announce(conn)
    room.tick()
    return connection


def test_lines_split_across_chunks_are_put_together() -> None:
    room = ChatRoom()
    alice, _bob = joined(room, 1), joined(room, 2)
    assert alice.receive_data(b"hel") == []
    out = alice.receive_data(b"lo\r\nagain\n")
    assert lines_for(out, 2) == ["<guest1> hello", "<guest1> again"]


def test_an_over_long_line_costs_its_sender_one_error_line() -> None:
    room = ChatRoom()
    alice, _bob = joined(room, 1), joined(room, 2)
    out = alice.receive_data(b"x" * 5000 + b"\nok\n")
    assert lines_for(out, 1) == ["error: line longer than 4096 bytes"]
    assert lines_for(out, 2) == ["<guest1> ok"]


def test_an_over_long_line_in_pieces_is_one_error() -> None:
    room = ChatRoom()
    alice, _bob = joined(room, 1), joined(room, 2)
    out: list[Output] = []
    for _ in range(5):
        out += alice.receive_data(b"y" * 2000)
    out += alice.receive_data(b"\nafter\n")
    assert lines_for(out, 1) == ["error: line longer than 4096 bytes"]
    assert lines_for(out, 2) == ["<guest1> after"]


def test_eof_leaves_the_room_and_closes() -> None:
    room = ChatRoom()
    alice, _bob = joined(room, 1), joined(room, 2)
    out = alice.receive_data(b"last words")  # no newline yet
    out += alice.receive_data(b"")
    assert lines_for(out, 2) == ["<guest1> last words", "* guest1 left (disconnected)"]
    assert out[-1] == Delivery(1, b"", close=True)
    assert alice.finished
    assert alice.receive_data(b"more\n") == []


def test_quit_ends_the_connection_and_ignores_what_follows() -> None:
    room = ChatRoom()
    alice, _bob = joined(room, 1), joined(room, 2)
    out = alice.receive_data(b"/quit\nnot said\n")
    assert lines_for(out, 2) == ["* guest1 left (quit)"]
    assert alice.finished


def test_lines_are_handled_in_budgeted_turns() -> None:
    room = ChatRoom()
    alice, _bob = joined(room, 1), joined(room, 2)
    alice.feed(b"".join(b"line %d\n" % i for i in range(10)))
    first = alice.deliveries(max_lines=4)
    assert lines_for(first, 2) == [f"<guest1> line {i}" for i in range(4)]
    assert alice.backlog
    rest = alice.deliveries(max_lines=100)
    assert len(lines_for(rest, 2)) == 6
    assert not alice.backlog


def test_a_dropped_member_backlog_is_ignored() -> None:
    room = ChatRoom()
    alice, _bob = joined(room, 1), joined(room, 2)
    alice.feed(b"a\nb\n")
    room.drop(1, "too slow")
    assert alice.deliveries() == []
    assert alice.finished


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_line_gets_well_formed_deliveries(line: bytes) -> None:
    room = ChatRoom()
    for conn in (1, 2):
        room.join(conn)
    for delivery in each_delivery(room.receive_line(1, line)):
        assert delivery.data.endswith(b"\n")
        assert delivery.data.count(b"\n") == 1  # one line per delivery: nobody can inject a second
        assert delivery.conn in (1, 2)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=8), st.booleans())
def test_any_byte_stream_never_breaks_the_room(chunks: list[bytes], eof: bool) -> None:
    room = ChatRoom()
    alice = joined(room, 1, max_line=64)
    bob = joined(room, 2, max_line=64)
    for chunk in [*chunks, *([b""] if eof else [])]:
        for delivery in each_delivery(alice.receive_data(chunk)):
            assert delivery.data.endswith(b"\n") or (delivery.data == b"" and delivery.close)
    assert (2 in room) and not bob.finished  # whatever alice sent, bob is still there
    assert lines_for(room.receive_line(2, b"still here"), 1) in ([], ["<guest2> still here"])


# -- who is announced, and how often -------------------------------------------


def test_a_connection_that_never_speaks_is_never_announced(room: ChatRoom) -> None:
    greeted = room.join(9)  # a health check's bare connect
    assert [d.conn for d in each_delivery(greeted)] == [9]
    assert room.leave(9, "disconnected") == []
    assert room.join(10) and say(room, 10, "/who") and say(room, 10, "/help")
    assert room.leave(10, "quit") == []  # looking around is not showing yourself


def test_speaking_announces_first(room: ChatRoom) -> None:
    room.join(9)
    out = say(room, 9, "hi")
    assert lines_for(out, 1) == ["* guest4 joined", "<guest4> hi"]
    assert lines_for(say(room, 9, "again"), 1) == ["<guest4> again"]
    assert lines_for(room.leave(9, "disconnected"), 1) == ["* guest4 left (disconnected)"]


def test_a_first_nick_is_announced_under_that_nick(room: ChatRoom) -> None:
    room.join(9)
    out = say(room, 9, "/nick ann")
    assert lines_for(out, 9) == ["* you are now ann"]
    assert lines_for(out, 1) == ["* ann joined"]  # not "* guest4 is now ann": nobody knew guest4


def test_a_private_message_announces_its_sender(room: ChatRoom) -> None:
    room.join(9)
    out = say(room, 9, "/msg guest1 psst")
    assert lines_for(out, 1) == ["* guest4 joined", "*guest4* psst"]
    assert lines_for(out, 2) == ["* guest4 joined"]


def test_churn_is_told_in_a_few_lines_then_counted(room: ChatRoom) -> None:
    out: list[Output] = []
    for conn in range(100, 200):  # 100 arrive, speak once, and leave within one window
        room.join(conn)
        out += say(room, conn, "hi") + room.leave(conn, "disconnected")
    presence = [line for line in lines_for(out, 1) if line.startswith("* ")]
    assert presence == [
        "* guest4 joined",
        "* guest4 left (disconnected)",
        "* guest5 joined",
        "* guest5 left (disconnected)",
        "* guest6 joined",
    ]  # PRESENCE_BURST of them
    summary = room.tick()
    assert lines_for(summary, 1) == lines_for(summary, 3) == ["* 97 joined, 98 left (/who lists who is here)"]
    assert room.tick() == []  # a quiet window says nothing
    room.join(7)
    assert lines_for(room.announce(7), 1) == ["* guest104 joined"]  # and a new window tells one by one again


def test_a_member_reads_at_most_burst_plus_one_presence_lines_a_window(room: ChatRoom) -> None:
    for window in range(5):
        out: list[Output] = []
        for conn in range(1000 * (window + 1), 1000 * (window + 1) + 50):
            out += room.join(conn) + room.announce(conn) + room.drop(conn, "too slow")
        out += room.tick()
        assert len(lines_for(out, 1)) == PRESENCE_BURST + 1


# -- what others see -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("abc\u202egnp.exe", "abcgnp.exe"),  # RIGHT-TO-LEFT OVERRIDE
        ("\u202a\u202b\u202c\u202dx", "x"),  # embeddings, pop, LEFT-TO-RIGHT OVERRIDE
        ("\u2066\u2067\u2068y\u2069", "y"),  # isolates
        ("one\u2028<bob> forged", "one <bob> forged"),  # LINE SEPARATOR: not a new line
        ("one\u2029two", "one two"),  # PARAGRAPH SEPARATOR
        ("a\x1b[2Jb\x7f\x85\x9bc", "a[2Jbc"),  # C0, DEL, C1 (NEL, CSI)
        ("tab\tkept, caf\u00e9, \u05e9\u05dc\u05d5\u05dd", "tab\tkept, caf\u00e9, \u05e9\u05dc\u05d5\u05dd"),
    ],
)
def test_clean_text(text: str, shown: str) -> None:
    assert clean_text(text) == shown


def test_bidi_overrides_and_separators_do_not_reach_the_others(room: ChatRoom) -> None:
    out = say(room, 1, "see \u202eevil\u2028<guest2> i agree")
    assert lines_for(out, 2) == ["<guest1> see evil <guest2> i agree"]
    out = say(room, 1, "/msg guest2 \u2067hidden\u2069")
    assert lines_for(out, 2) == ["*guest1* hidden"]


def test_a_delivery_cannot_be_changed_once_made() -> None:
    delivery = Delivery(3, b"hi\n")
    assert (delivery.conn, delivery.data, delivery.close) == (3, b"hi\n", False)
    with pytest.raises(AttributeError):
        delivery.close = True  # type: ignore[misc]


def test_what_a_member_says_is_one_broadcast_to_everyone_else(room: ChatRoom) -> None:
    out = say(room, 2, "hello")
    assert out == [Broadcast((1, 3), b"<guest2> hello\n")]
    assert each_delivery(out) == [Delivery(1, b"<guest2> hello\n"), Delivery(3, b"<guest2> hello\n")]


def test_alone_in_the_room_a_line_goes_nowhere() -> None:
    room = ChatRoom()
    present(room, 1)
    assert say(room, 1, "anyone?") == []
