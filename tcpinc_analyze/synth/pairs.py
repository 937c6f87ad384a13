"""Synthetic capture pairs: the same connections seen on both sides of a middlebox.

A pair is two captures of the same traffic, FIRST taken near host A and SECOND near
host B, with a middlebox between them: NAT (addresses and ports, many connections
through one address with reused ports), MSS clamping, an ENO option stripper (either
direction), a sequence-number shifter, or a terminating proxy that re-segments and
sends its own options. The endpoints behave as the RFCs say given what they received
(A falls back when ENO was stripped from the SYN-ACK, B answers without ENO when it
was stripped from the SYN), each packet is shown as it was before the middlebox at the
upstream capture point and after it at the downstream one, and SECOND's clock is off
by a fixed offset with a one-way delay between the points.

The expected comparison is written from what the generator did (which connection is
which, what it changed), never from ``compare``, so tests comparing the two mean
something. ``write_pairs`` writes them under ``samples/pairs/``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..keylog import KeyLogWriter
from ..tcp.options import walk_options
from ..wire import AEAD_CHACHA20_POLY1305, TEP_P256, TEP_X25519, EnoStatus, FallbackReason
from .capture_writer import PcapWriter
from .connection import KEYS_NONE, BuiltConnection, ConnectionPlan, build_connection
from .packets import LinkParams, TcpSegment, frame
from .scenarios import BASE_NS, SECOND, answer, http_messages, offer, pair, tcpcrypt_plan
from .tcpsim import SimPacket

SEQ_MOD = 1 << 32
CLOCK_OFFSET_NS = 3_250_000_000 + 417_000
"""SECOND's clock minus FIRST's: capture hosts rarely agree."""
DELAY_NS = 400_000
"""One-way delay between the two capture points."""
PAIR_SCHEMA = 1


@dataclass
class PairConn:
    """One connection as each capture point saw it, and what compare must say."""

    first: list[SimPacket]
    second: list[SimPacket]
    keylog: list[tuple[str, tuple[bytes, ...]]]
    expect: dict
    """cause, eno outcomes, option changes (direction, segment, kind, change), translated,
    seq_shift, resegmented, payload_changed; ids and endpoints are added when written."""


@dataclass
class PairScenario:
    """A named, seeded recipe for one pair."""

    name: str
    summary: str
    build: Callable[[random.Random], list[PairConn]]
    seed: int
    notes: str = ""
    window: tuple[float, float] | None = None
    """SECOND keeps only this fraction of the traffic's time span (partial overlap)."""


# ------------------------------------------------------------------------ transforms


def _options_map(options: bytes, kind: int, fn: Callable[[bytes], bytes]) -> bytes:
    """Options with each option of ``kind`` (whole bytes) replaced by ``fn(whole)``."""
    out = bytearray(options)
    for k, pos, data in walk_options(options)[0]:
        if k == kind:
            whole = options[pos:pos + 2 + len(data)]
            new = fn(whole)
            assert len(new) == len(whole)
            out[pos:pos + len(whole)] = new
    return bytes(out)


def strip_kind(seg: TcpSegment, kind: int) -> TcpSegment:
    """The segment with every option of ``kind`` overwritten by NOPs (as TCPOPTSTRIP
    and nftables' ``reset tcp option`` do)."""
    return replace(seg, options=_options_map(seg.options, kind, lambda w: b"\x01" * len(w)))


def set_mss(seg: TcpSegment, mss: int) -> TcpSegment:
    """The segment with its MSS option set to ``mss``."""
    return replace(seg, options=_options_map(seg.options, 2,
                                             lambda w: w[:2] + mss.to_bytes(2, "big")))


def _expect(cause: str, eno: tuple, changes: list[tuple] = (), *, translated: tuple = (False,
            False), shift: tuple | None = (0, 0), reseg: tuple | None = (False, False),
            payload: tuple = (False, False), exact: bool = True) -> dict:
    return {"in": "both", "cause": cause,
            "eno": {"first": eno[0], "reason_first": eno[1], "second": eno[2],
                    "reason_second": eno[3]},
            "option_changes": sorted([list(c) for c in changes]),
            "option_changes_exact": exact,
            "translated": {"addresses": translated[0], "ports": translated[1]},
            "seq_shift": None if shift is None else {"ab": shift[0], "ba": shift[1]},
            "resegmented": None if reseg is None else {"ab": reseg[0], "ba": reseg[1]},
            "payload_changed": {"ab": payload[0], "ba": payload[1]}}


