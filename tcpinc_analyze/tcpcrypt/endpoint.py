"""Reference tcpcrypt endpoints for host A and host B (RFC 8548 as the spec reads it).

No public RFC 8548 implementation exists, so these endpoints are what every sample is
made with. Each role computes its keys on its own from what it received, so a test can
show both roles agree; they also report what a key-log exporter would write.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..wire import AEADS, NONCE_LEN_A, NONCE_LEN_B, resumption_identifiers
from .frames import FrameOpener, FrameSealer
from .keyschedule import (
    KeyPair,
    SessionKeys,
    generate_keypair,
    initial_session_secret,
    next_session_secret,
    session_keys,
    shared_secret,
)
from .messages import Init1, Init2, parse_init1, parse_init2


class HandshakeError(ValueError):
    """The peer's key-exchange message cannot be used."""


class EndpointA:
    """The active opener: sends Init1, receives Init2."""

    def __init__(self, tep: int, aeads: Sequence[int], rng: random.Random, *,
                 ignored: bytes = b"", keypair: KeyPair | None = None) -> None:
        self.tep = tep
        self.aeads = tuple(aeads)
        self.keypair = keypair or generate_keypair(tep, rng)
        self.nonce = rng.randbytes(NONCE_LEN_A)
        self.init1 = Init1(self.aeads, self.nonce, self.keypair.public, ignored).encode()
        self.keys: SessionKeys | None = None

    def receive_init2(self, init2_bytes: bytes, transcript: bytes) -> SessionKeys:
        """Complete the exchange: check B's choice, derive ss[0] and the session keys."""
        msg, findings = parse_init2(init2_bytes, self.tep)
        if msg is None:
            raise HandshakeError("; ".join(f.message for f in findings))
        if msg.sym_cipher not in self.aeads:
            raise HandshakeError(f"B chose AEAD 0x{msg.sym_cipher:02x}, which A did not offer")
        es = shared_secret(self.tep, self.keypair.private, msg.pubkey)
        init2_len = int.from_bytes(init2_bytes[4:8], "big")
        ss = initial_session_secret(self.nonce, transcript, self.init1,
                                    bytes(init2_bytes[:init2_len]), es)
        self.keys = session_keys(ss, self.tep, msg.sym_cipher)
        return self.keys


class EndpointB:
    """The passive opener: receives Init1, answers with Init2."""

    def __init__(self, tep: int, aead_preference: Sequence[int], rng: random.Random, *,
                 ignored: bytes = b"", keypair: KeyPair | None = None) -> None:
        self.tep = tep
        self.aead_preference = tuple(aead_preference)
        self.keypair = keypair or generate_keypair(tep, rng)
        self.nonce = rng.randbytes(NONCE_LEN_B)
        self.ignored = ignored
        self.keys: SessionKeys | None = None
        self.init2 = b""

    def receive_init1(self, init1_bytes: bytes, transcript: bytes) -> bytes:
        """Pick B's preferred AEAD among A's, derive keys, return Init2."""
        msg, findings = parse_init1(init1_bytes, self.tep)
        if msg is None:
            raise HandshakeError("; ".join(f.message for f in findings))
        choice = next((c for c in self.aead_preference if c in msg.sym_ciphers), None)
        if choice is None:
            raise HandshakeError("no AEAD in common with A's Init1")
        self.init2 = Init2(choice, self.nonce, self.keypair.public, self.ignored).encode()
        es = shared_secret(self.tep, self.keypair.private, msg.pubkey)
        init1_len = int.from_bytes(init1_bytes[4:8], "big")
        ss = initial_session_secret(msg.nonce, transcript, bytes(init1_bytes[:init1_len]),
                                    self.init2, es)
        self.keys = session_keys(ss, self.tep, choice)
        return self.init2


@dataclass
class Exchange:
    """A completed full key exchange as both roles saw it."""

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
                  rng: random.Random, *, a_ignored: bytes = b"",
                  b_ignored: bytes = b"") -> Exchange:
    """Run Init1/Init2 between fresh endpoints; raises if the roles disagree on keys."""
    a = EndpointA(tep, a_aeads, rng, ignored=a_ignored)
    b = EndpointB(tep, b_aeads, rng, ignored=b_ignored)
    init2 = b.receive_init1(a.init1, transcript)
    keys = a.receive_init2(init2, transcript)
    if keys != b.keys:
        raise HandshakeError("A and B derived different keys")
    return Exchange(a, b, keys)


def resumed_keys(parent: SessionKeys) -> tuple[SessionKeys, bytes, bytes]:
    """Keys of the session that resumes ``parent``, with A's and B's resumption ids.

    The resumed session keeps the parent's AEAD (there is no Init exchange to choose
    another one).
    """
    ss = next_session_secret(parent.ss)
    id_a, id_b = resumption_identifiers(ss)
    return session_keys(ss, parent.tep, parent.aead), id_a, id_b


class Channel:
    """Both directions' frame sealers and openers for one session."""

    def __init__(self, keys: SessionKeys) -> None:
        if keys.aead not in AEADS:
            raise ValueError(f"unknown AEAD 0x{keys.aead:02x}")
        self.keys = keys
        self.seal_ab = FrameSealer(keys.aead, keys.k_ab)
        self.seal_ba = FrameSealer(keys.aead, keys.k_ba)
        self.open_ab = FrameOpener(keys.aead, keys.k_ab)
        self.open_ba = FrameOpener(keys.aead, keys.k_ba)

    def sealer(self, from_a: bool) -> FrameSealer:
        """The sealer of the direction that starts at A (True) or B (False)."""
        return self.seal_ab if from_a else self.seal_ba
