"""The Lua dissector (lua/tcpinc.lua) inside real tshark, against the Python analyzer and
the samples' expected results; plus the field spec, the generator and the installer."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from tcpinc_analyze.analysis.run import analyze_file
from tcpinc_analyze.decryption import DecryptionContext
from tcpinc_analyze.fieldspec import EXPERTS, FIELDS, VALUE_NAMES, value_name
from tcpinc_analyze.keylog import KeyLog, load_keylogs
from tcpinc_analyze.synth.catalog import load_catalog
from tcpinc_analyze.wireshark import install as ws_install
from tcpinc_analyze.wireshark import luagen

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
LUA = ROOT / "lua" / "tcpinc.lua"
CATALOG = load_catalog(SAMPLES)
TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed")

FIELDS_OUT = [
    "frame.number", "tcp.stream", "tcpeno.status", "tcpeno.reason", "tcpeno.negotiated_tep",
    "tcpeno.host_a", "tcpeno.host_b", "tcpeno.encoding", "tcpeno.roles", "tcpeno.session_id",
    "tcpcrypt.aead", "tcpcrypt.direction", "tcpcrypt.frame.number", "tcpcrypt.frame.control.rekey",
    "tcpcrypt.frame.verified", "tcpcrypt.frame.generation", "tcpcrypt.nonce_offset_base",
    "tcpcrypt.plaintext.data", "tcpeno.conformance", "tcpeno.conformance.rfc",
    "_ws.expert.message", "tcpcrypt.keys_from",
]


AGG = "|"
"""Occurrence separator: expert messages and RFC sections contain commas."""


def tshark_fields(capture: Path, keylog: Path | None, env: dict | None = None,
                  fields: list[str] | None = None) -> str:
    """Two passes (-2 -Y frame builds the tree in the first pass too), all occurrences."""
    cmd = [TSHARK, "-n", "-2", "-Y", "frame", "-X", f"lua_script:{LUA}", "-r", str(capture),
           "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", f"aggregator={AGG}"]
    cmd += ["-o", f"tcpcrypt.keylog_file:{keylog or ''}"]
    for f in fields or FIELDS_OUT:
        cmd += ["-e", f]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert "Lua Error" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
    assert "internal problem" not in proc.stdout, proc.stdout[-2000:]
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _flag(value: str) -> bool:
    return value in ("1", "True")


def per_connection(out: str) -> dict[tuple[str, str], dict]:
    """tshark's per-packet fields folded into one record per (host A, host B)."""
    streams: dict[int, dict] = defaultdict(lambda: {
        "frames": {"ab": 0, "ba": 0}, "rekeys": {"ab": 0, "ba": 0}, "ok": {"ab": 0, "ba": 0},
        "failed": {"ab": 0, "ba": 0}, "data": {"ab": b"", "ba": b""}, "session_id": None,
        "aead": None, "codes": defaultdict(int), "conformance": defaultdict(int),
        "nonce_offset_base": set(), "generations": {"ab": set(), "ba": set()},
        "undecryptable": {"ab": 0, "ba": 0}, "keys_from": None})
    for line in out.splitlines():
        v = dict(zip(FIELDS_OUT, line.split("\t"), strict=False))
        if not v.get("tcp.stream"):
            continue
        c = streams[int(v["tcp.stream"])]
        c["status"] = v["tcpeno.status"]
        c["reason"] = v["tcpeno.reason"] or None
        c["tep"] = int(v["tcpeno.negotiated_tep"], 16) if v["tcpeno.negotiated_tep"] else None
        c["a"], c["b"] = v["tcpeno.host_a"], v["tcpeno.host_b"]
        c["encoding"] = v["tcpeno.encoding"] or None
        c["roles"] = v["tcpeno.roles"] or None
        if v["tcpcrypt.aead"]:
            c["aead"] = int(v["tcpcrypt.aead"].split(AGG)[0], 16)
        if v["tcpeno.session_id"]:
            c["session_id"] = v["tcpeno.session_id"]
        if v.get("tcpcrypt.keys_from"):
            c["keys_from"] = v["tcpcrypt.keys_from"].split(AGG)[0]
        for base in filter(None, v["tcpcrypt.nonce_offset_base"].split(AGG)):
            c["nonce_offset_base"].add(base)
        for code in filter(None, v["tcpeno.conformance"].split(AGG)):
            c["conformance"][code] += 1
        for message in v["_ws.expert.message"].split(AGG):
            code = re.match(r"\[([a-z0-9-]+)\] ", message)
            if code:
                c["codes"][code.group(1)] += 1
        if v["tcpcrypt.frame.number"]:
            # every PDU of a packet comes from its sender: one direction per packet
            d = v["tcpcrypt.direction"].split(AGG)[-1]
            numbers = v["tcpcrypt.frame.number"].split(AGG)
            c["frames"][d] += len(numbers)
            c["rekeys"][d] += sum(_flag(x) for x in v["tcpcrypt.frame.control.rekey"].split(AGG))
            verified = [x for x in v["tcpcrypt.frame.verified"].split(AGG) if x]
            c["ok"][d] += sum(_flag(x) for x in verified)
            c["failed"][d] += sum(not _flag(x) for x in verified)
            c["generations"][d].update(int(g) for g in v["tcpcrypt.frame.generation"].split(AGG)
                                       if g)
            for chunk in v["tcpcrypt.plaintext.data"].split(AGG):
                c["data"][d] += bytes.fromhex(chunk)
    return {(c["a"], c["b"]): c for c in streams.values()}


def _keylog(entry: dict) -> Path | None:
    return SAMPLES / entry["keylog"] if entry.get("keylog") else None


def python_reports(entry: dict) -> list[dict]:
    """The reference: the Python analyzer with a DecryptionContext from the sample's key
    log (and the capture's own Decryption Secrets Blocks)."""
    keylog = _keylog(entry)
    log = load_keylogs([str(keylog)], use_env=False).log if keylog else KeyLog()
    result = analyze_file(str(SAMPLES / entry["capture"]), decryption=DecryptionContext(log))
    return [r.to_json() for r in result.reports]


_TSHARK_CACHE: dict[str, dict] = {}
_PY_CACHE: dict[str, list[dict]] = {}


def lua_view(entry: dict) -> dict[tuple[str, str], dict]:
    name = entry["name"]
    if name not in _TSHARK_CACHE:
        _TSHARK_CACHE[name] = per_connection(tshark_fields(SAMPLES / entry["capture"],
                                                           _keylog(entry)))
    return _TSHARK_CACHE[name]


def py_view(entry: dict) -> list[dict]:
    name = entry["name"]
    if name not in _PY_CACHE:
        _PY_CACHE[name] = python_reports(entry)
    return _PY_CACHE[name]


def _entry(name: str) -> dict:
    return next(e for e in CATALOG if e["name"] == name)


