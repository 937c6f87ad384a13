"""A test-local, independent reading of RFC 8547 (TCP-ENO) and RFC 8548 (tcpcrypt).

Nothing here imports ``tcpinc_analyze``: every formula is written again from the RFC
text with ``hmac``/``hashlib``/``struct`` and the ``cryptography`` package, and captures
are read with ``dpkt`` (plus a small pcapng block walker, because ``dpkt.pcapng`` only
keeps the first interface's link type). Tests compare what this module computes with
what the product reports; agreement means the product follows the RFC formulas, not
just itself.

Section references are to RFC 8548 unless they say RFC 8547.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import ipaddress
import struct
from dataclasses import dataclass, field

import dpkt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# ----------------------------------------------------------------- constants (§4.3, §5-§7)

CONST_NEXTK = b"\x01"
CONST_SESSID = b"\x02"
CONST_REKEY = b"\x03"
CONST_KEY_A = b"\x04"
CONST_KEY_B = b"\x05"
CONST_RESUME = b"\x06"
INIT1_MAGIC = 0x15101A0E
INIT2_MAGIC = 0x097105E0
K_LEN = N_A_LEN = N_B_LEN = 32
AE_NONCE_LEN = 12
TAG_LEN = 16

# sym_cipher identifiers, two bytes (§7 Table 5) -> (ae_key_len, AEAD class) (§6 Table 3)
AEADS = {
    0x0001: (16, AESGCM),
    0x0002: (32, AESGCM),
    0x0010: (32, ChaCha20Poly1305),
}

TEP_P256, TEP_P521, TEP_X25519, TEP_X448 = 0x21, 0x22, 0x23, 0x24
# TEP -> (Pub bytes on the wire without any length prefix when compressed, ES length)
TEP_KEYS = {
    TEP_P256: ("P-256", 33, 32),
    TEP_P521: ("P-521", 67, 66),
    TEP_X25519: ("X25519", 32, 32),
    TEP_X448: ("X448", 56, 56),
}
NIST = {TEP_P256: ec.SECP256R1(), TEP_P521: ec.SECP521R1()}

ENO_KIND = 69
ENO_EXPERIMENTAL_KINDS = (253, 254)
ENO_EXID = b"\x45\x4e"

# ----------------------------------------------------------------- HKDF (§3.1 Figure 1)


def extract(salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract(salt, IKM) = HMAC-SHA256(salt, IKM)."""
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def cprf(key: bytes, const: bytes, length: int) -> bytes:
    """HKDF-Expand(PRK, CONST, L): T(n) = HMAC(PRK, T(n-1) | CONST | n), first L bytes."""
    okm, t, n = b"", b"", 1
    while len(okm) < length:
        t = hmac.new(key, t + const + bytes([n]), hashlib.sha256).digest()
        okm += t
        n += 1
    return okm[:length]


# ----------------------------------------------------------------- key schedule (§3.3-§3.5)


def ss0(n_a: bytes, transcript: bytes, init1: bytes, init2: bytes, es: bytes) -> bytes:
    """ss[0] = PRK = Extract(N_A, eno_transcript | Init1 | Init2 | ES)."""
    return extract(n_a, transcript + init1 + init2 + es)


def next_ss(ss: bytes) -> bytes:
    """ss[i] = CPRF(ss[i-1], CONST_NEXTK, K_LEN)."""
    return cprf(ss, CONST_NEXTK, K_LEN)


def ss_chain(ss_0: bytes, n: int) -> list[bytes]:
    """[ss[0], ss[1], ..., ss[n]]."""
    out = [ss_0]
    for _ in range(n):
        out.append(next_ss(out[-1]))
    return out


def mk0(ss: bytes, sn: bytes = b"") -> bytes:
    """mk[0] = CPRF(ss[i], CONST_REKEY | sn[i], K_LEN)."""
    return cprf(ss, CONST_REKEY + sn, K_LEN)


def next_mk(mk: bytes) -> bytes:
    """mk[j] = CPRF(mk[j-1], CONST_REKEY, K_LEN)."""
    return cprf(mk, CONST_REKEY, K_LEN)


def traffic_keys(mk: bytes, aead: int) -> tuple[bytes, bytes]:
    """(k_ab[j], k_ba[j]) = CPRF(mk[j], CONST_KEY_A/B, ae_key_len + ae_nonce_len)."""
    n = AEADS[aead][0] + AE_NONCE_LEN
    return cprf(mk, CONST_KEY_A, n), cprf(mk, CONST_KEY_B, n)


def split_key(key: bytes, aead: int) -> tuple[bytes, bytes]:
    """Traffic key = K (ae_key_len bytes) | NR (ae_nonce_len bytes) (§3.6 Figure 4)."""
    klen = AEADS[aead][0]
    assert len(key) == klen + AE_NONCE_LEN, (len(key), aead)
    return key[:klen], key[klen:]


