"""creosote ``--raw`` on 127.0.0.1: each datagram one line of the file as it came, nothing parsed, counted.

The leanest work, the one the bench compares with rsyslog's raw template.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from clients.common import ClientError
from clients.spew import ping
from common.waiting import wait_until
from protocols.creosote import encode_chunks
from tests.local.conftest import StartServer

LOCAL = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]


def _count(port: int) -> int | None:
    try:
        return ping(LOCAL, port, timeout=0.5)
    except ClientError:
        return None


def test_each_datagram_is_one_line_as_it_came(server: StartServer, tmp_path: Path) -> None:
    log_file = tmp_path / "raw.log"
    sink = server("services.creosote", "--raw", "--log-file", str(log_file))
    assert sink.fields["mode"] == "raw"
    port = int(sink.fields["port"])
    sent = [
        b"<14>1 2026-01-01T00:00:00.000000Z host app - - - hello",
        b"two\nlines\r\n",  # one datagram stays one line
        b"\xff\xfe not utf-8",
        b"",
        *encode_chunks(b"x" * 3000, msg_id=7, max_datagram=1200),  # no reassembly: each chunk its own line
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        for datagram in sent:
            client.sendto(datagram, (LOCAL, port))
    wait_until(lambda: _count(port) == len(sent), timeout=5, what=f"{len(sent)} datagrams counted")
    def whole_file() -> list[str] | None:
        text = log_file.read_text("utf-8")
        return text.split("\n")[:-1] if text.count("\n") == len(sent) else None

    lines = wait_until(whole_file, timeout=5, what=f"{len(sent)} lines in the file")
    assert lines[:4] == ["<14>1 2026-01-01T00:00:00.000000Z host app - - - hello", "two\\nlines\\r\\n",
                         "\\xff\\xfe not utf-8", ""]
    assert len(lines) == len(sent) == 7 and all(line.endswith("x" * 100) for line in lines[4:])
    assert '"received"' not in log_file.read_text("utf-8")  # no JSON records


def test_raw_without_a_file_is_refused_with_the_fix() -> None:
    done = subprocess.run([sys.executable, "-m", "services.creosote", "--raw", "--port", "0"], cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and done.stdout == ""
    assert "--raw writes lines to --log-file: give --log-file PATH too" in done.stderr
    assert "Traceback" not in done.stderr
