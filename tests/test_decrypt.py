"""Decryption and verification with key logs: every sample against its expected results,
the commands (decrypt, verify, --follow, inject/extract-secrets) and key-log handling."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import pytest
from expected_check import assert_findings_exact

from tcpinc_analyze.analysis.run import analyze_file
from tcpinc_analyze.cli import main
from tcpinc_analyze.decryption import DecryptionContext
from tcpinc_analyze.keylog import KeyLogError, load_keylogs
from tcpinc_analyze.synth.catalog import load_catalog

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
CATALOG = load_catalog(SAMPLES)
WITH_KEYS = [e for e in CATALOG if e["keylog"]]


def expected(entry: dict) -> dict:
    return json.loads((SAMPLES / entry["expected"]).read_text())


def decrypt(capture: Path, *keylogs: Path) -> list[dict]:
    ctx = DecryptionContext(load_keylogs([str(k) for k in keylogs], use_env=False).log)
    return [r.to_json() for r in analyze_file(str(capture), decryption=ctx).reports]


@pytest.mark.parametrize("entry", WITH_KEYS, ids=[e["name"] for e in WITH_KEYS])
def test_sample_decrypts_as_expected(entry: dict) -> None:
    exp = expected(entry)
    got = decrypt(SAMPLES / entry["capture"], SAMPLES / entry["keylog"])
    assert len(got) == len(exp["connections"])
    for g, e in zip(got, exp["connections"], strict=True):
        et, gt = e["tcpcrypt"], g["tcpcrypt"]
        if et is None:
            assert gt is None
            continue
        where = f"{entry['name']} #{e['id']}"
        assert gt["keys_from"] == et["keys_from"], where
        assert gt["session_id"] == et["session_id"], where
        assert gt["resumes"] == et["resumes"], where
        assert gt["aead"] == et["aead"], where
        if et["decrypted"] is None:
            assert gt["decrypted"] is None, where
            continue
        for d in ("ab", "ba"):
            ge, ee = gt["decrypted"][d], et["decrypted"][d]
            assert (ge["ok"], ge["failed"], ge["sha256"]) == (ee["ok"], ee["failed"],
                                                             ee["sha256"]), f"{where} {d}"
            assert (ge["lost"], ge["undecryptable"]) == (ee["lost"], ee["undecryptable"]), \
                f"{where} {d}"
        for d in ("ab", "ba"):
            assert (gt["frames"][d], gt["rekeys"][d]) == (et["frames"][d], et["rekeys"][d]), \
                f"{where} {d}: frames and rekeys with keys"
        assert_findings_exact(where, e["findings"], g["findings"])
        want = Counter(f["code"] for f in e["findings"] if f.get("conformance"))
        got_rules = Counter(x["code"] for x in g["findings"] if x.get("rfc"))
        assert got_rules == want, f"{where}: conformance findings"


def test_gap_sample_resynchronises_by_authentication() -> None:
    got = decrypt(SAMPLES / "gap.pcap", SAMPLES / "gap.keys")[0]
    codes = [f["code"] for f in got["findings"]]
    assert "tcp-gap" in codes and "tcpcrypt-resync" in codes
    assert got["tcpcrypt"]["decrypted"]["ba"]["failed"] == 0


def test_wrong_key_fails_verification_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(SAMPLES / "wrong-key.pcap"), "--keylog",
                 str(SAMPLES / "wrong-key.keys")]) == 1
    out = capsys.readouterr().out
    assert "FAILED 3 frames" in out and "first at packet 8" in out
    got = decrypt(SAMPLES / "wrong-key.pcap", SAMPLES / "wrong-key.keys")[0]
    assert got["tcpcrypt"]["session_id"] is None
    assert any(f["code"] == "tcpcrypt-wrong-key" for f in got["findings"])


def test_verify_passes_and_fails_without_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(SAMPLES / "resumption.pcap"), "--keylog",
                 str(SAMPLES / "resumption.keys")]) == 0
    out = capsys.readouterr().out
    assert out.count("VERIFIED") == 4 and out.count("resumes #0") == 2
    assert main(["verify", str(SAMPLES / "resumption.pcap")]) == 1
    assert "NOT DECRYPTED" in capsys.readouterr().out


def test_decrypt_writes_files_and_index(tmp_path: Path) -> None:
    out = tmp_path / "plain"
    assert main(["decrypt", str(SAMPLES / "busy-mix.pcap"), "--keylog",
                 str(SAMPLES / "busy-mix.keys"), "-o", str(out)]) == 0
    index = json.loads((out / "index.json").read_text())
    exp = {c["id"]: c for c in json.loads((SAMPLES / "busy-mix.expected.json").read_text())
           ["connections"]}
    files = [f for f in index["files"] if f["file"]]
    assert files
    for f in files:
        data = (out / f["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
        assert f["sha256"] == exp[f["id"]]["tcpcrypt"]["decrypted"][f["direction"]]["sha256"]


def test_wrong_key_writes_no_plaintext(tmp_path: Path) -> None:
    out = tmp_path / "plain"
    assert main(["decrypt", str(SAMPLES / "wrong-key.pcap"), "--keylog",
                 str(SAMPLES / "wrong-key.keys"), "-o", str(out)]) == 1  # nothing decrypted
    assert sorted(p.name for p in out.iterdir()) == ["index.json"]


def test_follow_interleaves_and_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(SAMPLES / "x25519-chacha20.pcap"), "--keylog",
                 str(SAMPLES / "x25519-chacha20.keys"), "--follow", "0"]) == 0
    out = capsys.readouterr().out
    assert out.index("GET /index.txt") < out.index("HTTP/1.1 200 OK")
    assert "\\r" in out  # CR escaped
    # without a key: nothing to show (3), which is not a verification failure (1)
    assert main(["analyze", str(SAMPLES / "x25519-chacha20.pcap"), "--follow", "0"]) == 3


def test_secrets_only_with_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    keys = (SAMPLES / "x25519-chacha20.keys").read_text().split()
    ss = keys[keys.index("TCPCRYPT_SESSION_SECRET") + 2]
    args = ["analyze", str(SAMPLES / "x25519-chacha20.pcap"), "--format", "json",
            "--keylog", str(SAMPLES / "x25519-chacha20.keys")]
    assert main(args) == 0
    assert ss not in capsys.readouterr().out
    assert main([*args, "--show-secrets"]) == 0
    shown = json.loads(capsys.readouterr().out)[0]
    assert shown["secrets"]["ss"] == ss


def test_embedded_key_log_is_used() -> None:
    got = decrypt(SAMPLES / "pcapng-multi-interface.pcapng")
    assert all(c["tcpcrypt"]["decrypted"]["ab"]["ok"] for c in got)


def test_inject_then_extract_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    out = tmp_path / "with-keys.pcapng"
    keys = SAMPLES / "rekey-both-directions.keys"
    assert main(["inject-secrets", str(SAMPLES / "rekey-both-directions.pcap"), "--keylog",
                 str(keys), "-o", str(out)]) == 0
    capsys.readouterr()
    got = decrypt(out)[0]
    exp = expected({"expected": "rekey-both-directions.expected.json"})["connections"][0]
    assert got["tcpcrypt"]["decrypted"]["ba"]["sha256"] == \
        exp["tcpcrypt"]["decrypted"]["ba"]["sha256"]
    entries = [line for line in keys.read_text().splitlines() if not line.startswith("#")]
    assert main(["extract-secrets", str(out), "--show-secrets"]) == 0
    assert capsys.readouterr().out.splitlines() == entries
    assert main(["extract-secrets", str(SAMPLES / "gap.pcap")]) == 3  # nothing embedded


# ------------------------------------------------------------------ key-log handling

def test_malformed_key_log_line_is_a_warning(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed line names file and line on stderr; the good lines still decrypt."""
    bad = tmp_path / "bad.keys"
    bad.write_text("# comment\r\nTCPCRYPT_SESSION_SECRET 00zz 11\r\n"
                   + (SAMPLES / "gap.keys").read_text())
    assert main(["verify", str(SAMPLES / "gap.pcap"), "--keylog", str(bad)]) == 0
    captured = capsys.readouterr()
    assert f"warning: {bad}:2: TCPCRYPT_SESSION_SECRET field 2 (id)" in captured.err
    assert "VERIFIED" in captured.out
    assert main(["verify", str(SAMPLES / "gap.pcap"), "--keylog",
                 str(tmp_path / "missing.keys")]) == 2


