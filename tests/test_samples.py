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

from tcpinc_analyze.eno import decode_option
from tcpinc_analyze.keylog import parse_keylog
from tcpinc_analyze.synth.catalog import load_catalog
from tcpinc_analyze.synth.sample import generate
from tcpinc_analyze.synth.scenarios import SCENARIOS
from tcpinc_analyze.tcpcrypt.frames import FrameOpener
from tcpinc_analyze.tcpcrypt.keyschedule import (
    initial_session_secret,
    keypair_from_private,
    next_session_secret,
    session_keys,
    shared_secret,
)
from tcpinc_analyze.tcpcrypt.messages import parse_init1, parse_init2
from tcpinc_analyze.wire import eno_transcript, resumption_identifiers

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
    assert any(t["decrypted"] and t["decrypted"]["ab"]["failed"] for t in tcpcrypt)  # wrong key
    reasons = {c["eno"]["reason"] for _, c in conns}
    assert reasons >= {"no-eno-in-syn", "synack-without-eno", "no-common-tep",
                       "malformed-option", "ack-without-eno",
                       "simultaneous-open-role-conflict", "handshake-not-captured"}
    assert {c["eno"]["encoding"] for _, c in conns} >= {"rfc", "experimental"}
    codes = {f["code"] for _, c in conns for f in c["findings"]}
    assert codes >= {"tcp-gap", "tcp-retransmission", "tcp-out-of-order",
                     "tcp-overlap-conflict", "packet-truncated", "eno-malformed"}
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