def assert_parity(where_name: str, python: list[dict], got: dict) -> None:
    """ENO outcome, roles, TEP, encoding, frames, rekeys, session ID and decrypted data per
    direction of every Python report agree with tshark's view of the same connection."""
    assert len(got) == len(python), f"{where_name}: {sorted(got)}"
    for py in python:
        where = f"{where_name} connection {py['id']}"
        lua = got.get((py["a"], py["b"]))
        assert lua is not None, f"{where}: {py['a']} -> {py['b']} not in {list(got)}"
        eno = py["eno"]
        for key, value in (("status", eno["status"]), ("reason", eno["reason"]),
                           ("tep", eno["negotiated_tep"]), ("encoding", eno["encoding"]),
                           ("roles", eno["roles"])):
            assert lua[key] == value, f"{where}: {key}: lua {lua[key]!r}, python {value!r}"
        tc = py["tcpcrypt"]
        if tc is None:
            assert lua["frames"] == {"ab": 0, "ba": 0}, where
            continue
        whole = {d: tc["frames"][d] - tc["incomplete_frames"][d] for d in ("ab", "ba")}
        assert lua["frames"] == whole, f"{where}: frames (tshark shows the whole ones)"
        assert lua["rekeys"] == tc["rekeys"], f"{where}: rekeys"
        decrypted = tc.get("decrypted")
        assert lua["keys_from"] == tc.get("keys_from"), f"{where}: keys from"
        if tc["aead"] is not None and (tc.get("init2") or decrypted):
            assert lua["aead"] == tc["aead"], f"{where}: aead"
        assert lua["session_id"] == tc["session_id"], f"{where}: session ID"
        if not decrypted:
            assert lua["ok"] == lua["failed"] == {"ab": 0, "ba": 0}, where
            continue
        for d in ("ab", "ba"):
            assert lua["ok"][d] == decrypted[d]["ok"], f"{where}: ok {d}"
            assert lua["failed"][d] == decrypted[d]["failed"], f"{where}: failed {d}"
            assert hashlib.sha256(lua["data"][d]).hexdigest() == decrypted[d]["sha256"], (
                f"{where}: sha256 of application data {d}")
        if tc.get("nonce_offset_base") in ("tcp-stream", "after-init"):
            assert lua["nonce_offset_base"] == {tc["nonce_offset_base"]}, where


@needs_tshark
@pytest.mark.tshark
@pytest.mark.parametrize("entry", CATALOG, ids=[e["name"] for e in CATALOG])
def test_sample_parity(entry: dict) -> None:
    """tshark with the plugin agrees with the Python analyzer (and its decryption with the
    sample's key log) on every connection of every sample."""
    expected = json.loads((SAMPLES / entry["expected"]).read_text())
    python = py_view(entry)
    assert len(python) == len(expected["connections"])
    for exp, py in zip(expected["connections"], python, strict=True):
        assert (py["a"], py["b"]) == (exp["a"], exp["b"]), f"{entry['name']}: analyzer roles"
    assert_parity(entry["name"], python, lua_view(entry))