NEG = ("negotiated", None)
ABSENT = ("absent", "absent")


def _pass(built: BuiltConnection, mangle: Callable[[SimPacket], TcpSegment] | None = None,
          *, upstream_view: Callable[[SimPacket], TcpSegment] | None = None
          ) -> tuple[list[SimPacket], list[SimPacket]]:
    """FIRST and SECOND views of one simulated connection. ``mangle`` is what the
    middlebox does to a packet in transit (applied to A's packets on the way to SECOND;
    B's packets are shown as B sent them in SECOND and mangled in FIRST);
    ``upstream_view`` overrides how a B packet looked before the middlebox when the
    simulation holds it as A received it."""
    first, second = [], []
    for p in built.packets:
        if p.from_a:
            first.append(p)
            seg = mangle(p) if mangle else p.seg
            second.append(replace(p, seg=seg, ts_ns=p.ts_ns + DELAY_NS))
        else:
            sent = upstream_view(p) if upstream_view else p.seg
            got = p.seg if upstream_view else (mangle(p) if mangle else p.seg)
            first.append(replace(p, seg=got))
            second.append(replace(p, seg=sent, ts_ns=p.ts_ns - DELAY_NS))
    return first, second


# ------------------------------------------------------------------------- scenarios


def _plain(rng: random.Random, start: int, b_ip: str = "10.0.0.2", **kw: object
           ) -> ConnectionPlan:
    a, b = pair(rng, b_ip=b_ip)
    plan = ConnectionPlan(a=a, b=b, start_ns=start, messages=http_messages(rng, b.ip, 4000),
                          expect_status=EnoStatus.ABSENT, expect_reason=FallbackReason.ABSENT,
                          keylog=KEYS_NONE)
    for k, v in kw.items():
        setattr(plan, k, v)
    return plan


def _nat_one(rng: random.Random, plan: ConnectionPlan, nat_ip: str, nat_port: int,
             expect_cause: str, eno: tuple) -> PairConn:
    built = build_connection(plan, rng)
    a = (plan.a.ip, plan.a.port)

    def mangle(p: SimPacket) -> TcpSegment:
        return replace(p.seg, src=nat_ip, sport=nat_port)

    first, second = [], []
    for p in built.packets:
        first.append(p)
        if p.from_a:
            second.append(replace(p, seg=replace(p.seg, src=nat_ip, sport=nat_port),
                                  ts_ns=p.ts_ns + DELAY_NS))
        else:
            second.append(replace(p, seg=replace(p.seg, dst=nat_ip, dport=nat_port),
                                  ts_ns=p.ts_ns - DELAY_NS))
    del mangle, a
    return PairConn(first, second, built.keylog,
                    _expect(expect_cause, eno, translated=(plan.a.ip != nat_ip,
                                                           plan.a.port != nat_port)))


def _nat(rng: random.Random, count: int = 6, *, timestamps: bool = True,
         seq_shift: bool = False) -> list[PairConn]:
    """Clients on a private network behind one NAT address with a small port pool that
    is reused as soon as a mapping has ended."""
    out = []
    pool: dict[int, int] = {}  # port -> when its last connection ended (ns)
    nat_ip = "198.51.100.7"
    for n in range(count):
        start = BASE_NS + n * SECOND // 10 + rng.randrange(SECOND // 20)
        client_ip = f"10.9.{n // 200}.{n % 200 + 1}"
        if n % 3 == 2:
            plan = _plain(rng, start, b_ip="203.0.113.80")
            cause, eno = "not-negotiated", (*ABSENT, *ABSENT)
        else:
            plan = tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, start_ns=start,
                                 size=rng.randrange(1500, 4000), a_ip="10.0.0.1",
                                 b_ip="203.0.113.80")
            cause, eno = "negotiated", (*NEG, *NEG)
        plan.a.ip = client_ip
        plan.a.timestamps = plan.b.timestamps = timestamps
        built_probe_end = start + 2 * SECOND
        port = next((p for p, end in sorted(pool.items()) if end < start), None)
        if port is None:
            port = 40000 + len(pool)
        pool[port] = built_probe_end
        pc = _nat_one(rng, plan, nat_ip, port, cause, eno)
        pool[port] = max(p.ts_ns for p in pc.second) + SECOND // 100
        if seq_shift:
            k_ab, k_ba = rng.getrandbits(32), rng.getrandbits(32)
            pc.second = [_shift(p, k_ab, k_ba) for p in pc.second]
            pc.expect["seq_shift"] = {"ab": k_ab, "ba": k_ba}
        out.append(pc)
    return out


