"""The real-Linux-stack recorder: namespaces, capture patching, and the recorded samples.

The recording tests need root, ``ip`` and ``tcpdump`` and a working ``ip netns add``;
they skip with the reason otherwise. Everything checked here is computed independently
of the recorder (own checksum code, own reassembly, the analyzer's own parsers).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import dpkt
import pytest

from tcpinc_analyze.keylog import parse_keylog
from tcpinc_analyze.synth import recorder
from tcpinc_analyze.synth.packets import (
    TCP_ACK,
    TCP_SYN,
    TcpSegment,
    frame,
    mss_option,
    sack_permitted_option,
    tcp_options,
    timestamp_option,
    wscale_option,
)
from tcpinc_analyze.synth.packets import LinkParams as _LinkParams
from tcpinc_analyze.synth.recorder import RECORDER_SCENARIOS, RecorderError, record
from tcpinc_analyze.synth.recorder_peer import build_script, frame_schedule
from tcpinc_analyze.tcpcrypt.frames import FrameOpener
from tcpinc_analyze.tcpcrypt.keyschedule import SessionKeys
from tcpinc_analyze.tcpcrypt.messages import parse_frame_header, parse_init1, parse_init2

A, B = "192.0.2.1", "192.0.2.2"


@functools.cache
def _netns_problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, tcpdump)"
    for tool in ("ip", "tcpdump", "ethtool"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    probe = f"tcpinc-probe-{os.getpid()}"
    proc = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True,
                          timeout=10, check=False)
    if proc.returncode != 0:
        return f"'ip netns add' fails here: {proc.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10, check=False)
    return None


def require_netns() -> None:
    problem = _netns_problem()
    if problem:
        pytest.skip(f"recorder test {problem}")


def our_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10,
                         check=False).stdout
    return [line.split()[0] for line in out.splitlines()
            if line.strip() and line.startswith("tcpinc-") and f"-{os.getpid()}-" in line]


# --------------------------------------------------------------- independent helpers


def ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksums_verify(buf: bytes) -> bool:
    """IPv4 header and TCP checksums of an Ethernet frame verify (sum to 0xffff)."""
    ip = buf[14:]
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack_from("!H", ip, 2)[0]
    tcp = ip[ihl:total]
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(tcp))
    return ones_sum(ip[:ihl]) == 0xFFFF and ones_sum(pseudo + tcp) == 0xFFFF


def read_packets(path: Path) -> list[tuple[float, dpkt.ethernet.Ethernet]]:
    with path.open("rb") as fh:
        reader = dpkt.pcap.Reader(fh)
        assert reader.datalink() == dpkt.pcap.DLT_EN10MB
        return [(ts, dpkt.ethernet.Ethernet(buf)) for ts, buf in reader]


def eno_of(tcp: dpkt.tcp.TCP) -> bytes | None:
    for kind, data in dpkt.tcp.parse_opts(tcp.opts):
        if kind == 69:
            return bytes((69, len(data) + 2)) + data
    return None


def streams(path: Path) -> dict[str, bytes]:
    """Both directions' payloads, by sequence number (first copy of each byte wins)."""
    isn: dict[str, int] = {}
    parts: dict[str, dict[int, bytes]] = {"ab": {}, "ba": {}}
    for _ts, eth in read_packets(path):
        ip = eth.data
        tcp = ip.data
        d = "ab" if ip.src == bytes(map(int, A.split("."))) else "ba"
        if tcp.flags & dpkt.tcp.TH_SYN:
            isn[d] = tcp.seq
            continue
        if tcp.data:
            off = (tcp.seq - isn[d] - 1) % 2**32
            for i, byte in enumerate(bytes(tcp.data)):
                parts[d].setdefault(off + i, bytes((byte,)))
    out = {}
    for d, got in parts.items():
        assert sorted(got) == list(range(len(got))), f"hole in the {d} stream"
        out[d] = b"".join(got[i] for i in range(len(got)))
    return out


def decrypt_all(stream: bytes, init_len: int, opener: FrameOpener) -> tuple[int, int, str]:
    pos, frames, rekeys, h = init_len, 0, 0, hashlib.sha256()
    while pos < len(stream):
        header, findings = parse_frame_header(stream, pos)
        assert header is not None and not findings
        plain = opener.open(header.control, stream[pos + 3:pos + header.total], pos)
        assert plain is not None, f"frame at {pos} does not decrypt"
        h.update(plain.data)
        frames += 1
        rekeys += header.rekey
        pos += header.total
    assert pos == len(stream)
    return frames, rekeys, h.hexdigest()


