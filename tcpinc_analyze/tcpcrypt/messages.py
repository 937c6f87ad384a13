"""tcpcrypt key-exchange messages and frame headers (spec 2.2, 2.6).

Encoders for the reference endpoints and strict decoders for the analyzer; decoders
return findings instead of raising so a broken message never stops an analysis.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..findings import Finding, Severity
from ..wire import (
    AEADS,
    FRAME_CONTROL_RESERVED,
    FRAME_HEADER_LEN,
    FRAME_LENGTH_MAX,
    FRAME_LENGTH_MIN,
    INIT1_FIXED,
    INIT1_MAGIC,
    INIT2_FIXED,
    INIT2_MAGIC,
    INIT_MESSAGE_LEN_MAX,
    NONCE_LEN_A,
    NONCE_LEN_B,
    TCPCRYPT_TEPS,
)

_HEAD = struct.Struct(">II")


@dataclass(frozen=True)
class Init1:
    """A's key-exchange message."""

    sym_ciphers: tuple[int, ...]
    nonce: bytes
    pubkey: bytes
    ignored: bytes = b""

    def encode(self) -> bytes:
        """Serialise with the message length computed from the parts."""
        if not 1 <= len(self.sym_ciphers) <= 255:
            raise ValueError("Init1 lists 1 to 255 ciphers")
        if len(self.nonce) != NONCE_LEN_A:
            raise ValueError("N_A is 32 bytes")
        body = (bytes((len(self.sym_ciphers),)) + bytes(self.sym_ciphers) + self.nonce
                + self.pubkey + self.ignored)
        return _HEAD.pack(INIT1_MAGIC, 8 + len(body)) + body


@dataclass(frozen=True)
class Init2:
    """B's key-exchange message."""

    sym_cipher: int
    nonce: bytes
    pubkey: bytes
    ignored: bytes = b""

    def encode(self) -> bytes:
        """Serialise with the message length computed from the parts."""
        if len(self.nonce) != NONCE_LEN_B:
            raise ValueError("N_B is 32 bytes")
        body = bytes((self.sym_cipher,)) + self.nonce + self.pubkey + self.ignored
        return _HEAD.pack(INIT2_MAGIC, 8 + len(body)) + body


def message_length(buf: bytes, magic: int) -> int | None:
    """The ``message_len`` of an Init message starting ``buf``, or None if not that magic.

    Lets a reassembler know how many bytes to wait for before decoding.
    """
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
                            f"{name}: message_len {length} outside {fixed}..."
                            f"{INIT_MESSAGE_LEN_MAX}", 4)]
    if len(buf) < length:
        return -1, [Finding(Severity.ERROR, "tcpcrypt-truncated",
                            f"{name}: message_len {length} but only {len(buf)} bytes present",
                            4)]
    return length, []


def _split_pubkey(rest: bytes, tep: int, name: str, where: int
                  ) -> tuple[bytes, bytes, list[Finding]]:
    info = TCPCRYPT_TEPS.get(tep)
    if info is None:
        return b"", rest, [Finding(Severity.ERROR, "tcpcrypt-unknown-tep",
                                   f"{name}: TEP 0x{tep:02x} is not a tcpcrypt TEP", where)]
    if len(rest) < info.pubkey_len:
        return b"", rest, [Finding(Severity.ERROR, "tcpcrypt-short-pubkey",
                                   f"{name}: {len(rest)} bytes left for a {info.pubkey_len}-byte "
                                   f"{info.name} public key", where)]
    return rest[:info.pubkey_len], rest[info.pubkey_len:], []


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
    end = 9 + nciphers + NONCE_LEN_A
    if end > length:
        findings.append(Finding(Severity.ERROR, "tcpcrypt-truncated",
                                f"Init1: {nciphers} ciphers and N_A need {end} bytes, "
                                f"message_len is {length}", 8))
        return None, findings
    ciphers = tuple(msg[9:9 + nciphers])
    for i, c in enumerate(ciphers):
        if c not in AEADS:
            findings.append(Finding(Severity.WARNING, "tcpcrypt-unknown-aead",
                                    f"Init1: unknown sym_cipher 0x{c:02x}", 9 + i))
    nonce = msg[9 + nciphers:end]
    pub, ignored, more = _split_pubkey(msg[end:], tep, "Init1", end)
    findings += more
    if more:
        return None, findings
    return Init1(ciphers, nonce, pub, ignored), findings


def parse_init2(buf: bytes, tep: int) -> tuple[Init2 | None, list[Finding]]:
    """Decode Init2 from the start of B's stream (``buf`` may hold more than the message)."""
    length, findings = _check_head(buf, INIT2_MAGIC, INIT2_FIXED, "Init2")
    if length < 0:
        return None, findings
    msg = bytes(buf[:length])
    cipher = msg[8]
    if cipher not in AEADS:
        findings.append(Finding(Severity.WARNING, "tcpcrypt-unknown-aead",
                                f"Init2: unknown sym_cipher 0x{cipher:02x}", 8))
    end = 9 + NONCE_LEN_B
    if end > length:
        findings.append(Finding(Severity.ERROR, "tcpcrypt-truncated",
                                f"Init2: N_B needs {end} bytes, message_len is {length}", 4))
        return None, findings
    pub, ignored, more = _split_pubkey(msg[end:], tep, "Init2", end)
    findings += more
    if more:
        return None, findings
    return Init2(cipher, msg[9:end], pub, ignored), findings


@dataclass(frozen=True)
class FrameHeader:
    """The three cleartext bytes in front of every frame."""

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
        findings.append(Finding(Severity.WARNING, "tcpcrypt-control-reserved",
                                f"frame control 0x{control:02x} sets reserved bits", pos))
    if length < FRAME_LENGTH_MIN:
        findings.append(Finding(Severity.ERROR, "tcpcrypt-short-frame",
                                f"frame length {length} cannot hold a 16-byte tag and flags "
                                f"(minimum {FRAME_LENGTH_MIN})", pos + 1))
    return FrameHeader(control, length), findings


def encode_frame(control: int, ciphertext: bytes) -> bytes:
    """Prefix a ciphertext (with its tag) with the frame header."""
    if len(ciphertext) > FRAME_LENGTH_MAX:
        raise ValueError(f"frame ciphertext of {len(ciphertext)} bytes exceeds 65535")
    return bytes((control, len(ciphertext) >> 8, len(ciphertext) & 0xFF)) + ciphertext
