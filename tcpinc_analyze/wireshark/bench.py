"""What the Lua dissector costs inside tshark: ``python -m tcpinc_analyze.wireshark.bench``.

Builds (or reuses) the speed benchmark's synthetic mixed capture and its key log
(``tcpinc_analyze.bench.make_capture``), then runs tshark over it without the plugin and
with it (no key log, key log, two passes with a key log), each in a fresh process, and
prints CPU time (user + system) and peak RSS with the ratios to plain tshark measured in
the same run. CPU time rather than wall time, so a busy machine disturbs it less.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..bench import make_capture
from .install import find_tshark, plugin_source

_WRAPPER = ("import resource, subprocess, sys\n"
            "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, "
            "stderr=subprocess.DEVNULL)\n"
            "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "print(u.ru_utime + u.ru_stime, u.ru_maxrss / 1024)\n")


def measure(cmd: list[str]) -> tuple[float, float]:
    """CPU seconds and peak RSS (MB) of one command, from a fresh wrapper process."""
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def runs(tshark: str, capture: Path, keylog: Path, lua: Path) -> list[tuple[str, list[str]]]:
    """The labelled tshark command lines, plain ones first."""
    base = [tshark, "-n", "-r", str(capture)]
    plugin = ["-X", f"lua_script:{lua}"]
    keys = ["-o", f"tcpcrypt.keylog_file:{keylog}"]
    empty = ["-o", "tcpcrypt.keylog_file:"]
    two = ["-2", "-Y", "frame"]
    return [
        ("tshark", base),
        ("tshark + plugin, no key log", [*base, *plugin, *empty]),
        ("tshark + plugin, key log", [*base, *plugin, *keys]),
        ("tshark -2 -Y frame", [*base, *two]),
        ("tshark -2 -Y frame + plugin, key log", [*base, *two, *plugin, *keys]),
    ]


def main(argv: list[str] | None = None) -> int:
    """Build or reuse the capture, time each run, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100, help="capture size in MB (100)")
    parser.add_argument("--dir", help="where to put the capture (default: a temp dir)")
    parser.add_argument("--lua", help="the dissector to measure (default: this checkout's)")
    args = parser.parse_args(argv)
    tshark = find_tshark()
    if tshark is None:
        print("tshark is not installed", file=sys.stderr)
        return 2
    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="tcpinc-luabench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    capture = workdir / f"bench-{args.size}mb.pcap"
    keylog = workdir / f"bench-{args.size}mb.keys"
    if not capture.exists() or not keylog.exists():
        start = time.perf_counter()
        packets = make_capture(capture, keylog, args.size)
        print(f"synthesised {capture} ({capture.stat().st_size / 1e6:.0f} MB, {packets} "
              f"packets) in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    os.chmod(keylog, 0o600)
    lua = Path(args.lua) if args.lua else plugin_source()
    results = {}
    for label, cmd in runs(tshark, capture, keylog, lua):
        results[label] = measure(cmd)
        cpu, rss = results[label]
        plain = results["tshark -2 -Y frame" if "-2" in cmd else "tshark"]
        print(f"{label:40s} {cpu:8.1f} s CPU ({cpu / plain[0]:5.1f}x)  "
              f"{rss:7.0f} MB peak RSS ({rss / plain[1]:4.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
