"""The doctor: a small ELIZA-style therapist, and its one-line-per-line session.

The course's therapy server swapped the chat server's human for ``Doctor()``:
``greeting()`` on connect, ``reply(message)`` to each message, an empty message
to leave. Its bugs were the chat server's (one ``recv`` per message, ASCII,
no limits); here the session frames lines and answers exactly one line to each
line, so a client can work in lock-step:

    greeting                 one line on connect
    <line>  -> reply         one line
    <bad line> -> error: ... one line (over-long, or not UTF-8); the session goes on
    <empty line> or EOF      the farewell line, then the server closes
"""

from __future__ import annotations

import random
import re
from collections import deque
from collections.abc import Sequence

from protocols.errors import LineTooLong, LocalProtocolError
from protocols.framing import DEFAULT_MAX_LINE, LineBuffer
from protocols.session import Output

PORT = 5001
GREETING = "Good day. I hope you are well today. What can I do for you? (An empty line ends the session.)"
FAREWELL = "Have a nice day!"

# First person <-> second person. "you" is "I" as a subject and "me" otherwise (see _reflect_word).
_SWAPS = {
    "i": "you",
    "me": "you",
    "my": "your",
    "mine": "yours",
    "myself": "yourself",
    "we": "you",
    "us": "you",
    "our": "your",
    "ours": "yours",
    "am": "are",
    "i'm": "you're",
    "i've": "you've",
    "i'd": "you'd",
    "i'll": "you'll",
    "your": "my",
    "yours": "mine",
    "yourself": "myself",
    "you're": "I'm",
    "you've": "I've",
    "you'd": "I'd",
    "you'll": "I'll",
}
# Verbs that agree with the pronoun before them: "I was" -> "you were", "you are" -> "I am".
_AGREEMENT = {("i", "was"): "were", ("you", "are"): "am", ("you", "were"): "was"}
# After these words "you" starts a clause, so it becomes the subject "I" ("because you hate me").
_CLAUSE_STARTS = {"and", "but", "because", "that", "if", "when", "so", "or", "think", "feel", "know"}

HEDGES = (
    "Please tell me more.",
    "Many of my patients tell me the same thing.",
    "Go on.",
    "I would like to hear more about that.",
    "And what do you think about this?",
    "Please continue.",
)
QUALIFIERS = ("Why do you say that {}?", "You seem to think that {}.", "Can you explain why {}?")
FAMILY = ("mother", "father", "mom", "dad", "sister", "brother", "wife", "husband", "family", "parents")
_FAMILY_ANSWERS = (
    "Tell me more about your {}.",
    "How do you get along with your {}?",
    "How do you feel about your {}?",
)
_FEEL_ANSWERS = ("Why do you feel {}?", "Do you often feel {}?", "How long have you felt {}?")
_AM_ANSWERS = (
    "How long have you been {}?",
    "Why do you think you are {}?",
    "Did you come to me because you are {}?",
)
_BECAUSE_ANSWERS = (
    "Is that the real reason?",
    "What other reasons come to mind?",
    "Does that reason explain anything else?",
)
_QUESTION_ANSWERS = (
    "Why do you ask?",
    "What do you think?",
    "Does that question interest you?",
    "What answer would please you most?",
)
_YES_ANSWERS = ("You seem quite sure.", "I see. Tell me more.", "Are you sure?")
_NO_ANSWERS = ("Why not?", "Are you saying no just to be negative?", "You are being a bit negative.")
_YES = {"yes", "yeah", "yep", "sure", "certainly", "of course"}
_NO = {"no", "nope", "never", "not really"}

_FEEL = re.compile(r"\bi (?:feel|felt) (?:that |like )?(?P<rest>.+)", re.IGNORECASE)
_AM = re.compile(r"\bi(?: am|'m) (?P<rest>.+)", re.IGNORECASE)
_FAMILY_WORD = re.compile(rf"\b({'|'.join(FAMILY)})\b", re.IGNORECASE)
# Control characters are dropped from replies: they echo the patient's words and must stay one clean line.
_CONTROLS = dict.fromkeys([*range(0x00, 0x20), *range(0x7F, 0xA0)])
_HISTORY_RECALL_AFTER = 3  # the textbook's Doctor recalls history once it holds more than three sentences
_HISTORY_KEPT = 100


def reflect(text: str) -> str:
    """Swap first and second person: ``"I am sad about my job"`` -> ``"you are sad about your job"``."""
    words = text.split()
    out: list[str] = []
    previous = ""
    for index, word in enumerate(words):
        core, tail = _split_punctuation(word)
        out.append(_reflect_word(core, previous, first=index == 0) + tail)
        previous = core.lower() if not tail else ""  # punctuation ends the clause: no agreement across it
    return " ".join(out)


