"""Streams behave like a Unix tool's: data on stdout only, progress only on a terminal's
stderr, records from a live pipe handled as they arrive, long records from a pipe read
without re-copying, gzip-compressed captures read by their magic number."""

from __future__ import annotations

import gzip
import io
import json
import os
import pty
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpinc_analyze.analysis.run import analyze_file
from tcpinc_analyze.capture.reader import CaptureError, Record, read_capture
from tcpinc_analyze.cli import main
from tcpinc_analyze.synth.capture_writer import PcapWriter
from tcpinc_analyze.synth.packets import TCP_ACK, TCP_FIN, TCP_SYN, LinkParams, TcpSegment, frame

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
CLI = [sys.executable, "-m", "tcpinc_analyze.cli"]
ENV = {k: v for k, v in os.environ.items() if k != "TCPCRYPT_KEYLOGFILE"}


def jsonl(path: Path | str) -> list[dict]:
    return [r.to_json() for r in analyze_file(str(path)).reports]


# ------------------------------------------------------------------ gzip


def test_gzip_capture_is_read_by_its_magic_not_its_name(tmp_path: Path) -> None:
    plain = SAMPLES / "busy-mix.pcap"
    hidden = tmp_path / "capture.bin"  # no .gz in the name: the magic number tells
    hidden.write_bytes(gzip.compress(plain.read_bytes()))
    assert jsonl(hidden) == jsonl(plain)
    ng = SAMPLES / "pcapng-multi-interface.pcapng"
    named = tmp_path / "multi.pcapng.gz"
    named.write_bytes(gzip.compress(ng.read_bytes()))
    assert jsonl(named) == jsonl(ng)


def test_gzip_capture_streams_from_standard_input() -> None:
    data = gzip.compress((SAMPLES / "x25519-chacha20.pcap").read_bytes())
    proc = subprocess.run([*CLI, "analyze", "-", "--format", "jsonl", "--keylog",
                           str(SAMPLES / "x25519-chacha20.keys")], input=data,
                          capture_output=True, cwd=ROOT, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(got) == 1 and got[0]["tcpcrypt"]["decrypted"]["ba"]["ok"] > 0


def test_gzip_is_read_in_pieces_not_decompressed_whole(tmp_path: Path) -> None:
    """Streaming: the reader takes the decompressed capture chunk by chunk (a 40 MB
    capture inside must not be held at once)."""
    path = tmp_path / "big.pcap.gz"
    payload = bytes(60_000)
    with gzip.open(path, "wb") as out:
        writer = PcapWriter(out, 1)
        for n in range(700):  # about 42 MB decompressed, a few kB compressed
            writer.write(10**18 + n, payload)
    import tracemalloc

    tracemalloc.start()
    with open(path, "rb") as stream:
        count = sum(1 for item in read_capture(stream, str(path)) if isinstance(item, Record))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 700
    assert peak < 12 * 1024 * 1024, peak


def test_damaged_gzip_is_reported_and_what_came_before_is_read(tmp_path: Path) -> None:
    data = gzip.compress((SAMPLES / "busy-mix.pcap").read_bytes())
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(data[:len(data) // 2])
    result = analyze_file(str(cut))
    assert 0 < len(result.reports) < 60
    messages = [f.message for f in result.summary.findings if f.code == "capture-damaged"]
    assert any("the gzip data is damaged after" in m for m in messages), messages
    proc = subprocess.run([*CLI, "analyze", str(cut)], capture_output=True, text=True,
                          cwd=ROOT, env=ENV, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "gzip data is damaged" in proc.stdout


def test_gzip_of_something_else_is_not_a_capture(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "notes.gz"
    text.write_bytes(gzip.compress(b"hello, this is not a capture\n"))
    assert main(["analyze", str(text)]) == 2
    assert "not a pcap or pcapng file" in capsys.readouterr().err
    junk = tmp_path / "junk.gz"
    junk.write_bytes(b"\x1f\x8b" + bytes(40))
    with pytest.raises(CaptureError, match="cannot be decompressed"):
        analyze_file(str(junk))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10**6), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)),
                                       max_size=20), st.integers(1, 10**6))
