"""The raw walk of a little-endian pcapng for flow shards (dumpcap's default format).

As for pcap (``shard.dispatch_pcap``), a round is a stretch of the file sent as it is to
every worker, with one integer per entry: enhanced packet blocks for that worker, and,
for every worker, the blocks that change how later ones read (section headers,
interface descriptions) or feed every analyzer (Decryption Secrets Blocks) and the
sweep ticks. Anything the capture reader would remark on (a bad length or trailer, an
unknown interface, simple or obsolete packet blocks, a big-endian section, a cut block)
ends the walk there; the capture reader goes on from that item, so its messages are
the single-process ones.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from ..analysis import engine
from ..capture.reader import (
    BLOCK_DSB,
    BLOCK_EPB,
    BLOCK_IDB,
    MAX_RECORD,
    PCAPNG_SHB,
    InterfaceInfo,
    Record,
    SecretsBlock,
    read_idb_options,
)

if TYPE_CHECKING:
    from .shard import ReaderState, Router, ShardAnalyzer

NG_ROUND = struct.Struct("<QQQ")
"""seq of the round's first item, file offset and length of the stretch."""
F_TICK, F_DSB, F_IDB, F_SHB = 8, 4, 2, 1
"""Entry flags (bits 60-63): a sweep tick after that packet, a secrets block, an
interface description, a section header."""
BLOCK_HEAD = struct.Struct("<II")
EPB_HEAD = struct.Struct("<IIIII")
U32 = struct.Struct("<I")
FAST_FIELDS = struct.Struct("!HBxH2xHxB22xB")
LE_BOM = b"\x4d\x3c\x2b\x1a"


def is_le_pcapng(head: bytes) -> bool:
    """A pcapng whose first section is little-endian."""
    return len(head) >= 12 and U32.unpack_from(head)[0] == PCAPNG_SHB and head[8:12] == LE_BOM


def _ts(ts: int, iface: InterfaceInfo) -> int:
    return (ts * iface.ts_num) // iface.ts_den + iface.ts_offset_s * 1_000_000_000