def session_id(tep_byte: int, ss: bytes, sn: bytes = b"") -> bytes:
    """session_id[i] = TEP-byte | CPRF(ss[i], CONST_SESSID | sn[i], K_LEN) (§3.4)."""
    return bytes([tep_byte]) + cprf(ss, CONST_SESSID + sn, K_LEN)


def resume_id(ss: bytes) -> bytes:
    """resume[i] = CPRF(ss[i], CONST_RESUME, 18) (§3.5)."""
    return cprf(ss, CONST_RESUME, 18)


class KeyGenerations:
    """k_ab[j] / k_ba[j] for every generation j, from mk[0] (or gen-0 keys only)."""

    def __init__(self, aead: int, mk_0: bytes | None = None,
                 gen0: tuple[bytes, bytes] | None = None) -> None:
        self.aead = aead
        self.mks = [mk_0] if mk_0 is not None else []
        self.gen0 = gen0

    def key(self, generation: int, use_k_ab: bool) -> bytes | None:
        if not self.mks:
            if self.gen0 is not None and generation == 0:
                return self.gen0[0 if use_k_ab else 1]
            return None
        while len(self.mks) <= generation:
            self.mks.append(next_mk(self.mks[-1]))
        return traffic_keys(self.mks[generation], self.aead)[0 if use_k_ab else 1]


# ----------------------------------------------------------------- frames (§3.6, §4.2)


def frame_id(offset: int) -> bytes:
    """Frame ID: zero bytes then the 8-byte big-endian offset, ae_nonce_len long."""
    return bytes(AE_NONCE_LEN - 8) + struct.pack(">Q", offset)


def frame_nonce(nr: bytes, offset: int) -> bytes:
    """N = frame_ID XOR NR."""
    return bytes(a ^ b for a, b in zip(frame_id(offset), nr, strict=True))


def associated_data(control: int, clen: int) -> bytes:
    """AD = control | clen (§4.2.2)."""
    return struct.pack(">BH", control, clen)


def aead_open(aead: int, traffic_key: bytes, offset: int, control: int,
              ciphertext: bytes) -> bytes | None:
    """Open one frame's ciphertext; None when the tag does not verify."""
    k, nr = split_key(traffic_key, aead)
    cls = AEADS[aead][1]
    try:
        return cls(k).decrypt(frame_nonce(nr, offset), ciphertext,
                              associated_data(control, len(ciphertext)))
    except InvalidTag:
        return None


def plaintext_data(plain: bytes) -> tuple[int, int | None, bytes]:
    """flags, urgent (when URGp), application data (§4.2.1)."""
    flags = plain[0]
    if flags & 0x02:
        return flags, struct.unpack(">H", plain[1:3])[0], plain[3:]
    return flags, None, plain[1:]


# ----------------------------------------------------------------- key agreement (§5)


def ecdh(tep: int, private: bytes, peer_point: bytes) -> bytes:
    """ES from one host's private key and the peer's public key (point without the
    pubkey_len prefix; NIST points compressed or not). ES of a NIST curve is the
    x-coordinate (ECSVDP-DH), which is what ``ECDH`` returns."""
    if tep == TEP_X25519:
        return x25519.X25519PrivateKey.from_private_bytes(private).exchange(
            x25519.X25519PublicKey.from_public_bytes(peer_point))
    if tep == TEP_X448:
        return x448.X448PrivateKey.from_private_bytes(private).exchange(
            x448.X448PublicKey.from_public_bytes(peer_point))
    curve = NIST[tep]
    priv = ec.derive_private_key(int.from_bytes(private, "big"), curve)
    peer = ec.EllipticCurvePublicKey.from_encoded_point(curve, peer_point)
    return priv.exchange(ec.ECDH(), peer)


def public_of(tep: int, private: bytes) -> bytes:
    """The public key of a private key as the key log writes it (raw, or compressed)."""
    if tep == TEP_X25519:
        return x25519.X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw)
    if tep == TEP_X448:
        return x448.X448PrivateKey.from_private_bytes(private).public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw)
    priv = ec.derive_private_key(int.from_bytes(private, "big"), NIST[tep])
    return priv.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


def compress_point(tep: int, point: bytes) -> bytes:
    """A NIST point in compressed form (X25519/X448 keys are returned unchanged)."""
    if tep not in NIST:
        return point
    key = ec.EllipticCurvePublicKey.from_encoded_point(NIST[tep], point)
    return key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


def uncompressed_point(tep: int, point: bytes) -> bytes:
    key = ec.EllipticCurvePublicKey.from_encoded_point(NIST[tep], point)
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


# ----------------------------------------------------------------- Init1 / Init2 (§4.1, §5)


@dataclass
class Pub:
    wire: bytes
    """The Pub field as sent (pubkey_len included for NIST curves)."""
    point: bytes
    pubkey_len: int | None = None


