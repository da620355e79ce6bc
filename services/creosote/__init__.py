"""Creosote, the UDP log sink ("Mr. Creosote"): it swallows every datagram.

    python -m services.creosote [--port 7739] [--log-file PATH [--raw]] [--redirect HOST:PORT]

Bucket mode (the default) turns each datagram, or each message reassembled from
``spew`` chunks, into a record: one ``record`` event line on stdout and, with
``--log-file``, one JSON line in the file, flushed within 100 ms and rotated by
size (``--records-max-bytes``, ``--records-keep``). Redirector mode relays every
datagram to ``--redirect``, behind a hop line counting the redirectors it has
passed (``protocols.creosote.add_hop``): past ``MAX_HOPS`` it is dropped, so
redirectors in a loop stop. Raw mode (``--raw``) writes each datagram to
``--log-file`` as the line it came as and does nothing else: the leanest work,
the one to compare with a syslog daemon writing raw lines. All answer the probe
``\\x00creosote:ping``. No datagram, whatever its size or bytes, stops the loop:
it becomes a record or a counted ``bad_datagram`` event.

The parts, by what each is:

- ``sink``: the socket loop (``Sink``), which knows nothing of records, and the
  ``Handler`` it drives; tests run it in a thread and stop it.
- ``bucket``: bucket mode (``Bucket``): records, reassembly, loss reports.
- ``records_file``: the JSON Lines file (``JsonlWriter``), batched and rotated.
- ``raw``: raw mode (``RawLines``): each datagram one line of that file.
- ``relay``: redirector mode (``Relay``, ``Resolver``).
- ``cli``: the command line (``SinkConfig``, ``parse_config``), ``open_sink``, ``main``.
"""

from __future__ import annotations

from services.creosote.bucket import (
    LOSS_REPORT_INTERVAL,
    LOSS_REPORT_MIN_INTERVAL,
    PREVIEW_CHARS,
    RECORD_LINES_PER_SECOND,
    Bucket,
    summary,
)
from services.creosote.cli import (
    DEFAULT_RCVBUF,
    SERVER,
    SinkConfig,
    build_parser,
    datagram_buffer,
    host_and_port,
    main,
    open_sink,
    parse_config,
)
from services.creosote.raw import RawLines
from services.creosote.records_file import (
    DEFAULT_KEEP,
    DEFAULT_MAX_BYTES,
    FLUSH_DELAY,
    IDLE_FLUSH,
    MAX_BATCH,
    MAX_BATCH_BYTES,
    WRITE_BUFFER,
    JsonlWriter,
    LogFileError,
)
from services.creosote.relay import RESOLVE_RETRY, RESOLVE_TTL, Relay, Resolver
from services.creosote.sink import MAX_TICK, TICK_EVERY, Datagram, Handler, Sink, SockAddr

__all__ = [
    "DEFAULT_KEEP",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_RCVBUF",
    "FLUSH_DELAY",
    "IDLE_FLUSH",
    "LOSS_REPORT_INTERVAL",
    "LOSS_REPORT_MIN_INTERVAL",
    "MAX_BATCH",
    "MAX_BATCH_BYTES",
    "MAX_TICK",
    "PREVIEW_CHARS",
    "RECORD_LINES_PER_SECOND",
    "RESOLVE_RETRY",
    "RESOLVE_TTL",
    "SERVER",
    "TICK_EVERY",
    "WRITE_BUFFER",
    "Bucket",
    "Datagram",
    "Handler",
    "JsonlWriter",
    "LogFileError",
    "RawLines",
    "Relay",
    "Resolver",
    "Sink",
    "SinkConfig",
    "SockAddr",
    "build_parser",
    "datagram_buffer",
    "host_and_port",
    "main",
    "open_sink",
    "parse_config",
    "summary",
]
