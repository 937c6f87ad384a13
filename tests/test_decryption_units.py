"""decryption.py and the resynchronisation of tcpcrypt/stream.py on synthetic connections
cut on purpose: exact plaintext, counts and findings when a gap swallows a rekey frame
(the frames after it are under the next key generation, which only the decryptor's
look-ahead finds), and the bounds of the candidate search on junk (issue 10, item 24),
which count authentication tries instead of timing them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tcpinc_analyze import decryption
from tcpinc_analyze.analysis.run import analyze_file
from tcpinc_analyze.decryption import DecryptionContext, DirectionDecryptor
from tcpinc_analyze.keylog import parse_keylog
from tcpinc_analyze.limits import Limits
from tcpinc_analyze.synth.capture_writer import PcapWriter
from tcpinc_analyze.synth.hostile import junk_after_gap
from tcpinc_analyze.synth.packets import LinkParams, frame
from tcpinc_analyze.synth.sample import Scenario, generate
from tcpinc_analyze.synth.scenarios import tcpcrypt_plan
from tcpinc_analyze.wire import AEAD_AES_256_GCM, TEP_X25519

REKEY_IN_GAP = Scenario(
    "rekey-in-gap", "B's rekey frame is inside a segment the capture lost",
    lambda rng: [tcpcrypt_plan(rng, TEP_X25519, AEAD_AES_256_GCM, size=12000,
                               frame_data_max=300, rekey_ba=(10,))], seed=5)
"""B->A frames of 320 bytes from offset 74; frame 10 (offset 3274) is B's rekey."""


def capture_without(tmp_path: Path, drop_offset: int) -> tuple[Path, dict, list]:
    """The scenario's capture minus B's data segment at ``drop_offset``; its key log,
    B's frame records and the dropped range."""
    sample = generate(REKEY_IN_GAP)
    conn = sample.connections[0]
    dropped = [p for p in conn.packets
               if not p.from_a and p.stream_offset == drop_offset and p.seg.payload]
    assert len(dropped) == 1
    path = tmp_path / "rekey-in-gap.pcap"
    with open(path, "wb") as f:
        writer = PcapWriter(f, 1)
        for p in conn.packets:
            if p is not dropped[0]:
                writer.write(p.ts_ns, frame(p.seg, LinkParams()))
    lo, hi = drop_offset, drop_offset + len(dropped[0].seg.payload)
    return path, {"keylog": sample.keylog, "lo": lo, "hi": hi}, conn.frames["ba"]


def analyze(path: Path, keylog: str, **kw) -> dict:
    ctx = DecryptionContext(parse_keylog(keylog))
    (report,) = analyze_file(str(path), decryption=ctx, **kw).reports
    return report.to_json()


def test_rekey_inside_a_gap_is_found_by_the_generation_look_ahead(tmp_path: Path) -> None:
    path, info, records = capture_without(tmp_path, 2994)
    lo, hi = info["lo"], info["hi"]
    assert [r.stream_offset for r in records if r.rekey] == [3274]  # inside [2994, 4454)
    whole = [r for r in records if r.stream_offset >= hi or r.stream_offset + r.size <= lo]
    assert len(whole) == len(records) - 5  # 2954 (cut), 3274, 3594, 3914, 4234 (cut)
    got = analyze(path, info["keylog"])
    ba = got["tcpcrypt"]["decrypted"]["ba"]
    # Every frame the capture holds whole decrypts: those after the gap under generation 1.
    assert ba["ok"] == len(whole) and ba["failed"] == 0 and ba["undecryptable"] == 0
    assert ba["sha256"] == hashlib.sha256(b"".join(r.data for r in whole)).hexdigest()
    assert ba["bytes"] == sum(len(r.data) for r in whole)
    assert ba["generation"] == 1
    # Lost: the frame cut at 2954 (its header says 3274 is next: inside the gap, so
    # that frame is lost too); 3594 and 3914 are invisible; the search finds 4554.
    assert ba["lost"] == 2 and ba["lost_bytes"] == hi - lo
    assert got["tcpcrypt"]["frames"]["ba"] == len(whole) + 2
    assert got["tcpcrypt"]["rekeys"]["ba"] == 0  # the rekey frame itself was never seen
    findings = [(f["code"], f.get("offset"), f.get("size"), f.get("direction"))
                for f in got["findings"]]
    assert findings == [
        ("tcp-gap", lo, hi - lo, "ba"),
        ("tcpcrypt-frame-lost", 2954, None, "ba"),
        ("tcpcrypt-resync", 4554, 4554 - hi, "ba"),
    ], findings


