"""Parallel benchmark cases: ``python -m tcpinc_analyze.bench --parallel [--size MB]``.

In one run, on the same capture (>= 400 MB by default; every connection between its own
pair of hosts, as on a busy link, so flow shards can balance):

- ``analyze -j 1`` and ``-j 2`` (and up to ``--max-jobs``), with and without a key log:
  seconds, MB/s, speed-up over ``-j 1``, and the peak RSS of *all* the processes
  together (sampled from /proc every 50 ms: the main process and its workers);
- the reader alone (read, route, pack; nothing analysed): the rate at which flow
  sharding saturates however many cores there are;
- the same ``-j 2`` run on a capture a quarter the size: peak RSS must stay flat;
- a prediction for 16 cores from the measured per-worker rate and the reader's rate.

Goals (issue 13): ``-j 2`` at least 1.6x ``-j 1`` with and without a key log on a
2-core machine; peak RSS flat with capture size. The machine's load average is printed
before and after: numbers taken while other work runs are noisy, rerun on a quiet
machine for the record.
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

from ..synth.capture_writer import PcapWriter
from ..synth.sample import Scenario, generate
from ..synth.scenarios import BASE_NS, SECOND, pair, plain_plan, tcpcrypt_plan
from ..wire import (
    AEAD_AES_128_GCM,
    AEAD_AES_256_GCM,
    AEAD_CHACHA20_POLY1305,
    TEP_P256,
    TEP_X25519,
    EnoStatus,
    FallbackReason,
)

SAMPLE_S = 0.05


def _chunk(index: int) -> Scenario:
    """Twenty connections, each between its own two hosts, mostly tcpcrypt."""

    def plans(rng: random.Random) -> list:
        out = []
        for n in range(20):
            start = BASE_NS + index * 20 * SECOND + n * SECOND
            a_ip = f"10.{index % 250}.{n}.1"
            b_ip = f"10.{200 + index % 50}.{(index // 50) % 250}.{n + 2}"
            if rng.random() < 0.8:
                tep = TEP_X25519 if rng.random() < 0.8 else TEP_P256
                aead = rng.choice((AEAD_AES_128_GCM, AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305))
                out.append(tcpcrypt_plan(rng, tep, aead, start_ns=start,
                                         size=rng.randrange(20_000, 120_000),
                                         a_ip=a_ip, b_ip=b_ip,
                                         frame_data_max=rng.choice((1400, 4000, 16000)),
                                         rekey_ba=(3,) if rng.random() < 0.3 else ()))
            else:
                plan = plain_plan(rng, start_ns=start, reason=FallbackReason.ABSENT,
                                  status=EnoStatus.ABSENT, size=rng.randrange(2000, 60_000))
                plan.a, plan.b = pair(rng, a_ip, b_ip)
                out.append(plan)
        return out

    return Scenario(f"parallel-bench-{index}", "parallel benchmark chunk", plans,
                    seed=5000 + index)


def make_capture(path: Path, keylog: Path, size_mb: int) -> int:
    """A pcap of at least ``size_mb`` MB and its key log; returns packets written."""
    target = size_mb * 1024 * 1024
    written, packets, index = 24, 0, 0
    with open(path, "wb") as out, open(keylog, "w") as keys:
        PcapWriter(out, 1)
        while written < target:
            sample = generate(_chunk(index))
            out.write(sample.capture[24:])
            written += len(sample.capture) - 24
            packets += sample.expected["capture"]["packets"]
            keys.write(sample.keylog)
            index += 1
    os.chmod(keylog, 0o600)
    return packets


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants (kB)."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return total


def measure(cmd: list[str]) -> tuple[float, float, float]:
    """Seconds, peak summed RSS (MB) and CPU seconds (user + system) of a command and
    every process it starts (workers are waited for, so their CPU time is counted)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, _tree_rss_kb(proc.pid))
        time.sleep(SAMPLE_S)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return seconds, peak / 1024, usage.ru_utime + usage.ru_stime


