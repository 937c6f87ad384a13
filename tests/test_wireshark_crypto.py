"""The dissector's own cryptography (lua/tcpinc.lua, above its Wireshark guard) against
the ``cryptography`` package and the RFC 7748 test vectors, in each plain Lua version;
and private-key-only key logs of every TEP decrypted inside real tshark exactly as the
Python analyzer decrypts them."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tcpinc_analyze.tcpcrypt.keyschedule import (
    _SMALL_ORDER,
    KeyAgreementError,
    generate_keypair,
    keypair_from_private,
    shared_secret,
    validate_public,
)

ROOT = Path(__file__).resolve().parents[1]
LUA = ROOT / "lua" / "tcpinc.lua"
LUA_VERSIONS = ["lua5.2", "lua5.3", "lua5.4"]
TEPS = (0x21, 0x22, 0x23, 0x24)

# RFC 7748 §5.2 (scalar, u, result) and §6.1/§6.2 (Alice's and Bob's keys, the secret)
RFC7748_X25519 = [
    ("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
     "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
     "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"),
    ("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
     "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
     "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
]
RFC7748_X448 = [
    ("3d262fddf9ec8e88495266fea19a34d28882acef045104d0d1aae121700a779c984c24f8cdd78fbff44943eba"
     "368f54b29259a4f1c600ad3",
     "06fce640fa3487bfda5f6cf2d5263f8aad88334cbd07437f020f08f9814dc031ddbdc38c19c6da2583fa5429d"
     "b94ada18aa7a7fb4ef8a086",
     "ce3e4ff95a60dc6697da1db1d85e6afbdf79b50a2412d7546d5f239fe14fbaadeb445fc66a01b0779d982239"
     "61111e21766282f73dd96b6f"),
    ("203d494428b8399352665ddca42f9de8fef600908e0d461cb021f8c538345dd77c3e4806e25f46d3315c44e0a"
     "5b4371282dd2c8d5be3095f",
     "0fbcc2f993cd56d3305b0b7d9e55d4c1a8fb5dbb52f8e9a1e9b6201b165d015894e56c4d3570bee52fe205e28"
     "a78b91cdfbde71ce8d157db",
     "884a02576239ff7a2f2f63b2db6a9ff37047ac13568e1e30fe63c4a7ad1b3ee3a5700df34321d62077e63633c"
     "575c1c954514e99da7c179d"),
]
X25519_DH = ("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
             "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
             "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
             "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
             "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
X448_DH = ("9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf574a94197448973910063"
           "82a6f127ab1d9ac2d8c0a598726b",
           "9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c22c5d9bbc836647241d953d40c5b12da"
           "88120d53177f80e532c41fa0",
           "1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d6927c120bb5ee8972b0d3e21374c9c92"
           "1b09d1b0366f10b65173992d",
           "3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b43027d8b972fc3e34fb4232a13ca706dcb5"
           "7aec3dae07bdc1c67bf33609",
           "07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282bb60c0b56fd2464c335543936521c24403"
           "085d59a449a5037514a879d")


def _run_lua(lua: str, tmp_path: Path, body: str) -> list[str]:
    if shutil.which(lua) is None:
        pytest.skip(f"{lua} not installed")
    script = tmp_path / "run.lua"
    script.write_text(f"local M = dofile({json.dumps(str(LUA))})\n"
                      "if not M.ossl.ok then print('NOOSSL') return end\n" + body)
    proc = subprocess.run([lua, str(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    if proc.stdout.startswith("NOOSSL"):
        pytest.skip(f"lua-luaossl not installed for {lua}")
    return proc.stdout.splitlines()


@pytest.mark.parametrize("lua", LUA_VERSIONS)
def test_rfc7748_vectors(lua: str, tmp_path: Path) -> None:
    """§5.2's single-step vectors, §5.2's iterated one (1 and 1000 iterations of X25519;
    1 of X448), and §6's Diffie-Hellman examples (public keys and the shared secret)."""
    cases = [(0x23, *v) for v in RFC7748_X25519] + [(0x24, *v) for v in RFC7748_X448]
    lines = "\n".join(f"{tep} {k} {u}" for tep, k, u, _ in cases)
    (tmp_path / "in.txt").write_text(lines + "\n")
    dh = "\n".join(" ".join(map(str, (tep, *v))) for tep, v in ((0x23, X25519_DH),
                                                                  (0x24, X448_DH)))
    (tmp_path / "dh.txt").write_text(dh + "\n")
    iterations = 1000 if lua == "lua5.2" else 1
    out = _run_lua(lua, tmp_path, f"""
local h, H = M.fromhex, M.tohex
for line in io.lines({json.dumps(str(tmp_path / "in.txt"))}) do
  local tep, k, u = line:match("(%d+) (%x+) (%x+)")
  print(H(M.x_mont(tonumber(tep), h(k), h(u))))
end
for _, tep in ipairs({{0x23, 0x24}}) do
  local len = tep == 0x23 and 32 or 56
  local k = string.char(tep == 0x23 and 9 or 5) .. string.rep("\\0", len - 1)
  local u = k
  for i = 1, tep == 0x23 and {iterations} or 1 do
    local r = M.x_mont(tep, k, u)
    u, k = k, r
    if i == 1 then print("iter1 " .. tep .. " " .. H(k)) end
  end
  print("iterN " .. tep .. " " .. H(k))
end
for line in io.lines({json.dumps(str(tmp_path / "dh.txt"))}) do
  local w = {{}}
  for x in line:gmatch("%S+") do w[#w + 1] = x end
  local tep = tonumber(w[1])
  local pa, pb = M.public_of(tep, h(w[2])), M.public_of(tep, h(w[4]))
  print("dh " .. H(pa) .. " " .. H(pb) .. " " .. H(M.shared_secret(tep, h(w[2]), pb)) ..
        " " .. H(M.shared_secret(tep, h(w[4]), pa)))
end
""")
    assert out[:len(cases)] == [want for *_, want in cases]
    rest = dict((line.split()[0] + line.split()[1], line.split()[2])
                for line in out[len(cases):] if line.startswith("iter"))
    assert rest["iter135"] == "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"
    assert rest["iter136"] == ("3f482c8a9f19b01e6c46ee9711d9dc14fd4bf67af30765c2ae2b846a4d23a8cd"
                               "0db897086239492caf350b51f833868b9bc2b3bca9cf4113")
    if iterations == 1000:
        assert rest["iterN35"] == (
            "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51")
    dh_lines = [line.split()[1:] for line in out if line.startswith("dh ")]
    for (tep, v), got in zip(((0x23, X25519_DH), (0x24, X448_DH)), dh_lines, strict=True):
        assert got == [v[1], v[3], v[4], v[4]], hex(tep)


