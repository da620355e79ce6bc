"""``python3 -m tools.delayline``: a netem-style delay line on an NFQUEUE, for kernels without ``sch_netem``.

An iptables rule hands packets to the queue (``-j NFQUEUE --queue-num N --queue-bypass``); this
process holds each one until its delay is due. Stdlib only: it runs inside the node image, in a
sidecar that shares the node's network namespace and holds ``CAP_NET_ADMIN`` (and ``CAP_NET_RAW``)
for it.

How a packet is held depends on where it comes from:

* a packet this host sends itself is **copied** (copy mode PACKET), its original dropped at once, and
  the copy sent again from a raw socket when due, with a firewall mark (``--mark``) the caller's
  rules let through. Holding the original instead would keep it charged to its socket, and TCP
  Small Queues would then let a flow have two packets in the air per delay (about 2 Mbit/s at
  20 ms; netem avoids it by orphaning what it holds, which userspace cannot do);
* a forwarded packet (a router node's), or one larger than its interface's MTU (IP fragments it
  later), is held by the kernel, and accepted (``NF_ACCEPT``) when due. ``--no-resend`` holds every
  packet so, with ``CAP_NET_ADMIN`` alone.

The protocol is nfnetlink_queue (``linux/netfilter/nfnetlink_queue.h``); the layering follows the
project's sans-IO style, one module by what each part is:

- ``netlink``: the nfnetlink_queue messages, built and parsed byte for byte;
- ``schedule``: when each held packet is due (delay, jitter, loss, order);
- ``core``: :class:`DelayLine` turns received netlink bytes into verdict bytes and packets to
  send, and knows no sockets; it keeps the held-bytes budget;
- ``runner``: :func:`run`, the thin adapter around it (netlink and raw sockets, signals, the loop);
- ``cli``: the command line (``python3 -m tools.delayline``).

Every name is importable from ``tools.delayline`` as well.

What it does on purpose:

* jitter never reorders packets unless ``--reorder`` is given (a packet is never due before the
  one queued ahead of it; netem reorders by default, which surprises TCP tests);
* loss by ``NF_DROP`` with a seeded RNG, for reproducible runs (``lab.impair`` leaves loss to the
  iptables ``statistic`` match instead, so a delay line is needed only for delay);
* verdicts go out batched: one ``NFQNL_MSG_VERDICT_BATCH`` when they cover a prefix of the queue,
  else many verdicts in one ``send``;
* a big receive buffer and ``NETLINK_NO_ENOBUFS``: when the socket overflows the kernel drops
  the packet (like a full netem queue) and we keep going instead of failing every ``recv``;
* on SIGTERM/SIGINT it lets go of what it still holds (at once: a stopping delay line must not eat
  packets), unbinds the queue and exits 0. The iptables rules belong to the caller and stay.
"""

from __future__ import annotations

from tools.delayline.cli import (
    build_parser,
    main,
)
from tools.delayline.core import (
    HELD_OVERHEAD,
    OVERFLOW_REPORT_EVERY,
    DelayLine,
    Held,
    Resend,
    Stats,
)
from tools.delayline.netlink import (
    ETH_P_IP,
    ETH_P_IPV6,
    MAX_SEND,
    NETLINK_NETFILTER,
    NETLINK_NO_ENOBUFS,
    NF_ACCEPT,
    NF_DROP,
    NFNETLINK_V0,
    NFNL_SUBSYS_QUEUE,
    NFQA_CFG_CMD,
    NFQA_CFG_F_GSO,
    NFQA_CFG_FLAGS,
    NFQA_CFG_MASK,
    NFQA_CFG_PARAMS,
    NFQA_CFG_QUEUE_MAXLEN,
    NFQA_IFINDEX_INDEV,
    NFQA_IFINDEX_OUTDEV,
    NFQA_PACKET_HDR,
    NFQA_PAYLOAD,
    NFQA_VERDICT_HDR,
    NFQNL_CFG_CMD_BIND,
    NFQNL_CFG_CMD_UNBIND,
    NFQNL_COPY_META,
    NFQNL_COPY_PACKET,
    NFQNL_MSG_CONFIG,
    NFQNL_MSG_PACKET,
    NFQNL_MSG_VERDICT,
    NFQNL_MSG_VERDICT_BATCH,
    NLA_TYPE_MASK,
    NLM_F_ACK,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_NOOP,
    SO_RCVBUFFORCE,
    SOL_NETLINK,
    Message,
    NetlinkError,
    Queued,
    chunks,
    config_message,
    error_code,
    message_seq,
    nlattr,
    nlmsg,
    packet_id,
    packet_message,
    parse_attrs,
    parse_messages,
    parse_packet,
    queue_type,
    verdict_message,
)
from tools.delayline.runner import (
    DEFAULT_MARK,
    IPV6_HDRINCL,
    SIOCGIFMTU,
    Sender,
    log,
    open_queue,
    request,
    run,
)
from tools.delayline.schedule import (
    Schedule,
)

__all__ = [
    "DEFAULT_MARK",
    "ETH_P_IP",
    "ETH_P_IPV6",
    "HELD_OVERHEAD",
    "IPV6_HDRINCL",
    "MAX_SEND",
    "NETLINK_NETFILTER",
    "NETLINK_NO_ENOBUFS",
    "NFNETLINK_V0",
    "NFNL_SUBSYS_QUEUE",
    "NFQA_CFG_CMD",
    "NFQA_CFG_FLAGS",
    "NFQA_CFG_F_GSO",
    "NFQA_CFG_MASK",
    "NFQA_CFG_PARAMS",
    "NFQA_CFG_QUEUE_MAXLEN",
    "NFQA_IFINDEX_INDEV",
    "NFQA_IFINDEX_OUTDEV",
    "NFQA_PACKET_HDR",
    "NFQA_PAYLOAD",
    "NFQA_VERDICT_HDR",
    "NFQNL_CFG_CMD_BIND",
    "NFQNL_CFG_CMD_UNBIND",
    "NFQNL_COPY_META",
    "NFQNL_COPY_PACKET",
    "NFQNL_MSG_CONFIG",
    "NFQNL_MSG_PACKET",
    "NFQNL_MSG_VERDICT",
    "NFQNL_MSG_VERDICT_BATCH",
    "NF_ACCEPT",
    "NF_DROP",
    "NLA_TYPE_MASK",
    "NLMSG_DONE",
    "NLMSG_ERROR",
    "NLMSG_NOOP",
    "NLM_F_ACK",
    "NLM_F_REQUEST",
    "OVERFLOW_REPORT_EVERY",
    "SIOCGIFMTU",
    "SOL_NETLINK",
    "SO_RCVBUFFORCE",
    "DelayLine",
    "Held",
    "Message",
    "NetlinkError",
    "Queued",
    "Resend",
    "Schedule",
    "Sender",
    "Stats",
    "build_parser",
    "chunks",
    "config_message",
    "error_code",
    "log",
    "main",
    "message_seq",
    "nlattr",
    "nlmsg",
    "open_queue",
    "packet_id",
    "packet_message",
    "parse_attrs",
    "parse_messages",
    "parse_packet",
    "queue_type",
    "request",
    "run",
    "verdict_message",
]
