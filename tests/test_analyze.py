"""The analyzer core (`tcpinc-analyze analyze`), checked against every sample's expected
results and against hand-made captures for the input edge cases."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from expected_check import assert_findings_exact
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpinc_analyze.analysis.run import analyze_file
from tcpinc_analyze.capture.reader import CaptureError
from tcpinc_analyze.cli import main
from tcpinc_analyze.synth.capture_writer import PcapngWriter, PcapWriter
from tcpinc_analyze.synth.catalog import load_catalog
from tcpinc_analyze.synth.packets import (
    TCP_ACK,
    TCP_SYN,
    LinkParams,
    LinkType,
    TcpSegment,
    build_ip,
    encapsulate,
    frame,
    tcp_options,
)

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
CATALOG = load_catalog(SAMPLES)
KEY_DEPENDENT = {"frame-tag-failed", "tcpcrypt-no-fin-frame", "fin-without-finp",
                 "frames-after-finp", "plaintext-reserved-bits", "tcpcrypt-wrong-key",
                 "tcpcrypt-urgent", "tcpcrypt-no-key-for-frame", "tcpcrypt-no-keys"}
"""Findings only a decryption can show: checked with keys in test_decrypt."""


def expected(entry: dict) -> dict:
    return json.loads((SAMPLES / entry["expected"]).read_text())


def analyze(path: Path | str) -> list[dict]:
    return [r.to_json() for r in analyze_file(str(path)).reports]


@pytest.mark.parametrize("entry", CATALOG, ids=[e["name"] for e in CATALOG])
def test_sample_matches_expected_without_keys(entry: dict) -> None:
    exp = expected(entry)
    got = analyze(SAMPLES / entry["capture"])
    assert len(got) == len(exp["connections"])
    for g, e in zip(got, exp["connections"], strict=True):
        where = f"{entry['name']} connection {e['id']}"
        assert g["id"] == e["id"], where
        assert (g["a"], g["b"]) == (e["a"], e["b"]), where
        for key in ("status", "reason", "negotiated_tep", "encoding"):
            assert g["eno"][key] == e["eno"][key], f"{where}: eno.{key}"
        et, gt = e["tcpcrypt"], g["tcpcrypt"]
        assert (gt is None) == (et is None), f"{where}: tcpcrypt presence"
        if et is not None:
            assert gt["resumed"] == et["resumed"], where
            if not et["resumed"]:  # a resumed session's AEAD is known only with keys
                assert gt["aead"] == et["aead"], where
            # where a frame's start is lost, a reader without keys delimits fewer frames:
            # the expected file says how many (without_keys), else the same as with keys
            counts = et.get("without_keys") or et
            for d in ("ab", "ba"):
                assert gt["frames"][d] == counts["frames"][d], f"{where}: frames.{d}"
                assert gt["rekeys"][d] == counts["rekeys"][d], f"{where}: rekeys.{d}"
            for name, field in (("init1", "length"), ("init2", "length"),
                                ("init1", "ignored_len"), ("init2", "ignored_len")):
                if et.get(name) and field in et[name]:
                    assert gt[name][field] == et[name][field], f"{where}: {name}.{field}"
        got_findings = g["findings"]
        assert_findings_exact(where, e["findings"], got_findings, skip=KEY_DEPENDENT)
        # Conformance findings are exact: each one the sample's author built in, no other.
        want = Counter(f["code"] for f in e["findings"]
                       if f.get("conformance") and f["code"] not in KEY_DEPENDENT)
        got = Counter(x["code"] for x in got_findings
                      if x.get("rfc") and x["code"] not in KEY_DEPENDENT)
        assert got == want, f"{where}: conformance findings"


def test_json_contract_keys() -> None:
    got = analyze(SAMPLES / "x25519-chacha20.pcap")[0]
    assert {"id", "a", "b", "eno", "tcpcrypt", "findings", "community_id"} <= set(got)
    assert {"status", "reason", "negotiated_tep", "encoding"} <= set(got["eno"])
    assert {"resumed", "aead", "frames", "rekeys", "session_id", "keys_from", "decrypted",
            "resumes"} <= set(got["tcpcrypt"])
    assert got["community_id"].startswith("1:")


def test_community_id_matches_the_published_vector(tmp_path: Path) -> None:
    # Community ID spec test vector: TCP 128.232.110.120:34855 -> 66.35.250.204:80.
    path = tmp_path / "cid.pcap"
    write_pcap(path, [TcpSegment("128.232.110.120", "66.35.250.204", 34855, 80, 1, 0,
                                 TCP_SYN, 1000)])
    assert analyze(path)[0]["community_id"] == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="


# ------------------------------------------------------------------ hand-made captures

ETHERNET = LinkParams()


def write_pcap(path: Path, segs: list[TcpSegment], link: LinkParams = ETHERNET,
               raw: list[bytes] | None = None) -> None:
    buf = io.BytesIO()
    writer = PcapWriter(buf, link.linktype)
    for n, seg in enumerate(segs):
        writer.write(1_700_000_000_000_000_000 + n * 1000, frame(seg, link))
    for n, data in enumerate(raw or []):
        writer.write(1_700_000_001_000_000_000 + n * 1000, data)
    path.write_bytes(buf.getvalue())


def handshake(syn_opts: bytes, synack_opts: bytes, ack_opts: bytes,
              a: str = "10.9.0.1", b: str = "10.9.0.2") -> list[TcpSegment]:
    return [TcpSegment(a, b, 40000, 80, 100, 0, TCP_SYN, 1000, syn_opts),
            TcpSegment(b, a, 80, 40000, 500, 101, TCP_SYN | TCP_ACK, 1000, synack_opts),
            TcpSegment(a, b, 40000, 80, 101, 501, TCP_ACK, 1000, ack_opts)]


def test_ipv4_fragments_are_reassembled(tmp_path: Path) -> None:
    segs = handshake(tcp_options((69, bytes([0x23]))), tcp_options((69, bytes([0x01, 0x23]))),
                     tcp_options((69, b"")))
    packet = build_ip(segs[0])
    header, body = bytearray(packet[:20]), packet[20:]
    frames = []
    for off, chunk, more in ((0, body[:16], True), (16, body[16:], False)):
        h = bytearray(header)
        struct.pack_into("!H", h, 2, 20 + len(chunk))
        struct.pack_into("!H", h, 6, (off // 8) | (0x2000 if more else 0))
        struct.pack_into("!H", h, 10, 0)
        ck = sum(struct.unpack("!10H", bytes(h)))
        while ck >> 16:
            ck = (ck & 0xFFFF) + (ck >> 16)
        struct.pack_into("!H", h, 10, ~ck & 0xFFFF)
        frames.append(encapsulate(bytes(h) + chunk, LinkParams()))
    path = tmp_path / "frag.pcap"
    buf = io.BytesIO()
    w = PcapWriter(buf, 1)
    for n, data in enumerate([frames[1], frames[0]] + [frame(s, LinkParams())
                                                        for s in segs[1:]]):
        w.write(10**18 + n, data)
    path.write_bytes(buf.getvalue())
    got = analyze(path)
    assert len(got) == 1
    assert got[0]["eno"]["status"] == "negotiated"
    assert got[0]["eno"]["negotiated_tep"] == 0x23


def test_ipv6_extension_headers_are_skipped(tmp_path: Path) -> None:
    segs = handshake(tcp_options((69, bytes([0x24]))), tcp_options((69, bytes([0x01, 0x24]))),
                     tcp_options((69, b"")), a="2001:db8::1", b="2001:db8::2")
    frames = []
    for seg in segs:
        packet = bytearray(build_ip(seg))
        # Insert a hop-by-hop options header (8 bytes, PadN) and a destination options
        # header between the IPv6 header and TCP.
        ext = bytes([60, 0, 1, 4, 0, 0, 0, 0]) + bytes([6, 0, 1, 4, 0, 0, 0, 0])
        plen = struct.unpack_from("!H", packet, 4)[0] + len(ext)
        struct.pack_into("!H", packet, 4, plen)
        packet[6] = 0
        frames.append(encapsulate(bytes(packet[:40]) + ext + bytes(packet[40:]), LinkParams()))
    path = tmp_path / "v6ext.pcap"
    write_pcap(path, [], raw=frames)
    got = analyze(path)
    assert got[0]["a"] == "[2001:db8::1]:40000"
    assert got[0]["eno"]["negotiated_tep"] == 0x24


def test_legacy_crypt_option_is_labelled_not_malformed(tmp_path: Path) -> None:
    segs = handshake(tcp_options((69, b"\x01")), tcp_options((69, b"\x41\x00\x01\x00")),
                     tcp_options((70, b"\x00" * 4)))
    path = tmp_path / "legacy.pcap"
    write_pcap(path, segs)
    got = analyze(path)[0]
    assert got["eno"]["status"] == "absent"
    assert got["eno"]["legacy_tcpcrypt"] is True
    assert any(f["code"] == "legacy-tcpcrypt-option" for f in got["findings"])
    assert not any(f["code"] == "eno-malformed" for f in got["findings"])


def test_eno_option_running_past_the_header_is_malformed(tmp_path: Path) -> None:
    # Kind 69 claiming 10 bytes with only 4 left: the strict walker flags it.
    bad = tcp_options((2, b"\x05\xb4")) + bytes([69, 10, 0x23, 0x21])
    segs = handshake(bad, tcp_options((69, bytes([0x01, 0x23]))), tcp_options((69, b"")))
    path = tmp_path / "bad.pcap"
    write_pcap(path, segs)
    got = analyze(path)[0]
    assert got["eno"]["reason"] == "malformed-eno"
    msgs = [f for f in got["findings"] if f["packet"] == 1]
    assert any("length 10" in f["message"] for f in msgs)


def test_reserved_bits_are_reported(tmp_path: Path) -> None:
    segs = handshake(tcp_options((69, bytes([0x1C, 0x23]))),
                     tcp_options((69, bytes([0x01, 0x23]))), tcp_options((69, b"")))
    path = tmp_path / "z.pcap"
    write_pcap(path, segs)
    got = analyze(path)[0]
    assert got["eno"]["status"] == "negotiated"
    assert [(f["code"], f["packet"], f["rfc"]) for f in got["findings"]] == [
        ("eno-global-reserved", 1, "RFC 8547 §4.2")]


def test_unsupported_linktype_is_named_and_rest_is_read(tmp_path: Path) -> None:
    segs = handshake(b"", b"", b"")
    buf = io.BytesIO()
    w = PcapngWriter(buf)
    w.add_interface(147)  # USER0
    w.add_interface(1)
    w.write(0, 10**18, b"\x00" * 60)
    for n, seg in enumerate(segs):
        w.write(1, 10**18 + n + 1, frame(seg, LinkParams()))
    path = tmp_path / "link.pcapng"
    path.write_bytes(buf.getvalue())
    result = analyze_file(str(path))
    assert len(result.reports) == 1
    assert any("link type 147" in f.message for f in result.summary.findings)


def test_two_pcapng_sections_are_both_read(tmp_path: Path) -> None:
    parts = []
    for port in (1000, 2000):
        buf = io.BytesIO()
        w = PcapngWriter(buf)
        w.add_interface(LinkType.RAW, tsresol=9)
        for n, seg in enumerate(handshake(b"", b"", b"")):
            seg = TcpSegment(seg.src, seg.dst, port if seg.sport == 40000 else seg.sport,
                             port if seg.dport == 40000 else seg.dport, seg.seq, seg.ack,
                             seg.flags, seg.window)
            w.write(0, 10**18 + n, build_ip(seg))
        parts.append(buf.getvalue())
    path = tmp_path / "sections.pcapng"
    path.write_bytes(b"".join(parts))
    assert [r["a"] for r in analyze(path)] == ["10.9.0.1:1000", "10.9.0.1:2000"]


def test_truncated_file_is_reported_with_offset(tmp_path: Path) -> None:
    data = (SAMPLES / "x25519-chacha20.pcap").read_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:5000])
    result = analyze_file(str(path))
    assert len(result.reports) == 1
    problems = [f for f in result.summary.findings if f.code == "capture-damaged"]
    assert problems and "file ends" in problems[0].message and problems[0].offset


def test_not_a_capture_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "text.pcap"
    path.write_text("hello, this is not a capture\n")
    with pytest.raises(CaptureError):
        analyze_file(str(path))
    assert main(["analyze", str(path)]) == 2
    assert "not a pcap or pcapng file" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "missing.pcap")]) == 2


def test_stdin_and_jsonl() -> None:
    data = (SAMPLES / "busy-mix.pcap").read_bytes()
    out = subprocess.run([sys.executable, "-m", "tcpinc_analyze.cli", "analyze", "-",
                          "--format", "jsonl"], input=data, capture_output=True, check=True)
    lines = [json.loads(line) for line in out.stdout.decode().splitlines()]
    assert sorted(x["id"] for x in lines) == list(range(60))


def test_cli_table_and_details(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(SAMPLES / "fallback-reasons.pcap")]) == 0
    out = capsys.readouterr().out
    assert "role-conflict" in out and "9 connections" in out
    assert main(["analyze", str(SAMPLES / "rekey-both-directions.pcap"), "--details"]) == 0
    out = capsys.readouterr().out
    assert "tcpcrypt.frame.control.rekey = true" in out
    assert "tcpeno.tep = 35" in out


# ------------------------------------------------------------------ never a traceback

SOURCES = [SAMPLES / n for n in ("fallback-reasons.pcap", "pcapng-multi-interface.pcapng",
                                  "retransmission-reorder.pcap", "tcpcryptd-2016-http-get.pcap")]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SOURCES), st.integers(0, 10**6), st.lists(
    st.tuples(st.integers(0, 10**6), st.integers(0, 7)), max_size=40),
    st.booleans())
def test_mutated_samples_never_raise(tmp_path_factory: pytest.TempPathFactory, source: Path,
                                     cut: int, flips: list[tuple[int, int]],
                                     truncate: bool) -> None:
    data = bytearray(source.read_bytes())
    for pos, bit in flips:
        p = 24 + pos % max(1, len(data) - 24)  # keep the file header mostly valid
        data[p] ^= 1 << bit
    if truncate:
        data = data[:max(4, cut % len(data))]
    path = tmp_path_factory.mktemp("fuzz") / source.name
    path.write_bytes(bytes(data))
    try:
        result = analyze_file(str(path))
    except CaptureError:
        return
    for report in result.reports:
        json.dumps(report.to_json())


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=3000))
def test_random_bytes_never_raise(tmp_path_factory: pytest.TempPathFactory,
                                  blob: bytes) -> None:
    for head in (b"", bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"),
                 bytes.fromhex("0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000")):
        path = tmp_path_factory.mktemp("rand") / "r.pcap"
        path.write_bytes(head + blob)
        try:
            analyze_file(str(path))
        except CaptureError:
            pass


def test_python_field_names_come_from_the_shared_field_spec() -> None:
    """Every spec-style name the analyzer prints (JSON, --details) is declared in
    dissectors/fields.json, the spec the Lua dissector is generated from."""
    from tcpinc_analyze.analysis.handlers import Handlers, frame_list_factory
    from tcpinc_analyze.fieldspec import FIELDS

    names: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key.startswith(("tcpeno.", "tcpcrypt.")):
                    names.add(key)
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    for entry in CATALOG:
        result = analyze_file(str(SAMPLES / entry["capture"]),
                              handler_factory=Handlers([frame_list_factory]))
        for report in result.reports:
            walk(report.to_json())
    assert {"tcpeno.tep", "tcpeno.global.b", "tcpcrypt.frame.clen", "tcpcrypt.resume.half",
            "tcpcrypt.stream_offset"} <= names
    assert names - set(FIELDS) == set()


def test_every_finding_code_is_declared_in_the_field_spec() -> None:
    """Each code the analyzer reports on the samples (with and without keys) has an
    expert-info definition in dissectors/fields.json, so Wireshark can show it too."""
    from tcpinc_analyze.decryption import DecryptionContext
    from tcpinc_analyze.fieldspec import EXPERTS
    from tcpinc_analyze.keylog import load_keylogs

    codes: set[str] = set()
    for entry in CATALOG:
        path = str(SAMPLES / entry["capture"])
        keys = [str(SAMPLES / entry["keylog"])] if entry["keylog"] else []
        for ctx in (None, DecryptionContext(load_keylogs(keys, use_env=False).log)):
            result = analyze_file(path, decryption=ctx)
            codes |= {f.code for r in result.reports for f in r.findings}
            codes |= {f.code for f in result.summary.findings}
    assert len(codes) > 40
    assert codes <= set(EXPERTS), sorted(codes - set(EXPERTS))