def _random_vectors(rng: random.Random) -> list[tuple]:
    """Key pairs and exchanges of every TEP, computed by the cryptography package; NIST
    peers also as uncompressed points; invalid points and scalars with the reason."""
    out = []
    for tep in TEPS:
        for _ in range(4):
            mine, peer = generate_keypair(tep, rng), generate_keypair(tep, rng)
            for compressed in (True, False) if tep in (0x21, 0x22) else (True,):
                peer_point = (keypair_from_private(tep, peer.private, compressed=False).public
                              if not compressed else peer.public)
                out.append((tep, mine.private, peer_point, mine.public,
                            keypair_from_private(tep, mine.private, compressed=False).public
                            if tep in (0x21, 0x22) else mine.public,
                            shared_secret(tep, mine.private, peer_point)))
    return out


@pytest.mark.parametrize("lua", LUA_VERSIONS)
def test_ecdh_matches_the_cryptography_package(lua: str, tmp_path: Path) -> None:
    vectors = _random_vectors(random.Random(17))
    (tmp_path / "in.txt").write_text("\n".join(
        f"{tep} {priv.hex()} {peer.hex()}" for tep, priv, peer, *_ in vectors) + "\n")
    out = _run_lua(lua, tmp_path, f"""
local h, H = M.fromhex, M.tohex
for line in io.lines({json.dumps(str(tmp_path / "in.txt"))}) do
  local tep, priv, peer = line:match("(%d+) (%x+) (%x+)")
  tep = tonumber(tep)
  local c, u = M.public_of(tep, h(priv))
  print(H(c) .. " " .. H(u) .. " " .. H(M.shared_secret(tep, h(priv), h(peer))) .. " " ..
        tostring(M.validate_public(tep, h(peer))))
end
""")
    assert len(out) == len(vectors)
    for (tep, _priv, _peer, pub_c, pub_u, es), line in zip(vectors, out, strict=True):
        assert line.split() == [pub_c.hex(), pub_u.hex(), es.hex(), "nil"], hex(tep)


def _invalid_points(rng: random.Random) -> list[tuple[int, bytes]]:
    points: list[tuple[int, bytes]] = [(tep, key) for tep in (0x23, 0x24)
                                       for key in sorted(_SMALL_ORDER[tep])]
    for tep, size in ((0x21, 32), (0x22, 66)):
        curve = ec.SECP256R1() if tep == 0x21 else ec.SECP521R1()
        for _ in range(12):
            x = rng.randbytes(size)
            if tep == 0x22:
                x = bytes((x[0] & 1,)) + x[1:]
            points.append((tep, bytes((2 + rng.randrange(2),)) + x))
        good = generate_keypair(tep, rng, compressed=False).public
        bad_y = bytearray(good)
        bad_y[-1] ^= 1
        points += [(tep, bytes(bad_y)), (tep, b"\x02" + b"\xff" * size),
                   (tep, b"\x04" + b"\xff" * (2 * size)), (tep, good)]
        del curve
    points += [(0x23, rng.randbytes(32)), (0x24, rng.randbytes(56))]
    return points