def dispatch_pcapng(stream: BinaryIO, jobs: int, reader: ReaderState,
                    send: Callable[[list[bytearray], bool], bool],
                    progress: Callable[[int], None] | None, round_bytes: int,
                    router: Router, fast_shard: Callable[[dict, bytes, int], int],
                    from_file: bool = False) -> int | None:
    """Walk the blocks; None at a clean end, else the item position where the capture
    reader must take over."""
    from .shard import ROUND_RECORDS

    sweep_every = engine.SWEEP_EVERY
    tcp = reader.tcp
    next_tick = (tcp // sweep_every + 1) * sweep_every
    cache: dict[bytes, int] = {}
    head_of, epb_of, fast, route = BLOCK_HEAD.unpack_from, EPB_HEAD.unpack_from, \
        FAST_FIELDS.unpack_from, router.route
    step = max(round_bytes, 1 << 16)
    buf, p, base, start = b"", 0, 0, 0
    seq = seq0 = 0
    packets = 0
    interfaces: list[InterfaceInfo] = []
    first_ts: int | None = None
    last: tuple[int, InterfaceInfo] | None = None
    entries = [array("Q") for _ in range(jobs)]

    def flush(final: bool) -> bool:
        out = []  # from_file: the workers read the stretch from the file themselves
        for mine in entries:
            msg = bytearray(b"M" if from_file else b"N")
            msg += NG_ROUND.pack(seq0, base + start, p - start)
            if not from_file:
                msg += buf[start:p]
            msg += mine.tobytes()
            out.append(msg)
        return send(out, final)

    def everyone(flag: int) -> None:
        entry = flag << 60 | (seq - seq0) << 32 | (p - start)
        for mine in entries:
            mine.append(entry)

    def totals() -> None:
        reader.packets += packets
        reader.tcp = tcp
        if first_ts is not None and reader.first_ts is None:
            reader.first_ts = first_ts
        if last is not None:
            reader.last_ts = _ts(last[0], last[1])

    while True:
        have = len(buf) - p
        if have >= 12:
            block_type, block_len = head_of(buf, p)
            if block_len < 12 or block_len % 4 or block_len > MAX_RECORD:
                break
            if block_len <= have:
                if U32.unpack_from(buf, p + block_len - 4)[0] != block_len:
                    break  # the reader reports the trailer
                if block_type == BLOCK_EPB:
                    if block_len < 32:
                        break
                    if_id, ts_hi, ts_lo, caplen, origlen = epb_of(buf, p + 8)
                    if if_id >= len(interfaces) or 20 + caplen > block_len - 12:
                        break
                    iface = interfaces[if_id]
                    d = p + 28
                    fast_path = False
                    if iface.linktype == 1 and caplen >= 54:
                        ethertype, vihl, total, frag, proto, off = fast(buf, d + 12)
                        fast_path = (ethertype == 0x0800 and vihl == 0x45 and proto == 6
                                     and not frag & 0x3FFF and 14 + total <= caplen
                                     and off >= 0x50 and 34 + ((off >> 4) << 2) <= 14 + total)
                    if fast_path:
                        key = buf[d + 26:d + 34]
                        shard = cache.get(key)
                        if shard is None:
                            shard = fast_shard(cache, key, jobs)
                        counted = True
                    else:
                        shard, counted = route(Record(
                            packets + 1, _ts(ts_hi << 32 | ts_lo, iface), iface.linktype,
                            if_id, buf[d:d + caplen], origlen, base + p))
                    rel = (seq - seq0) << 32 | (p - start)
                    entries[shard].append(rel)
                    if counted:
                        tcp += 1
                        if tcp == next_tick:
                            next_tick += sweep_every
                            for mine in entries:
                                mine.append(F_TICK << 60 | rel)
                    if first_ts is None:
                        first_ts = _ts(ts_hi << 32 | ts_lo, iface)
                    last = (ts_hi << 32 | ts_lo, iface)
                    packets += 1
                    seq += 1
                    if seq - seq0 >= ROUND_RECORDS:  # a full round: hand it on here
                        p += block_len
                        if not flush(False):
                            return None
                        entries = [array("Q") for _ in range(jobs)]
                        start, seq0 = p, seq
                        continue
                elif block_type == PCAPNG_SHB:
                    if buf[p + 8:p + 12] != LE_BOM:
                        break
                    interfaces = []
                    everyone(F_SHB)
                elif block_type == BLOCK_IDB:
                    body = buf[p + 8:p + block_len - 4]
                    if len(body) < 8:
                        break
                    linktype, _res, snaplen = struct.unpack_from("<HHI", body)
                    iface = InterfaceInfo(linktype, snaplen)
                    read_idb_options(body, "<", iface)
                    interfaces.append(iface)
                    everyone(F_IDB)
                elif block_type == BLOCK_DSB:
                    if block_len < 20:
                        break
                    stype, slen = struct.unpack_from("<II", buf, p + 8)
                    end = min(p + 16 + slen, p + block_len - 4)
                    reader.secrets.append(SecretsBlock(stype, buf[p + 16:end], base + p))
                    everyone(F_DSB)
                    seq += 1
                elif block_type in (2, 3):  # obsolete and simple packet blocks
                    break
                p += block_len
                continue
            need = block_len
        else:
            need = 12
        if not flush(False):
            return None
        entries = [array("Q") for _ in range(jobs)]
        if progress is not None:
            progress(base + p)
        more = stream.read(max(step, need))
        base += p
        buf, p, start, seq0 = buf[p:] + more, 0, 0, seq
        if not more:
            if buf:
                break  # a block cut short: the reader reports it
            totals()
            send([bytearray(b"N") + NG_ROUND.pack(seq, base, 0) for _ in range(jobs)], True)
            return None
        while len(buf) < need:  # a block longer than one read
            more = stream.read(need - len(buf))
            if not more:
                break
            buf += more
        if len(buf) < need:
            break
    totals()
    flush(False)
    return seq


def run_pcapng_batch(analyzer: ShardAnalyzer, msg: bytes) -> None:
    """A worker's side: read this worker's blocks out of the stretch, numbered as the
    capture reader numbers them (items are packets and secrets blocks only, here)."""
    seq0, base, size = NG_ROUND.unpack_from(msg, 1)
    src, at = analyzer.source(msg, 1 + NG_ROUND.size, base, size)
    entries = array("Q")
    entries.frombytes(msg[1 + NG_ROUND.size + (size if msg[:1] == b"N" else 0):])
    state = analyzer.__dict__.setdefault("pcapng", {"ifaces": [], "dsbs": 0})
    ifaces: list[InterfaceInfo] = state["ifaces"]
    epb_of, packet = EPB_HEAD.unpack_from, analyzer.packet
    for entry in entries:
        flags = entry >> 60
        seq = seq0 + ((entry >> 32) & 0x0FFFFFFF)
        off = (entry & 0xFFFFFFFF) + base + at
        if not flags:
            if_id, ts_hi, ts_lo, caplen, origlen = epb_of(src, off + 8)
            iface = ifaces[if_id]
            analyzer.seq = seq
            packet(Record(seq + 1 - state["dsbs"], _ts(ts_hi << 32 | ts_lo, iface),
                          iface.linktype, if_id, src[off + 28:off + 28 + caplen], origlen,
                          off - at))
        elif flags == F_TICK:
            if_id, ts_hi, ts_lo, _c, _o = epb_of(src, off + 8)
            analyzer.tick(seq, _ts(ts_hi << 32 | ts_lo, ifaces[if_id]))
        elif flags == F_IDB:
            block_len = U32.unpack_from(src, off + 4)[0]
            body = src[off + 8:off + block_len - 4]
            linktype, _res, snaplen = struct.unpack_from("<HHI", body)
            iface = InterfaceInfo(linktype, snaplen)
            read_idb_options(body, "<", iface)
            ifaces.append(iface)
        elif flags == F_SHB:
            ifaces.clear()
        elif flags == F_DSB:
            stype, slen = struct.unpack_from("<II", src, off + 8)
            end = min(off + 16 + slen, off + U32.unpack_from(src, off + 4)[0] - 4)
            analyzer.seq = seq
            analyzer.feed(SecretsBlock(stype, src[off + 16:end], off - at))
            state["dsbs"] += 1
