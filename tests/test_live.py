"""Live capture (``analyze -i``) in a pair of network namespaces made here: the frames of
real samples are sent over a veth pair from one namespace (a raw AF_PACKET socket, so
ENO and tcpcrypt traffic as the samples carry it), dumpcap captures them on the other
side, and the live records must equal the analysis of the file ``--write`` kept. Traffic
stays inside the two namespaces; every step is bounded in time; the namespaces are
deleted afterwards."""

from __future__ import annotations

import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tcpinc_analyze.capture.reader import Record, read_capture

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
ROOT = Path(__file__).resolve().parents[1]
VETH_A, VETH_B = "tcpl-a", "tcpl-b"

SENDER = """
import socket, sys, time
from tcpinc_analyze.capture.reader import Record, read_capture
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for path in sys.argv[2:]:
    with open(path, "rb") as f:
        for item in read_capture(f, path):
            if isinstance(item, Record):
                s.send(item.data)
                time.sleep(0.001)
"""


@functools.cache
def _problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "dumpcap"):
        if shutil.which(tool) is None:
            return f"needs {tool} (not installed)"
    return None


class Namespaces:
    """Two namespaces joined by a veth pair, made and removed by this test."""

    def __init__(self) -> None:
        tag = f"{os.getpid()}-{time.monotonic_ns() % 100000}"
        self.a, self.b = f"tcpinc-live-{tag}-a", f"tcpinc-live-{tag}-b"

    def __enter__(self) -> Namespaces:
        for ns in (self.a, self.b):
            self._run("ip", "netns", "add", ns)
        self._run("ip", "link", "add", VETH_A, "netns", self.a, "type", "veth", "peer", "name",
                  VETH_B, "netns", self.b)
        for ns, dev in ((self.a, VETH_A), (self.b, VETH_B)):
            self._run("ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                      "net.ipv6.conf.all.disable_ipv6=1")
            # samples carry frames beyond 1500 bytes (synthesised with large MSS)
            self._run("ip", "netns", "exec", ns, "ip", "link", "set", dev, "mtu", "65535",
                      "up")
        return self

    def __exit__(self, *exc: object) -> None:
        for ns in (self.a, self.b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20,
                           check=False)

    @staticmethod
    def _run(*cmd: str) -> None:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
        if proc.returncode:
            pytest.fail(f"{' '.join(cmd)}: {proc.stderr.strip()}")

    def send(self, *captures: Path) -> None:
        subprocess.run(["ip", "netns", "exec", self.b, sys.executable, "-c", SENDER, VETH_B,
                        *map(str, captures)], check=True, timeout=60, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})


