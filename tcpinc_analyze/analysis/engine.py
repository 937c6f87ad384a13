"""The streaming analyzer: records in, one report per connection out.

Connections are keyed by their endpoints and by their SYN (a reused 4-tuple is a new
connection); closed connections are finalised and dropped after a quiet period of
capture time, idle ones after a longer one, so memory follows the number of
connections open at once, not the size of the capture. The number open at once is
bounded too (a SYN flood would otherwise hold a million of them, issue 10 item 26):
when the table is full the least recently active connection is finalised early, its
record emitted with a ``connection-evicted`` finding.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..capture.decode import DecodeProblem, IpDecoder, Segment, link_ip_offset
from ..capture.reader import ReadProblem, Record, SecretsBlock
from ..findings import Finding, Severity
from ..limits import DEFAULT, Limits
from ..tcp.reassembly import DirectionStream
from ..words import plural
from .connection import ACK, FIN, RST, SYN, Connection, HandlerFactory
from .report import ConnectionReport, build_report
from .resume_registry import ResumeRegistry

_IPV4_FAST = struct.Struct("!BxHxxHxB2x4s4s")
_TCP_FAST = struct.Struct("!HHIIBBH")
CLOSED_LINGER_NS = 30 * 1_000_000_000
"""Capture time a closed connection stays in the table for late retransmissions."""
SWEEP_EVERY = 4096
SWEEP_INTERVAL_NS = 1_000_000_000
"""Capture time between sweeps for closed and idle connections (a sweep visits every
open connection, so it must not run every few thousand packets of a flood)."""
LIVE_SWEEP_NS = 1_000_000_000
"""Reading a live stream, the table is also swept once per second of capture time, so
a closed connection's record comes out while the capture goes on (not every 4096
packets, which a quiet link may take hours to send)."""
NEVER = 1 << 127
MAX_CAPTURE_FINDINGS_PER_KIND = 20


@dataclass
class CaptureSummary:
    """Facts about the capture as a whole."""

    name: str
    packets: int = 0
    tcp_packets: int = 0
    non_tcp: int = 0
    connections: int = 0
    truncated_packets: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    linktypes: set[int] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)
    secrets: list[SecretsBlock] = field(default_factory=list)
    fatal: bool = False
    evicted: int = 0
    """Connections finalised early because the connection table was full."""
    _counts: dict[str, int] = field(default_factory=dict)

    def add(self, finding: Finding) -> None:
        """Record a capture-level finding, capping floods of one kind."""
        n = self._counts.get(finding.code, 0) + 1
        self._counts[finding.code] = n
        if n <= MAX_CAPTURE_FINDINGS_PER_KIND:
            self.findings.append(finding)

    @property
    def suppressed(self) -> dict[str, int]:
        """How many findings of each kind were not listed."""
        return {k: v - MAX_CAPTURE_FINDINGS_PER_KIND for k, v in self._counts.items()
                if v > MAX_CAPTURE_FINDINGS_PER_KIND}


def fragment_finding(counts: dict[int, int], first: int | None) -> Finding | None:
    """The one finding for fragment trains that never completed: how many per IP version
    and where the first began (their TCP segments are missing from the analysis)."""
    total = sum(counts.values())
    if not total:
        return None
    kinds = " and ".join(f"{n} IPv{v}" for v, n in sorted(counts.items()) if n)
    return Finding(
        Severity.WARNING, "ip-fragments-incomplete",
        f"{kinds} fragment {'train' if total == 1 else 'trains'} never completed "
        f"(the first began at packet {first}): the TCP segments they carried are "
        "missing from the analysis", None, first)


def capped_notes(summary: CaptureSummary) -> list[Finding]:
    """One note per flooded kind of capture-level finding: how many were not listed."""
    return [Finding(Severity.NOTE, "findings-capped",
                    f"{plural(count, 'more ' + repr(code) + ' finding')} after the first "
                    f"{MAX_CAPTURE_FINDINGS_PER_KIND}: counted, not listed")
            for code, count in summary.suppressed.items()]


class Analyzer:
    """Feeds records through decoding, the flow table and per-connection analysis."""

    def __init__(self, name: str, on_report: Callable[[ConnectionReport], None], *,
                 handler_factory: HandlerFactory | None = None,
                 on_secrets: Callable[[SecretsBlock], None] | None = None,
                 before_report: Callable[[Connection], None] | None = None,
                 limits: Limits = DEFAULT) -> None:
        self.before_report = before_report
        self.limits = limits
        self.release_connections = True
        """Drop a connection's parsers once reported (set False to inspect them after)."""
        self.summary = CaptureSummary(name)
        self.on_report = on_report
        self.on_secrets = on_secrets
        self.handler_factory = handler_factory
        self.table: dict[tuple, Connection] = {}
        """Both endpoint orders of every open connection -> the connection."""
        self.live: OrderedDict[int, Connection] = OrderedDict()
        """Open connections by id, in the order the eviction clock visits them (an
        OrderedDict: a plain dict's first item is found by skipping the slots of every
        item deleted before it, which made eviction quadratic)."""
        self.marks: dict[int, int] = {}
        """Per open connection, its last packet when the clock last passed it."""
        self.last_sweep = 0
        self.ip = IpDecoder()
        self.next_id = 0
        self.unknown_links: set[tuple[int, int]] = set()
        self.resumes = ResumeRegistry()
        self.now = 0
        self.live_input = False
        """Set for a pipe or standard input: sweep by capture time too (LIVE_SWEEP_NS)."""
        self.next_sweep_ns = NEVER

    # ------------------------------------------------------------------ input
    def feed_all(self, items: Iterable[Record | SecretsBlock | ReadProblem]) -> None:
        """Consume a reader's output completely, then finalise every connection."""
        packet, feed = self.packet, self.feed
        for item in items:
            if item.__class__ is Record:  # the hot path skips the dispatch below
                packet(item)
            else:
                feed(item)
        self.finish()

    def feed(self, item: Record | SecretsBlock | ReadProblem) -> None:
        """One reader item."""
        if isinstance(item, Record):
            self.packet(item)
        elif isinstance(item, SecretsBlock):
            self.summary.secrets.append(item)
            if self.on_secrets is not None:
                self.on_secrets(item)
        else:
            self.summary.add(Finding(Severity.ERROR, "capture-damaged", item.message,
                                     item.offset, item.packet))
            self.summary.fatal |= item.fatal

    def packet(self, rec: Record) -> None:
        """Decode one record and hand its TCP segment to its connection."""
        s = self.summary
        s.packets += 1
        ts = rec.ts_ns
        if s.first_ts is None:
            s.first_ts = ts
        s.last_ts = ts
        self.now = ts
        data = rec.data
        # Fast path: untagged Ethernet, IPv4 without options or fragments, whole packet.
        if rec.linktype == 1 and len(data) >= 54 and data[12] == 8 and data[13] == 0:
            vihl, total, frag, proto, src, dst = _IPV4_FAST.unpack_from(data, 14)
            end = 14 + total
            if vihl == 0x45 and proto == 6 and not frag & 0x3FFF and end <= len(data):
                sport, dport, seq, ack, off, flags, window = _TCP_FAST.unpack_from(data, 34)
                hlen = (off >> 4) << 2
                if hlen >= 20 and 34 + hlen <= end:
                    s.linktypes.add(1)
                    seg = Segment(rec.number, ts, src, dst, sport, dport, seq, ack,
                                  flags | (off & 1) << 8, window, data[54:34 + hlen],
                                  data[34 + hlen:end], 0)
                    s.tcp_packets += 1
                    self.segment(seg, rec)
                    if s.tcp_packets % SWEEP_EVERY == 0 or ts >= self.next_sweep_ns:
                        self.sweep()
                    return
        s.linktypes.add(rec.linktype)
        try:
            pos = link_ip_offset(rec.linktype, rec.data)
        except KeyError:
            key = (rec.interface, rec.linktype)
            if key not in self.unknown_links:
                self.unknown_links.add(key)
                s.add(Finding(Severity.WARNING, "unsupported-linktype",
                              f"interface {rec.interface}: link type {rec.linktype} is not "
                              "supported (Ethernet, SLL, SLL2, NULL/LOOP and raw IP are); its "
                              "packets are skipped", None, rec.number))
            s.non_tcp += 1
            return
        except DecodeProblem as exc:
            s.add(Finding(Severity.WARNING, "packet-malformed",
                          f"packet {rec.number}: {exc}", rec.offset, rec.number))
            return
        if pos is None:
            s.non_tcp += 1
            return
        try:
            seg = self.ip.decode(rec.number, rec.ts_ns, rec.data, pos, rec.orig_len - len(rec.data))
        except DecodeProblem as exc:
            truncated = rec.orig_len > len(rec.data)
            s.add(Finding(Severity.NOTE if truncated else Severity.WARNING,
                          "packet-truncated" if truncated else "packet-malformed",
                          f"packet {rec.number}: {exc}"
                          + (f" (captured {len(rec.data)} of {rec.orig_len} bytes)"
                             if truncated else ""), rec.offset, rec.number))
            return
        if seg is None:
            s.non_tcp += 1
            return
        s.tcp_packets += 1
        self.segment(seg, rec)
        if s.tcp_packets % SWEEP_EVERY == 0 or ts >= self.next_sweep_ns:
            self.sweep()

    # ------------------------------------------------------------------ flow table
    def _new(self, seg: Segment, x_is_src: bool = True) -> Connection:
        if len(self.live) >= self.limits.max_connections:
            self._evict(seg.number)
        src, dst = (seg.src, seg.sport), (seg.dst, seg.dport)
        conn = Connection(self.next_id, src if x_is_src else dst, dst if x_is_src else src,
                          seg.number, seg.ts_ns, handler_factory=self.handler_factory,
                          resume_registry=self.resumes, limits=self.limits)
        self.next_id += 1
        self.summary.connections += 1
        self.table[(*src, *dst)] = conn
        self.table[(*dst, *src)] = conn
        self.live[conn.id] = conn
        self.marks[conn.id] = seg.number
        return conn

    def _evict(self, packet: int) -> None:
        """Finalise the least recently active connection (a clock: one that saw packets
        since the hand last passed it gets another round), amortised O(1)."""
        live, marks = self.live, self.marks
        while True:
            cid, conn = next(iter(live.items()))
            if conn.last_packet > marks[cid]:
                marks[cid] = conn.last_packet
                live.move_to_end(cid)
                continue
            break
        limit = self.limits.max_connections
        conn.add(Severity.WARNING, "connection-evicted",
                 f"finalised early at packet {packet}: the connection table was full "
                 f"({limit} connections open at once) and this one was the least recently "
                 "active; later packets of it are reported as a new connection (raise "
                 "--max-connections)", packet)
        s = self.summary
        s.evicted += 1
        if s.evicted == 1:
            s.add(Finding(Severity.WARNING, "connection-table-full",
                          f"more than {limit} connections were open at once (first at packet "
                          f"{packet}): the least recently active ones were finalised early, "
                          "each with a 'connection-evicted' finding (--max-connections raises "
                          "the limit)", None, packet))
        self._retire(conn)

    def _retire(self, conn: Connection) -> None:
        for key in ((*conn.x, *conn.y), (*conn.y, *conn.x)):
            if self.table.get(key) is conn:
                del self.table[key]
        self.live.pop(conn.id, None)
        self.marks.pop(conn.id, None)
        conn.finish()
        if self.before_report is not None:
            self.before_report(conn)
        report = build_report(conn)
        if self.release_connections:
            conn.release()
        self.on_report(report)

    def sweep(self) -> None:
        """Finalise connections that closed a while ago or went silent (at most once per
        SWEEP_INTERVAL_NS of capture time)."""
        now = self.now
        if abs(now - self.last_sweep) < SWEEP_INTERVAL_NS:
            return  # (abs: a merged capture's clock may jump back)
        self.last_sweep = now
        self.next_sweep_ns = now + LIVE_SWEEP_NS if self.live_input else NEVER
        idle = self.limits.idle_timeout_ns
        for conn in list(self.live.values()):
            if (conn.closed_ts is not None and now - conn.closed_ts > CLOSED_LINGER_NS) or (
                    now - conn.last_ts > idle):
                self._retire(conn)

    def finish(self) -> None:
        """End of capture: finalise everything still open, in id order."""
        self._fragment_report()
        self._capped_report()
        for conn in sorted(self.live.values(), key=lambda c: c.id):
            self._retire(conn)
        self.table.clear()

    def _fragment_report(self) -> None:
        """Fragment trains that never completed, once for the whole capture."""
        finding = fragment_finding(*self.ip.incomplete_trains())
        if finding is not None:
            self.summary.add(finding)

    def _capped_report(self) -> None:
        """Say how many capture-level findings of each flooded kind were not listed."""
        self.summary.findings.extend(capped_notes(self.summary))

    # ------------------------------------------------------------------ per segment
    def segment(self, seg: Segment, rec: Record) -> None:
        """Route a segment to its connection, creating or replacing connections on SYNs."""
        conn = self.table.get((seg.src, seg.sport, seg.dst, seg.dport))
        flags = seg.flags
        syn = flags & SYN
        if syn and not flags & ACK:
            if conn is not None:
                from_x = conn.from_x(seg)
                previous = conn.syn.get(from_x)
                if previous is not None and previous.isn == seg.seq and not conn.closed:
                    conn.add(Severity.NOTE, "tcp-retransmission",
                             f"SYN retransmitted (same ISN as packet {previous.packet})",
                             seg.number)
                    conn.on_syn(seg, from_x)
                elif (previous is None and not from_x and not conn.synack
                      and conn.packets == len(conn.syn)):
                    conn.on_syn(seg, from_x)  # the peer's SYN: a simultaneous open
                else:
                    self._retire(conn)
                    conn = None
            if conn is None:
                conn = self._new(seg)
                conn.on_syn(seg, True)
                conn.start_stream(True, seg.seq)
        elif conn is None:
            if syn:  # SYN-ACK without its SYN: the SYN-ACK's receiver is A
                conn = self._new(seg, x_is_src=False)
            else:
                conn = self._new(seg)
        elif syn and conn.closed and seg.seq not in {i.isn for i in conn.synack.values()}:
            self._retire(conn)
            conn = self._new(seg, x_is_src=False)
        self._track(conn, seg, rec)

    @staticmethod
    def _early(conn: Connection, seg: Segment, from_x: bool) -> None:
        """The first non-SYN segments: the ENO rules of RFC 8547 §4.6 and the outcome."""
        has_eno = None
        if not conn.eno_phase_done:
            has_eno = conn.check_nonsyn_eno(seg, from_x)
            conn.nonsyn_from.setdefault(from_x, seg.number)
        if conn.negotiation is None:
            if not conn.syn and not conn.synack:
                conn.decide_eno(None, seg.number)
            elif conn.simultaneous or from_x == conn.active_is_x:
                if has_eno is None:
                    got = conn.segment_eno(seg)
                    conn.legacy |= got.legacy
                    has_eno = bool(got.options)
                conn.decide_eno(has_eno, seg.number)
        conn.early = not conn.eno_phase_done or conn.negotiation is None

    @staticmethod
    def _watched(conn: Connection, seg: Segment, from_x: bool, stream: DirectionStream,
                 size: int) -> None:
        """A segment of a direction whose Init message (PSH rule) or rekeys (RFC 8548
        §3.8: the ACKs show what each host had received) are being followed."""
        watch = conn.rekey_watch
        if watch is not None and watch.active:
            peer = conn.streams.get(not from_x)
            ack_off = (peer.offset_of(seg.ack) if seg.flags & ACK and peer is not None
                       and peer.base is not None else None)
            start = stream.offset_of(seg.seq)
            watch.segment(conn.label(from_x), start, start + size, ack_off,
                          bool(seg.flags & FIN), seg.number)
        if not size:
            return
        if from_x in conn.init_open:
            conn.note_init_segment(from_x, seg, stream)
            stream.segment(seg.seq, seg.payload, seg.number, seg.missing)
            conn.check_init_psh(from_x)
        else:
            stream.segment(seg.seq, seg.payload, seg.number, seg.missing)

    def _track(self, conn: Connection, seg: Segment, rec: Record) -> None:
        x = conn.x
        from_x = seg.sport == x[1] and seg.src == x[0]
        flags = seg.flags
        payload = seg.payload
        conn.packets += 1
        conn.last_ts = seg.ts_ns
        conn.last_packet = seg.number
        size = len(payload) + seg.missing
        if from_x:
            conn.bytes_xy += size
        else:
            conn.bytes_yx += size
        if seg.missing or seg.options_truncated:
            self.summary.truncated_packets += 1
            conn.add(Severity.NOTE, "packet-truncated",
                     f"captured {len(rec.data)} of {rec.orig_len} bytes (snaplen): "
                     f"{seg.missing} payload bytes missing", seg.number)
        if flags & SYN:
            if flags & ACK:
                previous = conn.synack.get(from_x)
                if previous is not None and previous.isn == seg.seq:
                    conn.add(Severity.NOTE, "tcp-retransmission",
                             f"SYN-ACK retransmitted (as packet {previous.packet})", seg.number)
                conn.on_synack(seg, from_x)
            conn.start_stream(from_x, seg.seq)
            return
        if conn.early:
            self._early(conn, seg, from_x)
        if conn.after_fallback and conn.after_fallback.get(from_x):
            opts = seg.options  # could an ENO option (kind 69, 253, 254) be there?
            if 69 in opts or 253 in opts or 254 in opts:
                conn.check_after_fallback(seg, from_x)
        streams = conn.streams
        stream = streams.get(from_x)
        if stream is None:
            pass
        elif conn.init_open or (conn.rekey_watch is not None and conn.rekey_watch.active):
            # an Init message's PSH segment is awaited, or a rekey frame its ACK, or an
            # owed rekey answer the sender's FIN
            self._watched(conn, seg, from_x, stream, size)
        elif size:
            stream.segment(seg.seq, payload, seg.number, seg.missing)
        if flags & ACK:
            peer = streams.get(not from_x)
            if peer is not None and peer.pending:
                peer.ack(seg.ack)
        if flags & (FIN | RST):
            if flags & FIN and from_x not in conn.fin:
                conn.fin[from_x] = seg.number
            if flags & RST and conn.rst_packet is None:
                conn.rst_packet = seg.number
            if conn.closed and conn.closed_ts is None:
                conn.closed_ts = seg.ts_ns
