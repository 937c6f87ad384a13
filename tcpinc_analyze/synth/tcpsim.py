"""A TCP conversation simulator: the segment streams two real hosts would exchange.

It models what an analyzer has to cope with in captures from real stacks (handshake
options, MSS segmentation, delayed ACKs, scaled windows, timestamps, FIN/RST teardown,
sequence-number wrap) and, on request, the impairments captures really show
(retransmissions, re-segmented retransmissions, conflicting retransmissions). Capture
-order impairments (reordering, gaps) are applied afterwards by ``impair``.

Everything is driven by the caller's ``random.Random`` and a simulated clock, so the
same seed always yields the same packets.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from .packets import (
    TCP_ACK,
    TCP_FIN,
    TCP_PSH,
    TCP_RST,
    TCP_SYN,
    TcpSegment,
    mss_option,
    sack_permitted_option,
    tcp_options,
    timestamp_option,
    wscale_option,
)

SEQ_MOD = 1 << 32


@dataclass
class HostConfig:
    """One end of a simulated connection."""

    ip: str
    port: int
    isn: int
    mss: int = 1460
    wscale: int | None = 7
    sack_permitted: bool = True
    timestamps: bool = True
    rcv_window: int = 262_144
    ts_start: int = 1_000_000


@dataclass
class SimPacket:
    """A segment as captured, with what the simulator knows about it."""

    ts_ns: int
    seg: TcpSegment
    from_a: bool
    tags: set[str] = field(default_factory=set)
    stream_offset: int | None = None
    """Offset of the payload's first byte in its direction's byte stream (0 = ISN + 1)."""


@dataclass
class Impairments:
    """Switchable TCP-level impairments applied while the conversation is generated."""

    duplicate_retransmission: float = 0.0
    """Probability that a data segment is retransmitted unchanged (spurious RTO)."""
    resegmented_retransmission: float = 0.0
    """Probability that two consecutive data segments are retransmitted with new boundaries."""
    conflicting_retransmission: bool = False
    """Once per conversation, retransmit a range with different bytes (an injection)."""


class TcpConversation:
    """Generates the packets of one connection between host A (active) and host B."""

    def __init__(self, a: HostConfig, b: HostConfig, *, start_ns: int, rng: random.Random,
                 rtt_ns: int = 2_000_000, impairments: Impairments | None = None) -> None:
        self.hosts = (a, b)
        self.now = start_ns
        self.rng = rng
        self.rtt_ns = rtt_ns
        self.imp = impairments or Impairments()
        self.packets: list[SimPacket] = []
        self.snd_nxt = [a.isn, b.isn]
        self.stream_len = [0, 0]
        self.peer_mss = [b.mss, a.mss]
        self.scale = [0, 0]
        self.ts_ok = False
        self.ip_id = [rng.randrange(1, 0xFFFF), rng.randrange(1, 0xFFFF)]
        self.last_tsval = [a.ts_start, b.ts_start]
        self.conflict_done = False
        self.closed = False
        self.eno_nonsyn = [b"", b""]
        """Non-SYN-form ENO each host puts on its segments until it has received a
        non-SYN segment (RFC 8547 §4.6)."""
        self.got_nonsyn = [False, False]
        self.eno_nonsyn_once = False
        """A's non-SYN ENO goes on its first non-SYN segment only (a broken sender)."""

    # ------------------------------------------------------------------ primitives
    def _idx(self, from_a: bool) -> int:
        return 0 if from_a else 1

    def _tsval(self, i: int) -> int:
        # 1 kHz timestamp clock, as Linux uses.
        return (self.hosts[i].ts_start + self.now // 1_000_000) % SEQ_MOD

    def _window(self, i: int, syn: bool) -> int:
        value = self.hosts[i].rcv_window if not syn else min(self.hosts[i].rcv_window, 65535)
        return min(value >> (0 if syn else self.scale[i]), 0xFFFF)

    def _emit(self, from_a: bool, flags: int, *, payload: bytes = b"", seq: int | None = None,
              options: bytes | None = None, extra_options: bytes = b"", tags: tuple = (),
              stream_offset: int | None = None, gap_ns: int = 15_000) -> SimPacket:
        i = self._idx(from_a)
        src, dst = self.hosts[i], self.hosts[1 - i]
        if options is None:
            options = b""
            if self.ts_ok:
                tsecr = self.last_tsval[1 - i]
                options = tcp_options(1, 1, timestamp_option(self._tsval(i), tsecr))
                self.last_tsval[i] = self._tsval(i)
        options += extra_options
        if not flags & TCP_SYN:
            if self.eno_nonsyn[i] and not self.got_nonsyn[i]:
                options += self.eno_nonsyn[i]
                if i == 0 and self.eno_nonsyn_once:
                    self.eno_nonsyn[0] = b""
            self.got_nonsyn[1 - i] = True
        ack = self.snd_nxt[1 - i]
        seg = TcpSegment(
            src=src.ip, dst=dst.ip, sport=src.port, dport=dst.port,
            seq=(self.snd_nxt[i] if seq is None else seq) % SEQ_MOD,
            ack=ack % SEQ_MOD if flags & TCP_ACK else 0,
            flags=flags, window=self._window(i, bool(flags & TCP_SYN)),
            options=options, payload=payload, ip_id=self.ip_id[i],
        )
        self.ip_id[i] = (self.ip_id[i] + 1) & 0xFFFF
        self.now += gap_ns
        pkt = SimPacket(self.now, seg, from_a, set(tags), stream_offset)
        self.packets.append(pkt)
        return pkt

    def _syn_options(self, i: int, eno: bytes) -> bytes:
        host = self.hosts[i]
        opts: list = [mss_option(host.mss)]
        if host.sack_permitted:
            opts.append(sack_permitted_option())
        if host.timestamps:
            self.last_tsval[i] = self._tsval(i)
            opts.append(timestamp_option(self._tsval(i), 0 if i == 0 else self.last_tsval[0]))
        if host.wscale is not None:
            opts += [1, wscale_option(host.wscale)]
        base = tcp_options(*opts)
        if len(base) + len(eno) > 40 and host.sack_permitted:
            # Real stacks drop SACK-permitted first when another option needs the room.
            return self._syn_options_without_sack(i, eno)
        return base + eno

    def _syn_options_without_sack(self, i: int, eno: bytes) -> bytes:
        host = self.hosts[i]
        opts: list = [mss_option(host.mss)]
        if host.timestamps:
            opts.append(timestamp_option(self._tsval(i), 0 if i == 0 else self.last_tsval[0]))
        if host.wscale is not None:
            opts += [1, wscale_option(host.wscale)]
        return tcp_options(*opts) + eno

    # ------------------------------------------------------------------ handshake
    def open(self, *, syn_a_eno: bytes = b"", syn_b_eno: bytes = b"", ack_a_eno: bytes = b"",
             simultaneous: bool = False, syn_retransmit: bool = False,
             syn_retransmit_eno: bytes | None = None, syn_a_data: bytes = b"",
             nonsyn_b_eno: bytes = b"") -> None:
        """Three-way handshake (or simultaneous open), each segment with its ENO bytes.

        ``ack_a_eno`` goes on every segment A sends before it receives a non-SYN segment
        (the handshake ACK first), ``nonsyn_b_eno`` likewise for B. ``syn_retransmit_eno``
        replaces A's ENO in a retransmitted SYN; ``syn_a_data`` rides in A's SYN (and is
        discarded, not acknowledged, by B, as RFC 8547 §4.7 requires).
        """
        a, b = self.hosts
        syn_opts = self._syn_options(0, syn_a_eno)
        self._emit(True, TCP_SYN, options=syn_opts, payload=syn_a_data, tags=("syn",))
        if syn_retransmit:
            self.now += 1_000_000_000
            opts = syn_opts if syn_retransmit_eno is None else self._syn_options(
                0, syn_retransmit_eno)
            self._emit(True, TCP_SYN, options=opts, payload=syn_a_data,
                       tags=("syn", "retransmission"))
        self.ts_ok = a.timestamps and b.timestamps
        if a.wscale is not None and b.wscale is not None:
            self.scale = [a.wscale, b.wscale]
        self.eno_nonsyn = [ack_a_eno, nonsyn_b_eno]
        if simultaneous:
            self.now += self.rtt_ns // 4
            b_opts = self._syn_options(1, syn_b_eno)
            self._emit(False, TCP_SYN, options=b_opts, tags=("syn",))
            self.now += self.rtt_ns // 2
            self.snd_nxt = [a.isn + 1, b.isn + 1]
            # Each side answers the other's SYN with a SYN-ACK repeating its SYN options.
            self._emit(True, TCP_SYN | TCP_ACK, seq=a.isn, options=syn_opts,
                       tags=("synack",))
            self.now += self.rtt_ns // 4
            self._emit(False, TCP_SYN | TCP_ACK, seq=b.isn, options=b_opts, tags=("synack",))
        else:
            self.now += self.rtt_ns
            self.snd_nxt[0] = a.isn + 1
            b_opts = self._syn_options(1, syn_b_eno)
            self._emit(False, TCP_SYN | TCP_ACK, options=b_opts, tags=("synack",))
            self.snd_nxt[1] = b.isn + 1
        self._emit(True, TCP_ACK, tags=("ack",))

    # ------------------------------------------------------------------ data
    def send(self, from_a: bool, data: bytes, *, think_ns: int = 0, psh: bool = True) -> None:
        """Write ``data`` from one side: MSS segments, PSH on the last (unless ``psh`` is
        False: a sender that breaks RFC 8548 §3.3's PSH rule), ACKs from the peer."""
        if not data:
            return
        i = self._idx(from_a)
        self.now += think_ns
        mss = self.peer_mss[i]
        sent: list[SimPacket] = []
        pos = 0
        while pos < len(data):
            chunk = data[pos:pos + mss]
            last = pos + len(chunk) == len(data)
            pkt = self._emit(from_a, TCP_ACK | (TCP_PSH if last and psh else 0), payload=chunk,
                             stream_offset=self.stream_len[i], tags=("data",),
                             gap_ns=12_000 if sent else 50_000)
            sent.append(pkt)
            self.snd_nxt[i] += len(chunk)
            self.stream_len[i] += len(chunk)
            pos += len(chunk)
            if len(sent) % 2 == 0 and not last:
                self._emit(not from_a, TCP_ACK, tags=("ack",), gap_ns=3_000)
            if self.rng.random() < self.imp.duplicate_retransmission:
                self._retransmit(from_a, pkt.seg.seq, chunk, pkt.stream_offset or 0)
        self._maybe_resegment(from_a, sent)
        self._maybe_conflict(from_a, sent)
        self.now += self.rtt_ns // 2
        self._emit(not from_a, TCP_ACK, tags=("ack",))

    def _retransmit(self, from_a: bool, seq: int, payload: bytes, offset: int,
                    tags: tuple = ("retransmission",)) -> None:
        self.now += 200_000
        self._emit(from_a, TCP_ACK | TCP_PSH, seq=seq, payload=payload, stream_offset=offset,
                   tags=tags)

    def _maybe_resegment(self, from_a: bool, sent: list[SimPacket]) -> None:
        if len(sent) < 2 or self.rng.random() >= self.imp.resegmented_retransmission:
            return
        k = self.rng.randrange(len(sent) - 1)
        first, second = sent[k], sent[k + 1]
        joined = first.seg.payload + second.seg.payload
        cut = self.rng.randrange(1, len(first.seg.payload)) if len(first.seg.payload) > 1 else 0
        # New boundaries: [cut, middle of second) and [middle of second, end).
        middle = len(first.seg.payload) + max(1, len(second.seg.payload) // 2)
        base = first.stream_offset or 0
        for lo, hi in ((cut, middle), (middle, len(joined))):
            if lo < hi:
                self._retransmit(from_a, first.seg.seq + lo, joined[lo:hi], base + lo,
                                 tags=("retransmission", "resegmented"))

    def _maybe_conflict(self, from_a: bool, sent: list[SimPacket]) -> None:
        # Only in a multi-segment burst, so the key exchange stays untouched.
        if not self.imp.conflicting_retransmission or self.conflict_done or len(sent) < 2:
            return
        self.conflict_done = True
        victim = sent[-1]
        payload = victim.seg.payload
        size = min(len(payload), 16)
        forged = bytes(b ^ 0x5A for b in payload[:size])
        self._retransmit(from_a, victim.seg.seq, forged, victim.stream_offset or 0,
                         tags=("retransmission", "conflict"))

    def wait(self, ns: int) -> None:
        """Let simulated time pass (think time, application latency)."""
        self.now += ns

    # ------------------------------------------------------------------ teardown
    def close(self, *, first_from_a: bool = True) -> None:
        """Orderly release: FIN, ACK, FIN, ACK."""
        i = self._idx(first_from_a)
        self._emit(first_from_a, TCP_FIN | TCP_ACK, tags=("fin",))
        self.snd_nxt[i] += 1
        self.now += self.rtt_ns // 2
        self._emit(not first_from_a, TCP_ACK, tags=("ack",))
        self._emit(not first_from_a, TCP_FIN | TCP_ACK, tags=("fin",))
        self.snd_nxt[1 - i] += 1
        self.now += self.rtt_ns // 2
        self._emit(first_from_a, TCP_ACK, tags=("ack",))
        self.closed = True

    def reset(self, *, from_a: bool = True) -> None:
        """Abortive release: one RST from one side."""
        self._emit(from_a, TCP_RST | TCP_ACK, tags=("rst",))
        self.closed = True


# ---------------------------------------------------------------------- capture-order impairments

def reorder(packets: list[SimPacket], rng: random.Random, count: int = 1) -> int:
    """Swap ``count`` pairs of adjacent same-direction data packets in capture order.

    Timestamps are swapped too, so the capture stays time-ordered as captures are.
    Returns how many swaps were made.
    """
    candidates = [k for k in range(len(packets) - 1)
                  if "data" in packets[k].tags and "data" in packets[k + 1].tags
                  and packets[k].from_a == packets[k + 1].from_a]
    rng.shuffle(candidates)
    done = 0
    used: set[int] = set()
    for k in candidates:
        if done == count:
            break
        if k in used or k + 1 in used:
            continue
        p, q = packets[k], packets[k + 1]
        packets[k] = replace(q, ts_ns=p.ts_ns, tags=q.tags | {"reordered"})
        packets[k + 1] = replace(p, ts_ns=q.ts_ns)
        used |= {k, k + 1}
        done += 1
    return done


def drop_from_capture(packets: list[SimPacket], rng: random.Random, *, from_a: bool,
                      min_offset: int = 0) -> SimPacket | None:
    """Remove one data packet of one direction from the capture (the receiver got it).

    Only packets whose payload starts at ``min_offset`` or later are candidates, so a
    scenario can keep the key exchange intact. Returns the removed packet.
    """
    retransmitted = [(p.stream_offset or 0, len(p.seg.payload)) for p in packets
                     if "retransmission" in p.tags and p.from_a == from_a]
    candidates = [k for k, p in enumerate(packets)
                  if "data" in p.tags and p.from_a == from_a
                  and (p.stream_offset or 0) >= min_offset
                  and "retransmission" not in p.tags]
    rng.shuffle(candidates)
    for k in candidates:
        lo = packets[k].stream_offset or 0
        hi = lo + len(packets[k].seg.payload)
        # A range that was retransmitted is still in the capture: no gap there.
        if all(o + n <= lo or o >= hi for o, n in retransmitted):
            return packets.pop(k)
    return None
