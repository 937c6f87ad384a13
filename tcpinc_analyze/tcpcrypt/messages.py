"""tcpcrypt key-exchange messages and frame headers (RFC 8548 §4.1, §4.2, §5).

Encoders for the reference endpoints and strict decoders for the analyzer; decoders
return findings instead of raising so a broken message never stops an analysis. The
decoders also recognise the 2016 tcpcryptd layout (one-byte sym_cipher identifiers, an
uncompressed point behind pubkey_len) and say so.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..findings import Finding, Severity
from ..wire import (
    AEADS,
    DIALECT_RFC8548,
    DIALECT_TCPCRYPTD_2016,
    FRAME_CONTROL_RESERVED,
    FRAME_HEADER_LEN,
    FRAME_LENGTH_MAX,
    FRAME_LENGTH_MIN,
    INIT1_FIXED,
    INIT1_MAGIC,
    INIT2_FIXED,
    INIT2_MAGIC,
    INIT_MESSAGE_LEN_MAX,
    N_A_LEN,
    N_B_LEN,
    PUBKEY_LEN_FIELD,
    PUBKEY_LEN_WHOLE,
    SYM_CIPHER_LEN,
    TCPCRYPT_TEPS,
    TEP_P256,
    TEP_P521,
    TEP_X448,
    TEP_X25519,
    aead_name,
    pubkey_len_reading,
    pubkey_len_value,
)

_HEAD = struct.Struct(">II")
RFC = "RFC 8548"


def encode_pub(tep: int, point: bytes, reading: str = PUBKEY_LEN_WHOLE) -> bytes:
    """Pub as it goes into Init1/Init2 (§5): X25519/X448 raw; P-256/P-521 behind a
    two-byte big-endian pubkey_len (whose value follows the **[ambiguous]** reading in
    ``wire.pubkey_len_value``)."""
    info = TCPCRYPT_TEPS[tep]
    if not info.length_prefix:
        return bytes(point)
    return pubkey_len_value(len(point), reading).to_bytes(PUBKEY_LEN_FIELD, "big") + point


@dataclass(frozen=True)
class PubKey:
    """A public key as it sat in an Init message."""

    wire: bytes
    """The bytes of the Pub field, length prefix included."""
    point: bytes
    """The key itself (raw X25519/X448 key, or the encoded NIST point)."""
    length_field: int | None = None
    """pubkey_len as sent (P-256/P-521)."""
    length_reading: str | None = None
    """Which reading of pubkey_len the sender used (``whole`` or ``point``)."""

    @property
    def compressed(self) -> bool | None:
        """Whether a NIST point is compressed (None for X25519/X448)."""
        if self.length_field is None:
            return None
        return self.point[:1] in (b"\x02", b"\x03")


@dataclass(frozen=True)
class Init1:
    """A's key-exchange message (§4.1)."""

    sym_ciphers: tuple[int, ...]
    nonce: bytes
    pub_wire: bytes
    """Pub_A exactly as in the message (``encode_pub``)."""
    ignored: bytes = b""
    pub: PubKey | None = None
    dialect: str = DIALECT_RFC8548

    @property
    def pubkey(self) -> bytes:
        """The public key without its length prefix."""
        return self.pub.point if self.pub is not None else self.pub_wire

    def encode(self) -> bytes:
        """Serialise with the message length computed from the parts."""
        if not 1 <= len(self.sym_ciphers) <= 255:
            raise ValueError("Init1 lists 1 to 255 ciphers")
        if len(self.nonce) != N_A_LEN:
            raise ValueError("N_A is 32 bytes")
        body = (bytes((len(self.sym_ciphers),))
                + b"".join(c.to_bytes(SYM_CIPHER_LEN, "big") for c in self.sym_ciphers)
                + self.nonce + self.pub_wire + self.ignored)
        return _HEAD.pack(INIT1_MAGIC, 8 + len(body)) + body


