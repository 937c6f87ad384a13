"""Issue 12's gaps between tshark with lua/tcpinc.lua and the Python analyzer, each held
shut by real tshark runs: simultaneous opens, per-packet fields in one pass and in two,
keys embedded in pcapng, loading the plugin twice, application data on other ports,
expert protocol names, statistics and the conformance filter."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
import test_wireshark as tw

from tcpinc_analyze.analysis.run import analyze_file
from tcpinc_analyze.decryption import DecryptionContext
from tcpinc_analyze.keylog import KeyLog, load_keylogs

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
LUA = ROOT / "lua" / "tcpinc.lua"
TSHARK = shutil.which("tshark")
pytestmark = [pytest.mark.tshark,
              pytest.mark.skipif(TSHARK is None, reason="tshark not installed")]


def _python(capture: Path, keylog: Path | None) -> list[dict]:
    """The reference (key logs embedded in the capture are read on their own)."""
    log = load_keylogs([str(keylog)], use_env=False).log if keylog else KeyLog()
    return [r.to_json() for r in analyze_file(str(capture),
                                              decryption=DecryptionContext(log)).reports]


def _tshark(args: list[str], env: dict | None = None, timeout: int = 300
            ) -> subprocess.CompletedProcess:
    proc = subprocess.run([TSHARK, "-n", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert "Lua Error" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _records(data: bytes) -> tuple[bytes, list[bytes]]:
    header, records = tw._pcap_records(data)
    return header, records


def _write(path: Path, header: bytes, records: list[bytes]) -> Path:
    path.write_bytes(header + b"".join(records))
    return path


# ---------------------------------------------------------------- gap 2: simultaneous open

def _simultaneous_variants(tmp_path: Path) -> list[Path]:
    """Connection 1 of simultaneous-open.pcap (the b = 1 host's SYN first): both SYN-ACK
    orders, the b = 1 host's first ACK before or after the other SYN-ACK is not allowed
    (that leaves the outcome open), other ports on either side, and the SYN of the b = 0
    host first."""
    header, records = _records((SAMPLES / "simultaneous-open.pcap").read_bytes())
    conn1 = records[20:]
    syn_b1, syn_b0, sa_b1, sa_b0, *rest = conn1
    variants = {
        "b1-first": [syn_b1, syn_b0, sa_b1, sa_b0, *rest],
        "b1-first-synacks-swapped": [syn_b1, syn_b0, sa_b0, sa_b1, *rest],
        "b0-first": [syn_b0, syn_b1, sa_b1, sa_b0, *rest],
        "b1-first-whole-sample": records[:20] + [syn_b1, syn_b0, sa_b0, sa_b1, *rest],
    }
    out = [_write(tmp_path / f"{name}.pcap", header, recs) for name, recs in variants.items()]
    for name, port_b1, port_b0 in (("ports-a", 40001, 7001), ("ports-b", 7001, 40001)):
        recs = [_set_ports(r, "10.0.0.3", port_b1, "10.0.0.4", port_b0)
                for r in variants["b1-first"]]
        out.append(_write(tmp_path / f"{name}.pcap", header, recs))
    return out


def _set_ports(record: bytes, ip1: str, port1: int, ip2: str, port2: int) -> bytes:
    import socket

    rec = bytearray(record)
    ip = 16 + 14
    tcp = ip + (rec[ip] & 15) * 4
    a1, a2 = socket.inet_aton(ip1), socket.inet_aton(ip2)
    src, dst = bytes(rec[ip + 12:ip + 16]), bytes(rec[ip + 16:ip + 20])
    for addr, port in ((a1, port1), (a2, port2)):
        if src == addr:
            rec[tcp:tcp + 2] = struct.pack(">H", port)
        if dst == addr:
            rec[tcp + 2:tcp + 4] = struct.pack(">H", port)
    return bytes(rec)


def test_simultaneous_open_variants_match_python(tmp_path: Path) -> None:
    """Gap 2: both hosts send a bare SYN (the b = 1 host first, or not), then both
    SYN-ACKs: negotiated, the b = 0 host is A, decrypted with the same session ID and
    plaintext as in Python, whatever the order of the SYN-ACKs and the ports."""
    keylog = SAMPLES / "simultaneous-open.keys"
    for capture in _simultaneous_variants(tmp_path):
        python = _python(capture, keylog)
        assert {p["eno"]["status"] for p in python} == {"negotiated"}, capture.name
        got = tw.per_connection(tw.tshark_fields(capture, keylog))
        tw.assert_parity(capture.name, python, got)
        for py in python:
            assert got[(py["a"], py["b"])]["status"] == "negotiated"
        single = _fields(capture, keylog, two_pass=False)
        decided = [row for row in single if row["tcpeno.status"]]
        assert {row["tcpeno.status"] for row in decided} == {"negotiated"}, capture.name


# ---------------------------------------------------------------- gap 3: one pass, two passes

PER_PACKET = ["frame.number", "tcp.stream", "tcp.flags.syn", "tcpeno.status", "tcpeno.reason",
              "tcpeno.negotiated_tep", "tcpeno.host_a", "tcpeno.host_b", "tcpeno.role",
              "tcpeno.roles"]


def _fields(capture: Path, keylog: Path | None, *, two_pass: bool,
            extra: list[str] | None = None) -> list[dict[str, str]]:
    args = (["-2", "-Y", "frame"] if two_pass else []) + (extra or [])
    args += ["-X", f"lua_script:{LUA}", "-r", str(capture), "-o",
             f"tcpcrypt.keylog_file:{keylog or ''}", "-T", "fields", "-E", "occurrence=f"]
    for f in PER_PACKET:
        args += ["-e", f]
    out = _tshark(args).stdout
    return [dict(zip(PER_PACKET, line.split("\t"), strict=True)) for line in out.splitlines()]


HANDSHAKE_SAMPLES = tw.CATALOG


@pytest.mark.parametrize("entry", HANDSHAKE_SAMPLES, ids=[e["name"] for e in HANDSHAKE_SAMPLES])
def test_one_pass_never_contradicts_the_outcome(entry: dict) -> None:
    """Gap 3: in one pass a packet shows only what is known at it (nothing before the
    outcome is decided, never handshake-not-captured on the SYN of a captured handshake)
    and whatever it shows is the final outcome; with -2 -Y frame every packet of a
    connection shows its final outcome and roles."""
    capture, keylog = SAMPLES / entry["capture"], tw._keylog(entry)
    final = _fields(capture, keylog, two_pass=True)
    single = _fields(capture, keylog, two_pass=False)
    assert len(final) == len(single)
    by_stream: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for row in final:
        if row["tcp.stream"]:
            for key in PER_PACKET[3:]:
                if key != "tcpeno.role":
                    by_stream[row["tcp.stream"]][key].add(row[key])
    python = {(p["a"], p["b"]): p for p in tw.py_view(entry)}
    for stream, values in by_stream.items():
        for key, seen in values.items():
            assert len(seen) == 1, f"{entry['name']} stream {stream}: {key} varies: {seen}"
        a, b = next(iter(values["tcpeno.host_a"])), next(iter(values["tcpeno.host_b"]))
        assert (a, b) in python, (entry["name"], a, b)
        assert next(iter(values["tcpeno.status"])) == python[(a, b)]["eno"]["status"]
    handshake_seen = {s for s, v in by_stream.items()
                      if v["tcpeno.reason"] != {"handshake-not-captured"}}
    for one, two in zip(single, final, strict=True):
        assert one["frame.number"] == two["frame.number"]
        if not one["tcp.stream"] or not two["tcpeno.status"]:
            continue
        for key in PER_PACKET[3:]:
            if one[key]:
                assert one[key] == two[key], (entry["name"], one, two)
        if one["tcp.flags.syn"] in ("1", "True") and one["tcp.stream"] in handshake_seen:
            assert one["tcpeno.reason"] != "handshake-not-captured", (entry["name"], one)


def test_one_pass_shows_nothing_undecided_on_the_syn(tmp_path: Path) -> None:
    """The issue's case: the SYN and SYN-ACK of a complete handshake carry no status in
    one pass (undecided there), the decision from A's ACK on; in two passes all three
    carry it."""
    capture = SAMPLES / "x25519-chacha20.pcap"
    single = _fields(capture, None, two_pass=False)
    assert [r["tcpeno.status"] for r in single[:3]] == ["", "", "negotiated"]
    assert [r["tcpeno.host_a"] for r in single[:2]] == ["", ""]
    final = _fields(capture, None, two_pass=True)
    assert {r["tcpeno.status"] for r in final} == {"negotiated"}
    # the SYNs alone decide a role conflict: shown on the SYN-ACK already
    conflicts = _fields(SAMPLES / "role-conflicts.pcap", None, two_pass=False)
    synacks = [r for r in conflicts if r["tcp.flags.syn"] in ("1", "True")
               and r["tcpeno.status"]]
    assert synacks and {r["tcpeno.reason"] for r in synacks} == {"role-conflict"}


def test_two_passes_without_a_filter_fall_back_to_one_and_say_so() -> None:
    """tshark -2 alone builds no protocol tree in its first pass: the analysis runs in
    the second, says so on stderr (never on stdout), and decrypts all the same."""
    capture, keylog = SAMPLES / "x25519-chacha20.pcap", SAMPLES / "x25519-chacha20.keys"
    proc = _tshark(["-2", "-X", f"lua_script:{LUA}", "-r", str(capture), "-o",
                    f"tcpcrypt.keylog_file:{keylog}", "-T", "fields", "-e", "tcpeno.status",
                    "-e", "tcpcrypt.frame.verified"])
    assert "builds no protocol tree on its first pass" in proc.stderr
    assert "tcpinc.lua" not in proc.stdout
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert rows[0] == ["", ""] and rows[2][0] == "negotiated"
    assert sum(r[1].count("1") + r[1].count("True") for r in rows) == 7
    quiet = _tshark(["-2", "-Y", "frame", "-X", f"lua_script:{LUA}", "-r", str(capture),
                     "-T", "fields", "-e", "tcpeno.status"])
    assert "tcpinc.lua" not in quiet.stderr
    assert set(quiet.stdout.split()) == {"negotiated"}


# ---------------------------------------------------------------- gap 7: expert protocol names

def test_expert_infos_carry_the_protocol_names() -> None:
    capture = SAMPLES / "wrong-key.pcap"
    proc = _tshark(["-2", "-Y", "frame", "-X", f"lua_script:{LUA}", "-r", str(capture),
                    "-o", f"tcpcrypt.keylog_file:{SAMPLES / 'wrong-key.keys'}", "-q",
                    "-z", "expert"])
    assert "TCPINC_POST" not in proc.stdout
    lines = [line for line in proc.stdout.splitlines() if "[frame-tag-failed]" in line]
    assert lines and all("TCPCRYPT" in line for line in lines)
    proc = _tshark(["-2", "-Y", "frame", "-X", f"lua_script:{LUA}", "-r",
                    str(SAMPLES / "role-conflicts.pcap"), "-q", "-z", "expert"])
    eno = [line for line in proc.stdout.splitlines() if "[eno-synack-no-explicit-b]" in line]
    assert eno and all("TCPENO" in line for line in eno)
    assert "TCPINC_POST" not in proc.stdout


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _env_home(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / ".config"))


# ---------------------------------------------------------------- gap 4: keys embedded in pcapng

def test_embedded_key_log_decrypts_without_a_key_log_file(tmp_path: Path) -> None:
    """Gap 4: a capture whose key log sits only in a Decryption Secrets Block (the
    sample, and a pcap turned into pcapng by inject-secrets) decrypts in tshark with no
    key-log file, in one pass and in two, exactly as in Python."""
    sample = SAMPLES / "pcapng-multi-interface.pcapng"
    injected = tmp_path / "injected.pcapng"
    proc = subprocess.run(["python3", "-m", "tcpinc_analyze.cli", "inject-secrets",
                           str(SAMPLES / "x25519-chacha20.pcap"), "--keylog",
                           str(SAMPLES / "x25519-chacha20.keys"), "-o", str(injected)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for capture in (sample, injected):
        python = _python(capture, None)
        assert all(p["tcpcrypt"]["decrypted"] for p in python if p["tcpcrypt"]), capture.name
        got = tw.per_connection(tw.tshark_fields(capture, None))
        tw.assert_parity(capture.name, python, got)
        assert all(c["ok"]["ab"] + c["ok"]["ba"] > 0 for c in got.values()
                   if c["status"] == "negotiated"), capture.name
        one = _tshark(["-X", f"lua_script:{LUA}", "-r", str(capture), "-o",
                       "tcpcrypt.keylog_file:", "-T", "fields", "-e", "tcpcrypt.frame.verified"])
        flags = [v for line in one.stdout.split() for v in line.split(",")]
        assert flags and set(flags) <= {"1", "True"}, capture.name


def test_unreadable_embedded_key_log_is_explained(tmp_path: Path) -> None:
    """When the plugin cannot follow the capture file (read from a pipe, compressed),
    the first tcpcrypt packet without keys says so and how to get the keys out; a plain
    pcap without keys gets no such note."""
    capture = SAMPLES / "pcapng-multi-interface.pcapng"
    fields = ["-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message"]
    piped = subprocess.run([TSHARK, "-n", "-X", f"lua_script:{LUA}", "-r", "-", "-o",
                            "tcpcrypt.keylog_file:", *fields], input=capture.read_bytes(),
                           capture_output=True, timeout=120)
    assert piped.returncode == 0 and b"Lua Error" not in piped.stdout + piped.stderr
    notes = [line for line in piped.stdout.decode().splitlines()
             if "[keylog-embedded-unreadable]" in line]
    assert len(notes) == 1, notes
    assert "extract-secrets" in notes[0] and "standard input" in notes[0]
    import gzip

    compressed = tmp_path / "c.pcapng.gz"
    compressed.write_bytes(gzip.compress(capture.read_bytes()))
    out = _tshark(["-X", f"lua_script:{LUA}", "-r", str(compressed), "-o",
                   "tcpcrypt.keylog_file:", *fields]).stdout
    assert out.count("[keylog-embedded-unreadable]") == 1 and "compressed" in out
    plain = _tshark(["-X", f"lua_script:{LUA}", "-r", str(SAMPLES / "x25519-chacha20.pcap"),
                     "-o", "tcpcrypt.keylog_file:", *fields]).stdout
    assert "keylog-embedded-unreadable" not in plain


def test_command_line_reading(tmp_path: Path) -> None:
    """The capture path is found in tshark's and Wireshark's argument forms."""
    script = tmp_path / "run.lua"
    script.write_text(f"""
local M = dofile({str(LUA)!r})
local cases = {{
  {{ "tshark", "-n", "-r", "a.pcapng", "-T", "fields" }},
  {{ "tshark", "-ra.pcapng" }},
  {{ "tshark", "--read-file=a.pcapng", "-2" }},
  {{ "tshark", "--read-file", "a.pcapng" }},
  {{ "tshark", "-i", "eth0" }},
  {{ "tshark", "-r", "-" }},
}}
for _, args in ipairs(cases) do
  local file, live = M.capture_path(args)
  print(tostring(file) .. " " .. tostring(live))
end
""")
    if shutil.which("lua5.2") is None:
        pytest.skip("lua5.2 not installed")
    out = subprocess.run(["lua5.2", str(script)], capture_output=True, text=True,
                         timeout=60).stdout.split("\n")
    assert out[:6] == ["a.pcapng false"] * 4 + ["nil true", "- false"]


# ---------------------------------------------------------------- gap 5: loading twice

def test_installed_plugin_and_lua_script_option_together(tmp_path: Path) -> None:
    """Gap 5: after `wireshark install`, the README's -X lua_script: example still works:
    the second copy steps aside with one line on stderr naming the copy in use; an older
    installed copy (without the check) is recognised the same way."""
    env = _env_home(tmp_path)
    inst = subprocess.run(["python3", "-m", "tcpinc_analyze.wireshark.install", "install"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    installed = Path(inst.stderr.split()[-1])  # messages go to stderr
    capture, keylog = SAMPLES / "x25519-chacha20.pcap", SAMPLES / "x25519-chacha20.keys"
    args = ["-2", "-Y", "frame", "-X", f"lua_script:{LUA}", "-r", str(capture), "-o",
            f"tcpcrypt.keylog_file:{keylog}", "-T", "fields", "-e", "tcpeno.status",
            "-e", "tcpcrypt.frame.verified"]
    for label in ("current", "older"):
        proc = _tshark(args, env=env)
        assert "same description" not in proc.stderr
        steps = [line for line in proc.stderr.splitlines() if "steps aside" in line]
        assert len(steps) == 1, proc.stderr
        assert str(installed) in steps[0] if label == "current" else "older" in steps[0]
        assert set(proc.stdout.split()) >= {"negotiated", "1"}, proc.stdout
        # an older copy: no global marker, recognised by its registered dissector
        text = LUA.read_text().replace("_G.TCPINC_LUA_LOADED = ", "local _unused = ")
        installed.write_text(text)
    alone = _tshark(args)
    assert "steps aside" not in alone.stderr


# ---------------------------------------------------------------- gap 6: other ports

def _move_port(capture: Path, old: int, new: int, out: Path) -> Path:
    """The capture with TCP port ``old`` renumbered (Ethernet/IPv4; checksums are not
    verified by tshark's default preferences)."""
    header, records = _records(capture.read_bytes())
    moved = []
    for record in records:
        rec = bytearray(record)
        ip = 16 + 14
        tcp = ip + (rec[ip] & 15) * 4
        for at in (tcp, tcp + 2):
            if struct.unpack(">H", rec[at:at + 2])[0] == old:
                rec[at:at + 2] = struct.pack(">H", new)
        moved.append(bytes(rec))
    return _write(out, header, moved)


def _app_view(capture: Path, keylog: Path, extra: list[str] | None = None) -> list[dict]:
    fields = ["frame.number", "frame.protocols", "tcpcrypt.plaintext.data_len",
              "http.request.method", "http.response.code", "telnet.data"]
    args = ["-2", "-Y", "frame", "-X", f"lua_script:{LUA}", *(extra or []), "-r", str(capture),
            "-o", f"tcpcrypt.keylog_file:{keylog}", "-T", "fields"]
    for f in fields:
        args += ["-e", f]
    out = _tshark(args).stdout
    return [dict(zip(fields, line.split("\t"), strict=True)) for line in out.splitlines()]


@pytest.mark.parametrize("port", [80, 8443, 9999])
def test_decrypted_http_on_any_port(tmp_path: Path, port: int) -> None:
    """Gap 6: the plaintext goes to the heuristics for decrypted data before the port
    table, so HTTP on 8443 (no dissector) and on 9999 (another protocol's port) shows as
    HTTP, as on 80; ciphertext never reaches HTTP."""
    keylog = SAMPLES / "x25519-chacha20.keys"
    capture = _move_port(SAMPLES / "x25519-chacha20.pcap", 80, port, tmp_path / f"{port}.pcap")
    rows = _app_view(capture, keylog)
    methods = [r["http.request.method"] for r in rows if r["http.request.method"]]
    codes = [r["http.response.code"] for r in rows if r["http.response.code"]]
    assert methods == ["GET"] and "200" in codes, (port, methods, codes)
    for r in rows:
        if r["http.request.method"] or r["http.response.code"] or ":http" in r["frame.protocols"]:
            assert r["tcpcrypt.plaintext.data_len"], (port, r)


def test_decode_as_comes_before_the_heuristics(tmp_path: Path) -> None:
    """An explicit Decode As on the TCP port is the user's choice for the plaintext
    (here telnet, which no heuristic would pick), and never gets the ciphertext."""
    keylog = SAMPLES / "x25519-chacha20.keys"
    capture = _move_port(SAMPLES / "x25519-chacha20.pcap", 80, 9999, tmp_path / "9999.pcap")
    rows = _app_view(capture, keylog, ["-d", "tcp.port==9999,telnet"])
    telnet = [r for r in rows if r["telnet.data"] or ":telnet" in r["frame.protocols"]]
    assert telnet and all(r["tcpcrypt.plaintext.data_len"] for r in telnet)
    assert not any(r["http.request.method"] or r["http.response.code"] for r in rows)
    assert any(r["telnet.data"].startswith("GET /index.txt") for r in telnet), telnet[:2]


# ---------------------------------------------------------------- gap 7: install, export

def _ws(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["python3", "-m", "tcpinc_analyze.wireshark.install", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)


def test_uninstall_leaves_no_empty_plugin_folders(tmp_path: Path) -> None:
    env = _env_home(tmp_path)
    assert _ws(env, "install").returncode == 0
    plugins = next(tmp_path.rglob("tcpinc.lua")).parent
    assert plugins.name == "plugins" and plugins.parent.name == "wireshark"
    done = _ws(env, "uninstall")
    assert done.returncode == 0, done.stdout
    assert not plugins.exists() and not plugins.parent.exists()
    assert plugins.parent.parent.exists()  # ~/.local/lib: not ours to remove
    # a folder that holds something else stays
    assert _ws(env, "install").returncode == 0
    (plugins / "other.lua").write_text("-- someone else's plugin\n")
    assert _ws(env, "uninstall").returncode == 0
    assert (plugins / "other.lua").exists() and not (plugins / "tcpinc.lua").exists()


def test_export_into_a_new_folder_and_refusals(tmp_path: Path) -> None:
    env = _env_home(tmp_path)
    new_dir = tmp_path / "NEWDIR"
    done = _ws(env, "export", str(new_dir) + "/")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (new_dir / "tcpinc.lua").read_bytes() == LUA.read_bytes()
    existing = tmp_path / "existing"
    existing.mkdir()
    assert _ws(env, "export", str(existing)).returncode == 0
    assert (existing / "tcpinc.lua").read_bytes() == LUA.read_bytes()
    as_file = tmp_path / "copy.lua"
    assert _ws(env, "export", str(as_file)).returncode == 0 and as_file.is_file()
    as_file.write_text("-- edited\n")
    refused = _ws(env, "export", str(as_file))
    assert refused.returncode == 1 and "--force" in refused.stderr
    itself = _ws(env, "export", str(LUA))
    assert itself.returncode == 1 and "plugin itself" in itself.stderr
    assert LUA.read_text().startswith("-- tcpinc.lua")
    assert not list(tmp_path.rglob(".*.tmp*"))


# ---------------------------------------------------------------- beyond parity

@pytest.mark.parametrize("name", ["busy-mix", "fallback-reasons", "resumption"])
def test_statistics_summary_matches_python(name: str) -> None:
    """tshark -z tcpcrypt,summary (Statistics > TCP-ENO and tcpcrypt in Wireshark): one
    line per connection with the analyzer's ENO outcome, TEP or reason, AEAD, frames and
    verified frames, and the counts; printed with the statistics, on stdout."""
    entry = next(e for e in tw.CATALOG if e["name"] == name)
    capture, keylog = SAMPLES / entry["capture"], tw._keylog(entry)
    for extra in (["-2", "-Y", "frame"], []):
        out = _tshark([*extra, "-X", f"lua_script:{LUA}", "-r", str(capture), "-o",
                       f"tcpcrypt.keylog_file:{keylog or ''}", "-q", "-z",
                       "tcpcrypt,summary"]).stdout
        lines = out[out.index("=== TCP-ENO and tcpcrypt: connections ==="):].splitlines()[2:]
        rows = {}
        for line in lines:
            if not line.strip():
                break
            w = line.split()
            rows[(w[1], w[2])] = w
        python = tw.py_view(entry)
        assert len(rows) == len(python)
        for py in python:
            w = rows[(py["a"], py["b"])]
            assert w[3] == py["eno"]["status"], (name, w)
            if py["eno"]["status"] == "negotiated":
                assert w[4] == f"0x{py['eno']['negotiated_tep']:02x}", (name, w)
            else:
                assert w[4] == py["eno"]["reason"], (name, w)
            tc = py["tcpcrypt"]
            if tc and tc.get("decrypted"):
                ok = sum(tc["decrypted"][d]["ok"] for d in ("ab", "ba"))
                assert f"{ok} ok" in line_of(w), (name, w)
        total = next(line for line in lines if line.endswith("decrypted") or "decrypted," in line)
        assert total.startswith(f"{len(python)} connections: ")
        negotiated = sum(p["eno"]["status"] == "negotiated" for p in python)
        assert f" {negotiated} negotiated" in total


def line_of(words: list[str]) -> str:
    return " ".join(words)


def test_conformance_findings_are_filterable() -> None:
    """A conformance code as a display filter selects the packet that broke the rule,
    the same packet the analyzer names (here RFC 8548 §3.8's rekey answer)."""
    capture = SAMPLES / "conformance-violations.pcap"
    keylog = SAMPLES / "conformance-violations.keys"
    expected = {f["packet"] for p in tw.py_view(tw._entry("conformance-violations"))
                for f in p["findings"] if f["code"] == "rekey-not-answered"}
    assert expected
    out = _tshark(["-2", "-X", f"lua_script:{LUA}", "-r", str(capture), "-o",
                   f"tcpcrypt.keylog_file:{keylog}", "-Y",
                   'tcpeno.conformance == "rekey-not-answered"', "-T", "fields", "-e",
                   "frame.number", "-e", "tcpeno.conformance.rfc"]).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    assert {int(r[0]) for r in rows} == expected
    assert all("RFC 8548 §3.8" in r[1] for r in rows)


def test_cost_benchmark_runs(tmp_path: Path) -> None:
    """The dissector's cost benchmark (no timing asserted: the numbers go to the README)
    runs every contender on a small capture and prints one line each."""
    proc = subprocess.run(["python3", "-m", "tcpinc_analyze.wireshark.bench", "--size", "1",
                           "--dir", str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 5 and all("s CPU" in line and "MB peak RSS" in line for line in lines)
