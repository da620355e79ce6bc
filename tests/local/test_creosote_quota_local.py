"""creosote's records quota for real: the server process on 127.0.0.1, its files in tmp_path."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from functools import partial
from pathlib import Path

from clients.common import ClientError
from clients.spew import ping
from common.waiting import wait_until
from tests.local.conftest import ROOT, ServerProcess, StartServer

LOCAL = "127.0.0.1"
MIB = 2**20


def counted(port: int) -> int:
    try:
        return ping(LOCAL, port, timeout=0.5)
    except ClientError:
        return -1


def has_counted(port: int, count: int) -> bool:
    return counted(port) >= count


def numbered_syslog(i: int) -> bytes:
    """A valid RFC 3164 line of 30 kB, saying its number: its record is a 60 kB JSON line (text and message)."""
    return b"<14>Dec  1 10:00:00 host app: flood %06d " % i + b"x" * 30_000


SENT = 200  # 12 MB of records in files of 1 MiB, 3 kept: the rest discarded and counted


def flooded(server: StartServer, tmp_path: Path) -> tuple[ServerProcess, list[Path]]:
    """A sink with a 3 MiB quota, sent ``SENT`` records of 60 kB; its files, oldest first, once all are written."""
    log_file = tmp_path / "records.jsonl"
    creosote = server("services.creosote", "--log-file", str(log_file), "--records-max-bytes", "1MiB",
                      "--records-keep", "3")  # fmt: skip
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in range(SENT):
            sock.sendto(numbered_syslog(i), (LOCAL, creosote.port))
            if i % 20 == 19:  # none lost in the kernel's queue: the counts below are exact
                wait_until(partial(has_counted, creosote.port, i + 1), timeout=5, what=f"{i + 1} records")
    wait_until(lambda: counted(creosote.port) == SENT, timeout=5, what="every record")
    # The count is taken when a record is made; its line reaches the file within FLUSH_DELAY.
    wait_until(lambda: b"flood %06d" % (SENT - 1) in log_file.read_bytes(), timeout=5, what="the last line")
    return creosote, sorted(tmp_path.iterdir(), key=lambda f: f.name, reverse=True)  # .2, .1, the live file


def numbers_in(files: list[bytes]) -> list[int]:
    return [int(json.loads(line)["message"].split()[1]) for data in files for line in data.splitlines()]


def test_the_files_stay_within_the_quota_and_keep_the_newest_records(server: StartServer, tmp_path: Path) -> None:
    creosote, files = flooded(server, tmp_path)
    assert [f.name for f in files] == ["records.jsonl.2", "records.jsonl.1", "records.jsonl"]
    assert all(f.stat().st_size <= MIB for f in files), [f.stat().st_size for f in files]
    contents = [f.read_bytes() for f in files]
    numbers = numbers_in(contents)
    assert numbers == list(range(SENT - len(numbers), SENT))  # the newest, in order, none missing
    longest = max(len(line) + 1 for data in contents for line in data.splitlines())
    assert all(MIB - longest < len(data) for data in contents[:2])  # a file is rotated only once it is full
    creosote.terminate()
    stopped = [line for line in creosote.log_text().splitlines() if " records_file " in line][-1]
    assert f" discarded_records={SENT - len(numbers)} " in stopped, stopped


def test_sigkill_keeps_every_record_flushed_across_rotations(server: StartServer, tmp_path: Path) -> None:
    creosote, files = flooded(server, tmp_path)
    before = [f.read_bytes() for f in files]
    creosote.process.kill()
    assert creosote.process.wait(timeout=5) == -signal.SIGKILL
    assert [f.read_bytes() for f in files] == before and all(data.endswith(b"\n") for data in before)
    assert numbers_in(before)[-1] == SENT - 1


def test_a_quota_option_out_of_range_is_refused_in_one_line() -> None:
    argv = [sys.executable, "-m", "services.creosote", "--log-file", "/tmp/x.jsonl", "--records-max-bytes", "64KiB"]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "python -m services.creosote: error: argument --records-max-bytes: 64KiB is less than 1MiB: "
        "a file must hold the largest message kept (write 1MiB or more)"
    )
    assert "Traceback" not in result.stderr
