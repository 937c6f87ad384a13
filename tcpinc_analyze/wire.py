"""The wire contract of TCP-ENO (RFC 8547) and tcpcrypt (RFC 8548), in one place.

Every component (synthesizer, analyzer, decryptor, Lua generator, TUI) takes its
constants and formulas from here, so the project agrees with itself byte for byte and
with the RFC text section by section (each definition names the section it encodes).
The points where the RFC text allows two readings are marked **[ambiguous]**; each is
ONE function below, and readers accept both readings and report which one a capture
used (the project's digest, ``shared/spec/tcpinc-wire.md``, lists them).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from enum import StrEnum

# --------------------------------------------------------------------------- ENO (RFC 8547)

ENO_KIND = 69
"""TCP option kind of ENO (RFC 8547 §4.1, §11)."""
ENO_EXPERIMENTAL_KIND = 253
"""RFC 6994 shared experimental kind that pre-RFC ENO used with ExID 0x454E (§11)."""
ENO_EXPERIMENTAL_KINDS = (253, 254)
"""Kind 253 per §11; kind 254 (the other shared kind) is recognised too and labelled."""
ENO_EXID = 0x454E
"""ExID ("EN") that marks an experimental-encoding ENO option."""
LEGACY_TCPCRYPT_MAC_KIND = 70
"""Pre-2015 tcpcrypt drafts used kind 69 for CRYPT and 70 for MAC (§11: legacy use)."""
TFO_KIND = 34
"""TCP Fast Open option: a SYN+ENO must not carry a non-empty one (§4.7)."""
TFO_EXPERIMENTAL_KIND = 254
TFO_EXPERIMENTAL_MAGIC = b"\xf9\x89"
"""TFO in the pre-RFC experimental encoding (RFC 6994 shared kind 254, magic 0xF989: Linux's
TCPOPT_FASTOPEN_MAGIC; RFC 7413 §4.1.1 itself defines only kind 34), which Linux can still
send. It is the same TFO cookie that RFC 8547 §4.7 keeps off a SYN+ENO segment (§4.7's
discard list also names "any other TCP option implying a conflicting definition of SYN
data"); the cookie follows the magic."""

TCP_OPTIONS_MAX = 40
"""Bytes available for options in a TCP header (data offset 15 words)."""

GLT_MASK = 0x7F
V_BIT = 0x80
GLOBAL_MAX = 0x1F
"""glt 0x00-0x1f with v = 0 is a global suboption; with v = 1 a length byte (Table 1)."""
GLOBAL_B = 0x01
"""Passive role bit (§4.2)."""
GLOBAL_A = 0x02
"""Application-aware bit (§4.2)."""
GLOBAL_Z_MASK = 0x1C
"""z1 z2 z3: reserved, sent as zero and ignored on receipt (§4.2)."""
IMPLICIT_GLOBAL = 0x00
"""A SYN without an explicit global suboption has this one (§4.2)."""
TEP_MIN = 0x20
LENGTH_BYTE_DATA_MAX = 32
"""A length byte ``100nnnnn`` announces nnnnn + 1 (1..32) bytes of suboption data (§4.4)."""

TEP_EXPERIMENTAL = 0x20
TEP_P256 = 0x21
TEP_P521 = 0x22
TEP_X25519 = 0x23
TEP_X448 = 0x24

TEP_NAMES = {
    TEP_EXPERIMENTAL: "experimental use",
    TEP_P256: "TCPCRYPT_ECDHE_P256",
    TEP_P521: "TCPCRYPT_ECDHE_P521",
    TEP_X25519: "TCPCRYPT_ECDHE_Curve25519",
    TEP_X448: "TCPCRYPT_ECDHE_Curve448",
}


def tep_name(tep: int) -> str:
    """Name a TEP identifier as IANA's registry does (RFC 8547 Table 3, RFC 8548 Table 4)."""
    if tep in TEP_NAMES:
        return TEP_NAMES[tep]
    if 0x25 <= tep <= 0x6F:
        return f"unassigned (0x{tep:02x})"
    if 0x70 <= tep <= 0x7F:
        return f"reserved for extended values (0x{tep:02x})"
    return f"invalid TEP (0x{tep:02x})"


class EnoStatus(StrEnum):
    """Per-connection ENO outcome (the JSON ``eno.status`` values)."""

    NEGOTIATED = "negotiated"
    FALLBACK = "fallback"
    ABSENT = "absent"
    UNKNOWN = "unknown"


class FallbackReason(StrEnum):
    """Why ENO did not succeed: exactly one per connection, most specific first."""

    ABSENT = "absent"
    MULTIPLE_ENO_OPTIONS = "multiple-eno-options"
    MALFORMED_ENO = "malformed-eno"
    SYNACK_WITHOUT_ENO = "synack-without-eno"
    ROLE_CONFLICT = "role-conflict"
    NO_COMMON_TEP = "no-common-tep"
    ACK_WITHOUT_ENO = "ack-without-eno"
    HANDSHAKE_NOT_CAPTURED = "handshake-not-captured"


FALLBACK_DESCRIPTIONS = {
    FallbackReason.ABSENT: "no ENO in A's SYN (plain TCP)",
    FallbackReason.MULTIPLE_ENO_OPTIONS: (
        "a SYN carried more than one ENO option, which counts as none (RFC 8547 §4.1)"),
    FallbackReason.MALFORMED_ENO: "ill-formed ENO option in a SYN (RFC 8547 §4.4)",
    FallbackReason.SYNACK_WITHOUT_ENO: (
        "B's SYN-ACK without ENO (peer lacks ENO or a middlebox stripped it)"),
    FallbackReason.ROLE_CONFLICT: (
        "both hosts sent the same passive-role bit b (RFC 8547 §4.3)"),
    FallbackReason.NO_COMMON_TEP: "no valid TEP in common (RFC 8547 §4.5)",
    FallbackReason.ACK_WITHOUT_ENO: "A's first ACK without ENO (RFC 8547 §4.6)",
    FallbackReason.HANDSHAKE_NOT_CAPTURED: "handshake not captured",
}


def eno_transcript(syn_a_option: bytes, syn_b_option: bytes) -> bytes:
    """The negotiation transcript (RFC 8547 §4.8): A's then B's SYN-form ENO option,
    each exactly as it appeared in the TCP header, kind and length bytes included.

    **[ambiguous]** §4.8 does not say how an experimental-encoding option (kind 253 +
    ExID) enters the transcript; the project takes its bytes as they appeared (kind,
    length, ExID, contents), which is what "exactly as they appeared" says literally.
    """
    return bytes(syn_a_option) + bytes(syn_b_option)


def session_id_first_byte(tep: int, v: bool) -> int:
    """The session ID's first byte: the byte B sent for the negotiated TEP, with B's v
    bit (RFC 8547 §5.1, RFC 8548 §3.4); suboption data is not included."""
    return (tep & GLT_MASK) | (V_BIT if v else 0)


# ------------------------------------------------------------------ tcpcrypt (RFC 8548)

CONST_NEXTK = 0x01
CONST_SESSID = 0x02
CONST_REKEY = 0x03
CONST_KEY_A = 0x04
CONST_KEY_B = 0x05
CONST_RESUME = 0x06
INIT1_MAGIC = 0x15101A0E
INIT2_MAGIC = 0x097105E0
"""RFC 8548 §4.3, Table 1."""

K_LEN = 32
N_A_LEN = 32
N_B_LEN = 32
"""RFC 8548 §5: the same for all four TEPs."""
SESSION_ID_LEN = 1 + K_LEN
"""TEP byte followed by CPRF(ss[i], CONST_SESSID | sn[i], K_LEN) (§3.4)."""
SYM_CIPHER_LEN = 2
"""sym_cipher identifiers are two bytes (§4.1, §7 Table 5)."""
INIT1_FIXED = 9
"""Init1: magic (4), message_len (4), nciphers (1); sym_cipher[] follows (§4.1)."""
INIT2_FIXED = 10
"""Init2: magic (4), message_len (4), sym_cipher (2); N_B follows at 10 (§4.1)."""
INIT_MESSAGE_LEN_MAX = 1 << 16
"""Bound on message_len we accept; real Init messages are a few hundred bytes."""

AEAD_AES_128_GCM = 0x0001
AEAD_AES_256_GCM = 0x0002
AEAD_CHACHA20_POLY1305 = 0x0010
AEAD_NONCE_LEN = 12
"""ae_nonce_len of every AEAD in RFC 8548 §6 Table 3."""
AEAD_TAG_LEN = 16


@dataclass(frozen=True)
class AeadInfo:
    """What the key schedule and the frame codec need to know about one AEAD (§6)."""

    ident: int
    name: str
    key_len: int
    nonce_len: int = AEAD_NONCE_LEN

    @property
    def traffic_key_len(self) -> int:
        """ae_key_len + ae_nonce_len: a traffic key is K || NR (§3.3, §3.6 Figure 4)."""
        return self.key_len + self.nonce_len


AEADS = {
    AEAD_AES_128_GCM: AeadInfo(AEAD_AES_128_GCM, "AEAD_AES_128_GCM", 16),
    AEAD_AES_256_GCM: AeadInfo(AEAD_AES_256_GCM, "AEAD_AES_256_GCM", 32),
    AEAD_CHACHA20_POLY1305: AeadInfo(AEAD_CHACHA20_POLY1305, "AEAD_CHACHA20_POLY1305", 32),
}


def aead_name(ident: int) -> str:
    """Name a sym_cipher identifier, keeping unknown values visible."""
    info = AEADS.get(ident)
    return info.name if info else f"unknown AEAD (0x{ident:04x})"


@dataclass(frozen=True)
class TepInfo:
    """Key-agreement parameters of a tcpcrypt TEP (RFC 8548 §5)."""

    tep: int
    name: str
    point_len: int
    """Bytes of the public key itself: raw X25519/X448, or the compressed NIST point."""
    length_prefix: bool
    """P-256/P-521 keys travel behind a two-byte pubkey_len field."""
    es_len: int
    private_len: int
    uncompressed_len: int | None = None
    """Uncompressed NIST point (04 || X || Y): not allowed, decoded and flagged."""

    @property
    def wire_len(self) -> int:
        """Bytes Pub occupies in Init1/Init2 when sent as the RFC requires."""
        return self.point_len + (PUBKEY_LEN_FIELD if self.length_prefix else 0)


PUBKEY_LEN_FIELD = 2
TCPCRYPT_TEPS = {
    TEP_P256: TepInfo(TEP_P256, "ECDHE P-256", 33, True, 32, 32, 65),
    TEP_P521: TepInfo(TEP_P521, "ECDHE P-521", 67, True, 66, 66, 133),
    TEP_X25519: TepInfo(TEP_X25519, "X25519", 32, False, 32, 32),
    TEP_X448: TepInfo(TEP_X448, "X448", 56, False, 56, 56),
}

PUBKEY_LEN_WHOLE = "whole"
"""pubkey_len counts its own two bytes and the point: Figure 5 of RFC 8548 §5 draws
the field as bytes 0..L-1 with pubkey_len = L (the 2016 tcpcryptd did the same)."""
PUBKEY_LEN_POINT = "point"
"""pubkey_len counts the point only (the prose "prefixed by a two-byte length")."""


def pubkey_len_value(point_len: int, reading: str = PUBKEY_LEN_WHOLE) -> int:
    """**[ambiguous]** The pubkey_len field for a NIST point of ``point_len`` bytes
    (RFC 8548 §5). Figure 5 numbers the bytes 0..L-1 with pubkey_len = L, so L includes
    the two length bytes; the sentence before it can be read as the point's length.
    Writers use the figure; readers accept both (``pubkey_len_reading``)."""
    return point_len + PUBKEY_LEN_FIELD if reading == PUBKEY_LEN_WHOLE else point_len


def pubkey_len_reading(value: int, point_len: int) -> str | None:
    """Which reading of pubkey_len a received value follows, None if neither."""
    if value == point_len + PUBKEY_LEN_FIELD:
        return PUBKEY_LEN_WHOLE
    if value == point_len:
        return PUBKEY_LEN_POINT
    return None


FRAME_HEADER_LEN = 3
"""control (1) + clen (2) (§4.2)."""
FRAME_CONTROL_REKEY = 0x01
FRAME_CONTROL_RESERVED = 0xFE
"""cres: set to zero, ignored on receipt (§4.2)."""
FRAME_LENGTH_MAX = 0xFFFF
FRAME_LENGTH_MIN = AEAD_TAG_LEN + 1
"""clen must hold the tag and the plaintext flags byte."""

PLAINTEXT_FINP = 0x01
PLAINTEXT_URGP = 0x02
PLAINTEXT_RESERVED = 0xFC
"""fres (§4.2.1)."""

RESUME_LEN = 18
"""resume[i] = CPRF(ss[i], CONST_RESUME, 18) (§3.5)."""
RESUME_HALF_LEN = 9
RESUME_NONCE_MAX = 8
"""A resumption suboption's nonce is 0..8 bytes (§3.5)."""
RESUME_DATA_MIN = RESUME_HALF_LEN
RESUME_DATA_MAX = RESUME_HALF_LEN + RESUME_NONCE_MAX

DIALECT_RFC8548 = "rfc8548"
DIALECT_TCPCRYPTD_2016 = "tcpcryptd-2016"
"""The last public userland tcpcryptd (drafts eno-03 / tcpcrypt-02): one-byte
sym_cipher identifiers and pubkey_len before an uncompressed point."""


def extract(salt: bytes, ikm: bytes) -> bytes:
    """Extract(S, IKM) = HKDF-Extract-SHA256 = HMAC-SHA256(key = S, IKM) (§3.1)."""
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def cprf(key: bytes, const: bytes, length: int) -> bytes:
    """CPRF(K, CONST, L) = the first L bytes of HKDF-Expand-SHA256(K, CONST) (§3.1).

    ``const`` is a byte string: one constant byte, or a constant byte followed by the
    session nonce sn[i] (mk[0] and the session ID).
    """
    if length > 255 * 32:
        raise ValueError("CPRF output too long")
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.new(key, block + const + bytes((counter,)), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def initial_session_secret(n_a: bytes, transcript: bytes, init1: bytes, init2: bytes,
                           es: bytes) -> bytes:
    """ss[0] = PRK = Extract(N_A, eno_transcript | Init1 | Init2 | ES) (§3.3), with the
    Init messages as transmitted (ignored bytes included)."""
    return extract(n_a, transcript + init1 + init2 + es)


def next_session_secret(ss: bytes) -> bytes:
    """ss[i] = CPRF(ss[i-1], CONST_NEXTK, K_LEN) (§3.3)."""
    return cprf(ss, bytes((CONST_NEXTK,)), K_LEN)


def first_master_key(ss: bytes, sn: bytes = b"") -> bytes:
    """mk[0] = CPRF(ss[i], CONST_REKEY | sn[i], K_LEN); sn[0] is empty (§3.3)."""
    return cprf(ss, bytes((CONST_REKEY,)) + sn, K_LEN)


def next_master_key(mk: bytes) -> bytes:
    """mk[j] = CPRF(mk[j-1], CONST_REKEY, K_LEN): key generation j (§3.3, §3.8)."""
    return cprf(mk, bytes((CONST_REKEY,)), K_LEN)


def traffic_keys(mk: bytes, aead: int) -> tuple[bytes, bytes]:
    """(k_ab[j], k_ba[j]) = CPRF(mk[j], CONST_KEY_A / CONST_KEY_B, ae_key_len +
    ae_nonce_len) (§3.3). Each is K || NR."""
    n = AEADS[aead].traffic_key_len
    return cprf(mk, bytes((CONST_KEY_A,)), n), cprf(mk, bytes((CONST_KEY_B,)), n)


def split_traffic_key(key: bytes, aead: int) -> tuple[bytes, bytes]:
    """A traffic key's AEAD key K (first ae_key_len bytes) and nonce randomizer NR
    (the following ae_nonce_len bytes) (§3.6 Figure 4)."""
    info = AEADS[aead]
    if len(key) != info.traffic_key_len:
        raise ValueError(f"{info.name} traffic keys are {info.traffic_key_len} bytes "
                         f"(K || NR), got {len(key)}")
    return key[:info.key_len], key[info.key_len:]


def session_id(tep_byte: int, ss: bytes, sn: bytes = b"") -> bytes:
    """session_id[i] = TEP-byte | CPRF(ss[i], CONST_SESSID | sn[i], K_LEN) (§3.4)."""
    return bytes((tep_byte,)) + cprf(ss, bytes((CONST_SESSID,)) + sn, K_LEN)


def resume_identifier(ss: bytes) -> bytes:
    """resume[i] = CPRF(ss[i], CONST_RESUME, 18) (§3.5)."""
    return cprf(ss, bytes((CONST_RESUME,)), RESUME_LEN)


def resume_half(resume: bytes, originally_a: bool) -> bytes:
    """The half a host names a session by: resume[i]{0..8} when it played A in the
    session that produced ss[0], resume[i]{9..17} when it played B (§3.5)."""
    return resume[:RESUME_HALF_LEN] if originally_a else resume[RESUME_HALF_LEN:]


def session_nonce(nonce_a: bytes, nonce_b: bytes) -> bytes:
    """sn[i] = nonce_a | nonce_b: nonce_a from the host that was originally A (§3.5)."""
    return nonce_a + nonce_b


NONCE_OFFSET_TCP_STREAM = "tcp-stream"
NONCE_OFFSET_AFTER_INIT = "after-init"
NONCE_OFFSET_BASES = (NONCE_OFFSET_TCP_STREAM, NONCE_OFFSET_AFTER_INIT)


def frame_id_offset(stream_offset: int, init_len: int, base: str) -> int:
    """**[ambiguous]** The offset in a frame's frame ID (RFC 8548 §3.6, §4.2.3).

    §3.6: "the zero-indexed byte offset of the beginning of the current encryption
    frame in the underlying TCP datastream (that is, the offset in the framing stream,
    not the plaintext application stream)". ``tcp-stream``: counted from the first data
    byte of the direction's TCP stream, so Init bytes count (``stream_offset``);
    ``after-init``: counted from the first byte after the direction's Init message.
    The readings coincide in a resumed session (no Init message).
    """
    return stream_offset if base == NONCE_OFFSET_TCP_STREAM else stream_offset - init_len


_FRAME_ID = struct.Struct(">4xQ")


def frame_nonce(nr: bytes, offset: int) -> bytes:
    """N = frame_ID XOR NR, frame_ID = 4 zero bytes | offset (u64) (§3.6, §4.2.3)."""
    frame_id = _FRAME_ID.pack(offset)
    return (int.from_bytes(frame_id, "big") ^ int.from_bytes(nr, "big")).to_bytes(
        AEAD_NONCE_LEN, "big")


def frame_associated_data(control: int, clen: int) -> bytes:
    """A frame's associated data: control | clen (§4.2.2)."""
    return bytes((control, clen >> 8, clen & 0xFF))


@dataclass(frozen=True)
class Plaintext:
    """A decrypted frame's contents (§4.2.1)."""

    flags: int
    urgent: int | None
    data: bytes


def encode_plaintext(data: bytes, *, fin: bool = False, urgent: int | None = None,
                     extra_flags: int = 0) -> bytes:
    """A frame's plaintext: flags, the urgent field when URGp is set, data (§4.2.1)."""
    flags = extra_flags | (PLAINTEXT_FINP if fin else 0)
    if urgent is not None:
        return bytes((flags | PLAINTEXT_URGP,)) + struct.pack(">H", urgent) + data
    return bytes((flags & ~PLAINTEXT_URGP,)) + data


def decode_plaintext(plain: bytes) -> Plaintext | None:
    """Split a frame's plaintext; None when it is too short for its flags/urgent."""
    if not plain:
        return None
    flags = plain[0]
    if flags & PLAINTEXT_URGP:
        if len(plain) < 3:
            return None
        return Plaintext(flags, (plain[1] << 8) | plain[2], plain[3:])
    return Plaintext(flags, None, plain[1:])


def urgent_index(frame_offset: int, urgent: int) -> int:
    """**[ambiguous]** §3.7: the urgent field is an offset from the frame's own offset,
    and their sum is "the index of the last byte of urgent data in the application
    datastream", although the frame offset counts in the framing stream. Outputs show
    both fields and this sum with that caveat."""
    return frame_offset + urgent


def resumed_session_aead(original_aead: int | None) -> int | None:
    """**[ambiguous]** A resumed session has no Init messages, so nothing on the wire
    names its AEAD (§3.5 is silent): the project uses the original session's; readers
    that do not know it try each AEAD on the first frame and report the one that
    authenticates."""
    return original_aead


def rekey_answer_exempt(sent_tcp_fin: bool, sent_finp: bool) -> bool:
    """**[ambiguous]** §3.8 exempts a host that has already sent a segment with TCP FIN
    from answering a rekey; a host that has sent its FINp frame but not yet its FIN
    cannot answer without breaking §3.7's FINp rule, so it is treated as exempt too."""
    return sent_tcp_fin or sent_finp


# ------------------------------------------------------------------------- key log (ours)

KEYLOG_EPHEMERAL_PRIVATE = "TCPCRYPT_EPHEMERAL_PRIVATE"
KEYLOG_SESSION_SECRET = "TCPCRYPT_SESSION_SECRET"
KEYLOG_MASTER_KEY = "TCPCRYPT_MASTER_KEY"
KEYLOG_TRAFFIC_KEYS = "TCPCRYPT_TRAFFIC_KEYS"
KEYLOG_ENV = "TCPCRYPT_KEYLOGFILE"
DSB_SECRETS_TYPE_TCPCRYPT = 0x54435043
"""pcapng Decryption Secrets Block type for our key log ("TCPC")."""
RESUME_SEARCH_DEPTH = 16
"""How many sessions down the chain ss[0] -> ss[i] a reader looks for a resumed
connection's identifier (``--resume-depth``)."""
