"""creosote's records file: batched JSON lines, rotated by size (services.creosote.records_file), and its options."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from common.eventlog import EventLog
from protocols.creosote import MAX_MESSAGE_BYTES, Message, make_message_record
from services.creosote import DEFAULT_KEEP, DEFAULT_MAX_BYTES, JsonlWriter, parse_config


class NewWriter(Protocol):
    def __call__(self, *, max_bytes: int = ..., keep: int = ..., stdout: io.StringIO | None = None) -> JsonlWriter: ...


@pytest.fixture
def new_writer(tmp_path: Path) -> Iterator[NewWriter]:
    """``new_writer(max_bytes=, keep=)``: a writer of tmp_path/records.jsonl, closed after the test."""
    made: list[JsonlWriter] = []

    def make(
        *, max_bytes: int = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP, stdout: io.StringIO | None = None
    ) -> JsonlWriter:
        log = EventLog("creosote", stream=stdout if stdout is not None else io.StringIO())
        made.append(JsonlWriter(tmp_path / "records.jsonl", log=log, max_bytes=max_bytes, keep=keep))
        return made[-1]

    yield make
    for writer in made:
        writer.close()  # an open file left behind is a warning, and warnings are errors


def write(writer: JsonlWriter, lines: list[str]) -> None:
    for line in lines:
        writer.add(line, 10.0)
        writer.flush()  # a flush a line: rotation is checked at every boundary a batch could have


def numbered_lines(count: int, width: int = 90) -> list[str]:
    """``count`` JSON lines of ``width + 1`` bytes with their newline, each saying its number."""
    return [json.dumps({"n": i}).ljust(width) for i in range(count)]


def kept(writer: JsonlWriter) -> list[Path]:
    return [writer.numbered(n) for n in range(writer.keep + 2) if writer.numbered(n).exists()]


def test_rotation_keeps_the_newest_records_in_keep_files_of_at_most_max_bytes(new_writer: NewWriter) -> None:
    stdout = io.StringIO()
    writer = new_writer(max_bytes=1000, keep=3, stdout=stdout)
    lines = numbered_lines(100)  # 91 bytes each: 10 to a file, 30 kept of 100
    write(writer, lines)
    files = kept(writer)
    assert [f.name for f in files] == ["records.jsonl", "records.jsonl.1", "records.jsonl.2"]
    assert all(f.stat().st_size <= 1000 for f in files)
    oldest_first = [line for f in reversed(files) for line in f.read_text().splitlines()]
    assert oldest_first == lines[-len(oldest_first) :]  # the newest, whole, in order across the files
    assert 20 < len(oldest_first) <= 30
    assert writer.discarded_records == 100 - len(oldest_first)
    assert writer.discarded_bytes == 91 * writer.discarded_records
    rotated = [line for line in stdout.getvalue().splitlines() if " rotated " in line]
    assert len(rotated) == writer.rotations == 9
    assert f"total_discarded_records={writer.discarded_records} " in rotated[-1] + " "
    writer.close()
    assert f"records_file file={writer.path} rotations=9 discarded_records={writer.discarded_records}" in (
        stdout.getvalue()
    )


def test_a_batch_is_split_at_the_line_that_would_pass_the_limit(new_writer: NewWriter) -> None:
    writer = new_writer(max_bytes=1000)
    lines = numbered_lines(25)
    for line in lines:
        writer.add(line, 10.0)
    writer.flush()  # one batch of 2,275 bytes
    assert [len(f.read_text().splitlines()) for f in reversed(kept(writer))] == [10, 10, 5]
    assert writer.discarded_records == 0


def test_a_record_longer_than_a_file_fills_one_of_its_own(new_writer: NewWriter) -> None:
    writer = new_writer(max_bytes=100)
    write(writer, ["short", "x" * 250, "after"])
    assert [f.read_text() for f in reversed(kept(writer))] == ["short\n", "x" * 250 + "\n", "after\n"]


def test_keep_1_starts_the_one_file_again(new_writer: NewWriter) -> None:
    writer = new_writer(max_bytes=1000, keep=1)
    write(writer, numbered_lines(25))
    assert kept(writer) == [writer.path]
    assert writer.path.read_text().splitlines() == numbered_lines(25)[20:]
    assert (writer.discarded_records, writer.rotations) == (20, 2)


def test_a_file_from_before_counts_towards_its_limit_and_is_rotated_whole(
    tmp_path: Path, new_writer: NewWriter
) -> None:
    """A restart appends to the file it finds, and shifts the numbered ones; their records are counted if dropped."""
    path = tmp_path / "records.jsonl"
    path.write_text("old live\n" * 100)  # 900 bytes
    path.with_name("records.jsonl.1").write_text("older\n" * 7)
    writer = new_writer(max_bytes=1000, keep=2)
    write(writer, numbered_lines(2))
    assert path.with_name("records.jsonl.1").read_text() == "old live\n" * 100 + numbered_lines(1)[0] + "\n"
    assert path.read_text() == numbered_lines(2)[1] + "\n"
    assert (writer.discarded_records, writer.discarded_bytes) == (7, 42)


def test_a_file_emptied_by_someone_else_is_not_rotated_early(new_writer: NewWriter) -> None:
    """The size is the file's own, not a count of what was written: scripts/bench empties it between trials."""
    writer = new_writer(max_bytes=1000)
    write(writer, numbered_lines(9))
    writer.path.write_text("")
    write(writer, numbered_lines(9))
    assert writer.rotations == 0


