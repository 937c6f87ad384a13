"""Streaming pcap and pcapng readers with precise problem reports.

Why our own readers and not dpkt's: dpkt's pcapng reader honours only the first
interface, drops simple-packet and Decryption Secrets Blocks and reads one section, and
neither of its readers says where a file is broken. These readers walk the file in
large chunks (memory stays flat whatever the file size), report every problem with its
byte offset and packet number, and keep going wherever the format allows it.
"""

from __future__ import annotations

import gzip
import struct
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

CHUNK = 1 << 20
READ_MAX = 1 << 24
"""Largest single read: a huge record is gathered in pieces of at most this size."""
GZIP_MAGIC = b"\x1f\x8b"
MAX_RECORD = 1 << 28
"""Largest record length we believe; anything bigger means a corrupt file."""

PCAP_MAGICS = {
    0xA1B2C3D4: ("<", 1000, 16),   # microseconds
    0xA1B23C4D: ("<", 1, 16),      # nanoseconds
    0xA1B2CD34: ("<", 1000, 24),   # Kuznetzov "modified" pcap: 8 more header bytes
}
PCAPNG_SHB = 0x0A0D0D0A
BLOCK_IDB = 0x00000001
BLOCK_OPB = 0x00000002
BLOCK_SPB = 0x00000003
BLOCK_EPB = 0x00000006
BLOCK_DSB = 0x0000000A


@dataclass(slots=True)
class Record:
    """One captured packet."""

    number: int
    ts_ns: int
    linktype: int
    interface: int
    data: bytes
    orig_len: int
    offset: int
    """Byte offset of the record (its header) in the file."""


@dataclass(slots=True)
class SecretsBlock:
    """A pcapng Decryption Secrets Block, in file order relative to the packets."""

    secrets_type: int
    data: bytes
    offset: int


@dataclass(slots=True)
class ReadProblem:
    """Something wrong with the file itself."""

    message: str
    offset: int
    packet: int | None = None
    fatal: bool = False


class CaptureError(Exception):
    """The input is not a capture we can read at all (exit code 2)."""


class _Buffer:
    """A forward-only window over a stream, refilled in large chunks.

    Reads take what the stream has (``read1`` where there is one), so records from a
    live pipe are handed on as they arrive instead of after a full chunk; a record
    bigger than one read is gathered in a list and joined once, so a long record from a
    pipe costs one copy, not one per read.
    """

    def __init__(self, stream: BinaryIO, initial: bytes = b"") -> None:
        self.stream = stream
        self.read = getattr(stream, "read1", None) or stream.read
        self.buf = initial
        self.pos = 0
        self.base = 0  # file offset of buf[0]
        self.eof = False
        self.error: str | None = None
        """Why the stream stopped early (a damaged gzip stream, a read error)."""

    def ensure(self, n: int) -> bool:
        """Make n bytes available from pos; False if the stream ends first."""
        have = len(self.buf) - self.pos
        if have >= n or self.eof:
            return have >= n
        parts = [self.buf[self.pos:]] if have else []
        while have < n:
            try:
                chunk = self.read(max(CHUNK, min(n - have, READ_MAX)))
            except (OSError, EOFError, zlib.error) as exc:
                self.error = str(exc) or exc.__class__.__name__
                chunk = b""
            if not chunk:
                self.eof = True
                break
            parts.append(chunk)
            have += len(chunk)
        self.base += self.pos
        self.buf = parts[0] if len(parts) == 1 else b"".join(parts)
        self.pos = 0
        return have >= n

    @property
    def offset(self) -> int:
        """File offset of the next unread byte."""
        return self.base + self.pos

    def available(self) -> int:
        """Bytes buffered after pos."""
        return len(self.buf) - self.pos