def _split_punctuation(word: str) -> tuple[str, str]:
    """``"me,"`` -> ``("me", ",")``. A loop, not a regex: backtracking was quadratic on long runs of "!"."""
    end = len(word)
    while end and not (word[end - 1].isalnum() or word[end - 1] in "_'"):
        end -= 1
    return word[:end], word[end:]


def _reflect_word(word: str, previous: str, *, first: bool) -> str:
    lower = word.lower()
    if (previous, lower) in _AGREEMENT:
        return _AGREEMENT[(previous, lower)]
    if lower == "you":
        return "I" if first or previous in _CLAUSE_STARTS else "me"
    if lower in _SWAPS:
        return _SWAPS[lower]
    if first and word[:1].isupper() and word[1:].islower():
        return lower  # the sentence's capital would sit mid-sentence in the reply ("...that It rains")
    return word


def _strip_end(text: str) -> str:
    return text.strip().rstrip(".!?;, ").strip()


class Doctor:
    """An ELIZA-style responder, after the textbook's ``Doctor``.

    Deterministic for a given ``rng``: two doctors seeded alike give the same
    replies to the same sentences.
    """

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.Random()
        self.history: deque[str] = deque(maxlen=_HISTORY_KEPT)  # bounded: a session may be long

    def greeting(self) -> str:
        """What the doctor says first."""
        return GREETING

    def farewell(self) -> str:
        """What the doctor says last."""
        return FAREWELL

    def reply(self, text: str) -> str:
        """The doctor's answer to one sentence; it is remembered for later recall."""
        sentence = " ".join(text.split())
        answer = self._keyword_answer(sentence) or self._fallback(sentence)
        if _strip_end(sentence):
            self.history.append(sentence)
        return answer

    def _keyword_answer(self, sentence: str) -> str | None:
        lowered = _strip_end(sentence).lower()
        if lowered in _YES:
            return self._choose(_YES_ANSWERS)
        if lowered in _NO:
            return self._choose(_NO_ANSWERS)
        if family := _FAMILY_WORD.search(sentence):
            return self._choose(_FAMILY_ANSWERS).format(family[1].lower())
        if feel := _FEEL.search(sentence):
            return self._choose(_FEEL_ANSWERS).format(reflect(_strip_end(feel["rest"])))
        if am := _AM.search(sentence):
            return self._choose(_AM_ANSWERS).format(reflect(_strip_end(am["rest"])))
        if re.search(r"\bbecause\b", lowered):
            return self._choose(_BECAUSE_ANSWERS)
        if sentence.rstrip().endswith("?"):
            return self._choose(_QUESTION_ANSWERS)
        return None

    def _fallback(self, sentence: str) -> str:
        """The textbook's rule: a hedge, a recollection, or the sentence turned back."""
        core = _strip_end(sentence)
        roll = self._rng.randint(1, 5)
        if roll <= 2 or not core:
            return self._choose(HEDGES)
        if roll == 3 and len(self.history) > _HISTORY_RECALL_AFTER:
            return f"Earlier you said that {reflect(_strip_end(self._choose(self.history)))}."
        return self._choose(QUALIFIERS).format(reflect(core))

    def _choose(self, options: Sequence[str]) -> str:
        return options[self._rng.randrange(len(options))]


class DoctorSession:
    """The server side of one therapy session (the ``Session`` protocol)."""

    def __init__(self, doctor: Doctor | None = None, *, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.doctor = doctor if doctor is not None else Doctor()
        self._lines = LineBuffer(max_line=max_line)
        self._done = False

    def start(self) -> Output:
        """The greeting."""
        return Output(_encode(self.doctor.greeting()))

    def receive_data(self, data: bytes) -> Output:
        """One reply line per whole line received; an empty line or EOF says goodbye and closes."""
        if self._done:
            raise LocalProtocolError("the session has ended")
        if not data and self._lines.pending:
            self._lines.feed(b"\n")  # a last line without its newline is still answered
        self._lines.feed(data)
        replies: list[bytes] = []
        while not self._done:
            try:
                line = self._lines.next_line()
            except LineTooLong as exc:
                replies.append(_encode(f"error: {exc}"))
                continue
            if line is None:
                break
            replies.append(self._answer(line))
        if self._lines.eof and not self._done:
            replies.append(self._goodbye())
        return Output(b"".join(replies), close=self._done)

    def _answer(self, line: bytes) -> bytes:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return _encode("error: invalid UTF-8 (send text encoded as UTF-8)")
        if not text.strip():
            return self._goodbye()
        return _encode(self.doctor.reply(text))

    def _goodbye(self) -> bytes:
        self._done = True
        return _encode(self.doctor.farewell())


def _encode(text: str) -> bytes:
    return (text.translate(_CONTROLS) + "\n").encode("utf-8")
