"""Reassembly of ``spew`` chunks into messages, within budgets charged at their real cost."""

from __future__ import annotations

import operator
import sys
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Literal

from protocols.creosote.chunks import Chunk
from protocols.creosote.records import Record, make_record
from protocols.creosote.wire import MAX_UDP_PAYLOAD, Address
from protocols.errors import LocalProtocolError, RemoteProtocolError

# --------------------------------------------------------------------------- reassembly


@dataclass(frozen=True, slots=True)
class LossCounts:
    """Chunk accounting for one source, or for all.

    No count can grow faster than chunks arrive, whatever the chunks claim: a
    header saying ``0/65535`` is one chunk, not 65,534 lost ones (see ``lost``).
    """

    completed: int = 0  # messages reassembled
    incomplete: int = 0  # messages given up on (expired, evicted or too large)
    # Chunks the given-up messages never received, each message counting at most as many as it did
    # receive: a lower bound, so that a sender claiming huge totals cannot inflate it (a chunk header
    # of n=65535 once counted 65,534 lost chunks a datagram: 1.84e9 after 28,000 datagrams).
    lost: int = 0
    duplicated: int = 0  # chunks received again
    reordered: int = 0  # chunks that arrived after a later chunk of their message
    late: int = 0  # chunks of a message already given up on
    too_large: int = 0  # messages refused because they would be longer than the largest kept

    def __add__(self, other: LossCounts) -> LossCounts:
        # Twice per given-up message (the totals, the source's): a flood of new message ids evicts one a
        # datagram, and dataclasses.fields() on each made this half of feed()'s time (cProfile).
        return LossCounts(*map(operator.add, _loss_values(self), _loss_values(other)))


_loss_values: Callable[[LossCounts], tuple[int, ...]] = operator.attrgetter(*(f.name for f in fields(LossCounts)))


@dataclass(frozen=True, slots=True)
class Message:
    """A message reassembled from all its chunks."""

    source: Address
    msg_id: int
    data: bytes
    chunks: int
    duplicated: int
    reordered: int


GiveUpReason = Literal["expired", "evicted", "too_large"]


@dataclass(frozen=True, slots=True)
class Incomplete:
    """A message given up on: idle too long, pushed out to stay in budget, or longer than the largest kept."""

    source: Address
    msg_id: int
    have: int  # chunks received before giving up
    total: int
    reason: GiveUpReason


ReassemblyEvent = Message | Incomplete


def make_message_record(message: Message, received: float) -> Record:
    """The record for a reassembled message, with its chunk count and any anomalies."""
    record = make_record(message.data, message.source, received)
    return replace(
        record,
        chunks=message.chunks,
        duplicated=message.duplicated or None,
        reordered=message.reordered or None,
    )


MIB = 2**20
# The largest message put back together. Recording one costs more than its bytes: text, syslog message
# and their JSON escapes (six bytes for a control character) peaked at 24.4 times the message in objects
# (tracemalloc, a 1 MiB "<13>" + control characters message; 4.0 for plain text, 8.3 for binary) and
# 34 MiB of RSS above the sink's 17 (VmHWM). 10 MiB of that once peaked the sink at 270 MiB RSS: past a
# 128 MiB container's limit.
MAX_MESSAGE_BYTES = 1 * MIB
# What pending messages may hold, charged at what they really cost (_Pending.real_cost). With the
# interpreter (17 MiB at ready), the completion above (34 MiB) and the kernel's receive queue (8 MiB for
# SO_RCVBUF 4 MiB), 83 MiB of a 128 MiB container at the worst.
MAX_PENDING_BYTES = 24 * MIB
MAX_SOURCE_BYTES = 4 * MIB  # per source: one sender cannot take the whole budget from the others
MAX_PENDING_PER_SOURCE = 64  # message ids waiting at once, per source
# A pending message's memory besides its four buffers (which sys.getsizeof measures as allocated):
# the _Pending object, its key (a (host, port) tuple, the host string, the id), its entries in two
# OrderedDicts and, when it is its source's only one, the source's. tracemalloc measured 495 bytes a
# message for 100,000 ids from one source, 824 for one id from each of 10,000 ports; the rest covers
# malloc's headers and rounding. Charged this way, RSS grew by 0.68-0.99 of the charge for those
# shapes and for 6 x 60,000 2-byte chunks; the old charge (payload + 64 bytes a chunk) covered
# 0.06-0.51 of RSS growth for the same three. tests/unit/test_creosote.py checks it with tracemalloc.
_MESSAGE_OVERHEAD = 1024
_INDEX = "H"  # array type of a chunk index: 0..65534
_OFFSET = "I"  # array type of an offset in a message's bytes: at least 32 bits
if array(_OFFSET).itemsize < 4:  # pragma: no cover - every platform CPython runs on has a 32-bit int
    _OFFSET = "L"


