"""Two vantage points: pair the connections two captures share and say what the path did.

Whether TCP-ENO can deploy depends on middleboxes; one capture cannot tell a peer
without ENO from a path that removed it, two captures (one near each end) can. Each
capture is run through the real analyzer (so ``first.id``/``second.id`` are the ids
``analyze`` prints) while a light trace of every segment is kept per connection: the
handshake segments and their options, every segment's sequence numbers, flags and
options, and each direction's stream bytes (up to ``keep_bytes``).

Matching uses the evidence a person would, each named in ``matched_by``: the TCP
timestamps values (``tcp-timestamps``), the ISNs, equal or shifted by a constant common
to many connections (``isn``), the payload (stream prefixes, or data segments whose
bytes agree: survives NAT, sequence rewriting and partial captures), the SYN option set
apart from timestamps and ENO (``syn-options``) and the start time and duration after
removing the clock offset between the capture hosts (``timing``). Pairs are taken
greedily by the strength of their evidence, one to one, so many connections through one
NAT with reused ports pair up by what they carried, not by their 4-tuples.
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

from ..capture.decode import Segment
from ..capture.reader import Record, open_input, read_capture
from ..decryption import DecryptionContext, finalize
from ..tcp.options import walk_options
from ..wire import ENO_EXPERIMENTAL_KINDS, ENO_KIND
from .connection import ACK, FIN, RST, SYN, Connection
from .engine import Analyzer, CaptureSummary
from .handlers import Handlers
from .report import ConnectionReport, endpoint_text
from .run import secrets_into

SEQ_MOD = 1 << 32
KEEP_BYTES = 1 << 20
"""Stream bytes kept per connection and direction for the payload comparison."""
MAX_SEGMENTS = 5_000
"""Segments kept per connection and direction (the rest are counted)."""
PREFIX_LEN = 256
FINGERPRINT_SEGMENTS = 48
"""Data segments per direction whose payload hashes index a connection for matching."""
FINGERPRINT_MIN_LEN = 16
TIMING_TOLERANCE_NS = 250_000_000
OPTION_CHANGES_LISTED = 64
"""Option changes listed per pair (the rest are counted in option_changes_omitted)."""
SEGMENT_KINDS = ("syn", "syn-ack", "ack", "data")
EVIDENCE = ("tcp-timestamps", "isn", "payload", "syn-options", "timing")
CAUSES = ("path-stripped-eno", "path-modified-eno", "path-added-eno", "peer-without-eno",
          "not-negotiated", "negotiated")
_WEIGHT = {"tcp-timestamps": 8, "isn": 8, "payload": 6, "syn-options": 1, "timing": 2}
_STRONG = {"tcp-timestamps", "isn", "payload"}
_IGNORED_IN_SIGNATURE = {0, 1, 8, ENO_KIND, *ENO_EXPERIMENTAL_KINDS}
_TS_KIND = 8
_ENO_EXID = b"\x45\x4e"


def _signed(value: int) -> int:
    value %= SEQ_MOD
    return value - SEQ_MOD if value >= SEQ_MOD // 2 else value


def option_list(raw: bytes) -> list[tuple[int, bytes]]:
    """(kind, whole option bytes) of a TCP option block, NOP/EOL left out; a malformed
    tail is kept as one pseudo-option of its kind so a change to it still shows."""
    options, _problems, bad = walk_options(raw)
    out = [(kind, raw[pos:pos + 2 + len(data)]) for kind, pos, data in options]
    if bad is not None:
        end = sum(2 + len(d) for _k, _p, d in options)
        out.append((bad, raw[end:]))
    return out


def is_eno(kind: int, whole: bytes) -> bool:
    """Kind 69, or a kind 253/254 experimental option with ENO's ExID 0x454E."""
    if kind == ENO_KIND:
        return True
    return kind in ENO_EXPERIMENTAL_KINDS and whole[2:4] == _ENO_EXID


def _tsval(raw: bytes) -> int | None:
    for kind, whole in option_list(raw):
        if kind == _TS_KIND and len(whole) == 10:
            return int.from_bytes(whole[2:6], "big")
    return None


# ---------------------------------------------------------------------------- the trace


@dataclass(slots=True)
class SegRec:
    """One captured segment, as much as the comparison needs."""

    packet: int
    ts: int
    seq: int
    ack: int
    flags: int
    options: bytes
    length: int
    phash: int | None = None


