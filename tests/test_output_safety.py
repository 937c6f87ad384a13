"""Outputs never destroy input and never leave half a file: same-inode refusal, temporary
names renamed into place, path errors as one ``error:`` line with exit 2, a private
0700 output folder whose planted symlinks are replaced rather than followed, 0600 files
for plaintext and secrets, and writers that name the packet they cannot represent."""

from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tcpinc_analyze.capture.reader import Record, open_input, read_capture
from tcpinc_analyze.cli import main

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
NAME = "x25519-chacha20"
CAPTURE = SAMPLES / f"{NAME}.pcap"
KEYS = SAMPLES / f"{NAME}.keys"


def records(path: Path) -> list[Record]:
    stream = open_input(str(path))
    try:
        return [r for r in read_capture(stream, str(path)) if isinstance(r, Record)]
    finally:
        stream.close()


def write_pcap(path: Path, recs: list[tuple[int, bytes, int]], linktype: int = 1) -> None:
    """(timestamp ns, data, original length) records into a nanosecond pcap."""
    out = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, linktype)]
    for ts, data, orig in recs:
        out.append(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(data), orig) + data)
    path.write_bytes(b"".join(out))


def write_pcapng(path: Path, recs: list[tuple[int, bytes]], *, tsresol: int = 9,
                 tsoffset: int | None = None, linktype: int = 1) -> None:
    """Raw-timestamp records (in the interface's units) into a one-interface pcapng."""
    def block(kind: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    opts = struct.pack("<HH", 9, 1) + bytes((tsresol,)) + b"\0\0\0"
    if tsoffset is not None:
        opts += struct.pack("<HHq", 14, 8, tsoffset)
    opts += struct.pack("<HH", 0, 0)
    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
           block(1, struct.pack("<HHI", linktype, 0, 262144) + opts)]
    for ts, data in recs:
        out.append(block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data),
                                        len(data)) + data))
    path.write_bytes(b"".join(out))


def one_error(err: str) -> str:
    """The stderr of a refused command: exactly one ``error:`` line, no traceback."""
    lines = [line for line in err.splitlines() if not line.startswith("warning:")]
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# ------------------------------------------------------------------ never destroy input

def test_pcap_out_onto_its_input_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    capture = tmp_path / "x.pcap"
    capture.write_bytes(CAPTURE.read_bytes())
    alias = tmp_path / "alias.pcap"
    os.link(capture, alias)
    for out in (capture, alias):
        assert main(["decrypt", str(capture), "--keylog", str(KEYS), "--pcap-out", str(out)]) == 2
        assert "is also an input" in one_error(capsys.readouterr().err)
        assert capture.read_bytes() == CAPTURE.read_bytes()
    keys = tmp_path / "k.keys"
    keys.write_bytes(KEYS.read_bytes())
    assert main(["decrypt", str(capture), "--keylog", str(keys), "--pcap-out", str(keys)]) == 2
    assert keys.read_bytes() == KEYS.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alias.pcap", "k.keys", "x.pcap"]