def test_directory_glob_env_and_permissions(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    src = (SAMPLES / "gap.keys").read_text()
    d = tmp_path / "keys"
    d.mkdir()
    (d / "a.keys").write_text(src)
    (d / "b.keys").write_text(src + "SOME_FUTURE_LABEL 00 11\n")
    (d / "capture.pcap").write_bytes(b"\xd4\xc3\xb2\xa1")  # ignored in a directory
    os.chmod(d / "a.keys", 0o600)
    os.chmod(d / "b.keys", 0o644)
    loaded = load_keylogs([str(d)], use_env=False)
    assert len(loaded.files) == 2 and loaded.log.duplicates == 1
    assert loaded.log.unknown_labels == 1
    assert any("b.keys" in w and "readable by other users" in w for w in loaded.warnings)
    assert not any("a.keys" in w for w in loaded.warnings)
    assert len(load_keylogs([str(d / "*.keys")], use_env=False).files) == 2
    monkeypatch.setenv("TCPCRYPT_KEYLOGFILE", str(d / "a.keys"))
    assert load_keylogs([]).files == [str(d / "a.keys")]
    with pytest.raises(KeyLogError, match="no key-log file matches"):
        load_keylogs([str(d / "*.nothing")], use_env=False)


def test_traffic_key_of_wrong_length_is_reported(tmp_path: Path) -> None:
    text = (SAMPLES / "p521-aes256-traffic-keys.keys").read_text()
    label, ident, k_ab, k_ba = next(line for line in text.splitlines()
                                    if line.startswith("TCPCRYPT_TRAFFIC")).split()
    short = tmp_path / "short.keys"
    # AES-128-GCM-sized (28-byte) keys for an AES-256-GCM session
    short.write_text(f"{label} {ident} {k_ab[:56]} {k_ba[:56]}\n")
    got = decrypt(SAMPLES / "p521-aes256-traffic-keys.pcap", short)[0]
    assert got["tcpcrypt"]["decrypted"] is None
    assert any(f["code"] == "keylog-wrong-key-length" for f in got["findings"])


@pytest.mark.skipif(__import__("shutil").which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("name", ["busy-mix", "rekey-both-directions", "seq-wrap"])
def test_pcap_out_shows_the_application_protocol_in_tshark(tmp_path: Path, name: str) -> None:
    import subprocess

    out = tmp_path / "plain.pcap"
    capture = next(SAMPLES.glob(f"{name}.pcap*"))
    assert main(["decrypt", str(capture), "--keylog", str(SAMPLES / f"{name}.keys"),
                 "--pcap-out", str(out)]) == 0
    fields = subprocess.run(
        ["tshark", "-n", "-r", str(out), "-o", "tcp.check_checksum:TRUE", "-T", "fields",
         "-e", "tcp.checksum.status", "-e", "http.request.method", "-e", "http.response.code"],
        capture_output=True, text=True, check=True).stdout.splitlines()
    rows = [line.split("\t") for line in fields]
    assert all(r[0] == "1" for r in rows)  # every rewritten checksum is good
    exp = json.loads((SAMPLES / f"{name}.expected.json").read_text())["connections"]
    requests = sum(1 for r in rows if r[1] == "GET")
    responses = sum(1 for r in rows if r[2])
    assert requests == len(exp) and responses >= len(exp)
    # The ciphertext is gone: no Init1 magic left in the rewritten capture.
    assert bytes.fromhex("15101a0e") not in out.read_bytes()


def test_resumed_session_with_its_own_secret_finds_its_aead(tmp_path: Path) -> None:
    """Only a resumed connection's secret is logged, under its 18-byte resume[i]: its AEAD
    is not on the wire, so it is found by authenticating the first frame; the chain then
    continues to the connection that resumes with ss[i+1]."""
    from tcpinc_analyze.synth.sample import generate
    from tcpinc_analyze.synth.scenarios import SCENARIOS
    from tcpinc_analyze.tcpcrypt.endpoint import resumption

    sample = generate(SCENARIOS["resumption"])
    ss0 = sample.connections[0].keys.ss
    first = resumption(ss0, 1, b"", b"")
    log = tmp_path / "child.keys"
    log.write_text(f"TCPCRYPT_SESSION_SECRET {first.resume.hex()} {first.ss.hex()}\n")
    got = decrypt(SAMPLES / "resumption.pcap", log)
    exp = expected({"expected": "resumption.expected.json"})["connections"]
    assert got[0]["tcpcrypt"]["decrypted"] is None
    assert got[1]["tcpcrypt"]["keys_from"] == "session_secret"
    assert got[1]["tcpcrypt"]["aead"] == 0x0010 and got[1]["tcpcrypt"]["aead_probed"]
    assert got[1]["tcpcrypt"]["session_id"] == exp[1]["tcpcrypt"]["session_id"]
    assert got[2]["tcpcrypt"]["keys_from"] == "resumption"
    assert got[2]["tcpcrypt"]["resumes"] == 1
    for d in ("ab", "ba"):
        assert got[2]["tcpcrypt"]["decrypted"][d]["sha256"] == \
            exp[2]["tcpcrypt"]["decrypted"][d]["sha256"]


def test_resumption_chain_depth_is_bounded() -> None:
    """--resume-depth bounds how far down ss[0] -> ss[i] an identifier is looked for: at
    depth 0 no resumed connection decrypts; at depth 1 ss[1] is reachable from ss[0] but
    ss[2] only through a connection that used ss[1]."""
    from tcpinc_analyze.tcpcrypt.endpoint import resumption

    log = load_keylogs([str(SAMPLES / "resumption.keys")], use_env=False).log
    none = [r.to_json() for r in analyze_file(
        str(SAMPLES / "resumption.pcap"),
        decryption=DecryptionContext(log, resume_depth=0)).reports]
    assert none[1]["tcpcrypt"]["decrypted"] is None
    assert none[2]["tcpcrypt"]["decrypted"] is None
    ss0 = next(iter(log.session_secrets.values()))
    ctx = DecryptionContext(log, resume_depth=1)
    ctx.add_chain(ss0, 0, 0x0010, 0)
    assert ctx.chain_lookup(resumption(ss0, 1, b"", b"").resume).index == 1
    assert ctx.chain_lookup(resumption(ss0, 2, b"", b"").resume) is None
    deep = DecryptionContext(log, resume_depth=2)
    assert deep.chain_lookup(resumption(ss0, 2, b"", b"").resume).index == 2


def test_key_log_chaining_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only CHAIN_KEYLOG_MAX key-log session secrets are chained for resumed connections
    (a huge key log must not cost minutes for one resumed connection); the rest are
    counted, and the connection's no-keys note says the search was cut."""
    import tcpinc_analyze.decryption as decryption
    from tcpinc_analyze.tcpcrypt.endpoint import resumption

    log = load_keylogs([str(SAMPLES / "resumption.keys")], use_env=False).log
    ss0 = next(iter(log.session_secrets.values()))
    monkeypatch.setattr(decryption, "CHAIN_KEYLOG_MAX", 0)
    ctx = DecryptionContext(log, resume_depth=2)
    assert ctx.chain_lookup(resumption(ss0, 2, b"", b"").resume) is None
    assert ctx.chain_skipped == sum(len(k) == 32 for k in log.session_secrets)
    monkeypatch.setattr(decryption, "CHAIN_KEYLOG_MAX", 1)
    ctx = DecryptionContext(log, resume_depth=2)
    assert ctx.chain_lookup(resumption(ss0, 2, b"", b"").resume) is not None
