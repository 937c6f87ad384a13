"""IP fragment reassembly (capture/decode.py): exact datagrams from shuffled, duplicated
and overlapping fragments, the train limit and its counter, and a cost bound on the
largest shuffled IPv4 trains (issue 10, item 25) that counts bytes examined instead of
timing them."""

from __future__ import annotations

import random
from pathlib import Path

from tcpinc_analyze.analysis.run import analyze_file
from tcpinc_analyze.capture import decode
from tcpinc_analyze.capture.decode import FragmentTrain, IpDecoder
from tcpinc_analyze.synth.hostile import (
    A_IP,
    B_IP,
    fragment_frames,
    ipv4_frame,
    tcp_bytes,
    write_pcap,
)


def test_shuffled_train_of_8190_fragments_costs_linear_work() -> None:
    body = random.Random(3).randbytes(8190 * 8)
    order = list(range(8190))
    random.Random(4).shuffle(order)
    train = FragmentTrain()
    results = [train.add(k * 8, k < 8189, body[k * 8:k * 8 + 8]) for k in order]
    assert results[-1] == body
    assert results[:-1] == [None] * 8189
    # Every byte is examined once, plus one recount when the last fragment tells the
    # size: sorting and copying every part per arrival examined ~8190**2 / 2 * 8 bytes.
    assert train.ops <= 2 * len(body), train.ops


def test_overlapping_and_duplicate_fragments_keep_the_first_copy() -> None:
    train = FragmentTrain()
    assert train.add(8, True, b"BBBBBBBB") is None
    assert train.add(8, True, b"XXXXXXXX") is None  # duplicate with other bytes
    assert train.add(0, True, b"AAAAAAAAYYYY") is None  # overlaps the first 4 of 8..16
    assert train.add(16, False, b"CC") == b"AAAAAAAABBBBBBBBCC"


def test_bytes_past_the_last_fragment_count_for_nothing() -> None:
    train = FragmentTrain()
    assert train.add(16, True, b"ZZZZZZZZ") is None  # beyond the end announced later
    assert train.add(8, False, b"BBBB") is None  # the datagram is 12 bytes
    assert train.add(0, True, b"AAAAAAAA") == b"AAAAAAAABBBB"


def test_decoder_reassembles_a_tcp_segment_from_reversed_fragments() -> None:
    seg = tcp_bytes(1234, 80, 5000, 0, 0x18, b"hello, fragmented world")
    pieces = [seg[i:i + 8] for i in range(0, len(seg), 8)]
    ip = IpDecoder()
    out = []
    for k in range(len(pieces) - 1, -1, -1):
        more = 0x2000 if k < len(pieces) - 1 else 0
        frame = ipv4_frame(A_IP, B_IP, pieces[k], ident=77, frag=more | k)
        out.append(ip.decode(k, 0, frame, 14, 0))
    assert out[:-1] == [None] * (len(pieces) - 1)
    assert out[-1].payload == b"hello, fragmented world" and out[-1].seq == 5000
    assert ip.fragments == {} and ip.dropped_fragments == 0


def test_train_limit_drops_the_oldest_and_counts_it(monkeypatch) -> None:
    monkeypatch.setattr(decode, "FRAG_BUFFER_MAX", 2)
    ip = IpDecoder()
    for ident in (1, 2, 3):
        frame = ipv4_frame(A_IP, B_IP, bytes(8), ident=ident, frag=0x2000)
        assert ip.decode(ident, 0, frame, 14, 0) is None
    assert [key[2] for key in ip.fragments] == [2, 3]
    assert ip.dropped_fragments == 1


def test_shuffled_trains_through_the_analyzer(tmp_path: Path) -> None:
    path = tmp_path / "fragments.pcap"
    write_pcap(path, fragment_frames(3))
    result = analyze_file(str(path))
    (report,) = result.reports
    assert report.to_json()["bytes"] == {"ab": 3 * (8190 * 8 - 20), "ba": 0}
    assert result.summary.packets == 3 + 3 * 8190 + 1
