"""Sealing and opening tcpcrypt frames for one direction (spec 2.6).

One object per direction keeps the current key generation and a cached AEAD object,
because building AEAD objects per frame would dominate decryption time.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ..wire import (
    AEAD_CHACHA20_POLY1305,
    AEADS,
    FRAME_CONTROL_REKEY,
    FRAME_HEADER_LEN,
    Plaintext,
    decode_plaintext,
    encode_plaintext,
    frame_associated_data,
    frame_nonce,
    next_traffic_key,
)
from .messages import encode_frame

Aead = AESGCM | ChaCha20Poly1305


def make_aead(aead: int, key: bytes) -> Aead:
    """The `cryptography` AEAD object for an AEAD byte and key."""
    info = AEADS.get(aead)
    if info is None:
        raise ValueError(f"unknown AEAD 0x{aead:02x}")
    if len(key) != info.key_len:
        raise ValueError(f"{info.name} needs a {info.key_len}-byte key, got {len(key)}")
    return ChaCha20Poly1305(key) if aead == AEAD_CHACHA20_POLY1305 else AESGCM(key)


class _Direction:
    def __init__(self, aead: int, key: bytes) -> None:
        self.aead = aead
        self.key = key
        self.generation = 0
        self._cipher = make_aead(aead, key)

    def _rekey(self) -> None:
        self.key = next_traffic_key(self.key)
        self.generation += 1
        self._cipher = make_aead(self.aead, self.key)


class FrameSealer(_Direction):
    """The sending side of one direction: tracks the stream offset for the nonces."""

    def __init__(self, aead: int, key: bytes, offset: int = 0) -> None:
        super().__init__(aead, key)
        self.offset = offset

    def seal(self, data: bytes, *, fin: bool = False, urgent: int | None = None,
             rekey: bool = False, extra_flags: int = 0, extra_control: int = 0) -> bytes:
        """Encrypt ``data`` into one frame; ``rekey`` switches key generation first."""
        if rekey:
            self._rekey()
        control = (FRAME_CONTROL_REKEY if rekey else 0) | extra_control
        plain = encode_plaintext(data, fin=fin, urgent=urgent, extra_flags=extra_flags)
        length = len(plain) + 16
        ciphertext = self._cipher.encrypt(frame_nonce(self.offset), plain,
                                          frame_associated_data(control, length))
        frame = encode_frame(control, ciphertext)
        self.offset += len(frame)
        return frame


class FrameOpener(_Direction):
    """The receiving side of one direction: follows rekeys and verifies tags."""

    def open(self, control: int, ciphertext: bytes, offset: int) -> Plaintext | None:
        """Decrypt the frame at stream ``offset``; None when its tag does not verify.

        A frame with the rekey bit advances the key generation before decryption, and
        the advance stays even if the tag fails (the sender said it rekeyed).
        """
        if control & FRAME_CONTROL_REKEY:
            self._rekey()
        try:
            plain = self._cipher.decrypt(frame_nonce(offset), ciphertext,
                                         frame_associated_data(control, len(ciphertext)))
        except InvalidTag:
            return None
        return decode_plaintext(plain)


def frame_end(offset: int, length: int) -> int:
    """Stream offset just past a frame of ciphertext ``length`` starting at ``offset``."""
    return offset + FRAME_HEADER_LEN + length
