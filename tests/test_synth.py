"""The capture synthesizer: every impairment visibly changes the capture, the TCP it
writes is consistent, and the synth CLI keeps its contract."""

from __future__ import annotations

import io
import json

import dpkt
import pytest

from tcpinc_analyze.cli import main
from tcpinc_analyze.eno import decode_option
from tcpinc_analyze.synth.sample import CaptureSpec, Scenario, generate
from tcpinc_analyze.synth.scenarios import (
    SCENARIOS,
    EnoSpec,
    answer,
    offer,
    plain_plan,
    tcpcrypt_plan,
)
from tcpinc_analyze.synth.tcpsim import Impairments
from tcpinc_analyze.wire import TEP_X25519, EnoStatus, FallbackReason


def packets_of(capture: bytes) -> list[tuple[dpkt.tcp.TCP, int, int]]:
    """(tcp, caplen, origlen) for each packet of a single-link Ethernet pcap."""
    out = []
    reader = dpkt.pcap.Reader(io.BytesIO(capture))
    for _ts, buf in reader:
        eth = dpkt.ethernet.Ethernet(buf)
        out.append(eth.data.data)
    return out


def records(capture: bytes) -> list[tuple[int, int]]:
    """(caplen, origlen) per record, read straight from the pcap record headers."""
    pos, out = 24, []
    while pos < len(capture):
        caplen = int.from_bytes(capture[pos + 8:pos + 12], "little")
        origlen = int.from_bytes(capture[pos + 12:pos + 16], "little")
        out.append((caplen, origlen))
        pos += 16 + caplen
    return out


def one(seed: int = 7, capture: CaptureSpec | None = None, **kw: object) -> bytes:
    def plans(rng):  # noqa: ANN001, ANN202
        return [tcpcrypt_plan(rng, TEP_X25519, 0x10, size=30_000, frame_data_max=1000, **kw)]
    return generate(Scenario("t", "t", plans, capture or CaptureSpec(), seed=seed)).capture


def data_segments(capture: bytes, from_port: int = 80) -> list[dpkt.tcp.TCP]:
    return [t for t in packets_of(capture) if t.sport == from_port and len(t.data)]


BASE = one()


def test_base_has_no_repeats_and_is_in_order() -> None:
    segs = data_segments(BASE)
    seqs = [s.seq for s in segs]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)


def test_duplicate_retransmission_repeats_a_segment() -> None:
    cap = one(impairments=Impairments(duplicate_retransmission=0.3))
    segs = data_segments(cap)
    seen = {}
    dups = 0
    for s in segs:
        if s.seq in seen:
            assert seen[s.seq] == bytes(s.data)
            dups += 1
        seen[s.seq] = bytes(s.data)
    assert dups > 0
    assert len(cap) > len(BASE)


def test_resegmented_retransmission_uses_new_boundaries() -> None:
    cap = one(impairments=Impairments(resegmented_retransmission=1.0))
    segs = data_segments(cap)
    originals = {s.seq for s in data_segments(BASE)}
    assert any(s.seq not in originals for s in segs)
    # The bytes at those new boundaries equal the originals (a faithful retransmission).
    stream: dict[int, int] = {}
    for s in segs:
        for k, byte in enumerate(bytes(s.data)):
            assert stream.setdefault((s.seq + k) % 2**32, byte) == byte


def test_conflicting_retransmission_changes_bytes() -> None:
    cap = one(impairments=Impairments(conflicting_retransmission=True))
    stream: dict[int, int] = {}
    conflicts = 0
    for s in data_segments(cap):
        for k, byte in enumerate(bytes(s.data)):
            if stream.setdefault(s.seq + k, byte) != byte:
                conflicts += 1
    assert conflicts > 0


def test_reorder_breaks_capture_order() -> None:
    cap = one(reorder_count=2)
    seqs = [s.seq for s in data_segments(cap)]
    assert seqs != sorted(seqs)
    assert sorted(seqs) == sorted(s.seq for s in data_segments(BASE))


def test_gap_removes_bytes_from_the_capture() -> None:
    cap = one(gap_from_a=False)
    segs = data_segments(cap)
    assert len(segs) == len(data_segments(BASE)) - 1
    ranges = sorted((s.seq, s.seq + len(s.data)) for s in segs)
    assert any(a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False))


def test_snaplen_truncates_records() -> None:
    cap = one(capture=CaptureSpec(snaplen=120))
    recs = records(cap)
    assert any(c < o for c, o in recs)
    assert all(c <= 120 for c, _ in recs)
    assert all(c == o for c, o in records(BASE))


