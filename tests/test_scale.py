"""Scale (issue 13): flow shards give the single-process result, several captures in one
command, Parquet, compressed captures. Real worker processes, real files, real pyarrow,
zstandard and lz4."""

from __future__ import annotations

import json
import os
import random
import re
import struct
import sys
import zlib
from pathlib import Path

import pytest

from tcpinc_analyze.analysis.handlers import Handlers, frame_list_factory
from tcpinc_analyze.analysis.run import analyze_file
from tcpinc_analyze.capture.reader import CaptureError, Record, read_capture
from tcpinc_analyze.cli import main
from tcpinc_analyze.decryption import DecryptionContext
from tcpinc_analyze.keylog import load_keylogs
from tcpinc_analyze.scale import shard as shard_mod
from tcpinc_analyze.scale.inputs import InputError, expand
from tcpinc_analyze.scale.shard import Router, analyze_sharded, shard_key

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
CAPTURES = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".pcap", ".pcapng"))
PACKAGE = Path(__file__).resolve().parents[1] / "tcpinc_analyze"


def keys_for(capture: Path) -> Path | None:
    keys = capture.with_suffix(".keys")
    return keys if keys.exists() else None


def context(keys: Path | None) -> DecryptionContext | None:
    if keys is None:
        return None
    return DecryptionContext(load_keylogs([str(keys)], use_env=False).log)


def summary_json(s) -> dict:  # noqa: ANN001
    return {"packets": s.packets, "tcp": s.tcp_packets, "non_tcp": s.non_tcp,
            "connections": s.connections, "truncated": s.truncated_packets,
            "first": s.first_ts, "last": s.last_ts, "linktypes": sorted(s.linktypes),
            "findings": [f.to_json() for f in s.findings], "fatal": s.fatal,
            "secrets": [(b.secrets_type, b.data, b.offset) for b in s.secrets],
            "suppressed": s.suppressed}


def assert_same(path: Path, keys: Path | None, jobs: int, round_bytes: int,
                details: bool = False) -> None:
    """Streamed order, collected result and summary all equal one process's."""
    factory = (lambda: Handlers([frame_list_factory])) if details else (lambda: None)
    one: list[dict] = []
    single = analyze_file(str(path), decryption=context(keys), handler_factory=factory(),
                          on_report=lambda r: one.append(r.to_json()))
    many: list[dict] = []
    sharded = analyze_sharded(str(path), jobs, decryption=context(keys),
                              handler_factory=factory(),
                              on_report=lambda r: many.append(r.to_json()),
                              round_bytes=round_bytes)
    assert many == one
    assert summary_json(sharded.summary) == summary_json(single.summary)
    collected = analyze_sharded(str(path), jobs, decryption=context(keys),
                                handler_factory=factory(), round_bytes=round_bytes)
    assert [r.to_json() for r in collected.reports] == sorted(one, key=lambda r: r["id"])


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_flow_shards_equal_one_process_on_every_sample(path: Path) -> None:
    # three workers, a round per record (every round boundary exercised), with keys
    assert_same(path, keys_for(path), 3, round_bytes=1)


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_flow_shards_equal_one_process_without_keys_with_details(path: Path) -> None:
    assert_same(path, None, 2, round_bytes=1 << 20, details=True)


def test_router_counts_tcp_packets_as_the_analyzer_does() -> None:
    """The sweep ticks sit where one process sweeps: the router's TCP count must be the
    analyzer's, record for record, on every sample (IPv6, VLAN, SLL, NULL, raw IP,
    truncated and fragmented packets included)."""
    for path in CAPTURES:
        router = Router(4)
        with open(path, "rb") as f:
            counted = sum(router.route(item)[1] for item in read_capture(f, str(path))
                          if isinstance(item, Record))
        assert counted == analyze_file(str(path)).summary.tcp_packets, path.name


