"""What the UI shows, computed off the UI thread: the capture-wide analysis (connections
table, packet-to-connection map) and per-connection deep runs (frames, plaintext, ladder).
"""

from __future__ import annotations

import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ..analysis.connection import Connection
from ..analysis.engine import Analyzer, CaptureSummary
from ..analysis.handlers import Handlers
from ..analysis.report import ConnectionReport
from ..analysis.run import secrets_into
from ..capture.decode import Segment
from ..capture.reader import Record, open_input, read_capture
from ..decryption import DecryptionContext, finalize
from ..keylog import KeyLog
from ..tcpcrypt.stream import FrameInfo
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
        self.summary: CaptureSummary | None = None
        self.conn_packets: dict[int, array] = {}
        self.cancelled = threading.Event()
        self.done = False
        self.bytes_read = 0

    def run(self, on_report: Callable[[ConnectionReport], None] | None = None,
            on_progress: Callable[[int], None] | None = None) -> None:
        """Analyze until the end of the capture or a cancel."""
        handlers, before, secrets = _decryption_setup(self.ctx, None)

        def take(report: ConnectionReport) -> None:
            self.reports.append(report)
            if on_report is not None:
                on_report(report)

        analyzer = _TrackingAnalyzer(self.path, take, handler_factory=handlers,
                                     on_secrets=secrets, before_report=before)
        self.summary = analyzer.summary
        self.conn_packets = analyzer.conn_packets
        stream = open_input(self.path)
        try:
            for n, item in enumerate(read_capture(stream, self.path)):
                analyzer.feed(item)
                if n & 0xFF == 0:
                    time.sleep(0)  # let the UI thread have the GIL
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


@dataclass
class FrameRecord:
    """One tcpcrypt frame of a connection, with the decryptor's verdict."""

    direction: str
    stream_offset: int
    offset: int
    control: int
    length: int
    packet: int
    first_packet: int
    verdict: str = "unknown"
    """``ok``, ``failed`` or ``unknown`` (no keys)."""
    plaintext: bytes | None = None
    flags: int | None = None

    @property
    def end(self) -> int:
        """Stream offset after the frame."""
        return self.stream_offset + 3 + self.length


@dataclass
class Chunk:
    """A piece of the follow-stream view."""

    packet: int
    direction: str
    data: bytes
    failed: bool = False


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
    init: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    """Per direction: (packet completing the Init message, raw message)."""
    chunks: list[Chunk] = field(default_factory=list)
    plaintext_bytes: dict[str, int] = field(default_factory=lambda: {"ab": 0, "ba": 0})
    dropped: int = 0
    flags: dict[int, int] = field(default_factory=dict)
    ts: dict[int, int] = field(default_factory=dict)

    def frames_in(self, direction: str, start: int, end: int) -> list[FrameRecord]:
        """Frames of a direction overlapping stream bytes [start, end)."""
        return [f for f in self.frames if f.direction == direction
                and f.stream_offset < end and f.end > start]

    def follow(self) -> list[Chunk]:
        """Both directions interleaved in stream (packet) order."""
        return sorted(self.chunks, key=lambda c: c.packet)

    def plaintext(self, direction: str | None = None) -> bytes:
        """Decrypted application data of one direction (or both, interleaved)."""
        return b"".join(c.data for c in self.follow()
                        if not c.failed and (direction is None or c.direction == direction))


class _Recorder:
    """Rides behind the decryptor: records each frame and whether it opened."""

    def __init__(self, run: _DeepRun, conn: Connection, direction: str) -> None:
        self.run = run
        self.conn = conn
        self.direction = direction
        self.seen_ok = 0
        self.seen_failed = 0

    def frame(self, info: FrameInfo) -> None:
        rec = FrameRecord(self.direction, info.stream_offset, info.offset, info.control,
                          info.length, info.packet, info.first_packet)
        resolver = self.conn.data.get("resolver")
        dec = resolver.directions.get(self.direction) if resolver is not None else None
        if dec is not None:
            ok, failed = dec.ok - self.seen_ok, dec.failed - self.seen_failed
            self.seen_ok, self.seen_failed = dec.ok, dec.failed
            if failed:
                rec.verdict = "failed"
                self.run.add(Chunk(info.packet, self.direction,
                                   f"[{failed} frame(s) failed authentication]".encode(),
                                   failed=True))
            elif ok:
                rec.verdict = "ok"
                last = self.run.last_plain
                if last is not None and last[0] == self.direction:
                    rec.plaintext = last[1]
        self.run.last_plain = None
        self.run.detail.frames.append(rec)

    def relabel(self, direction: str) -> None:
        self.direction = direction

    def authenticates(self, info: FrameInfo) -> bool | None:
        return None


class _DeepRun:
    def __init__(self, detail: ConnDetail) -> None:
        self.detail = detail
        self.last_plain: tuple[str, bytes] | None = None
        self.kept = 0

    def add(self, chunk: Chunk) -> None:
        if self.kept + len(chunk.data) > PLAINTEXT_KEEP:
            self.detail.dropped += len(chunk.data)
            return
        self.kept += len(chunk.data)
        self.detail.chunks.append(chunk)

    def sink(self, conn: Connection, direction: str, offset: int, data: bytes,
             packet: int) -> None:
        self.last_plain = (direction, data)
        self.detail.plaintext_bytes[direction] += len(data)
        self.add(Chunk(packet, direction, data))

    def recorder(self, conn: Connection, direction: str) -> _Recorder:
        return _Recorder(self, conn, direction)


def deep_analyze(index: CaptureIndex, conn_id: int, packets: list[int],
                 keylog: KeyLog | None, resume_index: dict | None,
                 fallback_report: dict | None = None) -> ConnDetail:
    """Re-run the analyzer over one connection's packets (read through the index)."""
    detail = ConnDetail(conn_id, fallback_report or {}, list(packets))
    run = _DeepRun(detail)
    ctx = None
    if keylog is not None:
        ctx = DecryptionContext(keylog, sink=run.sink)
        ctx.resume_index = dict(resume_index or {})
    handlers, before, _secrets = _decryption_setup(ctx, [run.recorder])
    reports: list[ConnectionReport] = []
    analyzer = _TrackingAnalyzer(index.path, reports.append, handler_factory=handlers,
                                 before_report=before)
    analyzer.release_connections = False  # the connection is inspected after finish()
    conns: list[Connection] = []

    def track(conn: Connection, seg: Segment, rec: Record) -> None:
        if not conns or conns[-1] is not conn:
            conns.append(conn)
        detail.flags[rec.number] = seg.flags
        detail.ts[rec.number] = rec.ts_ns
        detail.pkt_dir[rec.number] = "x" if conn.from_x(seg) else "y"

    analyzer.on_track = track
    for number in packets:
        rec = index.record(number)
        if rec is not None:
            analyzer.packet(rec)
    analyzer.finish()
    if conns:
        conn = conns[0]
        for number, side in detail.pkt_dir.items():
            detail.pkt_dir[number] = conn.label(side == "x")
        for infos in (conn.syn, conn.synack):
            for from_x, info in infos.items():
                detail.isn.setdefault(conn.label(from_x), info.isn)
        for parser in conn.tcpcrypt.values():
            if parser is not None and getattr(parser, "init_raw", None):
                detail.init[parser.label] = (parser.init_packet, bytes(parser.init_raw))
    if reports:
        rep = reports[0].to_json()
        rep["id"] = conn_id
        if fallback_report:
            # Ids of other connections and capture-wide context come from the full run.
            rep["resumes"] = fallback_report.get("resumes")
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
