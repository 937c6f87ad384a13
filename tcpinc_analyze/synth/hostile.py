"""Hostile captures for the cost bounds (issue 10, items 23-26): many out-of-order holes
in one connection, junk after a gap in a keyed tcpcrypt stream, shuffled IPv4
fragment trains, and a flood of SYNs.

They are written with ``struct`` straight to a pcap (Ethernet, IPv4, zero checksums,
which the analyzer does not check), because the interesting sizes run to a million
packets and the byte-exact packet builder would spend minutes on them. The tcpcrypt
case takes a real synthesized connection (so its key log works) and adds the junk.
Every generator is deterministic for its arguments.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

from .capture_writer import PcapWriter
from .packets import TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN, LinkParams, TcpSegment, frame
from .sample import Scenario, generate

_ETH = bytes(6) + bytes.fromhex("020000000001") + b"\x08\x00"
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_REC = struct.Struct("<IIII")
_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
A_IP = bytes((10, 9, 0, 1))
B_IP = bytes((10, 9, 0, 2))
BASE_S = 1_700_000_000


def ipv4_frame(src: bytes, dst: bytes, body: bytes, *, ident: int = 0, frag: int = 0,
               proto: int = 6) -> bytes:
    """An Ethernet frame around one IPv4 packet (``frag``: flags and offset field)."""
    return _ETH + _IP.pack(0x45, 0, 20 + len(body), ident, frag, 64, proto, 0, src, dst) + body


def tcp_bytes(sport: int, dport: int, seq: int, ack: int, flags: int,
              payload: bytes = b"", options: bytes = b"") -> bytes:
    """A TCP header (``options`` padded with EOL to whole words) and its payload."""
    options += bytes(-len(options) % 4)
    return _TCP.pack(sport, dport, seq % (1 << 32), ack % (1 << 32), (5 + len(options) // 4) << 4,
                     flags, 65535, 0, 0) + options + payload


def write_pcap(path: Path, frames: Iterable[bytes], *, step_us: int = 1) -> int:
    """Write Ethernet frames ``step_us`` microseconds apart; returns the count."""
    n = 0
    with open(path, "wb") as out:
        out.write(_PCAP_HEADER)
        for n, data in enumerate(frames, 1):
            us = n * step_us
            out.write(_REC.pack(BASE_S + us // 1_000_000, us % 1_000_000, len(data), len(data)))
            out.write(data)
    return n


ENO_SYN = bytes((69, 3, 0x23))
"""A's ENO option: TCPCRYPT_ECDHE_Curve25519 (RFC 8547 kind 69)."""
ENO_SYNACK = bytes((69, 4, 0x01, 0x23))
"""B's ENO option: global suboption b = 1, then the chosen TEP."""
ENO_ACK = bytes((69, 2))


def _handshake(sport: int, dport: int, isn_a: int, isn_b: int) -> list[bytes]:
    """SYN, SYN-ACK, ACK negotiating tcpcrypt, so both directions are reassembled (plain
    TCP connections are not: their bytes are nobody's business here)."""
    return [ipv4_frame(A_IP, B_IP, tcp_bytes(sport, dport, isn_a, 0, TCP_SYN, b"", ENO_SYN)),
            ipv4_frame(B_IP, A_IP, tcp_bytes(dport, sport, isn_b, isn_a + 1, TCP_SYN | TCP_ACK,
                                             b"", ENO_SYNACK)),
            ipv4_frame(A_IP, B_IP, tcp_bytes(sport, dport, isn_a + 1, isn_b + 1, TCP_ACK, b"",
                                             ENO_ACK))]


def reorder_frames(segments: int, order: str, *, size: int = 16) -> Iterator[bytes]:
    """One plain connection whose A->B stream is ``segments`` segments of ``size`` bytes,
    sent ``in-order``, as ``holes`` (every odd segment first, each leaving a hole before
    it, then the even ones filling the holes in turn) or ``reversed`` (last one first)."""
    sport, dport, isn_a, isn_b = 40000, 80, 1000, 5000
    yield from _handshake(sport, dport, isn_a, isn_b)
    if order == "in-order":
        indices: Iterable[int] = range(segments)
    elif order == "holes":
        indices = [*range(1, segments, 2), *range(0, segments, 2)]
    elif order == "reversed":
        indices = range(segments - 1, -1, -1)
    else:
        raise ValueError(f"unknown order {order!r}")
    for i in indices:
        payload = (i % 251).to_bytes(1, "big") * size
        yield ipv4_frame(A_IP, B_IP, tcp_bytes(sport, dport, isn_a + 1 + i * size, isn_b + 1,
                                               TCP_ACK | TCP_PSH, payload))
    end = isn_a + 1 + segments * size
    yield ipv4_frame(A_IP, B_IP, tcp_bytes(sport, dport, end, isn_b + 1, TCP_ACK | TCP_FIN))
    yield ipv4_frame(B_IP, A_IP, tcp_bytes(dport, sport, isn_b + 1, end + 1,
                                           TCP_ACK | TCP_FIN))