@dataclass
class Init:
    raw: bytes
    """The whole message, message_len bytes, as transmitted."""
    magic: int
    message_len: int
    ciphers: list[int]
    nonce: bytes
    pub: Pub
    ignored: bytes


def _pub(rest: bytes, tep: int) -> Pub:
    name, point_len, _ = TEP_KEYS[tep]
    if tep not in NIST:  # X25519 / X448: no length prefix
        assert len(rest) >= point_len, f"{name} key truncated"
        return Pub(rest[:point_len], rest[:point_len])
    (pubkey_len,) = struct.unpack(">H", rest[:2])
    first = rest[2]
    size = point_len if first in (2, 3) else (2 * (point_len - 1) + 1 if first == 4 else None)
    assert size is not None, f"{name} point starts with 0x{first:02x}"
    # Figure 5 draws pubkey_len = L over bytes 0..L-1 (prefix included); the prose can
    # be read as the point's length: accept both.
    assert pubkey_len in (size + 2, size), f"pubkey_len {pubkey_len} for a {size}-byte point"
    return Pub(rest[:2 + size], rest[2:2 + size], pubkey_len)


def parse_init1(buf: bytes, tep: int) -> Init:
    """Init1: magic u32 | message_len u32 | nciphers K u8 | sym_cipher u16 x K |
    N_A at 9 + 2K | Pub_A at 9 + 2K + 32 | ignored up to message_len."""
    magic, m = struct.unpack(">II", buf[:8])
    assert magic == INIT1_MAGIC, hex(magic)
    msg = buf[:m]
    assert len(msg) == m, "Init1 truncated"
    k = msg[8]
    ciphers = [struct.unpack(">H", msg[9 + 2 * i:11 + 2 * i])[0] for i in range(k)]
    n_a = msg[9 + 2 * k:9 + 2 * k + N_A_LEN]
    pub = _pub(msg[9 + 2 * k + N_A_LEN:], tep)
    ignored = msg[9 + 2 * k + N_A_LEN + len(pub.wire):]
    return Init(bytes(msg), magic, m, ciphers, bytes(n_a), pub, bytes(ignored))


def parse_init2(buf: bytes, tep: int) -> Init:
    """Init2: magic u32 | message_len u32 | sym_cipher u16 | N_B at 10 | Pub_B at 42 |
    ignored up to message_len."""
    magic, m = struct.unpack(">II", buf[:8])
    assert magic == INIT2_MAGIC, hex(magic)
    msg = buf[:m]
    assert len(msg) == m, "Init2 truncated"
    (cipher,) = struct.unpack(">H", msg[8:10])
    n_b = msg[10:10 + N_B_LEN]
    pub = _pub(msg[10 + N_B_LEN:], tep)
    ignored = msg[10 + N_B_LEN + len(pub.wire):]
    return Init(bytes(msg), magic, m, [cipher], bytes(n_b), pub, bytes(ignored))


def build_init1(ciphers: list[int], n_a: bytes, pub_wire: bytes, ignored: bytes = b"") -> bytes:
    body = bytes([len(ciphers)]) + b"".join(struct.pack(">H", c) for c in ciphers)
    body += n_a + pub_wire + ignored
    return struct.pack(">II", INIT1_MAGIC, 8 + len(body)) + body


def build_init2(cipher: int, n_b: bytes, pub_wire: bytes, ignored: bytes = b"") -> bytes:
    body = struct.pack(">H", cipher) + n_b + pub_wire + ignored
    return struct.pack(">II", INIT2_MAGIC, 8 + len(body)) + body


def tep_from_init1_length(init1: bytes) -> int | None:
    """Which TEP's Pub fills Init1 exactly (no ignored bytes): for captures without SYNs."""
    m, k = struct.unpack(">I", init1[4:8])[0], init1[8]
    pub_len = m - (9 + 2 * k + N_A_LEN)
    for tep, (_, point_len, _) in TEP_KEYS.items():
        if pub_len == point_len + (2 if tep in NIST else 0):
            return tep
    return None


# ----------------------------------------------------------------- ENO options (RFC 8547)


def tcp_options(opts: bytes) -> list[tuple[int, bytes]]:
    """(kind, raw option bytes incl. kind and length) for each option in a TCP header."""
    out, pos = [], 0
    while pos < len(opts):
        kind = opts[pos]
        if kind == 0:
            break
        if kind == 1:
            pos += 1
            continue
        length = opts[pos + 1]
        out.append((kind, bytes(opts[pos:pos + length])))
        pos += max(length, 2)
    return out


def eno_options(opts: bytes) -> list[bytes]:
    """Every ENO option of a segment, raw: kind 69, or kind 253/254 with ExID 0x454E."""
    return [raw for kind, raw in tcp_options(opts)
            if kind == ENO_KIND or (kind in ENO_EXPERIMENTAL_KINDS and raw[2:4] == ENO_EXID)]


