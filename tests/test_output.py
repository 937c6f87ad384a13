"""Output people can read and trust: every cell shown as it is (IPv6 brackets), a compact
table at 80 columns, honest summaries and exit codes with a wrong key, plurals, each
frame's verdict in --details, and the packets of a failed frame."""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from tcpinc_analyze.analysis.handlers import frame_list_factory
from tcpinc_analyze.analysis.run import analyze_file
from tcpinc_analyze.cli import EXIT_FAILED, EXIT_NOTHING, EXIT_OK, main
from tcpinc_analyze.decryption import DecryptionContext
from tcpinc_analyze.keylog import load_keylogs
from tcpinc_analyze.output.table import connections_table, summary_line
from tcpinc_analyze.synth.capture_writer import PcapWriter
from tcpinc_analyze.synth.catalog import load_catalog
from tcpinc_analyze.synth.packets import (
    TCP_ACK,
    TCP_SYN,
    LinkParams,
    TcpSegment,
    frame,
    tcp_options,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
CATALOG = load_catalog(SAMPLES)


def keys(name: str) -> str:
    return str(SAMPLES / f"{name}.keys")


def decrypted(name: str, **kw: object) -> list:
    ctx = DecryptionContext(load_keylogs([keys(name)], use_env=False).log)
    capture = next(e["capture"] for e in CATALOG if e["name"] == name)
    return analyze_file(str(SAMPLES / capture), decryption=ctx, **kw).reports


def write_pcap(path: Path, segs: list[TcpSegment]) -> Path:
    buf = io.BytesIO()
    writer = PcapWriter(buf, 1)
    for n, seg in enumerate(segs):
        writer.write(1_700_000_000_000_000_000 + n * 1000, frame(seg, LinkParams()))
    path.write_bytes(buf.getvalue())
    return path


def render(renderable: object, width: int) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None, markup=False)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


# ------------------------------------------------------------------ every cell as it is