@pytest.mark.parametrize("lua", LUA_VERSIONS)
def test_public_key_validation_matches_python(lua: str, tmp_path: Path) -> None:
    """Small-order X25519/X448 keys (every encoding) and NIST x-coordinates off the
    curve are invalid on both sides; valid keys are valid on both sides."""
    points = _invalid_points(random.Random(23))
    (tmp_path / "in.txt").write_text("\n".join(f"{t} {p.hex()}" for t, p in points) + "\n")
    out = _run_lua(lua, tmp_path, f"""
for line in io.lines({json.dumps(str(tmp_path / "in.txt"))}) do
  local tep, point = line:match("(%d+) (%x+)")
  local why = M.validate_public(tonumber(tep), M.fromhex(point))
  print(why and ("bad " .. why) or "ok")
end
""")
    invalid = 0
    for (tep, point), line in zip(points, out, strict=True):
        python = validate_public(tep, point)
        assert (python is None) == (line == "ok"), (hex(tep), point.hex(), python, line)
        invalid += python is not None
    assert invalid >= len(_SMALL_ORDER[0x23]) + len(_SMALL_ORDER[0x24]) + 10


@pytest.mark.parametrize("lua", ["lua5.2"])
def test_unusable_private_keys_are_refused(lua: str, tmp_path: Path) -> None:
    """A NIST scalar of 0 or >= the group order, a wrong-length key and a shared secret
    that is all-zero give a reason instead of a secret, as they do in Python."""
    n256 = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"
    peer = generate_keypair(0x21, random.Random(1)).public
    cases = [(0x21, "00" * 32, peer.hex()), (0x21, n256, peer.hex()),
             (0x23, "11" * 31, "09" + "00" * 31), (0x23, "11" * 32, "00" * 32),
             (0x24, "22" * 56, "01" + "00" * 55)]
    for tep, priv, point in cases:
        with pytest.raises((KeyAgreementError, ValueError)):
            keypair_from_private(tep, bytes.fromhex(priv))
            shared_secret(tep, bytes.fromhex(priv), bytes.fromhex(point))
    (tmp_path / "in.txt").write_text("\n".join(" ".join(map(str, c)) for c in cases) + "\n")
    out = _run_lua(lua, tmp_path, f"""
for line in io.lines({json.dumps(str(tmp_path / "in.txt"))}) do
  local tep, priv, point = line:match("(%d+) (%x+) (%x+)")
  local es, why = M.shared_secret(tonumber(tep), M.fromhex(priv), M.fromhex(point))
  print(es and "SECRET" or why)
end
""")
    assert len(out) == len(cases)
    assert "SECRET" not in out, out
    assert "out of range" in out[0] and "out of range" in out[1]
    assert "31 bytes" in out[2] and "all-zero" in out[3] and "all-zero" in out[4]


# ---------------------------------------------------------------- inside tshark

def _private_key_scenario() -> object:
    """One connection per TEP and AEAD pairing, private key of A or of B logged (only
    that), P-256 also with uncompressed points and a rekey, each with a different port."""
    from tcpinc_analyze.synth.connection import KEYS_PRIVATE_A, KEYS_PRIVATE_B
    from tcpinc_analyze.synth.sample import Scenario
    from tcpinc_analyze.synth.scenarios import BASE_NS, SECOND, tcpcrypt_plan

    def plans(rng: random.Random) -> list:
        out = []
        combos = [(0x21, 0x0001), (0x22, 0x0002), (0x23, 0x0010), (0x24, 0x0002),
                  (0x21, 0x0010), (0x23, 0x0001)]
        for i, (tep, aead) in enumerate(combos):
            out.append(tcpcrypt_plan(rng, tep, aead, start_ns=BASE_NS + i * SECOND,
                                     size=3000 + 500 * i, b_port=8000 + i,
                                     keylog=KEYS_PRIVATE_A if i % 2 == 0 else KEYS_PRIVATE_B,
                                     rekey_ab=(1,) if i == 4 else ()))
        out.append(tcpcrypt_plan(rng, 0x21, 0x0002, start_ns=BASE_NS + 7 * SECOND,
                                 size=2500, b_port=8100, keylog=KEYS_PRIVATE_B,
                                 break_uncompressed=True))
        return out

    return Scenario("private-keys", "private-key-only key logs", plans, seed=77)