def eno_contents(raw: bytes) -> bytes:
    return raw[4:] if raw[0] in ENO_EXPERIMENTAL_KINDS else raw[2:]


@dataclass
class Suboptions:
    globals_: list[int] = field(default_factory=list)
    teps: list[tuple[int, int, bytes | None]] = field(default_factory=list)
    """(glt, byte as sent incl. v, data or None)."""
    malformed: bool = False

    @property
    def b(self) -> int:
        """The b bit of the first global suboption, or of the implicit 0x00 (§4.2)."""
        return (self.globals_[0] if self.globals_ else 0x00) & 0x01


def parse_suboptions(contents: bytes) -> Suboptions:
    """RFC 8547 §4.1, §4.4 Table 1."""
    s, pos = Suboptions(), 0
    while pos < len(contents):
        byte = contents[pos]
        v, glt = byte >> 7, byte & 0x7F
        if not v:
            if glt < 0x20:
                s.globals_.append(byte)
            else:
                s.teps.append((glt, byte, None))
            pos += 1
        elif glt >= 0x20:  # TEP with data to the end of the option
            s.teps.append((glt, byte, bytes(contents[pos + 1:])))
            pos = len(contents)
        else:  # length byte 100nnnnn
            n = (glt & 0x1F) + 1
            if pos + 1 >= len(contents) or contents[pos + 1] < 0xA0 or pos + 2 + n > len(contents):
                s.malformed = True
                return s
            nxt = contents[pos + 1]
            s.teps.append((nxt & 0x7F, nxt, bytes(contents[pos + 2:pos + 2 + n])))
            pos += 2 + n
    return s


def tcpcrypt_kind(data: bytes | None) -> str:
    """RFC 8548 §3.2, §3.5: v = 0 or < 9 data bytes: fresh; 9..17: resume; more: invalid."""
    if data is None or len(data) < 9:
        return "fresh"
    return "resume" if len(data) <= 17 else "invalid"


# ----------------------------------------------------------------- key log (digest §3)


@dataclass
class KeyLog:
    session_secrets: dict[bytes, bytes] = field(default_factory=dict)
    master_keys: dict[bytes, bytes] = field(default_factory=dict)
    traffic_keys: dict[bytes, tuple[bytes, bytes]] = field(default_factory=dict)
    privates: list[bytes] = field(default_factory=list)


def read_keylog(text: str) -> KeyLog:
    log = KeyLog()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        label, *fields = line.split()
        vals = [bytes.fromhex(f) for f in fields]
        if label == "TCPCRYPT_SESSION_SECRET":
            log.session_secrets[vals[0]] = vals[1]
        elif label == "TCPCRYPT_MASTER_KEY":
            log.master_keys[vals[0]] = vals[1]
        elif label == "TCPCRYPT_TRAFFIC_KEYS":
            log.traffic_keys[vals[0]] = (vals[1], vals[2])
        elif label == "TCPCRYPT_EPHEMERAL_PRIVATE":
            log.privates.append(vals[1])
    return log


# ----------------------------------------------------------------- capture reading


@dataclass
class Segment:
    number: int
    """1-based packet number in the capture."""
    src: tuple[str, int]
    dst: tuple[str, int]
    seq: int
    ack: int
    flags: int
    options: bytes
    payload: bytes
    """Captured payload bytes."""
    payload_len: int
    """Payload length on the wire (from the IP header): more when snaplen cut it."""

    @property
    def syn(self) -> bool:
        return bool(self.flags & dpkt.tcp.TH_SYN)

    @property
    def has_ack(self) -> bool:
        return bool(self.flags & dpkt.tcp.TH_ACK)


def _ip_text(packed: bytes) -> str:
    return str(ipaddress.ip_address(packed))


def _network_layer(linktype: int, buf: bytes):
    if linktype == 1:  # Ethernet; dpkt strips 802.1Q and QinQ tags
        pkt = dpkt.ethernet.Ethernet(buf)
    elif linktype == 113:
        pkt = dpkt.sll.SLL(buf)
    elif linktype == 276:
        pkt = dpkt.sll2.SLL2(buf)
    elif linktype == 0:
        pkt = dpkt.loopback.Loopback(buf)
    elif linktype in (101, 12, 14, 228, 229):
        pkt = dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
        return pkt
    else:
        raise ValueError(f"link type {linktype} not handled by the test reader")
    while pkt is not None and not isinstance(pkt, (dpkt.ip.IP, dpkt.ip6.IP6)):
        pkt = getattr(pkt, "data", None)
        if isinstance(pkt, bytes):
            return None
    return pkt