# ----------------------------------------------------------- no root needed


def test_unknown_scenario_raises_before_creating_anything(tmp_path):
    with pytest.raises(RecorderError, match="unknown recorder scenario"):
        record("no-such-scenario", tmp_path / "x.pcap", tmp_path / "x.keys")
    assert not list(tmp_path.iterdir())
    if _netns_problem() is None:
        assert our_namespaces() == []


def test_cli_record_unknown_scenario_is_a_usage_error(tmp_path):
    from tcpinc_analyze.cli import EXIT_USAGE, main

    assert main(["record", "nope", "-o", str(tmp_path / "x.pcap"),
                 "--keylog", str(tmp_path / "x.keys")]) == EXIT_USAGE


def test_scenarios_fit_their_bounds():
    for sc in RECORDER_SCENARIOS.values():
        plan = recorder.build_plan(sc, 1, 5.0, Path("/nonexistent"))
        messages = build_script(plan)
        schedule = frame_schedule(plan, messages)
        ab = [f for specs in schedule for f in specs if f.from_a]
        ba = [f for specs in schedule for f in specs if not f.from_a]
        # RFC 8548 §3.8: a sender initiates its planned rekeys, and a receiver whose peer
        # moved past its generation makes its next frames rekey frames (one per step).
        gen = {True: 0, False: 0}
        for specs in schedule:
            sender = specs[0].from_a
            owed = max(0, gen[not sender] - gen[sender])
            assert all(f.rekey for f in specs[:owed])
            planned = set(sc.rekey_ab if sender else sc.rekey_ba)
            for n, f in enumerate(specs):
                assert f.rekey == (n < owed or f.index in planned)
            gen[sender] += sum(f.rekey for f in specs)
        assert sum(f.rekey for f in ab) >= len(sc.rekey_ab)
        assert sum(f.rekey for f in ba) >= len(sc.rekey_ba)
        assert ab[-1].fin and ba[-1].fin and sum(f.fin for f in ab + ba) == 2
        assert sum(len(m) for _, m in messages) < 1_000_000
        # Linux SYN options take 20 bytes; ENO must fit in the other 20 (NOP-padded).
        assert 20 + len(sc.eno_a) + (-len(sc.eno_a) % 4) <= 40
        assert 20 + len(sc.eno_b) + (-len(sc.eno_b) % 4) <= 40
    assert RECORDER_SCENARIOS["http"].tep == 0x23 and RECORDER_SCENARIOS["bulk"].tep == 0x21


def _linux_syn(payload: bytes = b"") -> bytes:
    opts = tcp_options(mss_option(1460), sack_permitted_option(),
                       timestamp_option(123456, 0), 1, wscale_option(10))
    seg = TcpSegment(A, B, 40000, 8443, 1000, 0, TCP_SYN, 64240, opts, payload, ip_id=77)
    return frame(seg, _LinkParams())


def test_insert_option_keeps_kernel_bytes_and_fixes_lengths():
    raw = _linux_syn()
    seg = recorder.parse_frame(1, 0.0, raw)
    patched = recorder.insert_option(seg, bytes.fromhex("45042321"))
    assert len(patched) == len(raw) + 4
    assert checksums_verify(patched)
    eth = dpkt.ethernet.Ethernet(patched)
    assert eth.data.len == len(patched) - 14 and eth.data.id == 77 and eth.data.ttl == 64
    tcp = eth.data.data
    assert tcp.off * 4 == 44 and tcp.win == 64240 and tcp.seq == 1000
    assert bytes(tcp.opts) == seg.options + bytes.fromhex("45042321")
    odd = recorder.insert_option(seg, bytes.fromhex("450323"))
    assert bytes(dpkt.ethernet.Ethernet(odd).data.data.opts).endswith(bytes.fromhex("45032301"))
    assert checksums_verify(odd)
    data = recorder.insert_option(
        recorder.parse_frame(1, 0.0, frame(TcpSegment(A, B, 1, 2, 3, 4, TCP_ACK, 5,
                                                      payload=b"xyz"), _LinkParams())),
        bytes.fromhex("4502"))
    assert checksums_verify(data) and bytes(dpkt.ethernet.Ethernet(data).data.data.data) == b"xyz"
    with pytest.raises(RecorderError, match="does not fit"):
        recorder.insert_option(seg, bytes((69, 22)) + bytes(20))


# ------------------------------------------------------------------ real recordings