@needs_tshark
@pytest.mark.tshark
def test_resumption_from_key_log_chain_probes_the_aead(tmp_path: Path) -> None:
    """Without the original connection in the capture, a resumed session is found through
    the chain of a logged ss[0] (no AEAD known): both sides try the AEADs on its first
    frame and agree on the keys, the session ID and the plaintext."""
    entry = _entry("resumption")
    cut = tmp_path / "resumed-only.pcap"
    proc = subprocess.run([TSHARK, "-n", "-r", str(SAMPLES / entry["capture"]), "-Y",
                           "tcp.stream != 0", "-w", str(cut), "-F", "pcap"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    keylog = _keylog(entry)
    log = load_keylogs([str(keylog)], use_env=False).log
    result = analyze_file(str(cut), decryption=DecryptionContext(log))
    python = [r.to_json() for r in result.reports]
    probed = [py for py in python if py["tcpcrypt"] and py["tcpcrypt"]["aead_probed"]]
    assert probed, "the Python side should have probed an AEAD"
    assert all(py["tcpcrypt"]["session_id"] for py in probed)
    assert_parity("resumed-only", python, per_connection(tshark_fields(cut, keylog)))


@needs_tshark
@pytest.mark.tshark
def test_resumed_secret_under_its_resume_id_continues_the_chain(tmp_path: Path) -> None:
    """Only ss[1] is logged, under resume[1]: connection 1 decrypts from it (AEAD found by
    authentication) and connection 2, which resumes with ss[2], through the chain that
    continues from it; Lua agrees with Python on every connection."""
    from tcpinc_analyze.synth.sample import generate
    from tcpinc_analyze.synth.scenarios import SCENARIOS
    from tcpinc_analyze.tcpcrypt.endpoint import resumption

    ss0 = generate(SCENARIOS["resumption"]).connections[0].keys.ss
    first = resumption(ss0, 1, b"", b"")
    keylog = tmp_path / "child.keys"
    keylog.write_text(f"TCPCRYPT_SESSION_SECRET {first.resume.hex()} {first.ss.hex()}\n")
    capture = SAMPLES / "resumption.pcap"
    log = load_keylogs([str(keylog)], use_env=False).log
    python = [r.to_json() for r in analyze_file(str(capture),
                                                decryption=DecryptionContext(log)).reports]
    assert python[2]["tcpcrypt"]["keys_from"] == "resumption"
    assert_parity("child-secret", python, per_connection(tshark_fields(capture, keylog)))


LUA_FINDINGS = ["wrong-key", "gap", "rst-no-fin-frame", "fallback-reasons",
                "retransmission-reorder", "tcpcryptd-2016-http-get", "snaplen",
                "conformance-violations", "eno-edge-cases", "role-conflicts",
                "p256-aes128-ignored", "fallback-ack-stripped", "fallback-synack-stripped"]
LUA_CANNOT: dict[str, str] = {}


@needs_tshark
@pytest.mark.tshark
@pytest.mark.parametrize("name", LUA_FINDINGS)
def test_findings_become_expert_infos(name: str) -> None:
    """Every finding code of the Python analyzer (and of the expected file) shows as an
    expert info of its connection, except what Lua cannot compute."""
    entry = _entry(name)
    expected = json.loads((SAMPLES / entry["expected"]).read_text())
    got = lua_view(entry)
    for conn, py in zip(expected["connections"], py_view(entry), strict=True):
        codes = got[(conn["a"], conn["b"])]["codes"]
        wanted = {f["code"] for f in conn["findings"]} | {f["code"] for f in py["findings"]}
        for code in sorted(wanted - set(LUA_CANNOT)):
            assert code in EXPERTS, code
            assert codes[code] >= 1, f"{name} {conn['id']}: {code} not in {dict(codes)}"


PER_PACKET_CONFORMANCE = [
    "eno-multiple-syn", "eno-both-encodings", "eno-global-reserved", "eno-global-repeated",
    "eno-length-byte", "eno-synack-no-explicit-b", "init-ignored-nonempty",
    "pubkey-uncompressed", "init2-cipher-not-offered", "frame-reserved-bits",
    "plaintext-reserved-bits", "frame-tag-failed", "frames-after-finp"]


@needs_tshark
@pytest.mark.tshark
def test_conformance_codes_are_filterable() -> None:
    """Per-packet conformance violations carry tcpeno.conformance (and its RFC section)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for name in ("conformance-violations", "eno-edge-cases", "fallback-reasons",
                 "role-conflicts"):
        for conn in lua_view(_entry(name)).values():
            for code in conn["conformance"]:
                seen[code].add(name)
    missing = [c for c in PER_PACKET_CONFORMANCE if c not in seen]
    assert not missing, missing
    out = tshark_fields(SAMPLES / "conformance-violations.pcap",
                        SAMPLES / "conformance-violations.keys",
                        fields=["tcpeno.conformance", "tcpeno.conformance.rfc"])
    pairs = set()
    for line in out.splitlines():
        codes, rfcs = line.split("\t")
        pairs |= set(zip(codes.split(AGG), rfcs.split(AGG), strict=True)) if codes else set()
    from tcpinc_analyze.conformance import RULES

    sections = {rule.code: rule.rfc for rule in RULES}
    for code, rfc in pairs:
        assert sections[code] == rfc, code
    # a display filter on the code selects the packet
    proc = subprocess.run([TSHARK, "-n", "-2", "-X", f"lua_script:{LUA}", "-r",
                           str(SAMPLES / "conformance-violations.pcap"), "-o",
                           f"tcpcrypt.keylog_file:{SAMPLES / 'conformance-violations.keys'}",
                           "-Y", 'tcpeno.conformance == "frame-reserved-bits"',
                           "-T", "fields", "-e", "frame.number"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.split(), proc.stderr[-2000:]


def test_lua_conformance_table_matches_the_rules() -> None:
    from tcpinc_analyze.conformance import RULES

    text = LUA.read_text()
    block = text[text.index("local CONFORMANCE = {"):]
    block = block[:block.index("\n}\n")]
    table = dict(re.findall(r'\["([a-z0-9-]+)"\] = "([^"]+)"', block))
    assert table == {rule.code: rule.rfc for rule in RULES}


def test_lua_uses_only_spec_fields_and_expert_codes() -> None:
    text = LUA.read_text()
    hand = text[:text.index(luagen.BEGIN)] + text[text.index(luagen.END):]
    fields = set(re.findall(r'F\["([^"]+)"\]', hand))
    assert fields <= set(FIELDS), fields - set(FIELDS)
    codes = set(re.findall(r'(?:note|find|add_expert)\([^"\n]*?"([a-z0-9]+(?:-[a-z0-9]+)+)"', hand))
    codes |= set(re.findall(r'note_once\("[a-z]+", [^,]+, "([a-z0-9-]+)"', hand))
    assert codes and codes <= set(EXPERTS), codes - set(EXPERTS)


@needs_tshark
@pytest.mark.tshark
def test_nonce_after_init_sample_reports_its_offset_base() -> None:
    entry = _entry("nonce-after-init")
    got = lua_view(entry)
    python = py_view(entry)
    bases = {py["tcpcrypt"]["nonce_offset_base"] for py in python}
    assert "after-init" in bases
    for py in python:
        lua = got[(py["a"], py["b"])]
        if py["tcpcrypt"]["keys_from"] != "private_key":
            assert lua["nonce_offset_base"] == {"after-init"}, py["id"]
            assert lua["ok"]["ab"] + lua["ok"]["ba"] > 0


@needs_tshark
@pytest.mark.tshark
def test_resumed_connections_decrypt_with_python_session_ids() -> None:
    entry = _entry("resumption")
    got = lua_view(entry)
    resumed = [py for py in py_view(entry) if py["tcpcrypt"] and py["tcpcrypt"]["resumed"]]
    assert len(resumed) >= 2
    for py in resumed:
        lua = got[(py["a"], py["b"])]
        assert lua["session_id"] == py["tcpcrypt"]["session_id"] is not None
        assert lua["session_id"][:2] in ("a1", "a2", "a3", "a4")  # B's byte keeps its v bit
        dec = py["tcpcrypt"]["decrypted"]
        assert lua["ok"] == {d: dec[d]["ok"] for d in ("ab", "ba")}
        assert lua["failed"] == {"ab": 0, "ba": 0}


@needs_tshark
@pytest.mark.tshark
def test_traffic_keys_only_frames_after_rekey_are_undecryptable() -> None:
    entry = _entry("p521-aes256-traffic-keys")
    (py,) = py_view(entry)
    (lua,) = lua_view(entry).values()
    dec = py["tcpcrypt"]["decrypted"]
    assert dec["ba"]["undecryptable"] > 0
    assert lua["failed"] == {"ab": 0, "ba": 0}
    assert lua["ok"] == {d: dec[d]["ok"] for d in ("ab", "ba")}
    assert lua["codes"]["tcpcrypt-no-key-for-frame"] == dec["ba"]["undecryptable"]
    assert lua["codes"]["frame-tag-failed"] == 0
    assert lua["generations"]["ba"] >= {0, 1}


@needs_tshark
@pytest.mark.tshark
def test_master_key_only_decrypts_every_generation() -> None:
    entry = _entry("master-key-only")
    (py,) = py_view(entry)
    (lua,) = lua_view(entry).values()
    dec = py["tcpcrypt"]["decrypted"]
    assert py["tcpcrypt"]["keys_from"] == "master_key"
    assert sum(py["tcpcrypt"]["rekeys"].values()) > 0
    assert lua["failed"] == {"ab": 0, "ba": 0}
    assert lua["codes"]["tcpcrypt-no-key-for-frame"] == 0
    assert lua["ok"] == {d: dec[d]["ok"] for d in ("ab", "ba")} == lua["frames"]
    assert max(lua["generations"]["ab"] | lua["generations"]["ba"]) >= 1
    assert lua["session_id"] is None


@needs_tshark
@pytest.mark.tshark
def test_missing_luaossl_gives_one_clear_note(tmp_path: Path) -> None:
    env = dict(os.environ, LUA_CPATH=str(tmp_path / "?.so"), LUA_CPATH_5_2=str(tmp_path / "?.so"),
               LUA_CPATH_5_3=str(tmp_path / "?.so"), LUA_CPATH_5_4=str(tmp_path / "?.so"))
    entry = next(e for e in CATALOG if e["name"] == "x25519-chacha20")
    got = per_connection(tshark_fields(SAMPLES / entry["capture"], _keylog(entry), env=env))
    (conn,) = got.values()
    assert conn["codes"]["tcpcrypt-no-luaossl"] == 1
    assert conn["ok"] == {"ab": 0, "ba": 0} and conn["frames"] == {"ab": 1, "ba": 6}
    assert conn["status"] == "negotiated"


@needs_tshark
@pytest.mark.tshark
def test_pyshark_sees_decrypted_http() -> None:
    pytest.importorskip("pyshark")
    entry = next(e for e in CATALOG if e["name"] == "x25519-chacha20")
    # pyshark drives tshark through asyncio's child watcher, which the async (Textual)
    # tests in this process may have re-attached elsewhere: run it in a fresh process.
    script = """
import json, sys, pyshark
cap = pyshark.FileCapture(sys.argv[1], custom_parameters=["-X", "lua_script:" + sys.argv[2]],
                          override_prefs={"tcpcrypt.keylog_file": sys.argv[3]},
                          display_filter="tcpcrypt.frame.verified == 1")
out = []
for p in cap:
    out.append({"status": p.tcpeno.status,
                "method": getattr(p.http, "request_method", None) if "http" in p else None,
                "frame": int(p.tcpcrypt.get_field_value("frame_number")),
                "layers": [layer.layer_name for layer in p.layers],
                "codes": [getattr(layer, "response_code", None)
                          for layer in p.get_multiple_layers("http")]})
cap.close()
print(json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", script, str(SAMPLES / entry["capture"]),
                           str(LUA), str(_keylog(entry))], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    packets = json.loads(done.stdout)
    assert len(packets) >= 2
    first = packets[0]
    assert first["status"] == "negotiated"
    assert first["method"] == "GET"
    assert first["frame"] == 1
    # the ciphertext is not handed to HTTP; the decrypted response is
    assert first["layers"].count("http") == 1
    assert any(code == "200" for p in packets for code in p["codes"])

@needs_tshark
@pytest.mark.tshark
@pytest.mark.parametrize("entry", CATALOG, ids=[e["name"] for e in CATALOG])
def test_full_tree_of_every_sample_has_no_lua_error(entry: dict) -> None:
    """-V builds every tree item (display code included), in one pass and in two."""
    keylog = _keylog(entry)
    for extra in (["-2"], []):
        proc = subprocess.run(
            [TSHARK, "-n", *extra, "-V", "-X", f"lua_script:{LUA}", "-r",
             str(SAMPLES / entry["capture"]), "-o", f"tcpcrypt.keylog_file:{keylog or ''}"],
            capture_output=True, text=True, timeout=300)
        text = proc.stdout + proc.stderr
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "Lua Error" not in text, text[-3000:]
        assert "internal problem" not in text, "\n".join(
            line for line in text.splitlines() if "internal problem" in line)


def _mutate_packet(body: bytearray, rng: random.Random, ip: int | None) -> bytearray:
    """One packet's bytes: cut short, bits flipped, TCP option bytes replaced by ENO-ish
    ones, or 16 payload bytes scrambled."""
    roll = rng.random()
    if roll < 0.15 and body:
        return body[:rng.randrange(len(body))]
    if roll < 0.45 and body:
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(body))
            body[i] ^= 1 << rng.randrange(8)
    elif roll < 0.75 and ip is not None and len(body) > ip + 20 and body[ip] >> 4 == 4:
        tcp = ip + (body[ip] & 15) * 4
        if len(body) >= tcp + 20:
            hl = (body[tcp + 12] >> 4) * 4
            for i in range(tcp + 20, min(len(body), tcp + hl)):
                body[i] = rng.choice((rng.randrange(256), 69, 253, 254, 0x80, 0xA1, 2, 1))
    elif roll < 0.85 and len(body) > 60:
        start = rng.randrange(54, len(body))
        body[start:start + 16] = bytes(rng.randrange(256) for _ in range(16))
    return body


def _mutate_pcap(data: bytes, rng: random.Random) -> bytes:
    """Truncations, bit flips and random TCP option bytes in a classic pcap."""
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out = bytearray(data[:24])
    pos = 24
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    ip = 14 if linktype == 1 else 16 if linktype == 113 else None
    while pos + 16 <= len(data):
        ts1, ts2, incl, orig = struct.unpack(endian + "IIII", data[pos:pos + 16])
        body = _mutate_packet(bytearray(data[pos + 16:pos + 16 + incl]), rng, ip)
        pos += 16 + incl
        out += struct.pack(endian + "IIII", ts1, ts2, len(body), max(orig, len(body))) + body
    return bytes(out)


def _mutate_pcapng(data: bytes, rng: random.Random) -> bytes:
    """The packets of enhanced packet blocks mutated as in a pcap (block lengths kept
    right), a Decryption Secrets Block's key log damaged now and then, and sometimes the
    file cut in the middle of a block."""
    out = bytearray()
    pos = 0
    endian = "<"
    while pos + 12 <= len(data):
        btype, blen = struct.unpack(endian + "II", data[pos:pos + 8])
        if btype == 0x0A0D0D0A:
            endian = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            btype, blen = struct.unpack(endian + "II", data[pos:pos + 8])
        if blen < 12 or pos + blen > len(data):
            break
        block = bytearray(data[pos:pos + blen])
        if btype == 6 and blen >= 32:
            caplen = struct.unpack(endian + "I", block[20:24])[0]
            body = _mutate_packet(bytearray(block[28:28 + caplen]), rng, 14)
            padded = bytes(body) + b"\0" * (-len(body) % 4)
            options = block[28 + caplen + (-caplen % 4):blen - 4]
            new_len = 28 + len(padded) + len(options) + 4
            orig = struct.unpack(endian + "I", block[24:28])[0]
            block = (block[:4] + struct.pack(endian + "I", new_len) + block[8:20]
                     + struct.pack(endian + "II", len(body), max(len(body), orig))
                     + padded + options + struct.pack(endian + "I", new_len))
        elif btype == 0x0000000A and rng.random() < 0.5 and blen > 40:
            i = rng.randrange(16, blen - 4)
            block[i] = rng.choice((ord("z"), ord("\n"), 0, ord(" ")))
        out += block
        pos += blen
    if rng.random() < 0.3 and len(out) > 100:
        out = out[:rng.randrange(len(out) // 2, len(out))]
    return bytes(out)


@needs_tshark
@pytest.mark.tshark
@pytest.mark.parametrize("entry", CATALOG, ids=[e["name"] for e in CATALOG])
def test_fuzzed_samples_never_raise_lua_errors(tmp_path: Path, entry: dict) -> None:
    """Every sample, mutated twice (pcap and pcapng alike), read with the full tree in
    two passes and in one: no Lua error and no internal problem."""
    capture = SAMPLES / entry["capture"]
    keylog = _keylog(entry)
    seed = int(hashlib.sha256(entry["name"].encode()).hexdigest()[:8], 16)
    for round_, extra in enumerate((["-2", "-Y", "frame"], [])):
        rng = random.Random(seed + round_)
        mutate = _mutate_pcapng if capture.suffix == ".pcapng" else _mutate_pcap
        mutated = tmp_path / f"{entry['name']}-{round_}{capture.suffix}"
        mutated.write_bytes(mutate(capture.read_bytes(), rng))
        proc = subprocess.run(
            [TSHARK, "-n", *extra, "-V", "-X", f"lua_script:{LUA}", "-r", str(mutated),
             "-o", f"tcpcrypt.keylog_file:{keylog or ''}"],
            capture_output=True, text=True, timeout=300)
        text = proc.stdout + proc.stderr
        assert "Lua Error" not in text, f"{entry['name']} round {round_}: {text[-3000:]}"
        assert "internal problem" not in text, (
            f"{entry['name']} round {round_}: "
            + "\n".join(line for line in text.splitlines() if "internal problem" in line))


@needs_tshark
@pytest.mark.tshark
def test_install_into_temporary_home(tmp_path: Path) -> None:
    env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / ".config"))
    cmd = ["python3", "-m", "tcpinc_analyze.wireshark.install"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env,
                              cwd=ROOT, timeout=60)

    assert run("install").returncode == 0
    again = run("install")
    # messages go to stderr: stdout carries only data (status lines)
    assert again.returncode == 0 and "already installed" in again.stderr and not again.stdout
    folders = subprocess.run([TSHARK, "-G", "folders"], capture_output=True, text=True,
                             env=env).stdout
    personal = next(line.split(":", 1)[1].strip() for line in folders.splitlines()
                    if line.startswith("Personal Lua Plugins"))
    target = Path(personal) / "tcpinc.lua"
    assert target.read_bytes() == LUA.read_bytes()
    protocols = subprocess.run([TSHARK, "-G", "protocols"], capture_output=True, text=True,
                               env=env).stdout
    names = {line.split("\t")[2] for line in protocols.splitlines() if line.count("\t") >= 2}
    assert {"tcpeno", "tcpcrypt"} <= names
    status = run("status")
    assert "(current)" in status.stdout and "lua-luaossl:" in status.stdout
    target.write_text(target.read_text() + "-- local edit\n")
    refused = run("install")
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert run("uninstall").returncode == 1
    assert run("install", "--force").returncode == 0
    assert run("uninstall").returncode == 0 and not target.exists()
    exported = tmp_path / "copy.lua"
    assert run("export", str(exported)).returncode == 0
    assert exported.read_bytes() == LUA.read_bytes()


def test_add_subparser_registers_wireshark_command() -> None:
    parser = argparse.ArgumentParser(prog="tcpinc-analyze")
    ws_install.add_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["wireshark", "install", "--force"])
    assert args.func is ws_install.cmd_wireshark
    assert args.wireshark_action == "install" and args.force
    args = parser.parse_args(["wireshark", "export", "/tmp/x.lua"])
    assert args.path == "/tmp/x.lua"


