"""``decrypt --pcap-out``: the capture again, with each decrypted tcpcrypt connection's
payload replaced by its plaintext, so Wireshark dissects the application protocol.

Two passes. The first (the normal analysis with decryption) spools each direction's
plaintext to a temporary file and records, per frame, where the frame ends in the TCP
stream and where its data ends in the plaintext stream. The second re-reads the capture
and rewrites every segment of those connections: a segment carries the data of the frames
it completes, sequence and acknowledgement numbers are mapped into the plaintext streams
(Init messages and frame headers and tags vanish), and lengths and checksums are
recomputed. Segments keep their boundaries, timing and flags; retransmissions map to
the same plaintext bytes.
"""

from __future__ import annotations

import bisect
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..analysis.connection import Connection
from ..capture.decode import link_ip_offset
from ..capture.reader import Record, open_input, read_capture
from ..synth.capture_writer import PcapngWriter, PcapWriter
from ..synth.packets import repack_ip_tcp

SEQ_MOD = 1 << 32


@dataclass
class _Direction:
    base: int
    ends: list[int] = field(default_factory=lambda: [0])
    plain: list[int] = field(default_factory=lambda: [0])
    last_offset: int = 0

    def plain_at(self, stream_offset: int) -> int:
        """Plaintext bytes of all frames that end at or before ``stream_offset``."""
        return self.plain[bisect.bisect_right(self.ends, stream_offset) - 1]

    def unwrap(self, seq: int) -> int:
        rel = (seq - self.base) % SEQ_MOD
        delta = ((rel - self.last_offset % SEQ_MOD + (1 << 31)) % SEQ_MOD) - (1 << 31)
        self.last_offset += delta
        return self.last_offset


@dataclass
class _Conn:
    id: int
    first: int
    last: int
    a: tuple[bytes, int]
    dirs: dict[str, _Direction]
    spool: dict[str, Path]


class PlaintextCapture:
    """Collects what pass 1 learns; ``write`` performs pass 2."""

    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="tcpinc-pcap-out-")
        self.maps: dict[tuple[int, str], tuple[list[int], list[int]]] = {}
        self.files: dict[tuple[int, str], BinaryIO] = {}
        self.conns: dict[tuple, list[_Conn]] = {}
        self.rewritten = 0

    # ------------------------------------------------------------------ pass 1 hooks
    def sink(self, conn: Connection, direction: str, offset: int, data: bytes,
             packet: int) -> None:
        """PlaintextSink: spool the data of one direction."""
        key = (conn.id, direction)
        handle = self.files.get(key)
        if handle is None:
            handle = self.files[key] = open(self._path(key), "wb")  # noqa: SIM115
        handle.write(data)

    def frame_map(self, conn: Connection, direction: str, stream_end: int, plain_end: int
                  ) -> None:
        """Remember where each frame ends in both streams."""
        ends, plain = self.maps.setdefault((conn.id, direction), ([0], [0]))
        ends.append(stream_end)
        plain.append(plain_end)

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
            ends, plain = self.maps.get((conn.id, label), ([0], [0]))
            dirs[label] = _Direction(stream.base, ends, plain)
        a = conn.x if conn.a_is_x else conn.y
        b = conn.y if conn.a_is_x else conn.x
        entry = _Conn(conn.id, conn.first_packet, conn.last_packet, a, dirs,
                      {d: self._path((conn.id, d)) for d in ("ab", "ba")})
        for key in ((*a, *b), (*b, *a)):
            self.conns.setdefault(key, []).append(entry)

    def _path(self, key: tuple[int, str]) -> Path:
        return Path(self.tmp.name) / f"{key[0]}-{key[1]}.bin"

    # ------------------------------------------------------------------ pass 2
    def write(self, capture: str, output: Path) -> int:
        """Rewrite the capture into ``output`` (pcapng if its name says so, else pcap)."""
        stream = open_input(capture)
        readers: dict[Path, BinaryIO] = {}
        try:
            with open(output, "wb") as out:
                pcapng = output.suffix == ".pcapng"
                writer: PcapngWriter | PcapWriter | None = PcapngWriter(out) if pcapng else None
                interfaces: dict[tuple[int, int], int] = {}
                for item in read_capture(stream, capture):
                    if not isinstance(item, Record):
                        continue
                    data = self._rewrite(item, readers)
                    if isinstance(writer, PcapngWriter):
                        key = (item.interface, item.linktype)
                        if key not in interfaces:
                            interfaces[key] = writer.add_interface(item.linktype, tsresol=9)
                        writer.write(interfaces[key], item.ts_ns, data)
                    else:
                        if writer is None:
                            writer = PcapWriter(out, item.linktype, nanosecond=True)
                            first_link = item.linktype
                        elif item.linktype != first_link:
                            raise ValueError("the capture mixes link types: name the output "
                                             "*.pcapng")
                        writer.write(item.ts_ns, data)
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

    def _rewrite(self, rec: Record, readers: dict[Path, BinaryIO]) -> bytes:
        data = rec.data
        if rec.orig_len != len(data):
            return data
        try:
            pos = link_ip_offset(rec.linktype, data)
        except (KeyError, ValueError):
            return data
        if pos is None or len(data) < pos + 20:
            return data
        version = data[pos] >> 4
        if version == 4:
            ihl = (data[pos] & 0x0F) * 4
            total = struct.unpack_from("!H", data, pos + 2)[0]
            frag = struct.unpack_from("!H", data, pos + 6)[0]
            if data[pos + 9] != 6 or frag & 0x3FFF:
                return data
            tcp_at, end = pos + ihl, pos + total
            src, dst = data[pos + 12:pos + 16], data[pos + 16:pos + 20]
        elif version == 6 and len(data) >= pos + 40 and data[pos + 6] == 6:
            tcp_at, end = pos + 40, pos + 40 + struct.unpack_from("!H", data, pos + 4)[0]
            src, dst = data[pos + 8:pos + 24], data[pos + 24:pos + 40]
        else:
            return data  # IPv6 extension headers: left as captured
        if end > len(data) or end < tcp_at + 20:
            return data
        sport, dport, seq, ack = struct.unpack_from("!HHII", data, tcp_at)
        hlen = (data[tcp_at + 12] >> 4) * 4
        flags = data[tcp_at + 13]
        entry = self._find((src, sport), (dst, dport), rec.number)
        if entry is None:
            return data
        mine = "ab" if (src, sport) == entry.a else "ba"
        peer = "ba" if mine == "ab" else "ab"
        payload_len = end - tcp_at - hlen
        d = entry.dirs[mine]
        new_payload = b""
        new_seq = seq
        if not flags & 0x02:  # SYNs keep their ISN
            start = d.unwrap(seq)
            p0, p1 = d.plain_at(start), d.plain_at(start + payload_len)
            new_seq = (d.base + p0) % SEQ_MOD
            if p1 > p0:
                new_payload = self._read(readers, entry.spool[mine], p0, p1 - p0)
        new_ack = ack
        if flags & 0x10 and (ack - entry.dirs[peer].base) % SEQ_MOD < (1 << 31):
            pd = entry.dirs[peer]
            rel = (ack - pd.base) % SEQ_MOD
            new_ack = (pd.base + pd.plain_at(rel) + (1 if rel > pd.ends[-1] else 0)) % SEQ_MOD
        self.rewritten += 1
        tcp = bytearray(data[tcp_at:tcp_at + hlen]) + new_payload
        struct.pack_into("!II", tcp, 4, new_seq, new_ack)
        return repack_ip_tcp(data, pos, data[pos:tcp_at], bytes(tcp), data[end:])

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

