"""RFC 8547 §4.1, §4.6 and §4.7 rules on hand-built handshakes: the cases where a loose
reading would blame a host the RFC does not bind, or miss one it does."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from test_analyze import analyze, handshake, write_pcap

from tcpinc_analyze.synth.packets import TCP_ACK, TCP_SYN, TcpSegment, tcp_options


def _codes(got: dict) -> list[str]:
    return [f["code"] for f in got["findings"]]


def test_syn_data_acknowledged_by_a_host_without_eno_is_not_blamed(tmp_path: Path) -> None:
    """§4.7 binds hosts that implement ENO; a SYN-ACK without ENO shows none."""
    syn, synack, ack = handshake(tcp_options((69, bytes([0x23]))), tcp_options(),
                                 tcp_options())
    syn = replace(syn, payload=b"early")
    synack = replace(synack, ack=syn.seq + 6)  # it acknowledged the SYN data
    ack = replace(ack, seq=syn.seq + 6)
    write_pcap(tmp_path / "c.pcap", [syn, synack, ack])
    got = analyze(tmp_path / "c.pcap")[0]
    # Only the sender is blamed (a SYN with ENO and a tcpcrypt SYN TEP carries data).
    assert [(f["code"], f["packet"]) for f in got["findings"] if f["code"] == "eno-syn-data"] \
        == [("eno-syn-data", 1)]


def test_syn_data_acknowledged_by_an_eno_host_is_blamed(tmp_path: Path) -> None:
    syn, synack, ack = handshake(tcp_options((69, bytes([0x23]))),
                                 tcp_options((69, bytes([0x01, 0x23]))), tcp_options((69, b"")))
    syn = replace(syn, payload=b"early")
    synack = replace(synack, ack=syn.seq + 6)
    ack = replace(ack, seq=syn.seq + 6)
    write_pcap(tmp_path / "c.pcap", [syn, synack, ack])
    got = analyze(tmp_path / "c.pcap")[0]
    assert [f["packet"] for f in got["findings"] if f["code"] == "eno-syn-data"] == [1, 2]


def _simultaneous(syn_x: bytes, syn_y: bytes, synack_x: bytes) -> list[TcpSegment]:
    a, b = "10.9.0.1", "10.9.0.2"
    return [TcpSegment(a, b, 40000, 40001, 100, 0, TCP_SYN, 1000, syn_x),
            TcpSegment(b, a, 40001, 40000, 500, 0, TCP_SYN, 1000, syn_y),
            TcpSegment(a, b, 40000, 40001, 100, 501, TCP_SYN | TCP_ACK, 1000, synack_x),
            TcpSegment(b, a, 40001, 40000, 500, 101, TCP_SYN | TCP_ACK, 1000, syn_y)]


def test_simultaneous_open_synack_may_drop_eno_only_after_a_bad_syn(tmp_path: Path) -> None:
    """§4.6: the SYN-ACK may leave ENO out only if the received SYN disabled encryption."""
    good_x = tcp_options((69, bytes([0x23])))
    good_y = tcp_options((69, bytes([0x01, 0x23])))
    write_pcap(tmp_path / "ok.pcap", _simultaneous(good_x, good_y, tcp_options()))
    got = analyze(tmp_path / "ok.pcap")[0]
    assert [f["packet"] for f in got["findings"] if f["code"] == "eno-syn-changed"] == [3]
    # y's SYN has b = 0 too: a role conflict, so x may drop ENO from its SYN-ACK.
    same_b = tcp_options((69, bytes([0x23])))
    write_pcap(tmp_path / "conflict.pcap", _simultaneous(good_x, same_b, tcp_options()))
    got = analyze(tmp_path / "conflict.pcap")[0]
    assert "eno-syn-changed" not in _codes(got)


def test_nonsyn_eno_contents_never_make_it_a_legacy_option(tmp_path: Path) -> None:
    """§4.1: a non-SYN ENO option's contents are ignored by the receiver; contents that
    happen to look like a pre-2015 CRYPT opcode still mean "ENO present"."""
    segs = handshake(tcp_options((69, bytes([0x23]))), tcp_options((69, bytes([0x01, 0x23]))),
                     tcp_options((69, bytes([0x83, 0x00]))))
    write_pcap(tmp_path / "c.pcap", segs)
    got = analyze(tmp_path / "c.pcap")[0]
    assert got["eno"]["status"] == "negotiated"
    assert got["eno"]["legacy_tcpcrypt"] is False


TFO_CASES = [
    # (label, TFO option, a finding expected)
    ("tfo-cookie", (34, bytes.fromhex("0011223344556677")), True),
    ("tfo-cookie-request", (34, b""), False),
    ("tfo-experimental-cookie", (254, bytes.fromhex("f9890011223344556677")), True),
    ("tfo-experimental-request", (254, bytes.fromhex("f989")), False),
    ("other-experimental-option", (254, bytes.fromhex("12340011")), False),
]


def _tfo_capture(path: Path, tfo: tuple[int, bytes]) -> None:
    syn, synack, ack = handshake(tcp_options((69, bytes([0x23])), tfo),
                                 tcp_options((69, bytes([0x01, 0x23]))), tcp_options((69, b"")))
    write_pcap(path, [syn, synack, ack])


@pytest.mark.parametrize(("label", "tfo", "flagged"), TFO_CASES,
                         ids=[c[0] for c in TFO_CASES])
def test_syn_with_eno_and_a_tfo_cookie(tmp_path: Path, label: str, tfo: tuple[int, bytes],
                                       flagged: bool) -> None:
    """§4.7: a SYN+ENO must not carry a non-empty TFO option, in its kind-34 form or in
    the experimental one (kind 254, magic 0xF989) that Linux still sends; a cookie
    request (empty) is allowed, and another kind-254 option is not TFO."""
    _tfo_capture(tmp_path / "c.pcap", tfo)
    got = analyze(tmp_path / "c.pcap")[0]
    assert got["eno"]["status"] == "negotiated"
    packets = [f["packet"] for f in got["findings"] if f["code"] == "eno-syn-data"]
    assert packets == ([1] if flagged else []), label


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_lua_dissector_flags_tfo_cookies_alike(tmp_path: Path) -> None:
    from test_wireshark import assert_parity, per_connection, tshark_fields

    for label, tfo, flagged in TFO_CASES:
        path = tmp_path / f"{label}.pcap"
        _tfo_capture(path, tfo)
        report = analyze(path)
        got = per_connection(tshark_fields(path, None))
        assert_parity(label, report, got)
        (lua,) = got.values()
        assert lua["codes"]["eno-syn-data"] == (1 if flagged else 0), label


def _after_handshake(syn_b: bytes, ack: bytes, later: list[tuple[bool, bytes]]) -> list:
    """A's SYN offers tcpcrypt; B answers with ``syn_b``; A's ACK has ``ack``; then data
    segments (from A?, options) alternate, each sent after its sender received a non-SYN."""
    segs = handshake(tcp_options((69, bytes([0x23]))), syn_b, ack)
    a_seq, b_seq = 101, 501
    for from_a, opts in later:
        if from_a:
            segs.append(TcpSegment("10.9.0.1", "10.9.0.2", 40000, 80, a_seq, b_seq,
                                   TCP_ACK | 0x08, 1000, opts, b"GET / HTTP/1.0\r\n\r\n"))
            a_seq += 18
        else:
            segs.append(TcpSegment("10.9.0.2", "10.9.0.1", 80, 40000, b_seq, a_seq,
                                   TCP_ACK | 0x08, 1000, opts, b"HTTP/1.0 200 OK\r\n\r\n"))
            b_seq += 19
    return segs


ENO = tcp_options((69, b""))
TS = tcp_options((8, bytes.fromhex("00000045" "00000045")))  # timestamps holding byte 69
AFTER_FALLBACK_CASES = [
    # (label, B's SYN-ACK option, A's ACK, later segments, packets flagged)
    ("b-keeps-eno-after-a-vacuous-reply", tcp_options((69, bytes([0x01]))), tcp_options(),
     [(False, ENO), (True, TS), (False, ENO)], [4]),
    ("a-keeps-eno-after-role-conflict", tcp_options((69, bytes([0x23]))), tcp_options(),
     [(False, TS), (True, ENO), (True, ENO)], [5]),
    ("both-plain-after-fallback", tcp_options((69, bytes([0x01]))), tcp_options(),
     [(False, TS), (True, TS), (False, b"")], []),
    ("eno-on-data-after-success-is-allowed", tcp_options((69, bytes([0x01, 0x23]))), ENO,
     [(False, ENO), (True, ENO)], []),
    ("host-without-eno-is-not-bound", tcp_options(), tcp_options(),
     [(False, ENO), (True, TS)], []),
]


@pytest.mark.parametrize(("label", "syn_b", "ack", "later", "flagged"), AFTER_FALLBACK_CASES,
                         ids=[c[0] for c in AFTER_FALLBACK_CASES])
def test_no_eno_option_after_a_fallback_however_late(tmp_path: Path, label: str, syn_b: bytes,
                                                     ack: bytes, later: list, flagged: list
                                                     ) -> None:
    """§4.6: a host that falls back must "refrain from sending any further ENO options",
    also after it has received a non-SYN segment (when ENO options are no longer needed
    on a working connection); once per sender. A host that sent no ENO is not bound, and
    ENO on later segments of a negotiated connection is allowed."""
    write_pcap(tmp_path / "c.pcap", _after_handshake(syn_b, ack, later))
    got = analyze(tmp_path / "c.pcap")[0]
    assert [f["packet"] for f in got["findings"]
            if f["code"] == "eno-after-fallback"] == flagged, label


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_lua_dissector_flags_eno_after_a_fallback_alike(tmp_path: Path) -> None:
    from test_wireshark import assert_parity, per_connection, tshark_fields

    for label, syn_b, ack, later, flagged in AFTER_FALLBACK_CASES:
        path = tmp_path / f"{label}.pcap"
        write_pcap(path, _after_handshake(syn_b, ack, later))
        report = analyze(path)
        got = per_connection(tshark_fields(path, None))
        assert_parity(label, report, got)
        (lua,) = got.values()
        assert lua["codes"]["eno-after-fallback"] == len(flagged), label
