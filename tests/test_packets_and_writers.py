"""Packet building and capture writing, checked against dpkt, a test-local RFC 1071 sum,
an independent pcapng block parser, and (when installed) tshark/capinfos."""

from __future__ import annotations

import io
import ipaddress
import shutil
import struct
import subprocess
from decimal import Decimal
from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpinc_analyze.synth.capture_writer import PcapngWriter, PcapWriter
from tcpinc_analyze.synth.packets import (
    TCP_ACK,
    TCP_PSH,
    TCP_SYN,
    LinkParams,
    LinkType,
    TcpSegment,
    build_ip,
    build_tcp,
    encapsulate,
    frame,
    ipv4_checksum,
    mss_option,
    sack_permitted_option,
    tcp_checksum,
    tcp_options,
    timestamp_option,
    wscale_option,
)

V4 = ("192.0.2.1", "198.51.100.2")
V6 = ("2001:db8::1", "2001:db8:1::2")
TS = 1_700_000_000_123_456_789  # ns; sub-microsecond digits expose rounding mistakes
SYN_OPTS = tcp_options(
    mss_option(1460), sack_permitted_option(), timestamp_option(0xDEADBEEF, 0), 1, wscale_option(7)
)


# --- independent helpers ---------------------------------------------------------------


def rfc1071(data: bytes) -> int:
    """Plain byte-pair one's-complement sum (not inverted), written separately from the code
    under test. A correct checksum makes the sum over the covered bytes 0xFFFF."""
    total = 0
    for i in range(0, len(data), 2):
        hi = data[i]
        lo = data[i + 1] if i + 1 < len(data) else 0
        total += (hi << 8) | lo
        total = (total & 0xFFFF) + (total >> 16)
    return total


def tcp_sum_ok(src: str, dst: str, tcp: bytes) -> bool:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        pseudo = s.packed + d.packed + bytes((0, 6)) + len(tcp).to_bytes(2, "big")
    else:
        pseudo = s.packed + d.packed + len(tcp).to_bytes(4, "big") + bytes((0, 0, 0, 6))
    return rfc1071(pseudo + tcp) == 0xFFFF


def seg(family: tuple[str, str] = V4, **kw: object) -> TcpSegment:
    base: dict[str, object] = dict(
        src=family[0],
        dst=family[1],
        sport=40000,
        dport=443,
        seq=0x1_0000_0005,  # exercises mod 2**32
        ack=-1,  # exercises mod 2**32 -> 0xFFFFFFFF
        flags=TCP_SYN | TCP_ACK,
        window=0xFFFF,
        options=SYN_OPTS,
        payload=b"hello, tcpinc",
        urgent=0,
        ip_id=0x1234,
        ttl=61,
        flow_label=0xABCDE,
    )
    base.update(kw)
    return TcpSegment(**base)  # type: ignore[arg-type]


def parse_pcapng(data: bytes) -> list[tuple[int, bytes]]:
    """Split a little-endian pcapng file into (block type, body) pairs, checking the
    framing: 32-bit alignment and the repeated trailing length."""
    blocks = []
    off = 0
    while off < len(data):
        btype, blen = struct.unpack_from("<II", data, off)
        assert blen % 4 == 0 and blen >= 12
        assert struct.unpack_from("<I", data, off + blen - 4)[0] == blen
        blocks.append((btype, data[off + 8 : off + blen - 4]))
        off += blen
    assert off == len(data)
    return blocks


def parse_options(buf: bytes) -> dict[int, bytes]:
    opts: dict[int, bytes] = {}
    off = 0
    while True:
        code, length = struct.unpack_from("<HH", buf, off)
        if code == 0:
            assert length == 0 and off + 4 == len(buf)  # endofopt is last
            return opts
        opts[code] = buf[off + 4 : off + 4 + length]
        off += 4 + length + (-length % 4)


# --- packets ----------------------------------------------------------------------------


def test_tcp_options_encoding() -> None:
    assert tcp_options(mss_option(1460), 1, 1, sack_permitted_option()) == bytes.fromhex(
        "020405b401010402"
    )
    assert tcp_options(wscale_option(14), 0) == bytes.fromhex("03030e00")
    assert tcp_options(timestamp_option(2**32 + 1, 2)) == bytes.fromhex("080a0000000100000002")
    assert tcp_options((0xFE, b"\x00" * 253)).startswith(b"\xfe\xff")
    with pytest.raises(ValueError):
        tcp_options((0xFE, b"\x00" * 254))


