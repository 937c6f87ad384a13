"""A minimal NFQUEUE client over a raw netlink socket, and the packet edits the
middlebox testbed makes with it.

No libnetfilter_queue binding is needed: the protocol (nfnetlink subsystem 3) is a few
fixed structs. ``NfQueue`` binds one queue, copies whole packets to user space and
returns each with a verdict, optionally with a rewritten packet (the kernel accepts a
packet of another length, so options can be inserted). Packets start at the IPv4
header; the edits below fix lengths and checksums.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable

from ..tcp.options import walk_options
from .packets import ipv4_checksum, tcp_checksum

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_PAYLOAD = 10
NFQNL_COPY_PACKET = 2
NF_ACCEPT = 1
NF_DROP = 0
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
_NLMSG = struct.Struct("=IHHII")
_NFGEN = struct.Struct("=BBH")
SEQ_MOD = 1 << 32


class NfQueueError(Exception):
    """The kernel refused a queue operation."""


def _attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * (-length % 4)


def _attrs(data: bytes) -> dict[int, bytes]:
    out = {}
    pos = 0
    while pos + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, pos)
        if length < 4:
            break
        out[kind & 0x7FFF] = data[pos + 4:pos + length]
        pos += (length + 3) & ~3
    return out


class NfQueue:
    """One bound NFQUEUE queue."""

    def __init__(self, num: int) -> None:
        self.num = num
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind((0, 0))
        self.seq = 0
        self._config(_attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)))
        self._config(_attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0xFFFF, NFQNL_COPY_PACKET)))

    def _send(self, msg_type: int, body: bytes, flags: int = NLM_F_REQUEST) -> None:
        self.seq += 1
        header = _NLMSG.pack(_NLMSG.size + _NFGEN.size + len(body),
                             (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, self.seq, 0)
        self.sock.send(header + _NFGEN.pack(socket.AF_UNSPEC, 0, socket.htons(self.num)) + body)

    def _config(self, body: bytes) -> None:
        self._send(NFQNL_MSG_CONFIG, body, NLM_F_REQUEST | NLM_F_ACK)
        reply = self.sock.recv(65536)
        length, kind, _f, _s, _p = _NLMSG.unpack_from(reply)
        if kind == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", reply, _NLMSG.size)
            if err:
                raise NfQueueError(f"queue {self.num}: {os.strerror(-err)}")

    def run(self, handle: Callable[[bytes], bytes | None | bool],
            stop: Callable[[], bool]) -> None:
        """Hand each packet to ``handle``: it returns new packet bytes, None (accept as
        is) or False (drop). Returns when ``stop()`` is true (checked every 0.2 s)."""
        self.sock.settimeout(0.2)
        while not stop():
            try:
                data = self.sock.recv(1 << 17)
            except TimeoutError:
                continue
            pos = 0
            while pos + _NLMSG.size <= len(data):
                length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, pos)
                if length < _NLMSG.size:
                    break
                if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    attrs = _attrs(data[pos + _NLMSG.size + _NFGEN.size:pos + length])
                    (packet_id,) = struct.unpack_from("!I", attrs[NFQA_PACKET_HDR])
                    payload = attrs.get(NFQA_PAYLOAD, b"")
                    try:
                        out = handle(payload)
                    except Exception:  # a bug here must not stall the testbed's traffic
                        out = None
                    verdict = NF_DROP if out is False else NF_ACCEPT
                    body = _attr(NFQA_VERDICT_HDR, struct.pack("!II", verdict, packet_id))
                    if isinstance(out, bytes):
                        body += _attr(NFQA_PAYLOAD, out)
                    self._send(NFQNL_MSG_VERDICT, body)
                pos += (length + 3) & ~3

    def close(self) -> None:
        """Unbind and close."""
        try:
            self._config(_attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_UNBIND, 0)))
        except (OSError, NfQueueError):
            pass
        self.sock.close()


# --------------------------------------------------------------------- packet edits


class Ipv4Tcp:
    """An IPv4/TCP packet split into the parts the edits touch."""

    def __init__(self, packet: bytes) -> None:
        if len(packet) < 40 or packet[0] >> 4 != 4 or packet[9] != 6:
            raise ValueError("not IPv4/TCP")
        ihl = (packet[0] & 0x0F) * 4
        self.ip = bytearray(packet[:ihl])
        doff = (packet[ihl + 12] >> 4) * 4
        self.tcp = bytearray(packet[ihl:ihl + 20])
        self.options = bytes(packet[ihl + 20:ihl + doff])
        total = struct.unpack_from("!H", packet, 2)[0]
        self.payload = bytes(packet[ihl + doff:total])

    @property
    def src(self) -> str:
        return socket.inet_ntoa(bytes(self.ip[12:16]))

    @property
    def dst(self) -> str:
        return socket.inet_ntoa(bytes(self.ip[16:20]))

    @property
    def flags(self) -> int:
        return self.tcp[13]

    @property
    def ports(self) -> tuple[int, int]:
        return struct.unpack_from("!HH", self.tcp)  # type: ignore[return-value]

    def get(self, field: str) -> int:
        return struct.unpack_from("!I", self.tcp, 4 if field == "seq" else 8)[0]

    def put(self, field: str, value: int) -> None:
        struct.pack_into("!I", self.tcp, 4 if field == "seq" else 8, value % SEQ_MOD)

    def option(self, kind: int) -> bytes | None:
        """The first option of ``kind``, whole."""
        for k, pos, data in walk_options(self.options)[0]:
            if k == kind:
                return self.options[pos:pos + 2 + len(data)]
        return None

    def strip(self, kind: int) -> bool:
        """Overwrite every option of ``kind`` with NOPs; whether there was one."""
        out = bytearray(self.options)
        hit = False
        for k, pos, data in walk_options(self.options)[0]:
            if k == kind:
                out[pos:pos + 2 + len(data)] = b"\x01" * (2 + len(data))
                hit = True
        self.options = bytes(out)
        return hit

    def append_option(self, option: bytes) -> bool:
        """Add an option after the others (NOP padded); False when it does not fit."""
        opts = self.options
        last = 0  # everything up to the last real option; EOL padding is dropped
        for _k, pos, data in walk_options(opts)[0]:
            last = pos + 2 + len(data)
        new = opts[:last] + option
        new += b"\x01" * (-len(new) % 4)
        if len(new) > 40:
            return False
        self.options = new
        return True

    def map_sack(self, fn: Callable[[int], int]) -> None:
        """Apply ``fn`` to every SACK block edge (kind 5)."""
        out = bytearray(self.options)
        for k, pos, data in walk_options(self.options)[0]:
            if k == 5:
                for i in range(0, len(data) - len(data) % 4, 4):
                    value = struct.unpack_from("!I", data, i)[0]
                    struct.pack_into("!I", out, pos + 2 + i, fn(value) % SEQ_MOD)
        self.options = bytes(out)

    def build(self) -> bytes:
        """The packet with lengths and both checksums recomputed."""
        tcp = bytearray(self.tcp)
        tcp[12] = ((20 + len(self.options)) // 4) << 4 | (tcp[12] & 0x0F)
        tcp[16:18] = b"\0\0"
        segment = bytes(tcp) + self.options + self.payload
        struct.pack_into("!H", tcp, 16, tcp_checksum(self.src, self.dst, segment))
        segment = bytes(tcp) + self.options + self.payload
        ip = bytearray(self.ip)
        struct.pack_into("!H", ip, 2, len(ip) + len(segment))
        ip[10:12] = b"\0\0"
        struct.pack_into("!H", ip, 10, ipv4_checksum(bytes(ip)))
        return bytes(ip) + segment
