"""tcpcrypt key exchange, key schedule, frames and resumption (RFC 8548 §3-§6).

Every expected value is recomputed here from the RFC text with stdlib hmac/hashlib and
`cryptography` directly (HKDF, ECDH, the AEADs), and every expected message layout is
written out byte by byte from RFC 8548 §4.1 and §5, so the project's own wire/key-schedule
functions are never used to check themselves.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import random
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpinc_analyze.eno import GlobalSuboption, TepSuboption, encode_option
from tcpinc_analyze.tcpcrypt.endpoint import (
    EndpointA,
    EndpointB,
    HandshakeError,
    full_exchange,
    resumption,
)
from tcpinc_analyze.tcpcrypt.frames import FrameOpener, FrameSealer, frame_end
from tcpinc_analyze.tcpcrypt.keyschedule import (
    KeyAgreementError,
    KeyPair,
    canonical_public,
    generate_keypair,
    keypair_from_private,
    shared_secret,
    validate_public,
)
from tcpinc_analyze.tcpcrypt.messages import (
    Init1,
    Init2,
    encode_pub,
    message_length,
    parse_frame_header,
    parse_init1,
    parse_init2,
)
from tcpinc_analyze.wire import DIALECT_TCPCRYPTD_2016, eno_transcript

TEPS = [0x21, 0x22, 0x23, 0x24]
AEADS = [0x0001, 0x0002, 0x0010]
KEY_LEN = {0x0001: 16, 0x0002: 32, 0x0010: 32}
POINT_LEN = {0x21: 33, 0x22: 67, 0x23: 32, 0x24: 56}
"""RFC 8548 §5: compressed NIST points, raw X25519/X448 keys."""
ES_LEN = {0x21: 32, 0x22: 66, 0x23: 32, 0x24: 56}
INIT1_MAGIC = bytes.fromhex("15101a0e")
INIT2_MAGIC = bytes.fromhex("097105e0")

FAST = settings(max_examples=60, deadline=None)


# --- independent HKDF (RFC 5869), the RFC 8548 key schedule and ECDH ----------------------


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def spec_mk0(ss: bytes, sn: bytes = b"") -> bytes:
    """mk[0] = CPRF(ss[i], CONST_REKEY | sn[i], K_LEN) (§3.3)."""
    return hkdf_expand(ss, b"\x03" + sn, 32)


def spec_traffic(mk: bytes, aead: int) -> tuple[bytes, bytes]:
    """k_ab, k_ba = CPRF(mk, CONST_KEY_A/B, ae_key_len + ae_nonce_len) (§3.3)."""
    n = KEY_LEN[aead] + 12
    return hkdf_expand(mk, b"\x04", n), hkdf_expand(mk, b"\x05", n)


def spec_session_id(tep_byte: int, ss: bytes, sn: bytes = b"") -> bytes:
    return bytes([tep_byte]) + hkdf_expand(ss, b"\x02" + sn, 32)


def spec_nonce(nr: bytes, offset: int) -> bytes:
    """N = frame_ID XOR NR, frame_ID = 4 zero bytes | 8-byte offset (§3.6, §4.2.3)."""
    frame_id = bytes(4) + offset.to_bytes(8, "big")
    return bytes(a ^ b for a, b in zip(frame_id, nr, strict=True))


def spec_aead(aead: int, key: bytes) -> AESGCM | ChaCha20Poly1305:
    return ChaCha20Poly1305(key) if aead == 0x0010 else AESGCM(key)


def test_own_hkdf_matches_cryptography_and_rfc5869():
    # RFC 5869 test case 1
    ikm = bytes([0x0B]) * 22
    salt = bytes(range(13))
    info = bytes(range(0xF0, 0xFA))
    prk = hkdf_extract(salt, ikm)
    assert prk.hex() == "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
    okm = hkdf_expand(prk, info, 42)
    assert okm.hex() == ("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                         "34007208d5b887185865")
    for length in (16, 32, 44, 66, 100):
        ref = HKDFExpand(hashes.SHA256(), length, b"\x03abc").derive(prk)
        assert hkdf_expand(prk, b"\x03abc", length) == ref


CURVES = {0x21: ec.SECP256R1(), 0x22: ec.SECP521R1()}


def ecdh(tep: int, private: bytes, peer_public: bytes) -> bytes:
    """ES computed with `cryptography` directly (§5: x-coordinate for the NIST curves)."""
    if tep == 0x23:
        return x25519.X25519PrivateKey.from_private_bytes(private).exchange(
            x25519.X25519PublicKey.from_public_bytes(peer_public))
    if tep == 0x24:
        return x448.X448PrivateKey.from_private_bytes(private).exchange(
            x448.X448PublicKey.from_public_bytes(peer_public))
    own = ec.derive_private_key(int.from_bytes(private, "big"), CURVES[tep])
    peer = ec.EllipticCurvePublicKey.from_encoded_point(CURVES[tep], peer_public)
    return own.exchange(ec.ECDH(), peer)


SYN_A = encode_option([TepSuboption(0x21), TepSuboption(0x22), TepSuboption(0x23),
                       TepSuboption(0x24)])
SYN_B = encode_option([GlobalSuboption.make(b=True), TepSuboption(0x23)])
TRANSCRIPT = SYN_A + SYN_B


def test_transcript_is_both_options_as_sent():
    """RFC 8547 §4.8: A's option then B's, kind and length included, nothing else."""
    assert eno_transcript(bytes([69, 3, 0x21]), bytes([69, 2])) == b"\x45\x03\x21\x45\x02"
    exp = bytes([253, 5, 0x45, 0x4E, 0x21])
    assert eno_transcript(exp, bytes([69, 2])) == exp + b"\x45\x02"


@functools.cache
def keypair(tep: int, seed: int, compressed: bool = True) -> KeyPair:
    return generate_keypair(tep, random.Random(seed), compressed=compressed)


def spec_pub_field(tep: int, point: bytes) -> bytes:
    """Pub as §5 lays it out: NIST points behind a two-byte pubkey_len that, as Figure 5
    numbers the bytes 0..L-1, counts its own two bytes too."""
    if tep in (0x23, 0x24):
        return point
    return struct.pack(">H", len(point) + 2) + point


def split_init1(wire: bytes, tep: int) -> tuple[list[int], bytes, bytes, bytes]:
    """Init1 fields by RFC 8548 §4.1 offsets: ciphers at 9, N_A at 9+2K, Pub after."""
    k = wire[8]
    ciphers = [int.from_bytes(wire[9 + 2 * i:11 + 2 * i], "big") for i in range(k)]
    n_a = wire[9 + 2 * k:41 + 2 * k]
    rest = wire[41 + 2 * k:]
    size = len(spec_pub_field(tep, bytes(POINT_LEN[tep])))
    return ciphers, n_a, rest[:size], rest[size:]


# --- full exchange --------------------------------------------------------------------------


@pytest.mark.parametrize("aead", AEADS, ids=lambda a: f"aead{a:04x}")
@pytest.mark.parametrize("tep", TEPS, ids=lambda t: f"tep{t:02x}")
def test_full_exchange_against_rfc(tep, aead):
    rng = random.Random(tep * 100 + aead)
    ex = full_exchange(tep, [aead], [aead], TRANSCRIPT, rng)
    a, b = ex.a, ex.b
    # Init1 / Init2, byte by byte per RFC 8548 §4.1 and §5
    pub_a, pub_b = spec_pub_field(tep, a.keypair.public), spec_pub_field(tep, b.keypair.public)
    body1 = bytes([1]) + struct.pack(">H", aead) + a.nonce + pub_a
    assert ex.init1 == INIT1_MAGIC + struct.pack(">I", 8 + len(body1)) + body1
    body2 = struct.pack(">H", aead) + b.nonce + pub_b
    assert ex.init2 == INIT2_MAGIC + struct.pack(">I", 8 + len(body2)) + body2
    ciphers, n_a, pub_field, ignored = split_init1(ex.init1, tep)
    assert (ciphers, n_a, pub_field, ignored) == ([aead], a.nonce, pub_a, b"")
    assert ex.init2[10:42] == b.nonce
    # keys: ES with cryptography, PRK = Extract(N_A, transcript | Init1 | Init2 | ES)
    es = ecdh(tep, a.keypair.private, b.keypair.public)
    assert es == ecdh(tep, b.keypair.private, a.keypair.public)
    assert len(es) == ES_LEN[tep]
    ss0 = hkdf_extract(a.nonce, TRANSCRIPT + ex.init1 + ex.init2 + es)
    k_ab, k_ba = spec_traffic(spec_mk0(ss0), aead)
    assert ex.keys.ss == ss0
    assert (ex.keys.k_ab, ex.keys.k_ba) == (k_ab, k_ba)
    assert len(k_ab) == KEY_LEN[aead] + 12
    assert ex.keys.session_id == spec_session_id(tep, ss0)
    assert ex.keys.aead == aead and ex.keys.tep == tep


def test_keypairs_rebuild_from_private_and_compress():
    for tep in TEPS:
        kp = keypair(tep, 7)
        assert keypair_from_private(tep, kp.private) == kp
        assert len(kp.public) == POINT_LEN[tep]
        if tep in CURVES:
            assert kp.public[0] in (2, 3)
            key = ec.derive_private_key(int.from_bytes(kp.private, "big"), CURVES[tep])
            assert kp.public == key.public_key().public_bytes(Encoding.X962,
                                                              PublicFormat.CompressedPoint)
            full = keypair_from_private(tep, kp.private, compressed=False).public
            assert full[0] == 4 and canonical_public(full) == kp.public


def test_transcript_and_ignored_bytes_enter_the_key():
    base = full_exchange(0x23, [1], [1], TRANSCRIPT, random.Random(5)).keys
    other_t = full_exchange(0x23, [1], [1], TRANSCRIPT + b"x", random.Random(5)).keys
    other_i = full_exchange(0x23, [1], [1], TRANSCRIPT, random.Random(5), a_ignored=b"x").keys
    assert len({base.ss, other_t.ss, other_i.ss}) == 3


@pytest.mark.parametrize(("offered", "preference", "chosen"), [
    ([0x0001, 0x0002, 0x0010], [0x0010, 0x0001], 0x0010),
    ([0x0001, 0x0002], [0x0010, 0x0002, 0x0001], 0x0002),
    ([0x0001], [0x0001], 0x0001),
])
def test_b_picks_its_first_preference_among_a_offer(offered, preference, chosen):
    ex = full_exchange(0x23, offered, preference, TRANSCRIPT, random.Random(1))
    assert ex.keys.aead == chosen
    assert int.from_bytes(ex.init2[8:10], "big") == chosen


def test_init1_without_common_aead_is_rejected():
    rng = random.Random(2)
    a = EndpointA(0x23, [0x0001], rng)
    b = EndpointB(0x23, [0x0002, 0x0010], rng)
    with pytest.raises(HandshakeError):
        b.receive_init1(a.init1, TRANSCRIPT, 0x23)


@pytest.mark.parametrize("bad_choice", [0x0002, 0x0010])
def test_init2_with_unoffered_aead_is_rejected(bad_choice):
    rng = random.Random(3)
    a = EndpointA(0x23, [0x0001], rng)
    b = EndpointB(0x23, [bad_choice], rng, force_cipher=bad_choice)
    init2 = b.receive_init1(a.init1, TRANSCRIPT, 0x23)
    with pytest.raises(HandshakeError, match="did not offer"):
        a.receive_init2(init2, TRANSCRIPT, 0x23)


def test_unparseable_init_messages_are_handshake_errors():
    rng = random.Random(4)
    a = EndpointA(0x23, [0x0001], rng)
    b = EndpointB(0x23, [0x0001], rng)
    with pytest.raises(HandshakeError):
        b.receive_init1(b"\x00" * 20, TRANSCRIPT, 0x23)
    with pytest.raises(HandshakeError):
        a.receive_init2(INIT1_MAGIC + b"\x00\x00\x00\x09\x01", TRANSCRIPT, 0x23)


@pytest.mark.parametrize("tep", TEPS, ids=lambda t: f"tep{t:02x}")
def test_seeded_rng_is_deterministic(tep):
    one = full_exchange(tep, AEADS, [0x0010], TRANSCRIPT, random.Random(42))
    two = full_exchange(tep, AEADS, [0x0010], TRANSCRIPT, random.Random(42))
    other = full_exchange(tep, AEADS, [0x0010], TRANSCRIPT, random.Random(43))
    assert (one.init1, one.init2, one.keys) == (two.init1, two.init2, two.keys)
    assert one.init1 != other.init1 and one.keys.ss != other.keys.ss


# --- Init1 / Init2 codec --------------------------------------------------------------------

cipher_lists = st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=60).map(tuple)
nonces = st.binary(min_size=32, max_size=32)
ignored_bytes = st.binary(max_size=200)


def unknown_aead_offsets(ciphers: tuple[int, ...], first: int) -> list[int]:
    return [first + 2 * i for i, c in enumerate(ciphers) if c not in AEADS]


@FAST
@given(tep=st.sampled_from(TEPS), seed=st.integers(0, 3), ciphers=cipher_lists, nonce=nonces,
       ignored=ignored_bytes, trailing=st.binary(max_size=40))
def test_init1_round_trip(tep, seed, ciphers, nonce, ignored, trailing):
    point = keypair(tep, seed).public
    wire = Init1(ciphers, nonce, encode_pub(tep, point), ignored).encode()
    body = (bytes([len(ciphers)]) + b"".join(struct.pack(">H", c) for c in ciphers) + nonce
            + spec_pub_field(tep, point) + ignored)
    assert wire == INIT1_MAGIC + struct.pack(">I", 8 + len(body)) + body
    assert message_length(wire + trailing, 0x15101A0E) == len(wire)
    assert message_length(wire, 0x097105E0) is None
    parsed, findings = parse_init1(wire + trailing, tep)
    assert parsed is not None
    assert (parsed.sym_ciphers, parsed.nonce, parsed.pubkey, parsed.ignored) == (
        ciphers, nonce, point, ignored)
    expected = [("tcpcrypt-unknown-aead", o) for o in unknown_aead_offsets(ciphers, 9)]
    if ignored:
        expected.append(("init-ignored-nonempty", 9 + 2 * len(ciphers) + 32
                         + len(spec_pub_field(tep, point))))
    assert sorted((f.code, f.offset) for f in findings) == sorted(expected)


@FAST
@given(tep=st.sampled_from(TEPS), seed=st.integers(0, 3), cipher=st.integers(0, 0xFFFF),
       nonce=nonces, ignored=ignored_bytes, trailing=st.binary(max_size=40))
def test_init2_round_trip(tep, seed, cipher, nonce, ignored, trailing):
    point = keypair(tep, seed).public
    wire = Init2(cipher, nonce, encode_pub(tep, point), ignored).encode()
    body = struct.pack(">H", cipher) + nonce + spec_pub_field(tep, point) + ignored
    assert wire == INIT2_MAGIC + struct.pack(">I", 8 + len(body)) + body
    parsed, findings = parse_init2(wire + trailing, tep)
    assert parsed is not None
    assert (parsed.sym_cipher, parsed.nonce, parsed.pubkey, parsed.ignored) == (
        cipher, nonce, point, ignored)
    codes = sorted(f.code for f in findings)
    assert codes == sorted((["tcpcrypt-unknown-aead"] if cipher not in AEADS else [])
                           + (["init-ignored-nonempty"] if ignored else []))


@pytest.mark.parametrize("tep", [0x21, 0x22], ids=["p256", "p521"])
def test_pubkey_len_both_readings_and_uncompressed_points(tep):
    """pubkey_len counting the point only, and uncompressed points, are both read and
    reported (digest 2.1 [ambiguous]; RFC 8548 §5 requires compressed points)."""
    point = keypair(tep, 1).public
    nonce = bytes(range(32))
    for length, reading in ((len(point) + 2, "whole"), (len(point), "point")):
        pub = struct.pack(">H", length) + point
        parsed, findings = parse_init1(Init1((1,), nonce, pub).encode(), tep)
        assert parsed is not None and parsed.pubkey == point
        assert parsed.pub is not None and parsed.pub.length_reading == reading
        assert not findings
    full = keypair_from_private(tep, keypair(tep, 1).private, compressed=False).public
    parsed, findings = parse_init2(Init2(1, nonce, struct.pack(">H", len(full) + 2) + full
                                         ).encode(), tep)
    assert parsed is not None and parsed.pubkey == full and parsed.pub.compressed is False
    assert [(f.code, f.rfc) for f in findings] == [("pubkey-uncompressed", "RFC 8548 §5")]
    for bad_len in (len(point) + 1, 0):
        pub = struct.pack(">H", bad_len) + point
        assert parse_init1(Init1((1,), nonce, pub).encode(), tep)[0] is None


def test_tcpcryptd_2016_layout():
    """One-byte ciphers and pubkey_len before an uncompressed point (digest 2.8)."""
    full = keypair_from_private(0x21, keypair(0x21, 3).private, compressed=False).public
    n_a = bytes(range(32))
    body = bytes([2, 1, 2]) + n_a + struct.pack(">H", 67) + full
    wire = INIT1_MAGIC + struct.pack(">I", 8 + len(body)) + body
    parsed, findings = parse_init1(wire, 0x21)
    assert parsed is not None and parsed.dialect == DIALECT_TCPCRYPTD_2016
    assert (parsed.sym_ciphers, parsed.nonce, parsed.pubkey) == ((1, 2), n_a, full)
    assert not findings
    body2 = bytes([1]) + n_a + struct.pack(">H", 67) + full
    parsed2, _ = parse_init2(INIT2_MAGIC + struct.pack(">I", 8 + len(body2)) + body2, 0x21)
    assert parsed2 is not None and parsed2.dialect == DIALECT_TCPCRYPTD_2016
    assert parsed2.sym_cipher == 1


@FAST
@given(tep=st.sampled_from(TEPS), ciphers=cipher_lists, ignored=ignored_bytes,
       data=st.data())
def test_init_truncations(tep, ciphers, ignored, data):
    wire = Init1(ciphers, bytes(32), encode_pub(tep, keypair(tep, 0).public), ignored).encode()
    cut = data.draw(st.integers(0, len(wire) - 1))
    parsed, findings = parse_init1(wire[:cut], tep)
    assert parsed is None
    assert findings and findings[0].code == ("tcpcrypt-truncated" if cut < len(wire) else "")


@settings(max_examples=300, deadline=None)
@given(tep=st.sampled_from(TEPS), head=st.sampled_from([INIT1_MAGIC, INIT2_MAGIC]),
       length=st.integers(0, 300), body=st.binary(max_size=300))
def test_parsers_never_raise(tep, head, length, body):
    wire = head + struct.pack(">I", length) + body
    for parse in (parse_init1, parse_init2):
        parsed, findings = parse(wire, tep)
        assert parsed is not None or findings


@pytest.mark.parametrize("parse", [parse_init1, parse_init2])
def test_bad_magic(parse):
    parsed, findings = parse(b"\x00" * 120, 0x23)
    assert parsed is None and findings[0].code == "tcpcrypt-bad-magic"


@pytest.mark.parametrize("length", [0, 8, 65537, 2**32 - 1])
@pytest.mark.parametrize(("parse", "magic"), [(parse_init1, INIT1_MAGIC),
                                              (parse_init2, INIT2_MAGIC)])
def test_bad_length(parse, magic, length):
    parsed, findings = parse(magic + struct.pack(">I", length) + bytes(200), 0x23)
    assert parsed is None and findings[0].code == "tcpcrypt-bad-length"


def test_init1_field_errors():
    no_ciphers = INIT1_MAGIC + struct.pack(">I", 9 + 32 + 32) + b"\x00" + bytes(64)
    parsed, findings = parse_init1(no_ciphers, 0x23)
    assert "tcpcrypt-no-ciphers" in {f.code for f in findings}
    short = INIT1_MAGIC + struct.pack(">I", 9 + 2 + 32 + 10) + b"\x01\x00\x01" + bytes(42)
    parsed, findings = parse_init1(short, 0x23)
    assert parsed is None and findings[-1].code == "tcpcrypt-bad-pubkey"
    bad_point = Init1((1,), bytes(32), b"\x00\x23\x05" + bytes(32)).encode()
    parsed, findings = parse_init1(bad_point, 0x21)
    assert parsed is None and "0x05" in findings[-1].message


def test_encoders_reject_invalid():
    with pytest.raises(ValueError):
        Init1((), bytes(32), bytes(32)).encode()
    with pytest.raises(ValueError):
        Init1((1,), bytes(31), bytes(32)).encode()
    with pytest.raises(ValueError):
        Init2(1, bytes(33), bytes(32)).encode()


# --- frames ---------------------------------------------------------------------------------


def chain_keys(aead: int, seed: int) -> list[tuple[bytes, bytes]]:
    """(k_ab, k_ba) of generations 0..9 from a random ss, by the RFC formulas."""
    ss = random.Random(seed).randbytes(32)
    mk = spec_mk0(ss)
    out = []
    for _ in range(10):
        out.append(spec_traffic(mk, aead))
        mk = hkdf_expand(mk, b"\x03", 32)
    return out


frame_specs = st.lists(st.tuples(st.binary(max_size=300), st.booleans(),
                                 st.one_of(st.none(), st.integers(0, 0xFFFF))),
                       min_size=1, max_size=8)


@pytest.mark.parametrize("base", ["tcp-stream", "after-init"])
@pytest.mark.parametrize("aead", AEADS, ids=lambda a: f"aead{a:04x}")
@FAST
@given(specs=frame_specs, init_len=st.integers(0, 300))
def test_frame_round_trip(aead, base, specs, init_len):
    keys = chain_keys(aead, aead)
    sealer = FrameSealer(aead, lambda g: keys[g][0], offset=init_len, init_len=init_len,
                         base=base)
    opener = FrameOpener(aead, lambda g: keys[g][0], init_len=init_len, base=base)
    offset, generation = init_len, 0
    for n, (data, rekey, urgent) in enumerate(specs):
        fin = n == len(specs) - 1
        frame = sealer.seal(data, fin=fin, rekey=rekey, urgent=urgent)
        generation += rekey
        # the frame decrypts with the RFC's nonce and AD, independently of the opener
        k_ab = keys[generation][0]
        key, nr = k_ab[:KEY_LEN[aead]], k_ab[KEY_LEN[aead]:]
        frame_offset = offset if base == "tcp-stream" else offset - init_len
        plain = spec_aead(aead, key).decrypt(spec_nonce(nr, frame_offset), frame[3:], frame[:3])
        flags = (1 if fin else 0) | (2 if urgent is not None else 0)
        assert plain == bytes([flags]) + (struct.pack(">H", urgent) if urgent is not None
                                          else b"") + data
        assert frame[0] == int(rekey) and int.from_bytes(frame[1:3], "big") == len(frame) - 3
        opened = opener.open(frame[0], frame[3:], offset)
        assert opened is not None and opened.data == data and opened.urgent == urgent
        assert frame_end(offset, len(frame) - 3) == offset + len(frame)
        offset += len(frame)


@pytest.mark.parametrize("aead", AEADS, ids=lambda a: f"aead{a:04x}")
def test_tampered_frame_fails(aead):
    keys = chain_keys(aead, 7)
    sealer = FrameSealer(aead, lambda g: keys[g][0], offset=50)
    frame = sealer.seal(b"hello tcpcrypt")
    for pos in range(len(frame)):
        bad = bytearray(frame)
        bad[pos] ^= 0x01
        if pos in (1, 2):
            continue  # clen changes the frame's extent; covered by the AD below
        opener = FrameOpener(aead, lambda g: keys[g][0])
        assert opener.open(bad[0], bytes(bad[3:]), 50) is None
    opener = FrameOpener(aead, lambda g: keys[g][0])
    assert opener.open(frame[0], frame[3:], 51) is None  # wrong offset: wrong nonce
    assert FrameOpener(aead, lambda g: keys[g][1]).open(frame[0], frame[3:], 50) is None


@pytest.mark.parametrize("aead", AEADS, ids=lambda a: f"aead{a:04x}")
def test_rekey_moves_through_the_master_key_chain(aead):
    keys = chain_keys(aead, 9)
    sealer = FrameSealer(aead, lambda g: keys[g][1])
    frames = [sealer.seal(b"x", rekey=n > 0) for n in range(4)]
    offset = 0
    for generation, frame in enumerate(frames):
        k = keys[generation][1]
        plain = spec_aead(aead, k[:KEY_LEN[aead]]).decrypt(
            spec_nonce(k[KEY_LEN[aead]:], offset), frame[3:], frame[:3])
        assert plain == b"\x00x"
        offset += len(frame)


def test_frame_header_findings():
    header, findings = parse_frame_header(bytes([0x03, 0x00, 0x05]))
    assert header is not None and header.rekey and header.total == 8
    assert [(f.code, f.rfc) for f in findings] == [
        ("frame-reserved-bits", "RFC 8548 §4.2"), ("tcpcrypt-short-frame", None)]
    assert parse_frame_header(b"\x00\x00") == (None, [])


# --- resumption (RFC 8548 §3.5) -------------------------------------------------------------


@pytest.mark.parametrize("aead", AEADS, ids=lambda a: f"aead{a:04x}")
def test_resumption_by_original_roles(aead):
    ss0 = random.Random(aead).randbytes(32)
    nonce_a, nonce_b = b"\x01\x02\x03", b""
    res = resumption(ss0, 2, nonce_a, nonce_b)
    ss1 = hkdf_expand(ss0, b"\x01", 32)
    ss2 = hkdf_expand(ss1, b"\x01", 32)
    resume2 = hkdf_expand(ss2, b"\x06", 18)
    assert (res.ss, res.resume) == (ss2, resume2)
    # the originally-A host names the session by the first half, whatever its role now
    assert res.suboption_data(True) == resume2[:9] + nonce_a
    assert res.suboption_data(False) == resume2[9:] + nonce_b
    keys = res.keys(0xA3, aead)
    sn = nonce_a + nonce_b
    assert keys.sn == sn
    assert keys.session_id == spec_session_id(0xA3, ss2, sn)
    assert (keys.k_ab, keys.k_ba) == spec_traffic(spec_mk0(ss2, sn), aead)
    assert keys.next_resume == hkdf_expand(hkdf_expand(ss2, b"\x01", 32), b"\x06", 18)
    with pytest.raises(ValueError):
        resumption(ss0, 0, b"", b"")


# --- public keys (RFC 8548 §5) --------------------------------------------------------------


X25519_LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
]


@pytest.mark.parametrize("tep", TEPS, ids=lambda t: f"tep{t:02x}")
def test_wrong_length_public_key(tep):
    private = keypair(tep, 2).private
    good = keypair(tep, 3).public
    for bad in (b"", good[:-1], good + b"\x00"):
        with pytest.raises(KeyAgreementError):
            shared_secret(tep, private, bad)
        assert validate_public(tep, bad) is not None
    assert validate_public(tep, good) is None


@pytest.mark.parametrize("tep", [0x21, 0x22], ids=["p256", "p521"])
def test_point_not_on_curve(tep):
    private = keypair(tep, 2).private
    full = bytearray(keypair_from_private(tep, keypair(tep, 1).private, compressed=False).public)
    full[-1] ^= 1  # change Y: the point leaves the curve
    with pytest.raises(KeyAgreementError):
        shared_secret(tep, private, bytes(full))
    assert validate_public(tep, bytes(full)) is not None
    assert validate_public(tep, bytes(POINT_LEN[tep])) is not None


@pytest.mark.parametrize("point", X25519_LOW_ORDER, ids=["zero", "one", "order8"])
def test_x25519_small_order_points(point):
    with pytest.raises(KeyAgreementError):
        shared_secret(0x23, keypair(0x23, 2).private, point)
    assert "small-order" in (validate_public(0x23, point) or "")


def test_x448_all_zero_point():
    with pytest.raises(KeyAgreementError):
        shared_secret(0x24, keypair(0x24, 2).private, bytes(56))
    assert validate_public(0x24, bytes(56)) is not None


def test_endpoint_b_rejects_degenerate_peer_key():
    rng = random.Random(9)
    b = EndpointB(0x23, [0x0001], rng)
    init1 = Init1((0x0001,), rng.randbytes(32), bytes(32)).encode()
    with pytest.raises(KeyAgreementError):
        b.receive_init1(init1, TRANSCRIPT, 0x23)


def test_non_tcpcrypt_tep_is_rejected():
    with pytest.raises(KeyAgreementError):
        generate_keypair(0x20, random.Random(0))
    with pytest.raises(KeyAgreementError):
        shared_secret(0x25, bytes(32), bytes(32))


@pytest.mark.parametrize("tep", [0x21, 0x22], ids=["p256", "p521"])
def test_private_scalar_out_of_range(tep):
    size = 32 if tep == 0x21 else 66
    with pytest.raises(KeyAgreementError):
        keypair_from_private(tep, bytes(size))
    with pytest.raises(KeyAgreementError):
        keypair_from_private(tep, b"\xff" * size)
