"""RFC 8548 known-answer test vectors (``samples/vectors.json``).

RFC 8548 ships no test vectors and no public implementation of it exists, so an
implementer has nothing to check a key schedule against. The reference endpoints can
give them one: for every tcpcrypt TEP x AEAD, a fresh key exchange (inputs, messages as
sent, every derived secret), frames in both directions and key generations, and a
resumed session. Everything is drawn from a random generator seeded by the vector's
name, so the file regenerates byte for byte; ``tests/test_vectors.py`` recomputes every
value from the inputs with ``hmac``/``hashlib`` and ``cryptography`` alone.

Choices where the RFC allows two readings (documented in ``samples/README.md``):
P-256/P-521 ``pubkey_len`` counts the two length bytes (RFC 8548 Figure 5, the
``whole`` reading); frames are given for both frame-ID offset bases (the full sequence
counting Init bytes, plus each direction's first frame counted from after its Init
message, whose offset is therefore 0).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from ..eno import GlobalSuboption, TepSuboption, encode_option
from ..output.safe_files import write_file
from ..tcpcrypt.endpoint import EndpointA, EndpointB, resumption
from ..tcpcrypt.frames import TrafficCipher
from ..tcpcrypt.keyschedule import KeyChain, SessionKeys, shared_secret
from ..tcpcrypt.messages import encode_frame
from ..wire import (
    AEAD_AES_128_GCM,
    AEAD_AES_256_GCM,
    AEAD_CHACHA20_POLY1305,
    FRAME_CONTROL_REKEY,
    NONCE_OFFSET_AFTER_INIT,
    NONCE_OFFSET_TCP_STREAM,
    TEP_P256,
    TEP_P521,
    TEP_X448,
    TEP_X25519,
    encode_plaintext,
    eno_transcript,
    extract,
    frame_id_offset,
    resume_identifier,
    session_id_first_byte,
)

VECTOR_TEPS = (TEP_P256, TEP_P521, TEP_X25519, TEP_X448)
VECTOR_AEADS = (AEAD_AES_128_GCM, AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305)
_TEP_SLUG = {TEP_P256: "p256", TEP_P521: "p521", TEP_X25519: "x25519", TEP_X448: "x448"}
_AEAD_SLUG = {AEAD_AES_128_GCM: "aes128gcm", AEAD_AES_256_GCM: "aes256gcm",
              AEAD_CHACHA20_POLY1305: "chacha20poly1305"}
RESUME_SHAPES = ((1, 8, 0), (2, 3, 8), (1, 0, 5), (2, 8, 2))
"""(i, len(nonce_a), len(nonce_b)) for the resumed session, cycled over the vectors:
lengths always differ, and a third of the vectors have an empty nonce on each side."""

VECTOR_KEYS = ("name", "tep", "aead", "a_private", "b_private", "a_public_wire",
               "b_public_wire", "a_syn_eno", "b_syn_eno", "init1", "init2", "es", "prk",
               "ss", "session_id", "mk", "k_ab", "k_ba", "resume", "frames", "resumed")
FRAME_KEYS = ("direction", "generation", "offset", "control", "plaintext", "frame")
RESUMED_KEYS = ("i", "nonce_a", "nonce_b", "sn", "session_id", "mk0", "k_ab0", "k_ba0")


def vector_name(tep: int, aead: int) -> str:
    """``x25519-chacha20poly1305``: what a vector is called."""
    return f"{_TEP_SLUG[tep]}-{_AEAD_SLUG[aead]}"


class _Direction:
    """One direction's frame stream: its offset counter and key generation."""

    def __init__(self, name: str, chain: KeyChain, init_len: int, base: str) -> None:
        self.name = name
        self.chain = chain
        self.ab = name == "ab"
        self.init_len = init_len
        self.base = base
        self.offset = init_len
        self.generation = 0

    def frame(self, data: bytes, *, rekey: bool = False, fin: bool = False,
              urgent: int | None = None) -> dict[str, Any]:
        """Seal one frame at the current position and describe it."""
        if rekey:
            self.generation += 1
        control = FRAME_CONTROL_REKEY if rekey else 0
        plaintext = encode_plaintext(data, fin=fin, urgent=urgent)
        offset = frame_id_offset(self.offset, self.init_len, self.base)
        cipher = TrafficCipher(self.chain.aead, self.chain.key(self.generation, self.ab))
        frame = encode_frame(control, cipher.seal(offset, control, plaintext))
        self.offset += len(frame)
        return {"direction": self.name, "generation": self.generation, "offset": offset,
                "control": control, "plaintext": plaintext.hex(), "frame": frame.hex()}


