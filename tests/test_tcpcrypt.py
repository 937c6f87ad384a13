"""tcpcrypt key exchange, key schedule, frames and resumption (spec section 2).

The key schedule is recomputed here from the spec text with stdlib hmac/hashlib and ES
from `cryptography` directly, so the project's own extract/cprf are never used to check
themselves.
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
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tcpinc_analyze.eno import TepSuboption, encode_option
from tcpinc_analyze.tcpcrypt.endpoint import (
    Channel,
    EndpointA,
    EndpointB,
    HandshakeError,
    full_exchange,
    resumed_keys,
)
from tcpinc_analyze.tcpcrypt.frames import FrameOpener, FrameSealer, frame_end
from tcpinc_analyze.tcpcrypt.keyschedule import (
    KeyAgreementError,
    KeyPair,
    SessionKeys,
    generate_keypair,
    keypair_from_private,
    shared_secret,
)
from tcpinc_analyze.tcpcrypt.messages import (
    Init1,
    Init2,
    message_length,
    parse_frame_header,
    parse_init1,
    parse_init2,
)
from tcpinc_analyze.wire import eno_transcript

TEPS = [0x21, 0x22, 0x23, 0x24]
AEADS = [0x01, 0x02, 0x10]
KEY_LEN = {0x01: 16, 0x02: 32, 0x10: 32}
PUB_LEN = {0x21: 65, 0x22: 133, 0x23: 32, 0x24: 56}
ES_LEN = {0x21: 32, 0x22: 66, 0x23: 32, 0x24: 56}
INIT1_MAGIC = bytes.fromhex("15101a0e")
INIT2_MAGIC = bytes.fromhex("097105e0")
NONCE_MAGIC = bytes.fromhex("44415441")

FAST = settings(max_examples=60, deadline=None)


# --- independent HKDF (RFC 5869) and ECDH ---------------------------------------------------


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def cprf_spec(key: bytes, const: int, length: int) -> bytes:
    """CPRF(K, c, L) = HKDF-Expand(K, info = the byte c, L), spec 2.1."""
    return hkdf_expand(key, bytes([const]), length)


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
    for length in (16, 32, 33, 66, 100):
        ref = HKDFExpand(hashes.SHA256(), length, bytes([5])).derive(prk)
        assert hkdf_expand(prk, bytes([5]), length) == ref


CURVES = {0x21: ec.SECP256R1(), 0x22: ec.SECP521R1()}


def ecdh(tep: int, private: bytes, peer_public: bytes) -> bytes:
    """ES computed with `cryptography` directly (spec 2.1)."""
    if tep == 0x23:
        return x25519.X25519PrivateKey.from_private_bytes(private).exchange(
            x25519.X25519PublicKey.from_public_bytes(peer_public))
    if tep == 0x24:
        return x448.X448PrivateKey.from_private_bytes(private).exchange(
            x448.X448PublicKey.from_public_bytes(peer_public))
    own = ec.derive_private_key(int.from_bytes(private, "big"), CURVES[tep])
    peer = ec.EllipticCurvePublicKey.from_encoded_point(CURVES[tep], peer_public)
    return own.exchange(ec.ECDH(), peer)


def transcript() -> bytes:
    syn_a = encode_option([TepSuboption(0x21), TepSuboption(0x22), TepSuboption(0x23),
                           TepSuboption(0x24)])
    syn_b = encode_option([TepSuboption(0x23)])
    return b"TCP-ENO" + syn_a + syn_b


TRANSCRIPT = transcript()


def test_transcript_layout():
    assert eno_transcript(bytes([69, 3, 0x21]), bytes([69, 2])) == b"TCP-ENO\x45\x03\x21\x45\x02"


@functools.cache
def keypair(tep: int, seed: int) -> KeyPair:
    return generate_keypair(tep, random.Random(seed))


# --- full exchange --------------------------------------------------------------------------


@pytest.mark.parametrize("aead", AEADS, ids=lambda a: f"aead{a:02x}")
@pytest.mark.parametrize("tep", TEPS, ids=lambda t: f"tep{t:02x}")
def test_full_exchange_against_spec(tep, aead):
    rng = random.Random(tep * 1000 + aead)
    ex = full_exchange(tep, [aead], [aead], TRANSCRIPT, rng,
                       a_ignored=b"A-extra", b_ignored=b"B-extra!")
    a, b = ex.a, ex.b
    assert a.keys is not None and a.keys == b.keys == ex.keys
    keys = ex.keys
    assert (keys.tep, keys.aead) == (tep, aead)
    assert len(keys.session_id) == 33 and keys.session_id[0] == tep
    assert len(keys.k_ab) == len(keys.k_ba) == KEY_LEN[aead]
    assert keys.k_ab != keys.k_ba
    assert len(keys.ss) == 32

    # the wire messages, from the layout in spec 2.2
    init1, init2 = ex.init1, ex.init2
    assert init1[:4] == INIT1_MAGIC and int.from_bytes(init1[4:8], "big") == len(init1)
    assert init1[8] == 1 and init1[9] == aead
    assert init1[10:42] == a.nonce
    assert init1[42:42 + PUB_LEN[tep]] == a.keypair.public
    assert init1[42 + PUB_LEN[tep]:] == b"A-extra"
    assert init2[:4] == INIT2_MAGIC and int.from_bytes(init2[4:8], "big") == len(init2)
    assert init2[8] == aead
    assert init2[9:41] == b.nonce
    assert init2[41:41 + PUB_LEN[tep]] == b.keypair.public
    assert init2[41 + PUB_LEN[tep]:] == b"B-extra!"
    assert len(a.keypair.public) == len(b.keypair.public) == PUB_LEN[tep]

    # ES by `cryptography` directly, both ways
    es = ecdh(tep, a.keypair.private, b.keypair.public)
    assert es == ecdh(tep, b.keypair.private, a.keypair.public)
    assert len(es) == ES_LEN[tep]
    assert shared_secret(tep, a.keypair.private, b.keypair.public) == es

    # key schedule from the spec text (2.3, 2.4)
    ss0 = hkdf_extract(a.nonce, TRANSCRIPT + init1 + init2 + es)
    assert keys.ss == ss0
    assert keys.session_id == bytes([tep]) + cprf_spec(ss0, 0x02, 32)
    assert keys.k_ab == cprf_spec(ss0, 0x04, KEY_LEN[aead])
    assert keys.k_ba == cprf_spec(ss0, 0x05, KEY_LEN[aead])


def test_keypairs_rebuild_from_private():
    for tep in TEPS:
        kp = keypair(tep, 7)
        assert keypair_from_private(tep, kp.private) == kp
        assert len(kp.public) == PUB_LEN[tep]


def test_transcript_and_ignored_bytes_enter_the_key():
    base = full_exchange(0x23, [1], [1], TRANSCRIPT, random.Random(5)).keys
    other_t = full_exchange(0x23, [1], [1], TRANSCRIPT + b"x", random.Random(5)).keys
    other_i = full_exchange(0x23, [1], [1], TRANSCRIPT, random.Random(5), a_ignored=b"x").keys
    assert len({base.ss, other_t.ss, other_i.ss}) == 3


@pytest.mark.parametrize(("offered", "preference", "chosen"), [
    ([0x01, 0x02, 0x10], [0x10, 0x02, 0x01], 0x10),
    ([0x01, 0x02, 0x10], [0x02, 0x10], 0x02),
    ([0x10, 0x01], [0x02, 0x01, 0x10], 0x01),
    ([0x7F, 0x02], [0x02], 0x02),
])
def test_b_picks_its_first_preference_among_a_offer(offered, preference, chosen):
    ex = full_exchange(0x23, offered, preference, TRANSCRIPT, random.Random(1))
    assert ex.keys.aead == chosen
    assert ex.init2[8] == chosen
    assert list(ex.init1[9:9 + len(offered)]) == offered


def test_init1_without_common_aead_is_rejected():
    rng = random.Random(2)
    a = EndpointA(0x23, [0x01], rng)
    b = EndpointB(0x23, [0x02, 0x10], rng)
    with pytest.raises(HandshakeError):
        b.receive_init1(a.init1, TRANSCRIPT)
    assert b.keys is None


@pytest.mark.parametrize("bad_choice", [0x02, 0x10, 0x7F])
def test_init2_with_unoffered_aead_is_rejected(bad_choice):
    rng = random.Random(3)
    a = EndpointA(0x23, [0x01], rng)
    b_kp = generate_keypair(0x23, rng)
    init2 = Init2(bad_choice, rng.randbytes(32), b_kp.public).encode()
    with pytest.raises(HandshakeError):
        a.receive_init2(init2, TRANSCRIPT)
    assert a.keys is None


def test_unparseable_init_messages_are_handshake_errors():
    rng = random.Random(4)
    a = EndpointA(0x23, [0x01], rng)
    b = EndpointB(0x23, [0x01], rng)
    with pytest.raises(HandshakeError):
        b.receive_init1(b"\x00" * 100, TRANSCRIPT)
    with pytest.raises(HandshakeError):
        a.receive_init2(a.init1, TRANSCRIPT)  # Init1 magic where Init2 belongs


def test_init_messages_followed_by_frames():
    """Each side uses only message_len bytes of the peer's stream for the transcript."""
    rng = random.Random(6)
    a = EndpointA(0x21, [0x01, 0x02], rng)
    b = EndpointB(0x21, [0x02], rng)
    init2 = b.receive_init1(a.init1 + b"\x00\x00\x11frame-bytes", TRANSCRIPT)
    keys = a.receive_init2(init2 + b"\x01\x00\x20more", TRANSCRIPT)
    assert keys == b.keys


