"""One packet as a tree of named fields with byte ranges (for the detail and hex panes).

Decoded only when a packet is shown; tcpcrypt nodes use the connection's deep run to
place Init messages and frames inside the packet's payload. Field names and value names
come from the field spec (RFC 8547 §4, RFC 8548 §4, §5 terms); generated nodes (the
connection's ENO outcome, the tcpcrypt session, the packet's findings) cover no bytes.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from ..capture.decode import LINKTYPE_NAMES, DecodeProblem, IpDecoder, Segment, link_ip_offset
from ..capture.reader import Record
from ..eno import (
    SUB_FRESH,
    SUB_INVALID,
    EnoOption,
    TepSuboption,
    decode_option,
    tcpcrypt_suboption_kind,
)
from ..tcp.options import OPTION_NAMES, walk_options
from ..tcpcrypt.messages import Init1
from ..wire import (
    AEAD_TAG_LEN,
    DIALECT_TCPCRYPTD_2016,
    ENO_EXPERIMENTAL_KINDS,
    ENO_KIND,
    FRAME_HEADER_LEN,
    GLOBAL_A,
    GLOBAL_B,
    GLOBAL_MAX,
    GLOBAL_Z_MASK,
    GLT_MASK,
    INIT1_MAGIC,
    N_A_LEN,
    N_B_LEN,
    NONCE_OFFSET_AFTER_INIT,
    NONCE_OFFSET_TCP_STREAM,
    PLAINTEXT_RESERVED,
    PUBKEY_LEN_FIELD,
    RESUME_HALF_LEN,
    SYM_CIPHER_LEN,
    TCPCRYPT_TEPS,
    V_BIT,
    frame_id_offset,
    urgent_index,
)
from .fields import fmt
from .model import ConnDetail, FrameRecord, InitRecord

FLAG_NAMES = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"]
SYN = 0x02
ARROWS = {"ab": "A->B", "ba": "B->A"}
Place = Callable[[int, int], tuple[int, int]]
"""Stream bytes [s0, s1) -> the part of them in this packet, as frame offsets."""


@dataclass
class Node:
    """A tree node: a label, the bytes it covers in the frame, children."""

    label: str
    start: int = 0
    end: int = 0
    children: list[Node] = field(default_factory=list)
    abbrev: str | None = None
    expanded: bool | None = None
    """Whether the tree opens this node (None: the tree decides)."""
    value: object = None
    """The field's value (what a packet filter compares), for named fields."""

    def add(self, label: str, start: int = 0, end: int = 0, abbrev: str | None = None
            ) -> Node:
        """Append a child and return it."""
        node = Node(label, start, end, abbrev=abbrev)
        self.children.append(node)
        return node

    def f(self, abbrev: str, value: object, start: int = 0, end: int = 0, *,
          raw: int | None = None, note: str = "") -> Node:
        """Append a named field (label from the field spec; ``raw``: the whole byte of a
        bit field; ``note``: text after the value)."""
        node = self.add(fmt(abbrev, value, raw) + note, start, end, abbrev)
        node.value = value
        return node


@dataclass
class Dissection:
    """The decoded packet."""

    record: Record
    nodes: list[Node]
    segment: Segment | None = None
    tcp_payload: int = 0
    """Offset of the TCP payload in the frame."""


def field_values(nodes: list[Node]) -> dict[str, list]:
    """Every named field of a dissection with its values (a protocol or subtree node
    without a value counts as present), for packet filters."""
    out: dict[str, list] = {}
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if node.abbrev:
            out.setdefault(node.abbrev, []).append(True if node.value is None else node.value)
        stack.extend(node.children)
    return out


def node_text(nodes: list[Node]) -> str:
    """Every label of a dissection, lower-cased (what a search in decoded fields looks
    through)."""
    parts = []
    stack = list(nodes)
    while stack:
        node = stack.pop()
        parts.append(node.label)
        stack.extend(node.children)
    return "\n".join(parts).lower()


def flag_text(flags: int) -> str:
    """``SYN,ACK`` style."""
    return ",".join(n for i, n in enumerate(FLAG_NAMES) if flags & (1 << i)) or "none"