def test_inject_secrets_onto_its_input_is_refused(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    source = SAMPLES / "pcapng-multi-interface.pcapng"
    capture = tmp_path / "x.pcapng"
    capture.write_bytes(source.read_bytes())
    assert main(["inject-secrets", str(capture), "--keylog",
                 str(SAMPLES / "pcapng-multi-interface.keys"), "-o", str(capture)]) == 2
    assert "is also an input" in one_error(capsys.readouterr().err)
    assert capture.read_bytes() == source.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["x.pcapng"]


@pytest.mark.parametrize("where", ["existing-file", "proc", "missing-folder", "directory"])
def test_path_errors_are_one_line_and_exit_2(tmp_path: Path, where: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "file.txt"
    existing.write_text("keep me")
    target = {"existing-file": existing, "proc": Path("/proc/x"),
              "missing-folder": tmp_path / "no" / "such" / "x.pcap",
              "directory": tmp_path}[where]
    if where not in ("directory", "missing-folder"):  # -o creates missing folders
        assert main(["decrypt", str(CAPTURE), "--keylog", str(KEYS), "-o", str(target)]) == 2
        one_error(capsys.readouterr().err)
    file_target = {"existing-file": existing / "x.pcap", "proc": Path("/proc/x.pcap"),
                   "missing-folder": target, "directory": target}[where]
    assert main(["decrypt", str(CAPTURE), "--keylog", str(KEYS), "--pcap-out",
                 str(file_target)]) == 2
    one_error(capsys.readouterr().err)
    assert main(["inject-secrets", str(CAPTURE), "--keylog", str(KEYS), "-o",
                 str(file_target)]) == 2
    one_error(capsys.readouterr().err)
    assert main(["extract-secrets", str(SAMPLES / "pcapng-multi-interface.pcapng"), "-o",
                 str(file_target)]) == 2
    one_error(capsys.readouterr().err)
    assert existing.read_text() == "keep me"


# ------------------------------------------------------------------ decrypt -o DIR

def test_decrypt_dir_is_private_and_complete(tmp_path: Path) -> None:
    out = tmp_path / "plain"
    assert main(["decrypt", str(CAPTURE), "--keylog", str(KEYS), "-o", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    names = sorted(p.name for p in out.iterdir())
    assert names == ["conn-00000-ab.bin", "conn-00000-ba.bin", "index.json"]
    for p in out.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    index = json.loads((out / "index.json").read_text())
    assert (out / "conn-00000-ab.bin").read_bytes().startswith(b"GET /index.txt")
    assert "secrets" not in json.dumps(index)
    assert [p.name for p in tmp_path.iterdir()] == ["plain"]  # no temporary left


def test_decrypt_dir_symlinks_are_replaced_not_followed(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    """Issue 15.1: someone who can write into DIR plants symlinks to files of the user."""
    out = tmp_path / "shared"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    victim2 = tmp_path / "victim2"
    (out / "conn-00000-ab.bin").symlink_to(victim)
    (out / "index.json").symlink_to(victim2)
    assert main(["decrypt", str(CAPTURE), "--keylog", str(KEYS), "-o", str(out)]) == 2
    assert "not empty" in one_error(capsys.readouterr().err)
    assert main(["decrypt", str(CAPTURE), "--keylog", str(KEYS), "-o", str(out),
                 "--force"]) == 0
    assert victim.read_text() == "precious"
    assert not victim2.exists()
    plain = out / "conn-00000-ab.bin"
    assert not plain.is_symlink() and plain.read_bytes().startswith(b"GET /index.txt")
    assert stat.S_IMODE(plain.stat().st_mode) == 0o600
    assert not (out / "index.json").is_symlink()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_decrypt_dir_failure_leaves_nothing(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    out = tmp_path / "plain"
    assert main(["decrypt", str(bad), "--keylog", str(KEYS), "-o", str(out)]) == 2
    one_error(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pcap"]


def test_secret_and_plaintext_outputs_are_0600(tmp_path: Path) -> None:
    pcap = tmp_path / "plain.pcap"
    assert main(["decrypt", str(CAPTURE), "--keylog", str(KEYS), "--pcap-out", str(pcap)]) == 0
    injected = tmp_path / "with-keys.pcapng"
    assert main(["inject-secrets", str(CAPTURE), "--keylog", str(KEYS), "-o",
                 str(injected)]) == 0
    for path in (pcap, injected):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.pcap", "with-keys.pcapng"]


# ------------------------------------------------------------------ writer crashes (10.5)

def test_inject_secrets_link_type_beyond_16_bits(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    recs = records(CAPTURE)
    capture = tmp_path / "wide.pcap"
    write_pcap(capture, [(r.ts_ns, r.data, r.orig_len) for r in recs], linktype=70000)
    out = tmp_path / "out.pcapng"
    assert main(["inject-secrets", str(capture), "--keylog", str(KEYS), "-o", str(out),
                 "--all"]) == 2
    message = one_error(capsys.readouterr().err)
    assert "packet 1" in message and "link type 70000" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wide.pcap"]
    # --pcap-out: no connection can be read under an unknown link type, so there is
    # nothing to rewrite: exit 3, no file, no traceback
    for name in ("o.pcapng", "o.pcap"):
        assert main(["decrypt", str(capture), "--keylog", str(KEYS), "--pcap-out",
                     str(tmp_path / name)]) == 3
        assert "Traceback" not in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wide.pcap"]


@pytest.mark.parametrize(("tsresol", "tsoffset", "ticks"), [
    pytest.param(9, -(10**9), lambda i: i * 1000, id="negative"),
    pytest.param(0, None, lambda i: (1 << 40) + i, id="beyond-64-bit-ns"),
    pytest.param(9, (1 << 62), lambda i: i, id="offset-beyond-64-bit-ns"),
])
def test_inject_secrets_keeps_timestamps_pcapng_cannot_hold_in_ns(
        tmp_path: Path, tsresol: int, tsoffset: int | None, ticks) -> None:  # noqa: ANN001
    recs = records(CAPTURE)
    capture = tmp_path / "odd-times.pcapng"
    write_pcapng(capture, [(ticks(i), r.data) for i, r in enumerate(recs)], tsresol=tsresol,
                 tsoffset=tsoffset)
    before = records(capture)
    assert before[0].ts_ns < 0 or before[0].ts_ns >= 1 << 64
    out = tmp_path / "out.pcapng"
    assert main(["inject-secrets", str(capture), "--keylog", str(KEYS), "-o", str(out)]) == 0
    after = records(out)
    assert [(r.ts_ns, r.data, r.orig_len) for r in after] == \
        [(r.ts_ns, r.data, r.orig_len) for r in before]
    plain = tmp_path / "plain.pcapng"
    assert main(["decrypt", str(capture), "--keylog", str(KEYS), "--pcap-out", str(plain)]) == 0
    times = [r.ts_ns for r in records(plain)]
    assert set(times) <= {r.ts_ns for r in before} and times == sorted(times)


def test_inject_secrets_keeps_original_lengths(tmp_path: Path) -> None:
    """A snaplen-truncated packet stays truncated (the copy used to claim it whole)."""
    source = SAMPLES / "snaplen.pcap"
    out = tmp_path / "out.pcapng"
    assert main(["inject-secrets", str(source), "--keylog", str(SAMPLES / "snaplen.keys"),
                 "-o", str(out), "--all"]) == 0
    assert [(r.data, r.orig_len) for r in records(out)] == \
        [(r.data, r.orig_len) for r in records(source)]


def _tcp_at(data: bytes) -> int:
    return 14 + (data[14] & 0x0F) * 4


@pytest.mark.parametrize("damage", ["tcp-header-too-long", "link-header-short",
                                    "ip-header-short", "ipv4-ihl-below-20"])
def test_pcap_out_survives_headers_shorter_than_they_claim(tmp_path: Path, damage: str,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    recs = records(CAPTURE)
    out = []
    for r in recs:
        data = bytearray(r.data)
        if r.number in (5, 12, 18):  # ACKs of the decrypted connection
            tcp = _tcp_at(data)
            if damage == "tcp-header-too-long":
                data[tcp + 12] = 0xF0  # data offset 60 in a 20-byte segment
            elif damage == "link-header-short":
                data = data[:10]
            elif damage == "ip-header-short":
                data = data[:14 + 12]
            else:
                data[14] = 0x42
        out.append((r.ts_ns, bytes(data), len(data)))
    capture = tmp_path / "damaged.pcap"
    write_pcap(capture, out)
    plain = tmp_path / "plain.pcap"
    assert main(["decrypt", str(capture), "--keylog", str(KEYS), "--pcap-out", str(plain),
                 "-o", str(tmp_path / "dir")]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    rewritten = {r.data for r in records(plain)}
    for number in (5, 12, 18):
        assert out[number - 1][1] in rewritten  # left as captured


# ------------------------------------------------------------------ --pcap-out and tshark

def _analysis_flags(path: Path) -> Counter:
    """tshark's TCP analysis expert messages of a capture, counted."""
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "tcp.analysis.flags", "-T",
                          "fields", "-e", "_ws.expert.message"], capture_output=True, text=True,
                         check=True).stdout
    return Counter(message for line in out.splitlines() for message in line.split(","))


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("name", ["x25519-chacha20", "busy-mix", "rekey-both-directions",
                                  "recorded-http", "recorded-bulk", "resumption", "seq-wrap",
                                  "gap", "retransmission-reorder", "pcapng-multi-interface",
                                  "linux-sll", "snaplen"])
def test_pcap_out_keeps_tcp_analysis_as_clean_as_the_original(tmp_path: Path, name: str
                                                              ) -> None:
    """Issue 10.13: Init segments and frame fragments rewritten to nothing used to give
    spurious duplicate ACKs, window updates and keep-alives; the rewritten capture may
    have no TCP analysis flag the original does not have."""
    capture = next(SAMPLES.glob(f"{name}.pcap*"))
    out = tmp_path / f"plain{capture.suffix}"
    assert main(["decrypt", str(capture), "--keylog", str(SAMPLES / f"{name}.keys"),
                 "--pcap-out", str(out)]) == 0
    before, after = _analysis_flags(capture), _analysis_flags(out)
    extra = after - before
    assert not extra, f"new TCP analysis flags: {dict(extra)}"
    assert len(records(out)) >= len(records(capture)) // 2
