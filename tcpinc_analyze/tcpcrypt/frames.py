"""Sealing and opening tcpcrypt frames for one direction (RFC 8548 §3.6, §3.8, §4.2).

One object per direction keeps the current key generation and a cached AEAD object,
because building AEAD objects per frame would dominate decryption time.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ..wire import (
    AEAD_CHACHA20_POLY1305,
    AEAD_NONCE_LEN,
    AEAD_TAG_LEN,
    AEADS,
    FRAME_CONTROL_REKEY,
    FRAME_HEADER_LEN,
    NONCE_OFFSET_TCP_STREAM,
    Plaintext,
    decode_plaintext,
    encode_plaintext,
    frame_associated_data,
    frame_id_offset,
    split_traffic_key,
)
from .messages import encode_frame

Aead = AESGCM | ChaCha20Poly1305
KeyFor = Callable[[int], bytes]
"""A direction's traffic key (K || NR) for a key generation."""


def make_aead(aead: int, key: bytes) -> Aead:
    """The `cryptography` AEAD object for an AEAD identifier and its K."""
    info = AEADS.get(aead)
    if info is None:
        raise ValueError(f"unknown AEAD 0x{aead:04x}")
    if len(key) != info.key_len:
        raise ValueError(f"{info.name} needs a {info.key_len}-byte key, got {len(key)}")
    return ChaCha20Poly1305(key) if aead == AEAD_CHACHA20_POLY1305 else AESGCM(key)


class TrafficCipher:
    """One traffic key split into the AEAD object (from K) and NR."""

    __slots__ = ("aead", "nr", "_nr_int")

    def __init__(self, aead: int, traffic_key: bytes) -> None:
        k, self.nr = split_traffic_key(traffic_key, aead)
        self._nr_int = int.from_bytes(self.nr, "big")
        self.aead = make_aead(aead, k)

    def nonce(self, offset: int) -> bytes:
        """``wire.frame_nonce(NR, offset)``, with NR kept as an integer: this runs for
        every frame."""
        return (self._nr_int ^ offset).to_bytes(AEAD_NONCE_LEN, "big")

    def seal(self, offset: int, control: int, plain: bytes) -> bytes:
        """Encrypt a frame's plaintext for frame-ID offset ``offset``."""
        clen = len(plain) + AEAD_TAG_LEN
        return self.aead.encrypt(self.nonce(offset), plain,
                                 frame_associated_data(control, clen))

    def open(self, offset: int, control: int, ciphertext: bytes) -> bytes | None:
        """Decrypt and verify; None when the tag does not authenticate."""
        try:
            return self.aead.decrypt(self.nonce(offset), ciphertext,
                                     frame_associated_data(control, len(ciphertext)))
        except InvalidTag:
            return None


class _Direction:
    def __init__(self, aead: int, key_for: KeyFor, init_len: int, base: str) -> None:
        self.aead = aead
        self.key_for = key_for
        self.init_len = init_len
        self.base = base
        self.generation = 0
        self._cipher = TrafficCipher(aead, key_for(0))

    def _rekey(self) -> None:
        self.generation += 1
        self._cipher = TrafficCipher(self.aead, self.key_for(self.generation))


class FrameSealer(_Direction):
    """The sending side of one direction; ``offset`` is the next frame's position in the
    direction's TCP stream (Init message included)."""

    def __init__(self, aead: int, key_for: KeyFor, *, offset: int = 0, init_len: int = 0,
                 base: str = NONCE_OFFSET_TCP_STREAM) -> None:
        super().__init__(aead, key_for, init_len, base)
        self.offset = offset

    def seal(self, data: bytes, *, fin: bool = False, urgent: int | None = None,
             rekey: bool = False, extra_flags: int = 0, extra_control: int = 0) -> bytes:
        """Encrypt ``data`` into one frame; ``rekey`` moves to the next generation first
        and marks this frame, the first under it (§3.8)."""
        if rekey:
            self._rekey()
        control = (FRAME_CONTROL_REKEY if rekey else 0) | extra_control
        plain = encode_plaintext(data, fin=fin, urgent=urgent, extra_flags=extra_flags)
        nonce_offset = frame_id_offset(self.offset, self.init_len, self.base)
        frame = encode_frame(control, self._cipher.seal(nonce_offset, control, plain))
        self.offset += len(frame)
        return frame


class FrameOpener(_Direction):
    """The receiving side of one direction: follows rekeys and verifies tags."""

    def __init__(self, aead: int, key_for: KeyFor, *, init_len: int = 0,
                 base: str = NONCE_OFFSET_TCP_STREAM) -> None:
        super().__init__(aead, key_for, init_len, base)

    def open(self, control: int, ciphertext: bytes, stream_offset: int) -> Plaintext | None:
        """Decrypt the frame at ``stream_offset``; None when its tag does not verify.

        A frame with the rekey bit advances the generation before decryption, and the
        advance stays even if the tag fails (the sender said it rekeyed).
        """
        if control & FRAME_CONTROL_REKEY:
            self._rekey()
        plain = self._cipher.open(frame_id_offset(stream_offset, self.init_len, self.base),
                                  control, ciphertext)
        return None if plain is None else decode_plaintext(plain)


def frame_end(offset: int, length: int) -> int:
    """Stream offset just past a frame of ciphertext ``length`` starting at ``offset``."""
    return offset + FRAME_HEADER_LEN + length