def test_mutated_gzip_never_raises(tmp_path_factory: pytest.TempPathFactory, cut: int,
                                   flips: list[tuple[int, int]], seed: int) -> None:
    data = bytearray(gzip.compress((SAMPLES / "fallback-reasons.pcap").read_bytes()))
    for pos, bit in flips:
        data[pos % len(data)] ^= 1 << bit
    data = data[:max(4, cut % (len(data) + 1))]
    path = tmp_path_factory.mktemp("gz") / f"m{seed}.gz"
    path.write_bytes(bytes(data))
    try:
        analyze_file(str(path))
    except CaptureError:
        pass


# ------------------------------------------------------------------ pipes


def _pcap_header() -> bytes:
    buf = io.BytesIO()
    PcapWriter(buf, 1)
    return buf.getvalue()


def _records(segs: list[tuple[int, TcpSegment]]) -> bytes:
    buf = io.BytesIO()
    writer = PcapWriter(buf, 1)
    for ts, seg in segs:
        writer.write(ts, frame(seg, LinkParams()))
    return buf.getvalue()[len(_pcap_header()):]


def _closed_connection(t0: int, a: str, b: str) -> list[tuple[int, TcpSegment]]:
    ms = 1_000_000
    return [(t0, TcpSegment(a, b, 40000, 80, 100, 0, TCP_SYN, 1000)),
            (t0 + ms, TcpSegment(b, a, 80, 40000, 500, 101, TCP_SYN | TCP_ACK, 1000)),
            (t0 + 2 * ms, TcpSegment(a, b, 40000, 80, 101, 501, TCP_ACK, 1000, payload=b"hi")),
            (t0 + 3 * ms, TcpSegment(a, b, 40000, 80, 103, 501, TCP_FIN | TCP_ACK, 1000)),
            (t0 + 4 * ms, TcpSegment(b, a, 80, 40000, 501, 104, TCP_FIN | TCP_ACK, 1000)),
            (t0 + 5 * ms, TcpSegment(a, b, 40000, 80, 104, 502, TCP_ACK, 1000))]


def _read_line(fd: int, timeout: float) -> bytes:
    """One line from fd, or what arrived before the timeout."""
    got = b""
    end = time.monotonic() + timeout
    while not got.endswith(b"\n"):
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 1)
        if not chunk:
            break
        got += chunk
    return got


