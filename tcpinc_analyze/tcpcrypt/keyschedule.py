"""tcpcrypt key agreement and key schedule (spec 2.1, 2.3-2.5).

Shared by the reference endpoints (which must produce the keys) and the decryptor
(which must reproduce them from a key log), so both sides are provably the same code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..wire import (
    AEADS,
    CONST_KEY_A,
    CONST_KEY_B,
    CONST_NEXTK,
    CONST_SESSID,
    K_LEN,
    TCPCRYPT_TEPS,
    TEP_P256,
    TEP_P521,
    TEP_X448,
    TEP_X25519,
    cprf,
    extract,
    resumption_identifiers,
)

_CURVES: dict[int, ec.EllipticCurve] = {TEP_P256: ec.SECP256R1(), TEP_P521: ec.SECP521R1()}
_ORDERS = {
    TEP_P256: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    TEP_P521: int("01FF" + "FFFFFFFF" * 7 + "FFFFFFFA51868783BF2F966B7FCC0148F709A5D0"
                  "3BB5C9B8899C47AEBB6FB71E91386409", 16),
}


class KeyAgreementError(ValueError):
    """A public key is invalid for its TEP or the shared secret is degenerate."""


@dataclass(frozen=True)
class KeyPair:
    """An ephemeral key pair in the byte forms the wire and the key log use."""

    tep: int
    private: bytes
    """Raw scalar (X25519/X448) or big-endian scalar (P-256/P-521), as in the key log."""
    public: bytes
    """The public key exactly as it goes into Init1/Init2."""


def _info(tep: int) -> None:
    if tep not in TCPCRYPT_TEPS:
        raise KeyAgreementError(f"TEP 0x{tep:02x} is not a tcpcrypt TEP")


def keypair_from_private(tep: int, private: bytes) -> KeyPair:
    """Rebuild a key pair from its private bytes (key log or deterministic synthesis)."""
    _info(tep)
    if tep == TEP_X25519:
        public = x25519.X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
    elif tep == TEP_X448:
        public = x448.X448PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
    else:
        value = int.from_bytes(private, "big")
        if not 1 <= value < _ORDERS[tep]:
            raise KeyAgreementError("private scalar out of range for its curve")
        key = ec.derive_private_key(value, _CURVES[tep])
        public = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return KeyPair(tep, bytes(private), public)


def generate_keypair(tep: int, rng: random.Random) -> KeyPair:
    """A key pair drawn from ``rng``, so a seeded synthesis is byte-for-byte repeatable."""
    _info(tep)
    size = TCPCRYPT_TEPS[tep].private_len
    if tep in _ORDERS:
        order = _ORDERS[tep]
        while True:
            value = int.from_bytes(rng.randbytes(size), "big") & ((1 << order.bit_length()) - 1)
            if 1 <= value < order:
                return keypair_from_private(tep, value.to_bytes(size, "big"))
    return keypair_from_private(tep, rng.randbytes(size))


def shared_secret(tep: int, private: bytes, peer_public: bytes) -> bytes:
    """ES: the ECDH shared secret (X coordinate for the NIST curves)."""
    _info(tep)
    expected = TCPCRYPT_TEPS[tep].pubkey_len
    if len(peer_public) != expected:
        raise KeyAgreementError(f"public key is {len(peer_public)} bytes, expected {expected}")
    try:
        if tep == TEP_X25519:
            es = x25519.X25519PrivateKey.from_private_bytes(private).exchange(
                x25519.X25519PublicKey.from_public_bytes(peer_public))
        elif tep == TEP_X448:
            es = x448.X448PrivateKey.from_private_bytes(private).exchange(
                x448.X448PublicKey.from_public_bytes(peer_public))
        else:
            curve = _CURVES[tep]
            own = ec.derive_private_key(int.from_bytes(private, "big"), curve)
            peer = ec.EllipticCurvePublicKey.from_encoded_point(curve, peer_public)
            es = own.exchange(ec.ECDH(), peer)
    except ValueError as exc:
        raise KeyAgreementError(f"key agreement failed: {exc}") from exc
    if not any(es):
        raise KeyAgreementError("all-zero shared secret")
    return es


def initial_session_secret(n_a: bytes, transcript: bytes, init1: bytes, init2: bytes,
                           es: bytes) -> bytes:
    """ss[0] = PRK = Extract(N_A, transcript || Init1 || Init2 || ES) (spec 2.3)."""
    return extract(n_a, transcript + init1 + init2 + es)


def next_session_secret(ss: bytes) -> bytes:
    """ss[i+1] = CPRF(ss[i], CONST_NEXTK, 32): the secret a resumed session uses."""
    return cprf(ss, CONST_NEXTK, K_LEN)


@dataclass(frozen=True)
class SessionKeys:
    """Everything derived from one session secret."""

    tep: int
    aead: int
    ss: bytes
    session_id: bytes
    """TEP byte || SID (33 bytes): the value applications bind to."""
    k_ab: bytes
    k_ba: bytes

    @property
    def resume_ids(self) -> tuple[bytes, bytes]:
        """(A's, B's) identifiers that resume the NEXT session from this one's successor."""
        return resumption_identifiers(next_session_secret(self.ss))


def session_keys(ss: bytes, tep: int, aead: int) -> SessionKeys:
    """Derive SID and both traffic keys from a session secret (spec 2.3, 2.4)."""
    key_len = AEADS[aead].key_len
    return SessionKeys(
        tep=tep,
        aead=aead,
        ss=ss,
        session_id=bytes((tep,)) + cprf(ss, CONST_SESSID, 32),
        k_ab=cprf(ss, CONST_KEY_A, key_len),
        k_ba=cprf(ss, CONST_KEY_B, key_len),
    )
