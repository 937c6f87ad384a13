"""Key logs as hostile input and as secrets: non-regular files refused unless asked (a
FIFO without a writer must not hang, /dev/zero must not eat memory), over-long lines
skipped without being kept, memory bounded however long the log, a stale
TCPCRYPT_KEYLOGFILE, permissions, key logs written 0600, no secret in any message, and
one --show-secrets rule for every command."""

from __future__ import annotations

import json
import os
import random
import stat
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpinc_analyze import keylog as keylog_module
from tcpinc_analyze.analysis.run import analyze_file
from tcpinc_analyze.cli import main
from tcpinc_analyze.decryption import DecryptionContext
from tcpinc_analyze.keylog import (
    KeyLogError,
    load_keylogs,
    parse_keylog,
    redact_line,
)
from tcpinc_analyze.synth.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
NAME = "x25519-chacha20"
CAPTURE = SAMPLES / f"{NAME}.pcap"
KEYS = SAMPLES / f"{NAME}.keys"
SS_LABEL = "TCPCRYPT_SESSION_SECRET"


def sample_secret() -> tuple[str, str]:
    """(N_A hex, ss hex) of the x25519 sample."""
    line = next(x for x in KEYS.read_text().splitlines() if x.startswith(SS_LABEL))
    _label, n_a, ss = line.split()
    return n_a, ss


