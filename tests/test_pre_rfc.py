"""The 2016 tcpcryptd dialect beyond the committed captures: shapes its source code
produces that the two real captures do not show (session resumption, the
application-aware byte), analysed end to end from a synthesized capture."""

from __future__ import annotations

import io
import random
import shutil
from pathlib import Path

import pytest

from tcpinc_analyze.analysis.run import analyze_file
from tcpinc_analyze.synth.capture_writer import PcapWriter
from tcpinc_analyze.synth.packets import LinkParams, frame
from tcpinc_analyze.synth.tcpsim import HostConfig, TcpConversation
from tcpinc_analyze.tcpcrypt.endpoint import EndpointA, EndpointB
from tcpinc_analyze.tcpcrypt.frames import FrameSealer
from tcpinc_analyze.tcpcrypt.keyschedule import SessionKeys

SID = bytes(range(1, 9))
ETHERNET = LinkParams()


def _conversation(syn_a: str, syn_b: str, a_first: bytes = b"", b_first: bytes = b""
                  ) -> TcpConversation:
    """A 2016-style handshake (experimental ENO, empty ENO on A's ACK), then frames."""
    rng = random.Random(7)
    conv = TcpConversation(HostConfig("10.99.0.1", 57970, 1000),
                           HostConfig("10.99.0.2", 8080, 5000),
                           start_ns=1_700_000_000_000_000_000, rng=rng)
    conv.open(syn_a_eno=bytes.fromhex(syn_a), syn_b_eno=bytes.fromhex(syn_b),
              ack_a_eno=bytes.fromhex("fd04454e"))
    keys = SessionKeys(0x21, 0x0001, bytes(32))
    chain = keys.chain()
    a = FrameSealer(0x0001, lambda g: chain.key(g, True), offset=len(a_first))
    b = FrameSealer(0x0001, lambda g: chain.key(g, False), offset=len(b_first))
    conv.send(True, a_first + a.seal(b"GET / HTTP/1.0\r\n\r\n"))
    conv.send(False, b_first + b.seal(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 3000)
              + b.seal(b"", fin=True))
    conv.close()
    return conv


def _analyse(conv: TcpConversation, tmp_path: Path) -> dict:
    buf = io.BytesIO()
    writer = PcapWriter(buf, ETHERNET.linktype)
    for pkt in conv.packets:
        writer.write(pkt.ts_ns, frame(pkt.seg, ETHERNET))
    path = tmp_path / "c.pcap"
    path.write_bytes(buf.getvalue())
    result = analyze_file(str(path))
    assert len(result.reports) == 1
    return result.reports[0].to_json()


def test_resumption_the_2016_way_is_read_as_frames(tmp_path: Path) -> None:
    # A lists P-256 and P-521, then asks to resume with a v = 1 identifier suboption;
    # B, which has the session, answers with the identifier byte alone.
    conn = _analyse(_conversation(f"fd0f454e2122a1{SID.hex()}", "fd05454e21"), tmp_path)
    assert conn["eno"]["status"] == "negotiated"
    tc = conn["tcpcrypt"]
    assert tc["resumed"] is True and tc["dialect"] == "tcpcryptd-2016"
    assert tc["frames"] == {"ab": 1, "ba": 2} and tc["init1"] is None
    codes = {f["code"] for f in conn["findings"]}
    assert "pre-rfc-dialect" in codes
    assert not codes & {"tcpcrypt-bad-magic", "tcpcrypt-bad-length", "role-conflict"}
    note = next(f for f in conn["findings"] if f["code"] == "pre-rfc-dialect")
    assert "resumes a cached session the 2016 way" in note["message"]
    assert not [f for f in conn["findings"] if f["severity"] == "error"]


def test_2016_resumption_refused_falls_back_to_init_messages(tmp_path: Path) -> None:
    # Same offer; B lacks the session and answers TEP 0x21 for a fresh exchange. Under
    # the shape alone that is ambiguous, so the stream decides: Init1 comes first.
    rng = random.Random(3)
    a = EndpointA(0x21, [0x0001], rng)
    b = EndpointB(0x21, [0x0001], rng)
    init2 = b.receive_init1(a.init1, b"", 0x21)
    conv = _conversation(f"fd0f454e2122a1{SID.hex()}", "fd05454e21", a_first=a.init1,
                         b_first=init2)
    conn = _analyse(conv, tmp_path)
    assert conn["eno"]["status"] == "negotiated"
    tc = conn["tcpcrypt"]
    assert tc["resumed"] is False and tc["init1"] is not None and tc["init2"] is not None
    assert tc["frames"] == {"ab": 1, "ba": 2}


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("refused", [False, True], ids=["resumed", "refused"])
def test_lua_dissector_reads_the_2016_resumption_alike(tmp_path: Path, refused: bool) -> None:
    """tshark with the plugin agrees with the analyzer on both shapes."""
    from test_wireshark import assert_parity, per_connection, tshark_fields

    extra: dict[str, bytes] = {}
    if refused:
        rng = random.Random(3)
        a = EndpointA(0x21, [0x0001], rng)
        b = EndpointB(0x21, [0x0001], rng)
        extra = {"a_first": a.init1, "b_first": b.receive_init1(a.init1, b"", 0x21)}
    conv = _conversation(f"fd0f454e2122a1{SID.hex()}", "fd05454e21", **extra)
    report = _analyse(conv, tmp_path)
    got = per_connection(tshark_fields(tmp_path / "c.pcap", None))
    assert_parity("2016 resumption", [report], got)
    (lua,) = got.values()
    assert lua["codes"]["tcpcrypt-bad-magic"] == 0
    assert lua["frames"] == {"ab": 1, "ba": 2}