# --- determinism ----------------------------------------------------------------------------


@pytest.mark.parametrize("tep", TEPS, ids=lambda t: f"tep{t:02x}")
def test_seeded_rng_is_deterministic(tep):
    one = full_exchange(tep, AEADS, [0x10], TRANSCRIPT, random.Random(42))
    two = full_exchange(tep, AEADS, [0x10], TRANSCRIPT, random.Random(42))
    other = full_exchange(tep, AEADS, [0x10], TRANSCRIPT, random.Random(43))
    assert (one.init1, one.init2, one.keys) == (two.init1, two.init2, two.keys)
    assert one.init1 != other.init1 and one.init2 != other.init2
    assert one.keys.ss != other.keys.ss and one.keys.k_ab != other.keys.k_ab
    assert one.keys.session_id != other.keys.session_id


# --- Init1 / Init2 codec --------------------------------------------------------------------

cipher_lists = st.lists(st.integers(0, 255), min_size=1, max_size=255).map(tuple)
nonces = st.binary(min_size=32, max_size=32)
ignored_bytes = st.binary(max_size=200)


def unknown_aead_offsets(ciphers: tuple[int, ...], first: int) -> list[int]:
    return [first + i for i, c in enumerate(ciphers) if c not in AEADS]


@FAST
@given(tep=st.sampled_from(TEPS), seed=st.integers(0, 3), ciphers=cipher_lists, nonce=nonces,
       ignored=ignored_bytes, trailing=st.binary(max_size=40))
