"""tcpcrypt key agreement and key schedule (RFC 8548 §3.3-§3.5, §5, §6).

Shared by the reference endpoints (which must produce the keys) and the decryptor
(which must reproduce them from a key log). The formulas themselves live in ``wire``;
this module adds the elliptic-curve work and keeps derived values together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..wire import (
    TCPCRYPT_TEPS,
    TEP_P256,
    TEP_P521,
    TEP_X448,
    TEP_X25519,
    first_master_key,
    next_master_key,
    next_session_secret,
    resume_identifier,
    session_id,
    traffic_keys,
)

_CURVES: dict[int, ec.EllipticCurve] = {TEP_P256: ec.SECP256R1(), TEP_P521: ec.SECP521R1()}
_ORDERS = {
    TEP_P256: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    TEP_P521: int("01FF" + "FFFFFFFF" * 7 + "FFFFFFFA51868783BF2F966B7FCC0148F709A5D0"
                  "3BB5C9B8899C47AEBB6FB71E91386409", 16),
}
_P25519 = 2**255 - 19
_P448 = 2**448 - 2**224 - 1


def _small_order_keys() -> dict[int, frozenset[bytes]]:
    """Every encoding of the X25519/X448 points of small order: with them every shared
    secret is all-zero (RFC 7748 §6-§7). X25519 keys are read mod 2^255 (the top bit is
    masked), so u and u + p, and each with the top bit set, are the same point."""
    x25519_u = (0, 1, 325606250916557431795983626356110631294008115727848805560023387167927233504,
                39382357235489614581723060781553021112529911719440698176882885853963445705823,
                _P25519 - 1)
    keys25519 = set()
    for u in x25519_u:
        for value in (u, u + _P25519):
            if value < 2**255:
                for top in (0, 2**255):
                    keys25519.add((value | top).to_bytes(32, "little"))
    keys448 = {u.to_bytes(56, "little") for base in (0, 1, _P448 - 1)
               for u in (base, base + _P448) if u < 2**448}
    return {TEP_X25519: frozenset(keys25519), TEP_X448: frozenset(keys448)}


_SMALL_ORDER = _small_order_keys()


class KeyAgreementError(ValueError):
    """A public key is invalid for its TEP or the shared secret is degenerate."""


@dataclass(frozen=True)
class KeyPair:
    """An ephemeral key pair in the byte forms the wire and the key log use."""

    tep: int
    private: bytes
    """Raw scalar (X25519/X448) or big-endian scalar (P-256/P-521), as in the key log."""
    public: bytes
    """The public key: raw X25519/X448 key, or the compressed NIST point (no length)."""


def _check_tep(tep: int) -> None:
    if tep not in TCPCRYPT_TEPS:
        raise KeyAgreementError(f"TEP 0x{tep:02x} is not a tcpcrypt TEP")


def keypair_from_private(tep: int, private: bytes, *, compressed: bool = True) -> KeyPair:
    """Rebuild a key pair from its private bytes (key log or deterministic synthesis)."""
    _check_tep(tep)
    if tep == TEP_X25519:
        public = x25519.X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
    elif tep == TEP_X448:
        public = x448.X448PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
    else:
        value = int.from_bytes(private, "big")
        if not 1 <= value < _ORDERS[tep]:
            raise KeyAgreementError("private scalar out of range for its curve")
        key = ec.derive_private_key(value, _CURVES[tep])
        fmt = PublicFormat.CompressedPoint if compressed else PublicFormat.UncompressedPoint
        public = key.public_key().public_bytes(Encoding.X962, fmt)
    return KeyPair(tep, bytes(private), public)


def generate_keypair(tep: int, rng: random.Random, *, compressed: bool = True) -> KeyPair:
    """A key pair drawn from ``rng``, so a seeded synthesis is byte-for-byte repeatable."""
    _check_tep(tep)
    size = TCPCRYPT_TEPS[tep].private_len
    if tep in _ORDERS:
        order = _ORDERS[tep]
        while True:
            value = int.from_bytes(rng.randbytes(size), "big") & ((1 << order.bit_length()) - 1)
            if 1 <= value < order:
                return keypair_from_private(tep, value.to_bytes(size, "big"),
                                            compressed=compressed)
    return keypair_from_private(tep, rng.randbytes(size))


def _peer_key(tep: int, point: bytes) -> object:
    try:
        if tep == TEP_X25519:
            return x25519.X25519PublicKey.from_public_bytes(point)
        if tep == TEP_X448:
            return x448.X448PublicKey.from_public_bytes(point)
        return ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[tep], point)
    except ValueError as exc:
        raise KeyAgreementError(f"not a valid {TCPCRYPT_TEPS[tep].name} public key: {exc}"
                                ) from exc


def validate_public(tep: int, point: bytes) -> str | None:
    """Why a received public key is unusable, or None (RFC 8548 §5: IEEE 1363 A.16.10
    validation for P-256/P-521; for X25519/X448, a small-order point, which forces an
    all-zero shared secret and must abort)."""
    try:
        _check_tep(tep)
        if tep in _SMALL_ORDER:
            if bytes(point) in _SMALL_ORDER[tep]:
                return "a small-order point: every shared secret with it is all-zero"
            if len(point) != TCPCRYPT_TEPS[tep].point_len:
                raise KeyAgreementError(f"{len(point)} bytes, expected "
                                        f"{TCPCRYPT_TEPS[tep].point_len}")
            return None
        _peer_key(tep, point)
    except KeyAgreementError as exc:
        return str(exc)
    return None


def canonical_public(point: bytes) -> bytes:
    """The form a key log is matched on: NIST points compressed, others unchanged, so
    a logged key matches whichever encoding the wire used (digest section 3)."""
    if len(point) in (65, 133) and point[0] == 4:
        coord = (len(point) - 1) // 2
        y = int.from_bytes(point[1 + coord:], "big")
        return bytes((2 | (y & 1),)) + point[1:1 + coord]
    return bytes(point)


def shared_secret(tep: int, private: bytes, peer_point: bytes) -> bytes:
    """ES: the key-agreement result (§5): X25519/X448, or ECSVDP-DH's x-coordinate."""
    _check_tep(tep)
    peer = _peer_key(tep, peer_point)
    try:
        if tep == TEP_X25519:
            es = x25519.X25519PrivateKey.from_private_bytes(private).exchange(peer)  # type: ignore[arg-type]
        elif tep == TEP_X448:
            es = x448.X448PrivateKey.from_private_bytes(private).exchange(peer)  # type: ignore[arg-type]
        else:
            own = ec.derive_private_key(int.from_bytes(private, "big"), _CURVES[tep])
            es = own.exchange(ec.ECDH(), peer)  # type: ignore[arg-type]
    except ValueError as exc:
        raise KeyAgreementError(f"key agreement failed (all-zero shared secret?): {exc}") from exc
    if not any(es):
        raise KeyAgreementError("all-zero shared secret")
    return es


