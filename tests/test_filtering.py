"""The shared display-filter module: the language on real sample reports, its errors (with
the column), and ``-Y``/``--id`` on analyze, verify, decrypt and conformance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tcpinc_analyze.analysis.run import analyze_file
from tcpinc_analyze.decryption import DecryptionContext
from tcpinc_analyze.fieldspec import FIELDS as SPEC_FIELDS
from tcpinc_analyze.filtering import (
    CONNECTION_FIELDS,
    FRAME_FIELDS,
    FilterError,
    PacketSource,
    compile_filter,
)
from tcpinc_analyze.keylog import load_keylogs

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
ROOT = SAMPLES.parent


def sample(name: str) -> str:
    return str(SAMPLES / name)


def rows(name: str, keys: str | None = None) -> list[dict]:
    ctx = None
    if keys:
        ctx = DecryptionContext(load_keylogs([sample(keys)], use_env=False).log)
    return [r.to_json() for r in analyze_file(sample(name), decryption=ctx).reports]


def count(expr: str, items: list[dict], **kw: object) -> int:
    filt = compile_filter(expr, **kw)
    assert filt is not None
    return sum(map(filt, items))


@pytest.fixture(scope="module")
def busy() -> list[dict]:
    return rows("busy-mix.pcap", "busy-mix.keys")


def test_value_names_numbers_and_table_names(busy):
    chacha = sum((r["tcpcrypt"] or {}).get("aead") == 0x10 for r in busy)
    assert chacha > 0
    for expr in ("tcpcrypt.aead == 0x0010", "tcpcrypt.aead == 16",
                 "tcpcrypt.aead == AEAD_CHACHA20_POLY1305", "tcpcrypt.aead == CHACHA20_POLY1305",
                 "tcpcrypt.aead eq chacha20_poly1305"):
        assert count(expr, busy) == chacha, expr
    x448 = sum(r["eno"]["negotiated_tep"] == 0x24 for r in busy)
    assert x448 > 0
    for expr in ("tcpeno.negotiated_tep == X448", "tcpeno.negotiated_tep == 0x24",
                 "tcpeno.negotiated_tep == TCPCRYPT_ECDHE_Curve448"):
        assert count(expr, busy) == x448, expr
    # a name of another table's value never matches by accident
    assert count("tcpeno.negotiated_tep == AES_128_GCM", busy) == 0


def test_cidr_sets_ranges_stream_and_words(busy):
    in_net = [r for r in busy if r["a"].startswith("10.1.0.")]
    assert 0 < len(in_net) < len(busy) or len(in_net) == len(busy)
    assert count("ip.addr == 10.1.0.0/24", busy) == len(in_net)
    assert count("ip.addr == 10.9.0.0/16", busy) == 0
    ports = {443, 8080}
    expected = sum(int(r["b"].rsplit(":", 1)[1]) in ports for r in busy)
    assert count("tcp.dstport in {443 8080}", busy) == expected > 0
    assert count("tcp.dstport in {443, 8080}", busy) == expected
    assert count("tcp.dstport in {8000..8100 443}", busy) == expected
    assert count("tcp.stream == 7", busy) == 1
    assert count("tcp.stream in {1..5}", busy) == 5
    assert count("not (tcp.stream >= 3)", busy) == 3
    # a bare word: an address, a CIDR block, a port, or text of the row
    host = busy[4]["a"].rsplit(":", 1)[0]
    assert count(host, busy) >= 1
    assert count("10.1.0.0/24", busy) == len(in_net)
    assert count("fallback", busy) == sum(r["eno"]["status"] == "fallback" for r in busy)


def test_presence_not_equal_contains_matches(busy):
    plain = sum(r["tcpcrypt"] is None for r in busy)
    assert count("not tcpcrypt", busy) == plain > 0
    # != needs the field: a plain TCP connection has no AEAD (as in Wireshark)
    assert count("tcpcrypt.aead != 1", busy) == sum(
        (r["tcpcrypt"] or {}).get("aead") not in (None, 1) for r in busy)
    assert count('tcpeno.status contains "fall"', busy) == count(
        "tcpeno.status == fallback", busy) > 0
    assert count('tcpeno.reason matches "^(no|role)-"', busy) == sum(
        (r["eno"]["reason"] or "").startswith(("no-", "role-")) for r in busy)
    b_set = sum(any(s.get("tcpeno.global.b") in (1, True) for side in ("syn_a", "syn_b")
                    for s in (r["eno"][side] or {}).get("suboptions", [])) for r in busy)
    assert count("tcpeno.global.b == 1", busy) == count("tcpeno.global.b == true", busy) \
        == b_set > 0
    assert count("tcpeno.global.b == 1 || tcpeno.status == absent", busy) >= count(
        "tcpeno.global.b == 1", busy)


def test_session_id_as_bytes(busy):
    with_sid = [r for r in busy if (r["tcpcrypt"] or {}).get("session_id")]
    assert with_sid
    sid = with_sid[0]["tcpcrypt"]["session_id"]
    assert count(f"tcpeno.session_id == {sid}", busy) == 1
    colons = ":".join(sid[i:i + 2] for i in range(0, len(sid), 2))
    assert count(f"tcpeno.session_id == {colons}", busy) == 1
    assert count(f'tcpeno.session_id contains "{sid[:12]}"', busy) == 1


@pytest.mark.parametrize("expr, column, words", [
    ("tcpeno.nosuch == 1", 1, "unknown field"),
    ("tcpeno.status ==", 17, "ends too early"),
    ("(tcpeno.status == fallback", 27, "missing ')'"),
    ("tcpeno.status == fallback and", 30, "ends too early"),
    ("tcpeno.status = fallback", 15, "'=='"),
    ("tcp.port > https", 12, "not a number"),
    ("tcp.port in {80 443", 20, "missing '}'"),
    ("tcpeno.status == fallback tcp.port == 1", 27, "missing 'and'/'or'"),
    ('tcpeno.reason == "role', 18, "unterminated string"),
    ("tcpcrypt.frame.clen > 10", 1, "per-packet field"),
    ("tcpeno.status fallback", 15, "expected an operator"),
    ('tcpeno.reason matches "("', 23, "regular expression"),
])
def test_errors_name_the_column(expr, column, words):
    with pytest.raises(FilterError) as info:
        compile_filter(expr)
    assert info.value.column == column, str(info.value)
    assert words in str(info.value)


def test_every_connection_field_is_in_the_spec_or_a_documented_helper():
    protocol = [f for f in CONNECTION_FIELDS if f.startswith(("tcpeno", "tcpcrypt"))]
    assert [f for f in protocol if f not in SPEC_FIELDS and f not in ("tcpeno", "tcpcrypt")] == []
    assert "tcpcrypt.frame.clen" in FRAME_FIELDS and "tcpcrypt.plaintext.data" in FRAME_FIELDS
    readme = (ROOT / "README.md").read_text()
    for helper in ("frames", "rekeys", "undecryptable", "findings", "finding", "tcp.stream",
                   "packets", "state"):
        assert f"`{helper}`" in readme, helper


def test_packet_scope_reads_headers_connection_and_tree_lazily():
    filt = compile_filter("tcp.flags.syn == 1 and tcpeno.status == negotiated", "packet")
    assert filt is not None and not filt.needs_tree
    calls = []

    def tree() -> dict:
        calls.append(1)
        return {"tcpeno.global.b": [True]}

    conn = {"id": 0, "a": "10.0.0.1:1", "b": "10.0.0.2:2", "eno": {"status": "negotiated"}}
    syn = PacketSource({"tcp.flags.syn": True, "ip.addr": ["10.0.0.1", "10.0.0.2"],
                        "tcp.port": [1, 2]}, conn, tree)
    assert filt.match(syn) and calls == []
    deep = compile_filter("tcpeno.global.b == 1", "packet")
    assert deep.needs_tree and deep.match(syn) and calls == [1]
    assert compile_filter("10.0.0.0/8 and 2", "packet").match(syn)
    with pytest.raises(FilterError):
        compile_filter("fallback", "packet")  # a word, not a field: packets need fields
    # per-frame fields are fine in a packet filter
    assert compile_filter("tcpcrypt.frame.clen > 10", "packet") is not None


# ---------------------------------------------------------------------- the CLI
def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcpinc_analyze.cli", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_cli_analyze_filter_and_ids(busy):
    port = next(r["b"] for r in busy if r["eno"]["status"] == "fallback").rsplit(":", 1)[1]
    run = cli("analyze", sample("busy-mix.pcap"), "--format", "json",
              "-Y", f"tcpeno.status == fallback and tcp.dstport == {port}")
    assert run.returncode == 0, run.stderr
    got = [r["id"] for r in json.loads(run.stdout)]
    want = [r["id"] for r in busy if r["eno"]["status"] == "fallback"
            and r["b"].endswith(f":{port}")]
    assert got == want and got
    run = cli("analyze", sample("busy-mix.pcap"), "--format", "jsonl", "--id", "3",
              "--id", "41")
    assert [json.loads(line)["id"] for line in run.stdout.splitlines()] == [3, 41]
    # both: the intersection
    run = cli("analyze", sample("busy-mix.pcap"), "--format", "json", "--id", str(want[0]),
              "--id", "0", "-Y", "tcpeno.status == fallback")
    assert [r["id"] for r in json.loads(run.stdout)] == [want[0]]
    table = cli("analyze", sample("busy-mix.pcap"), "-Y", "tcp.stream == 3")
    assert "-Y tcp.stream == 3: 1 connection" in table.stdout
    none = cli("analyze", sample("busy-mix.pcap"), "-Y", "tcp.port == 1")
    assert none.returncode == 0 and "no connection matches -Y/--id" in none.stdout


def test_cli_frame_fields_collect_frames_without_printing_them():
    keys = sample("rekey-both-directions.keys")
    run = cli("analyze", sample("rekey-both-directions.pcap"), "--keylog", keys,
              "--format", "json", "-Y", "tcpcrypt.frame.generation >= 1")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data and all("frame_list" not in r for r in data)
    detailed = json.loads(cli("analyze", sample("rekey-both-directions.pcap"), "--keylog", keys,
                              "--format", "json", "--details",
                              "-Y", "tcpcrypt.frame.control.rekey == 1").stdout)
    assert detailed and all(any(f["tcpcrypt.frame.control.rekey"] for f in r["frame_list"])
                            for r in detailed)
    assert json.loads(cli("analyze", sample("rekey-both-directions.pcap"), "--keylog", keys,
                          "--format", "json", "-Y",
                          "tcpcrypt.frame.generation > 1000").stdout) == []


@pytest.mark.parametrize("command", ["analyze", "verify", "decrypt", "conformance"])
def test_cli_bad_expression_is_one_error_line_exit_2(command, tmp_path):
    extra = ["-o", str(tmp_path / "out")] if command == "decrypt" else []
    run = cli(command, sample("busy-mix.pcap"), *extra, "-Y", "tcpeno.status = fallback")
    assert run.returncode == 2
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: -Y:")
    assert "column 15" in lines[0] and "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()


def test_cli_verify_and_conformance_judge_only_the_selection():
    keys = sample("wrong-key.keys")
    # the wrong-key connection fails; filtered away, verify passes
    assert cli("verify", sample("wrong-key.pcap"), "--keylog", keys).returncode == 1
    run = cli("verify", sample("wrong-key.pcap"), "--keylog", keys, "-Y", "tcp.port == 1")
    assert run.returncode == 0 and "no tcpcrypt connection matches" in run.stdout
    conf = sample("conformance-violations.pcap")
    ckeys = sample("conformance-violations.keys")
    clean = [r["id"] for r in json.loads(cli("conformance", conf, "--keylog", ckeys,
                                             "--format", "json").stdout)
             if r["violations"] == 0]
    bad = cli("conformance", conf, "--keylog", ckeys, "--format", "json", "--id", "2")
    assert bad.returncode == 1 and [r["id"] for r in json.loads(bad.stdout)] == [2]
    if clean:
        ok = cli("conformance", conf, "--keylog", ckeys, "--format", "json",
                 "--id", str(clean[0]))
        assert ok.returncode == 0 and [r["id"] for r in json.loads(ok.stdout)] == clean[:1]


def test_cli_decrypt_writes_only_the_selection(tmp_path, busy):
    want = [r["id"] for r in busy if r["eno"]["negotiated_tep"] == 0x24
            and (r["tcpcrypt"] or {}).get("decrypted")]
    assert want
    out = tmp_path / "dec"
    run = cli("decrypt", sample("busy-mix.pcap"), "--keylog", sample("busy-mix.keys"),
              "-o", str(out), "-Y", "tcpeno.negotiated_tep == X448")
    assert run.returncode == 0, run.stderr
    files = sorted(p.name for p in out.iterdir() if p.suffix == ".bin")
    assert {int(name[5:10]) for name in files} == set(want)
    index = json.loads((out / "index.json").read_text())
    assert sorted({e["id"] for e in index["files"]}) == want
    # --id on standard input: one pass is enough
    out2 = tmp_path / "dec2"
    with open(sample("busy-mix.pcap"), "rb") as fh:
        run = subprocess.run([sys.executable, "-m", "tcpinc_analyze.cli", "decrypt", "-",
                              "--keylog", sample("busy-mix.keys"), "-o", str(out2),
                              "--id", str(want[0])], stdin=fh, capture_output=True,
                             text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr
    assert {int(p.name[5:10]) for p in out2.iterdir() if p.suffix == ".bin"} == {want[0]}
    with open(sample("busy-mix.pcap"), "rb") as fh:
        run = subprocess.run([sys.executable, "-m", "tcpinc_analyze.cli", "decrypt", "-",
                              "--keylog", sample("busy-mix.keys"), "-o", str(tmp_path / "d3"),
                              "-Y", "tcpcrypt"], stdin=fh, capture_output=True, text=True,
                             cwd=ROOT, timeout=300)
    assert run.returncode == 2 and "give a file" in run.stderr