@pytest.mark.parametrize("family", [V4, V6], ids=["v4", "v6"])
def test_build_ip_round_trip(family: tuple[str, str]) -> None:
    s = seg(family)
    pkt = build_ip(s)
    ip = dpkt.ip.IP(pkt) if family is V4 else dpkt.ip6.IP6(pkt)
    tcp = ip.data
    assert isinstance(tcp, dpkt.tcp.TCP)
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack) == (40000, 443, 5, 0xFFFFFFFF)
    assert tcp.flags == TCP_SYN | TCP_ACK and tcp.win == 0xFFFF and tcp.urp == 0
    # 20 option bytes, already a multiple of 4 -> no padding
    assert tcp.off == 10 and tcp.opts == SYN_OPTS
    assert dpkt.tcp.parse_opts(tcp.opts) == [
        (2, b"\x05\xb4"),
        (4, b""),
        (8, bytes.fromhex("deadbeef00000000")),
        (1, b""),
        (3, b"\x07"),
    ]
    assert tcp.data == b"hello, tcpinc"
    tcp_bytes = build_tcp(s)
    assert pkt.endswith(tcp_bytes)
    assert tcp_sum_ok(*family, tcp_bytes)
    assert tcp_checksum(*family, tcp_bytes[:16] + b"\0\0" + tcp_bytes[18:]) == tcp.sum
    if family is V4:
        assert ip.v == 4 and ip.hl == 5 and ip.len == len(pkt) and ip.p == 6
        assert ip.id == 0x1234 and ip.ttl == 61 and ip.df == 1 and ip.mf == 0 and ip.offset == 0
        assert rfc1071(pkt[:20]) == 0xFFFF
        assert ipv4_checksum(pkt[:10] + b"\0\0" + pkt[12:20]) == ip.sum
        assert (ip.src, ip.dst) == tuple(ipaddress.ip_address(a).packed for a in V4)
    else:
        assert ip.v == 6 and ip.nxt == 6 and ip.hlim == 61 and ip.flow == 0xABCDE
        assert ip.plen == len(tcp_bytes) and len(pkt) == 40 + len(tcp_bytes)
        assert (ip.src, ip.dst) == tuple(ipaddress.ip_address(a).packed for a in V6)


def test_options_padding_and_limit() -> None:
    odd = tcp_options(mss_option(536), 1)  # 5 bytes -> padded with 3 EOL
    tcp = dpkt.tcp.TCP(build_tcp(seg(options=odd)))
    assert tcp.off == 7 and tcp.opts == odd + b"\x00\x00\x00"
    assert dpkt.tcp.TCP(build_tcp(seg(options=b"\x01" * 37))).off == 15  # 37 -> 40 fits
    with pytest.raises(ValueError):
        build_tcp(seg(options=b"\x01" * 41))


def test_family_mismatch_and_bad_flow_label() -> None:
    with pytest.raises(ValueError):
        build_tcp(seg((V4[0], V6[1])))
    with pytest.raises(ValueError):
        build_ip(seg(V6, flow_label=1 << 20))


def test_flags_and_urgent() -> None:
    tcp = dpkt.tcp.TCP(build_tcp(seg(flags=TCP_PSH | TCP_ACK | 0x20, urgent=7, options=b"")))
    assert tcp.flags == 0x38 and tcp.urp == 7 and tcp.off == 5


def _unwrap(link: LinkParams, fr: bytes) -> dpkt.Packet:
    """Decode a frame with dpkt's decoder for the link type; return the IP layer."""
    if link.linktype == LinkType.ETHERNET:
        return dpkt.ethernet.Ethernet(fr).data
    if link.linktype == LinkType.NULL:
        return dpkt.loopback.Loopback(fr).data
    if link.linktype == LinkType.LINUX_SLL:
        return dpkt.sll.SLL(fr).data
    if link.linktype == LinkType.LINUX_SLL2:
        return dpkt.sll2.SLL2(fr).data
    return (dpkt.ip.IP if fr[0] >> 4 == 4 else dpkt.ip6.IP6)(fr)


LINKS = [
    LinkParams(),
    LinkParams(vlan_ids=(100,)),
    LinkParams(vlan_ids=(10, 4094)),
    LinkParams(LinkType.NULL),
    LinkParams(LinkType.RAW),
    LinkParams(LinkType.LINUX_SLL),
    LinkParams(LinkType.LINUX_SLL, outgoing=True),
    LinkParams(LinkType.LINUX_SLL2, ifindex=7),
    LinkParams(LinkType.LINUX_SLL2, ifindex=3, outgoing=True),
]


