"""An index of record offsets over an mmap of the capture, built in a background thread.

Only offsets (8 bytes per packet) are kept; a record is decoded when it is shown, with
an LRU cache in front. Numbering follows ``capture.reader`` exactly (packet N of the
analyzer is ``offsets[N - 1]``).
"""

from __future__ import annotations

import bisect
import mmap
import os
import struct
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ..capture.reader import (
    BLOCK_EPB,
    BLOCK_IDB,
    BLOCK_OPB,
    BLOCK_SPB,
    MAX_RECORD,
    PCAP_MAGICS,
    PCAPNG_SHB,
    CaptureError,
    InterfaceInfo,
    Record,
    read_idb_options,
)

BATCH_SECONDS = 0.25
RECORD_CACHE = 512


@dataclass
class _Section:
    offset: int
    endian: str
    interfaces: list[InterfaceInfo]


class CaptureIndex:
    """Record offsets of one capture file, filled by :meth:`build` (run it in a thread)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.size = os.path.getsize(path)
        self._fh = open(path, "rb")  # noqa: SIM115 - closed in close()
        self.mm: mmap.mmap | bytes = (mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
                                      if self.size else b"")
        self.offsets = array("Q")
        self.scanned = 0
        """Bytes of the file indexed so far."""
        self.done = False
        self.cancelled = threading.Event()
        self.error: str | None = None
        self.format = "?"
        self._pcap: tuple[str, int, int, int, int] | None = None  # endian, mult, rec, link, fcs
        self._sections: list[_Section] = []
        self._section_starts: list[int] = []
        self._cache: OrderedDict[int, Record] = OrderedDict()
        self._lock = threading.Lock()
        head = bytes(self.mm[:4])
        if len(head) < 4:
            raise CaptureError(f"{path}: too short to be a capture file")
        magic_le = struct.unpack("<I", head)[0]
        magic_be = struct.unpack(">I", head)[0]
        if magic_le == PCAPNG_SHB:
            self.format = "pcapng"
            return
        for magic, endian in ((magic_le, "<"), (magic_be, ">")):
            if magic in PCAP_MAGICS:
                _e, mult, rec_len = PCAP_MAGICS[magic]
                if self.size < 24:
                    raise CaptureError(f"{path}: pcap header truncated")
                network = struct.unpack_from(endian + "I", self.mm, 20)[0]
                fcs = ((network >> 28) & 1) and ((network >> 29) & 7) * 2
                self._pcap = (endian, mult, rec_len, network & 0x0FFFFFFF, fcs)
                self.format = "pcap"
                return
        raise CaptureError(f"{path}: not a pcap or pcapng file (magic 0x{magic_be:08x})")

    # ------------------------------------------------------------------ building
    @property
    def count(self) -> int:
        """Packets indexed so far."""
        return len(self.offsets)

    @property
    def progress(self) -> float:
        """Fraction of the file indexed."""
        return 1.0 if self.done or not self.size else self.scanned / self.size

    def build(self, on_batch: Callable[[int], None] | None = None) -> None:
        """Walk the whole file (call from a worker thread); ``on_batch`` gets the count."""
        import time

        last = time.monotonic()
        try:
            walker = self._walk_pcap() if self._pcap else self._walk_pcapng()
            for n in walker:
                if self.cancelled.is_set():
                    return
                now = time.monotonic()
                if on_batch is not None and now - last >= BATCH_SECONDS:
                    last = now
                    on_batch(n)
        except (struct.error, ValueError) as exc:
            self.error = f"index stopped: {exc}"
        finally:
            self.done = not self.cancelled.is_set()
            if on_batch is not None:
                on_batch(self.count)

    def _walk_pcap(self) -> object:
        assert self._pcap is not None
        endian, _mult, rec_len, _link, _fcs = self._pcap
        mm, size, offsets = self.mm, self.size, self.offsets
        unpack = struct.Struct(endian + "I").unpack_from
        pos = 24
        step = 0
        while pos + rec_len <= size:
            caplen = unpack(mm, pos + 8)[0]
            if caplen > MAX_RECORD or pos + rec_len + caplen > size:
                break
            offsets.append(pos)
            pos += rec_len + caplen
            step += 1
            if step & 0x3FFF == 0:
                self.scanned = pos
                yield len(offsets)
        self.scanned = size

    def _walk_pcapng(self) -> object:
        mm, size, offsets = self.mm, self.size, self.offsets
        pos = 0
        endian = "<"
        section: _Section | None = None
        step = 0
        while pos + 12 <= size:
            block_type = struct.unpack_from(endian + "I", mm, pos)[0]
            if block_type == PCAPNG_SHB:
                bom = bytes(mm[pos + 8:pos + 12])
                endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
                section = _Section(pos, endian, [])
                self._sections.append(section)
                self._section_starts.append(pos)
            block_len = struct.unpack_from(endian + "I", mm, pos + 4)[0]
            if block_len < 12 or block_len % 4 or pos + block_len > size:
                break
            if section is not None:
                if block_type == BLOCK_IDB:
                    body = bytes(mm[pos + 8:pos + block_len - 4])
                    if len(body) >= 8:
                        linktype, _r, snaplen = struct.unpack_from(endian + "HHI", body)
                        iface = InterfaceInfo(linktype, snaplen)
                        read_idb_options(body, endian, iface)
                    else:
                        iface = InterfaceInfo(-1, 0)
                    section.interfaces.append(iface)
                elif block_type in (BLOCK_EPB, BLOCK_OPB):
                    if block_len - 12 >= 20:
                        offsets.append(pos)
                elif block_type == BLOCK_SPB:
                    offsets.append(pos)
            pos += block_len
            step += 1
            if step & 0x3FFF == 0:
                self.scanned = pos
                yield len(offsets)
        self.scanned = size

    # ------------------------------------------------------------------ reading
    def record(self, number: int) -> Record | None:
        """Packet ``number`` (1-based), decoded from the mmap; None if not indexed/valid."""
        with self._lock:
            rec = self._cache.get(number)
            if rec is not None:
                self._cache.move_to_end(number)
                return rec
        if not 1 <= number <= len(self.offsets):
            return None
        offset = self.offsets[number - 1]
        rec = self._read_pcap(number, offset) if self._pcap else self._read_pcapng(number, offset)
        if rec is not None:
            with self._lock:
                self._cache[number] = rec
                if len(self._cache) > RECORD_CACHE:
                    self._cache.popitem(last=False)
        return rec

    def _read_pcap(self, number: int, pos: int) -> Record:
        assert self._pcap is not None
        endian, mult, rec_len, linktype, fcs = self._pcap
        sec, frac, caplen, origlen = struct.unpack_from(endian + "IIII", self.mm, pos)
        data = bytes(self.mm[pos + rec_len:pos + rec_len + caplen])
        if fcs and len(data) >= fcs:
            data = data[:-fcs]
        return Record(number, sec * 1_000_000_000 + frac * mult, linktype, 0, data, origlen,
                      pos)

    def _read_pcapng(self, number: int, pos: int) -> Record | None:
        i = bisect.bisect_right(self._section_starts, pos) - 1
        if i < 0:
            return None
        section = self._sections[i]
        endian = section.endian
        block_type, block_len = struct.unpack_from(endian + "II", self.mm, pos)
        body = bytes(self.mm[pos + 8:pos + block_len - 4])
        if block_type == BLOCK_SPB:
            if not section.interfaces:
                return None
            origlen = struct.unpack_from(endian + "I", body)[0] if len(body) >= 4 else 0
            iface = section.interfaces[0]
            caplen = min(origlen, iface.snaplen or origlen, len(body) - 4)
            return Record(number, 0, iface.linktype, 0, body[4:4 + caplen], origlen, pos)
        if block_type == BLOCK_EPB:
            if_id, ts_hi, ts_lo, caplen, origlen = struct.unpack_from(endian + "IIIII", body)
        else:
            if_id, _d, ts_hi, ts_lo, caplen, origlen = struct.unpack_from(endian + "HHIIII", body)
        if if_id >= len(section.interfaces):
            return None
        caplen = min(caplen, len(body) - 20)
        iface = section.interfaces[if_id]
        ts = (ts_hi << 32) | ts_lo
        ts_ns = (ts * iface.ts_num) // iface.ts_den + iface.ts_offset_s * 1_000_000_000
        return Record(number, ts_ns, iface.linktype, if_id, body[20:20 + caplen], origlen, pos)

    def close(self) -> None:
        """Release the mmap and the file."""
        self.cancelled.set()
        if isinstance(self.mm, mmap.mmap):
            try:
                self.mm.close()
            except BufferError:
                pass
        self._fh.close()
