"""``python3 -m tools.delayline``: its command line."""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence

from common.argtypes import int_in, non_negative_float
from tools.delayline.core import DelayLine, Held
from tools.delayline.runner import DEFAULT_MARK, run
from tools.delayline.schedule import Schedule


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m tools.delayline",
        description="Delay (and optionally drop) the packets an iptables NFQUEUE rule sends to a queue.",
    )
    parser.add_argument(
        "--queue", type=int_in(0, 65535, "a queue number"), required=True, help="NFQUEUE number (0-65535)"
    )
    parser.add_argument("--delay-ms", type=non_negative_float, required=True, help="delay added to every packet")
    parser.add_argument("--jitter-ms", type=non_negative_float, default=0.0, help="uniform +/- variation of the delay")
    parser.add_argument("--loss-pct", type=non_negative_float, default=0.0, help="drop this percentage (NF_DROP)")
    parser.add_argument("--seed", type=int, help="seed for jitter and loss (default: random)")
    parser.add_argument("--reorder", action="store_true", help="let jitter reorder packets (as netem does)")
    parser.add_argument(
        "--no-resend",
        dest="resend",
        action="store_false",
        help="hold every packet in the kernel instead of sending copies (no CAP_NET_RAW needed; slow TCP)",
    )
    parser.add_argument(
        "--mark",
        type=int_in(1, 0xFFFFFFFF, "a mark", base=0),
        default=DEFAULT_MARK,
        help="fwmark of resent packets (default 0x7e57)",
    )
    parser.add_argument("--queue-maxlen", type=int, default=8192, help="packets the kernel holds (default 8192)")
    parser.add_argument("--rcvbuf", type=int, default=8 << 20, help="socket receive buffer in bytes (default 8 MiB)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.loss_pct > 100:
        parser.error("--loss-pct must be within 0-100")
    if args.queue_maxlen < 1:
        parser.error("--queue-maxlen must be at least 1")
    schedule: Schedule[Held] = Schedule(
        delay=args.delay_ms / 1e3,
        jitter=args.jitter_ms / 1e3,
        loss=args.loss_pct / 100,
        reorder=args.reorder,
        rng=random.Random(args.seed),
    )
    line = DelayLine(args.queue, schedule, resend=args.resend)
    return run(line, maxlen=args.queue_maxlen, rcvbuf=args.rcvbuf, mark=args.mark)