@dataclass(slots=True, eq=False)
class _Pending:
    """A message being put back together: its payloads end to end, in the order they came.

    Four flat buffers, whatever the chunk count: a dict of bytes objects cost a 2-byte chunk about
    110 bytes (object header, dict slot, int key), where these cost it 8, and their real size is
    ``sys.getsizeof`` of each.
    """

    total: int
    seen: bytearray  # one bit per chunk index
    data: bytearray = field(default_factory=bytearray)
    order: array[int] = field(default_factory=lambda: array(_INDEX))  # chunk index of each payload in data
    ends: array[int] = field(default_factory=lambda: array(_OFFSET))  # where each payload ends in data
    last_seen: float = 0.0
    highest: int = -1
    cost: int = 0  # what was charged for it
    duplicated: int = 0
    reordered: int = 0

    @property
    def have(self) -> int:
        return len(self.order)

    def has(self, index: int) -> bool:
        return bool(self.seen[index >> 3] >> (index & 7) & 1)

    def add(self, index: int, payload: bytes) -> None:
        self.seen[index >> 3] |= 1 << (index & 7)
        self.data += payload
        self.order.append(index)
        self.ends.append(len(self.data))

    def real_cost(self) -> int:
        """Bytes this message holds, as allocated (bytearray and array over-allocate as they grow)."""
        return (
            _MESSAGE_OVERHEAD
            + sys.getsizeof(self.seen)
            + sys.getsizeof(self.data)
            + sys.getsizeof(self.order)
            + sys.getsizeof(self.ends)
        )

    def joined(self) -> bytes:
        """The message, its payloads in index order (all present)."""
        if not self.reordered:  # every chunk came after the ones before it: data is already in order
            return bytes(self.data)
        view = memoryview(self.data)
        starts = [0, *self.ends[:-1]]
        spans = sorted(zip(self.order, starts, self.ends, strict=True))
        return b"".join(view[start:end] for _, start, end in spans)


def _one_chunk_cost() -> int:
    pending = _Pending(total=1, seen=bytearray(1))
    pending.add(0, bytes(MAX_UDP_PAYLOAD))
    return pending.real_cost()


_LARGEST_ONE_CHUNK = _one_chunk_cost()  # the least a byte cap must hold: one message of one chunk


@dataclass(slots=True)
class _Source:
    messages: OrderedDict[int, None] = field(default_factory=OrderedDict)  # msg ids, least recently active first
    cost: int = 0


_Key = tuple[Address, int]