# ------------------------------------------------------------------ hand-made captures
def pcap(records: list[bytes], linktype: int = 1, ts0: int = 1_600_000_000) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for i, frame in enumerate(records):
        out.append(struct.pack("<IIII", ts0 + i, 0, len(frame), len(frame)) + frame)
    return b"".join(out)


def ipv4_tcp(src: bytes, dst: bytes, sport: int, dport: int, flags: int, seq: int = 1,
             payload: bytes = b"", data_offset: int = 5) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, data_offset << 4, flags, 65535, 0,
                      0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, src, dst)
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp


def test_capture_level_findings_cap_and_order_survive_the_merge(tmp_path: Path) -> None:
    """Malformed packets spread over many address pairs (so over every worker): the
    summary lists the first 20 of a kind in packet order, then the cap's note at the
    21st, and counts the rest, exactly as one process does."""
    rng = random.Random(7)
    frames = []
    for i in range(70):
        src = bytes([10, 1, rng.randrange(256), rng.randrange(1, 255)])
        dst = bytes([10, 2, rng.randrange(256), rng.randrange(1, 255)])
        if i % 3:
            frames.append(ipv4_tcp(src, dst, 1000 + i, 80, 0x02, data_offset=3))  # < 20
        else:
            frames.append(ipv4_tcp(src, dst, 1000 + i, 80, 0x02))
        if i % 7 == 0:
            frames.append(b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + b"\x45\x00")  # cut IP
    path = tmp_path / "malformed.pcap"
    path.write_bytes(pcap(frames))
    single = analyze_file(str(path))
    assert single.summary.suppressed  # the cap is reached: the test means something
    for jobs in (2, 5):
        assert_same(path, None, jobs, round_bytes=1)


def rewrite_pair(frame: bytes, a: bytes, b: bytes, old_a: bytes, old_b: bytes) -> bytes:
    """Move an untagged Ethernet/IPv4 frame to another address pair."""
    src, dst = frame[26:30], frame[30:34]
    mapping = {old_a: a, old_b: b}
    return frame[:26] + mapping.get(src, src) + mapping.get(dst, dst) + frame[34:]


def records_of(path: Path) -> list[bytes]:
    with open(path, "rb") as f:
        return [item.data for item in read_capture(f, str(path)) if isinstance(item, Record)]