@dataclass(frozen=True)
class Init2:
    """B's key-exchange message (§4.1)."""

    sym_cipher: int
    nonce: bytes
    pub_wire: bytes
    ignored: bytes = b""
    pub: PubKey | None = None
    dialect: str = DIALECT_RFC8548

    @property
    def pubkey(self) -> bytes:
        """The public key without its length prefix."""
        return self.pub.point if self.pub is not None else self.pub_wire

    def encode(self) -> bytes:
        """Serialise with the message length computed from the parts."""
        if len(self.nonce) != N_B_LEN:
            raise ValueError("N_B is 32 bytes")
        body = (self.sym_cipher.to_bytes(SYM_CIPHER_LEN, "big") + self.nonce + self.pub_wire
                + self.ignored)
        return _HEAD.pack(INIT2_MAGIC, 8 + len(body)) + body


def message_length(buf: bytes, magic: int) -> int | None:
    """The ``message_len`` of an Init message starting ``buf``, or None if not that magic."""
    if len(buf) < 8:
        return None
    got_magic, length = _HEAD.unpack_from(buf)
    return length if got_magic == magic else None


def _check_head(buf: bytes, magic: int, fixed: int, name: str) -> tuple[int, list[Finding]]:
    if len(buf) < 8:
        return -1, [Finding(Severity.ERROR, "tcpcrypt-truncated",
                            f"{name}: {len(buf)} bytes, expected at least 8 (magic, length)", 0)]
    got_magic, length = _HEAD.unpack_from(buf)
    if got_magic != magic:
        return -1, [Finding(Severity.ERROR, "tcpcrypt-bad-magic",
                            f"{name}: magic 0x{got_magic:08x}, expected 0x{magic:08x}", 0)]
    if length < fixed or length > INIT_MESSAGE_LEN_MAX:
        return -1, [Finding(Severity.ERROR, "tcpcrypt-bad-length",
                            f"{name}: message_len {length} outside {fixed}.."
                            f"{INIT_MESSAGE_LEN_MAX}", 4)]
    if len(buf) < length:
        return -1, [Finding(Severity.ERROR, "tcpcrypt-truncated",
                            f"{name}: message_len {length} but only {len(buf)} bytes present",
                            4)]
    return length, []


def _nist_point_len(tep: int, first: int) -> int | None:
    info = TCPCRYPT_TEPS[tep]
    if first in (2, 3):
        return info.point_len
    if first == 4:
        return info.uncompressed_len
    return None


def split_pub(rest: bytes, tep: int) -> tuple[PubKey | None, str]:
    """Cut Pub off the front of ``rest`` (the message from Pub to its end).

    Returns (key, problem): the key and "" when the field is consistent; None and what
    is wrong otherwise. The point's first byte gives its size (compressed 02/03 or
    uncompressed 04); pubkey_len may count the two length bytes or not (**[ambiguous]**).
    """
    info = TCPCRYPT_TEPS.get(tep)
    if info is None:
        return None, f"TEP 0x{tep:02x} is not a tcpcrypt TEP"
    if not info.length_prefix:
        if len(rest) < info.point_len:
            return None, (f"{len(rest)} bytes left for a {info.point_len}-byte {info.name} "
                          "public key")
        return PubKey(bytes(rest[:info.point_len]), bytes(rest[:info.point_len])), ""
    if len(rest) < PUBKEY_LEN_FIELD + 1:
        return None, f"{len(rest)} bytes left for pubkey_len and an {info.name} point"
    length = int.from_bytes(rest[:2], "big")
    point_len = _nist_point_len(tep, rest[2])
    if point_len is None:
        return None, (f"the {info.name} point starts with 0x{rest[2]:02x}, expected 0x02/0x03 "
                      "(compressed) or 0x04 (uncompressed)")
    reading = pubkey_len_reading(length, point_len)
    if reading is None:
        return None, (f"pubkey_len {length} fits neither {point_len + PUBKEY_LEN_FIELD} "
                      f"(length field and point) nor {point_len} (point) for a "
                      f"{point_len}-byte {info.name} point")
    end = PUBKEY_LEN_FIELD + point_len
    if len(rest) < end:
        return None, f"{len(rest) - 2} bytes left for a {point_len}-byte {info.name} point"
    return PubKey(bytes(rest[:end]), bytes(rest[2:end]), length, reading), ""


