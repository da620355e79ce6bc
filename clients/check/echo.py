"""Echo (RFC 862): every byte comes back, unchanged and in order, however TCP cuts the stream.

The sizes go from one byte to 8 MiB: a server that takes one ``recv`` for the
whole message passes the small ones and fails the large. The stream checks
send in ways one ``recv`` cannot follow (many sends coalesced, one payload in
slow pieces) and read slower than the server writes, which a server that
``send``s without looking at what ``send`` returned cannot survive.
"""

from __future__ import annotations

import os

from clients.check.core import Check, CheckFailed, Context, Suite, show, size
from clients.check.wire import Datagrams, Silent, Stream
from protocols.echo import PORT

SIZES = {"one-byte": 1, "1000-bytes": 1000, "64-kib": 64 << 10, "1-mib": 1 << 20, "8-mib": 8 << 20}
SLOW_READER_PAYLOAD = 2 << 20
SLOW_READER_RCVBUF = 16 << 10  # a small window: the server's writes back must wait on us
# An Ethernet-sized segment. Over loopback's 64 KiB segments the kernel grows the server's send buffer to
# megabytes, and a send() that ignores its count never comes up short; with 1400-byte segments it did, in
# 20 runs of 20 against examples/mistakes/echo_send_not_sendall.py (2 cores, 2026-12-02).
SLOW_READER_MSS = 1400
SLOW_READER_STALL = 0.5  # seconds of reading nothing first, so the server's send buffer fills
SLOW_READER_PACE = 0.002  # seconds between our small reads
SLOW_PIECES = 4


def compare(sent: bytes, got: bytes) -> None:
    """``CheckFailed`` saying how ``got`` differs from ``sent``."""
    if got == sent:
        return
    expected = f"the same {size(len(sent))} back, then the close after our FIN"
    if len(got) < len(sent) and sent.startswith(got):
        raise CheckFailed(
            f"only {size(len(got))} of {size(len(sent))} came back before the server closed", expected=expected
        )
    at = next((i for i, (a, b) in enumerate(zip(sent, got, strict=False)) if a != b), min(len(sent), len(got)))
    if len(got) > len(sent) and got.startswith(sent):
        raise CheckFailed(
            f"{size(len(got))} came back for {size(len(sent))} sent: more than we sent", expected=expected
        )
    resumes = sent.find(got[at : at + 64], at + 1) if len(got) >= at + 64 else -1
    if resumes > at:
        raise CheckFailed(
            f"{size(len(got))} came back for {size(len(sent))} sent: {resumes - at} B missing at byte {at}, "
            "then the stream goes on (a send() that took less than it was given, and the rest was dropped?)",
            expected=expected,
        )
    raise CheckFailed(
        f"{size(len(got))} came back for {size(len(sent))} sent, different from byte {at} on: "
        f"sent {show(sent[at : at + 16])}, got {show(got[at : at + 16])}",
        expected=expected,
    )


def exchange(
    context: Context,
    payload: bytes,
    *,
    rcvbuf: int | None = None,
    mss: int | None = None,
    read_size: int = 1 << 20,
    pace: float = 0.0,
    stall: float = 0.0,
) -> bytes:
    """Send ``payload`` from a thread while reading; half-close; read to EOF; return what came back."""
    with Stream(context, rcvbuf=rcvbuf, mss=mss) as stream:
        sender = stream.send_in_background(payload)
        if stall:
            stream.note(f"  (reading nothing for {stall:g} s)")
            context.pause(stall)
        try:
            got = stream.read_to_eof(limit=len(payload) + (64 << 10), read_size=read_size, pace=pace)
        except CheckFailed:
            stream.abort()  # wakes our sender if it is blocked on a server that stopped reading
            sender.join()
            raise
        trouble = sender.join()
        if trouble is not None and len(got) == len(payload):
            raise trouble
        return got


