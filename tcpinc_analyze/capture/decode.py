"""From a captured frame to a TCP segment: link layers, IPv4/IPv6, fragments, TCP header.

This is the per-packet fast path: headers are sliced with ``struct`` instead of building
objects per layer, and nothing but the TCP fields the analyzer needs is extracted.
Truncated packets (snaplen) are decoded as far as their bytes go and marked, never
misparsed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

LINKTYPE_NAMES = {
    0: "NULL (BSD loopback)", 1: "Ethernet", 12: "raw IP", 14: "raw IP", 101: "raw IP",
    108: "LOOP (OpenBSD loopback)", 113: "Linux cooked (SLL)", 228: "raw IPv4",
    229: "raw IPv6", 276: "Linux cooked v2 (SLL2)",
}

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_VLAN_TPIDS = (0x8100, 0x88A8, 0x9100, 0x9200)
_AF_INET6 = (24, 28, 30, 10)
_U16 = struct.Struct("!H")
_TCP = struct.Struct("!HHIIBBHHH")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")

FRAG_BUFFER_MAX = 256
"""IP datagrams under reassembly at once; older ones are dropped (and reported)."""


@dataclass(slots=True)
class Segment:
    """The TCP facts of one packet."""

    number: int
    ts_ns: int
    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    options: bytes
    payload: bytes
    missing: int
    """Payload bytes the IP header announces that the capture does not hold (snaplen)."""
    options_truncated: bool = False


class FragmentTrain:
    """One IP datagram under reassembly: its bytes so far and which of them arrived."""

    __slots__ = ("data", "have", "filled", "total", "ops", "first")

    def __init__(self, first: int = 0) -> None:
        self.first = first
        """The packet that brought the train's first fragment."""
        self.data = bytearray()
        self.have = bytearray()
        """One flag per byte: arrived."""
        self.filled = 0
        self.total: int | None = None
        self.ops = 0
        """Bytes examined (tests bound it by the datagram's size times a constant)."""

    def add(self, offset: int, more: bool, body: bytes) -> bytes | None:
        """Take a fragment; return the datagram when it is complete."""
        end = offset + len(body)
        have = self.have
        if not more and self.total is None:
            self.total = end  # bytes past the last fragment's end count for nothing
            self.filled = have.count(1, 0, end)
            self.ops += min(len(have), end)
        stop = end if self.total is None else min(end, self.total)
        if stop > len(have):
            grow = stop - len(have)
            self.data += bytes(grow)
            have += bytes(grow)
        self.ops += max(stop - offset, 0)
        if offset >= stop:
            pass
        elif not have.count(1, offset, stop):  # the usual case: none of it arrived yet
            self.data[offset:stop] = body[:stop - offset]
            have[offset:stop] = b"\x01" * (stop - offset)
            self.filled += stop - offset
        else:  # overlapping fragments: the first copy of each byte stays
            data = self.data
            for i in range(offset, stop):
                if not have[i]:
                    have[i] = 1
                    data[i] = body[i - offset]
                    self.filled += 1
        if self.total is None or self.filled < self.total:
            return None
        return bytes(self.data[:self.total])


class DecodeProblem(Exception):
    """A packet whose headers are malformed; the message says where and why."""


def link_ip_offset(linktype: int, data: bytes) -> int | None:
    """Offset of the IP header in a frame, or None for a non-IP frame (ARP, LLC ...).

    Raises KeyError for a link type we do not understand.
    """
    if linktype == 1:
        if len(data) < 14:
            raise DecodeProblem(f"Ethernet header truncated ({len(data)} of 14 bytes)")
        pos = 12
        ethertype = (data[12] << 8) | data[13]
        while ethertype in _VLAN_TPIDS:
            if len(data) < pos + 6:
                raise DecodeProblem(f"VLAN tag truncated at byte {pos}")
            pos += 4
            ethertype = (data[pos] << 8) | data[pos + 1]
        if ethertype in (_ETH_IPV4, _ETH_IPV6):
            return pos + 2
        return None
    if linktype == 113:
        if len(data) < 16:
            raise DecodeProblem(f"Linux cooked header truncated ({len(data)} of 16 bytes)")
        return 16 if _U16.unpack_from(data, 14)[0] in (_ETH_IPV4, _ETH_IPV6) else None
    if linktype == 276:
        if len(data) < 20:
            raise DecodeProblem(f"Linux cooked v2 header truncated ({len(data)} of 20 bytes)")
        return 20 if _U16.unpack_from(data, 0)[0] in (_ETH_IPV4, _ETH_IPV6) else None
    if linktype in (0, 108):
        if len(data) < 4:
            raise DecodeProblem(f"loopback header truncated ({len(data)} of 4 bytes)")
        if linktype == 108:
            family = struct.unpack_from("!I", data)[0]
        else:
            family = struct.unpack_from("<I", data)[0]
            if family > 0xFFFF:  # written by a big-endian host
                family = struct.unpack_from("!I", data)[0]
        return 4 if family == 2 or family in _AF_INET6 else None
    if linktype in (12, 14, 101, 228, 229):
        return 0
    raise KeyError(linktype)


