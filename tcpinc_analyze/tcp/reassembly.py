"""One direction's TCP byte stream: 64-bit offsets, retransmissions, overlaps, reordering
and gaps, delivered in order to a consumer.

Bytes are passed on as soon as they are contiguous and only a bounded window is kept,
so memory depends on reordering depth, never on stream length. The first copy of a byte
that arrives wins, whether it was already delivered or is still buffered behind a hole;
a later copy that differs is reported as a possible injection. Scapy fills holes with
zeros; we report them instead.

Bytes waiting behind a hole are kept as disjoint intervals in a sorted map, so a segment
costs O(log n) in the number of holes (a list scan per segment made 200,000 reordered
segments take minutes: issue 10, item 23).
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from sortedcontainers import SortedDict

from ..findings import Finding, Severity
from ..words import plural

SEQ_MOD = 1 << 32
HALF = 1 << 31
RECENT_WINDOW = 1 << 16
"""Delivered bytes kept to compare retransmissions against."""
DIRECTION_TEXT = {"ab": "A->B", "ba": "B->A"}
PENDING_LIMIT = 4 << 20
"""Out-of-order bytes buffered before the oldest hole is declared a gap."""
_NO_PENDING: SortedDict = SortedDict()
"""Shared by every stream with nothing buffered (a SortedDict costs about a kilobyte,
and a SYN flood creates a stream per SYN); never written to."""
_NO_RECENT: tuple[bytes, ...] = ()
_NO_HOLES: frozenset[int] = frozenset()
TRUNCATED_KEPT = 256
"""Ends of snaplen-cut segments remembered (to name a gap's cause) before pruning."""


class StreamConsumer(Protocol):
    """What receives a direction's bytes in stream order."""

    def data(self, offset: int, chunk: bytes, packet: int) -> None:
        """Contiguous bytes starting at stream ``offset``."""

    def gap(self, offset: int, size: int, packet: int | None) -> None:
        """``size`` bytes at ``offset`` are not in the capture."""


def _first_difference(a: bytes, b: bytes) -> int:
    """Index of the first byte where ``a`` and ``b`` differ (they do)."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)))


class DirectionStream:
    """Reassembles one direction; findings go to the shared ``findings`` list."""

    __slots__ = ("base", "next", "pending", "pending_bytes", "recent", "recent_bytes",
                 "consumer", "findings", "lost", "label", "last_packet",
                 "truncated_holes", "rfc", "ops")

    def __init__(self, consumer: StreamConsumer | None, findings: list[Finding],
                 label: str) -> None:
        self.base: int | None = None
        self.next = 0
        self.pending: SortedDict = _NO_PENDING
        """start -> [bytes, packet, out_of_order]: disjoint intervals beyond ``next``."""
        self.pending_bytes = 0
        self.recent: deque[bytes] | tuple[bytes, ...] = _NO_RECENT
        """Delivered chunks kept for comparison (created on the first delivery)."""
        self.recent_bytes = 0
        self.consumer = consumer
        self.findings = findings
        self.lost = 0
        self.label = label
        self.last_packet = 0
        self.truncated_holes: set[int] | frozenset[int] = _NO_HOLES
        self.rfc: str | None = None
        """Set while tcpcrypt runs: a conflicting retransmission then breaks RFC 8548
        §3.6 ("the same payload bytes for the same TCP sequence numbers")."""
        self.ops = 0
        """Buffered intervals visited (a cost counter tests bound: it must grow with the
        number of segments, not with segments times holes)."""

    def start(self, seq: int) -> None:
        """Set stream offset 0 to sequence number ``seq`` (ISN + 1)."""
        self.base = seq % SEQ_MOD

    def offset_of(self, seq: int) -> int:
        """The 64-bit stream offset of a 32-bit sequence number, unwrapped near ``next``."""
        if self.base is None:
            self.base = seq % SEQ_MOD
        rel = (seq - self.base) % SEQ_MOD
        delta = ((rel - self.next % SEQ_MOD + HALF) % SEQ_MOD) - HALF
        return self.next + delta

    def _finding(self, severity: Severity, code: str, message: str, packet: int | None,
                 offset: int | None = None, size: int | None = None) -> None:
        arrow = DIRECTION_TEXT.get(self.label, self.label)
        rfc = self.rfc if code == "retransmission-conflict" else None
        self.findings.append(Finding(severity, code, f"{arrow}: {message}", offset, packet,
                                     self.label, size, rfc))

    def _conflict(self, offset: int, packet: int) -> None:
        self._finding(Severity.WARNING, "retransmission-conflict",
                      f"retransmitted bytes at offset {offset} differ from the first copy "
                      "(possible injection; the first copy is used)", packet, offset)

    def segment(self, seq: int, payload: bytes, packet: int, missing: int = 0) -> None:
        """Take one segment's payload (``missing`` bytes of it were not captured)."""
        self.last_packet = packet
        if not payload and not missing:
            return
        off = self.offset_of(seq)
        end = off + len(payload)
        if missing:
            holes = self.truncated_holes
            if holes is _NO_HOLES:
                holes = self.truncated_holes = set()
            elif len(holes) >= TRUNCATED_KEPT:
                self.truncated_holes = holes = {h for h in holes if h >= self.next}
            holes.add(end)
        if end <= self.next:
            if payload:
                self._compare(off, payload, packet, whole=True)
            return
        conflict = False
        if off < self.next:
            conflict = self._compare(off, payload[:self.next - off], packet, whole=False)
            payload = payload[self.next - off:]
            off = self.next
        pending = self.pending
        if off == self.next and (not pending or pending.peekitem(0)[0] >= end):
            self._deliver(off, payload, packet)  # the common case: in order
            if pending:
                self._drain(filled=True)
            return
        self._buffer(off, payload, packet, conflict)
        if off == self.next:
            self._drain(filled=True)
        elif self.pending_bytes > PENDING_LIMIT:
            self._declare_gap(pending.peekitem(0)[0], None)

    def ack(self, ack: int) -> None:
        """The peer acknowledged up to ``ack``: a hole below it was missed by the capture."""
        if not self.pending or self.base is None:
            return  # the common case: nothing is waiting behind a hole
        off = self.offset_of(ack)
        if off > self.next:
            self._declare_gap(min(self.pending.peekitem(0)[0], off), None)

    def finish(self) -> None:
        """End of capture or connection: every remaining hole becomes a gap."""
        while self.pending:
            self._declare_gap(self.pending.peekitem(0)[0], None)

    # ------------------------------------------------------------------ internals
    def _buffer(self, off: int, payload: bytes, packet: int, conflict: bool) -> None:
        """Keep the bytes of [off, end) that no buffered interval holds yet; compare the
        ones that are held (the first copy stays)."""
        pending = self.pending
        if pending is _NO_PENDING:
            pending = self.pending = SortedDict()
        end = off + len(payload)
        keys = pending.keys()
        i = pending.bisect_right(off)
        if i:
            i -= 1
            start = keys[i]
            if start + len(pending[start][0]) <= off:
                i += 1
        pos = off
        pieces: list[tuple[int, bytes]] = []
        overlapped = 0
        while i < len(keys):
            start = keys[i]
            if start >= end:
                break
            self.ops += 1
            held = pending[start][0]
            stop = start + len(held)
            if start > pos:
                pieces.append((pos, payload[pos - off:start - off]))
            lo, hi = max(start, pos), min(stop, end)
            overlapped += hi - lo
            if not conflict and held[lo - start:hi - start] != payload[lo - off:hi - off]:
                conflict = True
                self._conflict(lo + _first_difference(held[lo - start:hi - start],
                                                      payload[lo - off:hi - off]), packet)
            pos = max(pos, stop)
            i += 1
        if pos < end:
            pieces.append((pos, payload[pos - off:] if pos > off else payload))
        if overlapped and not pieces and not conflict:
            self._finding(Severity.NOTE, "tcp-retransmission",
                          f"retransmission of {plural(len(payload), 'byte')} at offset {off}",
                          packet, off)
        first = True
        for start, piece in pieces:
            self.ops += 1
            pending[start] = [piece, packet, first and start > self.next]
            self.pending_bytes += len(piece)
            first = False

    def _compare(self, off: int, payload: bytes, packet: int, *, whole: bool) -> bool:
        """Compare bytes already delivered; True when they differ (reported)."""
        if whole and len(payload) <= 1 and off == self.next - 1:
            return False  # a keep-alive: its one byte is garbage by design (RFC 9293 3.8.4)
        start = self.next - self.recent_bytes
        lo = max(off, start)
        hi = off + len(payload)
        if lo < hi:
            held = self._recent_slice(lo - start, hi - start)
            if held != payload[lo - off:]:
                self._conflict(lo + _first_difference(held, payload[lo - off:]), packet)
                return True
        if whole:
            self._finding(Severity.NOTE, "tcp-retransmission",
                          f"retransmission of {plural(len(payload), 'byte')} at offset {off}",
                          packet, off)
        return False

    def _recent_slice(self, lo: int, hi: int) -> bytes:
        """Bytes [lo, hi) of the kept window (offsets relative to its start), walked from
        its end, where retransmitted bytes usually are."""
        parts: list[bytes] = []
        end = self.recent_bytes
        for chunk in reversed(self.recent):
            pos = end - len(chunk)
            if pos < hi and end > lo:
                parts.append(chunk[max(lo - pos, 0):min(hi, end) - pos])
            if pos <= lo:
                break
            end = pos
        parts.reverse()
        return b"".join(parts)

    def _deliver(self, off: int, payload: bytes, packet: int) -> None:
        self.next = off + len(payload)
        # Keep whole delivered chunks (no copying) until they fall out of the window.
        recent = self.recent
        if recent is _NO_RECENT:
            recent = self.recent = deque()
        recent.append(payload)  # type: ignore[union-attr]
        self.recent_bytes += len(payload)
        while self.recent_bytes - len(recent[0]) >= RECENT_WINDOW:
            self.recent_bytes -= len(recent.popleft())  # type: ignore[union-attr]
        if self.consumer is not None:
            self.consumer.data(off, payload, packet)

    def _drain(self, *, filled: bool) -> None:
        """Deliver buffered intervals that now start at ``next``."""
        pending = self.pending
        while pending:
            first, (payload, packet, ooo) = pending.peekitem(0)
            if first > self.next:
                return
            self.ops += 1
            del pending[first]
            self.pending_bytes -= len(payload)
            if filled and ooo:
                self._finding(Severity.NOTE, "tcp-out-of-order",
                              f"segment at offset {first} arrived before the bytes ahead of it",
                              packet, first)
            self._deliver(first, payload, packet)
        self.pending = _NO_PENDING

    def _declare_gap(self, upto: int, packet: int | None) -> None:
        size = upto - self.next
        if size <= 0:
            self._drain(filled=False)
            return
        cause = " (snaplen truncation)" if self.next in self.truncated_holes else ""
        self._finding(Severity.WARNING, "tcp-gap",
                      f"{plural(size, 'byte')} at offset {self.next} "
                      f"{'is' if size == 1 else 'are'} not in the capture{cause}",
                      packet, self.next, size)
        if self.consumer is not None:
            self.consumer.gap(self.next, size, packet)
        self.lost += size
        self.next = upto
        self.recent = _NO_RECENT
        self.recent_bytes = 0
        # Bytes after a gap are not "out of order": they simply follow missing ones.
        self._drain(filled=False)
