"""Benchmark: analyze a large synthetic mixed capture and compare, in the same run, with a
bare dpkt parsing loop and with tshark over the same file.

Machines here are noisy, so the goals are ratios against baselines measured in the same
run, never absolute times (and never in a unit test):

- ``analyze`` at least 1.5x as fast as the bare dpkt loop, at least 2x as fast as tshark;
- ``analyze --keylog`` (decrypting every frame) at least as fast as the dpkt loop;
- peak RSS under 200 MB, whatever the capture size (try ``--size 2048``);
- a key log of a million lines (``--keylog-lines``) adds less than 100 MB of peak RSS to
  an analysis of a small capture, and the analysis still decrypts.

A second case, ``--pipe-record MB``, times one record of MB megabytes read from a pipe
against the same file read from disk (goal: the pipe at most 3x slower; a reader that
re-copies its buffer per pipe read is quadratic and takes minutes).

``--hostile`` runs the hostile cases of issue 10 (items 23-26) instead, each against a
baseline of the same size measured in the same run:

- out-of-order reassembly: N segments as holes or reversed vs. the same N in order
  [<= 3x], and 40,000 holes vs. 10,000 per segment [<= 2x: near-linear];
- resynchronisation on junk after a gap: with keys vs. without [<= 3x], and 400 KB vs.
  100 KB per byte [<= 2x];
- shuffled IPv4 fragments: 20 trains of 8,190 vs. the same trains in order [<= 2x];
- SYN flood: 1,000,000 vs. 100,000 SYNs per SYN [<= 2x], peak RSS [< 200 MB, and the
  1M run's within 1.5x of the 100k run's].

Usage: ``python -m tcpinc_analyze.bench [--size MB] [--dir DIR] [--keep]
[--keylog-lines N]``, ``... --pipe-record 255``, ``... --hostile [--quick]``
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .scale.shard import AUTO_SHARD_BYTES, default_jobs
from .synth.capture_writer import PcapWriter
from .synth.sample import Scenario, generate
from .synth.scenarios import BASE_NS, SECOND, plain_plan, tcpcrypt_plan
from .wire import (
    AEAD_AES_128_GCM,
    AEAD_AES_256_GCM,
    AEAD_CHACHA20_POLY1305,
    TEP_P256,
    TEP_X25519,
    EnoStatus,
    FallbackReason,
)

DPKT_LOOP = """
import sys, dpkt
n = 0
with open(sys.argv[1], 'rb') as f:
    for ts, buf in dpkt.pcap.Reader(f):
        eth = dpkt.ethernet.Ethernet(buf)
        ip = eth.data
        tcp = ip.data
        n += 1
print(n)
"""


def _chunk(index: int) -> Scenario:
    """Twenty connections, mostly tcpcrypt, shifted in time so chunks follow each other."""

    def plans(rng: random.Random) -> list:
        out = []
        for n in range(20):
            start = BASE_NS + index * 20 * SECOND + n * SECOND
            if rng.random() < 0.8:
                tep = TEP_X25519 if rng.random() < 0.8 else TEP_P256
                aead = rng.choice((AEAD_AES_128_GCM, AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305))
                out.append(tcpcrypt_plan(rng, tep, aead, start_ns=start,
                                         size=rng.randrange(20_000, 120_000),
                                         a_ip=f"10.{index % 250}.{n}.1", b_ip="10.255.0.1",
                                         frame_data_max=rng.choice((1400, 4000, 16000)),
                                         rekey_ba=(3,) if rng.random() < 0.3 else ()))
            else:
                out.append(plain_plan(rng, start_ns=start, reason=FallbackReason.ABSENT,
                                      status=EnoStatus.ABSENT, size=rng.randrange(2000, 60_000)))
        return out

    return Scenario(f"bench-{index}", "benchmark chunk", plans, seed=1000 + index)


def make_capture(path: Path, keylog: Path, size_mb: int) -> int:
    """Write a pcap of at least ``size_mb`` MB and its key log; returns packets written."""
    target = size_mb * 1024 * 1024
    written = 24
    packets = 0
    with open(path, "wb") as out, open(keylog, "w") as keys:
        PcapWriter(out, 1)  # the file header; chunks below contribute their records
        index = 0
        while written < target:
            sample = generate(_chunk(index))
            data = sample.capture
            out.write(data[24:])  # same link type and header: append the records
            written += len(data) - 24
            packets += sample.expected["capture"]["packets"]
            keys.write(sample.keylog)
            index += 1
    return packets


def _rss_of(cmd: list[str]) -> tuple[float, float]:
    """Time and peak RSS of one command, measured by a fresh wrapper process."""
    wrapper = ("import resource, subprocess, sys, time\n"
               "t = time.perf_counter()\n"
               "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, "
               "stderr=subprocess.DEVNULL)\n"
               "print(time.perf_counter() - t, "
               "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n")
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def keylog_case(workdir: Path, lines: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(seconds, peak RSS MB) of analysing one benchmark chunk with its own key log, and
    with that key log after ``lines`` unrelated session-secret lines."""
    sample = generate(_chunk(0))
    capture = workdir / "keylog-case.pcap"
    capture.write_bytes(sample.capture)
    small = workdir / "keylog-case.keys"
    small.write_text(sample.keylog)
    big = workdir / f"keylog-case-{lines}.keys"
    rng = random.Random(27)
    with open(big, "w") as out:
        for start in range(0, lines, 10_000):
            out.write("".join(f"TCPCRYPT_SESSION_SECRET {rng.randbytes(32).hex()} "
                              f"{rng.randbytes(32).hex()}\n"
                              for _ in range(min(10_000, lines - start))))
        out.write(sample.keylog)
    for path in (small, big):
        os.chmod(path, 0o600)
    cli = [sys.executable, "-m", "tcpinc_analyze.cli", "verify", str(capture), "--keylog"]
    return _rss_of([*cli, str(small)]), _rss_of([*cli, str(big)])


