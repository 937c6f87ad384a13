"""Reference tcpcrypt endpoints for host A and host B (RFC 8548 §3.3, §3.5).

No public RFC 8548 implementation exists, so these endpoints are what every sample is
made with. Each role computes its keys on its own from what it received, so a test can
show both roles agree; knobs let a scenario break a rule on purpose (the conformance
samples) without the endpoints' normal behaviour depending on them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..wire import (
    AEADS,
    N_A_LEN,
    N_B_LEN,
    PUBKEY_LEN_WHOLE,
    initial_session_secret,
    resume_half,
    resume_identifier,
)
from .keyschedule import (
    KeyPair,
    SessionKeys,
    generate_keypair,
    session_secret_at,
    shared_secret,
)
from .messages import Init1, Init2, encode_pub, parse_init1, parse_init2


class HandshakeError(ValueError):
    """The peer's key-exchange message cannot be used."""


class EndpointA:
    """Host A: sends Init1, receives Init2."""

    def __init__(self, tep: int, aeads: Sequence[int], rng: random.Random, *,
                 ignored: bytes = b"", keypair: KeyPair | None = None,
                 pubkey_reading: str = PUBKEY_LEN_WHOLE, compressed: bool = True) -> None:
        self.tep = tep
        self.aeads = tuple(aeads)
        self.keypair = keypair or generate_keypair(tep, rng, compressed=compressed)
        self.nonce = rng.randbytes(N_A_LEN)
        self.pub_wire = encode_pub(tep, self.keypair.public, pubkey_reading)
        self.init1 = Init1(self.aeads, self.nonce, self.pub_wire, ignored).encode()
        self.keys: SessionKeys | None = None

    def receive_init2(self, init2_bytes: bytes, transcript: bytes, tep_byte: int
                      ) -> SessionKeys:
        """Complete the exchange: check B's choice (§3.3), derive ss[0] and the keys."""
        msg, findings = parse_init2(init2_bytes, self.tep)
        if msg is None:
            raise HandshakeError("; ".join(f.message for f in findings))
        if msg.sym_cipher not in self.aeads:
            raise HandshakeError(f"B chose AEAD 0x{msg.sym_cipher:04x}, which A did not offer")
        es = shared_secret(self.tep, self.keypair.private, msg.pubkey)
        init2_len = int.from_bytes(init2_bytes[4:8], "big")
        ss = initial_session_secret(self.nonce, transcript, self.init1,
                                    bytes(init2_bytes[:init2_len]), es)
        self.keys = SessionKeys(tep_byte, msg.sym_cipher, ss)
        return self.keys


class EndpointB:
    """Host B: receives Init1, answers with Init2."""

    def __init__(self, tep: int, aead_preference: Sequence[int], rng: random.Random, *,
                 ignored: bytes = b"", keypair: KeyPair | None = None,
                 pubkey_reading: str = PUBKEY_LEN_WHOLE, compressed: bool = True,
                 force_cipher: int | None = None) -> None:
        self.tep = tep
        self.aead_preference = tuple(aead_preference)
        self.keypair = keypair or generate_keypair(tep, rng, compressed=compressed)
        self.nonce = rng.randbytes(N_B_LEN)
        self.ignored = ignored
        self.pub_wire = encode_pub(tep, self.keypair.public, pubkey_reading)
        self.force_cipher = force_cipher
        """Send this sym_cipher whatever A offered (a conformance sample's broken B)."""
        self.keys: SessionKeys | None = None
        self.init2 = b""

    def receive_init1(self, init1_bytes: bytes, transcript: bytes, tep_byte: int) -> bytes:
        """Pick B's preferred AEAD among A's, derive keys, return Init2."""
        msg, findings = parse_init1(init1_bytes, self.tep)
        if msg is None:
            raise HandshakeError("; ".join(f.message for f in findings))
        choice = self.force_cipher
        if choice is None:
            choice = next((c for c in self.aead_preference if c in msg.sym_ciphers), None)
        if choice is None or choice not in AEADS:
            raise HandshakeError("no AEAD in common with A's Init1")
        self.init2 = Init2(choice, self.nonce, self.pub_wire, self.ignored).encode()
        es = shared_secret(self.tep, self.keypair.private, msg.pubkey)
        init1_len = int.from_bytes(init1_bytes[4:8], "big")
        ss = initial_session_secret(msg.nonce, transcript, bytes(init1_bytes[:init1_len]),
                                    self.init2, es)
        self.keys = SessionKeys(tep_byte, choice, ss)
        return self.init2


@dataclass
class Exchange:
    """A completed fresh key exchange as both roles saw it."""

    a: EndpointA
    b: EndpointB
    keys: SessionKeys

    @property
    def init1(self) -> bytes:
        """A's first stream bytes."""
        return self.a.init1

    @property
    def init2(self) -> bytes:
        """B's first stream bytes."""
        return self.b.init2


def full_exchange(tep: int, a_aeads: Sequence[int], b_aeads: Sequence[int], transcript: bytes,
                  rng: random.Random, *, tep_byte: int | None = None, a_ignored: bytes = b"",
                  b_ignored: bytes = b"") -> Exchange:
    """Run Init1/Init2 between fresh endpoints; raises if the roles disagree on keys."""
    byte = tep if tep_byte is None else tep_byte
    a = EndpointA(tep, a_aeads, rng, ignored=a_ignored)
    b = EndpointB(tep, b_aeads, rng, ignored=b_ignored)
    init2 = b.receive_init1(a.init1, transcript, byte)
    keys = a.receive_init2(init2, transcript, byte)
    if keys != b.keys:
        raise HandshakeError("A and B derived different keys")
    return Exchange(a, b, keys)


@dataclass(frozen=True)
class Resumption:
    """What two hosts that share ss[0] put in their SYNs to resume with ss[index]."""

    index: int
    ss: bytes
    """ss[index]."""
    resume: bytes
    """resume[index]: the 18-byte identifier (what a key log names the session by)."""
    nonce_a: bytes
    """The nonce of the host that was A when ss[0] was made."""
    nonce_b: bytes

    def suboption_data(self, originally_a: bool) -> bytes:
        """A host's resumption suboption data: its half of resume[i], then its nonce."""
        nonce = self.nonce_a if originally_a else self.nonce_b
        return resume_half(self.resume, originally_a) + nonce

    def keys(self, tep_byte: int, aead: int) -> SessionKeys:
        """The resumed connection's keys: ss[i] with sn[i] = nonce_a | nonce_b."""
        return SessionKeys(tep_byte, aead, self.ss, self.nonce_a + self.nonce_b)


def resumption(ss0: bytes, index: int, nonce_a: bytes, nonce_b: bytes) -> Resumption:
    """Prepare resumption with ss[index] (index >= 1) of the session that made ss0."""
    if index < 1:
        raise ValueError("resumption uses ss[i] with i >= 1")
    ss = session_secret_at(ss0, index)
    return Resumption(index, ss, resume_identifier(ss), nonce_a, nonce_b)