@pytest.fixture(scope="module", params=sorted(RECORDER_SCENARIOS))
def recorded(request, tmp_path_factory):
    require_netns()
    name = request.param
    out = tmp_path_factory.mktemp(f"rec-{name}")
    paths = {"pcap": out / f"{name}.pcap", "keys": out / f"{name}.keys",
             "json": out / f"{name}.json"}
    line = record(name, paths["pcap"], paths["keys"], expected_path=paths["json"], seed=3,
                  timeout=30)
    assert our_namespaces() == []
    return name, line, paths, json.loads(paths["json"].read_text())


@pytest.mark.netns
def test_record_describes_and_writes_schema(recorded):
    name, line, paths, expected = recorded
    assert line.startswith(f"{name} (seed 3):")
    assert expected["origin"] == "recorded" and expected["schema"] == 1
    assert expected["command"] == ["tcpinc-analyze", "record", name, "--seed", "3"]
    assert expected["capture"] == {"format": "pcap", "packets": len(read_packets(paths["pcap"])),
                                   "linktypes": [1], "snaplen": 262144,
                                   "keylog_embedded": False}
    (conn,) = expected["connections"]
    sc = RECORDER_SCENARIOS[name]
    assert conn["id"] == 0 and conn["b"] == f"{B}:8443" and conn["a"].startswith(f"{A}:")
    assert conn["eno"] == {"status": "negotiated", "reason": None, "negotiated_tep": sc.tep,
                           "encoding": "rfc"}
    tc = conn["tcpcrypt"]
    schedule = frame_schedule(recorder.build_plan(sc, 3, 1.0, Path("/nonexistent")))
    assert tc["rekeys"] == {d: sum(f.rekey for specs in schedule for f in specs
                                   if f.from_a == (d == "ab")) for d in ("ab", "ba")}
    assert tc["keys_from"] == "session_secret" and tc["resumed"] is False
    assert paths["json"].read_text() == json.dumps(expected, indent=1, sort_keys=True) + "\n"
    assert paths["pcap"].stat().st_size < 1_500_000


@pytest.mark.netns
def test_eno_options_inserted_in_handshake(recorded):
    name, _line, paths, _expected = recorded
    sc = RECORDER_SCENARIOS[name]
    syn = synack = first_ack = None
    b_sent_nonsyn = False
    early = 0
    for _ts, eth in read_packets(paths["pcap"]):
        ip, tcp = eth.data, eth.data.data
        from_a = ip.src == bytes(map(int, A.split(".")))
        if tcp.flags & dpkt.tcp.TH_SYN:
            if from_a:
                syn = syn or tcp
            else:
                synack = synack or tcp
            continue
        if not from_a:
            b_sent_nonsyn = True
        # RFC 8547 §4.6: A's segments carry ENO until A has received a non-SYN segment
        if from_a and not b_sent_nonsyn:
            first_ack = first_ack or tcp
            early += 1
            assert eno_of(tcp) == bytes.fromhex("4502")
        elif eno_of(tcp) is not None:
            pytest.fail("ENO option on a later segment")
    assert syn is not None and synack is not None and first_ack is not None and early >= 1
    assert eno_of(syn) == sc.eno_a
    assert eno_of(synack) == sc.eno_b
    assert eno_of(first_ack) == bytes.fromhex("4502")
    # The kernel's own options are still there, unchanged in kind.
    assert [k for k, _ in dpkt.tcp.parse_opts(syn.opts)][:2] == [2, 4]


@pytest.mark.netns
def test_every_checksum_verifies(recorded):
    _name, _line, paths, _expected = recorded
    with paths["pcap"].open("rb") as fh:
        bufs = [bytes(buf) for _ts, buf in dpkt.pcap.Reader(fh)]
    assert bufs and all(checksums_verify(b) for b in bufs)