def _segment(number: int, linktype: int, buf: bytes) -> Segment | None:
    ip = _network_layer(linktype, buf)
    if ip is None or not isinstance(ip.data, dpkt.tcp.TCP):
        return None
    tcp = ip.data
    hdr = tcp.off * 4
    if isinstance(ip, dpkt.ip.IP):
        wire_len = ip.len - ip.hl * 4 - hdr
    else:
        assert ip.nxt == dpkt.ip.IP_PROTO_TCP, "IPv6 extension headers not handled"
        wire_len = ip.plen - hdr
    return Segment(number, (_ip_text(ip.src), tcp.sport), (_ip_text(ip.dst), tcp.dport),
                   tcp.seq, tcp.ack, tcp.flags, bytes(tcp.opts), bytes(tcp.data), wire_len)


def _pcapng_packets(data: bytes):
    """(linktype, packet bytes) from a pcapng file: SHB, IDB, EPB, SPB; others skipped."""
    pos, endian, linktypes = 0, "<", []
    while pos + 12 <= len(data):
        (btype,) = struct.unpack_from(endian + "I", data, pos)
        if btype == 0x0A0D0D0A:  # Section Header Block: byte-order magic decides endianness
            endian = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            linktypes = []
        (blen,) = struct.unpack_from(endian + "I", data, pos + 4)
        body = data[pos + 8:pos + blen - 4]
        if btype == 1:
            linktypes.append(struct.unpack_from(endian + "H", body, 0)[0])
        elif btype == 6:
            iface, _, _, caplen, _ = struct.unpack_from(endian + "IIIII", body, 0)
            yield linktypes[iface], body[20:20 + caplen]
        elif btype == 3:
            (origlen,) = struct.unpack_from(endian + "I", body, 0)
            yield linktypes[0], body[4:4 + origlen]
        pos += blen


def read_segments(path: str) -> list[Segment]:
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        packets = list(_pcapng_packets(data))
    else:
        reader = dpkt.pcap.Reader(io.BytesIO(data))
        lt = reader.datalink()
        packets = [(lt, buf) for _, buf in reader]
    out = []
    for number, (lt, buf) in enumerate(packets, 1):
        seg = _segment(number, lt, buf)
        if seg is not None:
            out.append(seg)
    return out


# ----------------------------------------------------------------- connections and streams


class Stream:
    """One direction's bytes by stream offset (0 = first byte after the SYN); the first
    copy of a byte wins; bytes never captured (gaps, snaplen) stay missing."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.mask = bytearray()
        self.wire_end = 0

    def add(self, offset: int, payload: bytes, wire_len: int) -> None:
        self.wire_end = max(self.wire_end, offset + wire_len)
        end = offset + len(payload)
        if end > len(self.data):
            grow = end - len(self.data)
            self.data += bytes(grow)
            self.mask += bytes(grow)
        for i in range(len(payload)):
            if not self.mask[offset + i]:
                self.data[offset + i] = payload[i]
                self.mask[offset + i] = 1

    def have(self, start: int, end: int) -> bool:
        return end <= len(self.mask) and self.mask.find(0, start, end) < 0

    def get(self, start: int, end: int) -> bytes:
        assert self.have(start, end)
        return bytes(self.data[start:end])

    def next_present(self, start: int) -> int | None:
        i = self.mask.find(1, start)
        return None if i < 0 else i


@dataclass
class Host:
    endpoint: tuple[str, int]
    syn: Segment | None = None
    """The first segment with SYN this host sent (SYN or SYN-ACK)."""
    first_ack: Segment | None = None
    """The first segment with the ACK flag this host sent (a SYN-ACK included)."""
    stream: Stream = field(default_factory=Stream)
    base_seq: int | None = None
    """Sequence number of stream offset 0."""
    segments: list[Segment] = field(default_factory=list)


@dataclass
class TcpConnection:
    first_packet: int
    hosts: dict[tuple[str, int], Host]
    opener: tuple[str, int]

    def host(self, endpoint) -> Host:
        return self.hosts[endpoint]


def connections(segments: list[Segment]) -> list[TcpConnection]:
    """Group segments into connections (a bare SYN with a new ISN from a host of an
    existing 4-tuple starts a new one) in order of first packet, then fill the streams."""
    conns: list[TcpConnection] = []
    current: dict[frozenset, TcpConnection] = {}
    for seg in segments:
        key = frozenset((seg.src, seg.dst))
        conn = current.get(key)
        if seg.syn and not seg.has_ack and conn is not None:
            prev = conn.hosts[seg.src].syn
            if prev is not None and prev.seq != seg.seq:
                conn = None
        if conn is None:
            conn = TcpConnection(seg.number, {seg.src: Host(seg.src), seg.dst: Host(seg.dst)},
                                 seg.src)
            conns.append(conn)
            current[key] = conn
        host = conn.hosts[seg.src]
        host.segments.append(seg)
        if seg.syn and host.syn is None:
            host.syn = seg
        if seg.has_ack and host.first_ack is None:
            host.first_ack = seg
    for conn in conns:
        for host in conn.hosts.values():
            if host.syn is not None:
                host.base_seq = (host.syn.seq + 1) & 0xFFFFFFFF
            else:
                data = [s for s in host.segments if s.payload_len]
                if not data:
                    continue
                # no SYN captured: the lowest sequence number (mod 2^32, relative to the
                # first data segment) starts the stream
                ref = data[0].seq
                host.base_seq = min(data, key=lambda s: (s.seq - ref + (1 << 31)) % (1 << 32)).seq
            for s in host.segments:
                if s.syn or not s.payload_len:
                    continue  # SYN data is never part of a tcpcrypt stream (RFC 8547 §4.7)
                off = (s.seq - host.base_seq) & 0xFFFFFFFF
                host.stream.add(off, s.payload, s.payload_len)
    return conns


# ----------------------------------------------------------------- ENO negotiation (RFC 8547)


@dataclass
class EnoOutcome:
    status: str
    """negotiated | fallback | absent | unknown (the last also when no SYN was seen)."""
    a: tuple[str, int] | None = None
    b: tuple[str, int] | None = None
    option_a: bytes | None = None
    """A's SYN-form ENO option exactly as on the wire (kind, length, [ExID,] contents)."""
    option_b: bytes | None = None
    tep: int | None = None
    tep_byte: int | None = None
    """The byte B sent for the negotiated TEP, v bit included."""
    data_a: bytes | None = None
    """A's and B's suboption data for the negotiated TEP (None when v = 0)."""
    data_b: bytes | None = None
    resumed: bool = False

    @property
    def transcript(self) -> bytes:
        """RFC 8547 §4.8: A's option then B's option, kind and length bytes included."""
        return self.option_a + self.option_b