def session_secret_at(ss0: bytes, index: int) -> bytes:
    """ss[index], walking the chain from ss[0]."""
    ss = ss0
    for _ in range(index):
        ss = next_session_secret(ss)
    return ss


class KeyChain:
    """mk[j] and each generation's traffic keys, derived on demand and kept (§3.3, §3.8)."""

    __slots__ = ("aead", "_master", "_keys")

    def __init__(self, mk0: bytes, aead: int) -> None:
        self.aead = aead
        self._master = [mk0]
        self._keys: dict[int, tuple[bytes, bytes]] = {}

    def master_key(self, generation: int) -> bytes:
        """mk[generation]."""
        while len(self._master) <= generation:
            self._master.append(next_master_key(self._master[-1]))
        return self._master[generation]

    def keys(self, generation: int) -> tuple[bytes, bytes]:
        """(k_ab, k_ba) of a generation, each K || NR."""
        keys = self._keys.get(generation)
        if keys is None:
            keys = self._keys[generation] = traffic_keys(self.master_key(generation), self.aead)
        return keys

    def key(self, generation: int, ab: bool) -> bytes:
        """k_ab[generation] (``ab``) or k_ba[generation]."""
        return self.keys(generation)[0 if ab else 1]


@dataclass(frozen=True)
class SessionKeys:
    """What one session secret ss[i] and session nonce sn[i] give a connection."""

    tep_byte: int
    """B's byte for the negotiated TEP (v bit included): the session ID's first byte."""
    aead: int
    ss: bytes
    """ss[i]: the secret securing this connection."""
    sn: bytes = b""
    """sn[i] = nonce_a | nonce_b for a resumed session; empty for ss[0]."""

    @property
    def tep(self) -> int:
        """The negotiated TEP identifier."""
        return self.tep_byte & 0x7F

    @property
    def session_id(self) -> bytes:
        """session_id[i] (§3.4)."""
        return session_id(self.tep_byte, self.ss, self.sn)

    @property
    def mk0(self) -> bytes:
        """mk[0] = CPRF(ss[i], CONST_REKEY | sn[i], K_LEN)."""
        return first_master_key(self.ss, self.sn)

    def chain(self) -> KeyChain:
        """The key generations of this connection."""
        return KeyChain(self.mk0, self.aead)

    @property
    def k_ab(self) -> bytes:
        """k_ab[0]."""
        return traffic_keys(self.mk0, self.aead)[0]

    @property
    def k_ba(self) -> bytes:
        """k_ba[0]."""
        return traffic_keys(self.mk0, self.aead)[1]

    @property
    def next_ss(self) -> bytes:
        """ss[i+1], the secret a later connection resumes with."""
        return next_session_secret(self.ss)

    @property
    def next_resume(self) -> bytes:
        """resume[i+1], the identifier that names ss[i+1]."""
        return resume_identifier(self.next_ss)