def test_live_pipe_shows_a_connection_while_the_writer_still_writes() -> None:
    """A capture arriving slowly through a pipe (tcpdump -w - | ...): the first
    connection's JSON line comes out while the writer still holds the pipe open."""
    t0 = 1_700_000_000 * 10**9
    first = _closed_connection(t0, "10.7.0.1", "10.7.0.2")
    later = [(t0 + 45 * 10**9, TcpSegment("10.7.0.3", "10.7.0.4", 40001, 443, 7, 0,
                                          TCP_SYN, 1000))]
    proc = subprocess.Popen([*CLI, "analyze", "-", "--format", "jsonl"], cwd=ROOT, env=ENV,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(_pcap_header())
        proc.stdin.flush()
        for ts, seg in first + later:  # slowly, one record at a time
            proc.stdin.write(_records([(ts, seg)]))
            proc.stdin.flush()
            time.sleep(0.05)
        line = _read_line(proc.stdout.fileno(), 30)
        assert proc.poll() is None, "the analyzer ended although the pipe is still open"
        record = json.loads(line)
        assert record["id"] == 0 and record["a"] == "10.7.0.1:40000"
        assert record["state"] == "closed"
        proc.stdin.close()
        rest = proc.stdout.read().decode()
        assert proc.wait(60) == 0
        assert [json.loads(x)["id"] for x in rest.splitlines()] == [1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_long_record_from_a_named_pipe_arrives_whole(tmp_path: Path) -> None:
    """A record far bigger than a pipe's buffer, then a TCP SYN: the reader gathers the
    record from many short reads (and joins them once) and goes on."""
    big = 3 * 1024 * 1024 + 17
    buf = io.BytesIO()
    writer = PcapWriter(buf, 1, snaplen=4 * 1024 * 1024)
    writer.write(10**18, bytes(big))
    writer.write(10**18 + 1, frame(TcpSegment("10.8.0.1", "10.8.0.2", 1234, 80, 1, 0,
                                              TCP_SYN, 1000), LinkParams()))
    data = buf.getvalue()
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb", buffering=0) as out:
            for i in range(0, len(data), 4096):
                out.write(data[i:i + 4096])

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        result = analyze_file(str(fifo))
    finally:
        feeder.join(60)
    assert result.summary.packets == 2
    assert [r.a for r in result.reports] == ["10.8.0.1:1234"]
    assert not result.summary.findings


# ------------------------------------------------------------------ stdout and progress


def _run_with_terminal_stderr(args: list[str], env: dict | None = None
                              ) -> tuple[int, bytes, bytes]:
    """Run the CLI with stdout a pipe and stderr a pseudo-terminal (an interactive user
    redirecting the data: ``analyze X --format jsonl > out.jsonl``)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*CLI, *args], cwd=ROOT, env=env or ENV, stdout=subprocess.PIPE,
                            stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    assert proc.stdout is not None
    out_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()))
    reader.start()
    terminal = b""
    while True:
        try:
            ready = select.select([master], [], [], 0.2)[0]
            if ready:
                chunk = os.read(master, 65536)
                if not chunk:
                    break
                terminal += chunk
            elif proc.poll() is not None:
                break
        except OSError:  # the pty closed with the process
            break
    code = proc.wait(120)
    reader.join(60)
    os.close(master)
    return code, b"".join(out_chunks), terminal


def test_progress_on_a_terminal_never_takes_stdout() -> None:
    """The progress display draws on stderr (a terminal) while every JSON line still goes
    to stdout (a file or pipe): data never lands on the screen instead of the file."""
    code, out, terminal = _run_with_terminal_stderr(
        ["analyze", str(SAMPLES / "busy-mix.pcap"), "--format", "jsonl", "--progress"])
    assert code == 0
    ids = sorted(json.loads(line)["id"] for line in out.splitlines())
    assert ids == list(range(60))
    assert b'"community_id"' not in terminal
    assert b"busy-mix.pcap" in terminal  # the progress bar's label was drawn


def test_no_progress_unless_stderr_is_a_terminal() -> None:
    proc = subprocess.run([*CLI, "analyze", str(SAMPLES / "busy-mix.pcap"), "--format",
                           "jsonl", "--progress"], capture_output=True, cwd=ROOT, env=ENV,
                          timeout=120)
    assert proc.returncode == 0 and proc.stderr == b""
    assert len(proc.stdout.splitlines()) == 60


def test_messages_go_to_stderr_and_data_to_stdout(tmp_path: Path) -> None:
    """Progress, outcome and warning messages never mix with a command's data."""
    keys = tmp_path / "k.keys"
    keys.write_bytes((SAMPLES / "x25519-chacha20.keys").read_bytes())
    keys.chmod(0o600)
    decrypt = subprocess.run([*CLI, "decrypt", str(SAMPLES / "x25519-chacha20.pcap"),
                              "--keylog", str(keys), "-o", str(tmp_path / "out")],
                             capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120)
    assert decrypt.returncode == 0 and decrypt.stdout == ""
    assert "plaintext files" in decrypt.stderr and "1 decrypted" in decrypt.stderr
    synth = subprocess.run([*CLI, "synth", "x25519-chacha20", "-o", str(tmp_path / "s.pcap")],
                           capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120)
    assert synth.returncode == 0 and synth.stdout == "" and "1 connection " in synth.stderr
    extract = subprocess.run([*CLI, "extract-secrets", str(SAMPLES / "x25519-chacha20.pcap")],
                             capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120)
    assert extract.stdout == "" and "no key log embedded" in extract.stderr


@pytest.mark.parametrize("args", [["--details"], ["--format", "jsonl"], ["--format", "json"]])
def test_a_reader_that_goes_away_ends_the_command_quietly(args: list[str]) -> None:
    """``analyze X | head``: no traceback, no "Exception ignored", and not exit 1 (which
    means a verification failed)."""
    proc = subprocess.Popen([*CLI, "analyze", str(SAMPLES / "busy-mix.pcap"), *args],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(100)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(120) == 0
    assert b"Traceback" not in err and b"Exception ignored" not in err