@pytest.mark.parametrize("family", [V4, V6], ids=["v4", "v6"])
@pytest.mark.parametrize("link", LINKS, ids=lambda lp: f"{lp.linktype.name}{lp.vlan_ids}")
def test_encapsulation(family: tuple[str, str], link: LinkParams) -> None:
    s = seg(family)
    pkt = build_ip(s)
    fr = frame(s, link)
    assert fr == encapsulate(pkt, link) and fr.endswith(pkt)
    hdr = fr[: len(fr) - len(pkt)]
    ethertype = 0x0800 if family is V4 else 0x86DD
    ip = _unwrap(link, fr)
    assert bytes(ip) == pkt and ip.data.sport == 40000
    ptype = 4 if link.outgoing else 0
    mac8 = link.src_mac + b"\0\0"
    if link.linktype == LinkType.ETHERNET:
        tpids = {0: [], 1: [0x8100], 2: [0x88A8, 0x8100]}[len(link.vlan_ids)]
        tags = b"".join(struct.pack("!HH", t, v) for t, v in zip(tpids, link.vlan_ids, strict=True))
        assert hdr == link.dst_mac + link.src_mac + tags + struct.pack("!H", ethertype)
        eth = dpkt.ethernet.Ethernet(fr)
        assert [t.id for t in getattr(eth, "vlan_tags", [])] == list(link.vlan_ids)
    elif link.linktype == LinkType.NULL:
        assert hdr == struct.pack("<I", 2 if family is V4 else 24)
    elif link.linktype == LinkType.RAW:
        assert hdr == b""
    elif link.linktype == LinkType.LINUX_SLL:
        assert hdr == struct.pack("!HHH", ptype, 1, 6) + mac8 + struct.pack("!H", ethertype)
        assert len(hdr) == 16
    else:
        assert hdr == struct.pack("!HHIHBB", ethertype, 0, link.ifindex, 1, ptype, 6) + mac8
        assert len(hdr) == 20


def test_encapsulation_errors() -> None:
    pkt = build_ip(seg())
    with pytest.raises(ValueError):
        encapsulate(pkt, LinkParams(LinkType.RAW, vlan_ids=(1,)))
    with pytest.raises(ValueError):
        encapsulate(pkt, LinkParams(vlan_ids=(1, 2, 3)))
    with pytest.raises(ValueError):
        encapsulate(pkt, LinkParams(vlan_ids=(4096,)))
    with pytest.raises(ValueError):
        encapsulate(b"\x50" + pkt[1:], LinkParams())


# --- capture writers --------------------------------------------------------------------


