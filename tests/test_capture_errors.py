"""A broken capture file says what is wrong with which block (issue 15.5), and a file
from which no packet could be read is unusable input (exit 2), never a silent empty
analysis."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tcpinc_analyze.analysis.run import analyze_file
from tcpinc_analyze.cli import main

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def shb(length: int) -> bytes:
    body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    return struct.pack("<II", 0x0A0D0D0A, length) + body + struct.pack("<I", length)


@pytest.mark.parametrize(("length", "why"), [
    (1 << 30, "exceeds the 256 MiB"), (30, "not a multiple of 4"),
    (16, "below the 28 bytes"), (8, "below the 28 bytes")])
def test_broken_section_header_is_named_and_exits_2(tmp_path: Path, length: int, why: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.pcapng"
    path.write_bytes(shb(length) + b"\0" * 64)
    assert main(["analyze", str(path)]) == 2
    err = capsys.readouterr().err
    assert "section header block at offset 0" in err and why in err, err
    assert "no packet could be read" in err and "Traceback" not in err


def test_broken_block_after_packets_is_named_and_the_rest_analysed(tmp_path: Path) -> None:
    data = (SAMPLES / "ipv6-vlan.pcapng").read_bytes()
    broken = data + struct.pack("<II", 6, 1 << 30) + b"\0" * 32
    path = tmp_path / "tail.pcapng"
    path.write_bytes(broken)
    result = analyze_file(str(path))
    assert result.reports  # the packets before the broken block are analysed
    messages = [f.message for f in result.summary.findings]
    assert any(f"enhanced packet block at offset {len(data)}" in m and "exceeds" in m
               for m in messages), messages


def test_pcap_whose_first_record_is_impossible_exits_2(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
                     + struct.pack("<IIII", 0, 0, 1 << 30, 1 << 30) + b"\0" * 40)
    assert main(["analyze", str(path)]) == 2
    err = capsys.readouterr().err
    assert "packet 1 at offset 24" in err and "no packet could be read" in err
