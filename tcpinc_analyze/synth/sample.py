"""Turn planned connections into a capture file, a key log and an expected-results file.

The expected results are computed from what the generator knows (what each sender
sent, what the capture really holds after impairments and snaplen, which keys the key
log gives), never from the analyzer, so tests that compare the two are meaningful.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..keylog import KeyLogWriter
from ..wire import DSB_SECRETS_TYPE_TCPCRYPT
from .capture_writer import PcapngWriter, PcapWriter
from .connection import (
    KEYS_MASTER,
    KEYS_NONE,
    KEYS_PRIVATE_A,
    KEYS_PRIVATE_B,
    KEYS_SESSION_SECRET,
    KEYS_TRAFFIC,
    KEYS_WRONG,
    BuiltConnection,
    ConnectionPlan,
    FrameRecord,
    build_connection,
    frame_sha256,
)
from .packets import LinkParams, frame

EXPECTED_SCHEMA = 1


@dataclass
class CaptureSpec:
    """File format and link layers of a sample."""

    format: str = "pcap"
    interfaces: Sequence[LinkParams] = (LinkParams(),)
    snaplen: int = 262_144
    nanosecond: bool = False
    big_endian: bool = False
    tsresol: Sequence[int] = ()
    """pcapng: per-interface timestamp resolution exponent (default 6, microseconds)."""
    embed_keylog: bool = False
    """pcapng: put the key log in a Decryption Secrets Block before the first packet."""


@dataclass
class Scenario:
    """A named, seeded recipe for one sample."""

    name: str
    summary: str
    plans: Callable[[random.Random], list[ConnectionPlan]]
    capture: CaptureSpec = field(default_factory=CaptureSpec)
    seed: int = 1
    notes: str = ""
    """What the analyzer must report, in words, for the catalog README."""

    @property
    def extension(self) -> str:
        """File extension of the capture."""
        return "pcapng" if self.capture.format == "pcapng" else "pcap"


@dataclass
class GeneratedSample:
    """The three files of a sample, as bytes/text, plus the built connections."""

    capture: bytes
    keylog: str
    expected: dict
    connections: list[BuiltConnection]

    def expected_json(self) -> str:
        """Stable serialisation, so regeneration is byte-identical."""
        return json.dumps(self.expected, indent=1, sort_keys=True) + "\n"


def _keys_from(conn: BuiltConnection, by_plan: dict[int, str | None]) -> str | None:
    plan = conn.plan
    if conn.truth["tcpcrypt"] is None:
        return None
    if plan.keylog in (KEYS_SESSION_SECRET, KEYS_WRONG):
        return "session_secret"
    if plan.keylog in (KEYS_PRIVATE_A, KEYS_PRIVATE_B):
        return "private_key"
    if plan.keylog == KEYS_TRAFFIC:
        return "traffic_keys"
    if plan.keylog == KEYS_MASTER:
        return "master_key"
    if (plan.keylog == KEYS_NONE and conn.truth["tcpcrypt"]["resumed"]
            and plan.resume_parent is not None
            and by_plan.get(plan.resume_parent) in ("session_secret", "private_key",
                                                     "resumption")):
        return "resumption"
    return None


def _covered(intervals: list[tuple[int, int]], lo: int, hi: int) -> bool:
    pos = lo
    for a, b in sorted(intervals):
        if a > pos:
            break
        pos = max(pos, b)
        if pos >= hi:
            return True
    return pos >= hi


def visibly_lost(records: Sequence[FrameRecord], coverage: list[tuple[int, int]]) -> int:
    """Frames not wholly captured, as many as a capture can show. A frame start is known
    after the Init message, after a whole frame, and after a frame whose header (with its
    length) is captured; a reader that meets missing bytes at a known start counts one
    lost frame and must then search for the next whole frame, so frames between a lost
    boundary and that whole frame are invisible (their number is not in the capture)."""
    lost = 0
    known = True
    for r in records:
        if _covered(coverage, r.stream_offset, r.stream_offset + r.size):
            known = True  # read in order, or found by the search after a gap
        elif not known:
            continue
        elif _covered(coverage, r.stream_offset, r.stream_offset + 3):
            lost += 1  # its length says where the next frame starts
        else:
            lost += 1
            known = False
    return lost


RESYNC_CHAIN = 3
"""Frame headers after a candidate that a reader without keys needs to trust it."""


def delimited_without_keys(records: Sequence[FrameRecord],
                           coverage: list[tuple[int, int]]) -> tuple[int, int]:
    """(frames, rekey frames) a reader without keys can show. As ``visibly_lost``, except
    where a frame's start is lost: without keys the next boundary is found by its header
    and the headers of the next RESYNC_CHAIN frames (or the stream's end) all being in
    the capture in one contiguous run; the frames before it are not seen."""
    frames = rekeys = 0
    known = True
    for i, r in enumerate(records):
        if not known:
            chain = records[i:i + RESYNC_CHAIN + 1]
            end = (chain[-1].stream_offset + 3 if len(chain) == RESYNC_CHAIN + 1
                   else chain[-1].stream_offset + chain[-1].size)
            if not _covered(coverage, r.stream_offset, end):
                continue
            known = True
        if _covered(coverage, r.stream_offset, r.stream_offset + r.size):
            frames += 1
            rekeys += r.rekey
        else:
            frames += 1
            known = _covered(coverage, r.stream_offset, r.stream_offset + 3)
    return frames, rekeys


def coverage_holes(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(offset, size) of each stream range between captured bytes that no captured byte
    covers: what a reader reports as a gap (cut packets leave such holes)."""
    holes: list[tuple[int, int]] = []
    end: int | None = None
    for a, b in sorted(intervals):
        if end is not None and a > end:
            holes.append((end, a - end))
        end = b if end is None else max(end, b)
    return holes


def frame_packet(pieces: Sequence[tuple[int, int, int]], record: FrameRecord) -> int | None:
    """The packet a reader names for a frame: the first in capture order carrying its
    last byte (a retransmission's first copy counts)."""
    last = record.stream_offset + record.size - 1
    return min((n for n, lo, hi in pieces if lo <= last < hi), default=None)


FAILURE_REPORTS = 5
"""Frame failures the analyzer lists per direction (the rest are counted)."""


def generate(scenario: Scenario, seed: int | None = None) -> GeneratedSample:
    """Build a sample deterministically from its scenario and seed."""
    seed = scenario.seed if seed is None else seed
    rng = random.Random(seed)
    plans = scenario.plans(rng)
    built: list[BuiltConnection] = []
    for plan in plans:
        built.append(build_connection(plan, rng, built))

    cap = scenario.capture
    # Merge into capture order; ties keep connection order, then generation order.
    merged = sorted(((p.ts_ns, c, k, p) for c, conn in enumerate(built)
                     for k, p in enumerate(conn.packets)), key=lambda t: t[:3])
    frames_out: list[tuple[int, int, bytes]] = []
    numbers: dict[tuple[int, int], int] = {}
    first_packet: dict[int, int] = {}
    coverage: dict[tuple[int, str], list[tuple[int, int]]] = {}
    pieces: dict[tuple[int, str], list[tuple[int, int, int]]] = {}
    truncated: dict[int, list[int]] = {}
    for number, (ts, c, k, p) in enumerate(merged, 1):
        iface = built[c].plan.iface
        data = frame(p.seg, cap.interfaces[iface])
        frames_out.append((iface, ts, data))
        numbers[(c, k)] = number
        first_packet.setdefault(c, number)
        if len(data) > cap.snaplen:
            truncated.setdefault(c, []).append(number)
        if p.seg.payload and p.stream_offset is not None:
            header = len(data) - len(p.seg.payload)
            captured = max(0, min(len(p.seg.payload), cap.snaplen - header))
            key = (c, "ab" if p.from_a == built[c].a_first else "ba")
            coverage.setdefault(key, []).append((p.stream_offset,
                                                 p.stream_offset + captured))
            pieces.setdefault(key, []).append((number, p.stream_offset,
                                               p.stream_offset + captured))

    order = sorted(range(len(built)), key=lambda c: first_packet.get(c, 1 << 60))
    conn_id = {c: i for i, c in enumerate(order)}

    keylog_io = io.StringIO()
    writer = KeyLogWriter(keylog_io)
    writer.comment(f"tcpinc-analyze synth {scenario.name} --seed {seed}")
    for conn in built:
        for label, fields in conn.keylog:
            writer.entry(label, *fields)
    keylog_text = keylog_io.getvalue()

    by_plan: dict[int, str | None] = {}
    connections_truth = []
    for c in order:
        conn = built[c]
        truth = json.loads(json.dumps(conn.truth))
        tcpcrypt_truth = truth["tcpcrypt"]
        if tcpcrypt_truth is not None:
            # frames the capture shows: whole ones and the visibly lost ones; rekey frames
            # among the whole ones; and where a frame start is lost, what a reader without
            # keys can still delimit
            keyless: dict[str, dict[str, int]] = {"frames": {}, "rekeys": {}}
            for d in ("ab", "ba"):
                records = conn.frames[d]
                cov = coverage.get((c, d), [])
                whole = [r for r in records
                         if _covered(cov, r.stream_offset, r.stream_offset + r.size)]
                tcpcrypt_truth["rekeys"][d] = sum(r.rekey for r in whole)
                tcpcrypt_truth["frames"][d] = len(whole) + visibly_lost(records, cov)
                keyless["frames"][d], keyless["rekeys"][d] = delimited_without_keys(records,
                                                                                   cov)
            if (keyless["frames"] != tcpcrypt_truth["frames"]
                    or keyless["rekeys"] != tcpcrypt_truth["rekeys"]):
                tcpcrypt_truth["without_keys"] = keyless
        truth["id"] = conn_id[c]
        keys_from = _keys_from(conn, by_plan)
        by_plan[c] = keys_from
        findings = []
        for k, p in enumerate(conn.packets):
            n = numbers[(c, k)]
            if "conflict" in p.tags:
                findings.append({"code": "retransmission-conflict", "packet": n,
                                 "conformance": conn.truth["tcpcrypt"] is not None})
            elif "retransmission" in p.tags:
                findings.append({"code": "tcp-retransmission", "packet": n})
            if "reordered" in p.tags:
                findings.append({"code": "tcp-out-of-order", "packet": n})
            if "eno-malformed" in p.tags:
                findings.append({"code": "eno-malformed", "packet": n})
        for n in truncated.get(c, []):
            findings.append({"code": "packet-truncated", "packet": n})
        if c in truncated:
            # payload cut by the snap length leaves holes in the stream the reader sees
            for d in ("ab", "ba"):
                for offset, size in coverage_holes(coverage.get((c, d), [])):
                    findings.append({"code": "tcp-gap", "direction": d, "offset": offset,
                                     "size": size})
        if conn.plan.drop_handshake:
            findings.append({"code": "handshake-not-captured", "packet": first_packet[c]})
        init1 = [numbers[(c, k)] for k, p in enumerate(conn.packets)
                 if p.seg.payload and p.stream_offset == 0 and p.from_a == conn.a_first]
        if conn.plan.ack_stripped and init1:
            # A sends Init1 believing ENO succeeded; B fell back (RFC 8547 §4.3)
            findings.append({"code": "tcpcrypt-after-fallback", "packet": min(init1)})
        if truth["eno"]["reason"] == "synack-without-eno" and not conn.plan.simultaneous:
            # ENO offered, none in the SYN-ACK: a downgrade (RFC 8547 §6, §9)
            synack = next(numbers[(c, k)] for k, p in enumerate(conn.packets)
                          if p.seg.flags & 0x12 == 0x12)
            findings.append({"code": "eno-downgrade", "packet": synack})
        findings += conn.findings
        tc = truth["tcpcrypt"]
        if tc is not None:
            good = keys_from is not None and conn.plan.keylog != KEYS_WRONG
            tc["keys_from"] = keys_from
            with_sid = keys_from not in ("traffic_keys", "master_key", None)
            tc["session_id"] = (conn.keys.session_id.hex()
                                if good and with_sid and conn.keys else None)
            tc["resumes"] = (conn_id[conn.plan.resume_parent]
                             if tc["resumed"] and conn.plan.resume_parent is not None else None)
            if tc["resumes"] is not None:
                origin = conn.plan.resume_parent
                while built[origin].plan.resume_parent is not None and (
                        built[origin].truth["tcpcrypt"] or {}).get("resumed"):
                    origin = built[origin].plan.resume_parent
                tc["resumes"] = conn_id[origin]
            decrypted = None
            if keys_from is not None:
                decrypted = {}
                gen0_only = keys_from == "traffic_keys"
                for d in ("ab", "ba"):
                    records: list[FrameRecord] = conn.frames[d]
                    complete = [r for r in records
                                if _covered(coverage.get((c, d), []), r.stream_offset,
                                            r.stream_offset + r.size)]
                    usable = [r for r in complete if not gen0_only or r.generation == 0]
                    ok = [r for r in usable if r.intact] if good else []
                    failing = [r for r in usable if r not in ok]
                    for r in ok:
                        if r.urgent:
                            findings.append({"code": "tcpcrypt-urgent", "packet": frame_packet(
                                pieces.get((c, d), []), r)})
                    beyond = [r for r in complete if r not in usable]
                    if beyond:
                        # traffic keys for generation 0 only: later frames are named once
                        findings.append({"code": "tcpcrypt-no-key-for-frame",
                                         "packet": frame_packet(pieces.get((c, d), []),
                                                                beyond[0])})
                    for r in failing[:FAILURE_REPORTS]:
                        # a damaged frame breaks RFC 8548 §3.6; a wrong key blames nobody
                        findings.append({"code": "frame-tag-failed",
                                         "packet": frame_packet(pieces.get((c, d), []), r),
                                         "conformance": good})
                    decrypted[d] = {"ok": len(ok), "failed": len(usable) - len(ok),
                                    "undecryptable": len(complete) - len(usable),
                                    "lost": visibly_lost(records, coverage.get((c, d), [])),
                                    "sha256": frame_sha256(ok)}
                if not good:
                    findings.append({"code": "tcpcrypt-wrong-key"})
            if conn.keys is None:
                tc["keys_from"] = tc["session_id"] = decrypted = None
            if tc["keys_from"] is None and any(other.keylog for other in built):
                # the sample's key log has entries, none of them this connection's
                findings.append({"code": "tcpcrypt-no-keys"})
            tc["decrypted"] = decrypted
            if not decrypted or not any(decrypted[d]["ok"] for d in ("ab", "ba")):
                tc["nonce_offset_base"] = None
            if not conn.plan.fin_frames and decrypted and good:
                # each direction that decrypts ends without FINp (and without a TCP FIN)
                last_packet = max(numbers[(c, k)] for k in range(len(conn.packets)))
                for d in ("ab", "ba"):
                    if decrypted[d]["ok"]:
                        findings.append({"code": "tcpcrypt-no-fin-frame",
                                         "packet": last_packet})
        truth["findings"] = findings
        connections_truth.append(truth)

    out = io.BytesIO()
    if cap.format == "pcapng":
        png = PcapngWriter(out)
        for i, link in enumerate(cap.interfaces):
            res = cap.tsresol[i] if i < len(cap.tsresol) else 6
            png.add_interface(link.linktype, snaplen=cap.snaplen, name=f"synth{i}", tsresol=res)
        if cap.embed_keylog:
            png.write_secrets(DSB_SECRETS_TYPE_TCPCRYPT, keylog_text.encode())
        for iface, ts, data in frames_out:
            png.write(iface, ts, data)
    else:
        if len(cap.interfaces) != 1:
            raise ValueError("a pcap file has exactly one link type")
        pcap = PcapWriter(out, cap.interfaces[0].linktype, snaplen=cap.snaplen,
                          nanosecond=cap.nanosecond, big_endian=cap.big_endian)
        for _iface, ts, data in frames_out:
            pcap.write(ts, data)
    expected = {
        "schema": EXPECTED_SCHEMA,
        "sample": scenario.name,
        "origin": "synthetic",
        "command": ["tcpinc-analyze", "synth", scenario.name, "--seed", str(seed)],
        "seed": seed,
        "summary": scenario.summary,
        "capture": {
            "format": cap.format,
            "packets": len(frames_out),
            "linktypes": [int(link.linktype) for link in cap.interfaces],
            "snaplen": cap.snaplen,
            "keylog_embedded": cap.embed_keylog,
        },
        "connections": connections_truth,
    }
    return GeneratedSample(out.getvalue(), keylog_text, expected, built)