def _pub_findings(name: str, pub: PubKey, dialect: str, where: int) -> list[Finding]:
    if dialect == DIALECT_RFC8548 and pub.compressed is False:
        return [Finding(Severity.WARNING, "pubkey-uncompressed",
                        f"{name}: the public key is an uncompressed point; senders MUST use "
                        "the compressed format", where + PUBKEY_LEN_FIELD, rfc=f"{RFC} §5")]
    return []


def _ignored_findings(name: str, ignored: bytes, where: int) -> list[Finding]:
    if not ignored:
        return []
    return [Finding(Severity.WARNING, "init-ignored-nonempty",
                    f"{name}: {len(ignored)} bytes follow the public key; senders MUST leave "
                    "the ignored field empty (receivers skip it)", where, size=len(ignored),
                    rfc=f"{RFC} §4.1")]


def _cipher_findings(name: str, ciphers: tuple[int, ...], first: int, width: int
                     ) -> list[Finding]:
    return [Finding(Severity.WARNING, "tcpcrypt-unknown-aead",
                    f"{name}: unknown sym_cipher 0x{c:04x}", first + width * i)
            for i, c in enumerate(ciphers) if c not in AEADS]


def _ciphers(msg: bytes, count: int, width: int) -> tuple[int, ...]:
    return tuple(int.from_bytes(msg[INIT1_FIXED + width * i:INIT1_FIXED + width * (i + 1)],
                                "big") for i in range(count))


def parse_init1(buf: bytes, tep: int) -> tuple[Init1 | None, list[Finding]]:
    """Decode Init1 from the start of A's stream (``buf`` may hold more than the message)."""
    length, findings = _check_head(buf, INIT1_MAGIC, INIT1_FIXED, "Init1")
    if length < 0:
        return None, findings
    msg = bytes(buf[:length])
    nciphers = msg[8]
    if nciphers == 0:
        findings.append(Finding(Severity.ERROR, "tcpcrypt-no-ciphers",
                                "Init1: nciphers is 0, expected at least 1", 8))
    problems = []
    for width, dialect in ((SYM_CIPHER_LEN, DIALECT_RFC8548), (1, DIALECT_TCPCRYPTD_2016)):
        if dialect == DIALECT_TCPCRYPTD_2016 and tep not in (TEP_P256, TEP_P521):
            break
        start = INIT1_FIXED + width * nciphers + N_A_LEN
        if start > length:
            problems.append(f"{nciphers} ciphers and N_A need {start} bytes, message_len is "
                            f"{length}")
            continue
        pub, problem = split_pub(msg[start:], tep)
        if pub is None:
            problems.append(problem)
            continue
        if dialect == DIALECT_TCPCRYPTD_2016 and pub.compressed is not False:
            continue
        ciphers = _ciphers(msg, nciphers, width)
        nonce = msg[start - N_A_LEN:start]
        ignored = msg[start + len(pub.wire):]
        findings += _cipher_findings("Init1", ciphers, INIT1_FIXED, width)
        if dialect == DIALECT_RFC8548:
            findings += _pub_findings("Init1", pub, dialect, start)
            findings += _ignored_findings("Init1", ignored, start + len(pub.wire))
        return Init1(ciphers, nonce, pub.wire, ignored, pub, dialect), findings
    findings.append(Finding(Severity.ERROR, "tcpcrypt-bad-pubkey",
                            f"Init1: {problems[0] if problems else 'no usable layout'}",
                            INIT1_FIXED))
    return None, findings


