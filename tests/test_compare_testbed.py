"""The real-middlebox testbed (``record http --middlebox KIND``) and its NFQUEUE parts.

Live recordings need root, ``ip``, ``tcpdump``, ``nft``/``iptables`` and a working
``ip netns add``; they skip with the reason otherwise (and fail under CI, whose .ci/run
installs all of it). Each kind is recorded afresh and ``compare`` must say what the
testbed's middlebox did; the packet edits are checked with dpkt, not with our code.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest

from tcpinc_analyze.synth.nfqueue import Ipv4Tcp
from tcpinc_analyze.synth.packets import TcpSegment, build_ip, tcp_options, timestamp_option
from tcpinc_analyze.synth.testbed import MIDDLEBOXES, NAMESPACE_PREFIX

sys.path.insert(0, str(Path(__file__).parent))
from test_compare import check_record  # noqa: E402


@functools.cache
def _netns_problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, tcpdump, nftables)"
    for tool in ("ip", "tcpdump", "ethtool", "nft", "iptables"):
        if shutil.which(tool) is None:
            return f"needs {tool} (not installed)"
    probe = f"tcpinc-probe-{os.getpid()}"
    proc = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True,
                          timeout=10, check=False)
    if proc.returncode != 0:
        return f"'ip netns add' fails here (netns): {proc.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10, check=False)
    return None


def _ours() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10,
                         check=False).stdout
    return [line.split()[0] for line in out.splitlines()
            if line.startswith(NAMESPACE_PREFIX)]


@pytest.mark.parametrize("kind", MIDDLEBOXES)
def test_live_middlebox_recording_compares_as_the_testbed_says(kind: str,
                                                               tmp_path: Path) -> None:
    problem = _netns_problem()
    if problem:
        pytest.skip(f"testbed {problem}")
    files = {n: tmp_path / f"{kind}.{n}" for n in ("first.pcap", "second.pcap", "keys",
                                                   "json")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpinc_analyze.cli", "record", "http", "--middlebox", kind,
         "-o", str(files["first.pcap"]), "--second", str(files["second.pcap"]),
         "--keylog", str(files["keys"]), "--expected", str(files["json"]), "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    # its three namespaces (named after the recording process) are gone; other tests may
    # be recording in namespaces of their own at the same time
    assert not [n for n in _ours() if f"-{proc.pid}-" in n]
    assert files["keys"].stat().st_mode & 0o077 == 0
    expected = json.loads(files["json"].read_text())
    out = subprocess.run(
        [sys.executable, "-m", "tcpinc_analyze.cli", "compare", str(files["first.pcap"]),
         str(files["second.pcap"]), "--keylog", str(files["keys"]), "--format", "json"],
        capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    assert len(records) == 1
    check_record(records[0], expected["connections"][0])
    assert records[0]["near_a"] == "first"  # the delay through M orients the pair
    if kind in ("nat", "mss-clamp", "seq-shift"):  # ENO survived: tcpcrypt decrypts at both
        for cap in ("first.pcap", "second.pcap"):
            verify = subprocess.run(
                [sys.executable, "-m", "tcpinc_analyze.cli", "verify", str(files[cap]),
                 "--keylog", str(files["keys"])], capture_output=True, text=True,
                timeout=120, check=False)
            assert verify.returncode == 0 and "VERIFIED" in verify.stdout, verify.stdout


def test_unknown_middlebox_is_refused_by_the_parser() -> None:
    proc = subprocess.run([sys.executable, "-m", "tcpinc_analyze.cli", "record", "http",
                           "--middlebox", "firewall", "-o", "x", "--keylog", "k"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


# ------------------------------------------------------------------- packet edits


def _packet(options: bytes, payload: bytes = b"hello") -> bytes:
    seg = TcpSegment("192.0.2.1", "198.51.100.2", 40000, 8443, 1000, 2000, 0x18, 512,
                     options=options, payload=payload)
    return build_ip(seg)


def _checked(raw: bytes) -> dpkt.tcp.TCP:
    ip = dpkt.ip.IP(raw)
    want_ip, want_tcp = ip.sum, ip.data.sum
    ip.sum = 0
    ip.data.sum = 0
    rebuilt = dpkt.ip.IP(bytes(ip))  # dpkt recomputes both checksums on packing
    assert (rebuilt.sum, rebuilt.data.sum) == (want_ip, want_tcp)
    assert ip.len == len(raw)
    return ip.data


def test_option_inserted_with_lengths_and_checksums_fixed() -> None:
    raw = _packet(tcp_options(1, 1, timestamp_option(5, 6)))
    p = Ipv4Tcp(raw)
    assert p.append_option(bytes.fromhex("45042321"))
    out = p.build()
    tcp = _checked(out)
    opts = dict(dpkt.tcp.parse_opts(tcp.opts))
    assert opts[69] == bytes.fromhex("2321")
    assert opts[8] == (5).to_bytes(4, "big") + (6).to_bytes(4, "big")
    assert tcp.data == b"hello" and len(out) == len(raw) + 4


def test_option_that_does_not_fit_is_refused() -> None:
    p = Ipv4Tcp(_packet(b"\x01" * 36 + b"\x08\x02" + b"\x01\x01"))
    assert not p.append_option(bytes(8))


def test_strip_and_sequence_shift_keep_the_packet_valid() -> None:
    eno = bytes.fromhex("4502")
    sack = bytes.fromhex("050a") + (100).to_bytes(4, "big") + (200).to_bytes(4, "big")
    p = Ipv4Tcp(_packet(eno + b"\x01\x01" + sack))
    assert p.strip(69) and not p.strip(69)
    p.put("seq", p.get("seq") + (1 << 32) - 10)  # wraps
    p.map_sack(lambda v: v - 150)
    tcp = _checked(p.build())
    assert tcp.seq == 990
    opts = dpkt.tcp.parse_opts(tcp.opts)
    assert (69, b"\x00") not in opts and all(k != 69 for k, _v in opts)
    left, right = ((100 - 150) % (1 << 32)), 50
    assert (5, left.to_bytes(4, "big") + right.to_bytes(4, "big")) in opts