def _valid_tep(glt: int, sa: Suboptions, sb: Suboptions) -> bool:
    a = [t for t in sa.teps if t[0] == glt]
    b = [t for t in sb.teps if t[0] == glt]
    if not a or not b:
        return False
    if glt not in TEP_KEYS:
        return True
    if len(a) > 1 or len(b) > 1:  # tcpcrypt defines no repetition
        return False
    ka, kb = tcpcrypt_kind(a[0][2]), tcpcrypt_kind(b[0][2])
    if "invalid" in (ka, kb):
        return False
    return not (kb == "resume" and ka != "resume")


def negotiate(conn: TcpConnection) -> EnoOutcome:
    x = conn.hosts[conn.opener]
    y = next(h for e, h in conn.hosts.items() if e != conn.opener)
    if x.syn is None and y.syn is None:
        return EnoOutcome("unknown")
    ox = eno_options(x.syn.options) if x.syn else []
    oy = eno_options(y.syn.options) if y.syn else []
    if not ox:
        return EnoOutcome("absent")
    if len(ox) > 1 or len(oy) > 1 or not oy:  # §4.1: several options count as none
        return EnoOutcome("fallback")
    sx, sy = parse_suboptions(eno_contents(ox[0])), parse_suboptions(eno_contents(oy[0]))
    if sx.malformed or sy.malformed or sx.b == sy.b:  # §4.4; §4.3 roles by b alone
        return EnoOutcome("fallback")
    (ha, oa, sa), (hb, ob, sb) = sorted([(x, ox[0], sx), (y, oy[0], sy)], key=lambda t: t[2].b)
    chosen = None
    for glt, byte, data in sb.teps:  # §4.5: the last valid TEP in B's option
        if _valid_tep(glt, sa, sb):
            chosen = (glt, byte, data)
    if chosen is None:
        return EnoOutcome("fallback")
    if ha.first_ack is None:
        status = "unknown"
    elif not eno_options(ha.first_ack.options):  # §4.6: A's first ACK carries ENO
        return EnoOutcome("fallback")
    else:
        status = "negotiated"
    glt, byte, data_b = chosen
    data_a = next(t[2] for t in sa.teps if t[0] == glt)
    resumed = glt in TEP_KEYS and tcpcrypt_kind(data_b) == "resume"
    return EnoOutcome(status, ha.endpoint, hb.endpoint, oa, ob, glt, byte, data_a, data_b,
                      resumed)


# ----------------------------------------------------------------- tcpcrypt decryption


@dataclass
class Direction:
    frames: int = 0
    ok: int = 0
    failed: int = 0
    lost: int = 0
    undecryptable: int = 0
    rekeys: int = 0
    data: bytearray = field(default_factory=bytearray)
    base: str | None = None
    """Which frame-ID offset reading authenticated the first frame."""
    frame_log: list[tuple[int, int, int, str]] = field(default_factory=list)
    """(stream offset, control, generation, result) per frame."""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(bytes(self.data)).hexdigest()