@dataclass
class SideTrace:
    """What one endpoint sent, as seen at this capture point."""

    segs: list[SegRec] = field(default_factory=list)
    dropped: int = 0
    hs: SegRec | None = None
    """The SYN (or SYN-ACK) this side sent."""
    base: int | None = None
    """Sequence number of stream offset 0: ISN + 1, or the first data byte seen."""
    from_handshake: bool = False
    buf: bytearray = field(default_factory=bytearray)
    cov: list[list[int]] = field(default_factory=list)
    fingerprints: dict[int, int] = field(default_factory=dict)
    """payload hash -> seq of the data segment that carried it (first few segments)."""
    tsvals: set[int] = field(default_factory=set)

    def isn(self) -> int | None:
        """The ISN when the handshake was captured."""
        return (self.base - 1) % SEQ_MOD if self.from_handshake and self.base is not None \
            else None

    def add_bytes(self, offset: int, payload: bytes) -> None:
        """Keep stream bytes (first copy wins) up to KEEP_BYTES."""
        if offset < 0 or offset >= KEEP_BYTES or not payload:
            return
        end = min(offset + len(payload), KEEP_BYTES)
        payload = payload[:end - offset]
        if len(self.buf) < end:
            self.buf.extend(bytes(end - len(self.buf)))
        # write only the parts not covered yet
        pos = offset
        i = bisect.bisect_right(self.cov, [offset, 1 << 62]) - 1
        if i < 0:
            i = 0
        new: list[tuple[int, int]] = []
        for lo, hi in self.cov[i:]:
            if lo >= end:
                break
            if hi <= pos:
                continue
            if lo > pos:
                new.append((pos, lo))
            pos = max(pos, hi)
        if pos < end:
            new.append((pos, end))
        for lo, hi in new:
            self.buf[lo:hi] = payload[lo - offset:hi - offset]
        self.cov.append([offset, end])
        self.cov.sort()
        merged: list[list[int]] = []
        for lo, hi in self.cov:
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        self.cov = merged

    def prefix(self) -> bytes:
        """The first PREFIX_LEN stream bytes when the capture holds them from offset 0."""
        if not self.from_handshake or not self.cov or self.cov[0][0] != 0:
            return b""
        return bytes(self.buf[:min(self.cov[0][1], PREFIX_LEN)])

    def stream_len(self) -> int:
        """Highest stream offset seen (kept or not)."""
        return max((c[1] for c in self.cov), default=0)


@dataclass
class ConnTrace:
    """One connection of one capture: its report and both sides' traces."""

    x: tuple[bytes, int]
    y: tuple[bytes, int]
    sides: dict[bool, SideTrace] = field(default_factory=lambda: {True: SideTrace(),
                                                                   False: SideTrace()})
    ack_from: bool | None = None
    """Which side sent the first non-SYN segment after a SYN-ACK (A's handshake ACK)."""
    ack_packet: int | None = None
    first_ts: int = 0
    last_ts: int = 0
    report: ConnectionReport | None = None

    def add(self, seg: Segment, from_x: bool) -> None:
        """Record one segment."""
        side = self.sides[from_x]
        if not self.first_ts:
            self.first_ts = seg.ts_ns
        self.last_ts = seg.ts_ns
        flags = seg.flags
        payload = seg.payload
        length = len(payload) + seg.missing
        rec = SegRec(seg.number, seg.ts_ns, seg.seq, seg.ack, flags, bytes(seg.options), length)
        tsval = _tsval(rec.options) if rec.options else None
        if tsval is not None and len(side.tsvals) < 64:
            side.tsvals.add(tsval)
        if flags & SYN:
            if side.hs is None:
                side.hs = rec
                side.base = (seg.seq + 1) % SEQ_MOD
                side.from_handshake = True
        else:
            if (self.ack_from is None and self.sides[not from_x].hs is not None
                    and self.sides[not from_x].hs.flags & ACK and side.hs is not None):
                self.ack_from = from_x
                self.ack_packet = seg.number
            if length and side.base is None:
                side.base = seg.seq
            if payload and side.base is not None:
                offset = _signed(seg.seq - side.base)
                side.add_bytes(offset, payload)
                if (len(payload) >= FINGERPRINT_MIN_LEN
                        and len(side.fingerprints) < FINGERPRINT_SEGMENTS):
                    rec.phash = hash(bytes(payload))
                    side.fingerprints.setdefault(rec.phash, seg.seq)
        if len(side.segs) < MAX_SEGMENTS:
            side.segs.append(rec)
        else:
            side.dropped += 1


class _TracingAnalyzer(Analyzer):
    """The analyzer, keeping a ConnTrace per connection id alongside its reports."""

    def __init__(self, name: str, **kw: object) -> None:
        self.traces: dict[int, ConnTrace] = {}
        self.reports: list[ConnectionReport] = []
        super().__init__(name, self.reports.append, **kw)  # type: ignore[arg-type]

    def _track(self, conn: Connection, seg: Segment, rec: Record) -> None:
        trace = self.traces.get(conn.id)
        if trace is None:
            trace = self.traces[conn.id] = ConnTrace(conn.x, conn.y)
        trace.add(seg, seg.sport == conn.x[1] and seg.src == conn.x[0])
        super()._track(conn, seg, rec)


@dataclass
class CaptureTraces:
    """One capture, analysed: its summary and a ConnTrace (with report) per connection."""

    name: str
    summary: CaptureSummary
    conns: list[ConnTrace]


def trace_capture(path: str, decryption: DecryptionContext | None = None,
                  progress: Callable[[int], None] | None = None) -> CaptureTraces:
    """Analyze a capture and keep the segment traces. Raises CaptureError."""
    handler_factory = None
    before = None
    on_secrets = None
    if decryption is not None:
        handler_factory = Handlers([decryption.factory])
        before = partial(finalize, ctx=decryption)
        on_secrets = secrets_into(decryption, None)
    stream = open_input(path)
    try:
        analyzer = _TracingAnalyzer(path, handler_factory=handler_factory,
                                    on_secrets=on_secrets, before_report=before)
        items = read_capture(stream, path)
        for n, item in enumerate(items):
            analyzer.feed(item)
            if progress is not None and n & 0x3FF == 0:
                progress(getattr(item, "offset", 0))
        analyzer.finish()
    finally:
        if path != "-":
            stream.close()
    conns = []
    for report in sorted(analyzer.reports, key=lambda r: r.id):
        trace = analyzer.traces.get(report.id) or ConnTrace((b"", 0), (b"", 0))
        trace.report = report
        conns.append(trace)
    return CaptureTraces(path, analyzer.summary, conns)