@pytest.mark.parametrize("sample", ["resumption.pcap", "conformance-violations.pcap"])
def test_ids_named_inside_reports_are_renumbered(tmp_path: Path, sample: str) -> None:
    """Connections of another address pair come first, on another worker: the sample's
    connections get capture-wide ids, and so do the ids its reports name
    (tcpcrypt.resumes, resume-identifier-reused messages)."""
    base = records_of(SAMPLES / sample)
    other = records_of(SAMPLES / "x25519-chacha20.pcap") + records_of(
        SAMPLES / "busy-mix.pcap")[:300]
    old = (bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    pair = (bytes([10, 77, 0, 1]), bytes([10, 77, 0, 2]))
    jobs = next(n for n in range(2, 9) if shard_key(*pair, n) != shard_key(*old, n))
    moved = [rewrite_pair(f, *pair, *old) for f in other]
    path = tmp_path / "mixed.pcap"
    path.write_bytes(pcap(moved[:40] + base + moved[40:]))
    keys = tmp_path / "mixed.keys"
    keys.write_text((SAMPLES / sample).with_suffix(".keys").read_text())
    keys.chmod(0o600)
    reports = [r.to_json() for r in analyze_file(str(path), decryption=context(keys)).reports]
    named = [r for r in reports if (r["tcpcrypt"] or {}).get("resumes")
             or any(re.search(r"connection \d", f["message"]) for f in r["findings"])]
    assert named, "the sample names other connections: the test checks renumbering"
    assert_same(path, keys, jobs, round_bytes=1)


def test_sweeps_on_a_long_capture(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Connections that close and go quiet over minutes of capture time: one process
    sweeps its table many times (every 256 TCP packets here) and retires connections
    while reading; the shards sweep at the same records and emit in the same order."""
    from tcpinc_analyze.analysis import engine
    from tcpinc_analyze.bench import make_capture

    monkeypatch.setattr(engine, "SWEEP_EVERY", 256)
    path, keys = tmp_path / "long.pcap", tmp_path / "long.keys"
    make_capture(path, keys, 3)
    keys.chmod(0o600)
    from tcpinc_analyze.analysis.run import make_analyzer

    read = [0]
    retired_while_reading: list[int] = []
    analyzer = make_analyzer(str(path), lambda r: retired_while_reading.append(read[0]))
    with open(path, "rb") as f:
        for item in read_capture(f, str(path)):
            read[0] += 1
            analyzer.feed(item)
    assert analyzer.summary.tcp_packets > 8 * 256
    assert retired_while_reading, "sweeps retired connections before the end of capture"
    assert_same(path, keys, 2, round_bytes=64 << 10)


def test_only_resume_registry_names_other_connections() -> None:
    """Messages naming another connection's id must be renumbered after sharding: every
    such message template in the analyzer must be covered by CONNECTION_REFERENCES."""
    producers = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(("tui/", "output/", "scale/", "synth/")) or rel == "cli.py":
            continue
        if re.search(r"connection \{", path.read_text()):
            producers.append(rel)
    assert producers == ["analysis/resume_registry.py"]
    text = (PACKAGE / "analysis/resume_registry.py").read_text()
    assert set(re.findall(r'"(resume-[a-z-]+)"', text)) <= set(shard_mod.CONNECTION_REFERENCES)


def test_worker_failure_is_an_error_not_a_hang(tmp_path: Path, monkeypatch) -> None:
    """A worker that dies surfaces as an error in the main process."""
    path = SAMPLES / "busy-mix.pcap"

    def boom(self, buf, start=1):  # noqa: ANN001, ANN202
        raise RuntimeError("injected")

    monkeypatch.setattr(shard_mod.ShardAnalyzer, "run_batch", boom)
    monkeypatch.setattr(shard_mod.ShardAnalyzer, "run_pcap_batch", boom)
    monkeypatch.setattr(shard_mod, "_context", lambda: __import__(
        "multiprocessing").get_context("fork"))
    with pytest.raises(RuntimeError, match="injected"):
        analyze_sharded(str(path), 2)


# ------------------------------------------------------------------ the command line
def cli(capsys, *argv: str) -> tuple[int, str, str]:  # noqa: ANN001
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_j2_equals_j1(capsys) -> None:  # noqa: ANN001
    path = str(SAMPLES / "busy-mix.pcap")
    keys = str(SAMPLES / "busy-mix.keys")
    outputs = []
    for jobs in ("1", "2"):
        code, out, _ = cli(capsys, "analyze", path, "--keylog", keys, "--format", "jsonl",
                           "-j", jobs)
        assert code == 0
        outputs.append(out)
    assert outputs[0] == outputs[1] and outputs[0].count("\n") == 60
    for cmd in (["verify", path, "--keylog", keys], ["conformance", path, "--format", "json"]):
        assert cli(capsys, *cmd, "-j", "1")[:2] == cli(capsys, *cmd, "-j", "3")[:2]


def test_several_captures_in_capture_order_with_their_name(capsys, tmp_path: Path) -> None:  # noqa: ANN001
    folder = tmp_path / "campaign"
    (folder / "day2").mkdir(parents=True)
    chosen = ["x25519-chacha20.pcap", "gap.pcap", "ipv6-vlan.pcapng"]
    (folder / "b.pcap").write_bytes((SAMPLES / chosen[0]).read_bytes())
    (folder / "a.pcap").write_bytes((SAMPLES / chosen[1]).read_bytes())
    (folder / "day2" / "c.pcapng").write_bytes((SAMPLES / chosen[2]).read_bytes())
    (folder / "notes.txt").write_text("not a capture: a directory's other files are skipped")
    code, out, err = cli(capsys, "analyze", str(folder), "--format", "jsonl", "-j", "2")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    order = [str(folder / "a.pcap"), str(folder / "b.pcap"), str(folder / "day2" / "c.pcapng")]
    assert [r["capture"] for r in records] == sorted((r["capture"] for r in records),
                                                     key=order.index)
    for path in order:
        mine = [{k: v for k, v in r.items() if k != "capture"} for r in records
                if r["capture"] == path]
        assert mine == [x.to_json() for x in analyze_file(path).reports]
        assert [r["id"] for r in mine] == list(range(len(mine)))
    assert list(records[0])[0] == "capture"
    # the same as one JSON array, whatever -j
    code, array_out, _ = cli(capsys, "analyze", str(folder), "--format", "json", "-j", "1")
    assert code == 0 and json.loads(array_out) == records


def test_one_failing_capture_does_not_stop_the_others(capsys, tmp_path: Path) -> None:  # noqa: ANN001
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture at all")
    good = SAMPLES / "gap.pcap"
    code, out, err = cli(capsys, "analyze", str(bad), str(good), str(tmp_path / "gone.pcap"),
                         "--format", "jsonl", "-j", "2")
    assert code == 2
    assert {json.loads(line)["capture"] for line in out.splitlines()} == {str(good)}
    assert "bad.pcap: not a pcap or pcapng file" in err
    assert "gone.pcap: cannot open" in err
    assert "3 captures: 1 read, 2 failed" in err
    assert "Traceback" not in err


def test_verify_several_exit_status(capsys) -> None:  # noqa: ANN001
    ok = str(SAMPLES / "x25519-chacha20.pcap")
    wrong = str(SAMPLES / "wrong-key.pcap")
    code, out, _ = cli(capsys, "verify", ok, wrong, "--keylog", str(SAMPLES))
    assert code == 1
    assert out.index(f"==> {ok} <==") < out.index(f"==> {wrong} <==")
    assert "VERIFIED" in out and "FAILED" in out


def test_expand_globs_directories_and_errors(tmp_path: Path) -> None:
    for name in ("x.pcap", "y.pcapng.gz", "z.pcap.zst", "k.keys"):
        (tmp_path / name).write_bytes(b"")
    got = expand([str(tmp_path)])
    assert got.many and [Path(p).name for p in got.paths] == ["x.pcap", "y.pcapng.gz",
                                                              "z.pcap.zst"]
    assert [Path(p).name for p in expand([str(tmp_path / "*.keys")]).paths] == ["k.keys"]
    assert not expand([str(tmp_path / "x.pcap")]).many
    with pytest.raises(InputError, match="no file matches"):
        expand([str(tmp_path / "*.nothing")])
    with pytest.raises(InputError, match="standard input"):
        expand(["-", str(tmp_path / "x.pcap")])


def test_follow_needs_one_capture(capsys) -> None:  # noqa: ANN001
    code, _, err = cli(capsys, "analyze", str(SAMPLES / "gap.pcap"),
                       str(SAMPLES / "x25519-chacha20.pcap"), "--follow", "0")
    assert code == 2 and "--follow ID needs a single capture" in err


def test_decrypt_several_captures_one_folder_each(capsys, tmp_path: Path) -> None:  # noqa: ANN001
    out_dir = tmp_path / "plain"
    code, _, err = cli(capsys, "decrypt", str(SAMPLES / "x25519-chacha20.pcap"),
                       str(SAMPLES / "gap.pcap"), "--keylog", str(SAMPLES), "-o", str(out_dir))
    assert code == 0, err
    for name in ("x25519-chacha20", "gap"):
        index = json.loads((out_dir / name / "index.json").read_text())
        assert index["capture"].endswith(f"{name}.pcap")
        assert any(f["file"] for f in index["files"])


# ------------------------------------------------------------------ parquet
def test_parquet_one_row_per_connection_with_json_names(capsys, tmp_path: Path) -> None:  # noqa: ANN001
    pq = pytest.importorskip("pyarrow.parquet")
    path = SAMPLES / "busy-mix.pcap"
    target = tmp_path / "out.parquet"
    code, out, err = cli(capsys, "analyze", str(path), "--keylog", str(SAMPLES / "busy-mix.keys"),
                         "--format", "parquet", "-o", str(target))
    assert code == 0, err
    assert out == ""
    table = pq.read_table(target)
    rows = table.to_pylist()
    reports = [r.to_json() for r in analyze_file(
        str(path), decryption=context(SAMPLES / "busy-mix.keys")).reports]
    assert len(rows) == len(reports) == 60
    for row, rep in zip(rows, reports, strict=True):
        assert row["id"] == rep["id"]
        assert row["eno.status"] == rep["eno"]["status"]
        tc = rep["tcpcrypt"]
        assert row.get("tcpcrypt.decrypted.ab.ok") == (
            tc["decrypted"]["ab"]["ok"] if tc and tc.get("decrypted") else None)
        assert [f["code"] for f in row["findings"]] == [f["code"] for f in rep["findings"]]
    assert "tcpcrypt" not in table.column_names  # a null parent adds no column


def test_parquet_several_captures_and_refusals(capsys, tmp_path: Path) -> None:  # noqa: ANN001
    pq = pytest.importorskip("pyarrow.parquet")
    target = tmp_path / "all.parquet"
    captures = [str(SAMPLES / "gap.pcap"), str(SAMPLES / "fallback-reasons.pcap")]
    code, _, err = cli(capsys, "analyze", *captures, "--format", "parquet", "-o", str(target))
    assert code == 0, err
    table = pq.read_table(target)
    assert table.column_names[0] == "capture"
    assert table.column("capture").to_pylist() == [captures[0]] * 1 + [captures[1]] * (
        table.num_rows - 1)
    code, _, err = cli(capsys, "analyze", captures[0], "--format", "parquet")
    assert code == 2 and "-o FILE" in err
    copy = tmp_path / "c.pcap"
    copy.write_bytes(Path(captures[0]).read_bytes())
    code, _, err = cli(capsys, "analyze", str(copy), "--format", "parquet", "-o", str(copy))
    assert code == 2 and "is one of the captures" in err
    assert copy.read_bytes() == Path(captures[0]).read_bytes()


# ------------------------------------------------------------------ compressed captures
def compressors() -> dict:
    zstandard = pytest.importorskip("zstandard")
    lz4_frame = pytest.importorskip("lz4.frame")
    return {"zst": lambda d: b"".join(zstandard.ZstdCompressor(write_checksum=True).compress(
        d[i:i + 20_000]) for i in range(0, len(d), 20_000)),
        "lz4": lambda d: lz4_frame.compress(d, block_size=lz4_frame.BLOCKSIZE_MAX64KB)}


@pytest.mark.parametrize("kind", ["zst", "lz4"])
def test_compressed_capture_reads_like_the_plain_one(tmp_path: Path, kind: str) -> None:
    plain = SAMPLES / "busy-mix.pcap"
    packed = tmp_path / f"busy-mix.pcap.{kind}"
    packed.write_bytes(compressors()[kind](plain.read_bytes()))
    keys = SAMPLES / "busy-mix.keys"
    want = [r.to_json() for r in analyze_file(str(plain), decryption=context(keys)).reports]
    got = [r.to_json() for r in analyze_file(str(packed), decryption=context(keys)).reports]
    assert got == want
    renamed = tmp_path / "no-extension"  # told by the magic number, not the name
    renamed.write_bytes(packed.read_bytes())
    assert [r.to_json() for r in analyze_file(str(renamed)).reports] == [
        r.to_json() for r in analyze_file(str(plain)).reports]
    # and flow-sharded
    assert_same(packed, keys, 2, round_bytes=64 << 10)


def test_damaged_zstd_keeps_the_packets_before(tmp_path: Path) -> None:
    data = compressors()["zst"]((SAMPLES / "busy-mix.pcap").read_bytes())
    cut = int(len(data) * 0.7)
    damaged = tmp_path / "damaged.pcap.zst"
    damaged.write_bytes(data[:cut] + bytes(b ^ 0xFF for b in data[cut:cut + 64])
                        + data[cut + 64:])
    result = analyze_file(str(damaged))
    messages = [f.message for f in result.summary.findings]
    assert any("the zstd data is damaged after" in m for m in messages), messages
    assert 0 < result.summary.packets < 1249
    assert result.summary.fatal


def test_missing_compression_package_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    packed = tmp_path / "x.pcap.lz4"
    packed.write_bytes(compressors()["lz4"]((SAMPLES / "gap.pcap").read_bytes()))
    monkeypatch.setitem(sys.modules, "lz4.frame", None)
    monkeypatch.setitem(sys.modules, "lz4", None)
    with pytest.raises(CaptureError, match=r"lz4-compressed; reading it needs the lz4 package"):
        analyze_file(str(packed))


def test_shard_key_is_symmetric_and_stable() -> None:
    a, b = os.urandom(4), os.urandom(4)
    assert shard_key(a, b, 7) == shard_key(b, a, 7) == zlib.crc32(min(a, b) + max(a, b)) % 7


# ------------------------------------------------------------------ Dask
@pytest.fixture(scope="module")
def dask_client():  # noqa: ANN201
    distributed = pytest.importorskip("distributed")
    import logging

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None,
                                       silence_logs=logging.CRITICAL)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_dask_local_cluster_equals_one_process(dask_client, path: Path) -> None:  # noqa: ANN001
    from tcpinc_analyze.scale.dask_engine import analyze_dask

    keys = keys_for(path)
    one: list[dict] = []
    single = analyze_file(str(path), decryption=context(keys),
                          on_report=lambda r: one.append(r.to_json()))
    got: list[dict] = []
    result = analyze_dask(str(path), dask_client, 3, decryption=context(keys),
                          on_report=lambda r: got.append(r.to_json()))
    assert got == one
    assert summary_json(result.summary) == summary_json(single.summary)


def test_dask_cli_several_captures_and_url(dask_client, capsys, tmp_path: Path) -> None:  # noqa: ANN001
    address = dask_client.scheduler.address
    captures = [str(SAMPLES / "resumption.pcap"), str(SAMPLES / "busy-mix.pcap"),
                str(tmp_path / "missing.pcap")]
    code, out, err = cli(capsys, "analyze", *captures, "--keylog", str(SAMPLES),
                         "--format", "jsonl", "--dask", address)
    local = cli(capsys, "analyze", *captures, "--keylog", str(SAMPLES), "--format", "jsonl",
                "-j", "2")
    assert (code, out) == local[:2]
    assert code == 2 and "missing.pcap: cannot open" in err
    # one capture by fsspec URL, split in flow shards on the cluster
    url = "file://" + str(SAMPLES / "busy-mix.pcap")
    code, out, _ = cli(capsys, "analyze", url, "--keylog", str(SAMPLES / "busy-mix.keys"),
                       "--format", "jsonl", "--dask", address, "-j", "4")
    plain = cli(capsys, "analyze", str(SAMPLES / "busy-mix.pcap"), "--keylog",
                str(SAMPLES / "busy-mix.keys"), "--format", "jsonl")
    assert code == 0 and out == plain[1]


def test_dask_missing_scheduler_is_a_clear_error(capsys) -> None:  # noqa: ANN001
    pytest.importorskip("distributed")
    code, _, err = cli(capsys, "analyze", str(SAMPLES / "gap.pcap"), str(SAMPLES / "gap.pcap"),
                       "--dask", "local:zero")
    assert code == 2 and "expected local:N" in err


@pytest.mark.parametrize("cut", [24 + 7, 0.5, -5, -20])
def test_raw_walk_hands_a_damaged_tail_to_the_reader(tmp_path: Path, cut: float) -> None:
    """The raw pcap walk stops at a record it cannot take whole (cut header, cut data,
    an impossible length); the capture reader goes on from there and reports exactly
    what one process reports."""
    data = (SAMPLES / "busy-mix.pcap").read_bytes()
    at = int(len(data) * cut) if isinstance(cut, float) else (cut if cut > 0 else len(data) + cut)
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:at])
    assert_same(path, SAMPLES / "busy-mix.keys", 2, round_bytes=32 << 10)


def test_raw_walk_impossible_length(tmp_path: Path) -> None:
    data = bytearray((SAMPLES / "gap.pcap").read_bytes())
    # the 10th record's captured length becomes impossible: corrupt from there on
    pos = 24
    for _ in range(9):
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    struct.pack_into("<I", data, pos + 8, 1 << 30)
    path = tmp_path / "corrupt.pcap"
    path.write_bytes(bytes(data))
    assert_same(path, SAMPLES / "gap.keys", 3, round_bytes=1)
    assert analyze_file(str(path)).summary.fatal


def test_reader_counts_tcp_packets_as_the_analyzer_does_raw_and_generic(tmp_path: Path) -> None:
    """Both reader loops (the raw pcap walk and the record loop) place the sweep ticks
    by the analyzer's own TCP count."""
    for path in CAPTURES:
        for jobs in (1, 3):
            reader = shard_mod.ReaderState()
            with open(path, "rb") as f:
                kind = shard_mod._raw_pcap(f)
                f.seek(0)
                if kind == "pcap":
                    stopped = shard_mod.dispatch_pcap(f, jobs, reader, lambda b, last: True,
                                                      None, 1 << 20, Router(jobs))
                    assert stopped is None, path.name
                elif kind == "pcapng":
                    from tcpinc_analyze.scale.rawng import dispatch_pcapng

                    stopped = dispatch_pcapng(f, jobs, reader, lambda b, last: True, None,
                                              1 << 20, Router(jobs), shard_mod._fast_shard)
                    assert stopped is None, path.name
                else:
                    f.seek(0)
                    shard_mod.dispatch(read_capture(f, str(path)), jobs, reader,
                                       lambda b, last: True)
            single = analyze_file(str(path)).summary
            assert (reader.tcp, reader.packets, reader.first_ts, reader.last_ts) == (
                single.tcp_packets, single.packets, single.first_ts, single.last_ts), path.name


def pcapng_of(path: Path, out: Path, *, secrets: bytes | None = None) -> Path:
    """A sample rewritten as little-endian pcapng (as dumpcap writes), optionally with a
    key log in a Decryption Secrets Block before the packets."""
    from tcpinc_analyze.synth.capture_writer import PcapngWriter

    with open(path, "rb") as f:
        records = [r for r in read_capture(f, str(path)) if isinstance(r, Record)]
    with open(out, "wb") as dst:
        writer = PcapngWriter(dst)
        if secrets is not None:
            writer.write_secrets(0x54435043, secrets)
        iface = writer.add_interface(records[0].linktype, tsresol=6)
        for r in records:
            writer.write(iface, r.ts_ns, r.data)
    return out


@pytest.mark.parametrize("cut", [None, 0.5, -3, -30])
def test_raw_pcapng_walk_and_its_damaged_tail(tmp_path: Path, cut: float | None) -> None:
    """dumpcap's format walked raw (with a key log in a secrets block, so the workers
    decrypt from it); a cut block hands the rest to the capture reader."""
    keys = (SAMPLES / "busy-mix.keys").read_bytes()
    whole = pcapng_of(SAMPLES / "busy-mix.pcap", tmp_path / "whole.pcapng", secrets=keys)
    data = whole.read_bytes()
    path = whole
    if cut is not None:
        at = int(len(data) * cut) if isinstance(cut, float) else len(data) + cut
        path = tmp_path / "cut.pcapng"
        path.write_bytes(data[:at])
    with open(path, "rb") as f:
        assert shard_mod._raw_pcap(f) == "pcapng"
    from tcpinc_analyze.keylog import KeyLog

    one: list[dict] = []
    single = analyze_file(str(path), decryption=DecryptionContext(KeyLog()),
                          on_report=lambda r: one.append(r.to_json()))
    assert any((r["tcpcrypt"] or {}).get("decrypted") for r in one)
    many: list[dict] = []
    sharded = analyze_sharded(str(path), 2, decryption=DecryptionContext(KeyLog()),
                              on_report=lambda r: many.append(r.to_json()),
                              round_bytes=16 << 10)
    assert many == one
    assert summary_json(sharded.summary) == summary_json(single.summary)


def test_raw_pcapng_bad_trailer_and_simple_packets(tmp_path: Path) -> None:
    data = bytearray(pcapng_of(SAMPLES / "gap.pcap", tmp_path / "g.pcapng").read_bytes())
    # break the trailer of a block in the middle: the reader reports it and goes on
    pos, n = 0, 0
    while pos < len(data) and n < 12:
        length = struct.unpack_from("<I", data, pos + 4)[0]
        pos += length
        n += 1
    struct.pack_into("<I", data, pos - 4, 0xDEAD)
    bad = tmp_path / "trailer.pcapng"
    bad.write_bytes(bytes(data))
    assert_same(bad, SAMPLES / "gap.keys", 2, round_bytes=1)
    # a sample with several interfaces, link types and secrets blocks
    assert_same(SAMPLES / "pcapng-multi-interface.pcapng", None, 3, round_bytes=1)


def test_parquet_with_secrets_is_private(capsys, tmp_path: Path) -> None:  # noqa: ANN001
    pytest.importorskip("pyarrow")
    plain, secret = tmp_path / "plain.parquet", tmp_path / "secret.parquet"
    args = ["analyze", str(SAMPLES / "gap.pcap"), "--keylog", str(SAMPLES / "gap.keys"),
            "--format", "parquet"]
    assert cli(capsys, *args, "-o", str(plain))[0] == 0
    assert cli(capsys, *args, "--show-secrets", "-o", str(secret))[0] == 0
    assert secret.stat().st_mode & 0o777 == 0o600  # it holds session secrets
    mask = os.umask(0)
    os.umask(mask)
    assert plain.stat().st_mode & 0o777 == 0o666 & ~mask  # an ordinary results file


ROUND_SPLIT_SAMPLES = ["busy-mix.pcap", "linux-sll.pcap", "seq-wrap.pcap",
                       "pcapng-multi-interface.pcapng", "ipv6-vlan.pcapng"]


@pytest.mark.parametrize("name", ROUND_SPLIT_SAMPLES)
def test_rounds_bounded_by_record_count(name: str, monkeypatch) -> None:  # noqa: ANN001
    """A round also ends after ROUND_RECORDS records, in the middle of a stretch of file
    (tiny packets would otherwise pack tens of thousands of retirements into one round):
    the result is still the single process's, and the rounds really were split."""
    from multiprocessing.connection import Connection

    sent = [0]
    real = Connection.send_bytes

    def counting(self, buf, *args):  # noqa: ANN001, ANN202
        sent[0] += 1
        return real(self, buf, *args)

    monkeypatch.setattr(shard_mod, "ROUND_RECORDS", 3)
    monkeypatch.setattr(Connection, "send_bytes", counting)
    path = SAMPLES / name
    packets = analyze_file(str(path)).summary.packets
    sent[0] = 0
    assert_same(path, keys_for(path), 2, round_bytes=64 << 20)
    # assert_same runs two sharded analyses of two workers: a round per 3 records each
    assert sent[0] >= 2 * 2 * (packets // 3), f"{sent[0]} messages for {packets} packets"