def test_without_look_ahead_the_frames_after_the_rekey_are_lost(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control for the test above: the look-ahead is what makes it pass."""
    monkeypatch.setattr(decryption, "REKEY_LOOKAHEAD", 0)
    path, info, records = capture_without(tmp_path, 2994)
    got = analyze(path, info["keylog"])
    ba = got["tcpcrypt"]["decrypted"]["ba"]
    assert ba["ok"] == sum(r.stream_offset + r.size <= info["lo"] for r in records)
    assert "tcpcrypt-resync-failed" in {f["code"] for f in got["findings"]}


def test_gap_before_the_rekey_keeps_generation_zero(tmp_path: Path) -> None:
    """The gap swallows frames of generation 0 only: resync under generation 0, the
    rekey frame is then read in order and counted."""
    path, info, records = capture_without(tmp_path, 1534)
    got = analyze(path, info["keylog"])
    ba = got["tcpcrypt"]["decrypted"]["ba"]
    whole = [r for r in records if r.stream_offset >= info["hi"]
             or r.stream_offset + r.size <= info["lo"]]
    assert ba["ok"] == len(whole) and ba["failed"] == 0 and ba["generation"] == 1
    assert got["tcpcrypt"]["rekeys"]["ba"] == 1


# ----------------------------------------------------------------- the search's bounds

@pytest.fixture(scope="module")
def junk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    d = tmp_path_factory.mktemp("junk")
    junk_after_gap(d / "junk.pcap", d / "junk.keys", 30_000)
    return d / "junk.pcap", (d / "junk.keys").read_text()


def _count_tries(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    offsets: list[int] = []
    original = DirectionDecryptor.authenticates

    def counting(self: DirectionDecryptor, info):  # noqa: ANN001, ANN202
        offsets.append(info.stream_offset)
        return original(self, info)

    monkeypatch.setattr(DirectionDecryptor, "authenticates", counting)
    return offsets


def test_junk_after_a_gap_stops_at_the_tries_bound(junk: tuple[Path, str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    tried = _count_tries(monkeypatch)
    got = analyze(junk[0], junk[1], limits=Limits(resync_tries=300))
    # Each candidate is authenticated once (the search resumes where it stopped when the
    # next segment arrives; it used to start over, re-trying every earlier candidate).
    assert len(tried) == len(set(tried)) == 300
    failed = [f for f in got["findings"] if f["code"] == "tcpcrypt-resync-failed"]
    assert len(failed) == 1
    assert "bound of 300 authenticated candidates" in failed[0]["message"]
    assert "--resync-tries" in failed[0]["message"]
    assert failed[0]["offset"] == 4161 and failed[0]["size"] == max(tried) - 4161 + 1


def test_junk_after_a_gap_stops_at_the_bytes_bound(junk: tuple[Path, str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    tried = _count_tries(monkeypatch)
    got = analyze(junk[0], junk[1], limits=Limits(resync_bytes=2000))
    assert len(tried) == len(set(tried)) and max(tried) < 4161 + 2000
    (failed,) = [f for f in got["findings"] if f["code"] == "tcpcrypt-resync-failed"]
    assert failed["message"] == (
        "B->A: no frame boundary found in 2000 bytes after offset 4161 (the search's bound; "
        "--resync-bytes raises it); the rest of this direction is not delimited")


def test_default_bounds_each_candidate_tried_once(junk: tuple[Path, str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    tried = _count_tries(monkeypatch)
    analyze(junk[0], junk[1])
    assert len(tried) == len(set(tried)) <= Limits().resync_tries


def test_resync_with_keys_accepts_frames_whose_cres_bits_are_set(tmp_path: Path) -> None:
    """Receivers ignore cres (RFC 8548 §4.2): with keys, a frame that authenticates is a
    boundary whatever its reserved bits, so a sender that sets them (and is reported for
    it) does not defeat the search after a gap."""
    import random

    from tcpinc_analyze.eno import GlobalSuboption, TepSuboption, encode_option
    from tcpinc_analyze.synth.tcpsim import HostConfig, TcpConversation
    from tcpinc_analyze.tcpcrypt.endpoint import EndpointA, EndpointB
    from tcpinc_analyze.tcpcrypt.frames import FrameSealer
    from tcpinc_analyze.wire import eno_transcript

    rng = random.Random(9)
    syn_a = encode_option([TepSuboption(TEP_X25519)])
    syn_b = encode_option([GlobalSuboption.make(b=True), TepSuboption(TEP_X25519)])
    a, b = EndpointA(TEP_X25519, [0x0001], rng), EndpointB(TEP_X25519, [0x0001], rng)
    init2 = b.receive_init1(a.init1, eno_transcript(syn_a, syn_b), TEP_X25519)
    keys = a.receive_init2(init2, eno_transcript(syn_a, syn_b), TEP_X25519)
    chain = keys.chain()
    conv = TcpConversation(HostConfig("10.1.0.1", 40000, 7), HostConfig("10.1.0.2", 80, 9),
                           start_ns=1_700_000_000_000_000_000, rng=rng)
    conv.open(syn_a_eno=syn_a, syn_b_eno=syn_b, ack_a_eno=bytes((69, 2)))
    sa = FrameSealer(0x0001, lambda g: chain.key(g, True), offset=len(a.init1))
    sb = FrameSealer(0x0001, lambda g: chain.key(g, False), offset=len(init2))
    conv.send(True, a.init1 + sa.seal(b"GET / HTTP/1.0\r\n\r\n"))
    body = [bytes([65 + i % 26]) * 900 for i in range(12)]
    conv.send(False, init2 + b"".join(sb.seal(d, extra_control=0x10) for d in body[:-1])
              + sb.seal(body[-1], fin=True, extra_control=0x10))
    conv.close()
    data_b = [p for p in conv.packets if not p.from_a and p.seg.payload]
    victim = data_b[len(data_b) // 2]
    path = tmp_path / "cres.pcap"
    with open(path, "wb") as f:
        writer = PcapWriter(f, 1)
        for p in conv.packets:
            if p is not victim:
                writer.write(p.ts_ns, frame(p.seg, LinkParams()))
    keylog = f"TCPCRYPT_SESSION_SECRET {a.nonce.hex()} {keys.ss.hex()}\n"
    got = analyze(path, keylog)
    ba = got["tcpcrypt"]["decrypted"]["ba"]
    codes = [f["code"] for f in got["findings"]]
    assert "tcpcrypt-resync" in codes and "tcpcrypt-resync-failed" not in codes
    assert "frame-reserved-bits" in codes  # the sender is still reported
    # every frame the capture holds whole opens: those before and after the gap
    assert ba["failed"] == 0 and ba["ok"] >= len(body) - 3 and ba["ok"] < len(body)
