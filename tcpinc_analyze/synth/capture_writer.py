"""Deterministic libpcap and pcapng writers.

Timestamps are passed in as integer nanoseconds since the epoch; nothing here reads the
clock, so the same calls always produce the same file bytes.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

_NS_PER_S = 1_000_000_000
_PCAP_MAGIC_US = 0xA1B2C3D4
_PCAP_MAGIC_NS = 0xA1B23C4D

_BT_SHB = 0x0A0D0D0A
_BT_IDB = 0x00000001
_BT_EPB = 0x00000006
_BT_DSB = 0x0000000A
_BOM = 0x1A2B3C4D
_OPT_ENDOFOPT = 0
_OPT_COMMENT = 1
_OPT_SHB_USERAPPL = 4
_OPT_IF_NAME = 2
_OPT_IF_TSRESOL = 9
_USERAPPL = "tcpinc-analyze"


def _check_ts(ts_ns: int) -> None:
    """Reject timestamps the formats cannot represent rather than wrapping silently."""
    if ts_ns < 0:
        raise ValueError(f"negative timestamp: {ts_ns}")


class PcapWriter:
    """Classic libpcap file. Timestamps are integer nanoseconds since the epoch (deterministic)."""

    def __init__(
        self,
        out: BinaryIO,
        linktype: int,
        *,
        snaplen: int = 262144,
        nanosecond: bool = False,
        big_endian: bool = False,
    ) -> None:
        self._out = out
        self._snaplen = snaplen
        self._nanosecond = nanosecond
        self._bo = ">" if big_endian else "<"
        magic = _PCAP_MAGIC_NS if nanosecond else _PCAP_MAGIC_US
        out.write(struct.pack(self._bo + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))

    def write(self, ts_ns: int, data: bytes) -> None:
        """One record; captured length is min(len, snaplen), original length len(data).
        Microsecond files round the timestamp down."""
        _check_ts(ts_ns)
        sec, frac = divmod(ts_ns, _NS_PER_S)
        if sec > 0xFFFFFFFF:
            raise ValueError(f"timestamp beyond 32-bit seconds: {ts_ns}")
        if not self._nanosecond:
            frac //= 1000
        caplen = min(len(data), self._snaplen)
        self._out.write(struct.pack(self._bo + "IIII", sec, frac, caplen, len(data)))
        self._out.write(data[:caplen])


def _pad4(data: bytes) -> bytes:
    """Zero-pad to a 32-bit boundary, as every pcapng field and block requires."""
    return data + b"\x00" * (-len(data) % 4)


def _options(opts: list[tuple[int, bytes]]) -> bytes:
    """Encode pcapng options, terminated with opt_endofopt; no options -> empty field."""
    if not opts:
        return b""
    out = b"".join(struct.pack("<HH", code, len(value)) + _pad4(value) for code, value in opts)
    return out + struct.pack("<HH", _OPT_ENDOFOPT, 0)


class PcapngWriter:
    """pcapng: one section, any number of interfaces, EPBs, optional Decryption Secrets Blocks."""

    def __init__(self, out: BinaryIO, *, shb_comment: str | None = None) -> None:
        self._out = out
        self._interfaces: list[tuple[int, int]] = []  # (snaplen, tsresol) per interface id
        opts: list[tuple[int, bytes]] = []
        if shb_comment is not None:
            opts.append((_OPT_COMMENT, shb_comment.encode()))
        opts.append((_OPT_SHB_USERAPPL, _USERAPPL.encode()))
        # Section length -1: unknown, so the writer never has to seek back.
        body = struct.pack("<IHHq", _BOM, 1, 0, -1) + _options(opts)
        self._block(_BT_SHB, body)

    def _block(self, block_type: int, body: bytes) -> None:
        """Write one block: type, total length, padded body, total length again."""
        body = _pad4(body)
        length = 12 + len(body)
        self._out.write(struct.pack("<II", block_type, length) + body + struct.pack("<I", length))

    def add_interface(
        self,
        linktype: int,
        *,
        snaplen: int = 262144,
        name: str | None = None,
        tsresol: int = 9,
    ) -> int:
        """Write an IDB; tsresol is a power-of-ten exponent (6 -> us, 9 -> ns).
        Returns the interface id (0, 1, ...) to pass to write()."""
        if not 0 <= tsresol <= 0x7F:
            raise ValueError(f"tsresol must be a power-of-ten exponent 0..127, got {tsresol}")
        opts: list[tuple[int, bytes]] = []
        if name is not None:
            opts.append((_OPT_IF_NAME, name.encode()))
        opts.append((_OPT_IF_TSRESOL, bytes((tsresol,))))
        self._block(_BT_IDB, struct.pack("<HHI", linktype, 0, snaplen) + _options(opts))
        self._interfaces.append((snaplen, tsresol))
        return len(self._interfaces) - 1

    def write(self, interface: int, ts_ns: int, data: bytes, *, comment: str | None = None) -> None:
        """Write an EPB with the timestamp in the interface's resolution (rounded down)
        and the data truncated to the interface's snaplen."""
        if not 0 <= interface < len(self._interfaces):
            raise ValueError(f"unknown interface id {interface}")
        _check_ts(ts_ns)
        snaplen, tsresol = self._interfaces[interface]
        if tsresol <= 9:
            ts = ts_ns // 10 ** (9 - tsresol)
        else:
            ts = ts_ns * 10 ** (tsresol - 9)
        if ts >> 64:
            raise ValueError(f"timestamp does not fit 64 bits at 10^-{tsresol} s: {ts_ns}")
        caplen = min(len(data), snaplen)
        opts = [(_OPT_COMMENT, comment.encode())] if comment is not None else []
        header = struct.pack("<IIIII", interface, ts >> 32, ts & 0xFFFFFFFF, caplen, len(data))
        self._block(_BT_EPB, header + _pad4(data[:caplen]) + _options(opts))

    def write_secrets(self, secrets_type: int, data: bytes) -> None:
        """Write a Decryption Secrets Block (e.g. 0x544c534b for a TLS key log)."""
        self._block(_BT_DSB, struct.pack("<II", secrets_type, len(data)) + _pad4(data))