# ----------------------------------------------------------------- per-connection view


@dataclass
class View:
    """A connection oriented A/B (A as the analyzer's report names it; flipped views
    are tried for captures that start mid-connection)."""

    idx: int
    trace: ConnTrace
    a_is_x: bool

    @property
    def report(self) -> ConnectionReport:
        assert self.trace.report is not None
        return self.trace.report

    def side(self, d: str) -> SideTrace:
        """The trace of the sender of direction ``ab`` or ``ba``."""
        return self.trace.sides[self.a_is_x if d == "ab" else not self.a_is_x]

    def endpoint(self, a: bool) -> str:
        """``ip:port`` of A (or B) in this view."""
        t = self.trace
        ep = t.x if (self.a_is_x == a) else t.y
        return endpoint_text(*ep)

    def flipped(self) -> View:
        """The same connection with A and B swapped."""
        return View(self.idx, self.trace, not self.a_is_x)

    def syn_tsvals(self) -> tuple[int | None, int | None]:
        """TSval of A's SYN and of B's SYN-ACK."""
        out = []
        for d in ("ab", "ba"):
            hs = self.side(d).hs
            out.append(_tsval(hs.options) if hs is not None else None)
        return out[0], out[1]

    def syn_signature(self) -> tuple | None:
        """SYN and SYN-ACK options apart from timestamps and ENO (what the path should
        leave alone and stacks vary in)."""
        hs = [self.side(d).hs for d in ("ab", "ba")]
        if hs[0] is None:
            return None
        return tuple(tuple((k, w) for k, w in option_list(h.options)
                           if k not in _IGNORED_IN_SIGNATURE) if h is not None else None
                     for h in hs)

    def prefixes(self) -> tuple[bytes, bytes]:
        """Both directions' first stream bytes."""
        return self.side("ab").prefix(), self.side("ba").prefix()


# ------------------------------------------------------------------------ the evidence


@dataclass
class Evidence:
    """What agrees between two connections, and the sequence shifts it implies."""

    names: list[str]
    score: int
    shift: dict[str, int | None]


def _payload_shift(v1: View, v2: View, d: str) -> tuple[int, int | None]:
    """How many of the first view's fingerprinted data segments the second view
    carries too, and the sequence shift (second minus first) they imply."""
    f1, f2 = v1.side(d).fingerprints, v2.side(d).fingerprints
    common = [h for h in f1 if h in f2]
    if not common:
        return 0, None
    shifts = Counter((f2[h] - f1[h]) % SEQ_MOD for h in common)
    shift, count = shifts.most_common(1)[0]
    return count, shift


