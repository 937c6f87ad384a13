"""One packet as a tree of named fields with byte ranges (for the detail and hex panes).

Decoded only when a packet is shown; tcpcrypt nodes use the connection's deep run to
place Init messages and frames inside the packet's payload.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from ..capture.decode import LINKTYPE_NAMES, DecodeProblem, IpDecoder, Segment, link_ip_offset
from ..capture.reader import Record
from ..eno import decode_option
from ..tcp.options import OPTION_NAMES, walk_options
from ..wire import ENO_EXPERIMENTAL_KINDS, ENO_KIND, GENERAL_MAX, GLT_MASK, TCPCRYPT_TEPS, V_BIT
from .fields import fmt
from .model import ConnDetail

FLAG_NAMES = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"]


@dataclass
class Node:
    """A tree node: a label, the bytes it covers in the frame, children."""

    label: str
    start: int = 0
    end: int = 0
    children: list[Node] = field(default_factory=list)
    abbrev: str | None = None

    def add(self, label: str, start: int = 0, end: int = 0, abbrev: str | None = None
            ) -> Node:
        """Append a child and return it."""
        node = Node(label, start, end, abbrev=abbrev)
        self.children.append(node)
        return node

    def f(self, abbrev: str, value: object, start: int, end: int) -> Node:
        """Append a named field (label from the field spec)."""
        return self.add(fmt(abbrev, value), start, end, abbrev)


@dataclass
class Dissection:
    """The decoded packet."""

    record: Record
    nodes: list[Node]
    segment: Segment | None = None
    tcp_payload: int = 0
    """Offset of the TCP payload in the frame."""


def flag_text(flags: int) -> str:
    """``SYN,ACK`` style."""
    return ",".join(n for i, n in enumerate(FLAG_NAMES) if flags & (1 << i)) or "none"


def _addr(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def dissect(rec: Record, detail: ConnDetail | None = None) -> Dissection:
    """Decode a record into a field tree."""
    data = rec.data
    frame = Node(f"Frame {rec.number}: {len(data)} bytes captured ({rec.orig_len} on the wire),"
                 f" interface {rec.interface}", 0, len(data))
    frame.add(f"Link type: {rec.linktype} ({LINKTYPE_NAMES.get(rec.linktype, 'unknown')})")
    frame.add(f"Arrival time: {rec.ts_ns / 1e9:.9f}")
    frame.add(f"File offset: {rec.offset}")
    nodes = [frame]
    out = Dissection(rec, nodes)
    try:
        pos = link_ip_offset(rec.linktype, data)
    except KeyError:
        nodes.append(Node(f"Unsupported link type {rec.linktype}", 0, len(data)))
        return out
    except DecodeProblem as exc:
        nodes.append(Node(f"Malformed link header: {exc}", 0, len(data)))
        return out
    if pos is None:
        nodes.append(Node("Not IP", 0, len(data)))
        return out
    link = Node(f"Link layer ({LINKTYPE_NAMES.get(rec.linktype, rec.linktype)})", 0, pos)
    if rec.linktype == 1 and len(data) >= 14:
        link.add(f"Destination: {data[0:6].hex(':')}", 0, 6)
        link.add(f"Source: {data[6:12].hex(':')}", 6, 12)
        p = 12
        while p + 4 <= pos:
            tpid, tci = struct.unpack_from("!HH", data, p)
            if tpid in (0x8100, 0x88A8, 0x9100, 0x9200):
                link.add(f"802.1Q VLAN: id {tci & 0xFFF} (TPID 0x{tpid:04x})", p, p + 4)
                p += 4
            else:
                break
        link.add(f"Type: 0x{struct.unpack_from('!H', data, pos - 2)[0]:04x}", pos - 2, pos)
    nodes.append(link)
    try:
        seg = IpDecoder().decode(rec.number, rec.ts_ns, data, pos, rec.orig_len - len(data))
    except DecodeProblem as exc:
        nodes.append(Node(f"Malformed IP/TCP: {exc}", pos, len(data)))
        return out
    version = data[pos] >> 4
    if version == 4:
        ihl = (data[pos] & 0x0F) * 4
        ip = Node(f"Internet Protocol Version 4, Src: {_addr(data[pos + 12:pos + 16])}, "
                  f"Dst: {_addr(data[pos + 16:pos + 20])}", pos, pos + ihl)
        ip.add(f"Total length: {struct.unpack_from('!H', data, pos + 2)[0]}", pos + 2, pos + 4)
        ip.add(f"TTL: {data[pos + 8]}", pos + 8, pos + 9)
        ip.add(f"Protocol: {data[pos + 9]}", pos + 9, pos + 10)
        ip.add(f"Source: {_addr(data[pos + 12:pos + 16])}", pos + 12, pos + 16)
        ip.add(f"Destination: {_addr(data[pos + 16:pos + 20])}", pos + 16, pos + 20)
        tcp_pos = pos + ihl
    else:
        ip = Node(f"Internet Protocol Version 6, Src: {_addr(data[pos + 8:pos + 24])}, "
                  f"Dst: {_addr(data[pos + 24:pos + 40])}", pos, pos + 40)
        ip.add(f"Payload length: {struct.unpack_from('!H', data, pos + 4)[0]}", pos + 4, pos + 6)
        ip.add(f"Next header: {data[pos + 6]}", pos + 6, pos + 7)
        ip.add(f"Source: {_addr(data[pos + 8:pos + 24])}", pos + 8, pos + 24)
        ip.add(f"Destination: {_addr(data[pos + 24:pos + 40])}", pos + 24, pos + 40)
        tcp_pos = pos + 40  # extension headers are shown as part of the TCP search below
        nxt = data[pos + 6]
        while nxt != 6 and tcp_pos + 2 <= len(data):
            if nxt in (0, 43, 60):
                nxt, tcp_pos = data[tcp_pos], tcp_pos + (data[tcp_pos + 1] + 1) * 8
            elif nxt == 44:
                nxt, tcp_pos = data[tcp_pos], tcp_pos + 8
            else:
                break
    nodes.append(ip)
    if seg is None:
        nodes.append(Node("Not a TCP segment (or a fragment)", tcp_pos, len(data)))
        return out
    out.segment = seg
    hlen = 20 + len(seg.options)
    payload_at = tcp_pos + hlen
    out.tcp_payload = payload_at
    direction = detail.pkt_dir.get(rec.number) if detail else None
    isn = detail.isn.get(direction) if detail and direction else None
    rel = (seg.seq - isn) & 0xFFFFFFFF if isn is not None else None
    tcp = Node(f"Transmission Control Protocol, Src Port: {seg.sport}, Dst Port: {seg.dport}, "
               f"Seq: {rel if rel is not None else seg.seq}, Len: {len(seg.payload)}",
               tcp_pos, min(len(data), payload_at + len(seg.payload)))
    tcp.add(f"Source port: {seg.sport}", tcp_pos, tcp_pos + 2)
    tcp.add(f"Destination port: {seg.dport}", tcp_pos + 2, tcp_pos + 4)
    tcp.add(f"Sequence number: {seg.seq}" + (f" (relative {rel})" if rel is not None else ""),
            tcp_pos + 4, tcp_pos + 8)
    tcp.add(f"Acknowledgment number: {seg.ack}", tcp_pos + 8, tcp_pos + 12)
    tcp.add(f"Header length: {hlen}", tcp_pos + 12, tcp_pos + 13)
    tcp.add(f"Flags: 0x{seg.flags:03x} ({flag_text(seg.flags)})", tcp_pos + 12, tcp_pos + 14)
    tcp.add(f"Window: {seg.window}", tcp_pos + 14, tcp_pos + 16)
    if seg.options:
        _options(tcp, seg, tcp_pos + 20)
    if seg.missing:
        tcp.add(f"[{seg.missing} payload bytes not captured (snaplen)]")
    nodes.append(tcp)
    if seg.payload and detail is not None and direction is not None and rel is not None:
        _tcpcrypt(nodes, detail, direction, rel - 1, payload_at, len(seg.payload))
    elif seg.payload:
        nodes.append(Node(f"TCP payload ({len(seg.payload)} bytes)", payload_at,
                          payload_at + len(seg.payload)))
    return out


def _options(tcp: Node, seg: Segment, base: int) -> None:
    opts = tcp.add(f"Options: ({len(seg.options)} bytes)", base, base + len(seg.options))
    walked, findings, bad = walk_options(seg.options)
    for kind, off, odata in walked:
        start, end = base + off, base + off + 2 + len(odata)
        if kind == ENO_KIND or kind in ENO_EXPERIMENTAL_KINDS:
            eno = decode_option(kind, odata, off)
            if eno is not None:
                _eno(opts, eno, kind, odata, start, end)
                continue
        name = OPTION_NAMES.get(kind, "unknown")
        opts.add(f"Option kind {kind} ({name}), length {len(odata) + 2}", start, end)
    for finding in findings:
        opts.add(f"[{finding.severity}] {finding.message}")
    if bad is not None:
        opts.add(f"[malformed option kind {bad}: parsing stopped]")


def _eno(opts: Node, eno: object, kind: int, odata: bytes, start: int, end: int) -> None:
    node = opts.add(f"TCP-ENO option ({eno.encoding} encoding), {len(odata) + 2} bytes"  # type: ignore[attr-defined]
                    + (" [MALFORMED]" if eno.malformed else ""), start, end,  # type: ignore[attr-defined]
                    "tcpeno")
    node.f("tcpeno.kind", kind, start, start + 1)
    node.f("tcpeno.length", len(odata) + 2, start + 1, start + 2)
    p = start + 2
    contents = odata
    if kind in ENO_EXPERIMENTAL_KINDS:
        node.f("tcpeno.exid", int.from_bytes(odata[:2], "big"), p, p + 2)
        p += 2
        contents = odata[2:]
    node.f("tcpeno.option.encoding", eno.encoding, start, end)  # type: ignore[attr-defined]
    if eno.malformed:  # type: ignore[attr-defined]
        node.f("tcpeno.malformed", True, start, end)
    for finding in eno.findings:  # type: ignore[attr-defined]
        node.add(f"[{finding.severity}] {finding.code}: {finding.message}")
    i = 0
    n = len(contents)
    while i < n:
        cs = contents[i]
        at = p + i
        if cs & V_BIT == 0:
            if cs <= GENERAL_MAX:
                sub = node.f("tcpeno.general", cs, at, at + 1)
                sub.f("tcpeno.general.b", bool(cs & 1), at, at + 1)
                sub.f("tcpeno.general.aa", (cs >> 1) & 3, at, at + 1)
                sub.f("tcpeno.general.zz", (cs >> 3) & 3, at, at + 1)
            else:
                sub = node.f("tcpeno.tep", cs, at, at + 1)
                sub.f("tcpeno.tep.v", False, at, at + 1)
            i += 1
            continue
        glt = cs & GLT_MASK
        if glt > GENERAL_MAX:
            sub = node.f("tcpeno.tep", glt, at, p + n)
            sub.f("tcpeno.tep.v", True, at, at + 1)
            sub.f("tcpeno.tep.data", bytes(contents[i + 1:]), at + 1, p + n)
            break
        length = glt + 1
        sub = node.f("tcpeno.length_byte", cs, at, min(p + n, at + 2 + length))
        sub.f("tcpeno.length_byte.data_len", length, at, at + 1)
        if i + 1 >= n:
            break
        tep = contents[i + 1]
        sub.f("tcpeno.tep", tep & GLT_MASK, at + 1, at + 2)
        sub.f("tcpeno.tep.data", bytes(contents[i + 2:i + 2 + length]), at + 2,
              min(p + n, at + 2 + length))
        i += 2 + length


def _tcpcrypt(nodes: list[Node], detail: ConnDetail, direction: str, stream_start: int,
              payload_at: int, length: int) -> None:
    """Init messages and frames inside this payload (stream bytes [start, start+len))."""
    stream_end = stream_start + length
    tc = detail.report.get("tcpcrypt") or {}
    tep = tc.get("tep")
    arrow = "A->B" if direction == "ab" else "B->A"
    root = Node(f"tcpcrypt ({arrow}), stream bytes {stream_start}-{stream_end - 1}",
                payload_at, payload_at + length, abbrev="tcpcrypt")

    def place(s0: int, s1: int) -> tuple[int, int]:
        a, b = max(s0, stream_start), min(s1, stream_end)
        return payload_at + a - stream_start, payload_at + max(a, b) - stream_start

    root.f("tcpcrypt.direction", direction, payload_at, payload_at)
    root.f("tcpcrypt.stream_offset", stream_start, payload_at, payload_at)
    init = detail.init.get(direction)
    if init is not None and stream_start < len(init[1]):
        raw = init[1]
        which = "init1" if direction == "ab" else "init2"
        node = root.f(f"tcpcrypt.{which}", which.capitalize(), *place(0, len(raw)))
        node.label = f"{which.capitalize()} ({len(raw)} bytes)"
        node.f("tcpcrypt.continued_in", init[0], *place(0, 0))
        if len(raw) >= 9:
            node.f(f"tcpcrypt.{which}.magic", struct.unpack_from(">I", raw)[0], *place(0, 4))
            node.f(f"tcpcrypt.{which}.length", struct.unpack_from(">I", raw, 4)[0],
                   *place(4, 8))
            info = TCPCRYPT_TEPS.get(tep) if tep else None
            if which == "init1":
                nc = raw[8]
                node.f("tcpcrypt.init1.nciphers", nc, *place(8, 9))
                for k in range(nc):
                    if 9 + k < len(raw):
                        node.f("tcpcrypt.init1.sym_cipher", raw[9 + k], *place(9 + k, 10 + k))
                q = 9 + nc
                node.f("tcpcrypt.init1.nonce", raw[q:q + 32], *place(q, q + 32))
                q += 32
            else:
                node.f("tcpcrypt.init2.sym_cipher", raw[8], *place(8, 9))
                node.f("tcpcrypt.init2.nonce", raw[9:41], *place(9, 41))
                q = 41
            if info is not None:
                node.f(f"tcpcrypt.{which}.pubkey", raw[q:q + info.pubkey_len],
                       *place(q, q + info.pubkey_len))
                q += info.pubkey_len
                if q < len(raw):
                    node.f(f"tcpcrypt.{which}.ignored", raw[q:], *place(q, len(raw)))
    for fr in detail.frames_in(direction, stream_start, stream_end):
        number = [f for f in detail.frames if f.direction == direction].index(fr)
        node = root.f("tcpcrypt.frame", "", *place(fr.stream_offset, fr.end))
        state = {"ok": "verified", "failed": "AUTHENTICATION FAILED", "unknown": "no keys"}
        node.label = (f"Frame at stream offset {fr.stream_offset}, {fr.length} bytes"
                      f"{' (rekey)' if fr.control & 1 else ''} [{state[fr.verdict]}]")
        if fr.packet != detail.packets[-1] and fr.first_packet != fr.packet:
            node.add(f"Segments: packets {fr.first_packet}..{fr.packet}")
        node.f("tcpcrypt.frame.number", number + 1, *place(fr.stream_offset, fr.stream_offset))
        ctl = node.f("tcpcrypt.frame.control", fr.control,
                     *place(fr.stream_offset, fr.stream_offset + 1))
        ctl.f("tcpcrypt.frame.control.rekey", bool(fr.control & 1),
              *place(fr.stream_offset, fr.stream_offset + 1))
        ctl.f("tcpcrypt.frame.control.reserved", fr.control & 0xFE,
              *place(fr.stream_offset, fr.stream_offset + 1))
        node.f("tcpcrypt.frame.length", fr.length,
               *place(fr.stream_offset + 1, fr.stream_offset + 3))
        node.f("tcpcrypt.frame.offset", fr.offset, *place(fr.stream_offset, fr.stream_offset))
        node.add(f"Ciphertext: {fr.length - 16} bytes", *place(fr.stream_offset + 3, fr.end - 16),
                 "tcpcrypt.frame.ciphertext").label = fmt(
            "tcpcrypt.frame.ciphertext", f"{fr.length - 16} bytes")
        node.add(fmt("tcpcrypt.frame.tag", "16 bytes"), *place(fr.end - 16, fr.end),
                 "tcpcrypt.frame.tag")
        if fr.verdict != "unknown":
            node.f("tcpcrypt.frame.verified", fr.verdict == "ok", *place(fr.stream_offset,
                                                                          fr.end))
        if fr.plaintext is not None:
            pt = node.add("Plaintext", *place(fr.stream_offset + 3, fr.end - 16),
                          "tcpcrypt.plaintext")
            span = place(fr.stream_offset + 3, fr.end - 16)
            pt.f("tcpcrypt.plaintext.data_len", len(fr.plaintext), *span)
            pt.f("tcpcrypt.plaintext.data", fr.plaintext, *span)
    if not root.children[2:] and stream_start >= len(init[1] if init else b""):
        root.add(f"Data ({length} bytes, no complete frame ends in this packet)", payload_at,
                 payload_at + length)
    nodes.append(root)
