"""tcp/reassembly.py on hand-made segments: the exact bytes delivered (with their stream
offsets and packets), the exact gaps, and the exact findings, for every path: in order,
straddling retransmissions at each edge of the delivered and of the buffered bytes,
duplicates and conflicts of buffered segments, keep-alives, gaps declared by an ACK, by
the buffer limit and at the end, snaplen holes and sequence wrap; plus a cost bound on
many holes (issue 10, item 23) that counts operations instead of timing them."""

from __future__ import annotations

import pytest

from tcpinc_analyze.findings import Finding
from tcpinc_analyze.tcp import reassembly
from tcpinc_analyze.tcp.reassembly import DirectionStream

ISN = 1000


class Recorder:
    """A StreamConsumer that remembers every call."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def data(self, offset: int, chunk: bytes, packet: int) -> None:
        self.calls.append(("data", offset, bytes(chunk), packet))

    def gap(self, offset: int, size: int, packet: int | None) -> None:
        self.calls.append(("gap", offset, size, packet))

    @property
    def stream(self) -> bytes:
        """The delivered bytes, gaps shown as '?' (so a lost byte cannot hide)."""
        out = bytearray()
        for call in self.calls:
            assert call[1] == len(out), f"call {call} does not continue at {len(out)}"
            out += call[2] if call[0] == "data" else b"?" * call[2]
        return bytes(out)


def make(isn: int = ISN) -> tuple[DirectionStream, Recorder, list[Finding]]:
    rec, findings = Recorder(), []
    stream = DirectionStream(rec, findings, "ab")
    stream.start(isn + 1)
    return stream, rec, findings


def feed(stream: DirectionStream, *segments: tuple[int, bytes], isn: int = ISN) -> None:
    """(stream offset, payload) per segment; packet numbers count from 1."""
    for n, (off, payload) in enumerate(segments, 1):
        stream.segment(isn + 1 + off, payload, n)


def summary(findings: list[Finding]) -> list[tuple]:
    return [(f.code, f.packet, f.offset, f.size) for f in findings]


def test_in_order_segments_are_delivered_as_they_come() -> None:
    s, rec, findings = make()
    feed(s, (0, b"0123"), (4, b"4567"), (8, b"89"))
    assert rec.calls == [("data", 0, b"0123", 1), ("data", 4, b"4567", 2),
                         ("data", 8, b"89", 3)]
    assert findings == [] and s.next == 10


def test_retransmission_straddling_delivered_bytes_keeps_every_byte() -> None:
    """The audit's case: a straddling retransmission trimmed one byte too many."""
    s, rec, findings = make()
    feed(s, (0, b"0123456789"), (5, b"56789ABCDEF"))
    assert rec.stream == b"0123456789ABCDEF"
    assert rec.calls[1] == ("data", 10, b"ABCDEF", 2)
    assert findings == []  # the same bytes again plus new ones: not worth a note


def test_straddling_retransmission_that_differs_is_reported_at_the_byte() -> None:
    s, rec, findings = make()
    feed(s, (0, b"0123456789"), (5, b"56X89ABCDEF"))
    assert rec.stream == b"0123456789ABCDEF"  # first copy kept, new tail used
    assert summary(findings) == [("retransmission-conflict", 2, 7, None)]
    assert "offset 7" in findings[0].message and findings[0].message.startswith("A->B: ")


def test_whole_retransmission_of_delivered_bytes() -> None:
    s, rec, findings = make()
    feed(s, (0, b"0123456789"), (2, b"234"), (0, b"0123456789"), (3, b"3Z5"))
    assert rec.stream == b"0123456789"
    assert summary(findings) == [("tcp-retransmission", 2, 2, None),
                                 ("tcp-retransmission", 3, 0, None),
                                 ("retransmission-conflict", 4, 4, None)]
    assert findings[0].message == "A->B: retransmission of 3 bytes at offset 2"


def test_keep_alive_is_neither_data_nor_a_conflict() -> None:
    """A keep-alive carries one garbage byte at next - 1 (often 0x00, RFC 9293 §3.8.4)."""
    s, rec, findings = make()
    feed(s, (0, b"abcdef"), (5, b"\x00"), (5, b""), (5, b"f"))
    assert rec.stream == b"abcdef"
    assert findings == []
    feed(s, (4, b"X"))  # one byte, but not at next - 1: a real (conflicting) retransmission
    assert summary(findings) == [("retransmission-conflict", 1, 4, None)]


