"""The wire contract of TCP-ENO (RFC 8547) and tcpcrypt (RFC 8548), in one place.

Every component (synthesizer, analyzer, decryptor, Lua generator, TUI) imports its
constants from here, so the project agrees with itself byte for byte. The rules the
project's spec marks **[confirm]** (its reading of the RFC could not be checked
against the RFC text) are each ONE function or constant below, tagged ``[confirm]``
in their docstring: correcting one is a one-line change that every component follows.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from enum import StrEnum

# --------------------------------------------------------------------------- ENO (RFC 8547)

ENO_KIND = 69
"""TCP option kind of ENO in the RFC encoding."""
ENO_EXPERIMENTAL_KINDS = (253, 254)
"""RFC 6994 shared experimental option kinds that carried pre-RFC ENO."""
ENO_EXID = 0x454E
"""ExID ("EN") that marks an experimental-encoding ENO option."""
LEGACY_TCPCRYPT_MAC_KIND = 70
"""Pre-2015 tcpcrypt drafts used kind 69 for CRYPT and 70 for MAC."""

TCP_OPTIONS_MAX = 40
"""Bytes available for options in a TCP header (data offset 15 words)."""

GENERAL_B = 0x01
GENERAL_AA_MASK = 0x06
GENERAL_ZZ_MASK = 0x18
GLT_MASK = 0x7F
V_BIT = 0x80
GENERAL_MAX = 0x1F
"""cs values 0x00-0x1f with v=0 are general suboptions."""
LENGTH_BYTE_DATA_MAX = 32
"""A length byte 100nnnnn announces nnnnn + 1 (1..32) bytes of suboption data."""

AA_NAMES = {
    0: "not application-aware",
    1: "application-aware",
    2: "reserved",
    3: "mandatory application-aware",
}

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
    """Name a TEP identifier the way IANA's registry does, including the open ranges."""
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
    """Why ENO did not succeed: exactly one per connection (the JSON ``eno.reason``)."""

    NO_ENO_IN_SYN = "no-eno-in-syn"
    SYNACK_WITHOUT_ENO = "synack-without-eno"
    NO_COMMON_TEP = "no-common-tep"
    MALFORMED_OPTION = "malformed-option"
    ACK_WITHOUT_ENO = "ack-without-eno"
    ROLE_CONFLICT = "simultaneous-open-role-conflict"
    HANDSHAKE_NOT_CAPTURED = "handshake-not-captured"


FALLBACK_DESCRIPTIONS = {
    FallbackReason.NO_ENO_IN_SYN: "no ENO in A's SYN (plain TCP)",
    FallbackReason.SYNACK_WITHOUT_ENO: (
        "B's SYN-ACK without ENO (peer lacks ENO or a middlebox stripped it)"
    ),
    FallbackReason.NO_COMMON_TEP: "no TEP in common",
    FallbackReason.MALFORMED_OPTION: "malformed ENO option",
    FallbackReason.ACK_WITHOUT_ENO: "A's first ACK without ENO",
    FallbackReason.ROLE_CONFLICT: "simultaneous-open role conflict",
    FallbackReason.HANDSHAKE_NOT_CAPTURED: "handshake not captured",
}

ENO_TRANSCRIPT_LABEL = b"TCP-ENO"


def eno_transcript(syn_a_option: bytes, syn_b_option: bytes) -> bytes:
    """[confirm] The negotiation transcript fed into tcpcrypt's PRK (spec 1.4).

    Both arguments are whole RFC-form options (kind 69, length, contents) as they
    appeared in A's and B's SYN segments.
    """
    return ENO_TRANSCRIPT_LABEL + syn_a_option + syn_b_option


# ------------------------------------------------------------------ tcpcrypt (RFC 8548)

CONST_NEXTK = 0x01
CONST_SESSID = 0x02
CONST_REKEY = 0x03
CONST_KEY_A = 0x04
CONST_KEY_B = 0x05
CONST_RESUME = 0x06

INIT1_MAGIC = 0x15101A0E
INIT2_MAGIC = 0x097105E0
FRAME_NONCE_MAGIC = 0x44415441

K_LEN = 32
NONCE_LEN_A = 32
NONCE_LEN_B = 32
SESSION_ID_LEN = 33
"""TEP byte followed by the 32-byte SID."""
INIT1_FIXED = 9
"""magic (4) + message_len (4) + nciphers (1)."""
INIT2_FIXED = 9
"""magic (4) + message_len (4) + sym_cipher (1)."""
INIT_MESSAGE_LEN_MAX = 1 << 16
"""Bound on message_len we accept; real Init messages are a few hundred bytes."""

AEAD_AES_128_GCM = 0x01
AEAD_AES_256_GCM = 0x02
AEAD_CHACHA20_POLY1305 = 0x10


@dataclass(frozen=True)
class AeadInfo:
    """What the key schedule and the frame codec need to know about one AEAD."""

    ident: int
    name: str
    key_len: int


