"""One capture on N cores: one reader, N analyzer processes split by flow, one result.

The reader walks the records once and routes each to a worker by a symmetric hash of
its IP address pair, so both directions of a connection, every fragment of a datagram
and every connection between the same two hosts (resumption, the RFC 8548 §3.5 once-only
rules) land on the same worker. Records travel in batches (one pipe message per worker
per round, a packed header per record), never one queue item per packet.

Why the result is *identical* to a single process, not just equivalent:

- Connection ids. A worker numbers its connections locally and reports, per round, the
  record at which each was created; connection ids are the creation order, so the
  merger renumbers by sorting creations by record position (and rewrites the fields
  and messages that name another connection: ``tcpcrypt.resumes`` and the
  ``resume-identifier-reused`` messages, see ``CONNECTION_REFERENCES``).
- Retirement. A single process sweeps its table when its TCP-packet count reaches a
  multiple of ``SWEEP_EVERY``; which connections a sweep retires changes what later
  packets belong to. The reader classifies every record exactly as the analyzer does
  (the fast path inline, the slow path with the same ``IpDecoder``), and sends every
  worker a *tick* at those positions; workers sweep only on ticks.
- Order. Reports are emitted in single-process order: by the record at which the
  connection was retired, sweeps after in-packet retirements, ids within a sweep, and
  at the end of the capture by id. A round's reports are emitted once every worker has
  returned that round, so JSON Lines still stream while the capture is read.
- Capture-level findings (damaged records, unknown link types, malformed packets) are
  replayed through one ``CaptureSummary`` in record order, so the per-kind cap and its
  note fall where they would.

Limits (documented in the README): sharding applies to regular files (a pipe or live
capture is read by one process); a resumption whose original session ran between
*another* address pair (a host that changed address) is found only with ``-j 1`` or
when the key log holds the resumed session's secret; more than ``FRAG_BUFFER_MAX`` IP
datagrams under reassembly at once are evicted per worker instead of capture-wide.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import pickle
import re
import signal
import stat
import struct
import threading
import traceback
import zlib
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from multiprocessing.connection import Connection as Pipe
from typing import BinaryIO

from ..analysis import engine
from ..analysis.connection import HandlerFactory
from ..analysis.engine import (
    _IPV4_FAST,
    MAX_CAPTURE_FINDINGS_PER_KIND,
    Analyzer,
    CaptureSummary,
    capped_notes,
    fragment_finding,
)
from ..analysis.report import ConnectionReport
from ..analysis.run import AnalysisResult, make_analyzer
from ..capture.decode import DecodeProblem, IpDecoder, link_ip_offset
from ..capture.reader import (
    MAX_RECORD,
    CaptureError,
    ReadProblem,
    Record,
    SecretsBlock,
    open_input,
    read_capture,
)
from ..decryption import DecryptionContext
from ..findings import Finding, Severity
from ..keylog import KeyLogError

HDR = struct.Struct("<BQQqIIIQI")
"""kind, position, packet number, ts_ns, link type (or secrets type), interface,
original length, file offset, data length; then the data."""
K_RECORD, K_TICK, K_SECRETS = 0, 1, 2
RAW_ROUND = struct.Struct("<IIQQ")
"""Raw pcap rounds: link type, timestamp multiplier, file offset and length of the
stretch of file that follows; then one integer per entry: position << 32 | offset in
the stretch (TICK set: a sweep tick after that record)."""
PCAP_HEAD = struct.Struct("<IIII")
FAST_FIELDS = struct.Struct("!HBxH2xHxB22xB")
"""From an Ethernet frame's byte 12: ethertype, IPv4 version/IHL, total length,
flags/fragment offset, protocol, TCP data offset (the analyzer's fast-path fields)."""
TICK = 1 << 63
RAW_MAGICS = {0xA1B2C3D4: 1000, 0xA1B23C4D: 1}
"""Little-endian pcap (micro- and nanoseconds): walked raw by the reader, without
building a record object per packet in the main process."""
ROUND_BYTES = 4 << 20
"""Record bytes per round: each worker gets one message per round."""
ROUND_RECORDS = 8192
"""Records per round at most: a worker keeps a round's reports until it answers, and
the main process unpickles them at once, so a round of tiny packets (a SYN flood packs
60,000 into 4 MB, each retiring a connection) must not hold tens of thousands."""
PHASE_PACKET, PHASE_SWEEP, PHASE_FINISH = 0, 1, 2
END = 1 << 62
"""Position of the end-of-capture retirements (after every record)."""
AUTO_SHARD_BYTES = 64 << 20
"""Without -j, a single capture is sharded over all cores only from this size on (the
worker processes cost a fraction of a second to start)."""
CONNECTION_REFERENCES = {"resume-identifier-reused": re.compile(r"(?<=connection )(\d+)")}
"""Finding codes whose messages name another connection's id (renumbered on merge)."""


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def shard_key(a: bytes, b: bytes, shards: int) -> int:
    """Symmetric and stable across processes and machines (Dask tasks route alike)."""
    return zlib.crc32(a + b if a <= b else b + a) % shards


def _addresses(data: bytes, pos: int) -> tuple[bytes, bytes] | None:
    """Source and destination of the IP header at pos, if its fixed part is there."""
    if len(data) <= pos:
        return None
    version = data[pos] >> 4
    if version == 4 and len(data) >= pos + 20:
        return data[pos + 12:pos + 16], data[pos + 16:pos + 20]
    if version == 6 and len(data) >= pos + 40:
        return data[pos + 8:pos + 24], data[pos + 24:pos + 40]
    return None


class Router:
    """Which shard gets a record, and whether the single-process analyzer counts it as a
    TCP packet (its sweep cadence). Mirrors ``Analyzer.packet`` decision for decision:
    records without IP addresses (non-IP, unknown link types, headers cut short) go to
    shard 0, where they only touch the capture summary."""

    def __init__(self, shards: int) -> None:
        self.shards = shards
        self.ip = IpDecoder()

    def route(self, rec: Record) -> tuple[int, bool]:
        """(shard, counted as a TCP packet)."""
        data = rec.data
        if rec.linktype == 1 and len(data) >= 54 and data[12] == 8 and data[13] == 0:
            vihl, total, frag, proto, src, dst = _IPV4_FAST.unpack_from(data, 14)
            end = 14 + total
            if vihl == 0x45 and proto == 6 and not frag & 0x3FFF and end <= len(data):
                hlen = (data[46] >> 4) << 2
                if hlen >= 20 and 34 + hlen <= end:
                    return zlib.crc32(src + dst if src <= dst else dst + src) % self.shards, \
                        True
        try:
            pos = link_ip_offset(rec.linktype, data)
        except (KeyError, DecodeProblem):
            return 0, False
        if pos is None:
            return 0, False
        addresses = _addresses(data, pos)
        if addresses is None:  # the decoder rejects it before keeping any state
            return 0, False
        shard = shard_key(*addresses, self.shards)
        try:
            seg = self.ip.decode(rec.number, rec.ts_ns, data, pos, rec.orig_len - len(data))
        except DecodeProblem:
            return shard, False
        return shard, seg is not None


# ---------------------------------------------------------------------------- workers
class WorkerSummary(CaptureSummary):
    """Keeps each capture-level finding with its record position, enough of each kind
    (the cap plus one) for the merger to place the cap's note where one process would."""

    def __init__(self, name: str, owner: ShardAnalyzer) -> None:
        super().__init__(name)
        self.owner = owner
        self.kept: list[tuple[int, int, Finding]] = []
        self.fragments: tuple[dict[int, int], int | None] = ({}, None)
        """This worker's incomplete fragment trains (counts by IP version, first packet)."""

    def add(self, finding: Finding) -> None:
        """Count it; keep it with its position while the kind is under the cap."""
        n = self._counts.get(finding.code, 0) + 1
        self._counts[finding.code] = n
        if n <= MAX_CAPTURE_FINDINGS_PER_KIND + 1:
            self.kept.append((self.owner.seq, len(self.kept), finding))

    def state(self) -> dict:
        """What the merger needs, picklable."""
        return {"tcp_packets": self.tcp_packets, "non_tcp": self.non_tcp,
                "connections": self.connections, "truncated_packets": self.truncated_packets,
                "linktypes": set(self.linktypes), "kept": self.kept,
                "counts": dict(self._counts), "fragments": self.fragments}


@dataclass
class RoundResult:
    """One worker's output for one round."""

    created: list[tuple[int, int]]
    """(local id, position) of each connection created."""
    retired: list[tuple[int, int, int, ConnectionReport]]
    """(position, phase, local id, report) of each connection finalised."""
    summary: dict | None = None
    """The worker's summary state, with its last round."""


@dataclass
class WorkerFailure:
    """An exception in a worker, carried to the main process."""

    error: BaseException | None
    text: str


class ShardAnalyzer(Analyzer):
    """The analyzer on one shard: sweeps only on the reader's ticks, records creations
    and retirements with their record positions."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.summary = WorkerSummary(self.summary.name, self)
        self.seq = 0
        self.phase = PHASE_PACKET
        self.created: list[tuple[int, int]] = []
        self.retired: list[tuple[int, int, int, ConnectionReport]] = []
        self._ticking = False
        self.on_report = self.collect

    def _new(self, seg, x_is_src: bool = True):  # noqa: ANN001, ANN202 - engine's signature
        conn = super()._new(seg, x_is_src)
        self.created.append((conn.id, self.seq))
        return conn

    def sweep(self) -> None:
        """Only on a tick: the worker's own packet count is not the capture's."""
        if self._ticking:
            super().sweep()

    def tick(self, seq: int, ts_ns: int) -> None:
        """The sweep a single process would do after the record at ``seq``."""
        self.seq, self.phase, self.now, self._ticking = seq, PHASE_SWEEP, ts_ns, True
        try:
            super().sweep()
        finally:
            self.phase, self._ticking = PHASE_PACKET, False

    def collect(self, report: ConnectionReport) -> None:
        """on_report: keep the report with where it was retired."""
        self.retired.append((self.seq, self.phase, report.id, report))

    def finish(self) -> None:
        """End of capture: every connection still open, in id order."""
        self.seq, self.phase = END, PHASE_FINISH
        super().finish()

    def _fragment_report(self) -> None:
        """The merger reports the capture's incomplete fragment trains once, from every
        worker's count."""
        self.summary.fragments = self.ip.incomplete_trains()

    def _capped_report(self) -> None:
        """The merger notes the capped kinds, from the capture's totals."""

    def run_batch(self, buf: bytes, start: int = 1) -> None:
        """Feed one round's packed items."""
        unpack, size, packet = HDR.unpack_from, HDR.size, self.packet
        pos, n = start, len(buf)
        while pos < n:
            kind, seq, number, ts, link, iface, orig, offset, length = unpack(buf, pos)
            pos += size
            data = buf[pos:pos + length]
            pos += length
            if kind == K_RECORD:
                self.seq = seq
                packet(Record(number, ts, link, iface, data, orig, offset))
            elif kind == K_TICK:
                self.tick(seq, ts)
            else:
                self.seq = seq
                self.feed(SecretsBlock(link, data, offset))

    def run_pcap_batch(self, msg: bytes) -> None:
        """Feed one raw pcap round: a stretch of the file as it is, and the positions of
        this worker's records (and of the sweep ticks) in it; each record is numbered
        as the pcap reader numbers it."""
        linktype, mult, base, size = RAW_ROUND.unpack_from(msg, 1)
        head, packet = PCAP_HEAD.unpack_from, self.packet
        src, at = self.source(msg, 1 + RAW_ROUND.size, base, size)
        entries = array("Q")
        entries.frombytes(msg[1 + RAW_ROUND.size + (size if msg[:1] == b"C" else 0):])
        for entry in entries:
            off = (entry & 0xFFFFFFFF) + base + at
            sec, frac, caplen, orig = head(src, off)
            if entry & TICK:
                self.tick((entry >> 32) & 0x7FFFFFFF, sec * 1_000_000_000 + frac * mult)
                continue
            seq = entry >> 32
            self.seq = seq
            packet(Record(seq + 1, sec * 1_000_000_000 + frac * mult, linktype, 0,
                          src[off + 16:off + 16 + caplen], orig, off - at))

    def source(self, msg: bytes, start: int, base: int, size: int) -> tuple[bytes, int]:
        """Where a raw round's records are: in the message (kinds C, N: ``size`` bytes of
        the file from ``base``), or read here from the capture file with one pread
        (kinds D, M: no packet data through the pipe, and no map whose resident pages
        would grow with the file). Returns the bytes and the index in them of file
        offset 0."""
        if msg[:1] in (b"C", b"N"):
            return msg, start - base
        fd = self.__dict__.get("file_fd")
        if fd is None:
            fd = self.__dict__["file_fd"] = os.open(self.summary.name, os.O_RDONLY)
        return os.pread(fd, size, base), -base

    def take_round(self, final: bool = False) -> RoundResult:
        """This round's creations and retirements (and the summary at the end)."""
        out = RoundResult(self.created, self.retired,
                          self.summary.state() if final else None)
        self.created, self.retired = [], []
        return out


@dataclass
class WorkerConfig:
    """Everything a worker needs to build its analyzer (picklable for any start method
    and for Dask): the command's own decryption context, copied whole (so every option
    it carries reaches the workers), before any connection touched it."""

    name: str
    decryption: DecryptionContext | None = None
    handler_factory: HandlerFactory | None = None

    @classmethod
    def from_context(cls, name: str, decryption: DecryptionContext | None,
                     handler_factory: HandlerFactory | None) -> WorkerConfig:
        """The configuration for a fresh context (no plaintext sinks: those need every
        connection in one process)."""
        return cls(name, decryption, handler_factory)

    def analyzer(self) -> ShardAnalyzer:
        """A fresh shard analyzer with its own copy of the decryption context."""
        ctx = copy.deepcopy(self.decryption)
        analyzer = make_analyzer(self.name, lambda r: None,
                                 handler_factory=self.handler_factory, decryption=ctx,
                                 cls=ShardAnalyzer)
        assert isinstance(analyzer, ShardAnalyzer)
        analyzer.on_report = analyzer.collect
        return analyzer


def _serve(pipe: Pipe, config: WorkerConfig) -> None:
    """A worker process: rounds in, round results out, until the end marker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    try:
        analyzer = config.analyzer()
        while True:
            msg = pipe.recv_bytes()
            kind = msg[:1]
            if kind == b"R":
                analyzer.run_batch(msg)
            elif kind in (b"C", b"D"):
                analyzer.run_pcap_batch(msg)
            elif kind in (b"N", b"M"):
                from .rawng import run_pcapng_batch

                run_pcapng_batch(analyzer, msg)
            else:
                break
            pipe.send_bytes(pickle.dumps(analyzer.take_round(), pickle.HIGHEST_PROTOCOL))
        analyzer.finish()
        pipe.send_bytes(pickle.dumps(analyzer.take_round(final=True), pickle.HIGHEST_PROTOCOL))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the main process went away
    except BaseException as exc:  # noqa: BLE001 - carried to the main process
        try:
            err: BaseException | None = exc if isinstance(exc, CaptureError | KeyLogError) \
                else None
            pipe.send_bytes(pickle.dumps(WorkerFailure(err, traceback.format_exc())))
        except OSError:
            pass
    finally:
        pipe.close()


# ---------------------------------------------------------------------------- merging
def renumber(report: ConnectionReport, ids: array) -> None:
    """Give a worker's report the capture-wide ids (its own and the ones it names)."""
    report.id = ids[report.id]
    tc = report.tcpcrypt
    if tc is not None and tc.get("resumes") is not None:
        tc["resumes"] = ids[tc["resumes"]]
    if any(f.code in CONNECTION_REFERENCES for f in report.findings):
        report.findings = [
            replace(f, message=CONNECTION_REFERENCES[f.code].sub(
                lambda m: str(ids[int(m.group(1))]), f.message))
            if f.code in CONNECTION_REFERENCES else f for f in report.findings]


@dataclass
class ReaderState:
    """What the reader alone knows about the capture."""

    packets: int = 0
    tcp: int = 0
    """Records the analyzer counts as TCP packets (its sweep cadence)."""
    first_ts: int | None = None
    last_ts: int | None = None
    secrets: list[SecretsBlock] = field(default_factory=list)
    fatal: bool = False
    kept: list[tuple[int, int, Finding]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def problem(self, seq: int, item: ReadProblem) -> None:
        """A damaged record, as ``Analyzer.feed`` reports it."""
        finding = Finding(Severity.ERROR, "capture-damaged", item.message, item.offset,
                          item.packet)
        n = self.counts.get(finding.code, 0) + 1
        self.counts[finding.code] = n
        if n <= MAX_CAPTURE_FINDINGS_PER_KIND + 1:
            self.kept.append((seq, -1, finding))
        self.fatal |= item.fatal


class Merger:
    """Puts the shards' rounds together into the single-process result."""

    def __init__(self, name: str, shards: int,
                 on_report: Callable[[ConnectionReport], None] | None) -> None:
        self.name = name
        self.ids = [array("q") for _ in range(shards)]
        self.next_id = 0
        self.reports: list[ConnectionReport] = []
        self.on_report = on_report or self.reports.append
        self.states: list[dict | None] = [None] * shards

    def add_round(self, results: list[RoundResult]) -> None:
        """Number the round's new connections, emit its reports in order."""
        created = sorted((seq, shard, local) for shard, r in enumerate(results)
                         for local, seq in r.created)
        for _seq, shard, local in created:
            ids = self.ids[shard]
            if local != len(ids):
                raise RuntimeError(f"shard {shard}: connection {local} out of order")
            ids.append(self.next_id)
            self.next_id += 1
        retired = []
        for shard, r in enumerate(results):
            for seq, phase, _local, report in r.retired:
                renumber(report, self.ids[shard])
                retired.append((seq, phase, report.id, report))
            if r.summary is not None:
                self.states[shard] = r.summary
        retired.sort(key=lambda t: t[:3])
        for *_key, report in retired:
            self.on_report(report)

    def summary(self, reader: ReaderState) -> CaptureSummary:
        """The capture summary one process would have built."""
        s = CaptureSummary(self.name)
        s.packets, s.first_ts, s.last_ts = reader.packets, reader.first_ts, reader.last_ts
        s.secrets, s.fatal = reader.secrets, reader.fatal
        kept = list(reader.kept)
        counts = dict(reader.counts)
        for state in self.states:
            if state is None:
                continue
            s.tcp_packets += state["tcp_packets"]
            s.non_tcp += state["non_tcp"]
            s.connections += state["connections"]
            s.truncated_packets += state["truncated_packets"]
            s.linktypes |= state["linktypes"]
            kept += state["kept"]
            for code, n in state["counts"].items():
                counts[code] = counts.get(code, 0) + n
        kept.sort(key=lambda e: (e[0], e[1]))
        for _seq, _i, finding in kept:
            s.add(finding)
        s._counts.update(counts)  # the true totals (workers keep only the first few)
        # what Analyzer.finish adds last: incomplete fragment trains, then the cap's notes
        frag_counts: dict[int, int] = {}
        firsts = []
        for state in self.states:
            if state is not None:
                counts_of, first = state.get("fragments", ({}, None))
                for version, n in counts_of.items():
                    frag_counts[version] = frag_counts.get(version, 0) + n
                if first is not None:
                    firsts.append(first)
        finding = fragment_finding(frag_counts, min(firsts, default=None))
        if finding is not None:
            s.add(finding)
        s.findings.extend(capped_notes(s))
        return s

    def result(self, reader: ReaderState) -> AnalysisResult:
        """Summary and (when not streamed) the reports in id order."""
        self.reports.sort(key=lambda r: r.id)
        return AnalysisResult(self.summary(reader), self.reports)


# ---------------------------------------------------------------------------- driver
def _context() -> multiprocessing.context.BaseContext:
    """fork when this process is single-threaded (cheapest), else forkserver."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def is_regular_file(path: str) -> bool:
    """Sharding needs a file (a pipe is read by one process)."""
    try:
        return path != "-" and stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def analyze_sharded(path: str, jobs: int, *, handler_factory: HandlerFactory | None = None,
                    decryption: DecryptionContext | None = None,
                    on_report: Callable[[ConnectionReport], None] | None = None,
                    progress: Callable[[int], None] | None = None,
                    round_bytes: int = ROUND_BYTES) -> AnalysisResult:
    """``analyze_file`` on ``jobs`` worker processes; the same result, the same order.

    Raises CaptureError for unusable input (before any worker starts) and KeyLogError
    for a malformed key log embedded in the capture, as analyze_file does.
    """
    if decryption is not None and (decryption.sink is not None or decryption.frame_map):
        raise ValueError("plaintext sinks need one process: use analyze_file")
    config = WorkerConfig.from_context(path, decryption, handler_factory)
    stream = open_input(path)
    try:
        raw = _raw_pcap(stream)
        stream.seek(0)
        if raw:
            feeder = partial(_feed_raw, stream, path, raw)
        else:
            feeder = partial(_feed_items, read_capture(stream, path))
        return _drive(feeder, jobs, config, on_report, progress, round_bytes)
    finally:
        stream.close()


def _raw_pcap(stream: BinaryIO) -> str | None:
    """``pcap`` for a plain little-endian pcap (version 2, no FCS bits), ``pcapng`` for
    a little-endian pcapng: files the reader can walk raw; None for anything else."""
    from .rawng import is_le_pcapng

    head = stream.read(24)
    if is_le_pcapng(head):
        return "pcapng"
    if len(head) < 24:
        return None
    magic, major, _minor, _zone, _sig, _snaplen, network = struct.unpack("<IHHiIII", head)
    return "pcap" if magic in RAW_MAGICS and major == 2 and not network >> 28 else None


def _feed_items(items: Iterable[Record | SecretsBlock | ReadProblem], jobs: int,
                reader: ReaderState, send: Callable[[list[bytearray], bool], bool],
                progress: Callable[[int], None] | None, round_bytes: int) -> None:
    dispatch(items, jobs, reader, send, progress, round_bytes)


def _feed_raw(stream: BinaryIO, path: str, kind: str, jobs: int, reader: ReaderState,
              send: Callable[[list[bytearray], bool], bool],
              progress: Callable[[int], None] | None, round_bytes: int) -> None:
    """The raw walk; at anything unusual (a cut record, an impossible length) the rest
    is read by the capture reader, which says what is wrong exactly as one process
    would, from the record where the walk stopped."""
    router = Router(jobs)
    if kind == "pcapng":
        from .rawng import dispatch_pcapng

        stopped = dispatch_pcapng(stream, jobs, reader, send, progress, round_bytes, router,
                                  _fast_shard, from_file=True)
    else:
        stopped = dispatch_pcap(stream, jobs, reader, send, progress, round_bytes, router,
                                from_file=True)
    if stopped is None:
        return
    stream.seek(0)
    dispatch(read_capture(stream, path), jobs, reader, send, progress, round_bytes,
             router=router, skip=stopped)


def _drive(feeder: Callable[..., None], jobs: int, config: WorkerConfig,
           on_report: Callable[[ConnectionReport], None] | None,
           progress: Callable[[int], None] | None, round_bytes: int) -> AnalysisResult:
    ctx = _context()
    pipes: list[Pipe] = []
    procs = []
    for _ in range(jobs):
        ours, theirs = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_serve, args=(theirs, config), daemon=True)
        proc.start()
        theirs.close()
        pipes.append(ours)
        procs.append(proc)
    merger = Merger(config.name, jobs, on_report)
    failure: list[BaseException | WorkerFailure] = []

    def collect() -> None:
        try:
            while True:
                results = []
                for i, pipe in enumerate(pipes):
                    try:
                        got = pickle.loads(pipe.recv_bytes())
                    except (EOFError, OSError):
                        got = WorkerFailure(None, f"worker {i} (pid {procs[i].pid}) ended "
                                            f"unexpectedly (exit code {procs[i].exitcode})")
                    if isinstance(got, WorkerFailure):
                        failure.append(got)
                        return
                    results.append(got)
                merger.add_round(results)
                if results[0].summary is not None:
                    return
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            failure.append(exc)

    collector = threading.Thread(target=collect, name="shard-collector", daemon=True)
    collector.start()
    reader = ReaderState()

    def send(bufs: list[bytearray], last: bool) -> bool:
        if failure:
            return False
        for pipe, buf in zip(pipes, bufs, strict=True):
            pipe.send_bytes(buf)
            if last:
                pipe.send_bytes(b"E")
        return True

    try:
        feeder(jobs, reader, send, progress, round_bytes)
        collector.join()
    except (BrokenPipeError, ConnectionResetError):
        collector.join(timeout=5)
    finally:
        for pipe in pipes:
            pipe.close()
        for proc in procs:
            proc.join(timeout=0.5)
            if proc.is_alive():
                proc.terminate()
                proc.join()
    if failure:
        problem = failure[0]
        if isinstance(problem, WorkerFailure):
            if problem.error is not None:
                raise problem.error
            raise RuntimeError(f"{config.name}: a flow-shard worker failed:\n{problem.text}")
        raise problem
    return merger.result(reader)


def _fast_shard(cache: dict[bytes, int], key: bytes, jobs: int) -> int:
    shard = cache.get(key)
    if shard is None:
        if len(cache) > 1 << 16:
            cache.clear()
        shard = cache[key] = shard_key(key[:4], key[4:], jobs)
    return shard


def dispatch(items: Iterable[Record | SecretsBlock | ReadProblem], jobs: int,
             reader: ReaderState, send: Callable[[list[bytearray], bool], bool],
             progress: Callable[[int], None] | None = None,
             round_bytes: int = ROUND_BYTES, *, router: Router | None = None,
             skip: int = 0) -> None:
    """The reader's loop: route and pack every item, hand a round to ``send`` every
    ``round_bytes`` (``send`` returns False to stop early). Sweep ticks are placed where
    one process would sweep. ``skip``: items already handed on by the raw walk."""
    route = (router or Router(jobs)).route
    bufs = [bytearray(b"R") for _ in range(jobs)]
    pack = HDR.pack
    pending = records = 0
    cache: dict[bytes, int] = {}
    sweep_every = engine.SWEEP_EVERY  # read at run time: the analyzer's own cadence
    for seq, item in enumerate(items):
        if seq < skip:  # handed on by the raw walk already (packets, secrets blocks)
            if item.__class__ is not Record and not isinstance(item, SecretsBlock):
                raise RuntimeError(f"item {seq}: the raw walk and the reader disagree")
            continue
        if item.__class__ is Record:
            data = item.data  # type: ignore[union-attr]
            # the analyzer's fast path, inline (untagged Ethernet, IPv4, TCP, whole)
            if (item.linktype == 1 and len(data) >= 54 and data[12] == 8  # type: ignore[union-attr]
                    and data[13] == 0 and data[14] == 0x45 and data[23] == 6
                    and not data[20] & 0x3F and not data[21]
                    and 14 + ((data[16] << 8) | data[17]) <= len(data)
                    and (data[46] >> 4) >= 5
                    and 34 + ((data[46] >> 4) << 2) <= 14 + ((data[16] << 8) | data[17])):
                shard, counted = _fast_shard(cache, data[26:34], jobs), True
            else:
                shard, counted = route(item)  # type: ignore[arg-type]
            buf = bufs[shard]
            buf += pack(K_RECORD, seq, item.number, item.ts_ns, item.linktype,  # type: ignore[union-attr]
                        item.interface, item.orig_len, item.offset, len(data))  # type: ignore[union-attr]
            buf += data
            reader.packets += 1
            if reader.first_ts is None:
                reader.first_ts = item.ts_ns  # type: ignore[union-attr]
            reader.last_ts = item.ts_ns  # type: ignore[union-attr]
            pending += len(data) + HDR.size
            records += 1
            if counted:
                reader.tcp += 1
                if reader.tcp % sweep_every == 0:
                    tick = pack(K_TICK, seq, 0, item.ts_ns, 0, 0, 0, 0, 0)  # type: ignore[union-attr]
                    for b in bufs:
                        b += tick
        elif isinstance(item, SecretsBlock):
            reader.secrets.append(item)
            head = pack(K_SECRETS, seq, 0, 0, item.secrets_type, 0, 0, item.offset,
                        len(item.data))
            for b in bufs:
                b += head
                b += item.data
        else:
            reader.problem(seq, item)  # type: ignore[arg-type]
        if progress is not None and seq & 0x3FF == 0:
            progress(getattr(item, "offset", 0))
        if pending >= round_bytes or records >= ROUND_RECORDS:
            if not send(bufs, False):
                return
            bufs = [bytearray(b"R") for _ in range(jobs)]
            pending = records = 0
    send(bufs, True)


def dispatch_pcap(stream: BinaryIO, jobs: int, reader: ReaderState,
                  send: Callable[[list[bytearray], bool], bool],
                  progress: Callable[[int], None] | None, round_bytes: int,
                  router: Router, from_file: bool = False) -> int | None:
    """The raw walk of a little-endian pcap. A round is one stretch of the file, sent
    as it is to every worker with the positions of that worker's records (one integer
    per record: no record object, no copy per packet here); records off the fast path
    are routed with a record object and the same ``Router``. Returns None at a clean
    end, else the position of the first record it could not take whole (the caller
    reads on from there with the capture reader)."""
    head = stream.read(24)
    magic, _major, _minor, _zone, _sig, snaplen, network = struct.unpack("<IHHiIII", head)
    mult = RAW_MAGICS[magic]
    linktype = network & 0x0FFFFFFF
    limit = MAX_RECORD if not snaplen else min(MAX_RECORD, max(snaplen, 262144) * 4)
    unpack, route, fast = PCAP_HEAD.unpack_from, router.route, FAST_FIELDS.unpack_from
    sweep_every = engine.SWEEP_EVERY
    tcp = reader.tcp
    next_tick = (tcp // sweep_every + 1) * sweep_every
    cache: dict[bytes, int] = {}
    ethernet = linktype == 1
    step = max(round_bytes, 1 << 16)
    buf, p, base = b"", 0, 24  # base: file offset of buf[0]
    seq = 0
    first = lsec = lfrac = -1
    entries = [array("Q") for _ in range(jobs)]
    start = 0  # buf index where the round began
    round_seq = 0  # the first record of the round

    def flush(final: bool) -> bool:
        # from_file: the workers read the stretch from the file, only positions travel
        bufs = []
        for mine in entries:
            out = bytearray(b"D" if from_file else b"C")
            out += RAW_ROUND.pack(linktype, mult, base + start, p - start)
            if not from_file:
                out += buf[start:p]
            out += mine.tobytes()
            bufs.append(out)
        return send(bufs, final)

    def totals() -> None:
        reader.packets += seq
        reader.tcp = tcp
        if seq:
            if reader.first_ts is None:
                reader.first_ts = first
            reader.last_ts = lsec * 1_000_000_000 + lfrac * mult

    while True:
        if len(buf) - p >= 16:
            sec, frac, caplen, orig = unpack(buf, p)
            d = p + 16
            if d + caplen <= len(buf) and caplen <= limit:
                fast_path = False
                if ethernet and caplen >= 54:
                    ethertype, vihl, total, frag, proto, off = fast(buf, d + 12)
                    fast_path = (ethertype == 0x0800 and vihl == 0x45 and proto == 6
                                 and not frag & 0x3FFF and 14 + total <= caplen
                                 and off >= 0x50 and 34 + ((off >> 4) << 2) <= 14 + total)
                if fast_path:
                    key = buf[d + 26:d + 34]
                    shard = cache.get(key)
                    if shard is None:
                        shard = _fast_shard(cache, key, jobs)
                    counted = True
                else:
                    shard, counted = route(Record(seq + 1, sec * 1_000_000_000 + frac * mult,
                                                  linktype, 0, buf[d:d + caplen], orig,
                                                  base + p))
                entries[shard].append(seq << 32 | (p - start))
                if counted:
                    tcp += 1
                    if tcp == next_tick:
                        next_tick += sweep_every
                        tick = TICK | seq << 32 | (p - start)
                        for mine in entries:
                            mine.append(tick)
                if first < 0:
                    first = sec * 1_000_000_000 + frac * mult
                lsec, lfrac = sec, frac
                p = d + caplen
                seq += 1
                if seq - round_seq >= ROUND_RECORDS:  # a full round: hand it on here
                    if not flush(False):
                        return None
                    entries = [array("Q") for _ in range(jobs)]
                    start, round_seq = p, seq
                continue
            if caplen > limit:
                break  # the reader reports the impossible length
            need = 16 + caplen
        else:
            need = 16
        # the next record is not whole in the buffer: end the round, read on
        if not flush(False):
            return None
        entries = [array("Q") for _ in range(jobs)]
        round_seq = seq
        if progress is not None:
            progress(base + p)
        more = stream.read(max(step, need))
        base += p
        buf, p, start = buf[p:] + more, 0, 0
        if not more:
            if buf:
                break  # a record cut short: the reader reports it
            totals()
            send([bytearray(b"C") + RAW_ROUND.pack(linktype, mult, base, 0)
                  for _ in range(jobs)], True)  # the last round: empty
            return None
        while len(buf) < need:  # a record longer than one read
            more = stream.read(need - len(buf))
            if not more:
                break
            buf += more
        if len(buf) < need:
            break
    # stopped at a record it cannot take whole: hand on what was walked
    totals()
    flush(False)
    return seq


def reader_rate(path: str, jobs: int = 2) -> tuple[int, float]:
    """The reader alone, as flow sharding runs it (the raw walk for pcap and pcapng,
    else read, route, pack; nothing sent): (records, CPU seconds). Its rate is where
    flow sharding saturates, however many workers there are."""
    import time

    stream = open_input(path)
    reader = ReaderState()
    try:
        kind = _raw_pcap(stream)
        stream.seek(0)
        start = time.process_time()  # CPU time: the rate a core gives, whatever the load
        if kind:
            _feed_raw(stream, path, kind, jobs, reader, lambda bufs, last: True, None,
                      ROUND_BYTES)
        else:
            dispatch(read_capture(stream, path), jobs, reader, lambda bufs, last: True)
        return reader.packets, time.process_time() - start
    finally:
        stream.close()