def test_lua_field_block_is_current() -> None:
    assert luagen.main(["--check"]) == 0, "run: python -m tcpinc_analyze.wireshark.luagen"


def test_luagen_check_detects_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "tcpinc.lua"
    stale.write_text(LUA.read_text().replace('"Fallback reason"', '"Old name"'))
    assert luagen.main(["--check", "--lua", str(stale)]) == 1
    assert luagen.main(["--lua", str(stale)]) == 0
    assert stale.read_text() == LUA.read_text()


def test_generated_block_follows_the_spec_types() -> None:
    from tcpinc_analyze.fieldspec import load_spec, spec_path

    block = luagen.generate_block(load_spec(str(spec_path())))
    assert '[0x0001] = "AEAD_AES_128_GCM"' in block
    assert '[0x0010] = "AEAD_CHACHA20_POLY1305"' in block
    assert '[0x23] = "TCPCRYPT_ECDHE_Curve25519"' in block
    assert ('F["tcpcrypt.aead"] = ProtoField.uint16("tcpcrypt.aead", "AEAD", base.HEX, '
            'VALS.aead') in block
    assert ('F["tcpeno.global.z"] = ProtoField.uint8("tcpeno.global.z", "z (reserved)", '
            'base.DEC, nil, 0x1c') in block
    for gone in ("tcpeno.general", "tcpcrypt.frame.length", "tcpcrypt.init.draft_pubkey_len"):
        assert f'"{gone}"' not in block, gone