def test_out_of_order_segment_is_buffered_then_delivered_with_a_note() -> None:
    s, rec, findings = make()
    feed(s, (0, b"01"), (6, b"6789"), (2, b"2345"))
    assert rec.calls == [("data", 0, b"01", 1), ("data", 2, b"2345", 3),
                         ("data", 6, b"6789", 2)]
    assert summary(findings) == [("tcp-out-of-order", 2, 6, None)]


def test_new_segment_straddling_the_left_edge_of_a_buffered_one() -> None:
    """[10, 20) is buffered; [5, 15) arrives: its [10, 15) is compared, the buffered
    (first) copy is kept."""
    s, rec, findings = make()
    feed(s, (0, b"01234"), (10, b"ABCDEFGHIJ"), (5, b"56789ABCDE"))
    assert rec.stream == b"0123456789ABCDEFGHIJ"
    assert findings[0].code == "tcp-out-of-order" and findings[0].packet == 2
    assert len(findings) == 1
    s, rec, findings = make()
    feed(s, (0, b"01234"), (10, b"ABCDEFGHIJ"), (5, b"56789ABxDE"))
    assert rec.stream == b"0123456789ABCDEFGHIJ"
    assert summary(findings) == [("retransmission-conflict", 3, 12, None),
                                 ("tcp-out-of-order", 2, 10, None)]


def test_new_segment_straddling_the_right_edge_of_a_buffered_one() -> None:
    """[10, 20) is buffered; [15, 25) arrives: only [20, 25) is new."""
    s, rec, findings = make()
    feed(s, (0, b"0123456789"[:5]), (10, b"ABCDEFGHIJ"), (15, b"FGHIJKLMNO"),
         (5, b"56789"))
    assert rec.stream == b"0123456789ABCDEFGHIJKLMNO"
    assert s.pending_bytes == 0 and not s.pending
    s, rec, findings = make()
    feed(s, (0, b"01234"), (10, b"ABCDEFGHIJ"), (15, b"FGHyJKLMNO"), (5, b"56789"))
    assert rec.stream == b"0123456789ABCDEFGHIJKLMNO"
    assert summary(findings) == [("retransmission-conflict", 3, 18, None),
                                 ("tcp-out-of-order", 2, 10, None),
                                 ("tcp-out-of-order", 3, 20, None)]


def test_duplicate_and_conflicting_copies_of_a_buffered_segment() -> None:
    s, rec, findings = make()
    feed(s, (0, b"0"), (5, b"56789"), (5, b"56789"), (5, b"5678Q"), (7, b"7"),
         (1, b"1234"))
    assert rec.stream == b"0123456789"
    assert summary(findings) == [("tcp-retransmission", 3, 5, None),
                                 ("retransmission-conflict", 4, 9, None),
                                 ("tcp-retransmission", 5, 7, None),
                                 ("tcp-out-of-order", 2, 5, None)]


def test_longer_copy_of_a_buffered_segment_adds_only_its_tail() -> None:
    s, rec, findings = make()
    feed(s, (0, b"0"), (5, b"567"), (5, b"5X789"), (1, b"1234"))
    assert rec.stream == b"0123456789"  # the buffered 5-7 win over the later "5X7"
    assert summary(findings) == [("retransmission-conflict", 3, 6, None),
                                 ("tcp-out-of-order", 2, 5, None),
                                 ("tcp-out-of-order", 3, 8, None)]


def test_segment_covering_several_buffered_ones_fills_only_the_holes() -> None:
    s, rec, findings = make()
    feed(s, (0, b"0"), (3, b"3"), (6, b"67"), (1, b"123456789"))
    assert rec.stream == b"0123456789"
    assert [c[1:] for c in rec.calls] == [(0, b"0", 1), (1, b"12", 4), (3, b"3", 2),
                                          (4, b"45", 4), (6, b"67", 3), (8, b"89", 4)]
    assert summary(findings) == [("tcp-out-of-order", 2, 3, None),
                                 ("tcp-out-of-order", 3, 6, None)]


def test_ack_past_a_hole_declares_the_gap() -> None:
    s, rec, findings = make()
    feed(s, (0, b"0123456789"), (20, b"KLMNOPQRST"))
    s.ack(ISN + 1 + 25)
    assert rec.calls == [("data", 0, b"0123456789", 1), ("gap", 10, 10, None),
                         ("data", 20, b"KLMNOPQRST", 2)]
    assert summary(findings) == [("tcp-gap", None, 10, 10)]
    assert findings[0].message == "A->B: 10 bytes at offset 10 are not in the capture"
    assert s.lost == 10