def test_nothing_is_discarded_while_the_files_are_within_the_limit(new_writer: NewWriter) -> None:
    writer = new_writer()
    write(writer, numbered_lines(1000))
    assert (kept(writer), writer.rotations) == ([writer.path], 0)


def test_at_the_defaults_no_record_is_longer_than_a_file() -> None:
    """The longest record: the largest message reassembled, all control characters, as syslog.

    Each byte is in ``text`` and at most once more in one parsed field (here ``message``), at most six bytes
    of JSON escape each: under 12 times the message, 12.6 MB of a 16 MiB file. So at the defaults the quota is
    exact. (This one is 11.2 MB: ``\\r``, ``\\n`` and ``\\t`` take two bytes.)
    """
    payload = b"<13>" + bytes(random.Random(1).choices(range(1, 32), k=MAX_MESSAGE_BYTES - 4))
    record = make_message_record(Message(("10.0.0.1", 514), 1, payload, 132, 0, 0), 0.0)
    assert record.message is not None  # parsed: the message is in the line twice
    line = record.to_json().encode() + b"\n"
    assert 10 * MAX_MESSAGE_BYTES < len(line) < 12 * MAX_MESSAGE_BYTES + 1024 < DEFAULT_MAX_BYTES


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--records-max-bytes", "512KiB"], "512KiB is less than 1MiB: a file must hold the largest message kept"),
        (["--records-max-bytes", "lots"], "'lots' is not a size (write a size like 16MiB"),
        (["--records-keep", "0"], "0 is out of range (1-100)"),
        (["--records-keep", "four"], "'four' is not a number of files (1-100)"),
    ],
)
def test_bad_quota_options_are_refused_naming_the_fix(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_config(["--log-file", "/tmp/records.jsonl", *argv])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {argv[0]}: {message}" in error, error


def test_quota_options_need_a_log_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_config(["--records-keep", "2"])
    assert "--records-keep limits the records file: give --log-file PATH too" in capsys.readouterr().err


def test_quota_options_reach_the_config() -> None:
    config = parse_config(["--log-file", "r.jsonl", "--records-max-bytes", "2MiB", "--records-keep", "7"])
    assert (config.records_max_bytes, config.records_keep) == (2 * 2**20, 7)
    default = parse_config(["--log-file", "r.jsonl"])
    assert (default.records_max_bytes, default.records_keep) == (DEFAULT_MAX_BYTES, DEFAULT_KEEP) == (16 * 2**20, 4)