@dataclass
class TcpcryptResult:
    a: tuple[str, int]
    b: tuple[str, int]
    tep: int
    tep_byte: int
    resumed: bool
    aead: int | None
    init1: Init | None = None
    init2: Init | None = None
    keys_from: str | None = None
    ss: bytes | None = None
    sn: bytes = b""
    mk0: bytes | None = None
    a_uses_k_ab: bool = True
    resume_index: int | None = None
    ab: Direction = field(default_factory=Direction)
    ba: Direction = field(default_factory=Direction)
    session_id: bytes | None = None

    @property
    def nonce_offset_base(self) -> str | None:
        if self.resumed:
            return None
        bases = {d.base for d in (self.ab, self.ba) if d.frames}
        return bases.pop() if len(bases) == 1 else None


def _init_bytes(stream: Stream) -> bytes | None:
    if not stream.have(0, 8):
        return None
    m = struct.unpack(">I", stream.get(4, 8))[0]
    return stream.get(0, m) if stream.have(0, m) else None


def walk_frames(stream: Stream, start: int, init_len: int, aead: int | None,
                keys: KeyGenerations | None, use_k_ab: bool, base: str | None = None
                ) -> Direction:
    """Read every frame of a direction from ``start``; decrypt the ones wholly captured.

    The frame-ID offset is the frame's position in the TCP stream ("tcp-stream") or
    after the direction's Init message ("after-init"); both are tried on the first
    frame and the one whose tag verifies is kept (RFC 8548 §3.6 [ambiguous]).
    """
    d = Direction()
    pos, gen = start, 0
    while pos < stream.wire_end:
        if not stream.have(pos, pos + 3):
            # the frame header was not captured: resynchronise at the first later
            # position where a whole frame authenticates
            nxt = _resync(stream, pos, init_len, aead, keys, use_k_ab, gen, d.base)
            d.lost += 1
            d.frames += 1
            if nxt is None:
                break
            pos = nxt
            continue
        control, clen = struct.unpack(">BH", stream.get(pos, pos + 3))
        end = pos + 3 + clen
        d.frames += 1
        if control & 0x01:
            d.rekeys += 1
            gen += 1
        if not stream.have(pos + 3, end):
            d.lost += 1
            d.frame_log.append((pos, control, gen, "lost"))
            pos = end
            continue
        ct = stream.get(pos + 3, end)
        key = keys.key(gen, use_k_ab) if keys is not None and aead is not None else None
        if key is None:
            d.undecryptable += 1
            d.frame_log.append((pos, control, gen, "undecryptable"))
            pos = end
            continue
        plain = None
        bases = [d.base] if d.base else (["tcp-stream", "after-init"] if base is None else [base])
        for b in bases:
            off = pos if b == "tcp-stream" else pos - init_len
            plain = aead_open(aead, key, off, control, ct)
            if plain is not None:
                d.base = b
                break
        if plain is None:
            d.failed += 1
            d.frame_log.append((pos, control, gen, "failed"))
        else:
            d.ok += 1
            d.data += plaintext_data(plain)[2]
            d.frame_log.append((pos, control, gen, "ok"))
        pos = end
    return d


def _resync(stream, pos, init_len, aead, keys, use_k_ab, gen, base) -> int | None:
    if keys is None or aead is None:
        return None
    cand = stream.next_present(pos)
    while cand is not None and cand < stream.wire_end:
        if stream.have(cand, cand + 3):
            control, clen = struct.unpack(">BH", stream.get(cand, cand + 3))
            end = cand + 3 + clen
            if clen > TAG_LEN and stream.have(cand + 3, end):
                key = keys.key(gen + (control & 1), use_k_ab)
                off = cand if base != "after-init" else cand - init_len
                if key and aead_open(aead, key, off, control, stream.get(cand + 3, end)):
                    return cand
        cand = stream.next_present(cand + 1)
    return None


def endpoint_text(e: tuple[str, int]) -> str:
    """``ip:port``, IPv6 as ``[addr]:port`` (the reports' form)."""
    return f"[{e[0]}]:{e[1]}" if ":" in e[0] else f"{e[0]}:{e[1]}"