class _Prepended:
    """A stream with bytes already read put back in front (to sniff a magic number)."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self.head = head
        self.stream = stream
        self.read_more = getattr(stream, "read1", None) or stream.read

    def read(self, n: int = -1) -> bytes:
        """What is available, up to n bytes (never waits to fill n from a pipe)."""
        if self.head:
            out = self.head if n < 0 else self.head[:n]
            self.head = self.head[len(out):]
            return out
        return self.read_more(n if n >= 0 else CHUNK)

    read1 = read


def open_input(path: str) -> BinaryIO:
    """Open a capture file, or standard input for ``-``."""
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise CaptureError(f"{path}: cannot open: {exc.strerror or exc}") from exc


def read_capture(stream: BinaryIO, name: str = "<capture>"
                 ) -> Iterator[Record | SecretsBlock | ReadProblem]:
    """An iterator of records, secrets and problems from a pcap or pcapng stream,
    gzip-compressed or not (told by the magic number, as tshark does, not the name).

    Raises CaptureError at once (not a generator itself, which also saves a level of
    delegation per packet) if the input is not a capture.
    """
    head = _read_head(stream, 4, name)
    from ..scale.compressed import open_compressed  # zstd, lz4 (optional packages)

    unpacked = open_compressed(head, stream, name)
    if unpacked is not None:
        return unpacked
    if head[:2] != GZIP_MAGIC:
        return _open_format(stream, head, name)[1]
    unzipped = gzip.GzipFile(fileobj=_Prepended(head, stream), mode="rb")
    try:
        head = _read_head(unzipped, 4, name)
    except (OSError, EOFError, zlib.error) as exc:
        raise CaptureError(f"{name}: gzip-compressed, but it cannot be decompressed: "
                           f"{exc}") from exc
    if head[:2] == GZIP_MAGIC:
        raise CaptureError(f"{name}: compressed twice with gzip; decompress it once first")
    buf, items = _open_format(unzipped, head, f"{name} (decompressed)")
    return _gzip_problems(items, buf, name)


def _read_head(stream: BinaryIO, n: int, name: str) -> bytes:
    """The first n bytes, however a pipe delivers them."""
    read = getattr(stream, "read1", None) or stream.read
    head = b""
    while len(head) < n:
        more = read(n - len(head))
        if not more:
            break
        head += more
    if len(head) < n:
        raise CaptureError(f"{name}: {len(head)} bytes: too short to be a capture file")
    return head


def _open_format(stream: BinaryIO, head: bytes, name: str
                 ) -> tuple[_Buffer, Iterator[Record | SecretsBlock | ReadProblem]]:
    magic_le = struct.unpack("<I", head)[0]
    magic_be = struct.unpack(">I", head)[0]
    buf = _Buffer(stream, head)
    if magic_le == PCAPNG_SHB:
        return buf, _read_pcapng(buf, name)
    for magic, endian in ((magic_le, "<"), (magic_be, ">")):
        if magic in PCAP_MAGICS:
            return buf, _read_pcap(buf, name, endian, *PCAP_MAGICS[magic][1:])
    raise CaptureError(f"{name}: not a pcap or pcapng file (magic 0x{magic_be:08x})")


def _gzip_problems(items: Iterator[Record | SecretsBlock | ReadProblem], buf: _Buffer,
                   name: str) -> Iterator[Record | SecretsBlock | ReadProblem]:
    """The records of a gzip-compressed capture, then what broke the compressed stream
    (the reader says where the capture inside ended; this says why)."""
    yield from items
    if buf.error is not None:
        yield ReadProblem(f"{name}: the gzip data is damaged after {buf.offset} "
                          f"decompressed bytes ({buf.error}); the packets before were read",
                          buf.offset, fatal=True)


def _read_pcap(buf: _Buffer, name: str, endian: str, ts_mult: int, rec_len: int
               ) -> Iterator[Record | ReadProblem]:
    if not buf.ensure(24):
        raise CaptureError(f"{name}: pcap header truncated ({buf.available()} of 24 bytes)")
    _magic, major, minor, _zone, _sig, snaplen, network = struct.unpack_from(
        endian + "IHHiIII", buf.buf, buf.pos)
    buf.pos += 24
    linktype = network & 0x0FFFFFFF
    fcs = (network >> 28) & 0x1 and ((network >> 29) & 0x7) * 2
    if major != 2:
        yield ReadProblem(f"{name}: pcap version {major}.{minor}, expected 2.4; reading anyway",
                          4)
    rec = struct.Struct(endian + "IIII")
    unpack = rec.unpack_from
    limit = MAX_RECORD if not snaplen else min(MAX_RECORD, max(snaplen, 262144) * 4)
    number = 0
    while True:
        # Hot loop: the buffer check is inlined; ensure() only runs to refill.
        b, p = buf.buf, buf.pos
        if len(b) - p < rec_len:
            if not buf.ensure(rec_len):
                if buf.available():
                    yield ReadProblem(f"{name}: file ends inside a record header after packet "
                                      f"{number} (offset {buf.offset}: {buf.available()} of "
                                      f"{rec_len} bytes)", buf.offset, number + 1)
                return
            b, p = buf.buf, buf.pos
        sec, frac, caplen, origlen = unpack(b, p)
        if caplen > limit:
            start = buf.offset
            message = (f"{name}: packet {number + 1} at offset {start}: captured length "
                       f"{caplen} is impossible (snaplen {snaplen})")
            if not number:
                raise CaptureError(f"{message}; no packet could be read")
            yield ReadProblem(f"{message}; the file is corrupt from here on", start,
                              number + 1, fatal=True)
            return
        need = rec_len + caplen
        if len(b) - p < need:
            if not buf.ensure(need):
                start = buf.offset
                yield ReadProblem(f"{name}: packet {number + 1} at offset {start}: file ends "
                                  f"after {buf.available() - rec_len} of {caplen} captured "
                                  "bytes", start, number + 1)
                return
            b, p = buf.buf, buf.pos
        number += 1
        data = b[p + rec_len:p + need]
        buf.pos = p + need
        if fcs and len(data) >= fcs:
            data = data[:-fcs]
        yield Record(number, sec * 1_000_000_000 + frac * ts_mult, linktype, 0, data,
                     origlen, buf.base + p)


BLOCK_NAMES = {PCAPNG_SHB: "section header block", BLOCK_IDB: "interface description block",
               BLOCK_OPB: "obsolete packet block", BLOCK_SPB: "simple packet block",
               0x00000004: "name resolution block", 0x00000005: "interface statistics block",
               BLOCK_EPB: "enhanced packet block", BLOCK_DSB: "decryption secrets block"}
_MIN_BLOCK = {PCAPNG_SHB: 28}
"""Smallest length of a block: 12 bytes of framing, plus the section header's fixed
fields (other short blocks are reported one by one and skipped)."""


def block_name(block_type: int) -> str:
    """A pcapng block type as people call it."""
    return BLOCK_NAMES.get(block_type, f"block of type 0x{block_type:08x}")


def block_length_fault(block_type: int, length: int) -> str | None:
    """What is wrong with a pcapng block's total length, or None."""
    least = _MIN_BLOCK.get(block_type, 12)
    if length < least:
        return f"length {length} is below the {least} bytes such a block needs"
    if length % 4:
        return f"length {length} is not a multiple of 4"
    if length > MAX_RECORD:
        return (f"length {length} ({length / (1 << 20):.0f} MiB) exceeds the "
                f"{MAX_RECORD >> 20} MiB this reader accepts for one block")
    return None