PIPE_FEEDER = """
import sys
with open(sys.argv[1], 'rb') as f:
    while chunk := f.read(65536):
        sys.stdout.buffer.write(chunk)
"""


def _timed_shell(cmd: str) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def pipe_record(workdir: Path, size_mb: int) -> int:
    """One record of ``size_mb`` MB: analyze it from the file, then through a pipe fed in
    64 KiB writes, and print the ratio (goal <= 3)."""
    import shlex

    capture = workdir / f"record-{size_mb}mb.pcap"
    size = size_mb * 1024 * 1024
    with open(capture, "wb") as out:
        out.write(bytes.fromhex("d4c3b2a1020004000000000000000000") + (0).to_bytes(4, "little")
                  + (1).to_bytes(4, "little"))  # snaplen 0: no limit below MAX_RECORD
        out.write((1).to_bytes(4, "little") * 2 + size.to_bytes(4, "little") * 2)
        block = bytes(1 << 20)
        for _ in range(size_mb):
            out.write(block)
    cli = f"{shlex.quote(sys.executable)} -m tcpinc_analyze.cli analyze"
    path = shlex.quote(str(capture))
    from_file = _timed_shell(f"{cli} {path} --format jsonl")
    feeder = f"{shlex.quote(sys.executable)} -c {shlex.quote(PIPE_FEEDER)} {path}"
    from_pipe = _timed_shell(f"{feeder} | {cli} - --format jsonl")
    fifo = workdir / "record.fifo"
    os.mkfifo(fifo)
    from_fifo = _timed_shell(f"{feeder} > {shlex.quote(str(fifo))} & "
                             f"{cli} {shlex.quote(str(fifo))} --format jsonl; wait")
    fifo.unlink()
    print(f"one {size_mb} MB record: file {from_file:.2f} s, standard input (a pipe) "
          f"{from_pipe:.2f} s, a named pipe {from_fifo:.2f} s; worst pipe / file = "
          f"{max(from_pipe, from_fifo) / from_file:.2f}  [<= 3]")
    capture.unlink()
    return 0


def _cost_of(cmd: list[str]) -> tuple[float, float]:
    """CPU seconds (user + system) and peak RSS of one command: CPU time, unlike wall
    time, hardly moves when other work shares the machine, so the ratios hold."""
    wrapper = ("import resource, subprocess, sys\n"
               "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, "
               "stderr=subprocess.DEVNULL)\n"
               "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
               "print(r.ru_utime + r.ru_stime, r.ru_maxrss / 1024)\n")
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def _hostile_capture(workdir: Path, name: str) -> tuple[Path, list[str]]:
    """Write (once) the hostile capture ``kind-N``; returns it and extra CLI options."""
    from .synth import hostile

    path = workdir / f"{name}.pcap"
    kind, n_text = name.rsplit("-", 1)
    n = int(n_text)
    keys = workdir / f"{name}.keys"
    if not path.exists():
        if kind in ("holes", "reversed", "in-order"):
            order = kind
            hostile.write_pcap(path, hostile.reorder_frames(2 * n if kind == "holes" else n,
                                                            order))
        elif kind in ("fragments", "fragments-in-order"):
            frames = hostile.fragment_frames(n)
            if kind == "fragments-in-order":
                frames = hostile.fragment_frames(n, shuffle=False)
            hostile.write_pcap(path, frames)
        elif kind == "syn":
            hostile.write_pcap(path, hostile.syn_flood_frames(n))
        elif kind in ("junk", "junk-nokeys"):
            hostile.junk_after_gap(path, keys, n * 1000)
        else:
            raise ValueError(name)
    return path, (["--keylog", str(keys)] if kind == "junk" else [])


