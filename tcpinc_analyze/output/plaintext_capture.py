"""``decrypt --pcap-out``: the capture again, with each decrypted tcpcrypt connection's
payload replaced by its plaintext, so Wireshark dissects the application protocol.

Two passes. The first (the normal analysis with decryption) spools each direction's
plaintext to a temporary file and records, per frame, where the frame ends in the TCP
stream and where its data ends in the plaintext stream. The second re-reads the capture
and rewrites every segment of those connections. Stream offsets map to plaintext offsets
through one monotonic function per direction: each frame's bytes (header, ciphertext,
tag) map linearly onto the application data it carries, so a frame spread over several
segments is spread over the same segments in plaintext, and Init messages, failed frames
and bytes between frames map to nothing. A segment carries the plaintext of its byte
range; sequence and acknowledgement numbers go through the same function (a FIN still
takes one sequence number), so retransmissions map to the same bytes and ACKs to what
the peer's rewritten segments carried. Lengths and checksums are recomputed; timing and
flags are kept.

A segment that carried only Init or framing bytes, or an ACK that acknowledged only
those, would become an empty segment repeating the previous one's sequence and ACK
numbers, which Wireshark's TCP analysis flags as a duplicate ACK or window update that
the original capture does not have: such packets are left out (and counted). A
duplicate the original already had is kept.
"""

from __future__ import annotations

import bisect
import os
import struct
import tempfile
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..analysis.connection import Connection
from ..capture.decode import DecodeProblem, link_ip_offset
from ..capture.reader import Record, open_input, read_capture
from ..synth.packets import ipv4_checksum, repack_ip_tcp
from .record_writer import PcapCopy, PcapngCopy
from .safe_files import atomic_output

SEQ_MOD = 1 << 32
HALF = 1 << 31
_SYN, _FIN, _RST, _ACK = 0x02, 0x01, 0x04, 0x10


class _Unwrap:
    """32-bit sequence numbers to 64-bit offsets from ``base``, near the last one seen."""

    __slots__ = ("base", "last")

    def __init__(self, base: int) -> None:
        self.base = base
        self.last = 0

    def __call__(self, seq: int) -> int:
        rel = (seq - self.base) % SEQ_MOD
        delta = ((rel - self.last % SEQ_MOD + HALF) % SEQ_MOD) - HALF
        self.last += delta
        return self.last


@dataclass
class _Direction:
    """One direction's frames: stream range -> plaintext range, and where data ends."""

    base: int
    starts: array = field(default_factory=lambda: array("q"))
    ends: array = field(default_factory=lambda: array("q"))
    plain0: array = field(default_factory=lambda: array("q"))
    plain1: array = field(default_factory=lambda: array("q"))
    end: int = 0
    """Stream offset just past the last byte (a FIN's sequence number is here)."""

    def __post_init__(self) -> None:
        self.seq = _Unwrap(self.base)
        self.ack = _Unwrap(self.base)

    gaps: list[tuple[int, int]] = field(default_factory=list)
    """(stream offset, size) of the bytes the capture lacks, in order."""

    def plain_at(self, offset: int) -> int:
        """The plaintext (spool) offset of stream offset ``offset`` (monotonic)."""
        offset = min(offset, self.end)
        i = bisect.bisect_right(self.starts, offset) - 1
        if i < 0:
            return 0
        start, end, p0, p1 = self.starts[i], self.ends[i], self.plain0[i], self.plain1[i]
        if offset >= end:
            return p1
        return p0 + (offset - start) * (p1 - p0) // (end - start)

    def seq_at(self, offset: int) -> int:
        """The rewritten sequence offset: the plaintext offset, plus the bytes of every
        gap before it (a gap stays a gap of the same size), plus one for a FIN."""
        inside = min(offset, self.end)
        lost = sum(min(size, inside - at) for at, size in self.gaps if at < inside)
        return self.plain_at(inside) + lost + max(0, offset - self.end)