def test_init1_round_trip(tep, seed, ciphers, nonce, ignored, trailing):
    pub = keypair(tep, seed).public
    msg = Init1(ciphers, nonce, pub, ignored)
    wire = msg.encode()
    expected = (bytes([len(ciphers)]) + bytes(ciphers) + nonce + pub + ignored)
    assert wire == INIT1_MAGIC + struct.pack(">I", 8 + len(expected)) + expected
    assert message_length(wire + trailing, 0x15101A0E) == len(wire)
    assert message_length(wire, 0x097105E0) is None
    parsed, findings = parse_init1(wire + trailing, tep)
    assert parsed == msg
    assert sorted((f.code, f.offset) for f in findings) == [
        ("tcpcrypt-unknown-aead", o) for o in unknown_aead_offsets(ciphers, 9)]


@FAST
@given(tep=st.sampled_from(TEPS), seed=st.integers(0, 3), cipher=st.integers(0, 255),
       nonce=nonces, ignored=ignored_bytes, trailing=st.binary(max_size=40))
def test_init2_round_trip(tep, seed, cipher, nonce, ignored, trailing):
    pub = keypair(tep, seed).public
    msg = Init2(cipher, nonce, pub, ignored)
    wire = msg.encode()
    expected = bytes([cipher]) + nonce + pub + ignored
    assert wire == INIT2_MAGIC + struct.pack(">I", 8 + len(expected)) + expected
    assert message_length(wire + trailing, 0x097105E0) == len(wire)
    parsed, findings = parse_init2(wire + trailing, tep)
    assert parsed == msg
    assert [(f.code, f.offset) for f in findings] == [
        ("tcpcrypt-unknown-aead", o) for o in unknown_aead_offsets((cipher,), 8)]


