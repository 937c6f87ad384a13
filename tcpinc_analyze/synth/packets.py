"""Byte-exact IPv4/IPv6 + TCP packet and link-layer frame construction.

Everything here is a pure function of its inputs (no clocks, no randomness), so the
capture synthesizer produces identical bytes for identical inputs. Checksums are always
computed and correct; a test that wants a bad checksum corrupts the bytes afterwards.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass
from enum import IntEnum

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

_IPPROTO_TCP = 6
_TCP_HEADER_LEN = 20
_MAX_TCP_OPTIONS = 40  # data offset is 4 bits of 32-bit words: 15 * 4 - 20
_ETH_P_IP = 0x0800
_ETH_P_IPV6 = 0x86DD
_ETH_P_8021Q = 0x8100
_ETH_P_8021AD = 0x88A8
_ARPHRD_ETHER = 1
_PACKET_HOST = 0
_PACKET_OUTGOING = 4
# BSD loopback (DLT_NULL) address families. AF_INET is 2 everywhere; AF_INET6 differs per
# BSD (24 NetBSD/OpenBSD, 28 FreeBSD, 30 Darwin). libpcap, Wireshark and dpkt accept all
# three as IPv6, so the fixed value 24 keeps output independent of the host we run on.
_AF_INET = 2
_AF_INET6_BSD = 24


@dataclass(frozen=True)
class TcpSegment:
    """One TCP segment plus the IP header fields the synthesizer controls."""

    src: str  # IPv4 or IPv6 address text; both ends same family
    dst: str
    sport: int
    dport: int
    seq: int  # taken mod 2**32
    ack: int  # taken mod 2**32
    flags: int
    window: int  # the 16-bit field value as sent (not scaled)
    options: bytes = b""  # already-encoded TCP options; padded with EOL to a multiple of 4
    payload: bytes = b""
    urgent: int = 0
    ip_id: int = 0  # IPv4 identification
    ttl: int = 64  # IPv4 TTL / IPv6 hop limit
    flow_label: int = 0  # IPv6


def tcp_options(*opts: tuple[int, bytes] | int) -> bytes:
    """Encode a TCP option list: an int is a one-byte option (0 EOL, 1 NOP);
    (kind, data) -> kind, len(data)+2, data.

    No padding is added here so callers can build deliberately odd layouts; build_tcp pads.
    """
    out = bytearray()
    for opt in opts:
        if isinstance(opt, int):
            if not 0 <= opt <= 0xFF:
                raise ValueError(f"option kind out of range: {opt}")
            out.append(opt)
            continue
        kind, data = opt
        if not 0 <= kind <= 0xFF:
            raise ValueError(f"option kind out of range: {kind}")
        if len(data) + 2 > 0xFF:
            raise ValueError(f"option {kind} too long: {len(data)} data bytes")
        out += bytes((kind, len(data) + 2)) + data
    return bytes(out)


def mss_option(mss: int) -> tuple[int, bytes]:
    """Maximum Segment Size (kind 2, RFC 9293)."""
    return (2, struct.pack("!H", mss))


def wscale_option(shift: int) -> tuple[int, bytes]:
    """Window Scale (kind 3, RFC 7323); the shift is sent as given, even if > 14."""
    return (3, struct.pack("!B", shift))


def sack_permitted_option() -> tuple[int, bytes]:
    """SACK-Permitted (kind 4, RFC 2018)."""
    return (4, b"")


def timestamp_option(tsval: int, tsecr: int) -> tuple[int, bytes]:
    """Timestamps (kind 8, RFC 7323); values are taken mod 2**32 like sequence numbers."""
    return (8, struct.pack("!II", tsval % 2**32, tsecr % 2**32))


def _addresses(src: str, dst: str) -> tuple[int, bytes, bytes]:
    """Return (IP version, packed src, packed dst), insisting both are the same family."""
    s = ipaddress.ip_address(src)
    d = ipaddress.ip_address(dst)
    if s.version != d.version:
        raise ValueError(f"address family mismatch: {src} -> {dst}")
    return s.version, s.packed, d.packed


def _ones_complement_sum(data: bytes) -> int:
    """RFC 1071 16-bit one's-complement sum (not inverted); odd lengths are zero-padded."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def tcp_checksum(src: str, dst: str, tcp_bytes: bytes) -> int:
    """TCP checksum of tcp_bytes (checksum field zeroed by the caller) over the v4/v6
    pseudo-header, so it is right for whichever family the addresses are."""
    version, s, d = _addresses(src, dst)
    if version == 4:
        pseudo = s + d + struct.pack("!BBH", 0, _IPPROTO_TCP, len(tcp_bytes))
    else:
        pseudo = s + d + struct.pack("!I3xB", len(tcp_bytes), _IPPROTO_TCP)
    return ~_ones_complement_sum(pseudo + tcp_bytes) & 0xFFFF