def filler(count: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    return "".join(f"{SS_LABEL} {rng.randbytes(32).hex()} {rng.randbytes(32).hex()}\n"
                   for _ in range(count))


# ------------------------------------------------------------------ non-regular files

def test_device_and_fifo_key_logs_are_refused(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "keys.fifo"
    os.mkfifo(fifo)
    for path, kind in (("/dev/zero", "character device"), (str(fifo), "FIFO")):
        with pytest.raises(KeyLogError, match=kind):
            load_keylogs([path], use_env=False)
        assert main(["analyze", str(CAPTURE), "--keylog", path]) == 2
        err = capsys.readouterr().err
        assert kind in err and "--keylog-any-file" in err and "Traceback" not in err


def test_fifo_without_writer_does_not_hang(tmp_path: Path) -> None:
    """With --keylog-any-file a FIFO nobody writes to reads as empty (it used to block
    in open() forever)."""
    fifo = tmp_path / "keys.fifo"
    os.mkfifo(fifo)
    proc = subprocess.run([sys.executable, "-m", "tcpinc_analyze.cli", "analyze", str(CAPTURE),
                           "--keylog", str(fifo), "--keylog-any-file", "--format", "json"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["tcpcrypt"]["decrypted"] is None


def test_fifo_with_a_writer_and_stdin_are_read(tmp_path: Path) -> None:
    import threading

    fifo = tmp_path / "keys.fifo"
    os.mkfifo(fifo)

    def feed() -> None:  # blocks in open() until the reader opens: a writer from the start
        with open(fifo, "w") as writer:
            writer.write(KEYS.read_text())

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    proc = subprocess.Popen([sys.executable, "-m", "tcpinc_analyze.cli", "verify",
                             str(CAPTURE), "--keylog", str(fifo), "--keylog-any-file"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        feeder.join(5)
        if feeder.is_alive():  # release a writer nobody opened the FIFO for
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
    assert proc.returncode == 0 and "VERIFIED" in out, err
    piped = subprocess.run([sys.executable, "-m", "tcpinc_analyze.cli", "verify", str(CAPTURE),
                            "--keylog", "-"], input=KEYS.read_text(), capture_output=True,
                           text=True, timeout=60, cwd=ROOT)
    assert piped.returncode == 0 and "VERIFIED" in piped.stdout, piped.stderr
    both = subprocess.run([sys.executable, "-m", "tcpinc_analyze.cli", "verify", "-",
                           "--keylog", "-"], input="", capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert both.returncode == 2 and "standard input" in both.stderr


def test_endless_device_is_read_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """/dev/zero with --keylog-any-file: reading stops at STREAM_MAX, with a warning,
    holding no more than a chunk and a line at a time."""
    monkeypatch.setattr(keylog_module, "STREAM_MAX", 16 << 20)
    tracemalloc.start()
    try:
        loaded = load_keylogs(["/dev/zero"], use_env=False, any_file=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(loaded.log) == 0
    assert any("stopped reading after" in w for w in loaded.warnings)
    assert peak < 8 << 20, peak


def test_over_long_line_is_skipped_unkept(tmp_path: Path) -> None:
    n_a, ss = sample_secret()
    path = tmp_path / "long.keys"
    with path.open("w") as f:
        f.write("#" + "x" * (20 << 20) + "\n")  # one 20 MB line, then a good one
        f.write(f"{SS_LABEL} {n_a} {ss}\n")
        f.write(f"{SS_LABEL} " + "ab" * 5000 + f" {ss}\r\n")
    os.chmod(path, 0o600)
    tracemalloc.start()
    try:
        loaded = load_keylogs([str(path)], use_env=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak
    assert bytes.fromhex(n_a) in loaded.log.session_secrets
    assert [w for w in loaded.warnings if "longer than" in w] == \
        [f"{path}:1: longer than 4096 bytes; line skipped",
         f"{path}:3: longer than 4096 bytes; line skipped"]


def test_malformed_lines_are_listed_then_counted(tmp_path: Path) -> None:
    path = tmp_path / "noise.keys"
    path.write_bytes(os.urandom(300_000))
    os.chmod(path, 0o600)
    loaded = load_keylogs([str(path)], use_env=False)
    listed = [w for w in loaded.warnings if w.startswith(f"{path}:")]
    assert len(listed) <= keylog_module.MALFORMED_LISTED + 1
    assert len(loaded.warnings) < 30


# ------------------------------------------------------------------ bounded memory

def test_spilled_key_log_decrypts_every_sample_the_same(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """Past SPILL_ENTRIES entries live in the spool file: every sample's decryption
    (private keys, secrets, master and traffic keys, resumption chains, duplicates) is
    the same as with dictionaries."""
    entries = [e for e in load_catalog(SAMPLES) if e["keylog"]]
    dicts = {}
    for entry in entries:
        log = load_keylogs([str(SAMPLES / entry["keylog"])], use_env=False).log
        assert not log.spilled
        dicts[entry["name"]] = [r.to_json() for r in analyze_file(
            str(SAMPLES / entry["capture"]), decryption=DecryptionContext(log)).reports]
    monkeypatch.setattr(keylog_module, "SPILL_ENTRIES", 0)
    for entry in entries:
        log = load_keylogs([str(SAMPLES / entry["keylog"])], use_env=False).log
        assert log.spilled or len(log) == 0
        got = [r.to_json() for r in analyze_file(
            str(SAMPLES / entry["capture"]), decryption=DecryptionContext(log)).reports]
        assert got == dicts[entry["name"]], entry["name"]


def test_spilled_entries_keep_dictionary_semantics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keylog_module, "SPILL_ENTRIES", 3)
    rng = random.Random(5)
    ids = [rng.randbytes(32) for _ in range(50)]
    text = "".join(f"{SS_LABEL} {i.hex()} {(bytes([n]) * 32).hex()}\n"
                   for n, i in enumerate(ids))
    text += f"{SS_LABEL} {ids[7].hex()} {'ee' * 32}\n"  # a later duplicate wins
    text += f"TCPCRYPT_TRAFFIC_KEYS {ids[1].hex()} {'11' * 28} {'22' * 28}\n"
    log = parse_keylog(text)
    assert log.spilled and log.duplicates == 1 and len(log) == 51
    assert log.session_secrets[ids[7]] == b"\xee" * 32
    assert log.session_secrets[ids[8]] == bytes([8]) * 32
    assert log.traffic_keys[ids[1]] == (b"\x11" * 28, b"\x22" * 28)
    assert rng.randbytes(32) not in log.session_secrets
    assert dict(log.session_secrets)[ids[7]] == b"\xee" * 32
    assert sorted(log.session_secrets) == sorted(ids)


def _peak_rss_kb(keylog: Path) -> int:
    code = ("import resource, sys; from tcpinc_analyze.keylog import load_keylogs; "
            "log = load_keylogs([sys.argv[1]], use_env=False).log; "
            "print(len(log), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, str(keylog)], capture_output=True,
                         text=True, check=True, cwd=ROOT, timeout=300).stdout.split()
    return int(out[0]), int(out[1])


def test_memory_stays_bounded_for_a_long_key_log(tmp_path: Path) -> None:
    """100,000 entries: a dictionary of bytes takes about 60 MB more than an empty log;
    the spool keeps it to a few MB (a bound on memory, not a timing)."""
    small, big = tmp_path / "small.keys", tmp_path / "big.keys"
    small.write_text(KEYS.read_text())
    big.write_text(filler(100_000))
    count_small, rss_small = _peak_rss_kb(small)
    count_big, rss_big = _peak_rss_kb(big)
    assert count_big == 100_000
    assert rss_big - rss_small < 25_000, (rss_small, rss_big)


# ------------------------------------------------------------------ environment, modes

def test_stale_environment_variable_is_a_warning(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "gone.keys"
    monkeypatch.setenv("TCPCRYPT_KEYLOGFILE", str(missing))
    assert main(["analyze", str(SAMPLES / "fallback-absent.pcap")]) == 0
    err = capsys.readouterr().err
    assert f"TCPCRYPT_KEYLOGFILE={missing}" in err and "warning" in err
    assert main(["analyze", str(CAPTURE), "--keylog", str(missing)]) == 2
    assert "cannot read key log" in capsys.readouterr().err


def test_permission_warning_spares_the_projects_samples(tmp_path: Path) -> None:
    mode = stat.S_IMODE(KEYS.stat().st_mode)
    os.chmod(KEYS, 0o644)  # as a fresh clone has it
    try:
        assert not [w for w in load_keylogs([str(KEYS)], use_env=False).warnings
                    if "readable by other users" in w]
    finally:
        os.chmod(KEYS, mode)
    copy = tmp_path / "mine.keys"
    copy.write_text(KEYS.read_text())
    os.chmod(copy, 0o644)
    assert [w for w in load_keylogs([str(copy)], use_env=False).warnings
            if "readable by other users" in w]


def test_synth_writes_key_logs_0600(tmp_path: Path) -> None:
    out, keys = tmp_path / "s.pcap", tmp_path / "s.keys"
    assert main(["synth", NAME, "-o", str(out), "--keylog", str(keys)]) == 0
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert not [w for w in load_keylogs([str(keys)], use_env=False).warnings
                if "readable" in w]


# ------------------------------------------------------------------ never echo secrets

def test_a_secret_in_the_wrong_column_is_not_echoed() -> None:
    """Issue 15.2: a malformed line's message names the field, its column and the fault;
    a secret pasted into the id column is not quoted either."""
    n_a, ss = sample_secret()
    swapped = f"{SS_LABEL} {ss[:-1]}g {n_a}\n{SS_LABEL} {ss[:40]}zz {n_a}\n"
    private = f"TCPCRYPT_EPHEMERAL_PRIVATE {ss}z {ss}\n"
    log = parse_keylog(swapped + private, "k.log")
    assert len(log.malformed) == 3
    for message in log.malformed:
        for chunk in (ss[i:i + 8] for i in range(0, 64, 8)):
            assert chunk not in message, message
        assert "field 2" in message


# ------------------------------------------------------------------ --show-secrets

def test_show_secrets_is_one_rule_everywhere(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _n_a, ss = sample_secret()
    runs = {
        "table": ["analyze", str(CAPTURE), "--keylog", str(KEYS)],
        "details": ["analyze", str(CAPTURE), "--keylog", str(KEYS), "--details"],
        "json": ["analyze", str(CAPTURE), "--keylog", str(KEYS), "--format", "json"],
        "verify": ["verify", str(CAPTURE), "--keylog", str(KEYS)],
    }
    for what, args in runs.items():
        assert main(args) == 0
        captured = capsys.readouterr()
        assert ss not in captured.out + captured.err, what
        assert main([*args, "--show-secrets"]) == 0
        assert ss in capsys.readouterr().out, what
    for flag, shown in (([], False), (["--show-secrets"], True)):
        out = tmp_path / f"dir{len(flag)}"
        assert main(["decrypt", str(CAPTURE), "--keylog", str(KEYS), "-o", str(out), *flag]) == 0
        capsys.readouterr()
        assert (ss in (out / "index.json").read_text()) is shown


def test_extract_secrets_hides_secret_fields(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    n_a, ss = sample_secret()
    injected = tmp_path / "k.pcapng"
    assert main(["inject-secrets", str(CAPTURE), "--keylog", str(KEYS), "-o",
                 str(injected)]) == 0
    capsys.readouterr()
    assert main(["extract-secrets", str(injected)]) == 0
    captured = capsys.readouterr()
    assert ss not in captured.out + captured.err
    assert captured.out == f"{SS_LABEL} {n_a} [32-byte secret hidden]\n"
    assert "--show-secrets" in captured.err
    assert main(["extract-secrets", str(injected), "--show-secrets"]) == 0
    assert capsys.readouterr().out == f"{SS_LABEL} {n_a} {ss}\n"
    written = tmp_path / "out.keys"
    assert main(["extract-secrets", str(injected), "-o", str(written)]) == 0
    assert ss not in capsys.readouterr().out
    assert written.read_text() == f"{SS_LABEL} {n_a} {ss}\n"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert redact_line("TCPCRYPT_TRAFFIC_KEYS " + "00" * 32 + " " + "11" * 44 + " "
                       + "22" * 44) == ("TCPCRYPT_TRAFFIC_KEYS " + "00" * 32
                                        + " [44-byte secret hidden] [44-byte secret hidden]")
    assert "22" * 8 not in redact_line("SOMETHING_ELSE " + "22" * 32)


# ------------------------------------------------------------------ inject: matching only

def test_inject_embeds_only_entries_of_the_captures_connections(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "many.keys"
    keys.write_text(KEYS.read_text() + filler(45))
    os.chmod(keys, 0o600)
    out = tmp_path / "k.pcapng"
    assert main(["inject-secrets", str(CAPTURE), "--keylog", str(keys), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "1 of 46 key-log entries" in err and "45 matching no connection" in err
    assert main(["extract-secrets", str(out), "--show-secrets"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        x for x in KEYS.read_text().splitlines() if x.startswith("TCPCRYPT")]
    everything = tmp_path / "all.pcapng"
    assert main(["inject-secrets", str(CAPTURE), "--keylog", str(keys), "-o",
                 str(everything), "--all"]) == 0
    assert "46 of 46" in capsys.readouterr().err
    unrelated = tmp_path / "unrelated.keys"
    unrelated.write_text(filler(3))
    assert main(["inject-secrets", str(CAPTURE), "--keylog", str(unrelated), "-o",
                 str(tmp_path / "none.pcapng")]) == 2
    assert "none of the 3 key-log entries" in capsys.readouterr().err
    assert not (tmp_path / "none.pcapng").exists()


def test_inject_keeps_a_resumption_chains_root(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A capture of only the resumed connections still needs the ss[0] they chain from,
    whose own connection (and N_A) it does not show."""
    import struct

    from test_output_safety import records, write_pcap

    from tcpinc_analyze.capture.decode import link_ip_offset

    source = SAMPLES / "resumption.pcap"
    first = analyze_file(str(source)).reports[0]
    port = int(first.a.rsplit(":", 1)[1])
    kept = []
    for r in records(source):
        ip = link_ip_offset(r.linktype, r.data)
        tcp = ip + (r.data[ip] & 0x0F) * 4
        if port not in struct.unpack_from("!HH", r.data, tcp):
            kept.append((r.ts_ns, r.data, r.orig_len))
    capture = tmp_path / "resumed-only.pcap"
    write_pcap(capture, kept)
    keys = tmp_path / "r.keys"
    keys.write_text((SAMPLES / "resumption.keys").read_text() + filler(5))
    out = tmp_path / "r.pcapng"
    assert main(["inject-secrets", str(capture), "--keylog", str(keys), "-o", str(out)]) == 0
    assert "2 of 7 key-log entries" in capsys.readouterr().err
    got = [r.to_json() for r in analyze_file(str(out), decryption=DecryptionContext(
        parse_keylog(""))).reports]
    expected = json.loads((SAMPLES / "resumption.expected.json").read_text())["connections"]
    assert len(got) == 3
    for g, e in zip(got, expected[1:], strict=True):
        assert g["tcpcrypt"]["keys_from"] is not None
        for d in ("ab", "ba"):
            assert g["tcpcrypt"]["decrypted"][d]["sha256"] == \
                e["tcpcrypt"]["decrypted"][d]["sha256"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b"bc", b"#"]), max_size=40),
       st.integers(1, 7))
def test_lines_split_like_universal_newlines(pieces: list[bytes], chunk: int) -> None:
    """Chunked reading ends lines at CR, LF and CRLF exactly as a whole-text split does,
    wherever the chunk boundaries fall (a CRLF cut in two included)."""
    import io
    import re

    data = b"".join(pieces)
    expected = re.split(rb"\r\n|[\r\n]", data)
    if expected and expected[-1] == b"":
        expected.pop()
    old = keylog_module._CHUNK
    keylog_module._CHUNK = chunk
    try:
        got = list(keylog_module.iter_lines(io.BytesIO(data).read))
    finally:
        keylog_module._CHUNK = old
    assert got == list(enumerate(expected, 1))
