"""The load generators by name: what each is, how it is started, and whether it, not the server, was the limit.

Pure, host side: the sections build their command lines here and read every
generator's result through ``read_result``, which checks the fields the bench
relies on; ``bound_reason`` is the one verdict every table prints beside its
figures. A figure measured while its generator was saturated, or while the
generator could not offer the load it was asked for, is the generator's figure,
not the server's.
"""

from __future__ import annotations

import json
from typing import Any

# A single-threaded generator this busy (its busiest process, of one core) is at its own ceiling:
# its process also pays for the network stack's send path, and on two cores nothing is left for it.
SATURATED = 0.9
# An open-loop generator that sent less than this share of the rate asked did not offer that load.
SHORT_OF_RATE = 0.97

GENERATORS: dict[str, str] = {
    "udp-sendmmsg": "bench-udp-sender (C): sendmmsg(2) in batches of 32, paced, one process",
    "udp-python": "python3 -m bench.loadgen udp: one send() per datagram, paced, --udp-procs processes",
    "upper-python": "python3 -m bench.loadgen upper: an epoll loop per process, one request in flight per connection",
    "redis-benchmark": "Debian's redis-benchmark (C, one thread): PING_INLINE, one request in flight per connection",
    "chat-python": "python3 -m bench.loadgen chat: epoll loops, the senders' process and --chat-procs receivers",
    "chat-epoll": "bench-chat-driver (C): the same fan-out in one epoll loop, one process",
}
UDP_GENERATORS = {"sendmmsg": "udp-sendmmsg", "python": "udp-python"}  # --udp-generator -> name
UDP_SENDER = "bench-udp-sender"  # bench/native/udp_sender.c, on the bench image's PATH
CHAT_GENERATORS = {"epoll": "chat-epoll", "python": "chat-python"}  # --chat-generator -> name
CHAT_DRIVER = "bench-chat-driver"  # bench/native/chat_driver.c
# What every generator's JSON must hold for the bench to place its window and judge it.
REQUIRED = ("t0_ns", "t1_ns", "loadgen_cpu_s")


class GeneratorOutputError(ValueError):
    """A load generator printed something other than the JSON result the bench expects."""


def udp_command(generator: str, *, host: str, port: int, size: int, rate: int, duration: float,
                procs: int) -> list[str]:
    """The command line of one UDP trial with ``generator`` (a key of ``UDP_GENERATORS``)."""
    common = ["--host", host, "--port", str(port), "--size", str(size), "--rate", str(rate),
              "--duration", f"{duration:g}"]
    if generator == "sendmmsg":
        return [UDP_SENDER, *common]
    if generator == "python":
        return ["python3", "-m", "bench.loadgen", "udp", *common, "--procs", str(procs)]
    raise ValueError(f"unknown UDP generator {generator!r}: choose from {', '.join(UDP_GENERATORS)}")


def chat_command(generator: str, *, chat: str | None, redis: str | None, clients: int, senders: int,
                 duration: float, warmup: float, rounds: int, procs: int) -> list[str]:
    """The command line of one chat fan-out run (both rooms, alternating) with ``generator``."""
    rooms = [*(["--chat", chat] if chat else []), *(["--redis", redis] if redis else [])]
    common = [*rooms, "--clients", str(clients), "--senders", str(senders), "--duration", f"{duration:g}",
              "--warmup", f"{warmup:g}", "--rounds", str(rounds)]
    if generator == "epoll":
        return [CHAT_DRIVER, *common]
    if generator == "python":
        return ["python3", "-m", "bench.loadgen", "chat", *common, "--procs", str(procs)]
    raise ValueError(f"unknown chat generator {generator!r}: choose from {', '.join(CHAT_GENERATORS)}")


def read_result(text: str | bytes, *, generator: str | None = None) -> dict[str, Any]:
    """One generator's JSON object, its required fields checked; ``generator`` names it if it does not."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise GeneratorOutputError(f"not JSON ({exc}): {_preview(text)}") from None
    if not isinstance(data, dict):
        raise GeneratorOutputError(f"not a JSON object: {_preview(text)}")
    parts = _parts(data)
    if parts is None:
        raise GeneratorOutputError(f"its runs are not a list: {_preview(text)}")
    for part in parts:
        _check(part, text)
        if generator is not None:
            part.setdefault("generator", generator)
    return data


def _parts(data: dict[str, Any]) -> list[Any] | None:
    """The windows of one result: its ``runs`` or ``phases`` (several in one invocation), else itself."""
    parts = data.get("runs", data.get("phases", [data]))
    return parts if isinstance(parts, list) else None


def _check(part: Any, text: str | bytes) -> None:
    if not isinstance(part, dict):
        raise GeneratorOutputError(f"a run is not a JSON object: {_preview(text)}")
    missing = [key for key in REQUIRED if not isinstance(part.get(key), int | float)]
    if missing:
        raise GeneratorOutputError(f"no {', '.join(missing)} in {_preview(text)}")
    if part["t1_ns"] <= part["t0_ns"]:
        raise GeneratorOutputError(f"a window that ends before it starts: {_preview(text)}")


def _preview(text: str | bytes) -> str:
    shown = text.decode(errors="replace") if isinstance(text, bytes) else text
    return repr(shown[:200])


def busiest_cores(row: dict[str, Any]) -> float | None:
    """The busiest generator process's cores in its window (its own CPU clock), None when unknown.

    Falls back to the whole generator's CPU spread over its processes when the
    generator does not say which process was busiest.
    """
    window = float(row.get("t1_ns", 0) - row.get("t0_ns", 0)) / 1e9
    if window <= 0:
        return None
    busiest, total = row.get("busiest_cpu_s"), row.get("loadgen_cpu_s")
    if busiest is not None:
        return float(busiest) / window
    if total is None:
        return None
    return float(total) / max(int(row.get("procs") or 1), 1) / window


def bound_reason(*, busiest: float | None, rate_asked: float | None = None,
                 rate_sent: float | None = None) -> str | None:
    """Why a measurement is the generator's rather than the server's, or None when it is the server's.

    ``busiest``: the busiest generator process's cores; ``rate_asked`` and
    ``rate_sent`` for an open-loop generator (datagrams/s).
    """
    if rate_asked and rate_sent is not None and rate_sent < SHORT_OF_RATE * rate_asked:
        return f"generator sent {rate_sent:,.0f} of {rate_asked:,.0f}/s"
    if busiest is not None and busiest >= SATURATED:
        return f"generator busy {busiest:.0%} of a core"
    return None


def judge(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with ``loadgen_busiest`` and ``generator_bound`` (the reason, or None) filled in."""
    busiest = busiest_cores(row)
    row["loadgen_busiest"] = None if busiest is None else round(busiest, 4)
    row["generator_bound"] = bound_reason(busiest=busiest, rate_asked=row.get("rate_asked"),
                                          rate_sent=row.get("rate_sent"))
    return row