@dataclass
class _Conn:
    id: int
    first: int
    last: int
    a: tuple[bytes, int]
    dirs: dict[str, _Direction]
    spool: dict[str, Path]
    seen: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per direction, in the original: (next sequence number, last ACK number)."""
    sent: dict[str, tuple[int, int]] = field(default_factory=dict)
    """The same for the segments written."""


def _claim_length(frame: bytes, pos: int, version: int, missing: int) -> bytes:
    """A rebuilt frame whose IP length fields count ``missing`` more bytes than it holds
    (kept truncated, like the captured packet it replaces)."""
    out = bytearray(frame)
    if version == 4:
        total = struct.unpack_from("!H", out, pos + 2)[0] + missing
        struct.pack_into("!H", out, pos + 2, min(total, 0xFFFF))
        struct.pack_into("!H", out, pos + 10, 0)
        ihl = (out[pos] & 0x0F) * 4
        struct.pack_into("!H", out, pos + 10, ipv4_checksum(bytes(out[pos:pos + ihl])))
    else:
        plen = struct.unpack_from("!H", out, pos + 4)[0] + missing
        struct.pack_into("!H", out, pos + 4, min(plen, 0xFFFF))
    return bytes(out)


def _advance(state: dict[str, tuple[int, int]], direction: str, seq: int, ack: int,
             length: int) -> bool:
    """Record a segment; whether it was empty and at the sender's next sequence number
    with the ACK number it sent last (what Wireshark's TCP analysis calls a duplicate ACK
    or, with another window, a window update)."""
    last = state.get(direction)
    redundant = length == 0 and last is not None and last == (seq, ack)
    end = (seq + length) % SEQ_MOD
    if last is None or (end - last[0]) % SEQ_MOD < HALF:
        state[direction] = (end, ack)
    else:
        state[direction] = (last[0], ack)
    return redundant


class PlaintextCapture:
    """Collects what pass 1 learns; ``write`` performs pass 2."""

    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="tcpinc-pcap-out-")
        self.maps: dict[tuple[int, str], tuple[array, array, array, array]] = {}
        self.files: dict[tuple[int, str], BinaryIO] = {}
        self.conns: dict[tuple, list[_Conn]] = {}
        self.rewritten = 0
        self.dropped = 0

    # ------------------------------------------------------------------ pass 1 hooks
    def sink(self, conn: Connection, direction: str, offset: int, data: bytes,
             packet: int) -> None:
        """PlaintextSink: spool the data of one direction (0600, in a private folder)."""
        key = (conn.id, direction)
        handle = self.files.get(key)
        if handle is None:
            fd = os.open(self._path(key), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            handle = self.files[key] = os.fdopen(fd, "wb")
        handle.write(data)

    def frame_map(self, conn: Connection, direction: str, stream_end: int, plain_end: int,
                  stream_start: int | None = None) -> None:
        """Remember each frame's stream range and the plaintext range of its data."""
        starts, ends, plain0, plain1 = self.maps.setdefault(
            (conn.id, direction), (array("q"), array("q"), array("q"), array("q")))
        p0 = plain1[-1] if plain1 else 0
        if stream_start is None:  # an older caller: the frame starts where the last ended
            stream_start = ends[-1] if ends else 0
        if ends and stream_start < ends[-1]:
            return  # not in stream order: keep the map monotonic
        starts.append(stream_start)
        ends.append(max(stream_end, stream_start + 1))
        plain0.append(p0)
        plain1.append(plain_end)

    def on_finalize(self, conn: Connection) -> None:
        """A connection is done: keep what pass 2 needs if it was decrypted."""
        decrypted = conn.data.get("decrypted")
        if not decrypted:
            return
        for key in [k for k in self.files if k[0] == conn.id]:
            self.files.pop(key).close()
        dirs = {}
        for from_x in (True, False):
            stream = conn.streams.get(from_x)
            if stream is None or stream.base is None:
                return
            label = "ab" if from_x == conn.a_is_x else "ba"
            maps = self.maps.pop((conn.id, label), None)
            d = _Direction(stream.base) if maps is None else _Direction(stream.base, *maps)
            d.end = max(stream.next, d.ends[-1] if d.ends else 0)
            d.gaps = sorted((f.offset, f.size) for f in conn.findings
                            if f.code == "tcp-gap" and f.direction == label
                            and f.offset is not None and f.size)
            dirs[label] = d
        a = conn.x if conn.a_is_x else conn.y
        b = conn.y if conn.a_is_x else conn.x
        entry = _Conn(conn.id, conn.first_packet, conn.last_packet, a, dirs,
                      {d: self._path((conn.id, d)) for d in ("ab", "ba")})
        for key in ((*a, *b), (*b, *a)):
            self.conns.setdefault(key, []).append(entry)

    def _path(self, key: tuple[int, str]) -> Path:
        return Path(self.tmp.name) / f"{key[0]}-{key[1]}.bin"

    # ------------------------------------------------------------------ pass 2
    def write(self, capture: str, output: Path, *, inputs: Iterable[str] = ()) -> int:
        """Rewrite the capture into ``output`` (pcapng if its name says so, else pcap),
        through a temporary file renamed into place. Raises OutputError naming the
        packet that cannot be written, or for an output that is an input."""
        readers: dict[Path, BinaryIO] = {}
        stream = open_input(capture)
        try:
            with atomic_output(output, inputs=[capture, *inputs]) as out:
                writer: PcapngCopy | PcapCopy = (PcapngCopy(out, str(output))
                                                 if output.suffix == ".pcapng"
                                                 else PcapCopy(out, str(output)))
                for item in read_capture(stream, capture):
                    if not isinstance(item, Record):
                        continue
                    rewritten = self._rewrite(item, readers)
                    if rewritten is not None:
                        writer.write(item, *rewritten)
        finally:
            for handle in readers.values():
                handle.close()
            if capture != "-":
                stream.close()
        return self.rewritten

    def _find(self, src: tuple[bytes, int], dst: tuple[bytes, int], number: int
              ) -> _Conn | None:
        for entry in self.conns.get((*src, *dst), ()):
            if entry.first <= number <= entry.last:
                return entry
        return None

    def _rewrite(self, rec: Record, readers: dict[Path, BinaryIO]
                 ) -> tuple[bytes, int] | None:
        """The record's new bytes and original length: the record as read where it is
        not a TCP segment of a decrypted connection; None for a segment that would only
        repeat the last one. A segment the capture truncated (snaplen) becomes whole
        when its IP and TCP headers are there: its plaintext comes from the spool."""
        data = rec.data
        keep = (data, rec.orig_len)
        if not self.conns:
            return keep
        truncated = rec.orig_len > len(data)
        try:
            pos = link_ip_offset(rec.linktype, data)
        except (KeyError, ValueError, DecodeProblem):
            return keep
        if pos is None or len(data) < pos + 20:
            return keep
        version = data[pos] >> 4
        if version == 4:
            ihl = (data[pos] & 0x0F) * 4
            total = struct.unpack_from("!H", data, pos + 2)[0]
            frag = struct.unpack_from("!H", data, pos + 6)[0]
            if data[pos + 9] != 6 or frag & 0x3FFF or ihl < 20:
                return keep
            tcp_at, end = pos + ihl, pos + total
            src, dst = data[pos + 12:pos + 16], data[pos + 16:pos + 20]
        elif version == 6 and len(data) >= pos + 40 and data[pos + 6] == 6:
            tcp_at, end = pos + 40, pos + 40 + struct.unpack_from("!H", data, pos + 4)[0]
            src, dst = data[pos + 8:pos + 24], data[pos + 24:pos + 40]
        else:
            return keep  # IPv6 extension headers: left as captured
        if end < tcp_at + 20 or len(data) < tcp_at + 20 or (end > len(data) and not truncated):
            return keep
        sport, dport, seq, ack = struct.unpack_from("!HHII", data, tcp_at)
        hlen = (data[tcp_at + 12] >> 4) * 4
        if hlen < 20 or tcp_at + hlen > min(end, len(data)):
            return keep  # a TCP header longer than its segment: left as captured
        flags = data[tcp_at + 13]
        entry = self._find((src, sport), (dst, dport), rec.number)
        if entry is None:
            return keep
        mine = "ab" if (src, sport) == entry.a else "ba"
        peer = "ba" if mine == "ab" else "ab"
        payload_len = end - tcp_at - hlen
        d = entry.dirs[mine]
        new_payload = b""
        new_seq = seq
        # Sequence numbers the rewritten segment covers: more than its plaintext when its
        # range includes bytes the capture lacks (a snaplen-truncated segment).
        new_len = 0
        if not flags & _SYN:  # SYNs keep their ISN
            start = d.seq(seq)
            p0, p1 = d.plain_at(start), d.plain_at(start + payload_len)
            s0 = d.seq_at(start)
            new_seq = (d.base + s0) % SEQ_MOD
            new_len = d.seq_at(start + payload_len) - s0 if payload_len else 0
            if p1 > p0 and payload_len:
                new_payload = self._read(readers, entry.spool[mine], p0, p1 - p0)
            new_len = max(new_len, len(new_payload))
        new_ack = ack
        if flags & _ACK:
            pd = entry.dirs[peer]
            rel = pd.ack(ack)
            if rel >= 0:
                new_ack = (pd.base + pd.seq_at(rel)) % SEQ_MOD
        extent = (1 if flags & _SYN else 0) + (1 if flags & _FIN else 0)
        was_redundant = _advance(entry.seen, mine, seq, ack, payload_len + extent)
        redundant = _advance(entry.sent, mine, new_seq, new_ack, new_len + extent)
        if (redundant and not was_redundant and not new_len
                and not flags & (_SYN | _FIN | _RST)):
            self.dropped += 1
            return None
        tcp = bytearray(data[tcp_at:tcp_at + hlen]) + new_payload
        struct.pack_into("!II", tcp, 4, new_seq, new_ack)
        try:
            rebuilt = repack_ip_tcp(data, pos, data[pos:tcp_at], bytes(tcp),
                                    data[end:] if end <= len(data) else b"")
        except (ValueError, struct.error, OSError):
            return keep
        self.rewritten += 1
        missing = new_len - len(new_payload)
        if missing > 0:  # truncated as the original was: the lengths claim the whole
            rebuilt = _claim_length(rebuilt, pos, version, missing)
        return rebuilt, len(rebuilt) + max(missing, 0)

    @staticmethod
    def _read(readers: dict[Path, BinaryIO], path: Path, offset: int, size: int) -> bytes:
        handle = readers.get(path)
        if handle is None:
            if not path.exists():
                return b""
            handle = readers[path] = open(path, "rb")  # noqa: SIM115
        handle.seek(offset)
        return handle.read(size)

    def close(self) -> None:
        """Remove the spool."""
        for handle in self.files.values():
            handle.close()
        self.tmp.cleanup()