def test_field_spec_names_and_values() -> None:
    for name in ("tcpeno.tep", "tcpeno.tep.v", "tcpeno.global", "tcpeno.global.b",
                 "tcpeno.global.a", "tcpeno.global.z", "tcpeno.global.implicit",
                 "tcpeno.length_byte", "tcpeno.tep.data", "tcpeno.negotiated_tep",
                 "tcpeno.status", "tcpeno.reason", "tcpeno.roles", "tcpeno.session_id",
                 "tcpeno.conformance", "tcpeno.conformance.rfc", "tcpcrypt.init1.nonce",
                 "tcpcrypt.init1.sym_cipher", "tcpcrypt.init1.pubkey_len", "tcpcrypt.init2.pubkey",
                 "tcpcrypt.dialect", "tcpcrypt.nonce_offset_base", "tcpcrypt.resume.half",
                 "tcpcrypt.resume.nonce", "tcpcrypt.frame.control.rekey", "tcpcrypt.frame.clen",
                 "tcpcrypt.frame.generation", "tcpcrypt.frame.offset", "tcpcrypt.frame.tag",
                 "tcpcrypt.frame.verified", "tcpcrypt.plaintext.flags.finp",
                 "tcpcrypt.plaintext.flags.urgp", "tcpcrypt.plaintext.flags.fres",
                 "tcpcrypt.plaintext.data"):
        assert name in FIELDS, name
    for gone in ("tcpeno.general.b", "tcpeno.general.aa", "tcpcrypt.frame.length"):
        assert gone not in FIELDS, gone
    assert FIELDS["tcpcrypt.aead"].type == "uint16"
    assert value_name("tep", 0x23) == "TCPCRYPT_ECDHE_Curve25519"
    assert value_name("aead", 0x10) == "AEAD_CHACHA20_POLY1305"
    assert value_name("aead", 0x07).startswith("unknown")
    assert set(VALUE_NAMES["eno_reason"]) == {
        "absent", "multiple-eno-options", "malformed-eno", "synack-without-eno",
        "role-conflict", "no-common-tep", "ack-without-eno", "handshake-not-captured"}
    from tcpinc_analyze.wire import AEADS, FALLBACK_DESCRIPTIONS, TEP_NAMES

    assert {k: v for k, v in VALUE_NAMES["tep"].items()} == TEP_NAMES
    assert {k: v.name for k, v in AEADS.items()} == VALUE_NAMES["aead"]
    assert {str(k): v for k, v in FALLBACK_DESCRIPTIONS.items()} == VALUE_NAMES["eno_reason"]


def test_every_expected_finding_code_has_an_expert_definition() -> None:
    codes = set()
    for entry in CATALOG:
        expected = json.loads((SAMPLES / entry["expected"]).read_text())
        codes |= {f["code"] for c in expected["connections"] for f in c["findings"]}
    assert codes <= set(EXPERTS), codes - set(EXPERTS)


