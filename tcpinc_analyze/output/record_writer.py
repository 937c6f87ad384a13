"""Writing records read from a capture back out (``inject-secrets``, ``--pcap-out``).

A copy must keep what the reader saw: each record's link type, timestamp, captured bytes
and original length. The synthesizer's writers make new files from scratch; this one
copies, and says which packet it cannot represent instead of failing inside ``struct``:
pcapng's link type field has 16 bits and its timestamps are unsigned 64-bit counts (a
negative or far-future time gets an interface with an ``if_tsoffset``); pcap's seconds
are unsigned 32-bit.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from ..capture.reader import Record
from .safe_files import OutputError

NS = 1_000_000_000
_TS_LIMIT = 1 << 64
_SNAPLEN = 262144
_SHB, _IDB, _EPB, _DSB = 0x0A0D0D0A, 0x00000001, 0x00000006, 0x0000000A
_OPT_TSRESOL, _OPT_TSOFFSET, _OPT_USERAPPL = 9, 14, 4


def _pad(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def _options(opts: list[tuple[int, bytes]]) -> bytes:
    if not opts:
        return b""
    body = b"".join(struct.pack("<HH", code, len(v)) + _pad(v) for code, v in opts)
    return body + struct.pack("<HH", 0, 0)


def _orig(rec: Record, data: bytes, orig_len: int | None) -> int:
    """The original length to write: given, or the record's (changed by as much as its
    bytes were), never below the captured length and within 32 bits."""
    if orig_len is None:
        orig_len = rec.orig_len + len(data) - len(rec.data)
    return min(max(orig_len, len(data)), 0xFFFFFFFF)


class PcapngCopy:
    """A pcapng file of copied records, Decryption Secrets Blocks and interfaces made as
    the records need them (per input interface, link type and timestamp range)."""

    def __init__(self, out: BinaryIO, name: str) -> None:
        self.out = out
        self.name = name
        self.interfaces: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self.count = 0
        self._block(_SHB, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                    + _options([(_OPT_USERAPPL, b"tcpinc-analyze")]))

    def _block(self, block_type: int, body: bytes) -> None:
        body = _pad(body)
        length = 12 + len(body)
        self.out.write(struct.pack("<II", block_type, length) + body
                       + struct.pack("<I", length))

    def secrets(self, secrets_type: int, data: bytes) -> None:
        """A Decryption Secrets Block (before the packets it decrypts)."""
        self._block(_DSB, struct.pack("<II", secrets_type & 0xFFFFFFFF, len(data)) + _pad(data))

    def _interface(self, rec: Record) -> tuple[int, int]:
        """(interface id, offset in seconds) able to carry this record's timestamp."""
        if not 0 <= rec.linktype <= 0xFFFF:
            raise OutputError(f"{self.name}: packet {rec.number}: link type {rec.linktype} "
                              "does not fit pcapng's 16-bit link type field")
        known = self.interfaces.setdefault((rec.interface, rec.linktype), [])
        for iface, offset in known:
            if 0 <= rec.ts_ns - offset * NS < _TS_LIMIT:
                return iface, offset
        offset = 0 if 0 <= rec.ts_ns < _TS_LIMIT else rec.ts_ns // NS
        if not -(1 << 63) <= offset < (1 << 63):
            raise OutputError(f"{self.name}: packet {rec.number}: timestamp {rec.ts_ns} ns "
                              "cannot be represented in pcapng")
        opts = [(_OPT_TSRESOL, bytes((9,)))]
        if offset:
            opts.append((_OPT_TSOFFSET, struct.pack("<q", offset)))
        self._block(_IDB, struct.pack("<HHI", rec.linktype, 0, _SNAPLEN) + _options(opts))
        iface = self.count
        self.count += 1
        known.append((iface, offset))
        return iface, offset

    def write(self, rec: Record, data: bytes, orig_len: int | None = None) -> None:
        """One Enhanced Packet Block of ``data`` (the record's own bytes by default);
        the original length is the record's, or ``orig_len``, never below the captured
        length."""
        iface, offset = self._interface(rec)
        ts = rec.ts_ns - offset * NS
        orig = _orig(rec, data, orig_len)
        self._block(_EPB, struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data),
                                      orig) + _pad(data))


class PcapCopy:
    """A classic pcap file (nanosecond timestamps) of one link type."""

    def __init__(self, out: BinaryIO, name: str) -> None:
        self.out = out
        self.name = name
        self.linktype: int | None = None

    def write(self, rec: Record, data: bytes, orig_len: int | None = None) -> None:
        """One record; refuses a second link type and times pcap cannot hold."""
        if self.linktype is None:
            if not 0 <= rec.linktype <= 0xFFFFFFFF:
                raise OutputError(f"{self.name}: packet {rec.number}: link type "
                                  f"{rec.linktype} does not fit a pcap header")
            self.linktype = rec.linktype
            self.out.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, _SNAPLEN,
                                       rec.linktype))
        elif rec.linktype != self.linktype:
            raise OutputError(f"{self.name}: packet {rec.number} has link type "
                              f"{rec.linktype}, packet 1 had {self.linktype}: a pcap file "
                              "holds one link type; name the output *.pcapng")
        sec, frac = divmod(rec.ts_ns, NS)
        if not 0 <= sec <= 0xFFFFFFFF:
            raise OutputError(f"{self.name}: packet {rec.number}: timestamp {rec.ts_ns} ns "
                              "is outside pcap's range (1970 to 2106); name the output "
                              "*.pcapng")
        self.out.write(struct.pack("<IIII", sec, frac, len(data), _orig(rec, data, orig_len)))
        self.out.write(data)