def ipv4_checksum(header: bytes) -> int:
    """IPv4 header checksum of header (checksum field zeroed by the caller)."""
    return ~_ones_complement_sum(header) & 0xFFFF


def build_tcp(seg: TcpSegment) -> bytes:
    """TCP header + EOL-padded options + payload with a correct checksum.

    Raises ValueError if the options do not fit the 40 bytes the data offset allows.
    """
    options = seg.options + b"\x00" * (-len(seg.options) % 4)
    if len(options) > _MAX_TCP_OPTIONS:
        raise ValueError(f"TCP options too long: {len(seg.options)} > {_MAX_TCP_OPTIONS} bytes")
    if not 0 <= seg.flags <= 0xFFF:
        raise ValueError(f"TCP flags out of range: {seg.flags:#x}")
    doff = (_TCP_HEADER_LEN + len(options)) // 4
    header = struct.pack(
        "!HHIIHHHH",
        seg.sport,
        seg.dport,
        seg.seq % 2**32,
        seg.ack % 2**32,
        (doff << 12) | seg.flags,
        seg.window,
        0,
        seg.urgent,
    )
    tcp = header + options + seg.payload
    csum = tcp_checksum(seg.src, seg.dst, tcp)
    return tcp[:16] + struct.pack("!H", csum) + tcp[18:]


def build_ip(seg: TcpSegment) -> bytes:
    """IPv4 (no options, DF set, correct header checksum) or IPv6 (next header TCP, no
    extension headers) packet carrying build_tcp(seg)."""
    version, s, d = _addresses(seg.src, seg.dst)
    tcp = build_tcp(seg)
    if version == 4:
        total = 20 + len(tcp)
        if total > 0xFFFF:
            raise ValueError(f"IPv4 packet too long: {total} bytes")
        header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, total, seg.ip_id, 0x4000, seg.ttl, _IPPROTO_TCP, 0, s, d
        )
        header = header[:10] + struct.pack("!H", ipv4_checksum(header)) + header[12:]
        return header + tcp
    if len(tcp) > 0xFFFF:
        raise ValueError(f"IPv6 payload too long (no jumbograms): {len(tcp)} bytes")
    if not 0 <= seg.flow_label < 1 << 20:
        raise ValueError(f"IPv6 flow label out of range: {seg.flow_label:#x}")
    first = (6 << 28) | seg.flow_label
    return struct.pack("!IHBB16s16s", first, len(tcp), _IPPROTO_TCP, seg.ttl, s, d) + tcp


class LinkType(IntEnum):
    """pcap LINKTYPE_* values for the encapsulations encapsulate() can produce."""

    NULL = 0
    ETHERNET = 1
    RAW = 101
    LINUX_SLL = 113
    LINUX_SLL2 = 276


@dataclass(frozen=True)
class LinkParams:
    """How to wrap IP packets for one capture interface."""

    linktype: LinkType = LinkType.ETHERNET
    vlan_ids: tuple[int, ...] = ()  # Ethernet only: 1 tag -> 802.1Q, 2 -> QinQ (outer 802.1ad)
    src_mac: bytes = bytes.fromhex("020000000001")
    dst_mac: bytes = bytes.fromhex("020000000002")
    ifindex: int = 1  # SLL2
    outgoing: bool = False  # SLL/SLL2 packet type: 4 (outgoing) vs 0 (to us)


def _ethertype(ip_packet: bytes) -> int:
    """EtherType for an IP packet, from its version nibble."""
    version = ip_packet[0] >> 4 if ip_packet else None
    if version == 4:
        return _ETH_P_IP
    if version == 6:
        return _ETH_P_IPV6
    raise ValueError(f"not an IPv4/IPv6 packet (version {version})")


