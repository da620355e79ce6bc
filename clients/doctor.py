"""``python -m clients.doctor``: a session with the doctor, typed or piped.

The course's client took one ``recv`` for one reply and waited forever. The
doctor answers exactly one line to every line (see protocols.doctor), so this
client sends a line and reads one whole line back (``--timeout`` bounds the
wait), and ends the session the protocol's way: an empty line (also sent when
stdin ends), to which the doctor says goodbye.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from clients.common import ClientError, client_parser, connect, read_line, run_client
from protocols.doctor import PORT
from protocols.framing import LineBuffer

MAX_REPLY_LINE = 65536


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m clients.doctor`` (``--timeout`` also bounds the wait for each reply)."""
    return client_parser(
        "doctor",
        "Talk to the doctor: type a line, read the reply; an empty line (or end of input) says goodbye.",
        host="doctor",
        port=PORT,
    )


def prompter(stdin: TextIO, out: TextIO) -> Callable[[], str | None]:
    """Reads the patient's next line (``None`` at end of input).

    At a terminal it prompts with ``> ``; from a pipe it echoes ``> line`` so the
    transcript reads as a conversation.
    """
    if stdin.isatty():

        def ask() -> str | None:
            try:
                return input("> ")
            except EOFError:
                return None

        return ask

    def read() -> str | None:
        line = stdin.readline()
        if not line:
            return None
        text = line.rstrip("\r\n")
        out.write(f"> {text}\n")
        return text

    return read


def converse(sock: socket.socket, ask: Callable[[], str | None], out: TextIO) -> None:
    """The greeting, then line for line until the farewell."""
    lines = LineBuffer(max_line=MAX_REPLY_LINE)

    def hear() -> None:
        line = read_line(sock, lines)
        if line is None:
            raise ClientError("the doctor closed the connection before answering")
        out.write(line.decode("utf-8", errors="replace") + "\n")
        out.flush()

    hear()
    while True:
        text = ask()
        said = "" if text is None else text
        sock.sendall(said.encode("utf-8") + b"\n")
        hear()
        if not said.strip():
            return  # that was the farewell


def main(argv: Sequence[str] | None = None) -> int:
    """One session; ``ClientError`` when the doctor cannot be reached or stops answering."""
    args = build_parser().parse_args(argv)
    where = f"{args.host}:{args.port}"
    with connect(args.host, args.port, timeout=args.timeout) as sock:
        try:
            converse(sock, prompter(sys.stdin, sys.stdout), sys.stdout)
        except TimeoutError as exc:
            raise ClientError(f"no reply from {where} within {args.timeout:g} s (try a larger --timeout)") from exc
        except OSError as exc:
            raise ClientError(f"the connection to {where} broke ({exc})") from exc
    return 0


if __name__ == "__main__":
    sys.exit(run_client(main))