@FAST
@given(tep=st.sampled_from(TEPS), ciphers=cipher_lists, ignored=ignored_bytes,
       data=st.data())
def test_init_truncations(tep, ciphers, ignored, data):
    pub = keypair(tep, 0).public
    for wire, parse in ((Init1(ciphers, bytes(32), pub, ignored).encode(), parse_init1),
                        (Init2(ciphers[0], bytes(32), pub, ignored).encode(), parse_init2)):
        cut = data.draw(st.integers(0, len(wire) - 1))
        msg, findings = parse(wire[:cut], tep)
        assert msg is None
        assert [f.code for f in findings] == ["tcpcrypt-truncated"]
        assert findings[0].offset == (0 if cut < 8 else 4)


@settings(max_examples=300, deadline=None)
@given(tep=st.integers(0, 255), head=st.sampled_from([b"", INIT1_MAGIC, INIT2_MAGIC]),
       length=st.one_of(st.none(), st.integers(0, 300), st.integers(0, 2**32 - 1)),
       body=st.binary(max_size=300))
def test_parsers_never_raise(tep, head, length, body):
    buf = head + (struct.pack(">I", length) if length is not None else b"") + body
    for parse in (parse_init1, parse_init2):
        for chunk in (buf, buf[:len(buf) // 2], body):
            msg, findings = parse(chunk, tep)
            if msg is None:
                assert any(f.severity == "error" for f in findings)
            for f in findings:
                assert f.offset is not None and 0 <= f.offset < max(len(chunk), 8)


@pytest.mark.parametrize("parse", [parse_init1, parse_init2])
def test_bad_magic(parse):
    other = INIT2_MAGIC if parse is parse_init1 else INIT1_MAGIC
    msg, findings = parse(other + struct.pack(">I", 200) + bytes(192), 0x23)
    assert msg is None
    assert [(f.code, f.offset) for f in findings] == [("tcpcrypt-bad-magic", 0)]


@pytest.mark.parametrize("length", [0, 8, 65537, 2**32 - 1])
@pytest.mark.parametrize("parse", [parse_init1, parse_init2])
def test_bad_length(parse, length):
    magic = INIT1_MAGIC if parse is parse_init1 else INIT2_MAGIC
    msg, findings = parse(magic + struct.pack(">I", length) + bytes(200), 0x23)
    assert msg is None
    assert [(f.code, f.offset) for f in findings] == [("tcpcrypt-bad-length", 4)]


def test_init1_field_errors():
    pub = keypair(0x23, 0).public
    # message_len too short for nciphers + N_A
    body = bytes([3, 1, 2, 0x10]) + bytes(20)
    msg, findings = parse_init1(INIT1_MAGIC + struct.pack(">I", 8 + len(body)) + body, 0x23)
    assert msg is None and [(f.code, f.offset) for f in findings] == [("tcpcrypt-truncated", 8)]
    # public key cut short by message_len
    body = bytes([1, 1]) + bytes(32) + pub[:31]
    msg, findings = parse_init1(INIT1_MAGIC + struct.pack(">I", 8 + len(body)) + body + b"x",
                                0x23)
    assert msg is None and [(f.code, f.offset) for f in findings] == [("tcpcrypt-short-pubkey", 42)]
    # TEP that tcpcrypt does not define
    body = bytes([1, 1]) + bytes(32) + pub
    msg, findings = parse_init1(INIT1_MAGIC + struct.pack(">I", 8 + len(body)) + body, 0x20)
    assert msg is None and [f.code for f in findings] == ["tcpcrypt-unknown-tep"]
    # no ciphers at all
    body = bytes([0]) + bytes(32) + pub
    msg, findings = parse_init1(INIT1_MAGIC + struct.pack(">I", 8 + len(body)) + body, 0x23)
    assert ("tcpcrypt-no-ciphers", 8) in [(f.code, f.offset) for f in findings]


def test_init2_field_errors():
    body = bytes([1]) + bytes(31)
    msg, findings = parse_init2(INIT2_MAGIC + struct.pack(">I", 8 + len(body)) + body, 0x23)
    assert msg is None and [f.code for f in findings] == ["tcpcrypt-truncated"]
    body = bytes([1]) + bytes(32) + bytes(64)
    msg, findings = parse_init2(INIT2_MAGIC + struct.pack(">I", 8 + len(body)) + body, 0x21)
    assert msg is None and [(f.code, f.offset) for f in findings] == [("tcpcrypt-short-pubkey", 41)]


def test_encoders_reject_invalid():
    with pytest.raises(ValueError):
        Init1((), bytes(32), b"").encode()
    with pytest.raises(ValueError):
        Init1((1,) * 256, bytes(32), b"").encode()
    with pytest.raises(ValueError):
        Init1((1,), bytes(31), b"").encode()
    with pytest.raises(ValueError):
        Init2(1, bytes(33), b"").encode()


# --- frames ---------------------------------------------------------------------------------


def session(aead: int, seed: int = 0) -> SessionKeys:
    return full_exchange(0x23, [aead], [aead], TRANSCRIPT, random.Random(seed)).keys


@functools.cache
def cached_session(aead: int) -> SessionKeys:
    return session(aead)


def independent_decrypt(aead: int, key: bytes, frame: bytes, offset: int) -> bytes:
    """Open a frame with `cryptography` and the nonce/AD layout of spec 2.6."""
    cipher = ChaCha20Poly1305(key) if aead == 0x10 else AESGCM(key)
    nonce = NONCE_MAGIC + offset.to_bytes(8, "big")
    return cipher.decrypt(nonce, frame[3:], frame[:3])


frame_specs = st.lists(
    st.tuples(st.binary(max_size=3000), st.booleans(),
              st.one_of(st.none(), st.integers(0, 0xFFFF)), st.booleans()),
    min_size=1, max_size=8,
)


@pytest.mark.parametrize("aead", AEADS, ids=lambda a: f"aead{a:02x}")
@settings(max_examples=40, deadline=None)
@given(specs=frame_specs)
@example(specs=[(bytes(range(256)) * 11 + b"end", False, 0xFFFF, True),
                (b"", True, None, False), (b"x" * 2999, False, 0, True),
                (b"", False, 1, True)])
def test_frame_round_trip(aead, specs):
    keys = cached_session(aead)
    sealer = FrameSealer(aead, keys.k_ab)
    opener = FrameOpener(aead, keys.k_ab)
    spec_key = keys.k_ab
    stream = b""
    offsets = []
    for data, fin, urgent, rekey in specs:
        offsets.append(len(stream))
        frame = sealer.seal(data, fin=fin, urgent=urgent, rekey=rekey)
        if rekey:
            spec_key = cprf_spec(spec_key, 0x03, KEY_LEN[aead])
        assert sealer.key == spec_key
        plain = independent_decrypt(aead, spec_key, frame, len(stream))
        flags = (0x01 if fin else 0) | (0x02 if urgent is not None else 0)
        urgent_bytes = b"" if urgent is None else struct.pack(">H", urgent)
        assert plain == bytes([flags]) + urgent_bytes + data
        stream += frame
        assert sealer.offset == len(stream)

    pos = 0
    rekeys = 0
    for (data, fin, urgent, rekey), offset in zip(specs, offsets, strict=True):
        assert pos == offset
        header, findings = parse_frame_header(stream, pos)
        assert header is not None and findings == []
        assert header.rekey == rekey and header.control == int(rekey)
        ciphertext = stream[pos + 3:pos + header.total]
        assert len(ciphertext) == header.length
        assert header.length == 1 + (2 if urgent is not None else 0) + len(data) + 16
        plain = opener.open(header.control, ciphertext, pos)
        rekeys += rekey
        assert opener.generation == rekeys
        assert plain is not None
        assert plain.data == data
        assert plain.urgent == urgent
        assert plain.flags == (0x01 if fin else 0) | (0x02 if urgent is not None else 0)
        pos = frame_end(pos, header.length)
    assert pos == len(stream)
    assert sealer.generation == opener.generation == rekeys
    assert opener.key == sealer.key


@pytest.mark.parametrize("aead", AEADS, ids=lambda a: f"aead{a:02x}")
@settings(max_examples=25, deadline=None)
@given(data=st.binary(max_size=40), rekey=st.booleans(), urgent=st.none() | st.integers(0, 9),
       offset=st.integers(0, 2**40), mask=st.integers(1, 255), seed=st.integers(0, 2**32))
def test_tampered_frame_fails(aead, data, rekey, urgent, offset, mask, seed):
    keys = cached_session(aead)
    frame = FrameSealer(aead, keys.k_ba, offset).seal(data, urgent=urgent, rekey=rekey)
    filler = random.Random(seed).randbytes(0x10000)

    def try_open(buf: bytes, at: int) -> object:
        header, _ = parse_frame_header(buf)
        assert header is not None
        return FrameOpener(aead, keys.k_ba).open(header.control, buf[3:header.total], at)

    assert try_open(frame, offset) is not None
    for index in range(len(frame)):
        tampered = bytearray(frame)
        tampered[index] ^= mask
        # filler behind the frame, so a larger length field still finds bytes to read
        assert try_open(bytes(tampered) + filler, offset) is None, index
    for wrong in (offset + 1, offset - 1, offset ^ (1 << 63), 0 if offset else 3):
        if 0 <= wrong < 2**64:
            assert try_open(frame, wrong) is None


def test_opener_rejects_other_direction_and_generation():
    keys = cached_session(0x02)
    frame = FrameSealer(0x02, keys.k_ab).seal(b"hello")
    assert FrameOpener(0x02, keys.k_ba).open(frame[0], frame[3:], 0) is None
    # rekey bit flipped on: generation advances, tag fails, and the advance stays
    opener = FrameOpener(0x02, keys.k_ab)
    assert opener.open(frame[0] | 1, frame[3:], 0) is None
    assert opener.generation == 1
    assert opener.key == cprf_spec(keys.k_ab, 0x03, 32)


@pytest.mark.parametrize("aead", AEADS, ids=lambda a: f"aead{a:02x}")
def test_rekey_chain_matches_spec(aead):
    keys = cached_session(aead)
    sealer = FrameSealer(aead, keys.k_ab)
    opener = FrameOpener(aead, keys.k_ab)
    expected = keys.k_ab
    offset = 0
    for generation in range(1, 5):
        frame = sealer.seal(b"g%d" % generation, rekey=True)
        expected = cprf_spec(expected, 0x03, KEY_LEN[aead])
        assert len(expected) == KEY_LEN[aead]
        assert sealer.generation == generation and sealer.key == expected
        assert frame[0] == 0x01
        assert independent_decrypt(aead, expected, frame, offset) == b"\x00g%d" % generation
        plain = opener.open(frame[0], frame[3:], offset)
        assert plain is not None and plain.data == b"g%d" % generation
        assert opener.generation == generation and opener.key == expected
        offset += len(frame)


def test_frame_header_findings():
    header, findings = parse_frame_header(bytes([0x82, 0x00, 0x10]), 0)
    assert header is not None and header.length == 16
    assert sorted((f.code, f.offset) for f in findings) == [
        ("tcpcrypt-control-reserved", 0), ("tcpcrypt-short-frame", 1)]
    assert parse_frame_header(b"\x00\x00", 0) == (None, [])
    header, findings = parse_frame_header(b"xx\x01\x00\x11", 2)
    assert header is not None and header.rekey and header.total == 20 and findings == []


def test_channel_directions():
    keys = cached_session(0x10)
    ch = Channel(keys)
    f_ab = ch.sealer(True).seal(b"to B")
    f_ba = ch.sealer(False).seal(b"to A")
    assert ch.open_ab.open(f_ab[0], f_ab[3:], 0).data == b"to B"
    assert ch.open_ba.open(f_ba[0], f_ba[3:], 0).data == b"to A"
    assert ch.open_ba.open(f_ab[0], f_ab[3:], 0) is None


# --- resumption -----------------------------------------------------------------------------


@pytest.mark.parametrize("aead", AEADS, ids=lambda a: f"aead{a:02x}")
@pytest.mark.parametrize("tep", TEPS, ids=lambda t: f"tep{t:02x}")
def test_resumed_keys(tep, aead):
    parent = full_exchange(tep, [aead], [aead], TRANSCRIPT, random.Random(tep + aead)).keys
    child, id_a, id_b = resumed_keys(parent)
    ss1 = hkdf_expand(parent.ss, b"\x01", 32)
    assert child.ss == ss1
    resume = cprf_spec(ss1, 0x06, 18)
    assert (id_a, id_b) == (resume[:9], resume[9:])
    assert len(id_a) == len(id_b) == 9
    assert (child.tep, child.aead) == (parent.tep, parent.aead)
    assert child.session_id == bytes([tep]) + cprf_spec(ss1, 0x02, 32)
    assert child.k_ab == cprf_spec(ss1, 0x04, KEY_LEN[aead])
    assert child.k_ba == cprf_spec(ss1, 0x05, KEY_LEN[aead])
    assert parent.resume_ids == (id_a, id_b)
    # a chain of resumptions keeps stepping ss
    grandchild, gid_a, _ = resumed_keys(child)
    ss2 = hkdf_expand(ss1, b"\x01", 32)
    assert grandchild.ss == ss2 and gid_a == cprf_spec(ss2, 0x06, 18)[:9]


# --- invalid public keys --------------------------------------------------------------------


def p_point_off_curve(tep: int) -> bytes:
    pub = bytearray(keypair(tep, 1).public)
    pub[-1] ^= 1  # change Y: the point leaves the curve
    return bytes(pub)


X25519_LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
]


@pytest.mark.parametrize("tep", TEPS, ids=lambda t: f"tep{t:02x}")
def test_wrong_length_public_key(tep):
    private = keypair(tep, 2).private
    good = keypair(tep, 3).public
    for bad in (b"", good[:-1], good + b"\x00", bytes(PUB_LEN[tep] + 1)):
        with pytest.raises(KeyAgreementError):
            shared_secret(tep, private, bad)


@pytest.mark.parametrize("tep", [0x21, 0x22], ids=["p256", "p521"])
def test_point_not_on_curve(tep):
    private = keypair(tep, 2).private
    with pytest.raises(KeyAgreementError):
        shared_secret(tep, private, p_point_off_curve(tep))
    compressed_prefix = b"\x02" + keypair(tep, 3).public[1:]
    with pytest.raises(KeyAgreementError):
        shared_secret(tep, private, compressed_prefix)
    with pytest.raises(KeyAgreementError):
        shared_secret(tep, private, bytes(PUB_LEN[tep]))


@pytest.mark.parametrize("point", X25519_LOW_ORDER, ids=["zero", "one", "order8"])
def test_x25519_degenerate_points(point):
    with pytest.raises(KeyAgreementError):
        shared_secret(0x23, keypair(0x23, 2).private, point)


def test_x448_all_zero_point():
    with pytest.raises(KeyAgreementError):
        shared_secret(0x24, keypair(0x24, 2).private, bytes(56))


def test_endpoint_b_rejects_degenerate_peer_key():
    rng = random.Random(9)
    b = EndpointB(0x23, [0x01], rng)
    init1 = Init1((0x01,), rng.randbytes(32), bytes(32)).encode()
    with pytest.raises(KeyAgreementError):
        b.receive_init1(init1, TRANSCRIPT)


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