def hostile_main(workdir: Path, quick: bool) -> int:
    """Time every hostile case and print the ratios against their same-run baselines."""
    # -j 1: these cases measure one analyzer's costs (a capture of 64 MB or more would
    # otherwise be sharded, and two processes' memory and CPU mixed in; --parallel
    # measures the shards)
    cli = [sys.executable, "-m", "tcpinc_analyze.cli", "analyze", "--format", "jsonl",
           "--no-progress", "-j", "1"]
    scale = 10 if quick else 1
    reorder_n = 200_000 // scale
    names = [f"in-order-{reorder_n}", f"holes-{reorder_n // 2}", f"reversed-{reorder_n}",
             f"holes-{10_000 // scale}", f"holes-{40_000 // scale}",
             f"junk-nokeys-{100 // scale}", f"junk-{100 // scale}", f"junk-{400 // scale}",
             f"fragments-in-order-{20 // (2 if quick else 1)}",
             f"fragments-{20 // (2 if quick else 1)}",
             f"syn-{100_000 // scale}", f"syn-{1_000_000 // scale}"]
    results: dict[str, tuple[float, float]] = {}
    print(f"{'case':28s} {'CPU s':>9s} {'peak RSS MB':>12s}")
    for name in names:
        path, extra = _hostile_capture(workdir, name)
        results[name] = _cost_of([*cli, str(path), *extra])
        print(f"{name:28s} {results[name][0]:9.2f} {results[name][1]:12.1f}", flush=True)

    def t(name: str) -> float:
        return results[name][0]

    rows = [
        (f"holes-{reorder_n // 2} / in-order-{reorder_n}",
         t(f"holes-{reorder_n // 2}") / t(f"in-order-{reorder_n}"), "<= 3"),
        (f"reversed-{reorder_n} / in-order-{reorder_n}",
         t(f"reversed-{reorder_n}") / t(f"in-order-{reorder_n}"), "<= 3"),
        (f"per segment: {40 // scale}k holes / {10 // scale}k holes",
         t(f"holes-{40_000 // scale}") / t(f"holes-{10_000 // scale}") / 4, "<= 2"),
        ("junk with keys / without", t(f"junk-{100 // scale}") / t(f"junk-nokeys-{100 // scale}"),
         "<= 3"),
        (f"per byte: junk {400 // scale} KB / {100 // scale} KB",
         t(f"junk-{400 // scale}") / t(f"junk-{100 // scale}") / 4, "<= 2"),
        ("fragments shuffled / in order",
         t(f"fragments-{20 // (2 if quick else 1)}")
         / t(f"fragments-in-order-{20 // (2 if quick else 1)}"), "<= 2"),
        (f"per SYN: {1000 // scale}k / {100 // scale}k",
         t(f"syn-{1_000_000 // scale}") / t(f"syn-{100_000 // scale}") / 10, "<= 2"),
        (f"RSS: {1000 // scale}k SYNs / {100 // scale}k SYNs",
         results[f"syn-{1_000_000 // scale}"][1] / results[f"syn-{100_000 // scale}"][1],
         "<= 1.5"),
    ]
    print("\nratios (goals in brackets):")
    for label, value, goal in rows:
        print(f"  {label:40s} = {value:6.2f}  [{goal}]")
    worst = max(rss for _, rss in results.values())
    print(f"  {'peak RSS of any case':40s} = {worst:6.0f}  [< 200 MB]")
    if quick:
        print("  (--quick: the SYN cases stay below the flow table's bound, where memory "
              "still grows with the connections held; the RSS goal is judged by the full run)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the capture, time every contender, print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=500, help="capture size in MB (500)")
    parser.add_argument("--dir", help="where to put the capture (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the capture afterwards")
    parser.add_argument("--no-tshark", action="store_true", help="skip the tshark baseline")
    parser.add_argument("--keylog-lines", type=int, default=1_000_000, metavar="N",
                        help="lines of the long key log case (1,000,000; 0 skips it)")
    parser.add_argument("--pipe-record", type=int, metavar="MB",
                        help="only time one MB-megabyte record read from a pipe vs a file")
    parser.add_argument("--hostile", action="store_true",
                        help="run the hostile-capture cases (issue 10, items 23-26) instead")
    parser.add_argument("--quick", action="store_true",
                        help="with --hostile: a tenth of the sizes")
    parser.add_argument("--parallel", action="store_true",
                        help="the flow-shard cases instead: -j 1 vs -j 2..N, with and "
                        "without a key log, RSS of all processes, the reader's rate")
    parser.add_argument("--max-jobs", type=int, default=4,
                        help="with --parallel: the largest -j of the scaling curve (4)")
    args = parser.parse_args(argv)
    if args.parallel:
        from .scale.bench import parallel_bench

        return parallel_bench(args)
    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="tcpinc-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.hostile:
        try:
            return hostile_main(workdir, args.quick)
        finally:
            if not args.keep and not args.dir:
                shutil.rmtree(workdir)
    if args.pipe_record:
        try:
            return pipe_record(workdir, args.pipe_record)
        finally:
            if not args.dir:
                shutil.rmtree(workdir)
    capture = workdir / f"bench-{args.size}mb.pcap"
    keylog = workdir / f"bench-{args.size}mb.keys"
    if not capture.exists() or not keylog.exists():
        start = time.perf_counter()
        packets = make_capture(capture, keylog, args.size)
        print(f"synthesised {capture} ({capture.stat().st_size / 1e6:.0f} MB, {packets} "
              f"packets) in {time.perf_counter() - start:.1f} s")
    os.chmod(keylog, 0o600)
    cli = [sys.executable, "-m", "tcpinc_analyze.cli"]
    results: dict[str, tuple[float, float]] = {}
    results["dpkt loop"] = _rss_of([sys.executable, "-c", DPKT_LOOP, str(capture)])
    results["analyze"] = _rss_of([*cli, "analyze", str(capture), "--format", "jsonl",
                                  "--no-progress"])
    results["analyze --keylog"] = _rss_of([*cli, "analyze", str(capture), "--format", "jsonl",
                                           "--no-progress", "--keylog", str(keylog)])
    # A capture of 64 MB or more is sharded over the CPUs by default: the single-process
    # figures say what one core does (the goals were set for one process).
    results["analyze -j 1"] = _rss_of([*cli, "analyze", str(capture), "--format", "jsonl",
                                       "--no-progress", "-j", "1"])
    results["analyze -j 1 --keylog"] = _rss_of([*cli, "analyze", str(capture), "--format",
                                                "jsonl", "--no-progress", "-j", "1",
                                                "--keylog", str(keylog)])
    if shutil.which("tshark") and not args.no_tshark:
        results["tshark"] = _rss_of(["tshark", "-n", "-r", str(capture), "-T", "fields",
                                     "-e", "tcp.stream", "-e", "tcp.len"])
    size_mb = capture.stat().st_size / 1e6
    print(f"\ncapture: {size_mb:.0f} MB")
    print(f"{'contender':20s} {'seconds':>9s} {'MB/s':>8s} {'peak RSS MB':>12s}")
    for name, (secs, rss) in results.items():
        print(f"{name:20s} {secs:9.2f} {size_mb / secs:8.1f} {rss:12.1f}")
    dpkt_s = results["dpkt loop"][0]
    print("\nratios (higher is better; goals in brackets):")
    print(f"  dpkt loop / analyze          = {dpkt_s / results['analyze'][0]:.2f}  [>= 1.5]")
    print(f"  dpkt loop / analyze --keylog = {dpkt_s / results['analyze --keylog'][0]:.2f}"
          "  [>= 1.0]")
    print(f"  dpkt loop / analyze -j 1     = {dpkt_s / results['analyze -j 1'][0]:.2f}"
          "  [>= 1.5]")
    print(f"  dpkt loop / analyze -j 1 --keylog = "
          f"{dpkt_s / results['analyze -j 1 --keylog'][0]:.2f}  [>= 1.0]")
    print(f"  (analyze shards a capture of {AUTO_SHARD_BYTES >> 20} MB or more over "
          f"{default_jobs()} CPUs by default)")
    if "tshark" in results:
        print(f"  tshark / analyze             = "
              f"{results['tshark'][0] / results['analyze'][0]:.2f}  [>= 2.0]")
    worst_rss = max(rss for name, (_s, rss) in results.items() if name.startswith("analyze"))
    print(f"  peak RSS of analyze          = {worst_rss:.0f} MB  [< 200]")
    if args.keylog_lines:
        (small_s, small_rss), (big_s, big_rss) = keylog_case(workdir, args.keylog_lines)
        print(f"\nkey log of {args.keylog_lines} lines (verify of one chunk; the run exits 0 "
              "only if every connection still decrypts):")
        print(f"  own key log {small_s:.2f} s, {small_rss:.0f} MB; long key log {big_s:.2f} s, "
              f"{big_rss:.0f} MB")
        print(f"  peak RSS added by the long key log = {big_rss - small_rss:.0f} MB  [< 100]")
    if not args.keep and not args.dir:
        shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
