"""Record tcpcrypt over the real Linux TCP stack, between two network namespaces.

``record()`` builds two throw-away namespaces joined by a veth pair (192.0.2.1 = host A,
the client; 192.0.2.2 = host B, the server; TEST-NET-1 addresses that exist only inside
those namespaces), turns the veth offloads off so the capture holds the kernel's real
segment sizes and checksums, captures with tcpdump in A's namespace and runs the two
peers of ``recorder_peer`` there. The peers run the real tcpcrypt key exchange and
frame protocol over kernel sockets, and each checks what it decrypts.

The kernel knows nothing of TCP-ENO, so afterwards the recorder inserts the planned
ENO options into the captured handshake (A's SYN, B's SYN-ACK, and the empty ``45 02``
on A's first non-SYN segment), fixing lengths and checksums and keeping every other
byte as the kernel produced it. Finally it reassembles both directions from the final
capture, checks they hold exactly what the peers sent, decrypts every frame with the
logged session secret, and writes the key log and the expected-results JSON in the
schema of ``synth.sample.generate`` (with ``"origin": "recorded"``).

Everything is bounded: one overall timeout, a packet cap on tcpdump, and the
namespaces are deleted (after killing any child still running) whatever happens.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import dpkt

import tcpinc_analyze

from ..eno import GlobalSuboption, SynEno, TepSuboption, decode_option, encode_option, negotiate
from ..keylog import KeyLogWriter
from ..tcp.options import walk_options
from ..tcpcrypt.frames import FrameOpener, KeyFor
from ..tcpcrypt.keyschedule import SessionKeys
from ..tcpcrypt.messages import message_length, parse_frame_header
from ..wire import (
    AEAD_AES_128_GCM,
    AEAD_AES_256_GCM,
    AEAD_CHACHA20_POLY1305,
    ENO_KIND,
    FRAME_CONTROL_REKEY,
    INIT1_MAGIC,
    INIT2_MAGIC,
    TCP_OPTIONS_MAX,
    TEP_P256,
    TEP_X25519,
    EnoStatus,
)
from .capture_writer import PcapWriter
from .packets import (
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    ipv4_checksum,
    repack_ip_tcp,
    tcp_checksum,
)
from .recorder_peer import build_script, frame_schedule

EXPECTED_SCHEMA = 1
ADDR_A = "192.0.2.1"
ADDR_B = "192.0.2.2"
PREFIX_LEN = 24
SERVER_PORT = 8443
VETH_A = "veth-a"
VETH_B = "veth-b"
SNAPLEN = 262_144
MAX_PACKETS = 5000
"""tcpdump stops after this many packets: a bound on the capture, far above what the
scenarios need (a capture that hits it fails the completeness check)."""
MAX_CAPTURE_BYTES = 1_500_000
OFFLOADS = ("tx", "rx", "tso", "gso", "gro")
ENO_ACK_OPTION = bytes((ENO_KIND, 2))
"""The empty non-SYN-form ENO option A puts on every segment it sends before it has
received a non-SYN segment (RFC 8547 §4.6): the handshake ACK, and Init1 with it."""
NAMESPACE_PREFIX = "tcpinc-"
_ETH_HEADER = 14
_ETHERTYPE_IPV4 = 0x0800
_CMD_TIMEOUT = 10.0
_STOP_WAIT = 5.0
_LINGER = 3.0
_FAIL_GRACE = 1.0
"""Seconds to wait after the peers exit for the last FIN/ACK to reach the capture file."""

_counter = itertools.count()


class RecorderError(Exception):
    """The recording could not be made; the message says why."""


@dataclass(frozen=True)
class RecorderScenario:
    """What one recorder scenario runs."""

    name: str
    summary: str
    tep: int
    aeads_a: tuple[int, ...]
    aeads_b: tuple[int, ...]
    teps_a: tuple[int, ...]
    """TEPs in A's SYN ENO option, in order."""
    teps_b: tuple[int, ...]
    """TEPs in B's SYN-ACK ENO option (the last one A also offered is negotiated)."""
    script: dict
    frame_data_max: int
    rekey_ab: tuple[int, ...] = ()
    rekey_ba: tuple[int, ...] = ()
    notes: str = ""

    @property
    def eno_a(self) -> bytes:
        """A's SYN ENO option, whole (kind, length, contents)."""
        return encode_option([TepSuboption(t) for t in self.teps_a])

    @property
    def eno_b(self) -> bytes:
        """B's SYN-ACK ENO option, whole: an explicit global suboption with b = 1 (the
        passive opener's, RFC 8547 §4.2), then its TEP."""
        return encode_option([GlobalSuboption.make(b=True),
                              *[TepSuboption(t) for t in self.teps_b]])


