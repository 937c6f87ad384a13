"""Command-line options of the scale features, registered on the subcommands by cli.py
(kept here so cli.py carries one call per parser)."""

from __future__ import annotations

import argparse


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of processes, got {text!r}") \
            from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 process, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration, got {text}")
    return value


def add_scale_options(p: argparse.ArgumentParser) -> None:
    """-j and --dask, on every capture-reading command."""
    p.add_argument("-j", "--jobs", type=_jobs, default=None, metavar="N",
                   help="processes: several captures run N at a time; one capture is split "
                   "by flow over N workers, with the same output as one process (default: "
                   "the number of cores; a single capture under 64 MB is read by one "
                   "process unless -j is given)")
    p.add_argument("--dask", metavar="SCHEDULER",
                   help="run on a Dask cluster (tcp://host:8786), or local:N for a local "
                   "cluster of N workers; one task per capture, or per flow shard of a "
                   "single capture (-j shards); captures must be reachable by every worker "
                   "(shared path or fsspec URL). Needs the [dask] extra")


def add_live_options(p: argparse.ArgumentParser) -> None:
    """Live capture and the Parquet output file, on analyze."""
    p.add_argument("-o", "--output", metavar="FILE",
                   help="with --format parquet: the Parquet file to write")
    p.add_argument("-i", "--interface", metavar="IFACE",
                   help="capture live from IFACE with dumpcap (as tshark -i); JSON Lines "
                   "stream as connections finish; Ctrl-C stops and prints the summary")
    p.add_argument("-f", "--capture-filter", metavar="BPF",
                   help="with -i: capture filter (BPF syntax, as tcpdump and dumpcap)")
    p.add_argument("--duration", type=_seconds, metavar="S",
                   help="with -i: stop after S seconds")
    p.add_argument("--write", metavar="FILE",
                   help="with -i: keep the capture as pcapng (with the key log embedded in a "
                   "Decryption Secrets Block when --keylog is given)")


def add_follow_options(p: argparse.ArgumentParser) -> None:
    """tui: a capture still being written, or a live interface."""
    p.add_argument("--follow", action="store_true",
                   help="the capture is still being written: keep reading as it grows "
                   "(like tail -f); the lists grow as connections appear")
    p.add_argument("-i", "--interface", metavar="IFACE",
                   help="capture live from IFACE with dumpcap and browse it as it grows")
    p.add_argument("-f", "--capture-filter", metavar="BPF",
                   help="with -i: capture filter (BPF syntax)")
    p.add_argument("--write", metavar="FILE",
                   help="with -i: keep the capture (pcapng) when the browser closes")