def syn_flood_frames(count: int) -> Iterator[bytes]:
    """``count`` SYNs from distinct (address, port) pairs, none answered."""
    for i in range(count):
        src = bytes((10, 128 + (i >> 24 & 0x3F), i >> 16 & 0xFF, i >> 8 & 0xFF))
        sport = 1024 + (i & 0xFF) * 200 + (i >> 8 & 0x7F)
        yield ipv4_frame(src, B_IP, tcp_bytes(sport, 443, i * 7919, 0, TCP_SYN))


def fragment_frames(trains: int, per_train: int = 8190, *, seed: int = 1,
                    shuffle: bool = True) -> Iterator[bytes]:
    """A connection's handshake, then ``trains`` TCP segments each sent as one IPv4
    datagram cut into ``per_train`` fragments of 8 bytes (8,190 is the most a 65,535-byte
    datagram allows), every train shuffled (or in order, the baseline)."""
    rng = random.Random(seed)
    sport, dport, isn_a, isn_b = 40001, 80, 7000, 9000
    yield from _handshake(sport, dport, isn_a, isn_b)
    seq = isn_a + 1
    for t in range(trains):
        payload_len = per_train * 8 - 20
        body = tcp_bytes(sport, dport, seq, isn_b + 1, TCP_ACK | TCP_PSH,
                         bytes([t % 256]) * payload_len)
        seq += payload_len
        order = list(range(per_train))
        if shuffle:
            rng.shuffle(order)
        for k in order:
            more = 0x2000 if k < per_train - 1 else 0
            yield ipv4_frame(A_IP, B_IP, body[k * 8:k * 8 + 8], ident=t + 1, frag=more | k)
    yield ipv4_frame(A_IP, B_IP, tcp_bytes(sport, dport, seq, isn_b + 1, TCP_ACK | TCP_FIN))


def junk_after_gap(path: Path, keylog: Path, junk: int, *, gap: int = 1000,
                   seed: int = 7, segment: int = 1400) -> int:
    """A real tcpcrypt connection (its key log written to ``keylog``) whose B->A stream,
    after its last frame, misses ``gap`` bytes and then carries ``junk`` bytes that are
    no frames but look like frame headers at many offsets (control 0 or 1, lengths of
    a few hundred bytes), the worst case for a keyed resynchronisation search. Returns
    the packets written."""
    from ..wire import AEAD_AES_128_GCM, TEP_X25519
    from .scenarios import tcpcrypt_plan

    scenario = Scenario("hostile-resync", "junk after a gap",
                        lambda rng: [tcpcrypt_plan(rng, TEP_X25519, AEAD_AES_128_GCM,
                                                   size=3000, fin_frames=False)], seed=seed)
    sample = generate(scenario)
    keylog.write_text(sample.keylog)
    keylog.chmod(0o600)
    built = sample.connections[0]
    packets = [p for p in built.packets if not p.seg.flags & TCP_FIN]
    last_b = max((p for p in packets if not p.from_a and p.seg.payload),
                 key=lambda p: p.stream_offset or 0)
    seg = last_b.seg
    rng = random.Random(seed)
    alphabet = bytes((0, 1, 2, 3))
    data = bytes(rng.choice(alphabet) for _ in range(junk))
    seq = seg.seq + len(seg.payload) + gap
    ts = max(p.ts_ns for p in packets)
    link = LinkParams()
    out = [(p.ts_ns, frame(p.seg, link)) for p in packets]
    last_a = max((p for p in packets if p.from_a), key=lambda p: p.ts_ns).seg
    for pos in range(0, junk, segment):
        ts += 10_000
        chunk = data[pos:pos + segment]
        out.append((ts, frame(TcpSegment(seg.src, seg.dst, seg.sport, seg.dport, seq + pos,
                                         seg.ack, TCP_ACK | TCP_PSH, 65535, payload=chunk),
                              link)))
        if not pos:  # A acknowledges past the hole: the gap is declared at once, and the
            # junk then arrives segment by segment behind it
            ts += 10_000
            out.append((ts, frame(TcpSegment(last_a.src, last_a.dst, last_a.sport,
                                             last_a.dport, last_a.seq + len(last_a.payload),
                                             seq + len(chunk), TCP_ACK, 65535), link)))
    out.sort(key=lambda t: t[0])
    with open(path, "wb") as f:
        writer = PcapWriter(f, 1)
        for t, data_ in out:
            writer.write(t, data_)
    return len(out)