@dataclass
class InterfaceInfo:
    """A pcapng interface: link type, snaplen and how to turn its timestamps into ns."""

    linktype: int
    snaplen: int
    ts_num: int = 1_000_000_000
    ts_den: int = 1_000_000
    ts_offset_s: int = 0


def read_idb_options(body: bytes, endian: str, iface: InterfaceInfo) -> None:
    """Apply an Interface Description Block's options (if_tsresol, if_tsoffset)."""
    pos = 8
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(endian + "HH", body, pos)
        value = body[pos + 4:pos + 4 + length]
        if code == 0:
            break
        if code == 9 and length >= 1:
            res = value[0]
            if res & 0x80:
                iface.ts_den = 1 << (res & 0x7F)
            else:
                iface.ts_den = 10 ** res
        elif code == 14 and length == 8:
            iface.ts_offset_s = struct.unpack(endian + "q", value)[0]
        pos += 4 + ((length + 3) & ~3)


def _read_pcapng(buf: _Buffer, name: str) -> Iterator[Record | SecretsBlock | ReadProblem]:
    endian = "<"
    interfaces: list[InterfaceInfo] = []
    number = 0
    sections = 0
    while True:
        if not buf.ensure(12):
            if buf.available():
                message = (f"{name}: file ends inside a block header at offset {buf.offset} "
                           f"({buf.available()} of 12 bytes)")
                if not number and not sections:
                    raise CaptureError(f"{message}; no packet could be read")
                yield ReadProblem(message, buf.offset, number + 1)
            return
        start = buf.offset
        block_type = struct.unpack_from(endian + "I", buf.buf, buf.pos)[0]
        if block_type == PCAPNG_SHB:
            bom = buf.buf[buf.pos + 8:buf.pos + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                endian = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                endian = ">"
            else:
                if sections == 0:
                    raise CaptureError(f"{name}: pcapng section header with a bad byte-order "
                                       f"magic {bom.hex()}")
                yield ReadProblem(f"{name}: section header at offset {start} has a bad "
                                  f"byte-order magic {bom.hex()}; stopping", start, fatal=True)
                return
            sections += 1
            interfaces = []
        block_len = struct.unpack_from(endian + "I", buf.buf, buf.pos + 4)[0]
        fault = block_length_fault(block_type, block_len)
        if fault is not None:
            message = (f"{name}: {block_name(block_type)} at offset {start}"
                       f"{f' (after packet {number})' if number else ''}: {fault}")
            if not number:
                raise CaptureError(f"{message}; no packet could be read")
            yield ReadProblem(f"{message}; the file is corrupt from here on", start,
                              number + 1, fatal=True)
            return
        if not buf.ensure(block_len):
            message = (f"{name}: file ends inside a {block_len}-byte "
                       f"{block_name(block_type)} at offset {start}")
            if not number and block_type != BLOCK_DSB:
                raise CaptureError(f"{message} ({buf.available()} bytes present); no packet "
                                   "could be read")
            yield ReadProblem(f"{message} (after packet {number})", start, number + 1)
            return
        body = buf.buf[buf.pos + 8:buf.pos + block_len - 4]
        trailer = struct.unpack_from(endian + "I", buf.buf, buf.pos + block_len - 4)[0]
        buf.pos += block_len
        if trailer != block_len:
            yield ReadProblem(f"{name}: block at offset {start}: trailing length {trailer} "
                              f"differs from leading length {block_len}", start)
        if block_type == BLOCK_IDB:
            if len(body) < 8:
                yield ReadProblem(f"{name}: interface block at offset {start} too short", start)
                interfaces.append(InterfaceInfo(-1, 0))
                continue
            linktype, _res, snaplen = struct.unpack_from(endian + "HHI", body)
            iface = InterfaceInfo(linktype, snaplen)
            read_idb_options(body, endian, iface)
            interfaces.append(iface)
        elif block_type in (BLOCK_EPB, BLOCK_OPB):
            if block_type == BLOCK_EPB:
                if len(body) < 20:
                    yield ReadProblem(f"{name}: packet block at offset {start} too short",
                                      start, number + 1)
                    continue
                if_id, ts_hi, ts_lo, caplen, origlen = struct.unpack_from(endian + "IIIII", body)
            else:
                if len(body) < 20:
                    continue
                if_id, _drops, ts_hi, ts_lo, caplen, origlen = struct.unpack_from(
                    endian + "HHIIII", body)
            number += 1
            if if_id >= len(interfaces):
                yield ReadProblem(f"{name}: packet {number} at offset {start} names interface "
                                  f"{if_id}, but the section has {len(interfaces)}", start,
                                  number)
                continue
            if 20 + caplen > len(body):
                yield ReadProblem(f"{name}: packet {number} at offset {start}: captured length "
                                  f"{caplen} exceeds its block", start, number)
                caplen = len(body) - 20
            iface = interfaces[if_id]
            ts = (ts_hi << 32) | ts_lo
            ts_ns = (ts * iface.ts_num) // iface.ts_den + iface.ts_offset_s * 1_000_000_000
            yield Record(number, ts_ns, iface.linktype, if_id, body[20:20 + caplen], origlen,
                         start)
        elif block_type == BLOCK_SPB:
            number += 1
            if not interfaces:
                yield ReadProblem(f"{name}: simple packet block at offset {start} before any "
                                  "interface block", start, number)
                continue
            origlen = struct.unpack_from(endian + "I", body)[0] if len(body) >= 4 else 0
            iface = interfaces[0]
            caplen = min(origlen, iface.snaplen or origlen, len(body) - 4)
            yield Record(number, 0, iface.linktype, 0, body[4:4 + caplen], origlen, start)
        elif block_type == BLOCK_DSB:
            if len(body) < 8:
                yield ReadProblem(f"{name}: secrets block at offset {start} too short", start)
                continue
            stype, slen = struct.unpack_from(endian + "II", body)
            yield SecretsBlock(stype, body[8:8 + slen], start)
