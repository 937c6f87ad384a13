"""pcapng timestamps per interface (if_tsresol decimal and binary, if_tsoffset, the
default microseconds), read by the product from bytes packed here by hand, so neither
the product's writer nor its reader sets the expectation."""

from __future__ import annotations

import io
import struct

from tcpinc_analyze.capture.reader import Record, read_capture


def block(kind: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    total = 12 + len(body)
    return struct.pack("<II", kind, total) + body + struct.pack("<I", total)


def option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) % 4)


def idb(*options: bytes) -> bytes:
    opts = b"".join(options) + (option(0, b"") if options else b"")
    return block(1, struct.pack("<HHI", 1, 0, 65535) + opts)


def epb(interface: int, ts: int, data: bytes) -> bytes:
    return block(6, struct.pack("<IIIII", interface, ts >> 32, ts & 0xFFFFFFFF, len(data),
                                len(data)) + data)


def test_timestamps_follow_each_interfaces_resolution_and_offset() -> None:
    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    frame = bytes(14)
    data = (shb
            + idb(option(9, b"\x03"))  # milliseconds
            + idb(option(9, bytes((0x80 | 20,))))  # 2**-20 s
            + idb(option(14, struct.pack("<q", 100)))  # microseconds, 100 s offset
            + idb(option(9, b"\x09"))  # nanoseconds
            + epb(0, 1_700_000_000_123, frame)
            + epb(1, 5 * (1 << 20) + (1 << 19), frame)
            + epb(2, 1_000_000, frame)
            + epb(3, 1_700_000_000_123_456_789, frame))
    records = [r for r in read_capture(io.BytesIO(data), "t.pcapng") if isinstance(r, Record)]
    assert [(r.number, r.interface, r.ts_ns) for r in records] == [
        (1, 0, 1_700_000_000_123_000_000),
        (2, 1, 5_500_000_000),
        (3, 2, 101_000_000_000),
        (4, 3, 1_700_000_000_123_456_789),
    ]