def parse_init2(buf: bytes, tep: int) -> tuple[Init2 | None, list[Finding]]:
    """Decode Init2 from the start of B's stream (``buf`` may hold more than the message)."""
    length, findings = _check_head(buf, INIT2_MAGIC, 8 + 1, "Init2")
    if length < 0:
        return None, findings
    msg = bytes(buf[:length])
    problems = []
    for width, dialect in ((SYM_CIPHER_LEN, DIALECT_RFC8548), (1, DIALECT_TCPCRYPTD_2016)):
        if dialect == DIALECT_TCPCRYPTD_2016 and tep not in (TEP_P256, TEP_P521):
            break
        start = 8 + width + N_B_LEN
        if start > length:
            problems.append(f"N_B needs {start} bytes, message_len is {length}")
            continue
        pub, problem = split_pub(msg[start:], tep)
        if pub is None:
            problems.append(problem)
            continue
        if dialect == DIALECT_TCPCRYPTD_2016 and pub.compressed is not False:
            continue
        cipher = int.from_bytes(msg[8:8 + width], "big")
        ignored = msg[start + len(pub.wire):]
        findings += _cipher_findings("Init2", (cipher,), 8, width)
        if dialect == DIALECT_RFC8548:
            findings += _pub_findings("Init2", pub, dialect, start)
            findings += _ignored_findings("Init2", ignored, start + len(pub.wire))
        return Init2(cipher, msg[8 + width:start], pub.wire, ignored, pub, dialect), findings
    findings.append(Finding(Severity.ERROR, "tcpcrypt-bad-pubkey",
                            f"Init2: {problems[0] if problems else 'no usable layout'}",
                            INIT2_FIXED))
    return None, findings


def infer_tep(message: bytes, init1: bool) -> int | None:
    """Guess the TEP of an Init message when the SYNs were not captured.

    The public key is the only TEP-specific part: prefer a TEP whose key ends the
    message exactly (no ignored bytes), as senders must build it.
    """
    if len(message) < 9:
        return None
    best = None
    for tep in (TEP_X25519, TEP_X448, TEP_P256, TEP_P521):
        parsed = (parse_init1 if init1 else parse_init2)(message, tep)[0]
        if parsed is None:
            continue
        if not parsed.ignored:
            return tep
        if best is None:
            best = tep
    return best


def describe_cipher(ident: int) -> str:
    """``AEAD_AES_128_GCM (0x0001)``: for messages."""
    return f"{aead_name(ident)} (0x{ident:04x})"


@dataclass(frozen=True)
class FrameHeader:
    """The three cleartext bytes in front of every frame (§4.2)."""

    control: int
    length: int

    @property
    def rekey(self) -> bool:
        """The sender moved to its next key generation with this frame."""
        return bool(self.control & 0x01)

    @property
    def total(self) -> int:
        """Bytes the whole frame occupies in the stream."""
        return FRAME_HEADER_LEN + self.length


def parse_frame_header(buf: bytes, pos: int = 0) -> tuple[FrameHeader | None, list[Finding]]:
    """Decode a frame header at ``pos``; None when fewer than three bytes remain."""
    if len(buf) - pos < FRAME_HEADER_LEN:
        return None, []
    control = buf[pos]
    length = (buf[pos + 1] << 8) | buf[pos + 2]
    findings = []
    if control & FRAME_CONTROL_RESERVED:
        findings.append(Finding(Severity.WARNING, "frame-reserved-bits",
                                f"frame control 0x{control:02x} sets reserved cres bits", pos,
                                rfc=f"{RFC} §4.2"))
    if length < FRAME_LENGTH_MIN:
        findings.append(Finding(Severity.ERROR, "tcpcrypt-short-frame",
                                f"frame clen {length} cannot hold a 16-byte tag and flags "
                                f"(minimum {FRAME_LENGTH_MIN})", pos + 1))
    return FrameHeader(control, length), findings


def encode_frame(control: int, ciphertext: bytes) -> bytes:
    """Prefix a ciphertext (with its tag) with the frame header."""
    if len(ciphertext) > FRAME_LENGTH_MAX:
        raise ValueError(f"frame ciphertext of {len(ciphertext)} bytes exceeds 65535")
    return bytes((control, len(ciphertext) >> 8, len(ciphertext) & 0xFF)) + ciphertext