def _syn_eno(cap: bytes, syn_ack: bool) -> tuple[bytes, bytes]:
    for t in packets_of(cap):
        if t.flags & dpkt.tcp.TH_SYN and bool(t.flags & dpkt.tcp.TH_ACK) == syn_ack:
            return bytes(t.opts), bytes(t.data)
    raise AssertionError("no SYN")


def _first_ack_opts(cap: bytes) -> bytes:
    tcps = packets_of(cap)
    return next(bytes(t.opts) for t in tcps[2:] if t.dport == 80)


def test_middlebox_strips_eno_from_synack() -> None:
    def plans(rng):  # noqa: ANN001, ANN202
        return [plain_plan(rng, start_ns=10**18, reason=FallbackReason.SYNACK_WITHOUT_ENO,
                           eno_a=offer(TEP_X25519), eno_b=answer(TEP_X25519),
                           synack_stripped=True)]
    stripped = generate(Scenario("t", "t", plans, seed=3)).capture
    opts, _ = _syn_eno(stripped, syn_ack=True)
    assert b"\x45" not in opts[20:]  # after MSS/SACK/TS/WS, only NOPs remain
    assert opts.endswith(b"\x01\x01\x01") or b"\x01\x01\x01" in opts
    opts_normal, _ = _syn_eno(BASE, syn_ack=True)
    assert b"\x45\x04\x01\x23" in opts_normal  # explicit global suboption b = 1, TEP


def test_middlebox_strips_eno_from_a_ack() -> None:
    cap = one(ack_stripped=True, expect_status=EnoStatus.FALLBACK,
              expect_reason=FallbackReason.ACK_WITHOUT_ENO, keylog="none")
    assert b"\x45\x02" not in _first_ack_opts(cap)
    assert b"\x45\x02" in _first_ack_opts(BASE)


def test_malformed_option_is_on_the_wire() -> None:
    def plans(rng):  # noqa: ANN001, ANN202
        return [plain_plan(rng, start_ns=10**18, reason=FallbackReason.MALFORMED_ENO,
                           eno_a=EnoSpec(raw=bytes.fromhex("4505812300")),
                           eno_b=answer(TEP_X25519))]
    cap = generate(Scenario("t", "t", plans, seed=3)).capture
    opts, _ = _syn_eno(cap, syn_ack=False)
    start = opts.index(b"\x45\x05")
    option = decode_option(69, opts[start + 2:start + 5])
    assert option is not None and option.malformed


def test_sequence_numbers_wrap() -> None:
    cap = generate(SCENARIOS["seq-wrap"]).capture
    seqs = [t.seq for t in packets_of(cap) if t.sport == 80 and len(t.data)]
    assert any(b < a for a, b in zip(seqs, seqs[1:], strict=False))  # wrapped past 2^32


def test_acks_cover_what_was_sent() -> None:
    """The peer's final ACK acknowledges every byte (plus FIN) the sender sent."""
    tcps = packets_of(BASE)
    syn = next(t for t in tcps if t.flags == dpkt.tcp.TH_SYN)
    sent = sum(len(t.data) for t in tcps if t.sport == syn.sport)
    last_ack = [t.ack for t in tcps if t.dport == syn.sport][-1]
    assert (last_ack - syn.seq - 1) % 2**32 == sent + 1


# --------------------------------------------------------------------------- CLI


def test_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("x25519-chacha20", "busy-mix", "resumption"):
        assert name in out


def test_cli_writes_files_deterministically(tmp_path) -> None:  # noqa: ANN001
    out1, out2 = tmp_path / "a.pcap", tmp_path / "b.pcap"
    keys = tmp_path / "a.keys"
    exp = tmp_path / "a.json"
    assert main(["synth", "wrong-key", "-o", str(out1), "--keylog", str(keys),
                 "--expected", str(exp), "--seed", "9"]) == 0
    assert main(["synth", "wrong-key", "-o", str(out2), "--seed", "9"]) == 0
    assert out1.read_bytes() == out2.read_bytes()
    assert keys.read_text().count("TCPCRYPT_SESSION_SECRET") == 1
    assert json.loads(exp.read_text())["seed"] == 9


def test_cli_unknown_scenario_is_a_clear_error(tmp_path, capsys) -> None:  # noqa: ANN001
    assert main(["synth", "no-such-thing", "-o", str(tmp_path / "x.pcap")]) == 2
    assert "unknown scenario 'no-such-thing'" in capsys.readouterr().err
    assert main(["synth", "gap"]) == 2