def _shift(p: SimPacket, k_ab: int, k_ba: int) -> SimPacket:
    own, other = (k_ab, k_ba) if p.from_a else (k_ba, k_ab)
    seg = p.seg
    return replace(p, seg=replace(seg, seq=(seg.seq + own) % SEQ_MOD,
                                  ack=(seg.ack + other) % SEQ_MOD if seg.flags & 0x10 else 0))


def _seq_shift(rng: random.Random) -> list[PairConn]:
    """An ISN randomiser in front of A: A's sequence space is shifted in transit (and
    the acknowledgements that answer it shifted back)."""
    out = []
    for n in range(3):
        start = BASE_NS + n * SECOND
        plan = tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, start_ns=start,
                             size=5000)
        built = build_connection(plan, rng)
        k = rng.getrandbits(32)
        first, second = _pass(built)
        second = [_shift(p, k, 0) for p in second]
        out.append(PairConn(first, second, built.keylog,
                            _expect("negotiated", (*NEG, *NEG), shift=(k, 0))))
    return out


def _mss_clamp(rng: random.Random) -> list[PairConn]:
    """MSS clamped to 1200 both ways: each end segments by the clamped value it saw."""
    out = []
    for n in range(2):
        plan = tcpcrypt_plan(rng, TEP_P256, AEAD_CHACHA20_POLY1305, start_ns=BASE_NS + n *
                             SECOND, size=9000)
        plan.a.mss = plan.b.mss = 1200
        built = build_connection(plan, rng)
        first, second = [], []
        for p in built.packets:
            syn = p.seg.flags & 0x02
            if p.from_a:
                first.append(replace(p, seg=set_mss(p.seg, 1460)) if syn else p)
                second.append(replace(p, ts_ns=p.ts_ns + DELAY_NS))
            else:
                first.append(p)
                second.append(replace(p, seg=set_mss(p.seg, 1460) if syn else p.seg,
                                      ts_ns=p.ts_ns - DELAY_NS))
        out.append(PairConn(first, second, built.keylog, _expect(
            "negotiated", (*NEG, *NEG), [("ab", "syn", 2, "modified"),
                                         ("ba", "syn-ack", 2, "modified")])))
    return out


def _strip_synack(rng: random.Random) -> list[PairConn]:
    """ENO removed from B's SYN-ACKs (kind 69 overwritten with NOPs, B->A only), and a
    connection without ENO that the stripper leaves alone."""
    out = []
    for n in range(2):
        plan = tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305,
                             start_ns=BASE_NS + n * SECOND, size=3000,
                             a_teps=(TEP_X25519, TEP_P256), synack_stripped=True,
                             expect_status=EnoStatus.FALLBACK,
                             expect_reason=FallbackReason.SYNACK_WITHOUT_ENO, keylog=KEYS_NONE)
        plan.expect_tep = None
        built = build_connection(plan, rng)
        raw = plan.eno_b.encode() if plan.eno_b else b""

        def sent_view(p: SimPacket, raw: bytes = raw) -> TcpSegment:
            if p.seg.flags & 0x02:
                opts = p.seg.options
                assert opts.endswith(b"\x01" * len(raw))
                return replace(p.seg, options=opts[:len(opts) - len(raw)] + raw)
            return p.seg

        first, second = _pass(built, upstream_view=sent_view)
        out.append(PairConn(first, second, built.keylog, _expect(
            "path-stripped-eno", ("fallback", "synack-without-eno", "fallback",
                                  "ack-without-eno"), [("ba", "syn-ack", 69, "removed")])))
    plain = _plain(rng, BASE_NS + 2 * SECOND)
    built = build_connection(plain, rng)
    first, second = _pass(built)
    out.append(PairConn(first, second, [], _expect("not-negotiated", (*ABSENT, *ABSENT))))
    return out


