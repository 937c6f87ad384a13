"""One direction's TCP byte stream: 64-bit offsets, retransmissions, overlaps, reordering
and gaps, delivered in order to a consumer.

Bytes are passed on as soon as they are contiguous and only a bounded window is kept,
so memory depends on reordering depth, never on stream length. Like Linux, the first
copy of a byte that arrives wins; a later copy that differs is reported as a possible
injection. Scapy fills holes with zeros; we report them instead.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from ..findings import Finding, Severity
from ..words import plural

SEQ_MOD = 1 << 32
HALF = 1 << 31
RECENT_WINDOW = 1 << 16
"""Delivered bytes kept to compare retransmissions against."""
DIRECTION_TEXT = {"ab": "A->B", "ba": "B->A"}
PENDING_LIMIT = 4 << 20
"""Out-of-order bytes buffered before the oldest hole is declared a gap."""


class StreamConsumer(Protocol):
    """What receives a direction's bytes in stream order."""

    def data(self, offset: int, chunk: bytes, packet: int) -> None:
        """Contiguous bytes starting at stream ``offset``."""

    def gap(self, offset: int, size: int, packet: int | None) -> None:
        """``size`` bytes at ``offset`` are not in the capture."""


class DirectionStream:
    """Reassembles one direction; findings go to the shared ``findings`` list."""

    __slots__ = ("base", "next", "pending", "pending_bytes", "recent", "recent_bytes",
                 "consumer", "findings",
                 "lost", "label", "ooo", "last_packet",
                 "truncated_holes", "rfc")

    def __init__(self, consumer: StreamConsumer | None, findings: list[Finding],
                 label: str) -> None:
        self.base: int | None = None
        self.next = 0
        self.pending: dict[int, tuple[bytes, int]] = {}
        self.pending_bytes = 0
        self.recent: deque[bytes] = deque()
        self.recent_bytes = 0
        self.consumer = consumer
        self.findings = findings
        self.lost = 0
        self.label = label
        self.ooo: dict[int, int] = {}
        self.last_packet = 0
        self.truncated_holes: set[int] = set()
        self.rfc: str | None = None
        """Set while tcpcrypt runs: a conflicting retransmission then breaks RFC 8548
        §3.6 ("the same payload bytes for the same TCP sequence numbers")."""

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

    def segment(self, seq: int, payload: bytes, packet: int, missing: int = 0) -> None:
        """Take one segment's payload (``missing`` bytes of it were not captured)."""
        self.last_packet = packet
        if not payload and not missing:
            return
        off = self.offset_of(seq)
        end = off + len(payload)
        if missing:
            self.truncated_holes.add(end)
        if end <= self.next:
            if payload:
                self._compare(off, payload, packet, whole=True)
            return
        if off < self.next:
            self._compare(off, payload[:self.next - off], packet, whole=False)
            payload = payload[self.next - off:]
            off = self.next
        if off == self.next:
            self._deliver(off, payload, packet)
            self._drain(filled=True)
            return
        existing = self.pending.get(off)
        if existing is not None and len(existing[0]) >= len(payload):
            if existing[0][:len(payload)] != payload:
                self._finding(Severity.WARNING, "retransmission-conflict",
                              f"retransmitted bytes at offset {off} differ from the first copy "
                              "(possible injection; the first copy is used)", packet, off)
            else:
                self._finding(Severity.NOTE, "tcp-retransmission",
                              f"retransmission of {plural(len(payload), 'byte')} at offset {off}",
                              packet, off)
            return
        if existing is not None:
            self.pending_bytes -= len(existing[0])
        self.pending[off] = (payload, packet)
        self.pending_bytes += len(payload)
        self.ooo[off] = packet
        if self.pending_bytes > PENDING_LIMIT:
            self._declare_gap(min(self.pending), None)

    def ack(self, ack: int) -> None:
        """The peer acknowledged up to ``ack``: a hole below it was missed by the capture."""
        if not self.pending or self.base is None:
            return  # the common case: nothing is waiting behind a hole
        off = self.offset_of(ack)
        if off > self.next:
            first = min(self.pending)
            self._declare_gap(min(first, off), None)

    def finish(self) -> None:
        """End of capture or connection: every remaining hole becomes a gap."""
        while self.pending:
            self._declare_gap(min(self.pending), None)

    # ------------------------------------------------------------------ internals
    def _compare(self, off: int, payload: bytes, packet: int, *, whole: bool) -> None:
        start = self.next - self.recent_bytes
        lo = max(off, start)
        hi = off + len(payload)
        if lo < hi and self._recent_slice(lo - start, hi - start) != payload[lo - off:]:
            self._finding(Severity.WARNING, "retransmission-conflict",
                          f"retransmitted bytes at offset {lo} differ from the first copy "
                          "(possible injection; the first copy is used)", packet, lo)
            return
        if whole and not (len(payload) <= 1 and off == self.next - 1):  # not a keep-alive
            self._finding(Severity.NOTE, "tcp-retransmission",
                          f"retransmission of {plural(len(payload), 'byte')} at offset {off}",
                          packet, off)

    def _recent_slice(self, lo: int, hi: int) -> bytes:
        """Bytes [lo, hi) of the kept window (offsets relative to its start)."""
        out = bytearray()
        pos = 0
        for chunk in self.recent:
            end = pos + len(chunk)
            if end > lo and pos < hi:
                out += chunk[max(lo - pos, 0):min(hi, end) - pos]
            if end >= hi:
                break
            pos = end
        return bytes(out)

    def _deliver(self, off: int, payload: bytes, packet: int) -> None:
        self.next = off + len(payload)
        # Keep whole delivered chunks (no copying) until they fall out of the window.
        recent = self.recent
        recent.append(payload)
        self.recent_bytes += len(payload)
        while self.recent_bytes - len(recent[0]) >= RECENT_WINDOW:
            self.recent_bytes -= len(recent.popleft())
        if self.consumer is not None:
            self.consumer.data(off, payload, packet)

    def _drain(self, *, filled: bool) -> None:
        while self.pending:
            first = min(self.pending)
            if first > self.next:
                return
            payload, packet = self.pending.pop(first)
            self.pending_bytes -= len(payload)
            ooo_packet = self.ooo.pop(first, None)
            if filled and ooo_packet is not None:
                self._finding(Severity.NOTE, "tcp-out-of-order",
                              f"segment at offset {first} arrived before the bytes ahead of it",
                              ooo_packet, first)
            end = first + len(payload)
            if end <= self.next:
                self._compare(first, payload, packet, whole=False)
                continue
            if first < self.next:
                self._compare(first, payload[:self.next - first], packet, whole=False)
                payload = payload[self.next - first:]
            self._deliver(self.next, payload, packet)

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
        self.recent.clear()
        self.recent_bytes = 0
        # Bytes after a gap are not "out of order": they simply follow missing ones.
        for off in [o for o in self.ooo if o <= upto]:
            del self.ooo[off]
        self._drain(filled=False)
