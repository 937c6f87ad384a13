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
from tcpinc_analyze.keylog import KeyLog, load_keylogs
from tcpinc_analyze.fieldspec import EXPERTS, FIELDS, VALUE_NAMES, value_name
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
    "_ws.expert.message",
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
        "undecryptable": {"ab": 0, "ba": 0}})
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


def _embedded_keylog(entry: dict) -> bool:
    """pcapng samples whose key log travels in a Decryption Secrets Block: tshark does
    not hand a DSB of type TCPC to Lua, so the plugin only sees the key-log file."""
    return entry["capture"].endswith(".pcapng") and not entry.get("keylog")


@needs_tshark
@pytest.mark.tshark
@pytest.mark.parametrize("entry", CATALOG, ids=[e["name"] for e in CATALOG])
def test_sample_parity(entry: dict) -> None:
    """ENO outcome, roles, TEP, encoding, frames, rekeys, session ID and decrypted data per
    direction agree between tshark with the plugin and the Python analyzer."""
    expected = json.loads((SAMPLES / entry["expected"]).read_text())
    python = py_view(entry)
    got = lua_view(entry)
    assert len(python) == len(expected["connections"])
    assert len(got) == len(python), f"{entry['name']}: {sorted(got)}"
    for exp, py in zip(expected["connections"], python, strict=True):
        where = f"{entry['name']} connection {py['id']}"
        assert (py["a"], py["b"]) == (exp["a"], exp["b"]), f"{where}: analyzer roles"
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
        assert lua["frames"] == tc["frames"], f"{where}: frames"
        assert lua["rekeys"] == tc["rekeys"], f"{where}: rekeys"
        decrypted = tc.get("decrypted")
        if tc.get("keys_from") == "private_key":
            # ECDH is not available in Lua: one clear note instead of decryption
            assert lua["codes"]["tcpcrypt-keylog-needs-ecdh"] >= 1, where
            assert lua["session_id"] is None and lua["ok"] == {"ab": 0, "ba": 0}, where
            continue
        if _embedded_keylog(entry) and decrypted:
            assert lua["ok"] == {"ab": 0, "ba": 0}, where
            continue
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


LUA_FINDINGS = ["wrong-key", "gap", "rst-no-fin-frame", "fallback-reasons",
                "retransmission-reorder", "tcpcryptd-2016-http-get", "snaplen",
                "conformance-violations", "eno-edge-cases", "role-conflicts",
                "p256-aes128-ignored", "fallback-ack-stripped", "fallback-synack-stripped"]
LUA_CANNOT = {"pubkey-invalid": "point validation needs curve arithmetic (Python does it)"}


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

def _mutate_pcap(data: bytes, rng: random.Random) -> bytes:
    """Truncations, bit flips and random TCP option bytes in a classic pcap."""
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out = bytearray(data[:24])
    pos = 24
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    while pos + 16 <= len(data):
        ts1, ts2, incl, orig = struct.unpack(endian + "IIII", data[pos:pos + 16])
        body = bytearray(data[pos + 16:pos + 16 + incl])
        pos += 16 + incl
        roll = rng.random()
        ip = 14 if linktype == 1 else 16 if linktype == 113 else None
        if roll < 0.15 and body:
            body = body[:rng.randrange(len(body))]
        elif roll < 0.45 and body:
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(body))
                body[i] ^= 1 << rng.randrange(8)
        elif roll < 0.75 and ip is not None and len(body) > ip + 20 and body[ip] >> 4 == 4:
            tcp = ip + (body[ip] & 15) * 4
            if len(body) >= tcp + 20:
                hl = (body[tcp + 12] >> 4) * 4
                end = min(len(body), tcp + hl)
                for i in range(tcp + 20, end):
                    body[i] = rng.choice((rng.randrange(256), 69, 253, 254, 0x80, 0xA1, 2, 1))
        elif roll < 0.85 and len(body) > 60:
            start = rng.randrange(54, len(body))
            body[start:start + 16] = bytes(rng.randrange(256) for _ in range(16))
        out += struct.pack(endian + "IIII", ts1, ts2, len(body), max(orig, len(body))) + body
    return bytes(out)


FUZZ_SAMPLES = ["x25519-chacha20", "experimental-encoding", "fallback-reasons", "resumption",
                "tcpcryptd-2016-http-get", "rekey-both-directions", "gap", "simultaneous-open"]


@needs_tshark
@pytest.mark.tshark
@pytest.mark.parametrize("seed", range(3))
def test_fuzzed_samples_never_raise_lua_errors(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    for name in FUZZ_SAMPLES:
        entry = next(e for e in CATALOG if e["name"] == name)
        capture = SAMPLES / entry["capture"]
        mutated = tmp_path / f"{name}-{seed}.pcap"
        mutated.write_bytes(_mutate_pcap(capture.read_bytes(), rng))
        keylog = _keylog(entry)
        for extra in (["-2", "-Y", "frame"], []):
            proc = subprocess.run(
                [TSHARK, "-n", *extra, "-V", "-X", f"lua_script:{LUA}", "-r", str(mutated),
                 "-o", f"tcpcrypt.keylog_file:{keylog or ''}"],
                capture_output=True, text=True, timeout=120)
            text = proc.stdout + proc.stderr
            assert "Lua Error" not in text, f"{name} seed {seed}: {text[-3000:]}"
            assert "internal problem" not in text, (
                f"{name} seed {seed}: "
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
    assert again.returncode == 0 and "already installed" in again.stdout
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
    assert refused.returncode == 1 and "--force" in refused.stdout
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