class Stream:
    """First-copy-wins byte map of one direction, offsets from ISN + 1."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.data: dict[int, int] = {}

    def add(self, seq: int, payload: bytes) -> None:
        start = (seq - self.base) % (1 << 32)
        for k, byte in enumerate(payload):
            self.data.setdefault(start + k, byte)

    def get(self, lo: int, hi: int) -> bytes | None:
        if all(k in self.data for k in range(lo, hi)):
            return bytes(self.data[k] for k in range(lo, hi))
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


def _keys_for(conn: dict, tc: dict, a: str, log, parents: dict) -> object:
    rows = conn["rows"]
    ab = [r for r in rows if r["src"] == a]
    ba = [r for r in rows if r["src"] != a]
    syn_a = next((r for r in ab if r["flags"] & 0x02), None)
    syn_b = next((r for r in ba if r["flags"] & 0x02), None)
    base_a = syn_a["seq"] + 1 if syn_a else min(r["seq"] for r in ab if r["payload"])
    base_b = syn_b["seq"] + 1 if syn_b else min(r["seq"] for r in ba if r["payload"])
    streams = {"ab": Stream(base_a), "ba": Stream(base_b)}
    for r in rows:
        if r["payload"]:
            streams["ab" if r["src"] == a else "ba"].add(r["seq"], r["payload"])
    if tc["resumed"]:
        # Resumption: A's SYN carries its 9-byte id, derived from the parent's secret.
        option = decode_option(*(lambda o: (o[0], o[2:]))(eno_in(syn_a["options"])))
        rid = next(t.data for t in option.teps if t.data)
        parent_ss = parents[rid]
        ss = next_session_secret(parent_ss)
        assert resumption_identifiers(ss)[0] == rid
        return session_keys(ss, option.teps[0].tep, tc["aead"]), streams, {"ab": 0, "ba": 0}
    init_len = {"ab": tc["init1"]["length"], "ba": tc["init2"]["length"]}
    init1_bytes = streams["ab"].get(0, init_len["ab"])
    init2_bytes = streams["ba"].get(0, init_len["ba"])
    n_a = init1_bytes[9 + init1_bytes[8]:9 + init1_bytes[8] + 32]
    if n_a in log.session_secrets:
        tep_byte = conn["tep"]
        return session_keys(log.session_secrets[n_a], tep_byte, tc["aead"]), streams, init_len
    tep_byte = conn["tep"]
    init1, _ = parse_init1(init1_bytes, tep_byte)
    init2, _ = parse_init2(init2_bytes, tep_byte)
    for pub, peer in ((init1.pubkey, init2.pubkey), (init2.pubkey, init1.pubkey)):
        if pub in log.ephemeral_private:
            priv = log.ephemeral_private[pub]
            assert keypair_from_private(tep_byte, priv).public == pub
            es = shared_secret(tep_byte, priv, peer)
            opt_a = eno_in(syn_a["options"])
            opt_b = eno_in(syn_b["options"])
            rfc = [bytes([69, len(o) - (2 if o[0] == 69 else 4) + 2])
                   + (o[2:] if o[0] == 69 else o[4:]) for o in (opt_a, opt_b)]
            ss = initial_session_secret(init1.nonce, eno_transcript(*rfc), init1_bytes,
                                        init2_bytes, es)
            return session_keys(ss, tep_byte, tc["aead"]), streams, init_len
    if n_a in log.traffic_keys:
        k_ab, k_ba = log.traffic_keys[n_a]
        return (k_ab, k_ba), streams, init_len
    raise AssertionError("no usable key")


def decrypt_direction(stream: Stream, start: int, aead: int, key: bytes,
                      records: list) -> tuple[int, str]:
    """Decrypt the frames the generator says it sent; count wholly captured ones."""
    opener = FrameOpener(aead, key)
    h = hashlib.sha256()
    ok = 0
    for rec in records:
        frame = stream.get(rec.stream_offset, rec.stream_offset + rec.size)
        if frame is None:
            if rec.rekey:
                opener._rekey()
            continue
        assert (frame[0] & 1) == rec.rekey
        plain = opener.open(frame[0], frame[3:], rec.stream_offset - start)
        if plain is None:
            continue
        assert plain.data == rec.data
        h.update(plain.data)
        ok += 1
    return ok, h.hexdigest()


@needs_tshark
@pytest.mark.parametrize("entry", SYNTHETIC, ids=[e["name"] for e in SYNTHETIC])
def test_capture_holds_what_expected_claims(entry: dict) -> None:
    """tshark reads every packet with good checksums; ENO bytes and frames are there;
    decrypting with the key log and the spec's key schedule gives the expected hashes."""
    exp = expected(entry)
    path = SAMPLES / entry["capture"]
    rows = tshark_packets(path)
    assert max(r["number"] for r in rows) == exp["capture"]["packets"]
    for r in rows:
        assert r["checksum"] == ("2" if r["truncated"] else "1"), r
    conns = read_connections(path)
    log = parse_keylog((SAMPLES / entry["keylog"]).read_text(), entry["keylog"])
    sample = generate(SCENARIOS[entry["name"]], entry["seed"])
    built = sorted(sample.connections, key=lambda b: b.packets[0].ts_ns)
    by_endpoints = {(b.truth["a"], b.truth["b"]): b for b in built}
    parents: dict[bytes, bytes] = {}
    for truth in exp["connections"]:
        a, b = truth["a"], truth["b"]
        conn = conns.get((a, b)) or conns.get((b, a))
        assert conn is not None, f"connection {a} -> {b} not in capture"
        conn["tep"] = truth["eno"]["negotiated_tep"] or 0x23
        syn_a = next((r for r in conn["rows"] if r["src"] == a and r["flags"] & 0x02), None)
        if truth["eno"]["status"] == "absent":
            assert syn_a is not None and eno_in(syn_a["options"]) is None
        if truth["eno"]["status"] == "negotiated":
            assert eno_in(syn_a["options"]) is not None
        tc = truth["tcpcrypt"]
        built_conn = by_endpoints[(a, b)]
        if not tc or not tc["decrypted"] or tc["decrypted"]["ab"]["failed"]:
            continue
        keys, streams, starts = _keys_for(conn, tc, a, log, parents)
        if isinstance(keys, tuple):
            k_ab, k_ba = keys
        else:
            k_ab, k_ba = keys.k_ab, keys.k_ba
            # A later connection may resume this one: remember what the log gave us.
            parents[keys.resume_ids[0]] = keys.ss
            if tc["session_id"]:
                assert keys.session_id.hex() == tc["session_id"]
        for d, key in (("ab", k_ab), ("ba", k_ba)):
            ok, digest = decrypt_direction(streams[d], starts[d], tc["aead"], key,
                                           built_conn.frames[d])
            assert ok == tc["decrypted"][d]["ok"], (d, ok)
            assert digest == tc["decrypted"][d]["sha256"]