@pytest.mark.tshark
def test_private_key_only_logs_decrypt_in_tshark(tmp_path: Path) -> None:
    """Gap 1 of issue 12: a key log with only TCPCRYPT_EPHEMERAL_PRIVATE lines decrypts
    inside tshark for every TEP (ECDH in Lua), with the Python analyzer's session IDs,
    frame counts and plaintext hashes."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    import test_wireshark as tw

    from tcpinc_analyze.synth.sample import generate

    sample = generate(_private_key_scenario())
    capture, keylog = tmp_path / "private.pcap", tmp_path / "private.keys"
    capture.write_bytes(sample.capture)
    keylog.write_text(sample.keylog)
    labels = {line.split()[0] for line in sample.keylog.splitlines()
              if line and not line.startswith("#")}
    assert labels == {"TCPCRYPT_EPHEMERAL_PRIVATE"}, labels
    from tcpinc_analyze.analysis.run import analyze_file
    from tcpinc_analyze.decryption import DecryptionContext
    from tcpinc_analyze.keylog import load_keylogs

    log = load_keylogs([str(keylog)], use_env=False).log
    python = [r.to_json() for r in analyze_file(str(capture),
                                                decryption=DecryptionContext(log)).reports]
    assert len(python) == 7
    assert {py["tcpcrypt"]["keys_from"] for py in python} == {"private_key"}
    assert {py["tcpcrypt"]["tep"] for py in python} == set(TEPS)
    got = tw.per_connection(tw.tshark_fields(capture, keylog))
    tw.assert_parity("private-keys", python, got)
    for py in python:
        lua = got[(py["a"], py["b"])]
        assert lua["keys_from"] == "private_key" and lua["session_id"], py["id"]
        assert lua["ok"]["ab"] > 0 and lua["ok"]["ba"] > 0, py["id"]


@pytest.mark.parametrize("lua", ["lua5.2", "lua5.4"])
def test_ghash_table_multiplication_matches_the_bitwise_one(lua: str, tmp_path: Path) -> None:
    """The per-key table of H * x^i that GCM's lengths-block correction uses gives the
    same products as the bit-by-bit GF(2^128) multiplication, for sparse and dense x."""
    rng = random.Random(31)
    pairs = [(rng.randbytes(16), rng.randbytes(16)) for _ in range(40)]
    pairs += [(bytes(8) + (8 * n ^ 8 * (n + 16)).to_bytes(8, "big"), rng.randbytes(16))
              for n in (1, 15, 16, 300, 1400, 16000)]
    (tmp_path / "in.txt").write_text("\n".join(f"{x.hex()} {h.hex()}" for x, h in pairs) + "\n")
    out = _run_lua(lua, tmp_path, f"""
for line in io.lines({json.dumps(str(tmp_path / "in.txt"))}) do
  local x, h = line:match("(%x+) (%x+)")
  x, h = M.fromhex(x), M.fromhex(h)
  print(M.tohex(M.gf_mul(x, h)) == M.tohex(M.gf_mul_table(x, M.gf_table(h))) and "same" or "DIFF")
end
""")
    assert out == ["same"] * len(pairs)


PRIVATE_KEY_SAMPLES = ["busy-mix", "experimental-encoding", "nonce-after-init",
                       "simultaneous-open", "x448-private-key"]


@pytest.mark.tshark
@pytest.mark.parametrize("name", PRIVATE_KEY_SAMPLES)
def test_samples_with_only_their_private_keys(tmp_path: Path, name: str) -> None:
    """The samples' own ephemeral private keys, every other line removed: tshark's ECDH
    gives the same keys as the cryptography package's (session IDs, frames, plaintext
    hashes of every connection agree with Python's)."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    import test_wireshark as tw

    from tcpinc_analyze.analysis.run import analyze_file
    from tcpinc_analyze.decryption import DecryptionContext
    from tcpinc_analyze.keylog import load_keylogs

    entry = tw._entry(name)
    keylog = tmp_path / f"{name}-private.keys"
    keylog.write_text("".join(line + "\n" for line in tw._keylog(entry).read_text().splitlines()
                              if line.startswith("TCPCRYPT_EPHEMERAL_PRIVATE")))
    capture = tw.SAMPLES / entry["capture"]
    log = load_keylogs([str(keylog)], use_env=False).log
    python = [r.to_json() for r in analyze_file(str(capture),
                                                decryption=DecryptionContext(log)).reports]
    from_private = [p for p in python if p["tcpcrypt"] and p["tcpcrypt"]["keys_from"]]
    assert from_private and {p["tcpcrypt"]["keys_from"] for p in from_private} == {"private_key"}
    tw.assert_parity(f"{name} (private keys only)", python,
                     tw.per_connection(tw.tshark_fields(capture, keylog)))
