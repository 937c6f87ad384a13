"""The samples/ catalog: regeneration, coverage, and that each capture really holds
what its expected-results file claims (read back with tshark, an independent parser)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from tcpinc_analyze.synth.catalog import load_catalog
from tcpinc_analyze.synth.sample import generate
from tcpinc_analyze.synth.scenarios import SCENARIOS

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
CATALOG = load_catalog(SAMPLES)
SYNTHETIC = [e for e in CATALOG if e["origin"] == "synthetic"]
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def expected(entry: dict) -> dict:
    return json.loads((SAMPLES / entry["expected"]).read_text())


@pytest.mark.parametrize("entry", SYNTHETIC, ids=[e["name"] for e in SYNTHETIC])
def test_synthetic_sample_regenerates_byte_identically(entry: dict) -> None:
    sample = generate(SCENARIOS[entry["name"]], entry["seed"])
    assert sample.capture == (SAMPLES / entry["capture"]).read_bytes()
    assert sample.keylog == (SAMPLES / entry["keylog"]).read_text()
    assert sample.expected_json() == (SAMPLES / entry["expected"]).read_text()
    assert hashlib.sha256(sample.capture).hexdigest() == entry["sha256"]


def test_other_seed_gives_other_bytes() -> None:
    scenario = SCENARIOS["x25519-chacha20"]
    assert generate(scenario, 5).capture != generate(scenario, 6).capture
    assert generate(scenario, 5).capture == generate(scenario, 5).capture


def test_catalog_files_exist_and_stay_small() -> None:
    total = 0
    for entry in CATALOG:
        for key in ("capture", "expected", "keylog"):
            if entry[key]:
                path = SAMPLES / entry[key]
                assert path.exists(), f"{entry['name']}: {path.name} missing"
                total += path.stat().st_size
        if entry["sha256"]:
            assert hashlib.sha256((SAMPLES / entry["capture"]).read_bytes()).hexdigest() \
                == entry["sha256"]
    assert len(CATALOG) >= 15
    assert total < 10 * 1024 * 1024


def test_catalog_covers_what_the_issue_asks_for() -> None:
    conns = [(e, c) for e in CATALOG for c in expected(e)["connections"]]
    tcpcrypt = [c["tcpcrypt"] for _, c in conns if c["tcpcrypt"]]
    assert {c["eno"]["negotiated_tep"] for _, c in conns} >= {0x21, 0x22, 0x23, 0x24}
    assert {t["aead"] for t in tcpcrypt} >= {1, 2, 16}
    assert any(t["rekeys"]["ab"] and t["rekeys"]["ba"] for t in tcpcrypt)
    assert any(t["resumed"] and t["keys_from"] == "resumption" for t in tcpcrypt)
    assert any(t["keys_from"] == "private_key" for t in tcpcrypt)
    assert any(t["keys_from"] == "traffic_keys" for t in tcpcrypt)
    assert any(t["keys_from"] == "master_key" for t in tcpcrypt)
    assert any(t["decrypted"] and t["decrypted"]["ab"]["failed"] for t in tcpcrypt)  # wrong key
    assert any(t["decrypted"] and t["decrypted"]["ba"]["undecryptable"] for t in tcpcrypt)
    assert {t.get("nonce_offset_base") for t in tcpcrypt} >= {"tcp-stream", "after-init"}
    reasons = {c["eno"]["reason"] for _, c in conns}
    assert reasons >= {"absent", "multiple-eno-options", "malformed-eno",
                       "synack-without-eno", "role-conflict", "no-common-tep",
                       "ack-without-eno", "handshake-not-captured"}
    assert {c["eno"]["encoding"] for _, c in conns} >= {"rfc", "experimental"}
    codes = {f["code"] for _, c in conns for f in c["findings"]}
    assert codes >= {"tcp-gap", "tcp-retransmission", "tcp-out-of-order",
                     "retransmission-conflict", "packet-truncated", "eno-malformed"}
    from tcpinc_analyze.conformance import RULE_CODES
    conformance = {f["code"] for _, c in conns for f in c["findings"] if f.get("conformance")}
    assert conformance == RULE_CODES, sorted(RULE_CODES - conformance)
    linktypes = {lt for e in CATALOG for lt in expected(e)["capture"]["linktypes"]}
    assert linktypes >= {0, 1, 101, 113, 276}
    assert any(expected(e)["capture"]["format"] == "pcapng" for e in CATALOG)
    assert any(c["a"].startswith("[") for _, c in conns)
    assert max(len(expected(e)["connections"]) for e in CATALOG) >= 50
    assert sum(e["origin"] == "recorded" for e in CATALOG) >= 2


# ----------------------------------------------------------------- independent read-back

FIELDS = ["frame.number", "tcp.stream", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst",
          "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.flags", "frame.cap_len",
          "frame.len", "tcp.options", "tcp.payload", "tcp.checksum.status"]


def tshark_packets(path: Path) -> list[dict]:
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-o", "tcp.check_checksum:TRUE",
         "-o", "tcp.desegment_tcp_streams:FALSE", "-o", "tcp.analyze_sequence_numbers:FALSE",
         "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f",
         *[x for f in FIELDS for x in ("-e", f)]],
        capture_output=True, text=True, check=True, timeout=120).stdout
    rows = []
    for line in out.splitlines():
        values = dict(zip(FIELDS, line.split("\t"), strict=False))
        if not values.get("tcp.stream"):
            continue
        src = values["ip.src"] or f"[{values['ipv6.src']}]"
        dst = values["ip.dst"] or f"[{values['ipv6.dst']}]"
        rows.append({
            "number": int(values["frame.number"]),
            "stream": int(values["tcp.stream"]),
            "src": f"{src}:{values['tcp.srcport']}", "dst": f"{dst}:{values['tcp.dstport']}",
            "seq": int(values["tcp.seq_raw"]), "flags": int(values["tcp.flags"], 16),
            "truncated": int(values["frame.cap_len"]) < int(values["frame.len"]),
            "options": bytes.fromhex(values["tcp.options"].replace(":", "")),
            "payload": bytes.fromhex(values["tcp.payload"].replace(":", "")),
            "checksum": values["tcp.checksum.status"],
        })
    return rows


def eno_in(options: bytes) -> bytes | None:
    """The first ENO option in raw TCP option bytes (independent minimal walker)."""
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            return None
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(options) or options[i + 1] < 2:
            return None
        length = options[i + 1]
        if kind == 69 or (kind in (253, 254) and options[i + 2:i + 4] == b"EN"):
            return options[i:i + length]
        i += length
    return None


def read_connections(path: Path) -> dict[tuple[str, str], dict]:
    by_stream: dict[int, list[dict]] = defaultdict(list)
    for row in tshark_packets(path):
        by_stream[row["stream"]].append(row)
    conns = {}
    for rows in by_stream.values():
        syn = next((r for r in rows if r["flags"] & 0x12 == 0x02), None)
        first = syn or rows[0]
        conns[(first["src"], first["dst"])] = {"rows": rows}
    return conns


@needs_tshark
@pytest.mark.parametrize("entry", SYNTHETIC, ids=[e["name"] for e in SYNTHETIC])
def test_capture_holds_what_expected_claims(entry: dict) -> None:
    """tshark reads every packet with good checksums, and the ENO options are where the
    expected file says (decryption with independent code: test_independent_readback)."""
    exp = expected(entry)
    path = SAMPLES / entry["capture"]
    rows = tshark_packets(path)
    assert max(r["number"] for r in rows) == exp["capture"]["packets"]
    for r in rows:
        assert r["checksum"] == ("2" if r["truncated"] else "1"), r
    conns = read_connections(path)
    for truth in exp["connections"]:
        a, b = truth["a"], truth["b"]
        conn = conns.get((a, b)) or conns.get((b, a))
        assert conn is not None, f"connection {a} -> {b} not in capture"
        syn_a = next((r for r in conn["rows"] if r["src"] == a and r["flags"] & 0x02), None)
        syn_b = next((r for r in conn["rows"] if r["src"] == b and r["flags"] & 0x02), None)
        if truth["eno"]["status"] == "absent":
            assert syn_a is not None and eno_in(syn_a["options"]) is None
        if truth["eno"]["status"] == "negotiated":
            assert eno_in(syn_a["options"]) is not None
            option_b = eno_in(syn_b["options"])
            assert option_b is not None
            if truth["eno"]["encoding"] == "rfc":
                # the passive role bit b = 1 in B's explicit global suboption
                assert option_b[2] & 0x81 == 0x01