def _strip_syn(rng: random.Random) -> list[PairConn]:
    """ENO removed from A's SYNs (A->B only): B never sees it and answers without."""
    out = []
    for n in range(2):
        a, b = pair(rng)
        plan = ConnectionPlan(a=a, b=b, start_ns=BASE_NS + n * SECOND,
                              messages=http_messages(rng, b.ip, 3000),
                              eno_a=offer(TEP_X25519, TEP_P256), eno_b=None,
                              expect_status=EnoStatus.FALLBACK,
                              expect_reason=FallbackReason.SYNACK_WITHOUT_ENO, keylog=KEYS_NONE)
        built = build_connection(plan, rng)
        first, second = _pass(built, lambda p: strip_kind(p.seg, 69) if p.seg.flags & 0x02
                              else p.seg)
        out.append(PairConn(first, second, [], _expect(
            "path-stripped-eno", ("fallback", "synack-without-eno", *ABSENT),
            [("ab", "syn", 69, "removed")])))
    # A peer without ENO: the option crosses the path intact and B ignores it.
    a, b = pair(rng)
    plan = ConnectionPlan(a=a, b=b, start_ns=BASE_NS + 2 * SECOND,
                          messages=http_messages(rng, b.ip, 3000),
                          eno_a=offer(TEP_X25519), eno_b=None, expect_status=EnoStatus.FALLBACK,
                          expect_reason=FallbackReason.SYNACK_WITHOUT_ENO, keylog=KEYS_NONE)
    built = build_connection(plan, rng)
    first, second = _pass(built)
    out.append(PairConn(first, second, [], _expect(
        "peer-without-eno", ("fallback", "synack-without-eno", "fallback",
                             "synack-without-eno"))))
    return out


def _proxy(rng: random.Random) -> list[PairConn]:
    """A terminating proxy: A's connection ends at the proxy (which answers as B without
    ENO); the proxy opens its own connection to B from its own address, with its own
    ISNs, timestamps and MSS, and relays the bytes in other segments."""
    out = []
    for n in range(2):
        start = BASE_NS + n * SECOND
        a, b = pair(rng, b_ip="203.0.113.80")
        msgs = http_messages(rng, b.ip, 7000)
        front = ConnectionPlan(a=a, b=replace(b, isn=rng.getrandbits(32), mss=1460),
                               start_ns=start, messages=msgs,
                               eno_a=offer(TEP_X25519, TEP_P256), eno_b=None,
                               expect_status=EnoStatus.FALLBACK,
                               expect_reason=FallbackReason.SYNACK_WITHOUT_ENO,
                               keylog=KEYS_NONE)
        pa, _pb = pair(rng, a_ip="192.0.2.254", b_ip=b.ip, b_port=b.port, mss=1360)
        back = ConnectionPlan(a=pa, b=replace(b, mss=1360), start_ns=start + 300_000,
                              messages=msgs, expect_status=EnoStatus.ABSENT,
                              expect_reason=FallbackReason.ABSENT, keylog=KEYS_NONE)
        built_front = build_connection(front, rng)
        built_back = build_connection(back, rng)
        first = list(built_front.packets)
        second = list(built_back.packets)
        out.append(PairConn(first, second, [], _expect(
            "path-stripped-eno", ("fallback", "synack-without-eno", *ABSENT),
            [("ab", "syn", 69, "removed"), ("ab", "syn", 8, "modified"),
             ("ba", "syn-ack", 8, "modified"), ("ab", "syn", 2, "modified"),
             ("ba", "syn-ack", 2, "modified")],
            translated=(True, True), shift=None, reseg=(False, True), exact=False)))
    return out


def _long_lived(rng: random.Random) -> list[PairConn]:
    """Keep-alive connections with several requests each, so a capture window cuts
    through them; hosts with timestamps, a sequence shifter on A's side."""
    out = []
    for n in range(4):
        a, b = pair(rng)
        plan = ConnectionPlan(a=a, b=b, start_ns=BASE_NS + n * SECOND // 3,
                              messages=http_messages(rng, b.ip, 2500, requests=8),
                              eno_a=offer(TEP_X25519), eno_b=answer(TEP_P256),
                              expect_status=EnoStatus.FALLBACK,
                              expect_reason=FallbackReason.NO_COMMON_TEP, keylog=KEYS_NONE)
        for m in plan.messages:
            m.think_ns = SECOND // 10
        built = build_connection(plan, rng)
        first, second = _pass(built)
        k = rng.getrandbits(32)
        second = [_shift(p, k, 0) for p in second]
        out.append(PairConn(first, second, [], _expect(
            "not-negotiated", ("fallback", "no-common-tep", "fallback", "no-common-tep"),
            shift=(k, 0))))
    return out


