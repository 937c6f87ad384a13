"""Floods of findings stay readable and bounded: repeated findings of one code are capped
per connection (first few in full, then a count) in JSON and the table alike; incomplete
IP fragment trains are reported once per capture; capture-level floods say how many."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pytest

from tcpinc_analyze.analysis.run import analyze_file
from tcpinc_analyze.cli import main
from tcpinc_analyze.findings import FINDINGS_PER_CODE, Finding, FindingList, Severity
from tcpinc_analyze.synth.capture_writer import PcapWriter
from tcpinc_analyze.synth.packets import (
    TCP_ACK,
    TCP_SYN,
    LinkParams,
    TcpSegment,
    build_ip,
    encapsulate,
    frame,
    tcp_options,
)

A, B = "10.5.0.1", "10.5.0.2"


def write(path: Path, frames: list[bytes]) -> Path:
    buf = io.BytesIO()
    writer = PcapWriter(buf, 1)
    for n, data in enumerate(frames):
        writer.write(1_700_000_000_000_000_000 + n * 1000, data)
    path.write_bytes(buf.getvalue())
    return path


def reordered_connection(segments: int) -> list[bytes]:
    """An ENO handshake (its streams are reassembled), then ``segments`` one-byte data
    segments sent last-first: every one but the last to arrive is out of order."""
    link = LinkParams()
    out = [frame(TcpSegment(A, B, 40000, 80, 100, 0, TCP_SYN, 1000,
                            tcp_options((69, bytes([0x23])))), link),
           frame(TcpSegment(B, A, 80, 40000, 500, 101, TCP_SYN | TCP_ACK, 1000,
                            tcp_options((69, bytes([0x01, 0x23])))), link),
           frame(TcpSegment(A, B, 40000, 80, 101, 501, TCP_ACK, 1000,
                            tcp_options((69, b""))), link)]
    for i in reversed(range(segments)):
        out.append(frame(TcpSegment(A, B, 40000, 80, 101 + i, 501, TCP_ACK, 1000,
                                    payload=bytes([65 + i % 26])), link))
    return out


def test_finding_list_keeps_the_first_of_a_code_and_counts_the_rest() -> None:
    found = FindingList()
    for n in range(1, 1001):
        found.append(Finding(Severity.NOTE, "tcp-out-of-order", "x", None, n))
    found.append(Finding(Severity.ERROR, "tcp-gap", "y", None, 5))
    assert [f.packet for f in found if f.code == "tcp-out-of-order"] == \
        list(range(1, FINDINGS_PER_CODE + 1))
    assert found.suppressed == {"tcp-out-of-order": 1000 - FINDINGS_PER_CODE}
    assert found.first_suppressed == {"tcp-out-of-order": FINDINGS_PER_CODE + 1}
    assert len(found) == FINDINGS_PER_CODE + 1


def test_repeated_findings_are_capped_in_json_and_table(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    segments = 600
    path = write(tmp_path / "reorder.pcap", reordered_connection(segments))
    got = analyze_file(str(path)).reports[0].to_json()
    ooo = [f for f in got["findings"] if f["code"] == "tcp-out-of-order"]
    hidden = got["findings_suppressed"]["tcp-out-of-order"]
    assert len(ooo) == FINDINGS_PER_CODE
    assert len(ooo) + hidden == segments - 1
    capped = [f for f in got["findings"] if f["code"] == "findings-capped"]
    assert len(capped) == 1 and f"{hidden} more 'tcp-out-of-order' findings" in \
        capped[0]["message"]
    # findings come in stream order (offset i sits in packet segments + 3 - i): the
    # count names the packet of the first one not listed, offset FINDINGS_PER_CODE + 1
    assert capped[0]["packet"] == segments + 3 - (FINDINGS_PER_CODE + 1)
    assert len(json.dumps(got)) < 8000

    assert main(["analyze", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{hidden} more 'tcp-out-of-order' findings" in out  # shown even past the limit
    total = sum(f["code"] != "findings-capped" for f in got["findings"]) + hidden
    assert f" {total} (1 err) " in out  # the findings column counts every finding
    assert "(and" in out and "counted, not listed)" in out
    assert main(["analyze", str(path), "--all-findings"]) == 0
    out = capsys.readouterr().out
    assert out.count("arrived before the bytes ahead of it") == FINDINGS_PER_CODE


def fragments(src: str, dst: str, ident: int, version: int) -> list[bytes]:
    """The first of two fragments of a TCP SYN (the second never comes)."""
    seg = TcpSegment(src, dst, 1000 + ident % 50000, 80, ident, 0, TCP_SYN, 1000)
    packet = build_ip(seg)
    if version == 4:
        header, body = bytearray(packet[:20]), packet[20:]
        struct.pack_into("!H", header, 2, 20 + 8)
        struct.pack_into("!H", header, 4, ident & 0xFFFF)
        struct.pack_into("!H", header, 6, 0x2000)  # more fragments, offset 0
        return [encapsulate(bytes(header) + body[:8], LinkParams())]
    fixed, body = bytearray(packet[:40]), packet[40:]
    frag = bytes([6, 0]) + struct.pack("!H", 0x0001) + struct.pack("!I", ident)
    struct.pack_into("!H", fixed, 4, len(frag) + 8)
    fixed[6] = 44
    return [encapsulate(bytes(fixed) + frag + body[:8], LinkParams())]


def test_incomplete_fragment_trains_are_reported_once(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    frames = []
    for i in range(300):  # more than the reassembly buffer holds: most are dropped early
        frames += fragments(A, B, i + 1, 4)
    for i in range(3):
        frames += fragments("fd00::1", "fd00::2", i + 1, 6)
    path = write(tmp_path / "frags.pcap", frames)
    result = analyze_file(str(path))
    found = [f for f in result.summary.findings if f.code == "ip-fragments-incomplete"]
    assert len(found) == 1
    assert found[0].packet == 1 and found[0].severity == "warning"
    assert "300 IPv4 and 3 IPv6 fragment trains never completed" in found[0].message
    assert main(["analyze", str(path)]) == 0
    assert "300 IPv4 and 3 IPv6 fragment trains" in capsys.readouterr().out
    one = write(tmp_path / "one.pcap", fragments(A, B, 7, 4))
    message = analyze_file(str(one)).summary.findings[0].message
    assert message.startswith("1 IPv4 fragment train never completed (the first began at "
                              "packet 1)")


def test_a_completed_train_is_not_reported(tmp_path: Path) -> None:
    seg = TcpSegment(A, B, 40000, 80, 100, 0, TCP_SYN, 1000)
    packet = build_ip(seg)
    header, body = packet[:20], packet[20:]
    out = []
    for off, chunk, more in ((0, body[:8], True), (8, body[8:], False)):
        h = bytearray(header)
        struct.pack_into("!H", h, 2, 20 + len(chunk))
        struct.pack_into("!H", h, 6, (off // 8) | (0x2000 if more else 0))
        out.append(encapsulate(bytes(h) + chunk, LinkParams()))
    result = analyze_file(str(write(tmp_path / "whole.pcap", out)))
    assert len(result.reports) == 1 and not result.summary.findings


def test_capture_level_floods_say_how_many_were_not_listed(tmp_path: Path) -> None:
    bad = bytes(14)  # Ethernet with type 0: not IP; then truncated IPv4 headers
    frames = [bad[:12] + b"\x08\x00" + b"\x45" for _ in range(35)]
    result = analyze_file(str(write(tmp_path / "bad.pcap", frames)))
    listed = [f for f in result.summary.findings if f.code == "packet-malformed"]
    capped = [f for f in result.summary.findings if f.code == "findings-capped"]
    assert len(listed) == 20
    assert len(capped) == 1 and "15 more 'packet-malformed' findings" in capped[0].message