def test_ack_inside_a_hole_declares_only_what_it_covers() -> None:
    s, rec, findings = make()
    feed(s, (0, b"0123456789"), (20, b"KLMNOPQRST"))
    s.ack(ISN + 1 + 15)
    assert rec.calls[-1] == ("gap", 10, 5, None) and s.next == 15
    feed(s, (15, b"FGHIJ"))  # the rest of the hole arrives after all
    assert rec.stream == b"0123456789?????FGHIJKLMNOPQRST"
    s.ack(ISN + 1 + 5)  # an old ACK changes nothing
    assert summary(findings) == [("tcp-gap", None, 10, 5), ("tcp-out-of-order", 2, 20, None)]
    assert s.lost == 5


def test_finish_turns_every_remaining_hole_into_a_gap() -> None:
    s, rec, findings = make()
    feed(s, (0, b"01"), (4, b"45"), (8, b"89"))
    s.finish()
    assert rec.stream == b"01??45??89"
    assert summary(findings) == [("tcp-gap", None, 2, 2), ("tcp-gap", None, 6, 2)]
    assert s.lost == 4


def test_buffer_limit_declares_the_oldest_hole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reassembly, "PENDING_LIMIT", 8)
    s, rec, findings = make()
    feed(s, (0, b"0"), (3, b"345"), (7, b"789"), (11, b"BCD"))
    assert rec.stream == b"0??345"  # 9 bytes buffered > 8: the first hole goes
    assert summary(findings) == [("tcp-gap", None, 1, 2)]
    assert list(s.pending) == [7, 11] and s.pending_bytes == 6


def test_snaplen_hole_names_its_cause() -> None:
    s, rec, findings = make()
    s.segment(ISN + 1, b"0123", 1, missing=6)
    feed(s, (10, b"ABCD"))
    s.finish()
    assert rec.stream == b"0123??????ABCD"
    assert findings[0].message == ("A->B: 6 bytes at offset 4 are not in the capture "
                                   "(snaplen truncation)")


def test_sequence_wrap_keeps_64_bit_offsets() -> None:
    isn = (1 << 32) - 6
    s, rec, findings = make(isn)
    # offsets 0..3 sit below 2**32, offset 5 onwards above it (sequence numbers 0, 1 ...)
    s.segment(isn + 1, b"0123", 1)
    s.segment(4, b"9ABC", 2)  # sequence 4 is stream offset 9: buffered
    s.segment((isn + 1 + 4) % (1 << 32), b"45678", 3)
    s.segment((isn + 1 + 2) % (1 << 32), b"23", 4)  # retransmission across the wrap
    assert rec.stream == b"0123456789ABC"
    assert summary(findings) == [("tcp-out-of-order", 2, 9, None),
                                 ("tcp-retransmission", 4, 2, None)]
    assert s.offset_of(4) == 9 and s.offset_of((isn + 1) % (1 << 32)) == 0


def test_stream_offsets_continue_past_4_gib() -> None:
    s, rec, findings = make(0)
    s.next = (5 << 32) + 100  # as if 20 GiB had been delivered
    s.segment((1 + 100) % (1 << 32), b"xy", 1)
    assert rec.calls == [("data", (5 << 32) + 100, b"xy", 1)]


@pytest.mark.parametrize("order", ["holes", "reversed"])
def test_many_holes_cost_a_bounded_number_of_operations_per_segment(order: str) -> None:
    """20,000 segments each arriving before the bytes ahead of it: every buffered
    interval is visited a bounded number of times (a list scan per segment visited
    n**2 / 2 of them, and took 37 s at 40,000 holes)."""
    n, size = 20_000, 8
    s, rec, findings = make()
    order_ = ([*range(1, n, 2), *range(0, n, 2)] if order == "holes"
              else list(range(n - 1, -1, -1)))
    for k, i in enumerate(order_, 1):
        s.segment(ISN + 1 + i * size, bytes([i % 256]) * size, k)
    assert len(rec.stream) == n * size and s.next == n * size
    assert rec.stream == b"".join(bytes([i % 256]) * size for i in range(n))
    assert s.ops <= 3 * n, s.ops
    assert not s.pending and s.pending_bytes == 0
    assert sum(f.code == "tcp-out-of-order" for f in findings) == (
        n // 2 if order == "holes" else n - 1)