def _addr(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def dissect(rec: Record, detail: ConnDetail | None = None,
            findings: list[dict] | None = None) -> Dissection:
    """Decode a record into a field tree.

    ``detail`` is the connection's deep run (tcpcrypt messages, frames, the ENO outcome);
    ``findings`` the connection's findings (JSON form): those of this packet are listed
    under "Expert info", a broken RFC rule with its code and section."""
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
    syn = bool(seg.flags & SYN)
    if seg.options:
        _options(tcp, seg, tcp_pos + 20, syn)
    if seg.missing:
        tcp.add(f"[{seg.missing} payload bytes not captured (snaplen)]")
    nodes.append(tcp)
    if detail is not None and direction is not None:
        _eno_connection(nodes, detail, direction, rec.number)
    tcpcrypt_runs = detail is not None and bool(
        detail.report.get("tcpcrypt") or detail.init or detail.frames)
    if seg.payload and syn:
        nodes.append(Node(f"SYN data ({len(seg.payload)} bytes): not part of the stream; "
                          "a receiver discards SYN data its SYN TEP does not define "
                          "(RFC 8547 §4.7)", payload_at, payload_at + len(seg.payload)))
    elif (seg.payload and tcpcrypt_runs and detail is not None and direction is not None
          and rel is not None):
        _tcpcrypt(nodes, detail, direction, rel - 1, payload_at, len(seg.payload))
    elif seg.payload:
        nodes.append(Node(f"TCP payload ({len(seg.payload)} bytes)", payload_at,
                          payload_at + len(seg.payload)))
    if findings:
        _expert(nodes, [f for f in findings if f.get("packet") == rec.number])
    return out


def _options(tcp: Node, seg: Segment, base: int, syn: bool) -> None:
    opts = tcp.add(f"Options: ({len(seg.options)} bytes)", base, base + len(seg.options))
    walked, findings, bad = walk_options(seg.options)
    for kind, off, odata in walked:
        start, end = base + off, base + off + 2 + len(odata)
        if kind == ENO_KIND or kind in ENO_EXPERIMENTAL_KINDS:
            eno = decode_option(kind, odata, off)
            if eno is not None:
                _eno(opts, eno, odata, start, end, syn)
                continue
        name = OPTION_NAMES.get(kind, "unknown")
        opts.add(f"Option kind {kind} ({name}), length {len(odata) + 2}", start, end)
    for finding in findings:
        opts.add(f"[{finding.severity}] {finding.message}")
    if bad is not None:
        opts.add(f"[malformed option kind {bad}: parsing stopped]")


def _finding_text(finding: object) -> str:
    rfc = getattr(finding, "rfc", None)
    return (f"[{finding.severity}] {finding.code}: {finding.message}"  # type: ignore[attr-defined]
            + (f" ({rfc})" if rfc else ""))


def _eno(opts: Node, eno: EnoOption, odata: bytes, start: int, end: int, syn: bool) -> None:
    """One ENO option: SYN-form suboptions (RFC 8547 §4.1-§4.4), or a non-SYN-form
    acknowledgment whose contents tcpcrypt gives no meaning."""
    kind = eno.kind
    form = "SYN-form" if syn else "non-SYN-form"
    node = opts.add(f"TCP-ENO option ({eno.encoding} encoding, {form}), {len(odata) + 2} bytes"
                    + (" [MALFORMED]" if eno.malformed else ""), start, end, "tcpeno")
    node.f("tcpeno.kind", kind, start, start + 1)
    node.f("tcpeno.length", len(odata) + 2, start + 1, start + 2)
    p = start + 2
    contents = odata
    if kind in ENO_EXPERIMENTAL_KINDS:
        node.f("tcpeno.exid", int.from_bytes(odata[:2], "big"), p, p + 2)
        p += 2
        contents = odata[2:]
    node.f("tcpeno.option.encoding", eno.encoding, start, end)
    n = len(contents)
    if not syn:
        if contents:
            node.add(f"Contents: {contents.hex()} ({n} bytes): a non-SYN-form option only "
                     "acknowledges ENO; tcpcrypt gives its contents no meaning, so they must "
                     "be empty (RFC 8547 §4.1)", p, p + n)
        else:
            node.add("Non-SYN-form option: acknowledges ENO (no contents)", start, end)
        return
    if eno.malformed:
        node.f("tcpeno.malformed", True, start, end,
               note=" (the option is ignored and ENO fails, RFC 8547 §4.4)")
    for finding in eno.findings:
        node.add(_finding_text(finding))
    globals_seen = 0
    i = 0
    while i < n:
        cs = contents[i]
        at = p + i
        if cs & V_BIT == 0:
            if cs <= GLOBAL_MAX:
                globals_seen += 1
                note = "" if globals_seen == 1 else (
                    " [ignored: only the first global suboption counts, RFC 8547 §4.2]")
                sub = node.f("tcpeno.global", cs, at, at + 1, note=note)
                sub.f("tcpeno.global.b", bool(cs & GLOBAL_B), at, at + 1, raw=cs)
                sub.f("tcpeno.global.a", bool(cs & GLOBAL_A), at, at + 1, raw=cs)
                sub.f("tcpeno.global.z", (cs & GLOBAL_Z_MASK) >> 2, at, at + 1, raw=cs,
                      note=" (reserved: must be sent as zero)" if cs & GLOBAL_Z_MASK else "")
            else:
                sub = node.f("tcpeno.tep", cs, at, at + 1, raw=cs)
                sub.f("tcpeno.tep.v", False, at, at + 1, raw=cs)
            i += 1
            continue
        glt = cs & GLT_MASK
        if glt > GLOBAL_MAX:
            sub = node.f("tcpeno.tep", glt, at, p + n, raw=cs)
            sub.f("tcpeno.tep.v", True, at, at + 1, raw=cs,
                  note=" (data runs to the end of the option)")
            _tep_data(sub, glt, bytes(contents[i + 1:]), at + 1)
            break
        length = glt + 1
        lb = node.f("tcpeno.length_byte", cs, at, min(p + n, at + 2 + length))
        lb.f("tcpeno.length_byte.data_len", length, at, at + 1)
        if i + 1 >= n:
            lb.add("[error: the length byte is the option's last byte (RFC 8547 §4.4)]")
            break
        tep_byte = contents[i + 1]
        if tep_byte < 0xA0:
            lb.add(f"[error: followed by 0x{tep_byte:02x}, expected a TEP identifier with "
                   "v = 1 (0xa0-0xff) (RFC 8547 §4.4)]", at + 1, at + 2)
            break
        if i + 2 + length > n:
            lb.add(f"[error: announces {length} data bytes, only {n - i - 2} remain in the "
                   "option (RFC 8547 §4.4)]", at, p + n)
            break
        sub = lb.f("tcpeno.tep", tep_byte & GLT_MASK, at + 1, at + 2 + length, raw=tep_byte)
        sub.f("tcpeno.tep.v", True, at + 1, at + 2, raw=tep_byte)
        _tep_data(sub, tep_byte & GLT_MASK, bytes(contents[i + 2:i + 2 + length]), at + 2)
        i += 2 + length
    if not globals_seen and not eno.malformed:
        imp = node.f("tcpeno.global.implicit", True, start, start,
                     note=" (no explicit global suboption: 0x00 applies, b = 0, a = 0)")
        imp.expanded = False


def _tep_data(sub: Node, tep: int, data: bytes, at: int) -> None:
    """A TEP's suboption data; for tcpcrypt, what it asks for (RFC 8548 §3.5)."""
    sub.f("tcpeno.tep.data", data, at, at + len(data))
    if tep not in TCPCRYPT_TEPS:
        return
    kind = tcpcrypt_suboption_kind(TepSuboption(tep, data))
    if kind == SUB_FRESH:
        sub.add(f"[{len(data)} data bytes: fewer than a resumption identifier half, so a "
                "plain offer as if v = 0]", at, at + len(data))
    elif kind == SUB_INVALID:
        sub.add(f"[{len(data)} data bytes: a resumption suboption carries at most 17 (9-byte "
                "half, nonce of 0-8 bytes): invalid (RFC 8548 §3.5)]", at, at + len(data))
    else:
        sub.f("tcpcrypt.resume.half", data[:RESUME_HALF_LEN], at, at + RESUME_HALF_LEN)
        sub.f("tcpcrypt.resume.nonce", data[RESUME_HALF_LEN:], at + RESUME_HALF_LEN,
              at + len(data))


def _eno_connection(nodes: list[Node], detail: ConnDetail, direction: str, number: int) -> None:
    """The connection's ENO outcome, generated (as the dissector's tcpeno.connection)."""
    rep = detail.report
    eno = rep.get("eno") or {}
    if not eno:
        return
    tc = rep.get("tcpcrypt") or {}
    pk = eno.get("packets") or {}
    handshake = number in (pk.get("syn_a"), pk.get("syn_b"), pk.get("ack_a"))
    node = Node(f"TCP-ENO connection: {eno.get('status')}"
                + (f" ({eno['reason']})" if eno.get("reason") and eno.get("status") != "absent"
                   else ""), abbrev="tcpeno.connection")
    node.expanded = handshake
    node.f("tcpeno.status", eno.get("status"))
    if eno.get("reason"):
        node.f("tcpeno.reason", eno["reason"])
    if eno.get("detail"):
        node.add(f"Detail: {eno['detail']}")
    if eno.get("negotiated_tep") is not None:
        node.f("tcpeno.negotiated_tep", eno["negotiated_tep"])
    if eno.get("encoding"):
        node.f("tcpeno.encoding", eno["encoding"])
    if eno.get("roles"):
        node.f("tcpeno.roles", eno["roles"])
    node.f("tcpeno.role", "A" if direction == "ab" else "B")
    node.f("tcpeno.host_a", rep.get("a", ""))
    node.f("tcpeno.host_b", rep.get("b", ""))
    if eno.get("simultaneous_open"):
        node.f("tcpeno.simultaneous_open", True)
    if tc.get("resumed"):
        node.f("tcpeno.resumed", True)
    if tc.get("session_id"):
        node.f("tcpeno.session_id", bytes.fromhex(tc["session_id"]))
    for key in ("syn_a", "syn_b", "ack_a"):
        if pk.get(key) is not None:
            node.f(f"tcpeno.{key}", pk[key])
    nodes.append(node)


def _expert(nodes: list[Node], findings: list[dict]) -> None:
    """This packet's findings; a broken RFC rule shows its code and section."""
    if not findings:
        return
    node = Node(f"Expert info ({len(findings)})")
    node.expanded = True
    for f in findings:
        rfc = f.get("rfc")
        label = f"[{f['severity']}] {f['code']}: {f['message']}" + (f" ({rfc})" if rfc else "")
        item = node.add(label)
        if rfc:
            item.f("tcpeno.conformance", f["code"])
            item.f("tcpeno.conformance.rfc", rfc)
            item.expanded = False
    nodes.append(node)


def _tcpcrypt(nodes: list[Node], detail: ConnDetail, direction: str, stream_start: int,
              payload_at: int, length: int) -> None:
    """Init messages and frames inside this payload (stream bytes [start, start+len))."""
    stream_end = stream_start + length
    arrow = ARROWS.get(direction, direction)
    root = Node(f"tcpcrypt ({arrow}), stream bytes {stream_start}-{stream_end - 1}",
                payload_at, payload_at + length, abbrev="tcpcrypt")

    def place(s0: int, s1: int) -> tuple[int, int]:
        a, b = max(s0, stream_start), min(s1, stream_end)
        return payload_at + a - stream_start, payload_at + max(a, b) - stream_start

    root.f("tcpcrypt.direction", direction, payload_at, payload_at)
    root.f("tcpcrypt.stream_offset", stream_start, payload_at, payload_at)
    _session(root, detail)
    shown = False
    init = detail.init.get(direction)
    if init is not None and stream_start < len(init.raw):
        _init(root, init, place)
        shown = True
    for fr in detail.frames_in(direction, stream_start, stream_end):
        _frame(root, fr, place)
        shown = True
    if not shown:
        root.add(f"Data ({length} bytes, no complete frame or Init message ends in this "
                 "packet)", payload_at, payload_at + length)
    nodes.append(root)


def _session(root: Node, detail: ConnDetail) -> None:
    """The tcpcrypt session's generated fields (from the connection's report)."""
    tc = detail.report.get("tcpcrypt") or {}
    if not tc:
        return
    node = root.add("Session")
    node.expanded = False
    if tc.get("dialect"):
        node.f("tcpcrypt.dialect", tc["dialect"])
    if tc.get("aead") is not None:
        node.f("tcpcrypt.aead", tc["aead"])
    node.f("tcpcrypt.resumed", bool(tc.get("resumed")))
    if tc.get("resume_index") is not None:
        node.f("tcpcrypt.resume.index", tc["resume_index"])
    if tc.get("keys_from"):
        node.f("tcpcrypt.keys_from", tc["keys_from"])
    if tc.get("nonce_offset_base"):
        node.f("tcpcrypt.nonce_offset_base", tc["nonce_offset_base"])


def _init(root: Node, init: InitRecord, place: Place) -> None:
    """Init1/Init2 with two-byte sym_cipher ids, pubkey_len and the point (RFC 8548 §4.1,
    §5); the 2016 dialect's one-byte ids are shown as they are."""
    raw = init.raw
    parsed = init.parsed
    is1 = (isinstance(parsed, Init1) if parsed is not None
           else len(raw) >= 4 and struct.unpack_from(">I", raw)[0] == INIT1_MAGIC)
    which = "init1" if is1 else "init2"
    name = which.capitalize()
    where = place(0, len(raw))
    node = root.add(f"{name} ({len(raw)} bytes)", *where, f"tcpcrypt.{which}")
    node.f("tcpcrypt.continued_in", init.packet, where[0], where[0])
    if len(raw) < 9:
        node.add("[too short for its fixed fields]")
        return
    node.f(f"tcpcrypt.{which}.magic", struct.unpack_from(">I", raw)[0], *place(0, 4))
    node.f(f"tcpcrypt.{which}.length", struct.unpack_from(">I", raw, 4)[0], *place(4, 8))
    dialect = parsed.dialect if parsed is not None else None
    width = 1 if dialect == DIALECT_TCPCRYPTD_2016 else SYM_CIPHER_LEN
    if is1:
        nc = raw[8]
        node.f("tcpcrypt.init1.nciphers", nc, *place(8, 9))
        for k in range(nc):
            q = 9 + width * k
            if q + width <= len(raw):
                node.f("tcpcrypt.init1.sym_cipher", int.from_bytes(raw[q:q + width], "big"),
                       *place(q, q + width))
        q = 9 + width * nc
        node.f("tcpcrypt.init1.nonce", raw[q:q + N_A_LEN], *place(q, q + N_A_LEN))
        q += N_A_LEN
    else:
        node.f("tcpcrypt.init2.sym_cipher", int.from_bytes(raw[8:8 + width], "big"),
               *place(8, 8 + width))
        q = 8 + width
        node.f("tcpcrypt.init2.nonce", raw[q:q + N_B_LEN], *place(q, q + N_B_LEN))
        q += N_B_LEN
    pub = parsed.pub if parsed is not None else None
    if pub is None:
        node.add("[the public key does not fit the TEP: see the findings]", *place(q, len(raw)))
        return
    if pub.length_field is not None:
        node.f(f"tcpcrypt.{which}.pubkey_len", pub.length_field,
               *place(q, q + PUBKEY_LEN_FIELD))
        if pub.length_reading:
            node.f("tcpcrypt.pubkey_len_reading", pub.length_reading,
                   *place(q, q + PUBKEY_LEN_FIELD))
        q += PUBKEY_LEN_FIELD
    info = TCPCRYPT_TEPS.get(init.tep) if init.tep is not None else None
    key = node.f(f"tcpcrypt.{which}.pubkey", pub.point, *place(q, q + len(pub.point)),
                 note=f" ({info.name})" if info else "")
    if pub.compressed is True:
        key.add("Point format: compressed (0x02/0x03 || X)", *place(q, q + 1))
    elif pub.compressed is False:
        key.add("Point format: uncompressed (0x04 || X || Y); RFC 8548 §5 requires "
                "compressed points" if dialect != DIALECT_TCPCRYPTD_2016 else
                "Point format: uncompressed (0x04 || X || Y), as the 2016 dialect sent it",
                *place(q, q + 1))
    q += len(pub.point)
    if parsed is not None and parsed.ignored:
        node.f(f"tcpcrypt.{which}.ignored", parsed.ignored, *place(q, len(raw)),
               note=" (senders must leave it empty, RFC 8548 §4.1)")
    if dialect:
        node.f("tcpcrypt.dialect", dialect, where[0], where[0])


VERDICT_TEXT = {"ok": "verified", "failed": "AUTHENTICATION FAILED", "unknown": "no keys",
                "undecryptable": "no key for its generation"}


def _frame(root: Node, fr: FrameRecord, place: Place) -> None:
    """One frame: header, frame ID and nonce, ciphertext and tag, and with keys the
    verdict and plaintext (RFC 8548 §3.6, §4.2, §4.2.1)."""
    s0 = fr.stream_offset
    body = s0 + FRAME_HEADER_LEN
    tag_at = fr.end - AEAD_TAG_LEN
    gen = place(s0, s0)
    finp = fr.flags is not None and fr.flags & 0x01
    node = root.add(f"Frame {fr.number} at stream offset {s0}, clen {fr.length}"
                    f"{' (rekey)' if fr.rekey else ''}{' (FINp)' if finp else ''}"
                    f" [{VERDICT_TEXT.get(fr.verdict, fr.verdict)}]",
                    *place(s0, fr.end), "tcpcrypt.frame")
    node.f("tcpcrypt.frame.number", fr.number, *gen)
    node.f("tcpcrypt.stream_offset", s0, *gen)
    if fr.first_packet != fr.packet:
        node.f("tcpcrypt.first_packet", fr.first_packet, *gen)
        node.f("tcpcrypt.continued_in", fr.packet, *gen)
    ctl = node.f("tcpcrypt.frame.control", fr.control, *place(s0, s0 + 1))
    ctl.f("tcpcrypt.frame.control.rekey", fr.rekey, *place(s0, s0 + 1), raw=fr.control)
    ctl.f("tcpcrypt.frame.control.cres", fr.control & 0xFE, *place(s0, s0 + 1),
          raw=fr.control, note=" (reserved: must be sent as zero)" if fr.control & 0xFE else "")
    node.f("tcpcrypt.frame.clen", fr.length, *place(s0 + 1, body))
    offset = fr.frame_offset
    if offset is not None:
        base = fr.base or NONCE_OFFSET_TCP_STREAM
        node.f("tcpcrypt.frame.offset", offset, *gen,
               note=f" ({base} reading)" if fr.init_len else " (no Init message: both "
               "readings agree)")
    else:
        node.add(f"Frame-ID offset: {frame_id_offset(s0, fr.init_len, NONCE_OFFSET_TCP_STREAM)}"
                 f" (tcp-stream) or {frame_id_offset(s0, fr.init_len, NONCE_OFFSET_AFTER_INIT)}"
                 " (after-init): known once a frame authenticates", *gen)
    node.f("tcpcrypt.frame.generation", fr.generation, *gen)
    if fr.nonce is not None:
        node.f("tcpcrypt.frame.nonce", fr.nonce, *gen, note=" (frame_ID XOR NR)")
    node.add(fmt("tcpcrypt.frame.ciphertext", f"{max(0, fr.length - AEAD_TAG_LEN)} bytes"),
             *place(body, tag_at), "tcpcrypt.frame.ciphertext")
    node.f("tcpcrypt.frame.tag", fr.tag, *place(tag_at, fr.end))
    if fr.verdict in ("ok", "failed"):
        node.f("tcpcrypt.frame.verified", fr.verdict == "ok", *gen)
    if fr.verdict != "ok" or fr.flags is None:
        return
    span = place(body, tag_at)
    pt = node.add("Plaintext", *span, "tcpcrypt.plaintext")
    flags = fr.flags
    fl = pt.f("tcpcrypt.plaintext.flags", flags, *span)
    fl.f("tcpcrypt.plaintext.flags.finp", bool(flags & 0x01), *span, raw=flags)
    fl.f("tcpcrypt.plaintext.flags.urgp", bool(flags & 0x02), *span, raw=flags)
    fl.f("tcpcrypt.plaintext.flags.fres", flags & PLAINTEXT_RESERVED, *span, raw=flags,
         note=" (reserved: must be sent as zero)" if flags & PLAINTEXT_RESERVED else "")
    if fr.urgent is not None:
        urg = pt.f("tcpcrypt.plaintext.urgent", fr.urgent, *span)
        if offset is not None:
            urg.add(f"Frame offset {offset} + urgent {fr.urgent} = "
                    f"{urgent_index(offset, fr.urgent)}: RFC 8548 §3.7 calls this the last "
                    "urgent byte's index in the application stream, although the frame "
                    "offset counts framing bytes")
    if fr.data_len is not None:
        pt.f("tcpcrypt.plaintext.data_len", fr.data_len, *span)
    if fr.plaintext is not None:
        pt.f("tcpcrypt.plaintext.data", fr.plaintext, *span)
    elif fr.data_len:
        pt.add("[application data not kept: beyond the view's limit]")