AEADS = {
    AEAD_AES_128_GCM: AeadInfo(AEAD_AES_128_GCM, "AEAD_AES_128_GCM", 16),
    AEAD_AES_256_GCM: AeadInfo(AEAD_AES_256_GCM, "AEAD_AES_256_GCM", 32),
    AEAD_CHACHA20_POLY1305: AeadInfo(AEAD_CHACHA20_POLY1305, "AEAD_CHACHA20_POLY1305", 32),
}
AEAD_NONCE_LEN = 12
AEAD_TAG_LEN = 16


def aead_name(ident: int) -> str:
    """Name an AEAD byte, keeping unknown values visible."""
    info = AEADS.get(ident)
    return info.name if info else f"unknown AEAD (0x{ident:02x})"


@dataclass(frozen=True)
class TepInfo:
    """Key-agreement parameters of a tcpcrypt TEP (spec 2.1)."""

    tep: int
    name: str
    pubkey_len: int
    es_len: int
    private_len: int


TCPCRYPT_TEPS = {
    TEP_P256: TepInfo(TEP_P256, "ECDHE P-256", 65, 32, 32),
    TEP_P521: TepInfo(TEP_P521, "ECDHE P-521", 133, 66, 66),
    TEP_X25519: TepInfo(TEP_X25519, "X25519", 32, 32, 32),
    TEP_X448: TepInfo(TEP_X448, "X448", 56, 56, 56),
}

FRAME_HEADER_LEN = 3
"""control (1) + length (2)."""
FRAME_CONTROL_REKEY = 0x01
FRAME_CONTROL_RESERVED = 0xFE
FRAME_LENGTH_MAX = 0xFFFF
FRAME_LENGTH_MIN = AEAD_TAG_LEN + 1
"""A frame must hold at least the tag and the plaintext flags byte."""

PLAINTEXT_FIN = 0x01
PLAINTEXT_URGENT = 0x02
PLAINTEXT_RESERVED = 0xFC

RESUME_ID_LEN = 9
"""Each side's half of the 18-byte resume[i] value."""


def extract(salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract with SHA-256 (RFC 5869)."""
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def cprf(key: bytes, const: int, length: int) -> bytes:
    """tcpcrypt's CPRF: HKDF-Expand(K, info = one constant byte, L) with SHA-256."""
    if length > 255 * 32:
        raise ValueError("CPRF output too long")
    out = b""
    block = b""
    counter = 1
    info = bytes([const])
    while len(out) < length:
        block = hmac.new(key, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def next_traffic_key(key: bytes) -> bytes:
    """[confirm] A direction's next key generation after a rekey (spec 2.3)."""
    return cprf(key, CONST_REKEY, len(key))


_NONCE = struct.Struct(">IQ")


def frame_nonce(offset: int) -> bytes:
    """[confirm] The AEAD nonce of the frame whose control byte is at ``offset`` (spec 2.6).

    ``offset`` counts from the first byte after that direction's key-exchange message
    (or from the first payload byte in a resumed session).
    """
    return _NONCE.pack(FRAME_NONCE_MAGIC, offset)


def frame_associated_data(control: int, length: int) -> bytes:
    """The AEAD associated data of a frame: its three header bytes (spec 2.6)."""
    return bytes((control, length >> 8, length & 0xFF))


def resumption_identifiers(ss: bytes) -> tuple[bytes, bytes]:
    """[confirm] (A's, B's) 9-byte resumption identifiers for a session using ``ss`` (spec 2.5)."""
    resume = cprf(ss, CONST_RESUME, 2 * RESUME_ID_LEN)
    return resume[:RESUME_ID_LEN], resume[RESUME_ID_LEN:]


@dataclass(frozen=True)
class Plaintext:
    """A decrypted frame's contents (spec 2.6)."""

    flags: int
    urgent: int | None
    data: bytes


def encode_plaintext(data: bytes, *, fin: bool = False, urgent: int | None = None,
                     extra_flags: int = 0) -> bytes:
    """[confirm] Build a frame's plaintext: flags, optional urgent offset, data."""
    flags = extra_flags | (PLAINTEXT_FIN if fin else 0)
    if urgent is not None:
        return bytes((flags | PLAINTEXT_URGENT,)) + struct.pack(">H", urgent) + data
    return bytes((flags,)) + data


def decode_plaintext(plain: bytes) -> Plaintext | None:
    """[confirm] Split a frame's plaintext; None when it is too short for its header."""
    if not plain:
        return None
    flags = plain[0]
    if flags & PLAINTEXT_URGENT:
        if len(plain) < 3:
            return None
        return Plaintext(flags, (plain[1] << 8) | plain[2], plain[3:])
    return Plaintext(flags, None, plain[1:])


# ------------------------------------------------------------------------- key log (ours)

KEYLOG_SESSION_SECRET = "TCPCRYPT_SESSION_SECRET"
KEYLOG_EPHEMERAL_PRIVATE = "TCPCRYPT_EPHEMERAL_PRIVATE"
KEYLOG_TRAFFIC_KEYS = "TCPCRYPT_TRAFFIC_KEYS"
KEYLOG_ENV = "TCPCRYPT_KEYLOGFILE"
DSB_SECRETS_TYPE_TCPCRYPT = 0x54435043
"""pcapng Decryption Secrets Block type for our key log ("TCPC")."""