def parallel_bench(args: argparse.Namespace) -> int:
    """Run every parallel case on one capture and print the table and the goals."""
    from .shard import reader_rate

    size = max(args.size, 1)
    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="tcpinc-pbench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    capture, keylog = workdir / f"parallel-{size}mb.pcap", workdir / f"parallel-{size}mb.keys"
    small, small_keys = (workdir / f"parallel-{max(size // 4, 1)}mb.pcap",
                         workdir / f"parallel-{max(size // 4, 1)}mb.keys")
    for path, keys, mb in ((capture, keylog, size), (small, small_keys, max(size // 4, 1))):
        if not path.exists() or not keys.exists():
            t = time.perf_counter()
            packets = make_capture(path, keys, mb)
            print(f"synthesised {path} ({path.stat().st_size / 1e6:.0f} MB, {packets} "
                  f"packets) in {time.perf_counter() - t:.1f} s", flush=True)
    load_before = os.getloadavg()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cli = [sys.executable, "-m", "tcpinc_analyze.cli", "analyze", "--format", "jsonl",
           "--no-progress"]
    size_mb = capture.stat().st_size / 1e6
    rows: list[tuple[str, int, bool, float, float, float]] = []
    jobs_list = list(range(1, max(args.max_jobs, 2) + 1))
    for keys in (False, True):
        for jobs in jobs_list if not keys else [1, 2]:
            cmd = [*cli, str(capture), "-j", str(jobs)]
            if keys:
                cmd += ["--keylog", str(keylog)]
            secs, rss, cpu = measure(cmd)
            rows.append(("analyze" + (" --keylog" if keys else ""), jobs, keys, secs, rss,
                         cpu))
            print(f"  {rows[-1][0]:18s} -j {jobs}: {secs:7.2f} s  {rss:7.1f} MB  "
                  f"cpu {cpu:7.2f} s", flush=True)
    small_secs, small_rss, _cpu = measure([*cli, str(small), "-j", "2"])
    records, read_s = reader_rate(str(capture), 2)
    load_after = os.getloadavg()

    print(f"\ncapture: {size_mb:.0f} MB, {records} packets; {cores} cores; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"{'case':20s} {'-j':>3s} {'seconds':>9s} {'MB/s':>8s} {'speed-up':>9s} "
          f"{'CPU s':>8s} {'peak RSS MB (all processes)':>28s}")
    base = {k: s for name, j, k, s, _r, _c in rows if j == 1}
    base_cpu = {k: c for name, j, k, _s, _r, c in rows if j == 1}
    for name, jobs, keys, secs, rss, cpu in rows:
        print(f"{name:20s} {jobs:3d} {secs:9.2f} {size_mb / secs:8.1f} "
              f"{base[keys] / secs:9.2f} {cpu:8.2f} {rss:28.1f}")
    reader_mb_s = size_mb / read_s
    print(f"{'reader alone (CPU)':20s} {'':3s} {read_s:9.2f} {reader_mb_s:8.1f}")
    print(f"{'analyze -j 2 (1/4)':20s} {2:3d} {small_secs:9.2f} "
          f"{small.stat().st_size / 1e6 / small_secs:8.1f} {'':9s} {small_rss:28.1f}")

    def speedup(keys: bool) -> float:
        two = next(s for _n, j, k, s, _r, _c in rows if j == 2 and k == keys)
        return base[keys] / two

    def cpu_bound(keys: bool) -> float:
        """What -j 2 gives on two idle cores when the work divides evenly: the CPU
        time of -j 1 over half the CPU time of -j 2 (all its processes), unless the
        reader alone is slower."""
        two = next(c for _n, j, k, _s, _r, c in rows if j == 2 and k == keys)
        return min(base_cpu[keys] / (two / 2), base_cpu[keys] / read_s)

    big_rss = next(r for _n, j, k, _s, r, _c in rows if j == 2 and not k)
    print("\ngoals (issue 13):")
    for keys in (False, True):
        print(f"  -j 2 / -j 1{' --keylog' if keys else '         '} = {speedup(keys):.2f} "
              f"wall clock, {cpu_bound(keys):.2f} from CPU time  [>= 1.6 on 2 cores]")
    print(f"  peak RSS -j 2: {big_rss:.0f} MB at {size_mb:.0f} MB, {small_rss:.0f} MB at "
          f"{small.stat().st_size / 1e6:.0f} MB  [flat]")
    per_worker = size_mb / base_cpu[False]  # MB per CPU second of one process
    efficiency = cpu_bound(False) / 2
    predicted = min(reader_mb_s, 16 * per_worker * efficiency)
    bound = "the reader" if predicted == reader_mb_s else "the workers"
    print(f"  scaling (per CPU second): one process {per_worker:.1f} MB, the reader alone "
          f"{reader_mb_s:.1f} MB, so flow sharding saturates at about "
          f"{reader_mb_s / per_worker:.1f} workers")
    print(f"  16 cores: about {predicted:.0f} MB/s ({predicted / per_worker:.1f}x one "
          f"process), bound by {bound} (per-worker efficiency {efficiency:.2f} as measured "
          "here)")
    if not args.keep and not args.dir:
        shutil.rmtree(workdir)
    return 0
