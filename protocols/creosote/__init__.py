"""Creosote, the UDP log sink ("Mr. Creosote"): everything but the sockets.

The course original sent a long message as bare ``BUFSIZE`` slices and printed
whatever ``recvfrom`` returned, so the sink could not tell where one message
ended, which slice was missing or which came twice. This module fixes that and
stays pure, so the sink, the redirector and the ``spew`` client share it:

- ``make_record`` turns one datagram (or one reassembled message) into a
  ``Record``: text or base64, plus syslog fields when it parses (``parse_syslog``).
- ``encode_chunks`` / ``decode_chunk`` frame a message too long for one datagram:
  a header line ``\\x00creosote1 <msgid-hex> <i>/<n>\\n`` then the chunk. The
  leading NUL means no text log line can be mistaken for a chunk.
- ``Reassembler`` puts chunks back together and counts lost, duplicated,
  reordered and late chunks. Its memory is charged at what pending messages
  really hold and capped (per message, per source, in total); no count can
  grow faster than chunks arrive, whatever totals their headers claim.
- ``is_ping`` / ``pong``: the health probe, answered by the sink, never recorded.
- ``add_hop`` / ``split_hops``: what a redirector forwards. It used to relay
  every datagram unchanged, and three redirectors in a ring passed one
  datagram round 590,000 times in 10 s (a ring of two was caught, as the
  datagram came back from the target). Now a redirector puts a hop line
  ``\\x00creosote-hops <n>\\n`` in front of what it relays, or adds one to the
  ``n`` already there, and drops the datagram instead once ``n`` would pass
  ``MAX_HOPS``: a ring of any size relays a datagram at most ``MAX_HOPS``
  times. The sink takes the line off before recording, so a record holds what
  the sender sent. A redirector's target is therefore a creosote (a sink or a
  redirector): another syslog receiver would record the hop line too.
"""

from __future__ import annotations

from protocols.creosote.chunks import (
    CHUNK_MAGIC,
    HOP_MAGIC,
    MAX_CHUNKS,
    MAX_HOPS,
    MAX_MSG_ID,
    Chunk,
    HopLimitExceeded,
    add_hop,
    decode_chunk,
    encode_chunks,
    frame_message,
    split_hops,
)
from protocols.creosote.reassembly import (
    MAX_MESSAGE_BYTES,
    MAX_PENDING_BYTES,
    MAX_PENDING_PER_SOURCE,
    MAX_SOURCE_BYTES,
    MIB,
    GiveUpReason,
    Incomplete,
    LossCounts,
    Message,
    Reassembler,
    ReassemblyEvent,
    make_message_record,
)
from protocols.creosote.records import (
    Record,
    RecordValues,
    iso_utc,
    json_line,
    make_record,
    plain_json,
    record_values,
)
from protocols.creosote.syslog import (
    FACILITY_USER,
    SEVERITY_NAMES,
    StructuredData,
    SyslogFields,
    SyslogFormat,
    encode_pri,
    parse_syslog,
)
from protocols.creosote.wire import (
    DEFAULT_PORT,
    DEFAULT_SPEW_DATAGRAM,
    MAX_UDP_PAYLOAD,
    PING,
    PONG_PREFIX,
    RECEIVE_BUFFER,
    Address,
    is_ping,
    parse_pong,
    pong,
)

__all__ = [
    "CHUNK_MAGIC",
    "DEFAULT_PORT",
    "DEFAULT_SPEW_DATAGRAM",
    "FACILITY_USER",
    "HOP_MAGIC",
    "MAX_CHUNKS",
    "MAX_HOPS",
    "MAX_MESSAGE_BYTES",
    "MAX_MSG_ID",
    "MAX_PENDING_BYTES",
    "MAX_PENDING_PER_SOURCE",
    "MAX_SOURCE_BYTES",
    "MAX_UDP_PAYLOAD",
    "MIB",
    "PING",
    "PONG_PREFIX",
    "RECEIVE_BUFFER",
    "SEVERITY_NAMES",
    "Address",
    "Chunk",
    "GiveUpReason",
    "HopLimitExceeded",
    "Incomplete",
    "LossCounts",
    "Message",
    "Reassembler",
    "ReassemblyEvent",
    "Record",
    "RecordValues",
    "StructuredData",
    "SyslogFields",
    "SyslogFormat",
    "add_hop",
    "decode_chunk",
    "encode_chunks",
    "encode_pri",
    "frame_message",
    "is_ping",
    "iso_utc",
    "json_line",
    "make_message_record",
    "make_record",
    "parse_pong",
    "parse_syslog",
    "plain_json",
    "pong",
    "record_values",
    "split_hops",
]