RECORDER_SCENARIOS: dict[str, RecorderScenario] = {
    sc.name: sc for sc in (
        RecorderScenario(
            name="http",
            summary=("real Linux TCP: X25519 + ChaCha20-Poly1305, one HTTP/1.1 GET and a "
                     "40 kB response in 8000-byte frames spanning several segments"),
            tep=TEP_X25519,
            aeads_a=(AEAD_CHACHA20_POLY1305, AEAD_AES_256_GCM, AEAD_AES_128_GCM),
            aeads_b=(AEAD_CHACHA20_POLY1305,),
            teps_a=(TEP_X25519, TEP_P256),
            teps_b=(TEP_X25519,),
            script={"kind": "http", "requests": 1, "response_size": 40_000},
            frame_data_max=8000,
        ),
        RecorderScenario(
            name="bulk",
            summary=("real Linux TCP: P-256 + AES-128-GCM, three 100 kB uploads in "
                     "16000-byte frames with two A->B rekeys, short replies with one "
                     "B->A rekey"),
            tep=TEP_P256,
            aeads_a=(AEAD_AES_128_GCM, AEAD_CHACHA20_POLY1305),
            aeads_b=(AEAD_AES_128_GCM,),
            teps_a=(TEP_P256,),
            teps_b=(TEP_P256,),
            script={"kind": "bulk", "rounds": 3, "upload_size": 100_000},
            frame_data_max=16_000,
            rekey_ab=(5, 13),
            rekey_ba=(1,),
        ),
    )
}


# ------------------------------------------------------------------------------ the plan


def build_plan(scenario: RecorderScenario, seed: int, timeout: float, ready: Path) -> dict:
    """The JSON both peers read: everything they need to agree byte for byte."""
    return {
        "scenario": scenario.name,
        "seed": seed,
        "tep": scenario.tep,
        "aeads_a": list(scenario.aeads_a),
        "aeads_b": list(scenario.aeads_b),
        "eno_a": scenario.eno_a.hex(),
        "eno_b": scenario.eno_b.hex(),
        "rng_a": f"tcpinc-record/{scenario.name}/{seed}/a",
        "rng_b": f"tcpinc-record/{scenario.name}/{seed}/b",
        "content_seed": f"tcpinc-record/{scenario.name}/{seed}/content",
        "script": scenario.script,
        "frame_data_max": scenario.frame_data_max,
        "rekey_ab": list(scenario.rekey_ab),
        "rekey_ba": list(scenario.rekey_ba),
        "client": ADDR_A,
        "server": ADDR_B,
        "port": SERVER_PORT,
        "ready": str(ready),
        "timeout": timeout,
    }


# ------------------------------------------------------------------- processes, netns


class _Deadline:
    def __init__(self, timeout: float) -> None:
        self.end = time.monotonic() + timeout
        self.timeout = timeout

    def left(self, what: str) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise RecorderError(f"timed out after {self.timeout:g} s {what}")
        return left