def decrypt_connection(conn: TcpConnection, eno: EnoOutcome, log: KeyLog,
                       sessions: list[tuple[bytes, int | None]]) -> TcpcryptResult | None:
    """Decrypt one connection with test-local code only.

    ``sessions``: (ss[0], AEAD or None) of sessions known so far (key log and earlier
    connections), searched for a resumed connection's identifier. Returns None when
    tcpcrypt did not run (ENO failed and no Init1 at the start of either stream).
    """
    if eno.status == "unknown" and eno.a is None:
        # handshake not captured: host A is the one whose stream starts with Init1
        for e, h in conn.hosts.items():
            raw = _init_bytes(h.stream)
            if raw and struct.unpack(">I", raw[:4])[0] == INIT1_MAGIC:
                other = next(x for x in conn.hosts if x != e)
                tep = tep_from_init1_length(raw)
                eno = EnoOutcome("unknown", e, other, None, None, tep, tep)
                break
        else:
            return None
    elif eno.status != "negotiated" or eno.tep not in TEP_KEYS:
        return None
    ha, hb = conn.hosts[eno.a], conn.hosts[eno.b]
    res = TcpcryptResult(eno.a, eno.b, eno.tep, eno.tep_byte, eno.resumed, None)
    keys = None
    if not eno.resumed:
        raw1, raw2 = _init_bytes(ha.stream), _init_bytes(hb.stream)
        if raw1 is None or raw2 is None:  # no key exchange completed: nothing to decrypt
            return res
        res.init1 = parse_init1(raw1, eno.tep)
        res.init2 = parse_init2(raw2, eno.tep)
        res.aead = res.init2.ciphers[0]
        n_a = res.init1.nonce
        if n_a in log.session_secrets:
            res.ss, res.keys_from = log.session_secrets[n_a], "session_secret"
        else:
            for priv in log.privates:
                try:
                    pub = public_of(eno.tep, priv)
                except ValueError:
                    continue
                for mine, peer in ((res.init1, res.init2), (res.init2, res.init1)):
                    if pub == compress_point(eno.tep, mine.pub.point):
                        es = ecdh(eno.tep, priv, peer.pub.point)
                        assert eno.option_a is not None, "a private key needs the transcript"
                        res.ss = ss0(n_a, eno.transcript, res.init1.raw, res.init2.raw, es)
                        res.keys_from = "private_key"
                if res.ss is not None:
                    break
        if res.ss is not None:
            res.mk0 = mk0(res.ss)
        elif n_a in log.master_keys:
            res.mk0, res.keys_from = log.master_keys[n_a], "master_key"
        if res.mk0 is not None:
            keys = KeyGenerations(res.aead, res.mk0)
        elif n_a in log.traffic_keys:
            keys, res.keys_from = KeyGenerations(res.aead, gen0=log.traffic_keys[n_a]), \
                "traffic_keys"
        init_a, init_b = len(res.init1.raw), len(res.init2.raw)
    else:
        half_a, nonce_a = eno.data_a[:9], eno.data_a[9:]
        half_b, nonce_b = eno.data_b[:9], eno.data_b[9:]
        found = None
        for ss_0, aead in sessions:
            chain = ss_chain(ss_0, 16)
            for i in range(1, 17):
                r = resume_id(chain[i])
                if (half_a, half_b) == (r[:9], r[9:]):
                    found = (chain[i], aead, True, i)
                elif (half_a, half_b) == (r[9:], r[:9]):
                    found = (chain[i], aead, False, i)
                if found:
                    break
            if found:
                break
        if found is None:
            for ident, ss in log.session_secrets.items():
                if len(ident) == 18 and ident in (half_a + half_b, half_b + half_a):
                    found = (ss, None, ident == half_a + half_b, None)
        if found is not None:
            ss, aead, a_was_a, res.resume_index = found
            res.ss, res.keys_from, res.a_uses_k_ab = ss, "resumption", a_was_a
            # sn[i] = nonce_a | nonce_b, nonce_a from the host that was A originally
            res.sn = nonce_a + nonce_b if a_was_a else nonce_b + nonce_a
            res.mk0 = mk0(ss, res.sn)
            res.aead = aead
        init_a = init_b = 0
    if res.mk0 is not None and res.aead is None:
        # a resumed session's AEAD is not on the wire: find the one that authenticates
        for aead in AEADS:
            trial = walk_frames(ha.stream, 0, 0, aead, KeyGenerations(aead, res.mk0),
                                res.a_uses_k_ab)
            if trial.ok:
                res.aead = aead
                break
    if keys is None and res.mk0 is not None and res.aead is not None:
        keys = KeyGenerations(res.aead, res.mk0)
    res.ab = walk_frames(ha.stream, init_a, init_a, res.aead, keys, res.a_uses_k_ab)
    res.ba = walk_frames(hb.stream, init_b, init_b, res.aead, keys, not res.a_uses_k_ab)
    if res.ss is not None and (res.ab.ok or res.ba.ok):
        res.session_id = session_id(res.tep_byte, res.ss, res.sn)
    return res


@dataclass
class CaptureReading:
    conns: list[TcpConnection]
    enos: list[EnoOutcome]
    tcpcrypt: list[TcpcryptResult | None]


def read_capture(path: str, keylog_text: str) -> CaptureReading:
    """Read, negotiate and decrypt every connection of a capture, test-local code only."""
    log = read_keylog(keylog_text)
    conns = connections(read_segments(path))
    sessions: list[tuple[bytes, int | None]] = []
    enos, results = [], []
    for conn in conns:
        eno = negotiate(conn)
        res = decrypt_connection(conn, eno, log, sessions + [
            (ss, None) for ident, ss in log.session_secrets.items() if len(ident) == 32])
        if res is not None and not res.resumed and res.ss is not None and \
                (res.ab.ok or res.ba.ok):
            sessions.append((res.ss, res.aead))
        enos.append(eno)
        results.append(res)
    return CaptureReading(conns, enos, results)
