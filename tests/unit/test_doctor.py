"""The doctor without sockets: reflections, rules, determinism, and the session's framing."""

from __future__ import annotations

import random

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from protocols import doctor as dr
from protocols.doctor import Doctor, DoctorSession, reflect
from protocols.errors import LocalProtocolError
from protocols.session import Output

SCRIPT = [
    "I am unhappy with my work",
    "my boss ignores me",
    "It started last spring",
    "Things were easier then",
    "I miss the old team",
    "nobody listens",
    "We used to laugh a lot",
    "It is what it is",
]


def seeded(seed: int = 7) -> Doctor:
    return Doctor(rng=random.Random(seed))


def lines(out: Output) -> list[str]:
    assert out.data == b"" or out.data.endswith(b"\n")
    return out.data.decode().splitlines()


# -- reflection ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reflected"),
    [
        ("I am sad", "you are sad"),
        ("my mother hates me", "your mother hates you"),
        ("I was wrong about myself", "you were wrong about yourself"),
        ("I'm tired of our plans", "you're tired of your plans"),
        ("you are mean to me", "I am mean to you"),
        ("you hate me", "I hate you"),
        ("I think that you lied", "you think that I lied"),
        ("they are late", "they are late"),
        ("It rains, I know", "it rains, you know"),
        ("Paris is mine", "paris is yours"),
        ("Help me!!", "help you!!"),
        ("?!", "?!"),
    ],
)
def test_reflect(text: str, reflected: str) -> None:
    assert reflect(text) == reflected


# -- replies -------------------------------------------------------------------


def test_same_seed_same_replies() -> None:
    first, second = seeded(3), seeded(3)
    assert [first.reply(s) for s in SCRIPT] == [second.reply(s) for s in SCRIPT]


def test_different_seeds_give_a_different_conversation() -> None:
    sentences = [f"sentence number {i} about nothing much" for i in range(30)]
    first, second = seeded(1), seeded(2)
    assert [first.reply(s) for s in sentences] != [second.reply(s) for s in sentences]


def test_family_words_lead_to_family_questions() -> None:
    reply = seeded().reply("My Mother never calls.")
    assert reply in {template.format("mother") for template in dr._FAMILY_ANSWERS}


def test_i_feel() -> None:
    reply = seeded().reply("I feel that my work is pointless.")
    assert reply in {template.format("your work is pointless") for template in dr._FEEL_ANSWERS}


def test_i_am() -> None:
    reply = seeded().reply("I'm afraid of my boss")
    assert reply in {template.format("afraid of your boss") for template in dr._AM_ANSWERS}


def test_because() -> None:
    assert seeded().reply("I left because it was late") in dr._BECAUSE_ANSWERS


def test_questions() -> None:
    assert seeded().reply("Can you help?") in dr._QUESTION_ANSWERS


@pytest.mark.parametrize(("answer", "choices"), [("Yes.", dr._YES_ANSWERS), ("no", dr._NO_ANSWERS)])
def test_yes_and_no(answer: str, choices: tuple[str, ...]) -> None:
    assert seeded().reply(answer) in choices


def test_without_keywords_a_hedge_or_the_sentence_turned_back() -> None:
    doctor = seeded()
    expected = set(dr.HEDGES) | {q.format("your dog ate your homework") for q in dr.QUALIFIERS}
    for _ in range(20):
        assert doctor.reply("My dog ate my homework.") in expected | {
            "Earlier you said that your dog ate your homework."
        }


def test_history_is_recalled_like_the_textbook_doctor() -> None:
    doctor = seeded(11)
    replies = [doctor.reply(sentence) for sentence in SCRIPT * 5]
    recalled = [reply for reply in replies if reply.startswith("Earlier you said that ")]
    assert recalled, "over 40 replies, some should recall what was said"
    reflected_script = {reflect(dr._strip_end(s)) for s in SCRIPT}
    assert all(reply.removeprefix("Earlier you said that ").removesuffix(".") in reflected_script for reply in recalled)
    assert all(not reply.startswith("Earlier") for reply in replies[:4])  # nothing to recall yet


def test_history_is_bounded() -> None:
    doctor = seeded()
    for i in range(150):
        doctor.reply(f"thought number {i}")
    assert len(doctor.history) == 100
    assert doctor.history[-1] == "thought number 149"


# -- the session ---------------------------------------------------------------


def session(seed: int = 5, *, max_line: int = 4096) -> DoctorSession:
    return DoctorSession(seeded(seed), max_line=max_line)


def test_session_greets_in_one_line() -> None:
    out = session().start()
    assert lines(out) == [dr.GREETING]
    assert not out.close


def test_one_reply_line_per_line_as_a_twin_doctor_would_say() -> None:
    twin = seeded(5)
    out = session(5).receive_data(b"I am sad\r\nmy cat left\n")
    assert lines(out) == [twin.reply("I am sad"), twin.reply("my cat left")]
    assert not out.close


def test_a_line_in_pieces_gets_one_reply() -> None:
    s = session()
    assert s.receive_data(b"I am ") == Output(b"", close=False)
    assert len(lines(s.receive_data(b"sad\n"))) == 1


def test_empty_line_says_goodbye_and_closes() -> None:
    out = session().receive_data(b"hello\n\nignored\n")
    assert lines(out)[1:] == [dr.FAREWELL]
    assert out.close


def test_eof_says_goodbye_and_closes_after_answering_a_last_unterminated_line() -> None:
    s = session()
    assert s.receive_data(b"a last thought") == Output(b"", close=False)
    out = s.receive_data(b"")
    assert len(lines(out)) == 2
    assert lines(out)[-1] == dr.FAREWELL
    assert out.close


def test_over_long_line_is_an_error_and_the_session_goes_on() -> None:
    s = session(max_line=100)
    out = s.receive_data(b"z" * 150 + b"\n")
    assert lines(out) == ["error: line longer than 100 bytes"]
    assert not out.close
    assert len(lines(s.receive_data(b"still here\n"))) == 1


def test_invalid_utf8_is_an_error_and_the_session_goes_on() -> None:
    s = session()
    out = s.receive_data(b"\xff\xfe\n")
    assert lines(out) == ["error: invalid UTF-8 (send text encoded as UTF-8)"]
    assert not out.close
    assert len(lines(s.receive_data(b"ok\n"))) == 1


def test_data_after_the_end_is_a_local_error() -> None:
    s = session()
    s.receive_data(b"\n")
    with pytest.raises(LocalProtocolError):
        s.receive_data(b"more\n")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1), max_size=6))
def test_exactly_one_reply_line_per_line(sentences: list[str]) -> None:
    sentences = [s for s in sentences if s.strip()]
    assume(sentences)  # no data at all would be EOF
    data = "".join(s + "\n" for s in sentences).encode()
    out = session(max_line=1 << 16).receive_data(data)
    assert len(lines(out)) == len(sentences)
    assert not out.close


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=6))
def test_any_bytes_get_whole_lines_back(chunks: list[bytes]) -> None:
    s = session(max_line=64)
    for chunk in [*chunks, b""]:
        out = s.receive_data(chunk)
        assert out.data == b"" or out.data.endswith(b"\n")
        if out.close:
            break
    assert out.close  # EOF at the latest ends it
