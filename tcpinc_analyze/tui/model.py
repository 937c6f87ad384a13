"""What the UI shows, computed off the UI thread: the capture-wide analysis (connections
table, packet-to-connection map) and per-connection deep runs (frames, plaintext, ladder).
"""

from __future__ import annotations

import bisect
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from ..analysis.connection import Connection
from ..analysis.engine import Analyzer, CaptureSummary
from ..analysis.handlers import Handlers
from ..analysis.report import ConnectionReport
from ..analysis.run import secrets_into
from ..capture.decode import Segment
from ..capture.reader import Record, open_input, read_capture
from ..decryption import DecryptionContext, DirectionDecryptor, KeyResolver, finalize
from ..keylog import KeyLog
from ..tcpcrypt.messages import Init1, Init2
from ..tcpcrypt.stream import FrameInfo
from ..wire import (
    AEAD_TAG_LEN,
    AEADS,
    FRAME_CONTROL_REKEY,
    frame_id_offset,
    frame_nonce,
    split_traffic_key,
)
from .index import CaptureIndex

PLAINTEXT_KEEP = 16 << 20
"""Plaintext bytes a follow-stream view keeps per connection (the rest is counted)."""
DEEP_CACHE = 8


class _TrackingAnalyzer(Analyzer):
    """The library's analyzer, also noting which connection each packet went to."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.conn_packets: dict[int, array] = {}
        self.on_track: Callable[[Connection, Segment, Record], None] | None = None

    def _track(self, conn: Connection, seg: Segment, rec: Record) -> None:
        packets = self.conn_packets.get(conn.id)
        if packets is None:
            packets = self.conn_packets[conn.id] = array("I")
        packets.append(rec.number)
        super()._track(conn, seg, rec)
        if self.on_track is not None:
            self.on_track(conn, seg, rec)


def _decryption_setup(ctx: DecryptionContext | None, extra: list | None
                      ) -> tuple[Handlers | None, Callable | None, Callable | None]:
    factories = ([ctx.factory] if ctx else []) + (extra or [])
    handlers = Handlers(factories) if factories else None
    before = (lambda conn: finalize(conn, ctx)) if ctx else None
    secrets = secrets_into(ctx, None) if ctx else None
    return handlers, before, secrets


class CaptureAnalysis:
    """One full pass of the analyzer over the capture, meant for a worker thread."""

    def __init__(self, path: str, keylog: KeyLog | None) -> None:
        self.path = path
        self.keylog = keylog
        self.ctx = DecryptionContext(keylog if keylog is not None else KeyLog())
        self.reports: list[ConnectionReport] = []
        self.by_id: dict[int, ConnectionReport] = {}
        """The report objects (the conformance checklist needs their ``observed``)."""
        self.summary: CaptureSummary | None = None
        self.conn_packets: dict[int, array] = {}
        self.cancelled = threading.Event()
        self.done = False
        self.bytes_read = 0
        self.yield_until = 0.0
        """Until this time (monotonic) the worker pauses briefly every few hundred packets:
        the user is pressing keys, and the UI thread needs the GIL more than the
        analysis does."""
        self.per_second: dict[int, int] = {}
        """Captured bytes per second of capture time (the statistics' I/O graph)."""
        self.analyzer: Analyzer | None = None
        self.opener: Callable[[str], BinaryIO] = open_input
        """How the capture is opened (``tui --follow`` reads a growing file)."""

    def run(self, on_report: Callable[[ConnectionReport], None] | None = None,
            on_progress: Callable[[int], None] | None = None) -> None:
        """Analyze until the end of the capture or a cancel."""
        handlers, before, secrets = _decryption_setup(self.ctx, None)

        def take(report: ConnectionReport) -> None:
            self.by_id[report.id] = report
            self.reports.append(report)
            if on_report is not None:
                on_report(report)

        analyzer = _TrackingAnalyzer(self.path, take, handler_factory=handlers,
                                     on_secrets=secrets, before_report=before)
        self.summary = analyzer.summary
        self.conn_packets = analyzer.conn_packets
        self.analyzer = analyzer  # a growing capture's reader sweeps it while waiting
        stream = self.opener(self.path)
        try:
            per_second = self.per_second
            for n, item in enumerate(read_capture(stream, self.path)):
                analyzer.feed(item)
                if type(item) is Record:
                    sec = item.ts_ns // 1_000_000_000
                    per_second[sec] = per_second.get(sec, 0) + item.orig_len
                if n & 0xFF == 0:
                    # let the UI thread have the GIL (all of it while keys are pressed)
                    time.sleep(0.002 if time.monotonic() < self.yield_until else 0)
                if n & 0x3FF == 0:
                    self.bytes_read = getattr(item, "offset", self.bytes_read)
                    if on_progress is not None:
                        on_progress(self.bytes_read)
                    if self.cancelled.is_set():
                        break
            analyzer.finish()
        finally:
            stream.close()
        self.reports.sort(key=lambda r: r.id)
        self.done = not self.cancelled.is_set()


@dataclass(slots=True)
class FrameRecord:
    """One tcpcrypt frame of a connection, with the decryptor's verdict (spec-named
    values: RFC 8548 §3.6, §4.2)."""

    direction: str
    number: int
    """1-based index of the frame in its direction (``tcpcrypt.frame.number``)."""
    stream_offset: int
    """Where the control byte sits in the direction's TCP stream."""
    init_len: int
    """Bytes of the direction's Init message before the frames (0 when resumed)."""
    control: int
    length: int
    """clen: ciphertext bytes including the tag."""
    packet: int
    first_packet: int
    generation: int
    """Key generation j: the decryptor's when it opened the frame, else the parser's
    count of rekey bits."""
    tag: bytes
    verdict: str = "unknown"
    """``ok``, ``failed``, ``undecryptable`` (keys lack this generation or AEAD) or
    ``unknown`` (no keys)."""
    base: str | None = None
    """The frame-ID offset reading that authenticated (``tcp-stream``/``after-init``)."""
    nonce: bytes | None = None
    """N = frame_ID XOR NR, when the traffic key is known."""
    flags: int | None = None
    urgent: int | None = None
    data_len: int | None = None
    plaintext: bytes | None = None
    """The decrypted application data, when kept (see PLAINTEXT_KEEP)."""

    @property
    def end(self) -> int:
        """Stream offset after the frame."""
        return self.stream_offset + 3 + self.length

    @property
    def rekey(self) -> bool:
        """The control byte's rekey bit."""
        return bool(self.control & FRAME_CONTROL_REKEY)

    @property
    def frame_offset(self) -> int | None:
        """The offset in the frame ID under the reading that authenticated (None while
        unknown; both readings coincide without an Init message)."""
        if self.base is None:
            return self.stream_offset if not self.init_len else None
        return frame_id_offset(self.stream_offset, self.init_len, self.base)


@dataclass
class InitRecord:
    """A direction's Init message as the framing parser saw it."""

    packet: int
    """Packet completing the message."""
    raw: bytes
    parsed: Init1 | Init2 | None
    tep: int | None


@dataclass
class Chunk:
    """A piece of the follow-stream view."""

    packet: int
    direction: str
    data: bytes
    failed: bool = False
    elided: dict[str, int] | None = None
    """A marker for data the view does not keep (bytes per direction), where it starts."""
    gap: int = 0
    """A marker for bytes missing from the capture (plain TCP follow)."""


@dataclass
class ConnDetail:
    """A connection re-analysed alone: everything the per-connection panes need."""

    conn_id: int
    report: dict
    packets: list[int]
    isn: dict[str, int] = field(default_factory=dict)
    """Per direction, the ISN (stream offset 0 is ISN + 1)."""
    pkt_dir: dict[int, str] = field(default_factory=dict)
    frames: list[FrameRecord] = field(default_factory=list)
    init: dict[str, InitRecord] = field(default_factory=dict)
    """Per direction: the Init message (packet completing it, raw bytes, parsed)."""
    chunks: list[Chunk] = field(default_factory=list)
    plaintext_bytes: dict[str, int] = field(default_factory=lambda: {"ab": 0, "ba": 0})
    dropped: int = 0
    plain_tcp: bool = False
    """The chunks are a plain TCP connection's payload (no tcpcrypt to decrypt)."""
    flags: dict[int, int] = field(default_factory=dict)
    ts: dict[int, int] = field(default_factory=dict)
    aead: int | None = None
    """The AEAD the keys were used with (None without keys)."""

    _by_dir: dict = field(default_factory=dict, repr=False, compare=False)
    _by_packet: dict | None = field(default=None, repr=False, compare=False)

    def _direction(self, direction: str) -> tuple[list[int], list[FrameRecord]]:
        cached = self._by_dir.get(direction)
        if cached is None or len(cached[1]) + cached[2] != len(self.frames):
            frames = sorted((f for f in self.frames if f.direction == direction),
                            key=lambda f: f.stream_offset)
            cached = ([f.stream_offset for f in frames], frames, len(self.frames) - len(frames))
            self._by_dir[direction] = cached
        return cached[0], cached[1]

    def frames_in(self, direction: str, start: int, end: int) -> list[FrameRecord]:
        """Frames of a direction overlapping stream bytes [start, end) (bisected: big
        connections have many frames)."""
        offsets, frames = self._direction(direction)
        i = bisect.bisect_right(offsets, start) - 1
        i = max(i, 0)
        out = []
        while i < len(frames) and frames[i].stream_offset < end:
            if frames[i].end > start:
                out.append(frames[i])
            i += 1
        return out

    def frames_ending_in(self, packet: int) -> list[FrameRecord]:
        """Frames completed by a packet (the packet list's Info column)."""
        if self._by_packet is None or self._by_packet.get(None) != len(self.frames):
            by: dict = {None: len(self.frames)}
            for f in self.frames:
                by.setdefault(f.packet, []).append(f)
            self._by_packet = by
        return self._by_packet.get(packet, [])

    def follow(self) -> list[Chunk]:
        """Both directions interleaved in stream (packet) order."""
        return sorted(self.chunks, key=lambda c: c.packet)

    def plaintext(self, direction: str | None = None) -> bytes:
        """Decrypted application data the view kept, of one direction (or both,
        interleaved); an export streams the whole stream instead (``deep_analyze`` with
        ``out``)."""
        return b"".join(c.data for c in self.follow()
                        if not c.failed and c.elided is None and not c.gap
                        and (direction is None or c.direction == direction))


class _RecordingDecryptor(DirectionDecryptor):
    """The library's decryptor, also recording each frame and what became of it.

    A frame is recorded when the framing parser hands it over; the verdict, generation,
    nonce and plaintext fields are filled when the decryptor opens it (at once, or when
    the keys become known and its queue drains)."""

    def __init__(self, resolver: KeyResolver, direction: str, run: _DeepRun) -> None:
        super().__init__(resolver, direction)
        self.run = run
        self.pending: dict[int, FrameRecord] = {}
        self.count = 0
        self.marked_undecryptable = False

    def frame(self, info: FrameInfo) -> None:
        self.count += 1
        rec = FrameRecord(self.direction, self.count, info.stream_offset, info.init_len,
                          info.control, info.length, info.packet, info.first_packet,
                          info.generation, bytes(info.body[-AEAD_TAG_LEN:]))
        self.run.detail.frames.append(rec)
        self.pending[info.stream_offset] = rec
        super().frame(info)
        if info.stream_offset in self.pending and not (self.queue and self.queue[-1] is info):
            del self.pending[info.stream_offset]  # neither opened nor queued: no keys

    def _open_frame(self, info: FrameInfo) -> None:
        rec = self.pending.pop(info.stream_offset, None)
        undecryptable = self.undecryptable
        self.run.last_plain = None
        super()._open_frame(info)
        if rec is None:
            return
        rec.generation = self.generation
        if self.undecryptable > undecryptable:
            rec.verdict = "undecryptable"
            if not self.marked_undecryptable:
                self.marked_undecryptable = True
                self.run.add(Chunk(info.packet, self.direction,
                                   f"[frames from stream offset {info.stream_offset} on cannot "
                                   "be decrypted: the key log has no key for their "
                                   "generation]".encode(), failed=True))
            return
        last = self.last or {}
        verified = last.get("tcpcrypt.frame.verified")
        rec.base = self.base
        source = self.resolver.source
        if source is not None and source.aead in AEADS and rec.frame_offset is not None:
            key = source.key(self.generation, self.direction)
            if key is not None:
                _k, nr = split_traffic_key(key, source.aead)
                rec.nonce = frame_nonce(nr, rec.frame_offset)
        if not verified:
            rec.verdict = "failed"
            self.run.add(Chunk(info.packet, self.direction,
                               f"[frame at stream offset {info.stream_offset} failed "
                               "authentication]".encode(), failed=True))
            return
        rec.verdict = "ok"
        rec.flags = last.get("tcpcrypt.plaintext.flags")
        rec.urgent = last.get("tcpcrypt.plaintext.urgent")
        rec.data_len = last.get("tcpcrypt.plaintext.data_len")
        plain = self.run.last_plain
        if plain is not None and plain[0] == self.direction:
            rec.plaintext = plain[1]
        elif rec.data_len == 0:
            rec.plaintext = b""


class _RecordingContext(DecryptionContext):
    """A decryption context whose per-direction decryptors record frames."""

    run: _DeepRun | None = None

    def factory(self, conn: Connection, direction: str) -> DirectionDecryptor:
        resolver = conn.data.get("resolver")
        if resolver is None:
            resolver = conn.data["resolver"] = KeyResolver(self, conn)
        assert self.run is not None
        return _RecordingDecryptor(resolver, direction, self.run)


class _DeepRun:
    def __init__(self, detail: ConnDetail, out: BinaryIO | None = None,
                 keep: int | None = None) -> None:
        self.detail = detail
        self.last_plain: tuple[str, bytes] | None = None
        self.kept = 0
        self.keep = PLAINTEXT_KEEP if keep is None else keep
        self.out = out
        self.elided: Chunk | None = None

    def add(self, chunk: Chunk) -> bool:
        """Keep a chunk for the follow view unless the budget is spent; past it, one
        marker where the elided data starts counts what is not shown."""
        if self.elided is not None or self.kept + len(chunk.data) > self.keep:
            self.detail.dropped += len(chunk.data)
            if self.elided is None:
                self.elided = Chunk(chunk.packet, chunk.direction, b"",
                                    elided={"ab": 0, "ba": 0})
                self.detail.chunks.append(self.elided)
            assert self.elided.elided is not None
            self.elided.elided[chunk.direction] += len(chunk.data)
            return False
        self.kept += len(chunk.data)
        self.detail.chunks.append(chunk)
        return True

    def sink(self, conn: Connection, direction: str, offset: int, data: bytes,
             packet: int) -> None:
        self.detail.plaintext_bytes[direction] += len(data)
        if self.out is not None:
            self.out.write(data)
        kept = self.add(Chunk(packet, direction, data))
        self.last_plain = (direction, data) if kept else None


class _PlainStreams:
    """A plain TCP connection's payload per direction, in stream order (retransmitted
    bytes once, reordered segments put in place, bytes missing from the capture marked),
    for follow and export; out-of-order segments wait in a bounded buffer."""

    HOLD = 4 << 20

    def __init__(self, run: _DeepRun) -> None:
        self.run = run
        self.next: dict[str, int] = {}
        self.waiting: dict[str, dict[int, tuple[bytes, int]]] = {"ab": {}, "ba": {}}
        self.held = 0

    def segment(self, direction: str, offset: int, data: bytes, packet: int) -> None:
        if not data:
            return
        nxt = self.next.setdefault(direction, offset)
        if offset + len(data) <= nxt:
            return  # a retransmission of bytes already delivered
        if offset > nxt:
            waiting = self.waiting[direction]
            if offset not in waiting or len(waiting[offset][0]) < len(data):
                waiting[offset] = (data, packet)
                self.held += len(data)
            if self.held > self.HOLD:
                self._skip(direction)
            return
        self._deliver(direction, data[nxt - offset:], packet)
        self._drain(direction)

    def _deliver(self, direction: str, data: bytes, packet: int) -> None:
        self.next[direction] += len(data)
        self.run.sink(None, direction, self.next[direction] - len(data), data,  # type: ignore[arg-type]
                      packet)

    def _drain(self, direction: str) -> None:
        waiting = self.waiting[direction]
        while waiting:
            nxt = self.next[direction]
            ready = [o for o in waiting if o <= nxt]
            if not ready:
                return
            for o in sorted(ready):
                data, packet = waiting.pop(o)
                self.held -= len(data)
                if o + len(data) > self.next[direction]:
                    self._deliver(direction, data[self.next[direction] - o:], packet)

    def _skip(self, direction: str) -> None:
        """Give up on the oldest hole: mark it and go on after it."""
        waiting = self.waiting[direction]
        if not waiting:
            return
        first = min(waiting)
        size = first - self.next[direction]
        self.run.add(Chunk(waiting[first][1], direction, b"", gap=size))
        self.next[direction] = first
        self._drain(direction)

    def finish(self) -> None:
        for direction in ("ab", "ba"):
            while self.waiting[direction]:
                self._skip(direction)


def deep_analyze(index: CaptureIndex, conn_id: int, packets: list[int],
                 keylog: KeyLog | None, chain: dict | None = None,
                 fallback_report: dict | None = None, *, out: BinaryIO | None = None,
                 keep: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> ConnDetail:
    """Re-run the analyzer over one connection's packets (read through the index).

    ``chain`` is the full analysis's resumption chain (resume[i] -> ss[i]), so a resumed
    connection finds the keys its original session left behind. ``out`` receives every
    byte of the decrypted stream (or a plain connection's payload) in stream order, not
    only what the view keeps (``keep`` bytes, PLAINTEXT_KEEP by default); ``progress``
    gets (packets done, packets)."""
    detail = ConnDetail(conn_id, fallback_report or {}, list(packets))
    run = _DeepRun(detail, out, keep)
    plain = None
    if fallback_report is not None and not fallback_report.get("tcpcrypt"):
        plain = _PlainStreams(run)
        detail.plain_tcp = True
    ctx = _RecordingContext(keylog if keylog is not None else KeyLog(), sink=run.sink)
    ctx.run = run
    if chain:
        ctx.chain = dict(chain)
    handlers, before, _secrets = _decryption_setup(ctx, None)
    reports: list[ConnectionReport] = []
    analyzer = _TrackingAnalyzer(index.path, reports.append, handler_factory=handlers,
                                 before_report=before)
    analyzer.release_connections = False  # the connection is inspected after finish()
    conns: list[Connection] = []

    isn: dict[bool, int] = {}

    def track(conn: Connection, seg: Segment, rec: Record) -> None:
        if not conns or conns[-1] is not conn:
            conns.append(conn)
        from_x = conn.from_x(seg)
        detail.flags[rec.number] = seg.flags
        detail.ts[rec.number] = rec.ts_ns
        detail.pkt_dir[rec.number] = "x" if from_x else "y"
        if plain is None:
            return
        if seg.flags & 0x02:
            isn[from_x] = seg.seq + 1
            return
        if seg.payload:
            base = isn.setdefault(from_x, seg.seq)
            label = conn.label(from_x) if conn.negotiation is not None else (
                "ab" if from_x else "ba")
            plain.segment(label, (seg.seq - base) & 0xFFFFFFFF, bytes(seg.payload), rec.number)

    analyzer.on_track = track
    total = len(packets)
    for n, number in enumerate(packets):
        rec = index.record(number)
        if rec is not None:
            analyzer.packet(rec)
        if progress is not None and n & 0x3FF == 0:
            progress(n, total)
    analyzer.finish()
    if plain is not None:
        plain.finish()
    if conns:
        conn = conns[0]
        for number, side in detail.pkt_dir.items():
            detail.pkt_dir[number] = conn.label(side == "x")
        for infos in (conn.syn, conn.synack):
            for from_x, info in infos.items():
                detail.isn.setdefault(conn.label(from_x), info.isn)
        for parser in conn.tcpcrypt.values():
            if parser is not None and parser.init_raw is not None:
                detail.init[parser.label] = InitRecord(
                    parser.init_packet or 0, bytes(parser.init_raw), parser.init, parser.tep)
        resolver = conn.data.get("resolver")
        source = resolver.source if resolver is not None else None
        detail.aead = source.aead if source is not None else None
    if reports:
        rep = reports[0].to_json()
        rep["id"] = conn_id
        full_tc = (fallback_report or {}).get("tcpcrypt")
        if full_tc and rep.get("tcpcrypt"):
            # Ids of other connections and capture-wide context come from the full run.
            for key in ("resumes", "resume_index"):
                if rep["tcpcrypt"].get(key) is None:
                    rep["tcpcrypt"][key] = full_tc.get(key)
        detail.report = rep
    return detail


class DeepCache:
    """LRU of per-connection deep runs."""

    def __init__(self, size: int = DEEP_CACHE) -> None:
        self.size = size
        self.items: OrderedDict[int, ConnDetail] = OrderedDict()

    def get(self, conn_id: int) -> ConnDetail | None:
        detail = self.items.get(conn_id)
        if detail is not None:
            self.items.move_to_end(conn_id)
        return detail

    def put(self, detail: ConnDetail) -> None:
        self.items[detail.conn_id] = detail
        self.items.move_to_end(detail.conn_id)
        while len(self.items) > self.size:
            self.items.popitem(last=False)

    def clear(self) -> None:
        self.items.clear()