def evidence(v1: View, v2: View, *, offset: int | None, common_shift: tuple | None
             ) -> Evidence:
    """Every kind of evidence that holds between two oriented connections."""
    names: list[str] = []
    shift: dict[str, int | None] = {"ab": None, "ba": None}
    for d in ("ab", "ba"):
        i1, i2 = v1.side(d).isn(), v2.side(d).isn()
        if i1 is not None and i2 is not None:
            shift[d] = (i2 - i1) % SEQ_MOD
    # tcp-timestamps: the SYNs' TSvals, or several TSvals of the same sender in common
    ts1, ts2 = v1.syn_tsvals(), v2.syn_tsvals()
    if ts1[0] is not None and ts1[0] == ts2[0] and (ts1[1] is None or ts2[1] is None
                                                   or ts1[1] == ts2[1]):
        names.append("tcp-timestamps")
    elif ts1[0] is None or ts2[0] is None:
        common = sum(len(v1.side(d).tsvals & v2.side(d).tsvals) for d in ("ab", "ba"))
        if common >= 3:
            names.append("tcp-timestamps")
    # isn: equal ISNs both ways, or the shift many other pairs share
    if shift["ab"] is not None and shift["ba"] is not None and (
            (shift["ab"], shift["ba"]) == (0, 0)
            or (common_shift is not None and (shift["ab"], shift["ba"]) == common_shift)):
        names.append("isn")
    # payload: stream prefixes agree, or data segments' bytes agree
    p1, p2 = v1.prefixes(), v2.prefixes()
    payload = False
    if sum(map(len, p1)) >= FINGERPRINT_MIN_LEN and p1 == p2:
        payload = True
    matched_segments = 0
    for d in ("ab", "ba"):
        count, seg_shift = _payload_shift(v1, v2, d)
        matched_segments += count
        if shift[d] is None and seg_shift is not None:
            shift[d] = seg_shift
    if matched_segments >= 2 or (matched_segments and payload is False and not p1[0]
                                 and not p1[1]):
        payload = True
    if payload:
        names.append("payload")
    sig1, sig2 = v1.syn_signature(), v2.syn_signature()
    if sig1 is not None and sig1 == sig2:
        names.append("syn-options")
    if offset is not None:
        t1, t2 = v1.trace, v2.trace
        dur1, dur2 = t1.last_ts - t1.first_ts, t2.last_ts - t2.first_ts
        if (abs((t2.first_ts - t1.first_ts) - offset) <= TIMING_TOLERANCE_NS
                and abs(dur2 - dur1) <= max(TIMING_TOLERANCE_NS, max(dur1, dur2) // 5)):
            names.append("timing")
    score = sum(_WEIGHT[n] for n in names)
    return Evidence(names, score, shift)


# ---------------------------------------------------------------------------- matching


@dataclass
class Pair:
    """Two oriented views of one connection."""

    first: View
    second: View
    ev: Evidence


def _views(caps: CaptureTraces) -> list[View]:
    out = []
    for i, t in enumerate(caps.conns):
        report = t.report
        a_is_x = report is None or report.a == endpoint_text(*t.x)
        out.append(View(i, t, a_is_x))
    return out


def _index(views: list[View]) -> dict[str, dict]:
    idx: dict[str, dict] = {"ts": {}, "isn": {}, "prefix": {}, "fp": {}}
    for v in views:
        for w in (v, v.flipped()):
            ts = w.syn_tsvals()[0]
            if ts is not None and w is v:
                idx["ts"].setdefault(ts, []).append(v.idx)
            for d in ("ab", "ba"):
                for h in w.side(d).fingerprints:
                    idx["fp"].setdefault(h, set()).add(v.idx)
        isn = (v.side("ab").isn(), v.side("ba").isn())
        if isn[0] is not None:
            idx["isn"].setdefault(isn, []).append(v.idx)
        p = v.prefixes()
        if sum(map(len, p)) >= FINGERPRINT_MIN_LEN:
            idx["prefix"].setdefault(p, []).append(v.idx)
    return idx


def _candidates(v: View, idx: dict[str, dict]) -> set[int]:
    out: set[int] = set()
    ts = v.syn_tsvals()[0]
    if ts is not None:
        out.update(idx["ts"].get(ts, ()))
    isn = (v.side("ab").isn(), v.side("ba").isn())
    if isn[0] is not None:
        out.update(idx["isn"].get(isn, ()))
    p = v.prefixes()
    if sum(map(len, p)) >= FINGERPRINT_MIN_LEN:
        out.update(idx["prefix"].get(p, ()))
    fp_hits: Counter[int] = Counter()
    for d in ("ab", "ba"):
        for h in v.side(d).fingerprints:
            fp_hits.update(idx["fp"].get(h, ()))
    out.update(j for j, _n in fp_hits.most_common(8))
    return out


def _best(v1: View, v2: View, **kw: object) -> tuple[Evidence, View]:
    """The evidence for the second connection as oriented, or flipped if that is
    clearly better (a capture that starts mid-connection may name A differently)."""
    ev = evidence(v1, v2, **kw)  # type: ignore[arg-type]
    flipped = v2.flipped()
    ev_f = evidence(v1, flipped, **kw)  # type: ignore[arg-type]
    if ev_f.score > ev.score:
        return ev_f, flipped
    return ev, v2


def _accept(ev: Evidence, unique_in_window: bool) -> bool:
    if _STRONG & set(ev.names):
        return True
    return "timing" in ev.names and unique_in_window


def _greedy(scored: list[tuple[int, int, int, Evidence, View]], used1: set[int],
            used2: set[int]) -> list[tuple[int, int, Evidence, View]]:
    out = []
    for _score, i, j, ev, v2 in sorted(scored, key=lambda t: (-t[0], t[1], t[2])):
        if i in used1 or j in used2:
            continue
        used1.add(i)
        used2.add(j)
        out.append((i, j, ev, v2))
    return out


def _pair_offset(v1: View, v2: View, shift: dict[str, int | None]) -> tuple[int | None,
                                                                             int | None]:
    """(clock offset, one-way delay from the first point to the second for A->B) of a
    pair, from when the same bytes passed each capture point: A->B bytes pass the
    upstream point first, B->A bytes the other, so half the difference of the two
    directions' medians is the delay and their mean the clock offset."""
    med: dict[str, float] = {}
    for d in ("ab", "ba"):
        s1, s2 = v1.side(d), v2.side(d)
        deltas = []
        if s1.base is not None and s2.base is not None and shift[d] is not None:
            starts2 = [(_signed(r.seq - shift[d] - s1.base), r.ts) for r in s2.segs
                       if r.length and not r.flags & SYN]
            starts2.sort()
            keys = [s for s, _t in starts2]
            ends = {}
            for r in s2.segs:
                if r.length and not r.flags & SYN:
                    ends[_signed(r.seq - shift[d] - s1.base)] = r.length
            for r in s1.segs:
                if not r.length or r.flags & SYN:
                    continue
                off = _signed(r.seq - s1.base)
                k = bisect.bisect_right(keys, off) - 1
                if k >= 0 and keys[k] + ends.get(keys[k], 0) > off:
                    deltas.append(starts2[k][1] - r.ts)
                if len(deltas) >= 400:
                    break
        if not deltas and s1.hs is not None and s2.hs is not None:
            deltas.append(s2.hs.ts - s1.hs.ts)
        if deltas:
            med[d] = statistics.median(deltas)
    if "ab" in med and "ba" in med:
        return int((med["ab"] + med["ba"]) / 2), int((med["ab"] - med["ba"]) / 2)
    if med:
        return int(next(iter(med.values()))), None
    return None, None


def _mode_offset(first: list[View], second: list[View]) -> int | None:
    """Without any strongly matched pair: the most common start-time difference."""
    if not first or not second:
        return None
    bins: Counter[int] = Counter()
    step = TIMING_TOLERANCE_NS // 2
    budget = 2_000_000
    for v1 in first:
        for v2 in second:
            bins[(v2.trace.first_ts - v1.trace.first_ts) // step] += 1
            budget -= 1
        if budget <= 0:
            break
    b, _n = bins.most_common(1)[0]
    return b * step + step // 2


def match(first: CaptureTraces, second: CaptureTraces) -> tuple[list[Pair], int | None]:
    """Pair the connections of two captures; returns the pairs and the clock offset
    (second's clock minus first's, ns) they imply."""
    v1s, v2s = _views(first), _views(second)
    idx2 = _index(v2s)
    used1: set[int] = set()
    used2: set[int] = set()
    # Round 1: candidates found by strong evidence (timestamps, ISNs, payload).
    scored = []
    for v1 in v1s:
        for j in _candidates(v1, idx2):
            ev, v2 = _best(v1, v2s[j], offset=None, common_shift=None)
            if _accept(ev, False):
                scored.append((ev.score, v1.idx, j, ev, v2))
    round1 = _greedy(scored, set(), set())
    offsets = [o for i, _j, ev, v2 in round1
               if (o := _pair_offset(v1s[i], v2, ev.shift)[0]) is not None]
    offset = int(statistics.median(offsets)) if offsets else _mode_offset(v1s, v2s)
    shifts = Counter((ev.shift["ab"], ev.shift["ba"]) for _i, _j, ev, _v in round1
                     if ev.shift["ab"] is not None and ev.shift["ba"] is not None
                     and (ev.shift["ab"], ev.shift["ba"]) != (0, 0))
    common_shift = None
    if shifts:
        value, n = shifts.most_common(1)[0]
        if n >= 3:
            common_shift = value
    # Round 2: every plausible pair, scored with all the evidence (timing included).
    by_start = sorted((v.trace.first_ts, v.idx) for v in v2s)
    starts = [s for s, _j in by_start]
    scored = []
    for v1 in v1s:
        cands = set(_candidates(v1, idx2))
        window: list[int] = []
        if offset is not None:
            lo = bisect.bisect_left(starts, v1.trace.first_ts + offset - TIMING_TOLERANCE_NS)
            hi = bisect.bisect_right(starts, v1.trace.first_ts + offset + TIMING_TOLERANCE_NS)
            window = [by_start[k][1] for k in range(lo, min(hi, lo + 64))]
            cands.update(window)
        if common_shift is not None:
            isn = (v1.side("ab").isn(), v1.side("ba").isn())
            if isn[0] is not None and isn[1] is not None:
                key = ((isn[0] + common_shift[0]) % SEQ_MOD,
                       (isn[1] + common_shift[1]) % SEQ_MOD)
                cands.update(idx2["isn"].get(key, ()))
        for j in cands:
            ev, v2 = _best(v1, v2s[j], offset=offset, common_shift=common_shift)
            if _accept(ev, len(window) == 1):
                scored.append((ev.score, v1.idx, j, ev, v2))
    pairs = [Pair(v1s[i], v2, ev) for i, j, ev, v2 in _greedy(scored, used1, used2)]
    pairs.sort(key=lambda p: p.first.idx)
    return pairs, offset


# --------------------------------------------------------------------------- the diff


def _segment_kind(view: View, d: str, rec: SegRec) -> str:
    side = view.side(d)
    if side.hs is rec:
        return "syn" if d == "ab" else "syn-ack"
    if view.trace.ack_packet == rec.packet:
        return "ack"
    return "data"


def _rel(view: View, d: str, seq: int, shift: int | None, base1: int | None) -> int | None:
    if shift is None or base1 is None:
        return None
    return _signed(seq - shift - base1)


def _keys(view: View, d: str, shift: dict[str, int | None], base1: dict[str, int | None]
          ) -> dict[tuple, SegRec]:
    """Each segment of one direction under a key that names the same segment in both
    captures: its place in the first capture's sequence space, length, SYN/FIN/RST,
    acknowledgement and occurrence."""
    other = "ba" if d == "ab" else "ab"
    out: dict[tuple, SegRec] = {}
    seen: Counter[tuple] = Counter()
    side = view.side(d)
    ack_base = base1[other]
    for rec in side.segs:
        if rec is side.hs:
            continue
        rel = _rel(view, d, rec.seq, shift[d], base1[d])
        if rel is None:
            continue
        rel_ack = (_rel(view, other, rec.ack, shift[other], ack_base)
                   if rec.flags & ACK else None)
        key = (rel, rec.length, rec.flags & (SYN | FIN | RST), rel_ack)
        n = seen[key]
        seen[key] += 1
        out[(*key, n)] = rec
    return out


def _option_changes(d: str, kind_name: str, r1: SegRec | None, r2: SegRec | None,
                    upstream_first: bool) -> list[dict]:
    o1 = option_list(r1.options) if r1 is not None else []
    o2 = option_list(r2.options) if r2 is not None else []
    out = []
    kinds = list(dict.fromkeys([k for k, _w in o1] + [k for k, _w in o2]))
    for kind in kinds:
        w1 = [w for k, w in o1 if k == kind]
        w2 = [w for k, w in o2 if k == kind]
        for n in range(max(len(w1), len(w2))):
            a = w1[n] if n < len(w1) else None
            b = w2[n] if n < len(w2) else None
            if a == b:
                continue
            sent, got = (a, b) if upstream_first else (b, a)
            change = "modified" if sent is not None and got is not None else (
                "removed" if got is None else "added")
            out.append({"direction": d, "segment": kind_name,
                        "packet_first": r1.packet if r1 else None,
                        "packet_second": r2.packet if r2 else None,
                        "kind": kind, "change": change,
                        "first": a.hex() if a is not None else None,
                        "second": b.hex() if b is not None else None})
    return out


def _diff_ranges(s1: SideTrace, s2: SideTrace, delta: int) -> list[list[int]]:
    """Stream ranges (first capture's offsets) whose bytes both captures hold and
    that differ; ``delta`` is the first capture's offset of the second's offset 0."""
    out: list[list[int]] = []
    for lo1, hi1 in s1.cov:
        for lo2, hi2 in s2.cov:
            lo = max(lo1, lo2 + delta)
            hi = min(hi1, hi2 + delta)
            if lo >= hi:
                continue
            pos = lo
            while pos < hi:
                end = min(hi, pos + 4096)
                a = s1.buf[pos:end]
                b = s2.buf[pos - delta:end - delta]
                if a != b:
                    for k in range(end - pos):
                        if a[k] != b[k]:
                            off = pos + k
                            if out and out[-1][0] + out[-1][1] == off:
                                out[-1][1] += 1
                            else:
                                out.append([off, 1])
                pos = end
    return out


def _boundaries(side: SideTrace, base: int, shift: int, lo: int, hi: int) -> set[int]:
    out = set()
    for r in side.segs:
        if r.length and not r.flags & SYN:
            start = _signed(r.seq - shift - base)
            if lo <= start < hi:
                out.add(start)
    return out


def _covered_range(s1: SideTrace, s2: SideTrace, delta: int) -> tuple[int, int] | None:
    if not s1.cov or not s2.cov:
        return None
    lo = max(s1.cov[0][0], s2.cov[0][0] + delta)
    hi = min(s1.cov[-1][1], s2.cov[-1][1] + delta)
    return (lo, hi) if lo < hi else None


@dataclass
class Comparison:
    """The record of one connection seen in either capture (its JSON is the contract)."""

    record: dict
    pair: Pair | None = None
    only: View | None = None
    ladder: list[tuple[SegRec | None, SegRec | None, str]] = field(default_factory=list)
    """For ``--details``: (first's segment, second's segment, direction) in order."""


def _eno_side(report: ConnectionReport | None) -> tuple[str | None, str | None]:
    if report is None:
        return None, None
    return report.eno.get("status"), report.eno.get("reason")


_WHERE = {("ab", "syn"): "A's SYN", ("ba", "syn-ack"): "B's SYN-ACK", ("ab", "ack"): "A's ACK",
          ("ab", "data"): "A's early segments", ("ba", "data"): "B's early segments",
          ("ba", "ack"): "B's ACK", ("ab", "syn-ack"): "A's SYN-ACK", ("ba", "syn"): "B's SYN"}


def _cause(rec: dict, eno_changes: list[dict], near_a: str | None) -> tuple[str, str]:
    """The cause (one of CAUSES) and a one-sentence verdict."""
    eno = rec["eno"]
    statuses = {k: eno[k] for k in ("first", "second") if eno[k] is not None}
    point = {"first": "FIRST", "second": "SECOND"}
    if rec["in"] != "both":
        where = rec["in"]
        status = statuses.get(where)
        reason = eno[f"reason_{where}"]
        seen = f"seen only in {point[where]}, so the path's part cannot be told"
        if status == "negotiated":
            return "negotiated", f"ENO negotiated ({seen})"
        return "not-negotiated", (f"ENO {status}{f' ({reason})' if reason else ''}; {seen}")
    a_side = near_a or "first"
    b_side = "second" if a_side == "first" else "first"

    def outcome(which: str) -> str:
        status = eno[which]
        reason = eno[f"reason_{which}"]
        return f"{status}{f': {reason}' if reason else ''}"

    tail = (f" (near A: {outcome(a_side)}; near B: {outcome(b_side)})"
            if near_a else f" (FIRST: {outcome('first')}; SECOND: {outcome('second')})")
    for change, cause, verb in (("removed", "path-stripped-eno", "removed from"),
                                ("modified", "path-modified-eno", "modified in"),
                                ("added", "path-added-eno", "added to")):
        hit = next((c for c in eno_changes if c["change"] == change), None)
        if hit is None:
            continue
        what = _WHERE.get((hit["direction"], hit["segment"]), "a segment")
        a_status = eno[a_side]
        if cause == "path-stripped-eno" and a_status != "negotiated":
            if hit["segment"] == "syn":
                effect = ", so B never saw it and A fell back"
            else:
                effect = ", so A fell back"
        elif a_status == "negotiated" and eno[b_side] == "negotiated":
            effect = ", and ENO was still negotiated"
        elif eno[a_side] != eno[b_side]:
            effect = ", so the two ends disagree on the outcome"
        else:
            effect = f", and ENO ended {a_status}"
        return cause, f"ENO was {verb} {what} between the two capture points{effect}{tail}"
    missed = [w for w in ("first", "second") if eno[w] == "unknown"]
    if missed and not eno_changes:
        known = next((w for w in ("first", "second") if w not in missed), None)
        status = eno[known] if known else "unknown"
        return ("negotiated" if status == "negotiated" else "not-negotiated",
                (f"ENO {outcome(known)} at {point[known]}; " if known else "ENO unknown; ")
                + f"{' and '.join(point[w] for w in missed)} missed the handshake, so what "
                "the path did to ENO cannot be told")
    if statuses and all(s == "negotiated" for s in statuses.values()):
        return "negotiated", f"ENO negotiated, and the path left the ENO options alone{tail}"
    reasons = {eno["reason_first"], eno["reason_second"]}
    if reasons == {"synack-without-eno"}:
        return "peer-without-eno", ("A's SYN reached B's side with its ENO option and B "
                                    "answered without one: B lacks ENO, the path did not "
                                    f"remove it{tail}")
    return "not-negotiated", f"ENO not negotiated, and not because of the path{tail}"


def _orientation(p: Pair, delay: int | None, eno_hint: str | None) -> str | None:
    """Which capture ("first"/"second") is nearer A: from the delay, else None."""
    if delay is not None and abs(delay) >= 1000:
        return "first" if delay > 0 else "second"
    return eno_hint


def compare_pair(p: Pair, global_near_a: str | None) -> Comparison:
    """The diff of one matched pair."""
    v1, v2 = p.first, p.second
    shift = dict(p.ev.shift)
    _off, delay = _pair_offset(v1, v2, shift)
    near_a = _orientation(p, delay, None) or global_near_a
    upstream_first = {"ab": near_a != "second", "ba": near_a == "second"}
    base1 = {d: v1.side(d).base for d in ("ab", "ba")}
    changes: list[dict] = []
    only = {"first": {"ab": 0, "ba": 0}, "second": {"ab": 0, "ba": 0}}
    reseg = {"ab": False, "ba": False}
    payload_changed: dict[str, list] = {"ab": [], "ba": []}
    ladder: list[tuple[SegRec | None, SegRec | None, str]] = []
    t1, t2 = v1.trace, v2.trace
    offset = _off or 0
    lo_t = max(t1.first_ts, t2.first_ts - offset)
    hi_t = min(t1.last_ts, t2.last_ts - offset)
    for d in ("ab", "ba"):
        s1, s2 = v1.side(d), v2.side(d)
        hs_kind = "syn" if d == "ab" else "syn-ack"
        if s1.hs is not None and s2.hs is not None:
            changes += _option_changes(d, hs_kind, s1.hs, s2.hs, upstream_first[d])
        if s1.hs is not None or s2.hs is not None:
            ladder.append((s1.hs, s2.hs, d))  # a handshake one capture missed: no change
        k1 = _keys(v1, d, {"ab": 0, "ba": 0}, base1)
        k2 = _keys(v2, d, shift, base1)
        for key, r1 in k1.items():
            r2 = k2.get(key)
            if r2 is None:
                if lo_t <= r1.ts <= hi_t:
                    only["first"][d] += 1
                ladder.append((r1, None, d))
                continue
            kind = ("ack" if r1.packet == t1.ack_packet or r2.packet == t2.ack_packet
                    else "data")
            changes += _option_changes(d, kind, r1, r2, upstream_first[d])
            ladder.append((r1, r2, d))
        for key, r2 in k2.items():
            if key not in k1:
                if lo_t <= r2.ts - offset <= hi_t:
                    only["second"][d] += 1
                ladder.append((None, r2, d))
        if shift[d] is not None and s1.base is not None and s2.base is not None:
            delta = _signed((s2.base - shift[d]) - s1.base)
            payload_changed[d] = _diff_ranges(s1, s2, delta)
            rng = _covered_range(s1, s2, delta)
            if rng is not None:
                b1 = _boundaries(s1, s1.base, 0, *rng)
                b2 = _boundaries(s2, s1.base, shift[d], *rng)
                reseg[d] = b1 != b2
    # Handshake ACKs pair by role even when their keys differ (a proxy's ACK).
    ack1 = next((r for r in v1.side("ab").segs if r.packet == t1.ack_packet), None)
    ack2 = next((r for r in v2.side("ab").segs if r.packet == t2.ack_packet), None)
    if ack1 is not None and ack2 is not None and not any(
            c["segment"] == "ack" for c in changes) and ack1.options != ack2.options:
        if not any(a is ack1 and b is ack2 for a, b, _d in ladder):
            changes += _option_changes("ab", "ack", ack1, ack2, upstream_first["ab"])
    ladder.sort(key=lambda t: (t[0].ts if t[0] is not None else (t[1].ts - offset)))  # type: ignore[union-attr]
    eno_changes = [c for c in changes if is_eno(c["kind"], bytes.fromhex(c["first"] or
                                                                         c["second"] or ""))]
    listed = changes[:OPTION_CHANGES_LISTED]
    for c in eno_changes:  # ENO changes are always listed
        if c not in listed:
            listed.append(c)
    r1, r2 = v1.report, v2.report
    s1_, r1_reason = _eno_side(r1)
    s2_, r2_reason = _eno_side(r2)
    a1, a2 = v1.endpoint(True), v2.endpoint(True)
    b1, b2 = v1.endpoint(False), v2.endpoint(False)
    rec = {
        "in": "both",
        "first": {"id": r1.id, "a": a1, "b": b1},
        "second": {"id": r2.id, "a": a2, "b": b2},
        "matched_by": [n for n in EVIDENCE if n in p.ev.names],
        "translated": {"addresses": _ip(a1) != _ip(a2) or _ip(b1) != _ip(b2),
                       "ports": _port(a1) != _port(a2) or _port(b1) != _port(b2)},
        "seq_shift": {d: shift[d] for d in ("ab", "ba")},
        "option_changes": listed,
        "option_changes_omitted": len(changes) - len(listed),
        "resegmented": reseg,
        "payload_changed": payload_changed,
        "only_in_first": only["first"],
        "only_in_second": only["second"],
        "eno": {"first": s1_, "second": s2_, "reason_first": r1_reason,
                "reason_second": r2_reason},
        "near_a": near_a,
        "clock_offset": (_off / 1e9) if _off is not None else None,
        "delay": (delay / 1e9) if delay is not None else None,
        "roles_flipped": v2.a_is_x != (r2.a == endpoint_text(*t2.x)),
    }
    rec["cause"], rec["verdict"] = _cause(rec, eno_changes, near_a)
    return Comparison(rec, pair=p, ladder=ladder)


def _ip(ep: str) -> str:
    return ep.rsplit(":", 1)[0]


def _port(ep: str) -> str:
    return ep.rsplit(":", 1)[1]


def compare_only(view: View, where: str) -> Comparison:
    """The record of a connection seen at one capture point only."""
    r = view.report
    status, reason = _eno_side(r)
    other = "second" if where == "first" else "first"
    rec = {
        "in": where,
        where: {"id": r.id, "a": r.a, "b": r.b},
        other: None,
        "matched_by": [],
        "translated": {"addresses": False, "ports": False},
        "seq_shift": {"ab": None, "ba": None},
        "option_changes": [],
        "option_changes_omitted": 0,
        "resegmented": {"ab": False, "ba": False},
        "payload_changed": {"ab": [], "ba": []},
        "only_in_first": {d: (len(view.side(d).segs) + view.side(d).dropped
                              if where == "first" else 0) for d in ("ab", "ba")},
        "only_in_second": {d: (len(view.side(d).segs) + view.side(d).dropped
                               if where == "second" else 0) for d in ("ab", "ba")},
        "eno": {"first": status if where == "first" else None,
                "second": status if where == "second" else None,
                "reason_first": reason if where == "first" else None,
                "reason_second": reason if where == "second" else None},
        "near_a": None,
        "clock_offset": None,
        "delay": None,
        "roles_flipped": False,
    }
    rec["cause"], rec["verdict"] = _cause(rec, [], None)
    ordered = {k: rec[k] for k in ("in", "first", "second")}
    ordered.update(rec)
    ladder = [(s, None, d) if where == "first" else (None, s, d)
              for d in ("ab", "ba") for s in view.side(d).segs]
    ladder.sort(key=lambda t: (t[0] or t[1]).ts)  # type: ignore[union-attr]
    return Comparison(ordered, only=view, ladder=ladder)


@dataclass
class CompareResult:
    """Every record, in order, and what the whole comparison found."""

    first: CaptureTraces
    second: CaptureTraces
    comparisons: list[Comparison]
    clock_offset_ns: int | None
    near_a: str | None

    @property
    def records(self) -> list[dict]:
        """The JSON records (see the README: Comparing two capture points)."""
        return [c.record for c in self.comparisons]

    def summary(self) -> dict:
        """The statistic a measurement study reports: counts per cause and per option
        kind changed (connections, per kind, change and segment)."""
        causes = Counter(r["cause"] for r in self.records)
        where = Counter(r["in"] for r in self.records)
        kinds: Counter[tuple[int, str, str]] = Counter()
        evidence_used: Counter[str] = Counter()
        for r in self.records:
            seen = {(c["kind"], c["change"], c["segment"]) for c in r["option_changes"]}
            kinds.update(seen)
            evidence_used.update(r["matched_by"])
        return {
            "connections": len(self.records),
            "in": {k: where.get(k, 0) for k in ("both", "first", "second")},
            "cause": {k: causes.get(k, 0) for k in CAUSES},
            "option_changes": [{"kind": k, "change": c, "segment": s, "connections": n}
                               for (k, c, s), n in sorted(kinds.items(),
                                                          key=lambda t: (-t[1], t[0]))],
            "translated": sum(r["translated"]["addresses"] or r["translated"]["ports"]
                              for r in self.records),
            "resegmented": sum(r["resegmented"]["ab"] or r["resegmented"]["ba"]
                               for r in self.records),
            "payload_changed": sum(bool(r["payload_changed"]["ab"] or
                                        r["payload_changed"]["ba"]) for r in self.records),
            "matched_by": dict(evidence_used),
            "clock_offset": (self.clock_offset_ns / 1e9
                             if self.clock_offset_ns is not None else None),
            "near_a": self.near_a,
        }


def compare_traces(first: CaptureTraces, second: CaptureTraces) -> CompareResult:
    """Match and diff two analysed captures."""
    pairs, offset = match(first, second)
    delays = [d for p in pairs if (d := _pair_offset(p.first, p.second, p.ev.shift)[1])
              is not None and abs(d) >= 1000]
    global_near_a = None
    if delays:
        global_near_a = "first" if statistics.median(delays) > 0 else "second"
    comparisons = [compare_pair(p, global_near_a) for p in pairs]
    matched1 = {p.first.idx for p in pairs}
    matched2 = {p.second.idx for p in pairs}
    for v in _views(first):
        if v.idx not in matched1:
            comparisons.append(compare_only(v, "first"))
    for v in _views(second):
        if v.idx not in matched2:
            comparisons.append(compare_only(v, "second"))
    off = offset or 0

    def when(c: Comparison) -> tuple[int, int]:
        if c.pair is not None:
            return c.pair.first.trace.first_ts, 0
        assert c.only is not None
        t = c.only.trace.first_ts
        return (t, 1) if c.record["in"] == "first" else (t - off, 2)

    comparisons.sort(key=when)
    for n, c in enumerate(comparisons):
        c.record = {"id": n, **c.record}
    return CompareResult(first, second, comparisons, offset, global_near_a)


def compare_files(first: str, second: str, decryption: Iterable[DecryptionContext | None]
                  = (None, None)) -> CompareResult:
    """Analyze two captures and compare them. Raises CaptureError."""
    ctx1, ctx2 = list(decryption)
    return compare_traces(trace_capture(first, ctx1), trace_capture(second, ctx2))