@pytest.mark.netns
def test_keylog_decrypts_every_frame(recorded):
    name, _line, paths, expected = recorded
    sc = RECORDER_SCENARIOS[name]
    log = parse_keylog(paths["keys"].read_text(), str(paths["keys"]))
    assert len(log.session_secrets) == 1 and len(log) == 1
    (n_a, ss), = log.session_secrets.items()
    data = streams(paths["pcap"])
    init1, findings = parse_init1(data["ab"], sc.tep)
    assert init1 is not None and not findings
    assert init1.nonce == n_a and init1.sym_ciphers == sc.aeads_a
    init2, findings = parse_init2(data["ba"], sc.tep)
    assert init2 is not None and not findings
    tc = expected["connections"][0]["tcpcrypt"]
    assert init2.sym_cipher == tc["aead"] == sc.aeads_b[0]
    keys = SessionKeys(sc.tep, init2.sym_cipher, ss)
    assert keys.session_id.hex() == tc["session_id"]
    chain = keys.chain()
    len1 = int.from_bytes(data["ab"][4:8], "big")
    len2 = int.from_bytes(data["ba"][4:8], "big")
    assert (len1, len2) == (tc["init1"]["length"], tc["init2"]["length"])
    for d, ab, init_len in (("ab", True, len1), ("ba", False, len2)):
        opener = FrameOpener(keys.aead, lambda g, ab=ab: chain.key(g, ab), init_len=init_len)
        frames, rekeys, sha = decrypt_all(data[d], init_len, opener)
        assert frames == tc["frames"][d] == tc["decrypted"][d]["ok"]
        assert rekeys == tc["rekeys"][d]
        assert sha == tc["decrypted"][d]["sha256"]
        assert tc["decrypted"][d]["failed"] == tc["decrypted"][d]["lost"] == 0
    # The application data is what the script says (sha256 over data only).
    plan = recorder.build_plan(sc, 3, 1.0, Path("/nonexistent"))
    script = build_script(plan)
    for d, from_a in (("ab", True), ("ba", False)):
        want = hashlib.sha256(b"".join(m for f, m in script if f == from_a)).hexdigest()
        assert want == tc["decrypted"][d]["sha256"]


@pytest.mark.netns
@pytest.mark.tshark
def test_tshark_finds_no_bad_checksum(recorded):
    if shutil.which("tshark") is None:
        pytest.skip("needs tshark")
    _name, _line, paths, expected = recorded
    proc = subprocess.run(
        ["tshark", "-n", "-r", str(paths["pcap"]), "-o", "tcp.check_checksum:TRUE",
         "-o", "ip.check_checksum:TRUE", "-T", "fields", "-e", "tcp.checksum.status",
         "-e", "ip.checksum.status"],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines() if line.strip()]
    assert len(rows) == expected["capture"]["packets"]
    # Wireshark's checksum status: 0 bad, 1 good, 2 unverified.
    assert all(row == ["1", "1"] for row in rows), rows[:5]


@pytest.mark.netns
def test_timeout_kills_children_and_deletes_namespaces(tmp_path, monkeypatch):
    require_netns()
    started = []
    original = recorder._Children.start

    def stalling_start(self, name, cmd):
        if name.startswith("client"):
            # A client that never connects: the recorder must give up at its deadline.
            ns = cmd[3]
            cmd = ["ip", "netns", "exec", ns, "sleep", "60"]
        child = original(self, name, cmd)
        started.append(child)
        return child

    monkeypatch.setattr(recorder._Children, "start", stalling_start)
    with pytest.raises(RecorderError, match="timed out"):
        record("http", tmp_path / "t.pcap", tmp_path / "t.keys", timeout=4.0)
    assert {c.name.split()[0] for c in started} == {"tcpdump", "server", "client"}
    assert all(c.proc.poll() is not None for c in started)
    assert our_namespaces() == []
    assert not (tmp_path / "t.pcap").exists() and not (tmp_path / "t.keys").exists()


def test_not_root_or_missing_tools_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(RecorderError, match="needs root"):
        record("http", tmp_path / "x.pcap", tmp_path / "x.keys")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool == "tcpdump" else "/bin/x")
    with pytest.raises(RecorderError, match="needs tcpdump"):
        record("http", tmp_path / "x.pcap", tmp_path / "x.keys")
    assert not list(tmp_path.iterdir())


@pytest.mark.netns
def test_peer_mismatch_is_a_peer_failure(tmp_path, monkeypatch):
    """Peers that disagree on the content: the client must reject the decrypted response."""
    require_netns()
    original = recorder._Children.start

    def tampered_start(self, name, cmd):
        if name.startswith("server"):
            cmd = list(cmd)
            at = cmd.index("--plan") + 1
            plan = json.loads(Path(cmd[at]).read_text())
            plan["content_seed"] += "/tampered"
            other = Path(cmd[at]).with_name("tampered-plan.json")
            other.write_text(json.dumps(plan))
            cmd[at] = str(other)
        return original(self, name, cmd)

    monkeypatch.setattr(recorder._Children, "start", tampered_start)
    with pytest.raises(RecorderError, match=r"client \(host A\) failed: PeerError: "
                       r".*decrypted data differs"):
        record("http", tmp_path / "m.pcap", tmp_path / "m.keys", timeout=15.0)
    assert our_namespaces() == []
    assert not (tmp_path / "m.pcap").exists()