def test_ipv6_addresses_in_brackets_survive_everywhere(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """``[fd00::a]`` looks like console markup; it must reach the screen unchanged in
    the table, the findings and --details."""
    a, b = "fd00::a", "fd00::b"
    syn = tcp_options((69, bytes([0x23])))
    path = write_pcap(tmp_path / "v6.pcap", [
        TcpSegment(a, b, 40000, 443, 100, 0, TCP_SYN, 1000, syn),
        TcpSegment(b, a, 443, 40000, 500, 101, TCP_SYN | TCP_ACK, 1000),
        TcpSegment(a, b, 40000, 443, 101, 501, TCP_ACK, 1000)])
    assert main(["analyze", str(path), "--details"]) == 0
    out = capsys.readouterr().out
    assert out.count("[fd00::a]:40000") >= 2 and out.count("[fd00::b]:443") >= 2
    assert "synack-without-eno" in out
    assert main(["analyze", str(path), "--keylog", str(tmp_path / "none-[x].keys")]) == 2
    assert "none-[x].keys" in capsys.readouterr().err  # file names are not markup either


# ------------------------------------------------------------------ 80 columns


@pytest.mark.parametrize("name", ["busy-mix", "ipv6-vlan", "wrong-key", "fallback-reasons",
                                  "resumption"])
def test_table_at_80_columns_is_compact_and_cuts_nothing(name: str) -> None:
    entry = next(e for e in CATALOG if e["name"] == name)
    reports = decrypted(name) if entry["keylog"] else analyze_file(
        str(SAMPLES / entry["capture"])).reports
    text = render(connections_table(reports, entry["capture"], width=80), 80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    flat = re.sub(r"\s+", "", text)
    for r in reports:
        assert r.a in flat and r.b in flat  # whole, even where a long one wraps
        if r.eno["reason"]:
            assert r.eno["reason"] in flat
    wide = render(connections_table(reports, entry["capture"], width=200), 200)
    assert "TEP / reason" in wide and "TEP / reason" not in text


def test_cli_table_on_an_80_column_terminal_is_not_cut() -> None:
    import pty
    import select

    master, slave = pty.openpty()
    import fcntl
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([sys.executable, "-m", "tcpinc_analyze.cli", "analyze",
                             str(SAMPLES / "busy-mix.pcap")], stdout=slave,
                            stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
    os.close(slave)
    out = b""
    while True:
        ready = select.select([master], [], [], 30)[0]
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(60) == 0
    os.close(master)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.decode()).replace("\r", "")
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in text and "10.1.0.10:41671" in text and "synack-without-eno" in text


# ------------------------------------------------------------------ wrong key


def test_wrong_key_summary_says_what_happened() -> None:
    reports = decrypted("wrong-key")
    result_line = summary_line(reports, analyze_file(str(SAMPLES / "wrong-key.pcap")).summary)
    text = result_line.plain
    assert "0 decrypted" in text and "1 failing authentication" in text
    assert "1 decrypted" not in text
    table = render(connections_table(reports, "w", width=200), 200)
    assert "3 FAILED" in table


def test_decrypt_exit_codes_say_whether_anything_was_produced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def run(capture: str, *extra: str) -> tuple[int, str]:
        code = main(["decrypt", str(SAMPLES / capture), "-o", str(tmp_path / capture),
                     *extra])
        return code, capsys.readouterr().err

    code, err = run("wrong-key.pcap", "--keylog", keys("wrong-key"))
    assert code == EXIT_FAILED and "authenticate no frame" in err
    os.environ.pop("TCPCRYPT_KEYLOGFILE", None)
    code, err = run("x25519-chacha20.pcap")
    assert code == EXIT_NOTHING and "no key log" in err
    code, err = run("x25519-chacha20.pcap", "--keylog", keys("wrong-key"))
    assert code == EXIT_NOTHING and "no key-log entry matches" in err
    code, err = run("fallback-absent.pcap", "--keylog", keys("wrong-key"))
    assert code == EXIT_NOTHING and "no tcpcrypt connection" in err
    code, err = run("x25519-chacha20.pcap", "--keylog", keys("x25519-chacha20"))
    assert code == EXIT_OK and "1 tcpcrypt connection: 1 decrypted" in err
    code, err = run("conformance-violations.pcap", "--keylog", keys("conformance-violations"))
    assert code == EXIT_OK and "with frames failing authentication (#2)" in err


def test_follow_says_the_keys_fail(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(SAMPLES / "wrong-key.pcap"), "--keylog", keys("wrong-key"),
                 "--follow", "0"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "fail to authenticate all 3 frames" in err and "does the key log" not in err
    assert main(["analyze", str(SAMPLES / "fallback-absent.pcap"), "--follow", "0"]) \
        == EXIT_NOTHING
    assert "not a tcpcrypt connection (ENO absent" in capsys.readouterr().err
    assert main(["analyze", str(SAMPLES / "x25519-chacha20.pcap"), "--follow", "0",
                 "--keylog", keys("wrong-key")]) == EXIT_NOTHING
    assert "no key-log entry matches this connection" in capsys.readouterr().err


# ------------------------------------------------------------------ plurals

SINGULAR_AS_PLURAL = re.compile(
    r"(?<![\d.,])\b1 (packets|connections|errors|warnings|notes|frames|bytes|findings|"
    r"segments|files|entries|lines|rules|violations|plaintext files|more findings)\b")


def test_no_output_says_1_with_a_plural_or_hedges_with_s(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts = []
    for entry in CATALOG:
        capture = str(SAMPLES / entry["capture"])
        extra = ["--keylog", str(SAMPLES / entry["keylog"])] if entry["keylog"] else []
        main(["analyze", capture, *extra, "--all-findings"])
        main(["verify", capture, *extra])
        main(["conformance", capture, *extra])
        if entry["keylog"]:
            main(["decrypt", capture, *extra, "-o", str(tmp_path / entry["name"])])
        captured = capsys.readouterr()
        texts.append(captured.out + captured.err)
    text = "\n".join(texts)
    assert not SINGULAR_AS_PLURAL.findall(text), SINGULAR_AS_PLURAL.findall(text)[:5]
    assert "(s)" not in text
    assert "1 connection," in text and ("1 frame " in text or "1 frame)" in text)


# ------------------------------------------------------------------ --details


def test_details_give_every_frame_its_verdict_flags_and_generation() -> None:
    for name, want in (("wrong-key", {"failed"}), ("rekey-both-directions", {"verified"}),
                       ("p521-aes256-traffic-keys", {"verified", "undecryptable"}),
                       ("conformance-violations", {"verified", "failed"})):
        for report in decrypted(name, handler_factory=frame_list_factory):
            frames = report.to_json().get("frame_list") or []
            got = {f["verdict"] for f in frames}
            if report.tcpcrypt and report.tcpcrypt.get("decrypted"):
                assert got and got <= want, (name, report.id, got)
            for f in frames:
                assert "tcpcrypt.frame.generation" in f
                if f["verdict"] == "verified":
                    assert {"tcpcrypt.plaintext.flags.finp", "tcpcrypt.plaintext.flags.urgp",
                            "tcpcrypt.frame.offset"} <= set(f)
    rekeyed = decrypted("rekey-both-directions", handler_factory=frame_list_factory)[0]
    generations = {f["tcpcrypt.frame.generation"] for f in rekeyed.extra["frame_list"]}
    assert generations >= {0, 1, 2}
    urgent = [f for f in rekeyed.extra["frame_list"] if f.get("tcpcrypt.plaintext.flags.urgp")]
    assert urgent and all("tcpcrypt.plaintext.urgent" in f for f in urgent)


def test_frames_queued_before_their_keys_get_their_verdict_later(tmp_path: Path) -> None:
    """Traffic keys for a connection seen without its Init messages: the frames are
    queued until the keys are known and still get a verdict in --details."""
    reports = decrypted("resumption", handler_factory=frame_list_factory)
    for r in reports:
        frames = r.extra.get("frame_list") or []
        if r.tcpcrypt and r.tcpcrypt.get("decrypted"):
            assert frames and all(f["verdict"] == "verified" for f in frames), r.id
    without = analyze_file(str(SAMPLES / "x25519-chacha20.pcap"),
                           decryption=DecryptionContext(load_keylogs([], use_env=False).log),
                           handler_factory=frame_list_factory).reports[0]
    assert {f["verdict"] for f in without.extra["frame_list"]} == {"no-key"}


def test_details_table_shows_the_verdict_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(SAMPLES / "wrong-key.pcap"), "--keylog", keys("wrong-key"),
                 "--details"]) == 0
    out = capsys.readouterr().out
    assert out.count("FAILED direction = ") == 3
    assert main(["analyze", str(SAMPLES / "x25519-chacha20.pcap"), "--keylog",
                 keys("x25519-chacha20"), "--details", "--format", "json"]) == 0
    frames = json.loads(capsys.readouterr().out)[0]["frame_list"]
    fin = [f for f in frames if f.get("tcpcrypt.plaintext.flags.finp")]
    assert {f["direction"] for f in fin} == {"ab", "ba"}


# ------------------------------------------------------------------ verify: a frame's packets


def test_verify_names_a_failed_frames_first_and_last_packet(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Damage a byte of a frame that spans several segments: verify names the packets
    from the frame's first to its last, and the stream offset."""
    reports = decrypted("x25519-chacha20", handler_factory=frame_list_factory)
    spread = next(f for f in reports[0].extra["frame_list"]
                  if f["first_packet"] != f["packet"])
    first, last = spread["first_packet"], spread["packet"]
    data = bytearray((SAMPLES / "x25519-chacha20.pcap").read_bytes())
    pos, number = 24, 0
    while True:  # find the first segment's record and flip its last payload byte
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        number += 1
        if number == first:
            data[pos + 16 + caplen - 1] ^= 0x40
            break
        pos += 16 + caplen
    damaged = tmp_path / "damaged.pcap"
    damaged.write_bytes(bytes(data))
    assert main(["verify", str(damaged), "--keylog", keys("x25519-chacha20")]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert (f"first at packets {first}-{last}, stream offset "
            f"{spread['tcpcrypt.stream_offset']}") in out
    assert main(["analyze", str(damaged), "--keylog", keys("x25519-chacha20"),
                 "--format", "json"]) == 0
    failed = [f for f in json.loads(capsys.readouterr().out)[0]["findings"]
              if f["code"] == "frame-tag-failed"]
    assert [(f["first_packet"], f["packet"]) for f in failed] == [(first, last)]


# ------------------------------------------------------------------ downgrade


def test_a_downgrade_is_a_warning_with_its_rfc_reference(tmp_path: Path) -> None:
    got = analyze_file(str(SAMPLES / "fallback-synack-stripped.pcap")).reports[0]
    downgrade = [f for f in got.findings if f.code == "eno-downgrade"]
    assert len(downgrade) == 1
    f = downgrade[0]
    assert f.severity == "warning" and f.packet == got.eno["packets"]["syn_b"]
    assert "stripped on the path" in f.message and "RFC 8547 §6" in f.message
    assert f.rfc is None  # no rule of the RFCs is broken: it is not a conformance finding
    for name in ("fallback-absent.pcap", "simultaneous-open.pcap", "x25519-chacha20.pcap"):
        reports = analyze_file(str(SAMPLES / name)).reports
        assert not any(x.code == "eno-downgrade" for r in reports for x in r.findings), name