@pytest.mark.parametrize("lua", ["lua5.2", "lua5.3", "lua5.4"])
def test_lua_helpers_under_each_lua_version(lua: str, tmp_path: Path) -> None:
    """Syntax and the crypto helpers (GCM with AAD via GHASH, Poly1305) per Lua version."""
    if shutil.which(lua) is None:
        pytest.skip(f"{lua} not installed")
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    rng = random.Random(7)
    lines = []
    for aead, klen in ((1, 16), (2, 32), (16, 32)):
        for size in (1, 16, 17, 300):
            key, nonce, aad, pt = (rng.randbytes(klen), rng.randbytes(12), rng.randbytes(3),
                                   rng.randbytes(size))
            box = ChaCha20Poly1305(key) if aead == 16 else AESGCM(key)
            ct = box.encrypt(nonce, pt, aad)
            lines.append(f"{aead} {key.hex()} {nonce.hex()} {aad.hex()} {ct.hex()} {pt.hex()}")
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("\n".join(lines) + "\n")
    script = tmp_path / "run.lua"
    script.write_text(f"""
local M = dofile({json.dumps(str(LUA))})
if not M.ossl.ok then print("NOOSSL") os.exit(0) end
local good = 0
for line in io.lines({json.dumps(str(vectors))}) do
  local w = {{}}
  for x in line:gmatch("%S+") do w[#w + 1] = x end
  local body = M.fromhex(w[5])
  local pt = M.aead_open(tonumber(w[1]), M.fromhex(w[2]), M.fromhex(w[3]), M.fromhex(w[4]), body)
  assert(pt and M.tohex(pt) == w[6], "decrypt " .. line)
  local bad = body:sub(1, -2) .. string.char((body:byte(-1) + 1) % 256)
  assert(M.aead_open(tonumber(w[1]), M.fromhex(w[2]), M.fromhex(w[3]), M.fromhex(w[4]), bad) == nil)
  good = good + 1
end
print("OK " .. good)
""")
    proc = subprocess.run([lua, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    if "NOOSSL" in proc.stdout:
        pytest.skip(f"lua-luaossl not installed for {lua}")
    assert proc.stdout.strip() == f"OK {len(lines)}"


# ---------------------------------------------------------------- differential tests in plain Lua
# The ENO codec, the negotiation, Init parsing, the key schedule and the key-log reader of
# the dissector run in a plain Lua interpreter too (they sit above its Wireshark guard):
# the same inputs go through the Python reference and each Lua version.

def _random_option(rng: random.Random) -> bytes:
    """A SYN-form ENO option, mostly well-formed, sometimes not."""
    from tcpinc_analyze.eno import GlobalSuboption, TepSuboption, encode_option

    subs: list = []
    for _ in range(rng.randint(0, 4)):
        roll = rng.random()
        if roll < 0.3:
            subs.append(GlobalSuboption(rng.choice((0x00, 0x01, 0x02, 0x03, 0x05, 0x1d))))
        else:
            tep = rng.choice((0x21, 0x22, 0x23, 0x24, 0x23, 0x20, 0x30))
            if rng.random() < 0.6:
                subs.append(TepSuboption(tep))
            else:
                data = rng.randbytes(rng.choice((1, 4, 9, 12, 17, 18)))
                subs.append(TepSuboption(tep, data, True))
    if rng.random() < 0.2:
        last = rng.randbytes(rng.choice((0, 9, 14, 20)))
        subs.append(TepSuboption(rng.choice((0x21, 0x23)), last))
    encoding = "experimental" if rng.random() < 0.2 else "rfc"
    raw = encode_option(subs, encoding=encoding)
    if rng.random() < 0.08:  # a length byte followed by a bad byte, or running past the end
        contents = bytearray(raw[2:] if encoding == "rfc" else raw[4:])
        contents += bytes((0x80 | rng.randrange(4), rng.choice((0x23, 0xa3, 0x01))))
        raw = (bytes((69, len(contents) + 2)) + contents if encoding == "rfc"
               else bytes((253, len(contents) + 4)) + b"\x45\x4e" + contents)
    return raw


def _syn(rng: random.Random) -> list[bytes]:
    roll = rng.random()
    if roll < 0.1:
        return []
    if roll < 0.16:
        return [_random_option(rng), _random_option(rng)]
    return [_random_option(rng)]


def _plausible_pair(rng: random.Random) -> tuple[list[bytes], list[bytes]]:
    """Options a real pair of hosts might send: B answers with a TEP A offered, often
    resuming, sometimes with the wrong b bit or the experimental encoding."""
    from tcpinc_analyze.eno import GlobalSuboption, TepSuboption, encode_option

    encoding = "experimental" if rng.random() < 0.25 else "rfc"
    teps = rng.sample((0x21, 0x22, 0x23, 0x24), rng.randint(1, 3))
    a_subs: list = [GlobalSuboption(rng.choice((0, 2)))] if rng.random() < 0.5 else []
    a_subs += [TepSuboption(t, rng.randbytes(rng.choice((9, 12, 17))), True)
               if rng.random() < 0.3 else TepSuboption(t) for t in teps]
    pick = rng.choice(teps)
    a_data = next(s.data for s in a_subs if isinstance(s, TepSuboption) and s.tep == pick)
    b_subs: list = []
    roll = rng.random()
    if roll < 0.75:
        b_subs.append(GlobalSuboption(1))
    elif roll < 0.85:
        b_subs.append(GlobalSuboption(0))
    if a_data is not None and rng.random() < 0.7:
        b_subs.append(TepSuboption(pick, rng.randbytes(rng.choice((9, 10, 17))), True))
    else:
        b_subs.append(TepSuboption(pick))
    b_encoding = encoding if rng.random() < 0.9 else "rfc"
    return ([encode_option(a_subs, encoding=encoding)],
            [encode_option(b_subs, encoding=b_encoding)])


def _eno_vectors(rng: random.Random, n: int) -> list[tuple]:
    from tcpinc_analyze.eno import SynEno, decode_option, negotiate

    out = []
    for _ in range(n):
        first, second = _plausible_pair(rng) if rng.random() < 0.5 else (_syn(rng), _syn(rng))
        if rng.random() < 0.1:
            first, second = second, first
        ack = rng.choice((True, True, True, False, None))
        simultaneous = rng.random() < 0.2
        seen = rng.random() < 0.95

        def syn(raws: list[bytes]) -> SynEno:
            return SynEno(tuple(decode_option(r[0], r[2:]) for r in raws))

        neg = negotiate(syn(first), syn(second), ack, simultaneous=simultaneous,
                        handshake_seen=seen)
        want = " ".join(str(x) for x in (
            neg.status, neg.reason or "-", neg.tep if neg.tep is not None else "-",
            neg.tep_byte if neg.tep_byte is not None else "-", int(neg.resumed),
            int(neg.a_is_first), neg.roles))
        out.append((first, second, ack, simultaneous, seen, want))
    return out


def _run_lua(lua: str, tmp_path: Path, body: str) -> str:
    if shutil.which(lua) is None:
        pytest.skip(f"{lua} not installed")
    script = tmp_path / "run.lua"
    script.write_text(f"local M = dofile({json.dumps(str(LUA))})\n" + body)
    proc = subprocess.run([lua, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


LUA_VERSIONS = ["lua5.2", "lua5.3", "lua5.4"]


@pytest.mark.parametrize("lua", LUA_VERSIONS)
def test_lua_negotiation_matches_python(lua: str, tmp_path: Path) -> None:
    vectors = _eno_vectors(random.Random(11), 1500)
    lines = []
    for first, second, ack, simultaneous, seen, _want in vectors:
        lines.append(" ".join([",".join(r.hex() for r in first) or "-",
                               ",".join(r.hex() for r in second) or "-",
                               {True: "1", False: "0", None: "n"}[ack], str(int(simultaneous)),
                               str(int(seen))]))
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    out = _run_lua(lua, tmp_path, f"""
local function syn(field)
  local se = {{ options = {{}} }}
  if field == "-" then return se end
  for h in field:gmatch("[^,]+") do
    local raw = M.fromhex(h)
    se.options[#se.options + 1] = M.decode_eno(raw:byte(1), raw:sub(3))
  end
  return se
end
for line in io.lines({json.dumps(str(tmp_path / "in.txt"))}) do
  local w = {{}}
  for x in line:gmatch("%S+") do w[#w + 1] = x end
  local ack = nil
  if w[3] == "1" then ack = true elseif w[3] == "0" then ack = false end
  local n = M.negotiate(syn(w[1]), syn(w[2]), ack, w[4] == "1", w[5] == "1")
  local function s(v) if v == nil then return "-" end return tostring(v) end
  print(table.concat({{ n.status, s(n.reason), s(n.tep), s(n.tep_byte), n.resumed and "1" or "0",
                       n.a_is_first and "1" or "0", n.roles }}, " "))
end
""")
    got = out.splitlines()
    assert len(got) == len(vectors)
    for i, (vec, line) in enumerate(zip(vectors, got, strict=True)):
        assert line == vec[-1], f"vector {i}: {vec[:-1]}: lua {line!r} python {vec[-1]!r}"


@pytest.mark.parametrize("lua", LUA_VERSIONS)
def test_lua_suboption_findings_match_python(lua: str, tmp_path: Path) -> None:
    from tcpinc_analyze.eno import parse_suboptions

    rng = random.Random(5)
    cases = [rng.randbytes(rng.randint(0, 12)) for _ in range(400)]
    cases += [_random_option(rng)[2:] for _ in range(400)]
    (tmp_path / "in.txt").write_text("\n".join(c.hex() or "-" for c in cases) + "\n")
    out = _run_lua(lua, tmp_path, f"""
for line in io.lines({json.dumps(str(tmp_path / "in.txt"))}) do
  local subs, findings, malformed = M.parse_suboptions(line == "-" and "" or M.fromhex(line), 2)
  local codes, parts = {{}}, {{}}
  for _, f in ipairs(findings) do codes[#codes + 1] = f[1] end
  for _, s in ipairs(subs) do
    if s.kind == "global" then parts[#parts + 1] = "g" .. s.byte
    else parts[#parts + 1] = "t" .. s.tep .. (s.data and (":" .. M.tohex(s.data)) or "") end
  end
  print((malformed and "1" or "0") .. " " ..
        (#codes > 0 and table.concat(codes, ",") or "-") .. " " ..
        (#parts > 0 and table.concat(parts, ",") or "-"))
end
""")
    for case, line in zip(cases, out.splitlines(), strict=True):
        subs, findings, malformed = parse_suboptions(case, 2)
        parts = []
        for s in subs:
            if hasattr(s, "tep"):
                parts.append(f"t{s.tep}" + (f":{s.data.hex()}" if s.data is not None else ""))
            else:
                parts.append(f"g{s.byte}")
        want = (f"{int(malformed)} {','.join(f.code for f in findings) or '-'} "
                f"{','.join(parts) or '-'}")
        assert line == want, case.hex()


def _init_vectors(rng: random.Random) -> list[tuple[bytes, bool, int]]:
    from tcpinc_analyze.tcpcrypt.keyschedule import generate_keypair
    from tcpinc_analyze.tcpcrypt.messages import Init1, Init2, encode_pub

    out = []
    for tep in (0x21, 0x22, 0x23, 0x24):
        for reading in ("whole", "point"):
            for compressed in (True, False):
                if tep in (0x23, 0x24) and (reading == "point" or not compressed):
                    continue
                for ignored in (b"", rng.randbytes(5)):
                    pair = generate_keypair(tep, rng, compressed=compressed)
                    pub = encode_pub(tep, pair.public, reading)
                    ciphers = tuple(rng.sample((1, 2, 16), rng.randint(1, 3)))
                    init1 = Init1(ciphers, rng.randbytes(32), pub, ignored)
                    init2 = Init2(rng.choice(ciphers), rng.randbytes(32), pub, ignored)
                    out.append((init1.encode(), True, tep))
                    out.append((init2.encode(), False, tep))
    # the 2016 dialect: one-byte ciphers, uncompressed point behind pubkey_len
    for tep in (0x21, 0x22):
        pair = generate_keypair(tep, rng, compressed=False)
        pub = (len(pair.public) + 2).to_bytes(2, "big") + pair.public
        body = bytes((2, 1, 2)) + rng.randbytes(32) + pub
        out.append((struct.pack(">II", 0x15101A0E, 8 + len(body)) + body, True, tep))
        body = bytes((1,)) + rng.randbytes(32) + pub
        out.append((struct.pack(">II", 0x097105E0, 8 + len(body)) + body, False, tep))
    # damaged ones
    for msg, is1, tep in list(out[:12]):
        cut = msg[:rng.randrange(9, len(msg))]
        out.append((cut[:4] + struct.pack(">I", len(cut)) + cut[8:], is1, tep))
    return out


@pytest.mark.parametrize("lua", LUA_VERSIONS)
def test_lua_init_parsing_matches_python(lua: str, tmp_path: Path) -> None:
    from tcpinc_analyze.tcpcrypt.messages import infer_tep, parse_init1, parse_init2

    vectors = _init_vectors(random.Random(3))
    (tmp_path / "in.txt").write_text("\n".join(f"{m.hex()} {int(i)} {t}" for m, i, t in vectors))
    out = _run_lua(lua, tmp_path, f"""
for line in io.lines({json.dumps(str(tmp_path / "in.txt"))}) do
  local w = {{}}
  for x in line:gmatch("%S+") do w[#w + 1] = x end
  local msg, is1, tep = M.fromhex(w[1]), w[2] == "1", tonumber(w[3])
  local m = M.parse_init(msg, is1, tep)
  local codes = {{}}
  for _, f in ipairs(m.findings) do codes[#codes + 1] = f[1] end
  local inferred = M.infer_tep(msg, is1)
  if m.failed then
    print("failed " .. table.concat(codes, ",") .. " " .. tostring(inferred))
  else
    local ciphers = {{}}
    for i, c in ipairs(m.ciphers) do ciphers[i] = tostring(c) end
    print(table.concat({{ m.dialect, table.concat(ciphers, ","), M.tohex(m.nonce),
      M.tohex(m.pubkey),
      tostring(m.pub.reading), tostring(m.ign_len), #codes > 0 and table.concat(codes, ",") or "-",
      tostring(inferred) }}, " "))
  end
end
""")
    for (msg, is1, tep), line in zip(vectors, out.splitlines(), strict=True):
        parsed, findings = (parse_init1 if is1 else parse_init2)(msg, tep)
        inferred = infer_tep(msg, is1)
        if parsed is None:
            assert line.startswith("failed "), (msg.hex(), line)
            assert line.split()[1].split(",")[-1] == findings[-1].code
            continue
        ciphers = parsed.sym_ciphers if is1 else (parsed.sym_cipher,)
        want = " ".join([parsed.dialect, ",".join(map(str, ciphers)), parsed.nonce.hex(),
                         parsed.pubkey.hex(), str(parsed.pub.length_reading if parsed.pub else None)
                         .replace("None", "nil"), str(len(parsed.ignored)),
                         ",".join(f.code for f in findings) or "-", str(inferred)])
        assert line == want, msg.hex()


@pytest.mark.parametrize("lua", LUA_VERSIONS)
def test_lua_key_schedule_and_key_log_match_python(lua: str, tmp_path: Path) -> None:
    from tcpinc_analyze import wire
    from tcpinc_analyze.keylog import parse_keylog

    rng = random.Random(9)
    ss, sn, nr = rng.randbytes(32), rng.randbytes(11), rng.randbytes(12)
    mk1 = wire.next_master_key(wire.first_master_key(ss, sn))
    want = {
        "ss1": wire.next_session_secret(ss).hex(),
        "mk0": wire.first_master_key(ss, sn).hex(),
        "kab1": wire.traffic_keys(mk1, 0x0001)[0].hex(),
        "kba1": wire.traffic_keys(mk1, 0x0010)[1].hex(),
        "sid": wire.session_id(0xA3, ss, sn).hex(),
        "resume": wire.resume_identifier(ss).hex(),
        "nonce": wire.frame_nonce(nr, 0x0123456789).hex(),
    }
    keylog = "\n".join([
        "# comment", "",
        f"TCPCRYPT_SESSION_SECRET {rng.randbytes(32).hex()} {ss.hex()}",
        f"TCPCRYPT_MASTER_KEY {rng.randbytes(18).hex()} {rng.randbytes(32).hex().upper()}",
        f"  TCPCRYPT_TRAFFIC_KEYS {rng.randbytes(32).hex()} {rng.randbytes(28).hex()} "
        f"{rng.randbytes(28).hex()}\r",
        f"TCPCRYPT_TRAFFIC_KEYS {rng.randbytes(32).hex()} {rng.randbytes(28).hex()} "
        f"{rng.randbytes(44).hex()}",
        f"TCPCRYPT_SESSION_SECRET {rng.randbytes(9).hex()} {ss.hex()}",
        f"TCPCRYPT_SESSION_SECRET {rng.randbytes(32).hex()} {ss.hex()[:-1]}",
        f"TCPCRYPT_EPHEMERAL_PRIVATE {rng.randbytes(32).hex()} {rng.randbytes(32).hex()}",
        "TCPCRYPT_UNKNOWN_LABEL 00 11",
        f"TCPCRYPT_MASTER_KEY {rng.randbytes(32).hex()}",
    ]) + "\n"
    py = parse_keylog(keylog, "k")
    (tmp_path / "k.txt").write_text(keylog)
    out = _run_lua(lua, tmp_path, f"""
if not M.ossl.ok then print("NOOSSL") return end
local function h(x) return M.fromhex(x) end
local ss, sn, nr = h("{ss.hex()}"), h("{sn.hex()}"), h("{nr.hex()}")
local mk0 = M.cprf(ss, "\\3" .. sn, 32)
local mk1 = M.cprf(mk0, "\\3", 32)
print("ss1 " .. M.tohex(M.cprf(ss, "\\1", 32)))
print("mk0 " .. M.tohex(mk0))
print("kab1 " .. M.tohex(M.traffic_key(mk1, 0x0001, true)))
print("kba1 " .. M.tohex(M.traffic_key(mk1, 0x0010, false)))
print("sid " .. M.tohex(string.char(0xa3) .. M.cprf(ss, "\\2" .. sn, 32)))
print("resume " .. M.tohex(M.cprf(ss, "\\6", 18)))
print("nonce " .. M.tohex(M.frame_nonce(nr, 0x0123456789)))
local f = io.open({json.dumps(str(tmp_path / "k.txt"))}, "rb")
M.parse_keylog_text(f:read("*a"), "k")
f:close()
local K = M.KEYLOG
local function n(t) local c = 0 for _ in pairs(t) do c = c + 1 end return c end
print("counts " .. n(K.secrets) .. " " .. n(K.masters) .. " " .. n(K.traffic) .. " " ..
      n(K.privates) .. " " .. #K.errors .. " " .. K.unknown)
for _, e in ipairs(K.errors) do print("error " .. e) end
""")
    if "NOOSSL" in out:
        pytest.skip(f"lua-luaossl not installed for {lua}")
    lines = out.splitlines()
    got = dict(line.split(" ", 1) for line in lines if not line.startswith(("counts", "error")))
    assert got == want
    counts = next(line for line in lines if line.startswith("counts")).split()[1:]
    assert counts == [str(len(py.session_secrets)), str(len(py.master_keys)),
                      str(len(py.traffic_keys)), str(len(py.ephemeral_private)),
                      str(len(py.malformed)), str(py.unknown_labels)]
    errors = [line for line in lines if line.startswith("error ")]
    # the same lines are skipped, named by file and line number
    assert [e.split(":")[1] for e in errors] == [m.split(":")[1] for m in py.malformed]


# ---------------------------------------------------------------- key-log handling in tshark

def _pcap_records(data: bytes) -> tuple[bytes, list[bytes]]:
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    records, pos = [], 24
    while pos + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[pos + 8:pos + 12])[0]
        records.append(data[pos:pos + 16 + incl])
        pos += 16 + incl
    return data[:24], records


@needs_tshark
@pytest.mark.tshark
def test_malformed_key_log_lines_are_skipped_and_reported(tmp_path: Path) -> None:
    entry = _entry("x25519-chacha20")
    good = _keylog(entry).read_text()
    keylog = tmp_path / "mixed.keys"
    keylog.write_text("TCPCRYPT_SESSION_SECRET 00112233 zz\n"
                      "TCPCRYPT_TRAFFIC_KEYS " + "00" * 32 + " " + "11" * 16 + " " + "22" * 16
                      + "\n"
                      + good + "TCPCRYPT_MASTER_KEY " + "00" * 32 + "\n")
    (conn,) = per_connection(tshark_fields(SAMPLES / entry["capture"], keylog)).values()
    (py,) = py_view(entry)
    assert conn["codes"]["tcpcrypt-keylog-error"] == 3
    assert conn["session_id"] == py["tcpcrypt"]["session_id"]
    dec = py["tcpcrypt"]["decrypted"]
    assert conn["ok"] == {d: dec[d]["ok"] for d in ("ab", "ba")}


@needs_tshark
@pytest.mark.tshark
def test_key_log_is_read_again_when_it_grows(tmp_path: Path) -> None:
    """A key log written while the capture is read (a live capture, or a pipe): frames
    after the line appears are decrypted; a last line without its line break counts once
    it is a whole entry."""
    entry = _entry("x25519-chacha20")
    line = next(x for x in _keylog(entry).read_text().splitlines()
                if x.startswith("TCPCRYPT_SESSION_SECRET"))
    keylog = tmp_path / "growing.keys"
    keylog.write_text("# written by the test\nTCPCRYPT_MASTER_KEY " + "ab" * 32 + " " + "cd" * 32
                      + "\n")
    header, records = _pcap_records((SAMPLES / entry["capture"]).read_bytes())
    split = 8  # the first frame (A's request) is in packet 8
    proc = subprocess.Popen(
        [TSHARK, "-n", "-l", "-X", f"lua_script:{LUA}", "-r", "-", "-o",
         f"tcpcrypt.keylog_file:{keylog}", "-T", "fields", "-e", "frame.number",
         "-e", "tcpcrypt.frame.verified", "-e", "_ws.expert.message"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=False)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(header + b"".join(records[:split]))
    proc.stdin.flush()
    lines = []
    while True:  # wait until tshark has dissected packet 8 with the old key log
        out = proc.stdout.readline().decode()
        assert out, proc.stderr.read().decode()[-2000:] if proc.stderr else "tshark ended"
        lines.append(out)
        if out.split("\t")[0] == str(split):
            break
    with keylog.open("a") as f:
        f.write(line)  # no line break yet: a whole entry all the same
    proc.stdin.write(b"".join(records[split:]))
    proc.stdin.close()
    rest = proc.stdout.read().decode()
    proc.wait(timeout=120)
    lines += rest.splitlines()
    verified = {int(x.split("\t")[0]): x.split("\t")[1] for x in lines
                if x.split("\t")[1:2] != [""]}
    assert "Lua Error" not in "".join(lines)
    assert verified.get(split, "") in ("",), "packet 8 was dissected before the key appeared"
    later = [v for n, v in verified.items() if n > split]
    assert later, verified
    assert all(v.replace("|", ",").split(",")[0] in ("1", "True") for v in later), verified