class IpDecoder:
    """IPv4/IPv6 to TCP, with fragment reassembly across packets."""

    def __init__(self) -> None:
        self.fragments: dict[tuple, FragmentTrain] = {}
        self.dropped_fragments = 0
        self.dropped_by_version = {4: 0, 6: 0}
        self.dropped_first: int | None = None
        """First packet of the earliest fragment train dropped unfinished."""

    def incomplete_trains(self) -> tuple[dict[int, int], int | None]:
        """Fragment trains that never completed (dropped to bound memory, or still
        waiting at the end of the capture), by IP version, and the first packet of the
        earliest: what the capture's report says once."""
        counts = dict(self.dropped_by_version)
        first = self.dropped_first
        for key, entry in self.fragments.items():
            counts[key[-1]] = counts.get(key[-1], 0) + 1
            if first is None or entry.first < first:
                first = entry.first
        return counts, first

    def decode(self, number: int, ts_ns: int, data: bytes, pos: int, orig_extra: int
               ) -> Segment | None:
        """Decode the IP packet at ``pos``. None when it is not (yet) a TCP segment.

        ``orig_extra`` is how many bytes of the frame the capture did not keep.
        """
        if len(data) <= pos:
            raise DecodeProblem("no IP header (frame ends at the link header)")
        version = data[pos] >> 4
        if version == 4:
            return self._ipv4(number, ts_ns, data, pos, orig_extra)
        if version == 6:
            return self._ipv6(number, ts_ns, data, pos, orig_extra)
        raise DecodeProblem(f"IP version {version} at byte {pos}: expected 4 or 6")

    def _ipv4(self, number: int, ts_ns: int, data: bytes, pos: int, orig_extra: int
              ) -> Segment | None:
        if len(data) < pos + 20:
            raise DecodeProblem(f"IPv4 header truncated at byte {pos} "
                                f"({len(data) - pos} of 20 bytes)")
        vihl, _tos, total, ident, frag, _ttl, proto, _ck, src, dst = _IPV4.unpack_from(data, pos)
        ihl = (vihl & 0x0F) * 4
        if ihl < 20:
            raise DecodeProblem(f"IPv4 header length {ihl} at byte {pos}: expected >= 20")
        if total < ihl:
            raise DecodeProblem(f"IPv4 total length {total} at byte {pos + 2} is shorter than "
                                f"its header ({ihl})")
        if proto != 6:
            return None
        end = pos + total
        captured_end = min(end, len(data))
        missing = max(0, end - len(data))
        offset = (frag & 0x1FFF) * 8
        more = bool(frag & 0x2000)
        if offset or more:
            body = data[pos + ihl:captured_end]
            if missing:
                raise DecodeProblem("truncated IPv4 fragment cannot be reassembled")
            whole = self._reassemble((src, dst, ident, 4), offset, more, body, number)
            if whole is None:
                return None
            return self._tcp(number, ts_ns, src, dst, whole, 0, len(whole), 0)
        return self._tcp(number, ts_ns, src, dst, data, pos + ihl, captured_end, missing)

    def _ipv6(self, number: int, ts_ns: int, data: bytes, pos: int, orig_extra: int
              ) -> Segment | None:
        if len(data) < pos + 40:
            raise DecodeProblem(f"IPv6 header truncated at byte {pos} "
                                f"({len(data) - pos} of 40 bytes)")
        plen = _U16.unpack_from(data, pos + 4)[0]
        nxt = data[pos + 6]
        src = data[pos + 8:pos + 24]
        dst = data[pos + 24:pos + 40]
        end = pos + 40 + plen
        if plen == 0:
            raise DecodeProblem("IPv6 jumbogram (payload length 0) is not supported")
        p = pos + 40
        frag: tuple[int, bool, int] | None = None
        while nxt != 6:
            if nxt in (0, 43, 60):  # hop-by-hop, routing, destination options
                if len(data) < p + 2:
                    raise DecodeProblem(f"IPv6 extension header truncated at byte {p}")
                nxt, hlen = data[p], (data[p + 1] + 1) * 8
                p += hlen
            elif nxt == 51:  # AH: length in 4-byte units, minus 2
                if len(data) < p + 2:
                    raise DecodeProblem(f"IPv6 AH header truncated at byte {p}")
                nxt, hlen = data[p], (data[p + 1] + 2) * 4
                p += hlen
            elif nxt == 44:
                if len(data) < p + 8:
                    raise DecodeProblem(f"IPv6 fragment header truncated at byte {p}")
                off_flags = _U16.unpack_from(data, p + 2)[0]
                frag = (off_flags & 0xFFF8, bool(off_flags & 1),
                        struct.unpack_from("!I", data, p + 4)[0])
                nxt = data[p]
                p += 8
            else:
                return None  # ESP, no next header, or another transport
            if p > end:
                raise DecodeProblem(f"IPv6 extension headers run past the payload (byte {p})")
        captured_end = min(end, len(data))
        missing = max(0, end - len(data))
        if frag is not None and (frag[0] or frag[1]):
            if missing:
                raise DecodeProblem("truncated IPv6 fragment cannot be reassembled")
            whole = self._reassemble((src, dst, frag[2], 6), frag[0], frag[1],
                                     data[p:captured_end], number)
            if whole is None:
                return None
            return self._tcp(number, ts_ns, src, dst, whole, 0, len(whole), 0)
        return self._tcp(number, ts_ns, src, dst, data, p, captured_end, missing)

    def _reassemble(self, key: tuple, offset: int, more: bool, body: bytes, number: int = 0
                    ) -> bytes | None:
        """Add one fragment; the whole datagram once every byte of it has arrived.

        Coverage is counted as fragments arrive (the first copy of a byte wins), so a
        train costs time linear in its bytes whatever the arrival order: sorting and
        copying every part on each arrival made 20 shuffled trains of 8,190 fragments
        take a minute (issue 10, item 25)."""
        train = self.fragments.get(key)
        if train is None:
            if len(self.fragments) >= FRAG_BUFFER_MAX:
                old_key = next(iter(self.fragments))
                old = self.fragments.pop(old_key)
                self.dropped_fragments += 1
                self.dropped_by_version[old_key[-1]] += 1
                if self.dropped_first is None or old.first < self.dropped_first:
                    self.dropped_first = old.first
            train = self.fragments[key] = FragmentTrain(number)
        whole = train.add(offset, more, body)
        if whole is not None:
            del self.fragments[key]
        return whole

    @staticmethod
    def _tcp(number: int, ts_ns: int, src: bytes, dst: bytes, data: bytes, pos: int, end: int,
             missing: int) -> Segment:
        if end - pos < 20:
            raise DecodeProblem(f"TCP header truncated at byte {pos} ({end - pos} of 20 bytes)")
        sport, dport, seq, ack, off, flags, window, _ck, _urg = _TCP.unpack_from(data, pos)
        hlen = (off >> 4) * 4
        if hlen < 20:
            raise DecodeProblem(f"TCP data offset {hlen} at byte {pos + 12}: expected >= 20")
        options_truncated = False
        if pos + hlen > end:
            if missing:
                options_truncated = True
                hlen = end - pos
            else:
                raise DecodeProblem(f"TCP data offset {hlen} at byte {pos + 12} runs past the "
                                    f"IP payload ({end - pos} bytes)")
        flags |= (off & 0x01) << 8
        return Segment(number, ts_ns, src, dst, sport, dport, seq, ack, flags, window,
                       data[pos + 20:pos + hlen], data[pos + hlen:end], missing,
                       options_truncated)