def _frames(chain: KeyChain, init1_len: int, init2_len: int) -> list[dict[str, Any]]:
    """A short conversation: request, answer, an URGp frame, A's rekey, B's answering
    rekey, both FINp frames; then each side's first frame under the other offset base."""
    a = _Direction("ab", chain, init1_len, NONCE_OFFSET_TCP_STREAM)
    b = _Direction("ba", chain, init2_len, NONCE_OFFSET_TCP_STREAM)
    request = b"GET /vectors HTTP/1.1\r\nHost: tcpinc.example\r\n\r\n"
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    urgent = b"interrupt!"
    frames = [
        a.frame(request),
        b.frame(answer),
        a.frame(urgent, urgent=len(urgent) - 1),
        a.frame(b"after the rekey", rekey=True),
        b.frame(b"", rekey=True),
        a.frame(b"bye", fin=True),
        b.frame(b"", fin=True),
    ]
    a_after = _Direction("ab", chain, init1_len, NONCE_OFFSET_AFTER_INIT)
    b_after = _Direction("ba", chain, init2_len, NONCE_OFFSET_AFTER_INIT)
    frames += [a_after.frame(request), b_after.frame(answer)]
    return frames


def build_vector(tep: int, aead: int, index: int) -> dict[str, Any]:
    """One vector: a fresh exchange for (tep, aead), its key schedule, frames, and a
    resumption from ss[i]."""
    name = vector_name(tep, aead)
    rng = random.Random(f"tcpinc-analyze RFC 8548 vector {name}")
    others = [t for t in VECTOR_TEPS if t != tep]
    # A offers every tcpcrypt TEP; B (the passive opener, so b = 1 explicitly, RFC 8547
    # §4.2) answers with the one it chose, which is the negotiated TEP (§4.5).
    a_syn_eno = encode_option([TepSuboption(t) for t in [*others, tep]])
    b_syn_eno = encode_option([GlobalSuboption.make(b=True), TepSuboption(tep)])
    transcript = eno_transcript(a_syn_eno, b_syn_eno)
    tep_byte = session_id_first_byte(tep, False)
    a_aeads = [aead, *[x for x in VECTOR_AEADS if x != aead]]
    ignored = b"\x00\x01\x02\x03" if aead == AEAD_AES_256_GCM else b""
    a = EndpointA(tep, a_aeads, rng)
    b = EndpointB(tep, [aead], rng, ignored=ignored)
    init2 = b.receive_init1(a.init1, transcript, tep_byte)
    keys = a.receive_init2(init2, transcript, tep_byte)
    if keys != b.keys:
        raise AssertionError(f"{name}: A and B derived different keys")
    es = shared_secret(tep, a.keypair.private, b.keypair.public)
    prk = extract(a.nonce, transcript + a.init1 + init2 + es)
    if prk != keys.ss:
        raise AssertionError(f"{name}: PRK differs from ss[0]")
    chain = keys.chain()
    ss = [keys.ss]
    for _ in range(2):
        ss.append(SessionKeys(tep_byte, aead, ss[-1]).next_ss)
    res = [resume_identifier(s) for s in ss[1:]]

    i, len_a, len_b = RESUME_SHAPES[index % len(RESUME_SHAPES)]
    nonce_a, nonce_b = rng.randbytes(len_a), rng.randbytes(len_b)
    resumed_keys = resumption(keys.ss, i, nonce_a, nonce_b).keys(
        session_id_first_byte(tep, True), aead)
    resumed_chain = resumed_keys.chain()
    return {
        "name": name,
        "tep": tep,
        "aead": aead,
        "a_private": a.keypair.private.hex(),
        "b_private": b.keypair.private.hex(),
        "a_public_wire": a.pub_wire.hex(),
        "b_public_wire": b.pub_wire.hex(),
        "a_syn_eno": a_syn_eno.hex(),
        "b_syn_eno": b_syn_eno.hex(),
        "init1": a.init1.hex(),
        "init2": init2.hex(),
        "es": es.hex(),
        "prk": prk.hex(),
        "ss": [s.hex() for s in ss],
        "session_id": keys.session_id.hex(),
        "mk": [chain.master_key(j).hex() for j in (0, 1)],
        "k_ab": [chain.key(j, True).hex() for j in (0, 1)],
        "k_ba": [chain.key(j, False).hex() for j in (0, 1)],
        "resume": [None, *(r.hex() for r in res)],
        "frames": _frames(chain, len(a.init1), len(init2)),
        "resumed": {
            "i": i,
            "nonce_a": nonce_a.hex(),
            "nonce_b": nonce_b.hex(),
            "sn": (nonce_a + nonce_b).hex(),
            "session_id": resumed_keys.session_id.hex(),
            "mk0": resumed_chain.master_key(0).hex(),
            "k_ab0": resumed_chain.key(0, True).hex(),
            "k_ba0": resumed_chain.key(0, False).hex(),
        },
    }


def build_vectors() -> dict[str, Any]:
    """Every TEP x AEAD vector, in a fixed order."""
    vectors = []
    for tep in VECTOR_TEPS:
        for aead in VECTOR_AEADS:
            vectors.append(build_vector(tep, aead, len(vectors)))
    return {"vectors": vectors}


def vectors_json() -> str:
    """The file's exact text (stable key order, one trailing newline)."""
    return json.dumps(build_vectors(), indent=1) + "\n"


def write_vectors(path: Path) -> None:
    """Write the vectors atomically, 0600 like every file holding private keys (though
    these are published)."""
    write_file(path, vectors_json())