PAIR_SCENARIOS: dict[str, PairScenario] = {s.name: s for s in (
    PairScenario("nat", "NAT: six connections through one address and a reused port pool",
                 lambda rng: _nat(rng, 6), seed=201,
                 notes="Addresses and ports translated, nothing else: matched by timestamps, "
                       "ISNs, payload and SYN options; tcpcrypt still negotiated."),
    PairScenario("nat-many", "NAT: 200 connections through one address, ports reused, "
                 "SECOND covers only part of the time", lambda rng: _nat(rng, 200), seed=202,
                 window=(0.1, 0.85),
                 notes="Ports reused as soon as a mapping ends; SECOND starts late and ends "
                       "early, so some connections are seen in FIRST only or in part."),
    PairScenario("nat-shift-no-timestamps", "NAT and per-connection sequence shifts, hosts "
                 "without the timestamps option", lambda rng: _nat(rng, 40, timestamps=False,
                                                                 seq_shift=True), seed=203,
                 notes="Neither timestamps nor ISNs agree: payload and timing pair them."),
    PairScenario("seq-shift", "A sequence-number shifter in front of A", _seq_shift, seed=204,
                 notes="seq_shift.ab is the shifter's constant, ba is 0; tcpcrypt unharmed."),
    PairScenario("mss-clamp", "MSS clamped to 1200 in both directions", _mss_clamp, seed=205,
                 notes="Kind 2 modified in the SYN and SYN-ACK; ENO negotiated."),
    PairScenario("strip-eno-synack", "An option stripper removes kind 69 from B->A",
                 _strip_synack, seed=206,
                 notes="path-stripped-eno: FIRST (near A) shows synack-without-eno, SECOND "
                       "(near B) ack-without-eno; a plain connection is left alone."),
    PairScenario("strip-eno-syn", "An option stripper removes kind 69 from A->B",
                 _strip_syn, seed=207,
                 notes="path-stripped-eno: B never sees ENO (absent at SECOND); a third "
                       "connection reaches a peer without ENO (peer-without-eno)."),
    PairScenario("partial-overlap", "SECOND starts and ends while connections are open",
                 _long_lived, seed=209, window=(0.3, 0.7),
                 notes="Connections cut at either end are still paired, by payload and "
                       "timestamps (their handshake is missing at SECOND)."),
    PairScenario("proxy", "A terminating TCP proxy: re-segments, its own options",
                 _proxy, seed=208,
                 notes="Matched by payload and timing only; addresses and ports translated, "
                       "re-segmented both ways, ENO removed from A's SYN."),
)}


# ---------------------------------------------------------------------------- writing


@dataclass
class GeneratedPair:
    """Both captures, the key log and the expected comparison."""

    first: bytes
    second: bytes
    keylog: str
    expected: dict
    conns: list[PairConn] = field(default_factory=list)

    def expected_json(self) -> str:
        """Stable serialisation."""
        return json.dumps(self.expected, indent=1, sort_keys=True) + "\n"


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _write(packets: list[tuple[int, int, SimPacket]]) -> tuple[bytes, dict[int, int]]:
    """A pcap of (ts, conn, packet) in time order; returns it and each connection's id
    (the order of its first packet, as the analyzer numbers them)."""
    out = io.BytesIO()
    pcap = PcapWriter(out, 1)
    order: dict[int, int] = {}
    for ts, c, p in sorted(packets, key=lambda t: (t[0], t[1])):
        order.setdefault(c, len(order))
        pcap.write(ts, frame(p.seg, LinkParams()))
    return out.getvalue(), order