def encapsulate(ip_packet: bytes, link: LinkParams) -> bytes:
    """Prepend the link-layer header for link.linktype to an IP packet.

    NULL uses a little-endian family word (AF_INET 2, AF_INET6 24), i.e. what a
    little-endian BSD host writes; readers detect the byte order and accept 24/28/30.
    SLL/SLL2 carry src_mac as the link-layer address, as Linux records it for both
    directions (the sender's address).
    """
    ethertype = _ethertype(ip_packet)
    if link.vlan_ids and link.linktype != LinkType.ETHERNET:
        raise ValueError(f"VLAN tags need Ethernet, not {link.linktype.name}")
    if link.linktype == LinkType.ETHERNET:
        if len(link.vlan_ids) > 2:
            raise ValueError(f"at most two VLAN tags supported, got {len(link.vlan_ids)}")
        tpids = {1: (_ETH_P_8021Q,), 2: (_ETH_P_8021AD, _ETH_P_8021Q)}.get(len(link.vlan_ids), ())
        tags = b""
        for tpid, vid in zip(tpids, link.vlan_ids, strict=True):
            if not 0 <= vid <= 0xFFF:
                raise ValueError(f"VLAN id out of range: {vid}")
            tags += struct.pack("!HH", tpid, vid)
        return link.dst_mac + link.src_mac + tags + struct.pack("!H", ethertype) + ip_packet
    if link.linktype == LinkType.NULL:
        family = _AF_INET if ethertype == _ETH_P_IP else _AF_INET6_BSD
        return struct.pack("<I", family) + ip_packet
    if link.linktype == LinkType.RAW:
        return ip_packet
    pkttype = _PACKET_OUTGOING if link.outgoing else _PACKET_HOST
    if len(link.src_mac) != 6:
        raise ValueError(f"MAC address must be 6 bytes, got {len(link.src_mac)}")
    if link.linktype == LinkType.LINUX_SLL:
        header = struct.pack("!HHH8sH", pkttype, _ARPHRD_ETHER, 6, link.src_mac, ethertype)
        return header + ip_packet
    if link.linktype == LinkType.LINUX_SLL2:
        header = struct.pack(
            "!HHIHBB8s", ethertype, 0, link.ifindex, _ARPHRD_ETHER, pkttype, 6, link.src_mac
        )
        return header + ip_packet
    raise ValueError(f"unsupported link type: {link.linktype!r}")


def frame(seg: TcpSegment, link: LinkParams) -> bytes:
    """One captured frame: the segment's IP packet wrapped for the given link."""
    return encapsulate(build_ip(seg), link)


def repack_ip_tcp(frame: bytes, ip_offset: int, ip_header: bytes, tcp: bytes,
                  trailer: bytes = b"") -> bytes:
    """A captured frame rebuilt around a new TCP segment: the TCP checksum, the IP length
    fields and the IPv4 header checksum are recomputed, every other byte is kept.

    ``ip_header`` is the IP header as captured (IPv6 with any extension headers); ``tcp``
    is the TCP header and payload (its checksum field is overwritten); ``trailer`` is
    whatever followed the IP packet in the frame (Ethernet padding).
    """
    header = bytearray(ip_header)
    version = header[0] >> 4
    if version == 4:
        src, dst = socket.inet_ntop(socket.AF_INET, bytes(header[12:16])), socket.inet_ntop(
            socket.AF_INET, bytes(header[16:20]))
        struct.pack_into("!H", header, 2, len(header) + len(tcp))
        struct.pack_into("!H", header, 10, 0)
        struct.pack_into("!H", header, 10, ipv4_checksum(bytes(header)))
    elif version == 6:
        src = socket.inet_ntop(socket.AF_INET6, bytes(header[8:24]))
        dst = socket.inet_ntop(socket.AF_INET6, bytes(header[24:40]))
        struct.pack_into("!H", header, 4, len(header) - 40 + len(tcp))
    else:
        raise ValueError(f"not an IPv4/IPv6 header (version {version})")
    seg = bytearray(tcp)
    struct.pack_into("!H", seg, 16, 0)
    struct.pack_into("!H", seg, 16, tcp_checksum(src, dst, bytes(seg)))
    return frame[:ip_offset] + bytes(header) + bytes(seg) + trailer