def _run(cmd: Sequence[str], what: str, *, timeout: float = _CMD_TIMEOUT,
         check: bool = True) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise RecorderError(f"{what}: '{' '.join(cmd)}' did not finish in {timeout:g} s") from exc
    except OSError as exc:
        raise RecorderError(f"{what}: cannot run {cmd[0]}: {exc}") from exc
    if check and proc.returncode != 0:
        raise RecorderError(f"{what}: '{' '.join(cmd)}' failed ({proc.returncode}): "
                            f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def check_environment() -> None:
    """Raise RecorderError unless we are root and have ip, tcpdump and ethtool."""
    if os.geteuid() != 0:
        raise RecorderError("recording needs root (network namespaces, veth, tcpdump); "
                            "run it as root or under sudo")
    missing = [tool for tool in ("ip", "tcpdump", "ethtool") if shutil.which(tool) is None]
    if missing:
        raise RecorderError(f"recording needs {', '.join(missing)} on PATH "
                            "(packages iproute2, tcpdump, ethtool)")


def namespace_names() -> tuple[str, str]:
    """Fresh, unique names for this process's next pair of namespaces."""
    tag = f"{os.getpid()}-{next(_counter)}"
    return f"{NAMESPACE_PREFIX}a-{tag}", f"{NAMESPACE_PREFIX}b-{tag}"


class _Namespaces:
    """Two namespaces joined by a veth pair; ``delete()`` is safe to call at any time."""

    def __init__(self) -> None:
        self.a, self.b = namespace_names()
        self.created: list[str] = []

    def create(self, deadline: _Deadline) -> None:
        for ns in (self.a, self.b):
            left = deadline.left("creating namespaces")
            # Noted before the command runs: a killed 'ip netns add' may leave it behind.
            self.created.append(ns)
            proc = _run(["ip", "netns", "add", ns], "creating a network namespace",
                        check=False, timeout=min(_CMD_TIMEOUT, left))
            if proc.returncode != 0:
                self.created.remove(ns)
                raise RecorderError(f"cannot create network namespace {ns}: "
                                    f"{proc.stderr.strip()}")
        steps = [
            ["ip", "link", "add", VETH_A, "netns", self.a, "type", "veth",
             "peer", "name", VETH_B, "netns", self.b],
            ["ip", "-n", self.a, "link", "set", "lo", "up"],
            ["ip", "-n", self.b, "link", "set", "lo", "up"],
            ["ip", "-n", self.a, "addr", "add", f"{ADDR_A}/{PREFIX_LEN}", "dev", VETH_A],
            ["ip", "-n", self.b, "addr", "add", f"{ADDR_B}/{PREFIX_LEN}", "dev", VETH_B],
        ]
        for cmd in steps:
            _run(cmd, "setting up the namespaces",
                 timeout=min(_CMD_TIMEOUT, deadline.left("setting up the namespaces")))
        for ns, dev in ((self.a, VETH_A), (self.b, VETH_B)):
            for feature in OFFLOADS:
                # One feature at a time: a veth may lack some (they are then simply off).
                _run(["ip", "netns", "exec", ns, "ethtool", "-K", dev, feature, "off"],
                     "turning offloads off", check=False,
                     timeout=min(_CMD_TIMEOUT, deadline.left("turning offloads off")))
            self._check_offloads(ns, dev)
        for ns, dev in ((self.a, VETH_A), (self.b, VETH_B)):
            _run(["ip", "-n", ns, "link", "set", dev, "up"], "bringing the veth up",
                 timeout=min(_CMD_TIMEOUT, deadline.left("bringing the veth up")))

    @staticmethod
    def _check_offloads(ns: str, dev: str) -> None:
        proc = _run(["ip", "netns", "exec", ns, "ethtool", "-k", dev], "reading offloads",
                    check=False)
        still_on = []
        for name in ("tx-checksumming", "tcp-segmentation-offload",
                     "generic-segmentation-offload", "generic-receive-offload"):
            m = re.search(rf"^{name}: on", proc.stdout, re.MULTILINE)
            if m:
                still_on.append(name)
        if still_on:
            raise RecorderError(f"cannot turn off {', '.join(still_on)} on {dev}: the capture "
                                "would not hold the kernel's real checksums and segments")

    def delete(self) -> list[str]:
        """Delete what ``create`` made (the veth goes with its namespaces)."""
        errors = []
        existing = None
        for ns in reversed(self.created):
            proc = _run(["ip", "netns", "del", ns], "deleting a namespace", check=False)
            if proc.returncode != 0:
                if existing is None:
                    listing = _run(["ip", "netns", "list"], "listing namespaces", check=False)
                    existing = {line.split()[0] for line in listing.stdout.splitlines()
                                if line.strip()}
                if ns in existing:
                    errors.append(f"{ns}: {proc.stderr.strip()}")
        self.created.clear()
        return errors


def _peer_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(tcpinc_analyze.__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@dataclass(eq=False)
class _Child:
    name: str
    proc: subprocess.Popen
    stderr: Path

    def err_tail(self, limit: int = 1500) -> str:
        try:
            text = self.stderr.read_text(errors="replace").strip()
        except OSError:
            return ""
        return text[-limit:]


@dataclass
class _Children:
    tmp: Path
    env: dict[str, str]
    items: list[_Child] = field(default_factory=list)

    def start(self, name: str, cmd: Sequence[str]) -> _Child:
        out = (self.tmp / f"{name}.stdout").open("wb")
        err_path = self.tmp / f"{name}.stderr"
        err = err_path.open("wb")
        try:
            proc = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    cwd=self.tmp, env=self.env)
        except OSError as exc:
            raise RecorderError(f"cannot start {name}: {exc}") from exc
        finally:
            out.close()
            err.close()
        child = _Child(name, proc, err_path)
        self.items.append(child)
        return child

    def kill_all(self) -> None:
        for child in self.items:
            if child.proc.poll() is None:
                child.proc.kill()
        for child in self.items:
            try:
                child.proc.wait(timeout=_STOP_WAIT)
            except subprocess.TimeoutExpired:
                pass


def _wait_for(predicate: Callable[[], bool], child: _Child, deadline: _Deadline,
              what: str) -> None:
    while not predicate():
        if child.proc.poll() is not None:
            raise RecorderError(f"{child.name} exited ({child.proc.returncode}) while {what}: "
                                f"{child.err_tail()}")
        deadline.left(what)
        time.sleep(0.02)


# ----------------------------------------------------------------------- packet parsing


@dataclass
class _Seg:
    """The fields of one captured Ethernet/IPv4/TCP frame we need."""

    index: int
    ts: float | Decimal
    frame: bytes
    ip: int
    ihl: int
    total: int
    tcp: int
    doff: int
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int

    @property
    def payload(self) -> bytes:
        return self.frame[self.tcp + self.doff:self.ip + self.total]

    @property
    def options(self) -> bytes:
        return self.frame[self.tcp + 20:self.tcp + self.doff]

    @property
    def tcp_bytes(self) -> bytes:
        return self.frame[self.tcp:self.ip + self.total]


def _ip_text(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


def parse_frame(index: int, ts: float | Decimal, frame: bytes) -> _Seg:
    """Split an Ethernet/IPv4/TCP frame; RecorderError for anything else."""
    where = f"packet {index}"
    if len(frame) < _ETH_HEADER + 20 or struct.unpack_from("!H", frame, 12)[0] != _ETHERTYPE_IPV4:
        raise RecorderError(f"{where}: not an Ethernet/IPv4 frame")
    ip = _ETH_HEADER
    ihl = (frame[ip] & 0x0F) * 4
    total = struct.unpack_from("!H", frame, ip + 2)[0]
    if frame[ip] >> 4 != 4 or ihl < 20 or frame[ip + 9] != 6:
        raise RecorderError(f"{where}: not IPv4/TCP")
    if ip + total > len(frame) or total < ihl + 20:
        raise RecorderError(f"{where}: truncated (IP length {total}, frame {len(frame)} bytes)")
    tcp = ip + ihl
    doff = (frame[tcp + 12] >> 4) * 4
    if doff < 20 or tcp + doff > ip + total:
        raise RecorderError(f"{where}: bad TCP data offset {doff}")
    sport, dport, seq, ack = struct.unpack_from("!HHII", frame, tcp)
    return _Seg(index, ts, frame, ip, ihl, total, tcp, doff,
                _ip_text(frame[ip + 12:ip + 16]), _ip_text(frame[ip + 16:ip + 20]),
                sport, dport, seq, ack, frame[tcp + 13])


def read_capture(path: Path) -> tuple[list[_Seg], int]:
    """All frames of a pcap file (Ethernet only) and its snaplen."""
    with path.open("rb") as fh:
        try:
            reader = dpkt.pcap.Reader(fh)
        except (ValueError, dpkt.NeedData) as exc:
            raise RecorderError(f"{path}: not a pcap file: {exc}") from exc
        if reader.datalink() != dpkt.pcap.DLT_EN10MB:
            raise RecorderError(f"{path}: link type {reader.datalink()}, expected Ethernet")
        try:
            segs = [parse_frame(n, ts, bytes(buf)) for n, (ts, buf) in enumerate(reader, 1)]
        except dpkt.NeedData as exc:
            raise RecorderError(f"{path}: truncated pcap record") from exc
        return segs, reader.snaplen


def _checksums_ok(seg: _Seg) -> bool:
    header = bytearray(seg.frame[seg.ip:seg.ip + seg.ihl])
    ip_sum = struct.unpack_from("!H", header, 10)[0]
    header[10:12] = b"\0\0"
    tcp = bytearray(seg.tcp_bytes)
    tcp_sum = struct.unpack_from("!H", tcp, 16)[0]
    tcp[16:18] = b"\0\0"
    return (ipv4_checksum(bytes(header)) == ip_sum
            and tcp_checksum(seg.src, seg.dst, bytes(tcp)) == tcp_sum)


def _options_end(options: bytes) -> int:
    """Where the option list ends: at an EOL, else at the end of the header."""
    pos = 0
    while pos < len(options):
        kind = options[pos]
        if kind == 0:
            return pos
        if kind == 1:
            pos += 1
            continue
        if pos + 1 >= len(options) or options[pos + 1] < 2:
            raise RecorderError(f"malformed TCP option list {options.hex()}")
        pos += options[pos + 1]
    return len(options)


def insert_option(seg: _Seg, option: bytes) -> bytes:
    """The frame with ``option`` appended to the TCP options (NOP-padded), and the data
    offset, IPv4 total length, IPv4 header checksum and TCP checksum fixed; every other
    byte stays as captured."""
    old = seg.options
    new = old[:_options_end(old)] + option
    new += b"\x01" * (-len(new) % 4)
    if len(new) > TCP_OPTIONS_MAX:
        raise RecorderError(f"packet {seg.index}: {option.hex()} does not fit beside the "
                            f"kernel's {len(old)} option bytes (limit {TCP_OPTIONS_MAX})")
    f = seg.frame
    tcp_header = bytearray(f[seg.tcp:seg.tcp + 20]) + new
    tcp_header[12] = ((20 + len(new)) // 4) << 4 | (f[seg.tcp + 12] & 0x0F)
    return repack_ip_tcp(f, seg.ip, f[seg.ip:seg.ip + seg.ihl], bytes(tcp_header) + seg.payload,
                         f[seg.ip + seg.total:])


def find_option(options: bytes, kind: int) -> bytes | None:
    """The first option of ``kind``, whole (kind, length, data), or None."""
    for k, pos, data in walk_options(options)[0]:
        if k == kind:
            return options[pos:pos + 2 + len(data)]
    return None


# ------------------------------------------------------------------ capture checking


@dataclass
class _Conversation:
    segs: list[_Seg]
    port_a: int
    syn_a: list[_Seg]
    synack_b: list[_Seg]
    first_ack_a: _Seg


def early_segments_of_a(conv: _Conversation) -> list[_Seg]:
    """A's non-SYN segments before the first non-SYN segment from B: each must carry
    ENO (RFC 8547 §4.6). The capture is taken in A's namespace, so capture order is the
    order in which A sent and received."""
    out = []
    for seg in conv.segs:
        if seg.flags & TCP_SYN:
            continue
        if seg.src != ADDR_A:
            break
        out.append(seg)
    return out


def classify(segs: list[_Seg], port_a: int) -> _Conversation:
    """Check every frame belongs to our one connection and find its handshake."""
    a_key = (ADDR_A, port_a, ADDR_B, SERVER_PORT)
    b_key = (ADDR_B, SERVER_PORT, ADDR_A, port_a)
    syn_a, synack_b = [], []
    first_ack: _Seg | None = None
    for seg in segs:
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        if key not in (a_key, b_key):
            raise RecorderError(f"packet {seg.index}: {seg.src}:{seg.sport} -> "
                                f"{seg.dst}:{seg.dport} is not the recorded connection")
        if seg.flags & TCP_RST:
            raise RecorderError(f"packet {seg.index}: the connection was reset")
        if key == a_key:
            if seg.flags & TCP_SYN:
                if seg.flags & TCP_ACK or first_ack is not None:
                    raise RecorderError(f"packet {seg.index}: unexpected SYN from A")
                syn_a.append(seg)
            elif first_ack is None:
                first_ack = seg
        elif seg.flags & TCP_SYN:
            if not seg.flags & TCP_ACK:
                raise RecorderError(f"packet {seg.index}: B sent a bare SYN")
            synack_b.append(seg)
    if not syn_a or not synack_b or first_ack is None:
        raise RecorderError("the capture lacks the TCP handshake")
    return _Conversation(segs, port_a, syn_a, synack_b, first_ack)


@dataclass
class _Stream:
    data: bytes
    findings: list[dict]
    fin: bool


def reassemble(conv: _Conversation, from_a: bool, length: int) -> _Stream:
    """One direction's payload by sequence number; retransmissions must agree."""
    isn = (conv.syn_a[0] if from_a else conv.synack_b[0]).seq
    src = ADDR_A if from_a else ADDR_B
    buf = bytearray(length)
    have = bytearray(length)
    high = 0
    findings: list[dict] = []
    fin = False
    name = "A->B" if from_a else "B->A"
    for seg in conv.segs:
        if seg.src != src:
            continue
        payload = seg.payload
        offset = (seg.seq - isn - 1) % 2**32
        if seg.flags & TCP_FIN:
            if (offset + len(payload)) != length:
                raise RecorderError(f"packet {seg.index}: {name} FIN at stream offset "
                                    f"{offset + len(payload)}, the peer sent {length} bytes")
            fin = True
        if seg.flags & TCP_SYN or not payload:
            continue
        end = offset + len(payload)
        if end > length:
            raise RecorderError(f"packet {seg.index}: {name} data up to offset {end}, "
                                f"the peer sent only {length} bytes")
        seen = have[offset:end]
        if any(seen):
            for i, got in enumerate(seen):
                if got and buf[offset + i] != payload[i]:
                    raise RecorderError(f"packet {seg.index}: {name} retransmission differs "
                                        f"at stream offset {offset + i}")
            findings.append({"code": "tcp-retransmission", "packet": seg.index})
        elif offset < high:
            findings.append({"code": "tcp-out-of-order", "packet": seg.index})
        buf[offset:end] = payload
        have[offset:end] = b"\x01" * len(payload)
        high = max(high, end)
    missing = have.find(0)
    if missing >= 0:
        raise RecorderError(f"the capture misses {name} stream bytes from offset {missing} "
                            "(tcpdump dropped a segment?)")
    return _Stream(bytes(buf), findings, fin)


def _fins_acked(conv: _Conversation) -> bool:
    """Both FINs captured, each acknowledged by a later segment of the other side."""
    for src in (ADDR_A, ADDR_B):
        fin = next((s for s in conv.segs if s.src == src and s.flags & TCP_FIN), None)
        if fin is None:
            return False
        want = (fin.seq + len(fin.payload) + 1) % 2**32
        if not any(s.index > fin.index and s.src != src and s.flags & TCP_ACK
                   and (s.ack - want) % 2**32 < 2**31 for s in conv.segs):
            return False
    return True


def _capture_complete(path: Path, port_a: int) -> bool:
    try:
        segs, _ = read_capture(path)
        return _fins_acked(classify(segs, port_a))
    except (RecorderError, OSError):
        return False


@dataclass
class _Decrypted:
    init: bytes
    frames: int = 0
    rekeys: int = 0
    sha256: str = ""


def decrypt_stream(stream: bytes, magic: int, aead: int, key_for: KeyFor, name: str
                   ) -> _Decrypted:
    """Check the Init message and open every frame after it (the recorder's own check)."""
    length = message_length(stream, magic)
    if length is None or length > len(stream):
        raise RecorderError(f"{name}: the stream does not start with its Init message")
    opener = FrameOpener(aead, key_for, init_len=length)
    out = _Decrypted(init=stream[:length])
    data = hashlib.sha256()
    pos = length
    while pos < len(stream):
        header, _ = parse_frame_header(stream, pos)
        if header is None or pos + header.total > len(stream):
            raise RecorderError(f"{name}: truncated frame at stream offset {pos}")
        body = stream[pos + 3:pos + header.total]
        plain = opener.open(header.control, body, pos)
        if plain is None:
            raise RecorderError(f"{name}: frame at stream offset {pos} does not decrypt "
                                "with the logged session secret")
        out.frames += 1
        out.rekeys += bool(header.control & FRAME_CONTROL_REKEY)
        data.update(plain.data)
        pos += header.total
    out.sha256 = data.hexdigest()
    return out


# --------------------------------------------------------------------------- recording


def _read_result(path: Path, child: _Child) -> dict:
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RecorderError(f"{child.name} failed (exit {child.proc.returncode}) without a "
                            f"result: {child.err_tail()}") from exc
    if not result.get("ok") or child.proc.returncode != 0:
        raise RecorderError(f"{child.name} failed: {result.get('error') or child.err_tail()}")
    return result


def _wait_peers(peers: dict[_Child, Path], deadline: _Deadline) -> None:
    """Wait until both peers exit; the first failure ends the wait (with both errors)."""
    while any(child.proc.poll() is None for child in peers):
        failed = [c for c in peers if c.proc.returncode not in (None, 0)]
        if failed:
            # Give the other side a moment to notice and report too, then name them all.
            grace = time.monotonic() + _FAIL_GRACE
            while time.monotonic() < grace and any(c.proc.poll() is None for c in peers):
                time.sleep(0.02)
            break
        if time.monotonic() >= deadline.end:
            running = [c.name for c in peers if c.proc.poll() is None]
            raise RecorderError(f"timed out after {deadline.timeout:g} s waiting for the "
                                f"{' and the '.join(running)}")
        time.sleep(0.02)
    errors = []
    for child, path in peers.items():
        if child.proc.returncode not in (None, 0):
            try:
                _read_result(path, child)
            except RecorderError as exc:
                errors.append(str(exc))
    if errors:
        raise RecorderError("; ".join(errors))


def _stop_tcpdump(child: _Child) -> int:
    """SIGINT tcpdump, wait, return the kernel's drop count."""
    if child.proc.poll() is None:
        child.proc.send_signal(signal.SIGINT)
    try:
        child.proc.wait(timeout=_STOP_WAIT)
    except subprocess.TimeoutExpired as exc:
        raise RecorderError("tcpdump did not stop after SIGINT") from exc
    text = child.err_tail(limit=4000)
    m = re.search(r"(\d+) packets? dropped by kernel", text)
    if m is None:
        raise RecorderError(f"tcpdump ended without statistics: {text}")
    return int(m.group(1))


def _check_peers(client: dict, server: dict, plan: dict, messages: list) -> None:
    schedule = frame_schedule(plan, messages)
    for role, res, from_a in (("client", client, True), ("server", server, False)):
        planned = sum(len(specs) for specs in schedule if specs[0].from_a == from_a)
        if len(res["sent"]["frames"]) != planned:
            raise RecorderError(f"{role} sent {len(res['sent']['frames'])} frames, "
                                f"the plan has {planned}")
    for a, b in (("client", "server"), ("server", "client")):
        sent = (client if a == "client" else server)["sent"]
        got = (server if b == "server" else client)["received"]
        if (sent["stream_sha256"], sent["stream_len"]) != (got["stream_sha256"],
                                                          got["stream_len"]):
            raise RecorderError(f"{b} received other bytes than {a} sent")
        if sent["data_sha256"] != got["data_sha256"]:
            raise RecorderError(f"{b} decrypted other data than {a} sent")
    if client["session_id"] != server["session_id"]:
        raise RecorderError("client and server derived different session IDs")


def record(scenario: str, output: Path, keylog: Path, *, expected_path: Path | None = None,
           seed: int = 1, timeout: float = 20.0) -> str:
    """Record a scenario over the real Linux TCP stack; returns a one-line description.

    Writes the pcap to ``output``, the key log to ``keylog`` and, if given, the
    expected-results JSON to ``expected_path``. Raises RecorderError on any failure
    (nothing is written then); the namespaces are always deleted.
    """
    sc = RECORDER_SCENARIOS.get(scenario)
    if sc is None:
        raise RecorderError(f"unknown recorder scenario {scenario!r}; "
                            f"choose one of {', '.join(RECORDER_SCENARIOS)}")
    if not timeout > 0:
        raise RecorderError(f"timeout must be positive, got {timeout}")
    check_environment()
    deadline = _Deadline(timeout)
    namespaces = _Namespaces()
    with tempfile.TemporaryDirectory(prefix="tcpinc-record-") as tmp_name:
        tmp = Path(tmp_name)
        children = _Children(tmp, _peer_env())
        try:
            out = _record_in(sc, seed, deadline, namespaces, children, tmp)
        finally:
            children.kill_all()
            problems = namespaces.delete()
    if problems:
        raise RecorderError(f"cannot delete namespaces: {'; '.join(problems)}")
    capture, keylog_text, expected, line = out
    from ..output.safe_files import PUBLIC, OutputError, write_file

    try:
        write_file(output, capture, mode=PUBLIC)
        write_file(keylog, keylog_text)  # 0600: it holds secrets
        if expected_path is not None:
            write_file(expected_path, json.dumps(expected, indent=1, sort_keys=True) + "\n",
                       mode=PUBLIC)
    except OutputError as exc:
        raise RecorderError(f"cannot write output: {exc}") from exc
    return line


def _record_in(sc: RecorderScenario, seed: int, deadline: _Deadline, namespaces: _Namespaces,
               children: _Children, tmp: Path) -> tuple[bytes, str, dict, str]:
    plan = build_plan(sc, seed, deadline.timeout, tmp / "server.ready")
    messages = build_script(plan)
    plan_path = tmp / "plan.json"
    plan_path.write_text(json.dumps(plan, indent=1))
    raw_pcap = tmp / "raw.pcap"

    namespaces.create(deadline)
    tcpdump = children.start("tcpdump", [
        "ip", "netns", "exec", namespaces.a, "tcpdump", "-i", VETH_A, "-w", str(raw_pcap),
        "-U", "--immediate-mode", "-Z", "root", "-n", "-s", str(SNAPLEN),
        "-c", str(MAX_PACKETS), "tcp"])
    _wait_for(lambda: "listening on" in tcpdump.err_tail(), tcpdump, deadline,
              "waiting for tcpdump to start capturing")

    py = [sys.executable, "-m", "tcpinc_analyze.synth.recorder_peer"]
    results = {role: tmp / f"{role}.result.json" for role in ("server", "client")}
    server = children.start("server (host B)", [
        "ip", "netns", "exec", namespaces.b, *py, "server", "--plan", str(plan_path),
        "--result", str(results["server"])])
    _wait_for(Path(plan["ready"]).exists, server, deadline,
              "waiting for the server to listen")
    client = children.start("client (host A)", [
        "ip", "netns", "exec", namespaces.a, *py, "client", "--plan", str(plan_path),
        "--result", str(results["client"])])
    _wait_peers({client: results["client"], server: results["server"]}, deadline)
    res_client = _read_result(results["client"], client)
    res_server = _read_result(results["server"], server)
    _check_peers(res_client, res_server, plan, messages)
    port_a = int(res_client["local"].rsplit(":", 1)[1])

    linger_end = time.monotonic() + _LINGER
    while not _capture_complete(raw_pcap, port_a):
        if time.monotonic() > linger_end or tcpdump.proc.poll() is not None:
            break
        time.sleep(0.05)
    dropped = _stop_tcpdump(tcpdump)
    if dropped:
        raise RecorderError(f"tcpdump reports {dropped} packets dropped by the kernel")
    return _post_process(sc, seed, plan, raw_pcap, res_client, res_server, port_a)


def _post_process(sc: RecorderScenario, seed: int, plan: dict, raw_pcap: Path,
                  client: dict, server: dict, port_a: int) -> tuple[bytes, str, dict, str]:
    segs, snaplen = read_capture(raw_pcap)
    for seg in segs:
        if not _checksums_ok(seg):
            raise RecorderError(f"packet {seg.index} has a bad checksum as captured "
                                "(offloads still on?)")
    conv = classify(segs, port_a)
    if not _fins_acked(conv):
        raise RecorderError("the capture misses the end of the connection (FIN/ACK)")
    eno_a, eno_b = bytes.fromhex(plan["eno_a"]), bytes.fromhex(plan["eno_b"])
    patch = {s.index: eno_a for s in conv.syn_a}
    patch.update({s.index: eno_b for s in conv.synack_b})
    patch.update({s.index: ENO_ACK_OPTION for s in early_segments_of_a(conv)})
    frames = [(s.ts, insert_option(s, patch[s.index]) if s.index in patch else s.frame)
              for s in segs]

    buf = io.BytesIO()
    writer = PcapWriter(buf, dpkt.pcap.DLT_EN10MB, snaplen=snaplen)
    for ts, frame in frames:
        ts_ns = int(ts * 10**9) if isinstance(ts, Decimal) else round(ts * 1e6) * 1000
        writer.write(ts_ns, frame)
    capture = buf.getvalue()
    if len(capture) > MAX_CAPTURE_BYTES:
        raise RecorderError(f"capture is {len(capture)} bytes, over the "
                            f"{MAX_CAPTURE_BYTES}-byte bound")

    # From here on, everything is checked against the FINAL file, as an analyzer sees it.
    final_path = raw_pcap.with_name("final.pcap")
    final_path.write_bytes(capture)
    final, _ = read_capture(final_path)
    for seg in final:
        if not _checksums_ok(seg):
            raise RecorderError(f"internal: packet {seg.index} checksum wrong after patching")
    conv = classify(final, port_a)
    opt_a = find_option(conv.syn_a[0].options, ENO_KIND)
    opt_b = find_option(conv.synack_b[0].options, ENO_KIND)
    ack_opt = find_option(conv.first_ack_a.options, ENO_KIND)
    if opt_a != eno_a or opt_b != eno_b or ack_opt != ENO_ACK_OPTION or any(
            find_option(seg.options, ENO_KIND) != ENO_ACK_OPTION
            for seg in early_segments_of_a(conv)):
        raise RecorderError("internal: ENO options not where they were inserted")
    dec_a, dec_b = decode_option(opt_a[0], opt_a[2:]), decode_option(opt_b[0], opt_b[2:])
    eno = negotiate(SynEno((dec_a,) if dec_a else ()), SynEno((dec_b,) if dec_b else ()), True)
    if eno.status != EnoStatus.NEGOTIATED or eno.tep != sc.tep:
        raise RecorderError(f"internal: the inserted options negotiate {eno.status}/{eno.tep}")

    streams = {"ab": reassemble(conv, True, client["sent"]["stream_len"]),
               "ba": reassemble(conv, False, server["sent"]["stream_len"])}
    for d, res in (("ab", client), ("ba", server)):
        if not streams[d].fin:
            raise RecorderError(f"the capture has no {d} FIN")
        if hashlib.sha256(streams[d].data).hexdigest() != res["sent"]["stream_sha256"]:
            raise RecorderError(f"the captured {d} stream differs from what the peer sent")

    keys_info = client["keys"]
    n_a, ss = bytes.fromhex(keys_info["n_a"]), bytes.fromhex(keys_info["ss"])
    keys = SessionKeys(keys_info["tep"], keys_info["aead"], ss)
    if keys.session_id.hex() != client["session_id"]:
        raise RecorderError("internal: session secret does not give the session ID")
    chain = keys.chain()
    dec = {"ab": decrypt_stream(streams["ab"].data, INIT1_MAGIC, keys.aead,
                                lambda g: chain.key(g, True), "A->B"),
           "ba": decrypt_stream(streams["ba"].data, INIT2_MAGIC, keys.aead,
                                lambda g: chain.key(g, False), "B->A")}
    for d, res in (("ab", client), ("ba", server)):
        sent = res["sent"]
        got = (dec[d].frames, dec[d].rekeys, dec[d].sha256, dec[d].init.hex())
        want = (len(sent["frames"]), sent["rekeys"], sent["data_sha256"], res["init"])
        if got != want:
            raise RecorderError(f"internal: decrypting the captured {d} stream gives "
                                f"{got[:3]}, the peer reports {want[:3]}")
    init1, init2 = dec["ab"].init, dec["ba"].init

    keylog_io = io.StringIO()
    writer_k = KeyLogWriter(keylog_io)
    writer_k.comment(f"tcpinc-analyze record {sc.name} --seed {seed}")
    writer_k.comment("recorded over the real Linux TCP stack (two network namespaces, veth)")
    writer_k.session_secret(n_a, ss)

    findings = streams["ab"].findings + streams["ba"].findings
    findings.sort(key=lambda f: f["packet"])
    expected = {
        "schema": EXPECTED_SCHEMA,
        "sample": f"recorded-{sc.name}",
        "origin": "recorded",
        "command": ["tcpinc-analyze", "record", sc.name, "--seed", str(seed)],
        "seed": seed,
        "summary": sc.summary,
        "capture": {"format": "pcap", "packets": len(final), "linktypes": [1],
                    "snaplen": snaplen, "keylog_embedded": False},
        "connections": [{
            "id": 0,
            "a": f"{ADDR_A}:{port_a}",
            "b": f"{ADDR_B}:{SERVER_PORT}",
            "eno": {"status": "negotiated", "reason": None, "negotiated_tep": sc.tep,
                    "encoding": "rfc"},
            "tcpcrypt": {
                "resumed": False,
                "aead": keys.aead,
                "frames": {d: dec[d].frames for d in ("ab", "ba")},
                "rekeys": {d: dec[d].rekeys for d in ("ab", "ba")},
                "init1": {"sym_ciphers": list(sc.aeads_a), "ignored_len": 0,
                          "length": len(init1)},
                "init2": {"sym_cipher": keys.aead, "ignored_len": 0, "length": len(init2)},
                "keys_from": "session_secret",
                "session_id": keys.session_id.hex(),
                "nonce_offset_base": "tcp-stream",
                "resumes": None,
                "decrypted": {d: {"ok": dec[d].frames, "failed": 0, "undecryptable": 0,
                                  "lost": 0, "sha256": dec[d].sha256} for d in ("ab", "ba")},
            },
            "findings": findings,
        }],
    }
    line = (f"{sc.name} (seed {seed}): {len(final)} packets, "
            f"{dec['ab'].frames}+{dec['ba'].frames} frames, "
            f"{ADDR_A}:{port_a} -> {ADDR_B}:{SERVER_PORT}")
    return capture, keylog_io.getvalue(), expected, line