def exact(count: int) -> Check:
    """The check that ``count`` random bytes come back unchanged."""

    def run(context: Context) -> str | None:
        payload = os.urandom(count)
        compare(payload, exchange(context, payload))
        return None

    name = next((n for n, c in SIZES.items() if c == count), f"{count}-bytes")
    budget = 3.0 if count < 1 << 20 else 6.0
    return Check(f"echo.tcp.{name}", run, f"{size(count)} of random bytes come back unchanged", budget)


def tcp_coalesced(context: Context) -> str | None:
    """A hundred small messages sent back to back, unread: all come back, before we half-close."""
    messages = [f"message {i} of 100\n".encode() for i in range(100)]
    whole = b"".join(messages)
    with Stream(context) as stream:
        stream.note(f"> 100 messages of ~18 B, back to back: {size(len(whole))} {show(whole)}")
        for message in messages:
            stream.send(message, record=False)
        got = stream.read_exactly(len(whole), expecting=f"the {size(len(whole))} of the 100 messages")
        compare(whole, got)
        stream.close_write()
        stream.eof(after="our FIN")
    return None


def tcp_slow_writes(context: Context) -> str | None:
    """One payload in pieces; each piece must come back before we send the next (RFC 862: at once)."""
    payload = os.urandom(4000)
    pieces = [payload[i : i + 1000] for i in range(0, len(payload), 1000)]
    with Stream(context) as stream:
        for number, piece in enumerate(pieces, 1):
            stream.send(piece)
            try:
                got = stream.read_exactly(len(piece), expecting=f"piece {number} of {len(pieces)}")
            except CheckFailed as exc:
                raise CheckFailed(
                    exc.detail, expected="each piece echoed as it arrives, the connection kept open"
                ) from exc
            compare(piece, got)
        stream.close_write()
        stream.eof(after="our FIN")
    return None


def tcp_slow_reader(context: Context) -> str | None:
    """2 MiB while we first read nothing, then read in small bites: the server's sends must wait, not lose bytes."""
    payload = os.urandom(SLOW_READER_PAYLOAD)
    got = exchange(
        context,
        payload,
        rcvbuf=SLOW_READER_RCVBUF,
        mss=SLOW_READER_MSS,
        read_size=8 << 10,
        pace=SLOW_READER_PACE,
        stall=SLOW_READER_STALL,
    )
    compare(payload, got)
    return None


def udp_datagrams(context: Context) -> str | None:
    """A byte, 1400 random bytes, bytes that are not UTF-8: each comes back as the same datagram."""
    with Datagrams(context) as datagrams:
        for payload in (b"x", os.urandom(1400), b"\xff\xfe invalid utf-8 \x00"):
            datagrams.send(payload)
            got = datagrams.receive(expecting=f"the {size(len(payload))} datagram back")
            if got != payload:
                raise CheckFailed(f"a different datagram came back ({size(len(got))})", expected="the same datagram")
    return None


def udp_empty_datagram(context: Context) -> str | None:
    with Datagrams(context) as datagrams:
        datagrams.send(b"")
        try:
            got = datagrams.receive(expecting="an empty datagram back")
        except Silent as exc:
            raise CheckFailed(
                f"{exc.detail} (Docker's userland port proxy drops empty datagrams: from the host through a "
                "published port this fails whatever the server does; check from inside the lab)",
                expected="an empty datagram back",
            ) from exc
    if got:
        raise CheckFailed(f"{size(len(got))} came back for an empty datagram", expected="an empty datagram back")
    return None


SUITE = Suite(
    "echo",
    PORT,
    (
        *(exact(count) for count in SIZES.values()),
        Check("echo.tcp.coalesced", tcp_coalesced, "100 small sends back to back all come back, in order"),
        Check("echo.tcp.slow-writes", tcp_slow_writes, "a payload in 4 pieces: each is echoed before the next is sent"),
        Check(
            "echo.tcp.slow-reader",
            tcp_slow_reader,
            f"{size(SLOW_READER_PAYLOAD)} while the client reads slowly: nothing lost",
            6.0,
        ),
        Check("echo.udp.datagrams", udp_datagrams, "each datagram comes back unchanged"),
        Check("echo.udp.empty-datagram", udp_empty_datagram, "an empty datagram comes back empty"),
    ),
)