@pytest.mark.parametrize("nanosecond", [False, True], ids=["us", "ns"])
@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
def test_pcap_round_trip(nanosecond: bool, big_endian: bool) -> None:
    frames = [frame(seg(V4), LinkParams()), frame(seg(V6, payload=b"x" * 300), LinkParams())]
    buf = io.BytesIO()
    w = PcapWriter(
        buf, LinkType.ETHERNET, snaplen=200, nanosecond=nanosecond, big_endian=big_endian
    )
    w.write(TS, frames[0])
    w.write(TS + 1_999, frames[1])
    data = buf.getvalue()
    bo = ">" if big_endian else "<"
    magic, vmaj, vmin, zone, sigfigs, snaplen, lt = struct.unpack_from(bo + "IHHiIII", data)
    assert magic == (0xA1B23C4D if nanosecond else 0xA1B2C3D4)
    assert (vmaj, vmin, zone, sigfigs, snaplen, lt) == (2, 4, 0, 0, 200, 1)

    reader = dpkt.pcap.Reader(io.BytesIO(data))
    assert reader.datalink() == 1 and reader.snaplen == 200
    got = list(reader)
    assert [p for _, p in got] == [frames[0], frames[1][:200]]
    for (ts, _), ns in zip(got, [TS, TS + 1_999], strict=True):
        want = Decimal(ns // (1 if nanosecond else 1000)) / (10**9 if nanosecond else 10**6)
        assert abs(Decimal(ts) - want) < Decimal("1e-6")
    # exact record headers, including caplen < origlen for the truncated one
    off = 24
    recs = []
    for _ in range(2):
        recs.append(struct.unpack_from(bo + "IIII", data, off))
        off += 16 + recs[-1][2]
    assert off == len(data)
    frac = [123456789, 123458788] if nanosecond else [123456, 123458]
    assert recs[0] == (1_700_000_000, frac[0], len(frames[0]), len(frames[0]))
    assert recs[1] == (1_700_000_000, frac[1], 200, len(frames[1]))


def write_two_interface_pcapng() -> tuple[bytes, list[bytes]]:
    frames = [
        frame(seg(V6), LinkParams(vlan_ids=(42,))),
        frame(seg(V4, payload=b"y" * 100), LinkParams(LinkType.LINUX_SLL2, ifindex=2)),
        frame(seg(V6, sport=40001), LinkParams(vlan_ids=(42,))),
    ]
    buf = io.BytesIO()
    w = PcapngWriter(buf, shb_comment="synthetic")
    eth = w.add_interface(LinkType.ETHERNET, name="veth0")
    sll = w.add_interface(LinkType.LINUX_SLL2, snaplen=96, tsresol=6)
    assert (eth, sll) == (0, 1)
    w.write(eth, TS, frames[0], comment="first")
    w.write(sll, TS + 1_000_999, frames[1])
    w.write_secrets(0x544C534B, b"CLIENT_RANDOM 00 11\n1")  # 21 bytes -> padded to 24
    w.write(eth, TS + 2_000_000_001, frames[2])
    return buf.getvalue(), frames


def test_pcapng_blocks() -> None:
    data, frames = write_two_interface_pcapng()
    assert write_two_interface_pcapng()[0] == data  # deterministic
    blocks = parse_pcapng(data)
    assert [b[0] for b in blocks] == [0x0A0D0D0A, 1, 1, 6, 6, 0x0A, 6]

    shb = blocks[0][1]
    assert struct.unpack_from("<IHHq", shb) == (0x1A2B3C4D, 1, 0, -1)
    assert parse_options(shb[16:]) == {1: b"synthetic", 4: b"tcpinc-analyze"}

    idbs = [struct.unpack_from("<HHI", b) + (parse_options(b[8:]),) for t, b in blocks if t == 1]
    assert idbs == [(1, 0, 262144, {2: b"veth0", 9: b"\x09"}), (276, 0, 96, {9: b"\x06"})]

    epbs = []
    for t, body in blocks:
        if t == 6:
            iface, hi, lo, cap, orig = struct.unpack_from("<IIIII", body)
            pkt = body[20 : 20 + cap]
            rest = body[20 + cap + (-cap % 4) :]
            epbs.append((iface, (hi << 32) | lo, pkt, orig, parse_options(rest) if rest else {}))
    assert epbs == [
        (0, TS, frames[0], len(frames[0]), {1: b"first"}),
        (1, (TS + 1_000_999) // 1000, frames[1][:96], len(frames[1]), {}),
        (0, TS + 2_000_000_001, frames[2], len(frames[2]), {}),
    ]
    assert len(frames[1]) > 96  # truncation really happened

    dsb = blocks[5][1]
    stype, slen = struct.unpack_from("<II", dsb)
    assert (stype, slen) == (0x544C534B, 21)
    assert dsb[8:] == b"CLIENT_RANDOM 00 11\n1\0\0\0"


def test_pcapng_dpkt_reader() -> None:
    """dpkt only honours the first IDB (here ns) but must accept the whole file."""
    data, frames = write_two_interface_pcapng()
    reader = dpkt.pcapng.Reader(io.BytesIO(data))
    assert reader.datalink() == 1
    got = list(reader)
    assert [p for _, p in got] == [frames[0], frames[1][:96], frames[2]]
    assert abs(got[0][0] - TS / 1e9) < 1e-6
    eth = dpkt.ethernet.Ethernet(got[0][1])
    assert eth.vlan_tags[0].id == 42 and tcp_sum_ok(*V6, bytes(eth.data.data))


def test_pcapng_errors() -> None:
    w = PcapngWriter(io.BytesIO())
    with pytest.raises(ValueError):
        w.write(0, TS, b"")
    i = w.add_interface(LinkType.RAW)
    with pytest.raises(ValueError):
        w.write(i, -1, b"")


# --- tshark cross-check -----------------------------------------------------------------

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
FIELDS = [
    "frame.interface_id",
    "ip.src",
    "ipv6.src",
    "tcp.srcport",
    "tcp.checksum.status",
    "ip.checksum.status",
    "tcp.options.mss_val",
    "tcp.len",
]


def tshark_fields(path: Path) -> list[list[str]]:
    cmd = [
        "tshark",
        "-n",
        "-r",
        str(path),
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
        "-T",
        "fields",
    ]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    return [line.split("\t") for line in out.splitlines()]


GOOD, BAD = "1", "0"  # tshark 4.0 proto_checksum_enum_e: 0 Bad, 1 Good, 2 Unverified


@pytest.mark.tshark
@needs_tshark
def test_tshark_pcapng(tmp_path: Path) -> None:
    data, _ = write_two_interface_pcapng()
    path = tmp_path / "two.pcapng"
    path.write_bytes(data)
    rows = tshark_fields(path)
    # frame 2 is cut at 96 bytes, so its tcp.len/checksum cannot be verified: expect Unverified
    assert rows == [
        ["0", "", V6[0], "40000", GOOD, "", "1460", "13"],
        ["1", V4[0], "", "40000", "2", GOOD, "1460", "100"],
        ["0", "", V6[0], "40001", GOOD, "", "1460", "13"],
    ]
    if shutil.which("capinfos"):
        out = subprocess.run(
            ["capinfos", "-D", "-I", "-M", str(path)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert "Number of decryption secrets in file: 1" in out
        assert "Number of interfaces in file: 2" in out


@pytest.mark.tshark
@needs_tshark
def test_tshark_pcapng_untruncated_sll2(tmp_path: Path) -> None:
    buf = io.BytesIO()
    w = PcapngWriter(buf)
    w.add_interface(LinkType.ETHERNET)
    i = w.add_interface(LinkType.LINUX_SLL2, tsresol=6)
    w.write(i, TS, frame(seg(V4), LinkParams(LinkType.LINUX_SLL2)))
    path = tmp_path / "sll2.pcapng"
    path.write_bytes(buf.getvalue())
    assert tshark_fields(path) == [["1", V4[0], "", "40000", GOOD, GOOD, "1460", "13"]]


@pytest.mark.tshark
@needs_tshark
@pytest.mark.parametrize("linktype", [LinkType.NULL, LinkType.LINUX_SLL])
def test_tshark_pcap_and_bad_checksums(tmp_path: Path, linktype: LinkType) -> None:
    link = LinkParams(linktype)
    good4, good6 = frame(seg(V4), link), frame(seg(V6), link)
    hl = len(good4) - len(build_ip(seg(V4)))
    bad_tcp = bytearray(good4)
    bad_tcp[hl + 20 + 16] ^= 0x01  # TCP checksum field
    bad_ip = bytearray(good4)
    bad_ip[hl + 10] ^= 0x01  # IPv4 header checksum field
    path = tmp_path / f"{linktype.name}.pcap"
    with path.open("wb") as f:
        w = PcapWriter(f, linktype, nanosecond=True)
        for n, fr in enumerate([good4, good6, bytes(bad_tcp), bytes(bad_ip)]):
            w.write(TS + n, fr)
    rows = tshark_fields(path)
    assert [r[1:] for r in rows] == [
        [V4[0], "", "40000", GOOD, GOOD, "1460", "13"],
        ["", V6[0], "40000", GOOD, "", "1460", "13"],
        [V4[0], "", "40000", BAD, GOOD, "1460", "13"],
        [V4[0], "", "40000", GOOD, BAD, "1460", "13"],
    ]


# --- property test ----------------------------------------------------------------------

option_st = st.one_of(
    st.just(1),
    st.just(0),
    st.tuples(st.integers(2, 255), st.binary(max_size=12)),
)


@settings(max_examples=300, deadline=None)
@given(
    opts=st.lists(option_st, max_size=8),
    payload=st.binary(max_size=200),
    sport=st.integers(0, 0xFFFF),
    dport=st.integers(0, 0xFFFF),
    seq=st.integers(0, 2**40),
    ack=st.integers(0, 2**32 - 1),
    flags=st.integers(0, 0xFF),
    window=st.integers(0, 0xFFFF),
    v6=st.booleans(),
)
def test_build_tcp_property(
    opts: list,
    payload: bytes,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    v6: bool,
) -> None:
    family = V6 if v6 else V4
    options = tcp_options(*opts)
    s = TcpSegment(*family, sport, dport, seq, ack, flags, window, options, payload)
    padded = options + b"\0" * (-len(options) % 4)
    if len(padded) > 40:
        with pytest.raises(ValueError):
            build_tcp(s)
        return
    raw = build_tcp(s)
    assert tcp_sum_ok(*family, raw)
    tcp = dpkt.tcp.TCP(raw)
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack) == (sport, dport, seq % 2**32, ack)
    assert (tcp.flags, tcp.win, tcp.off) == (flags, window, 5 + len(padded) // 4)
    assert tcp.opts == padded and tcp.data == payload
    pkt = build_ip(s)
    assert pkt.endswith(raw)
    if not v6:
        assert rfc1071(pkt[:20]) == 0xFFFF
