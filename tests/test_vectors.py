"""samples/vectors.json: the project's RFC 8548 known-answer tests.

The first test regenerates the file with the command users run and compares bytes. The
others recompute every value in it from the vector's inputs (private keys, nonces,
options, plaintexts) with ``hmac``/``hashlib`` and ``cryptography`` directly: nothing
below imports the product, so a vector that merely agrees with the product's own key
schedule would fail here if that schedule left the RFC text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
VECTORS_FILE = SAMPLES / "vectors.json"

# RFC 8548 §4.3 constants, §4.1 magics, §6 Table 3 / §7 Table 5, §5 Table 2.
CONST_NEXTK, CONST_SESSID, CONST_REKEY = 0x01, 0x02, 0x03
CONST_KEY_A, CONST_KEY_B, CONST_RESUME = 0x04, 0x05, 0x06
INIT1_MAGIC, INIT2_MAGIC = 0x15101A0E, 0x097105E0
AEAD = {1: (16, AESGCM), 2: (32, AESGCM), 16: (32, ChaCha20Poly1305)}
NIST = {0x21: ec.SECP256R1(), 0x22: ec.SECP521R1()}
POINT_LEN = {0x21: 33, 0x22: 67, 0x23: 32, 0x24: 56}
K_LEN = 32
NONCE_LEN = 12

VECTOR_KEYS = {"name", "tep", "aead", "a_private", "b_private", "a_public_wire",
               "b_public_wire", "a_syn_eno", "b_syn_eno", "init1", "init2", "es", "prk",
               "ss", "session_id", "mk", "k_ab", "k_ba", "resume", "frames", "resumed"}
FRAME_KEYS = {"direction", "generation", "offset", "control", "plaintext", "frame"}
RESUMED_KEYS = {"i", "nonce_a", "nonce_b", "sn", "session_id", "mk0", "k_ab0", "k_ba0"}


def _load() -> list[dict]:
    return json.loads(VECTORS_FILE.read_text())["vectors"]


VECTORS = _load()


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """RFC 5869 Extract: HMAC-SHA256 keyed with the salt."""
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def cprf(key: bytes, const: bytes, length: int) -> bytes:
    """RFC 5869 Expand with ``const`` as info (RFC 8548 §3.1)."""
    out, t, n = b"", b"", 1
    while len(out) < length:
        t = hmac.new(key, t + const + bytes([n]), hashlib.sha256).digest()
        out, n = out + t, n + 1
    return out[:length]


def public_point(tep: int, private: bytes) -> bytes:
    """The public key for a private key: raw for X25519/X448, compressed SEC1 point."""
    if tep == 0x23:
        return x25519.X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
    if tep == 0x24:
        return x448.X448PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
    key = ec.derive_private_key(int.from_bytes(private, "big"), NIST[tep])
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


def ecdh(tep: int, private: bytes, peer: bytes) -> bytes:
    """ES: X25519/X448, or the ECDH x-coordinate (RFC 8548 §5)."""
    if tep == 0x23:
        return x25519.X25519PrivateKey.from_private_bytes(private).exchange(
            x25519.X25519PublicKey.from_public_bytes(peer))
    if tep == 0x24:
        return x448.X448PrivateKey.from_private_bytes(private).exchange(
            x448.X448PublicKey.from_public_bytes(peer))
    key = ec.derive_private_key(int.from_bytes(private, "big"), NIST[tep])
    return key.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(NIST[tep], peer))


def pub_wire(tep: int, point: bytes) -> bytes:
    """Pub in an Init message: NIST points behind pubkey_len, which counts the two
    length bytes too (RFC 8548 Figure 5: the field spans bytes 0 to L - 1)."""
    if tep in NIST:
        return struct.pack(">H", len(point) + 2) + point
    return point


def parse_init(buf: bytes, magic: int, first: bool, tep: int) -> tuple[list[int], bytes, bytes]:
    """(ciphers, nonce, Pub) of an Init message (RFC 8548 §4.1)."""
    got_magic, length = struct.unpack(">II", buf[:8])
    assert got_magic == magic
    assert length == len(buf)
    if first:
        count = buf[8]
        ciphers = [struct.unpack(">H", buf[9 + 2 * k:11 + 2 * k])[0] for k in range(count)]
        pos = 9 + 2 * count
    else:
        ciphers = [struct.unpack(">H", buf[8:10])[0]]
        pos = 10
    nonce = buf[pos:pos + 32]
    pub_len = POINT_LEN[tep] + (2 if tep in NIST else 0)
    return ciphers, nonce, buf[pos + 32:pos + 32 + pub_len]


def aead_open(aead: int, traffic_key: bytes, offset: int, frame: bytes) -> bytes:
    """Decrypt a whole frame: K = first ae_key_len bytes, N = frame ID XOR NR, associated
    data = control | clen (RFC 8548 §3.6, §4.2)."""
    key_len, cls = AEAD[aead]
    assert len(traffic_key) == key_len + NONCE_LEN
    k, nr = traffic_key[:key_len], traffic_key[key_len:]
    frame_id = bytes(4) + struct.pack(">Q", offset)
    nonce = bytes(x ^ y for x, y in zip(frame_id, nr, strict=True))
    clen = struct.unpack(">H", frame[1:3])[0]
    assert clen == len(frame) - 3
    return cls(k).decrypt(nonce, frame[3:], frame[:3])


def h(value: str) -> bytes:
    """A lowercase hex field."""
    assert value == value.lower()
    return bytes.fromhex(value)


def test_the_command_regenerates_the_file_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "vectors.json"
    run = subprocess.run([sys.executable, "-m", "tcpinc_analyze.cli", "synth", "--vectors",
                          str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""
    assert out.read_bytes() == VECTORS_FILE.read_bytes()
    assert out.stat().st_mode & 0o077 == 0


def test_the_file_covers_every_tep_and_aead_with_the_published_keys() -> None:
    pairs = {(v["tep"], v["aead"]) for v in VECTORS}
    assert pairs >= {(t, a) for t in (0x21, 0x22, 0x23, 0x24) for a in (1, 2, 16)}
    assert len({v["name"] for v in VECTORS}) == len(VECTORS)
    for v in VECTORS:
        assert set(v) == VECTOR_KEYS, v["name"]
        assert set(v["resumed"]) == RESUMED_KEYS
        for frame in v["frames"]:
            assert set(frame) == FRAME_KEYS
    # The resumption cases the issue asks for: nonces of different lengths, an empty one.
    assert all(len(v["resumed"]["nonce_a"]) != len(v["resumed"]["nonce_b"]) for v in VECTORS)
    assert any(v["resumed"]["nonce_a"] == "" for v in VECTORS)
    assert any(v["resumed"]["nonce_b"] == "" for v in VECTORS)


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_fresh_exchange_recomputes_from_its_inputs(v: dict) -> None:
    tep, aead = v["tep"], v["aead"]
    a_priv, b_priv = h(v["a_private"]), h(v["b_private"])
    a_point, b_point = public_point(tep, a_priv), public_point(tep, b_priv)
    assert h(v["a_public_wire"]) == pub_wire(tep, a_point)
    assert h(v["b_public_wire"]) == pub_wire(tep, b_point)

    # ENO options (RFC 8547 §4.1-§4.2): kind 69, length, suboptions; B has b = 1 and
    # the negotiated TEP as the last suboption, with v = 0.
    a_eno, b_eno = h(v["a_syn_eno"]), h(v["b_syn_eno"])
    for option in (a_eno, b_eno):
        assert option[0] == 69 and option[1] == len(option)
    assert b_eno[2] & 0x01 and b_eno[2] < 0x20
    assert b_eno[-1] == tep and tep in a_eno[2:]

    init1, init2 = h(v["init1"]), h(v["init2"])
    ciphers, n_a, pub_a = parse_init(init1, INIT1_MAGIC, True, tep)
    chosen, n_b, pub_b = parse_init(init2, INIT2_MAGIC, False, tep)
    assert aead in ciphers and chosen == [aead]
    assert pub_a == h(v["a_public_wire"]) and pub_b == h(v["b_public_wire"])
    assert len(n_a) == len(n_b) == 32

    es = ecdh(tep, a_priv, b_point)
    assert es == ecdh(tep, b_priv, a_point)
    assert h(v["es"]) == es
    prk = hkdf_extract(n_a, a_eno + b_eno + init1 + init2 + es)
    assert h(v["prk"]) == prk
    ss = [prk]
    for _ in range(2):
        ss.append(cprf(ss[-1], bytes([CONST_NEXTK]), K_LEN))
    assert [h(x) for x in v["ss"]] == ss
    assert h(v["session_id"]) == bytes([b_eno[-1]]) + cprf(ss[0], bytes([CONST_SESSID]), K_LEN)
    assert v["resume"][0] is None
    assert [h(x) for x in v["resume"][1:]] == [cprf(s, bytes([CONST_RESUME]), 18)
                                              for s in ss[1:]]

    mk = [cprf(ss[0], bytes([CONST_REKEY]), K_LEN)]
    mk.append(cprf(mk[0], bytes([CONST_REKEY]), K_LEN))
    assert [h(x) for x in v["mk"]] == mk
    key_len = AEAD[aead][0] + NONCE_LEN
    k_ab = [cprf(m, bytes([CONST_KEY_A]), key_len) for m in mk]
    k_ba = [cprf(m, bytes([CONST_KEY_B]), key_len) for m in mk]
    assert [h(x) for x in v["k_ab"]] == k_ab
    assert [h(x) for x in v["k_ba"]] == k_ba


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_every_frame_decrypts_to_its_plaintext(v: dict) -> None:
    keys = {"ab": [h(x) for x in v["k_ab"]], "ba": [h(x) for x in v["k_ba"]]}
    init_len = {"ab": len(h(v["init1"])), "ba": len(h(v["init2"]))}
    position = dict(init_len)
    seen: set[str] = set()
    for f in v["frames"]:
        frame, plain = h(f["frame"]), h(f["plaintext"])
        direction, offset = f["direction"], f["offset"]
        assert frame[0] == f["control"]
        assert aead_open(v["aead"], keys[direction][f["generation"]], offset, frame) == plain
        # A wrong generation's key or a neighbouring offset must not verify.
        with pytest.raises(InvalidTag):
            aead_open(v["aead"], keys[direction][1 - f["generation"]], offset, frame)
        with pytest.raises(InvalidTag):
            aead_open(v["aead"], keys[direction][f["generation"]], offset + 1, frame)
        if offset == 0:
            seen.add(f"after-init-{direction}")
        else:
            # The full sequence counts Init bytes: each frame starts where the last ended.
            assert offset == position[direction]
            position[direction] += len(frame)
            seen.add(f"tcp-stream-{direction}")
        flags = plain[0]
        if flags & 0x02:
            seen.add("urgp")
            assert len(plain) >= 3
        if flags & 0x01:
            seen.add(f"finp-{direction}")
        if f["generation"] == 1:
            seen.add(f"gen1-{direction}")
        assert f["control"] & 0xFE == 0 and flags & 0xFC == 0
    # Rekey: the first frame of generation 1 in each direction has rekey = 1, others 0.
    for direction in ("ab", "ba"):
        gens = [f for f in v["frames"] if f["direction"] == direction and f["offset"]]
        first_gen1 = next(i for i, f in enumerate(gens) if f["generation"] == 1)
        assert [f["control"] for f in gens] == [int(i == first_gen1) for i in range(len(gens))]
    assert seen == {"after-init-ab", "after-init-ba", "tcp-stream-ab", "tcp-stream-ba", "urgp",
                    "finp-ab", "finp-ba", "gen1-ab", "gen1-ba"}


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_resumed_session_recomputes_from_the_chain(v: dict) -> None:
    r = v["resumed"]
    ss_i = h(v["ss"][r["i"]])
    nonce_a, nonce_b = h(r["nonce_a"]), h(r["nonce_b"])
    assert 0 <= len(nonce_a) <= 8 and 0 <= len(nonce_b) <= 8
    sn = nonce_a + nonce_b
    assert h(r["sn"]) == sn
    # A resumed session's ID starts with B's TEP byte, which has v = 1 (RFC 8548 §3.5).
    assert h(r["session_id"]) == bytes([v["tep"] | 0x80]) + cprf(
        ss_i, bytes([CONST_SESSID]) + sn, K_LEN)
    mk0 = cprf(ss_i, bytes([CONST_REKEY]) + sn, K_LEN)
    assert h(r["mk0"]) == mk0
    key_len = AEAD[v["aead"]][0] + NONCE_LEN
    assert h(r["k_ab0"]) == cprf(mk0, bytes([CONST_KEY_A]), key_len)
    assert h(r["k_ba0"]) == cprf(mk0, bytes([CONST_KEY_B]), key_len)


def test_an_unwritable_path_is_one_error_line(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "tcpinc_analyze.cli", "synth", "--vectors",
                          str(tmp_path / "missing" / "v.json")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.startswith("error:") and "Traceback" not in run.stderr
