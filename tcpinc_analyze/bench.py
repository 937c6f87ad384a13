"""Benchmark: analyze a large synthetic mixed capture and compare, in the same run, with a
bare dpkt parsing loop and with tshark over the same file.

Machines here are noisy, so the goals are ratios against baselines measured in the same
run, never absolute times (and never in a unit test):

- ``analyze`` at least 1.5x as fast as the bare dpkt loop, at least 2x as fast as tshark;
- ``analyze --keylog`` (decrypting every frame) at least as fast as the dpkt loop;
- peak RSS under 200 MB, whatever the capture size (try ``--size 2048``).

Usage: ``python -m tcpinc_analyze.bench [--size MB] [--dir DIR] [--keep]``
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


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the capture, time every contender, print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=500, help="capture size in MB (500)")
    parser.add_argument("--dir", help="where to put the capture (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the capture afterwards")
    parser.add_argument("--no-tshark", action="store_true", help="skip the tshark baseline")
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
    if "tshark" in results:
        print(f"  tshark / analyze             = "
              f"{results['tshark'][0] / results['analyze'][0]:.2f}  [>= 2.0]")
    worst_rss = max(results["analyze"][1], results["analyze --keylog"][1])
    print(f"  peak RSS of analyze          = {worst_rss:.0f} MB  [< 200]")
    if not args.keep and not args.dir:
        shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