def generate_pair(sc: PairScenario, seed: int | None = None) -> GeneratedPair:
    """Build a pair deterministically from its scenario and seed."""
    seed = sc.seed if seed is None else seed
    rng = random.Random(seed)
    conns = sc.build(rng)
    first_pk = [(p.ts_ns, c, p) for c, pc in enumerate(conns) for p in pc.first]
    second_pk = [(p.ts_ns + CLOCK_OFFSET_NS, c, p) for c, pc in enumerate(conns)
                 for p in pc.second]
    seen_second: dict[int, str] = {c: "all" for c in range(len(conns))}
    if sc.window is not None:
        lo_t = min(t for t, _c, _p in second_pk)
        hi_t = max(t for t, _c, _p in second_pk)
        lo = lo_t + int((hi_t - lo_t) * sc.window[0])
        hi = lo_t + int((hi_t - lo_t) * sc.window[1])
        kept = [(t, c, p) for t, c, p in second_pk if lo <= t <= hi]
        for c, pc in enumerate(conns):
            mine = [p for t, cc, p in kept if cc == c]
            if not mine:
                seen_second[c] = "none"
            elif len(mine) == len(pc.second):
                seen_second[c] = "all"
            elif any(p.seg.flags & 0x02 for p in mine) or any(
                    len(p.seg.payload) >= 16 for p in mine):
                seen_second[c] = "part"
            else:
                seen_second[c] = "scraps"
        second_pk = kept
    cap1, ids1 = _write(first_pk)
    cap2, ids2 = _write(second_pk)
    keylog_io = io.StringIO()
    writer = KeyLogWriter(keylog_io)
    writer.comment(f"tcpinc-analyze synth pair {sc.name} --seed {seed}")
    for pc in conns:
        for label, fields in pc.keylog:
            writer.entry(label, *fields)
    records = []
    for c, pc in enumerate(conns):
        rec = dict(pc.expect)
        syn1 = pc.first[0].seg
        syn2 = pc.second[0].seg
        rec["first"] = {"id": ids1[c], "a": _endpoint(syn1.src, syn1.sport),
                        "b": _endpoint(syn1.dst, syn1.dport)}
        rec["second"] = ({"id": ids2[c], "a": _endpoint(syn2.src, syn2.sport),
                          "b": _endpoint(syn2.dst, syn2.dport)} if c in ids2 else None)
        state = seen_second[c]
        if state == "none":
            rec.update({"in": "first", "cause": "not-negotiated" if rec["eno"]["first"] !=
                        "negotiated" else "negotiated", "option_changes": [],
                        "translated": None, "seq_shift": None, "resegmented": None})
            rec["eno"] = {**rec["eno"], "second": None, "reason_second": None}
        elif state in ("part", "scraps"):
            rec["in"] = "both" if state == "part" else "either"
            # part of the connection is missing at SECOND: ENO outcome and changes there
            # depend on what was kept; only the pairing is asserted
            rec.update({"cause": None, "option_changes": [], "option_changes_exact": False,
                        "resegmented": None, "eno": None})
        records.append(rec)
    expected = {
        "schema": PAIR_SCHEMA,
        "pair": sc.name,
        "origin": "synthetic",
        "seed": seed,
        "summary": sc.summary,
        "notes": sc.notes,
        "command": ["tcpinc-analyze", "compare", f"{sc.name}.first.pcap",
                    f"{sc.name}.second.pcap", "--keylog", f"{sc.name}.keys", "--format",
                    "json"],
        "clock_offset": CLOCK_OFFSET_NS / 1e9,
        "delay": DELAY_NS / 1e9,
        "near_a": "first",
        "connections": records,
    }
    return GeneratedPair(cap1, cap2, keylog_io.getvalue(), expected, conns)


def write_pairs(directory: Path) -> list[str]:
    """Regenerate every synthetic pair into ``directory`` with an index."""
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for sc in PAIR_SCENARIOS.values():
        gen = generate_pair(sc)
        (directory / f"{sc.name}.first.pcap").write_bytes(gen.first)
        (directory / f"{sc.name}.second.pcap").write_bytes(gen.second)
        fd = os.open(directory / f"{sc.name}.keys", os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o600)
        with os.fdopen(fd, "w") as fh:  # session secrets: owner only
            fh.write(gen.keylog)
        (directory / f"{sc.name}.compare.json").write_text(gen.expected_json())
        entries.append({"name": sc.name, "origin": "synthetic", "seed": sc.seed,
                        "first": f"{sc.name}.first.pcap", "second": f"{sc.name}.second.pcap",
                        "keylog": f"{sc.name}.keys", "expected": f"{sc.name}.compare.json",
                        "summary": sc.summary, "notes": sc.notes,
                        "sha256": hashlib.sha256(gen.first + gen.second).hexdigest()})
    from .testbed import MIDDLEBOXES, middlebox_catalog_entry

    for kind in MIDDLEBOXES:  # recorded pairs are static files: listed when present
        entry = middlebox_catalog_entry(kind)
        files = [directory / entry[k] for k in ("first", "second")]
        if all(f.exists() for f in files):
            entry["sha256"] = hashlib.sha256(b"".join(f.read_bytes() for f in files)
                                             ).hexdigest()
            entries.append(entry)
    (directory / "pairs.json").write_text(json.dumps({"pairs": entries}, indent=1) + "\n")
    return [e["name"] for e in entries]