def start_live(ns: Namespaces, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["ip", "netns", "exec", ns.a, sys.executable, "-m", "tcpinc_analyze.cli", "analyze",
         "-i", VETH_A, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_capturing(proc: subprocess.Popen, ns: Namespaces) -> None:
    """dumpcap is running on the interface once it appears in the namespace's process
    list with our interface (bounded)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        out = subprocess.run(["pgrep", "-af", f"dumpcap.*{VETH_A}"], capture_output=True,
                             text=True, check=False).stdout
        if out.strip():
            time.sleep(1.0)  # let it open the interface
            return
        if proc.poll() is not None:
            pytest.fail(f"live analyze ended early: {proc.stderr.read().decode()}")
        time.sleep(0.1)
    pytest.fail("dumpcap did not start")


def read_lines(proc: subprocess.Popen, until: float) -> list[tuple[float, str]]:
    lines: list[tuple[float, str]] = []
    buf = b""
    fd = proc.stdout.fileno()  # type: ignore[union-attr]
    while time.monotonic() < until:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                lines.append((time.monotonic(), line.decode()))
    return lines


@pytest.mark.netns
def test_live_records_equal_the_saved_capture_and_stream_while_capturing(tmp_path: Path
                                                                          ) -> None:
    problem = _problem()
    if problem:
        pytest.skip(f"live capture test {problem}")
    samples = [SAMPLES / "x25519-chacha20.pcap", SAMPLES / "resumption.pcap"]
    keys = tmp_path / "all.keys"
    keys.write_text("".join(s.with_suffix(".keys").read_text() for s in samples))
    keys.chmod(0o600)
    saved = tmp_path / "saved.pcapng"
    with Namespaces() as ns:
        proc = start_live(ns, "--duration", "14", "--format", "jsonl", "--keylog", str(keys),
                          "--write", str(saved))
        try:
            wait_capturing(proc, ns)
            sent = time.monotonic()
            ns.send(*samples)
            lines = read_lines(proc, time.monotonic() + 40)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, proc.stderr.read().decode()
    live = [json.loads(line) for _, line in lines]
    assert len(live) == 5
    # streamed: the first connection came out long before the 14 s capture ended
    assert lines[0][0] - sent < 10
    # the saved file holds the key log and analyses to the same records
    assert saved.stat().st_mode & 0o077 == 0
    from tcpinc_analyze.analysis.run import analyze_file
    from tcpinc_analyze.decryption import DecryptionContext
    from tcpinc_analyze.keylog import KeyLog

    # no key-log file: the keys come from the saved capture's Decryption Secrets Block
    from_file = [r.to_json() for r in analyze_file(
        str(saved), decryption=DecryptionContext(KeyLog())).reports]
    assert [diff(a, b) for a, b in zip(sorted(live, key=lambda r: r["id"]), from_file,
                                        strict=True)] == [None] * len(live)
    # and to what the samples themselves hold
    for got, want in zip(live, _sample_reports(samples, keys), strict=True):
        assert (got["a"], got["b"], got["eno"]["status"]) == (want["a"], want["b"],
                                                              want["eno"]["status"])
        assert got["tcpcrypt"]["decrypted"] == want["tcpcrypt"]["decrypted"]
        assert got["tcpcrypt"]["resumes"] == want["tcpcrypt"]["resumes"]


def diff(a: object, b: object, where: str = "") -> str | None:
    """The first path where two JSON values differ (readable failures)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = diff(a.get(key), b.get(key), f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = diff(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{where}: {a!r} != {b!r}"


def _sample_reports(samples: list[Path], keys: Path) -> list[dict]:
    from tcpinc_analyze.analysis.run import analyze_file
    from tcpinc_analyze.decryption import DecryptionContext
    from tcpinc_analyze.keylog import load_keylogs

    path = keys.parent / "joined.pcap"
    from tcpinc_analyze.synth.capture_writer import PcapWriter

    with open(path, "wb") as out:
        writer = PcapWriter(out, 1)
        for sample in samples:
            with open(sample, "rb") as f:
                for item in read_capture(f, str(sample)):
                    if isinstance(item, Record):
                        writer.write(item.ts_ns, item.data)
    ctx = DecryptionContext(load_keylogs([str(keys)], use_env=False).log)
    return [r.to_json() for r in analyze_file(str(path), decryption=ctx).reports]


@pytest.mark.netns
def test_ctrl_c_prints_the_summary_and_exits_0(tmp_path: Path) -> None:
    problem = _problem()
    if problem:
        pytest.skip(f"live capture test {problem}")
    with Namespaces() as ns:
        proc = start_live(ns)
        try:
            wait_capturing(proc, ns)
            ns.send(SAMPLES / "gap.pcap")
            time.sleep(1.0)
            # ip netns exec runs python in place (exec): the signal reaches the analyzer
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "10.0.0.1" in text and "1 connection" in text and "negotiated" in text
    assert b"Traceback" not in err


def test_missing_interface_is_a_clear_error(tmp_path: Path) -> None:
    if shutil.which("dumpcap") is None:
        pytest.skip("dumpcap not installed")
    proc = subprocess.run([sys.executable, "-m", "tcpinc_analyze.cli", "analyze", "-i",
                           "no-such-if0", "--duration", "2"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert "dumpcap -i no-such-if0" in proc.stderr and "Traceback" not in proc.stderr