class Reassembler:
    """Reassemble chunked messages from many sources, with bounded memory.

    ``feed`` takes one chunk and returns what it completed or gave up on;
    ``expire`` gives up on messages idle for ``timeout`` seconds. Memory is
    charged at what pending messages really hold (``pending_bytes``) and capped
    per source (``max_pending`` messages, ``max_bytes``) and in total
    (``max_total_bytes``): over a cap, the least recently active message goes
    first (``evicted``). A message longer than ``max_message`` bytes is refused
    (``too_large``), at its first chunk when that chunk shows it: every chunk
    but the last carries as many bytes as the first (``encode_chunks`` cuts
    them so). Per-source counts are kept for the ``max_sources`` most recent
    sources; the totals cover everyone. Chunks of a message already finished
    (the last ``max_closed``) count as duplicated or late instead of starting
    it over.
    """

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        max_pending: int = MAX_PENDING_PER_SOURCE,
        max_message: int = MAX_MESSAGE_BYTES,
        max_bytes: int = MAX_SOURCE_BYTES,
        max_total_bytes: int = MAX_PENDING_BYTES,
        max_sources: int = 1024,
        max_closed: int = 4096,
    ) -> None:
        if min(timeout, max_pending, max_message, max_sources, max_closed) <= 0:
            raise LocalProtocolError("reassembly timeout and limits must be positive")
        if min(max_bytes, max_total_bytes) < _MESSAGE_OVERHEAD + MAX_UDP_PAYLOAD:
            raise LocalProtocolError(f"byte caps must hold a message of one chunk ({_LARGEST_ONE_CHUNK} bytes)")
        self.timeout = timeout
        self._max_pending, self._max_message = max_pending, max_message
        self._max_bytes, self._max_total_bytes = max_bytes, max_total_bytes
        self._max_sources, self._max_closed = max_sources, max_closed
        self._pending: OrderedDict[_Key, _Pending] = OrderedDict()  # least recently active first
        self._sources: dict[Address, _Source] = {}  # only sources with pending messages
        self._total_cost = 0
        self._closed: OrderedDict[_Key, bool] = OrderedDict()  # recently finished -> was it completed?
        self._by_source: OrderedDict[Address, LossCounts] = OrderedDict()
        self._totals = LossCounts()

    @property
    def totals(self) -> LossCounts:
        """Counts over every source since the start."""
        return self._totals

    def by_source(self) -> dict[Address, LossCounts]:
        """Counts for the most recently active sources."""
        return dict(self._by_source)

    @property
    def pending_bytes(self) -> int:
        """Memory held by incomplete messages, as allocated."""
        return self._total_cost

    @property
    def pending_messages(self) -> int:
        """Messages waiting for chunks."""
        return len(self._pending)

    def feed(self, chunk: Chunk, source: Address, now: float) -> list[ReassemblyEvent]:
        """Add a chunk received at monotonic time ``now``.

        Raises ``RemoteProtocolError`` if the chunk disagrees with earlier ones
        about its message's chunk count (state is then unchanged).
        """
        key = (source, chunk.msg_id)
        if key in self._closed:
            self._count(source, LossCounts(duplicated=1) if self._closed[key] else LossCounts(late=1))
            return []
        pending = self._pending.get(key)
        events: list[ReassemblyEvent] = []
        if pending is None:
            if chunk.index < chunk.total - 1 and (chunk.total - 1) * len(chunk.payload) > self._max_message:
                return [self._refuse(key, chunk.total)]
            events += self._make_room_for_message(source)
            pending = self._open(key, chunk.total)
        elif pending.total != chunk.total:
            raise RemoteProtocolError(f"chunk says {chunk.total} chunks, message {chunk.msg_id:x} has {pending.total}")
        elif pending.has(chunk.index):
            pending.duplicated += 1
            self._count(source, LossCounts(duplicated=1))
            return []
        self._store(key, pending, chunk, now)
        if pending.have == pending.total:
            events.append(self._complete(key))
        elif len(pending.data) > self._max_message:
            events.append(self._give_up(key, "too_large"))
        else:
            events += self._make_room(source)
        return events

    def expire(self, now: float) -> list[Incomplete]:
        """Give up on messages with no chunk for ``timeout`` seconds before ``now``."""
        expired: list[Incomplete] = []
        while self._pending:
            key, pending = next(iter(self._pending.items()))
            if now - pending.last_seen < self.timeout:
                break
            expired.append(self._give_up(key, "expired"))
        return expired

    def _open(self, key: _Key, total: int) -> _Pending:
        pending = self._pending[key] = _Pending(total=total, seen=bytearray((total + 7) >> 3))
        self._sources.setdefault(key[0], _Source()).messages[key[1]] = None
        self._charge(key, pending, pending.real_cost())
        return pending

    def _store(self, key: _Key, pending: _Pending, chunk: Chunk, now: float) -> None:
        if chunk.index < pending.highest:
            pending.reordered += 1
            self._count(key[0], LossCounts(reordered=1))
        pending.highest = max(pending.highest, chunk.index)
        pending.add(chunk.index, chunk.payload)
        pending.last_seen = now
        self._charge(key, pending, pending.real_cost() - pending.cost)
        self._pending.move_to_end(key)
        self._sources[key[0]].messages.move_to_end(key[1])

    def _complete(self, key: _Key) -> Message:
        pending = self._forget(key, completed=True)
        self._count(key[0], LossCounts(completed=1))
        return Message(key[0], key[1], pending.joined(), pending.total, pending.duplicated, pending.reordered)

    def _make_room_for_message(self, source: Address) -> list[ReassemblyEvent]:
        """Give up on the source's least recently active messages until one more may wait."""
        held = self._sources.get(source)
        evicted: list[ReassemblyEvent] = []
        while held is not None and len(held.messages) >= self._max_pending:
            evicted.append(self._give_up((source, next(iter(held.messages))), "evicted"))
            held = self._sources.get(source)
        return evicted

    def _make_room(self, source: Address) -> list[ReassemblyEvent]:
        """Give up on least recently active messages, the source's then anyone's, until every cap holds.

        This ends: each round removes a message, and with none left nothing is
        charged. The message just fed is its source's most recent, so it goes
        last, and only when it alone is over a cap.
        """
        evicted: list[ReassemblyEvent] = []
        while True:
            held = self._sources.get(source)
            if held is not None and held.cost > self._max_bytes:
                victim = source, next(iter(held.messages))
            elif self._total_cost > self._max_total_bytes:
                victim = next(iter(self._pending))
            else:
                return evicted
            evicted.append(self._give_up(victim, "evicted"))

    def _refuse(self, key: _Key, total: int) -> Incomplete:
        self._close(key, completed=False)
        self._count(key[0], LossCounts(incomplete=1, too_large=1))
        return Incomplete(key[0], key[1], 0, total, "too_large")

    def _give_up(self, key: _Key, reason: GiveUpReason) -> Incomplete:
        pending = self._forget(key, completed=False)
        if reason == "too_large":
            counts = LossCounts(incomplete=1, too_large=1)  # refused, not lost: the rest will come late
        else:
            counts = LossCounts(incomplete=1, lost=min(pending.total - pending.have, pending.have))
        self._count(key[0], counts)
        return Incomplete(key[0], key[1], pending.have, pending.total, reason)

    def _forget(self, key: _Key, *, completed: bool) -> _Pending:
        pending = self._pending[key]
        self._charge(key, pending, -pending.cost)
        del self._pending[key]
        held = self._sources[key[0]]
        del held.messages[key[1]]
        if not held.messages:
            del self._sources[key[0]]
        self._close(key, completed=completed)
        return pending

    def _close(self, key: _Key, *, completed: bool) -> None:
        self._closed[key] = completed
        if len(self._closed) > self._max_closed:
            self._closed.popitem(last=False)

    def _charge(self, key: _Key, pending: _Pending, cost: int) -> None:
        pending.cost += cost
        self._sources[key[0]].cost += cost
        self._total_cost += cost

    def _count(self, source: Address, counts: LossCounts) -> None:
        self._totals += counts
        self._by_source[source] = self._by_source.get(source, LossCounts()) + counts
        self._by_source.move_to_end(source)
        if len(self._by_source) > self._max_sources:
            self._by_source.popitem(last=False)
