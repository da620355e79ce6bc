"""``udp``: datagrams of ``--size`` bytes paced at ``--rate`` per second by forked senders, counted exactly."""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from typing import Any

from bench.loadgen.common import NS, resolve


def syslog_datagram(size: int) -> bytes:
    """An RFC 5424 message of exactly ``size`` bytes (padded), parsed as syslog by both sinks."""
    head = b"<14>1 2026-01-01T00:00:00.000000Z loadgen bench - - - "
    if size < len(head) + 1:
        raise ValueError(f"a datagram needs at least {len(head) + 1} bytes")
    return head + b"x" * (size - len(head))


def _sender(address: tuple[str, int], *, payload: bytes, rate: float, duration: float) -> dict[str, Any]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(address)  # connected UDP: no address handling per send
    send = sock.send
    perf = time.perf_counter_ns
    sent = errors = 0
    cpu0 = time.process_time()
    start = perf()
    end = start + int(duration * NS)
    per_ns = rate / NS
    while True:
        now = perf()
        if now >= end:
            break
        due = int((now - start) * per_ns) - sent
        if due <= 0:
            # Sleep until about the next datagram is due; the kernel's timer slack
            # makes short sleeps longer, which the next burst makes up for.
            time.sleep(min(max((sent + 1) / per_ns + start - now, 0) / NS, 0.0005))
            continue
        for _ in range(min(due, 1000)):
            try:
                send(payload)
                sent += 1
            except OSError:
                errors += 1
    stop = perf()
    cpu = time.process_time() - cpu0
    sock.close()
    return {"sent": sent, "send_errors": errors, "elapsed_s": (stop - start) / NS, "cpu_s": cpu,
            "t0_ns": start, "t1_ns": stop}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Send with ``--procs`` forked senders, each at ``rate / procs``; report what was sent."""
    address = (resolve(args.host), args.port)
    payload = syslog_datagram(args.size)
    pids: list[tuple[int, int]] = []
    for _ in range(args.procs):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                os.close(r)
                res = _sender(address, payload=payload, rate=args.rate / args.procs, duration=args.duration)
                os.write(w, json.dumps(res).encode())
            except BaseException:
                status = 1
            finally:
                os._exit(status)
        os.close(w)
        pids.append((pid, r))
    parts = []
    for pid, r in pids:
        with os.fdopen(r, "rb") as reader:
            raw = reader.read()
        os.waitpid(pid, 0)
        if not raw:
            raise RuntimeError("a sender died")
        parts.append(json.loads(raw))
    sent = sum(p["sent"] for p in parts)
    elapsed = max(p["elapsed_s"] for p in parts)
    return {
        "generator": "udp-python",
        "target": f"{args.host}:{args.port}",
        "size": args.size,
        "rate_asked": args.rate,
        "sent": sent,
        "send_errors": sum(p["send_errors"] for p in parts),
        "elapsed_s": round(elapsed, 4),
        "rate_sent": sent / elapsed if elapsed else 0.0,
        "loadgen_cpu_s": round(sum(p["cpu_s"] for p in parts), 4),
        "busiest_cpu_s": round(max(p["cpu_s"] for p in parts), 4),
        "procs": args.procs,
        "t0_ns": min(p["t0_ns"] for p in parts),
        "t1_ns": max(p["t1_ns"] for p in parts),
    }

