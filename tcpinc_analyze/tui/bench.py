"""``python -m tcpinc_analyze.tui.bench CAPTURE [--keylog K]``: time to first screen and to
a complete index / analysis, page-down latency while the analysis runs, and peak memory.
``first_screen_s`` is the whole layout's first paint; ``screen_settled_s`` is when the
screen has also handled every startup message, with the workers already running
(``max_rss_mb`` counts the capture's mapped pages; ``peak_rss_without_mapped_file_mb`` is
the process's own, sampled from RssAnon), measured headless with ``App.run_test()``.

Goals (issue 11): first screen under 1 s and page-down under 100 ms mean on a capture of
400 MB or more."""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time

from .app import TcpincApp
from .connections import ConnectionsTable
from .packets import PacketList


def rss_anon_mb() -> float | None:
    """Resident memory without file-backed pages (the capture's mmap is file-backed: its
    pages are the page cache's, not the process's), from /proc/self/status."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def _bench(capture: str, keylogs: list[str], timeout: float) -> dict:
    t0 = time.monotonic()
    app = TcpincApp(capture, keylogs)
    out: dict = {"capture": capture, "bytes": os.path.getsize(capture)}
    async with app.run_test(size=(160, 50)) as pilot:
        # pause(0): the screen has processed its pending messages. (A bare pause() waits
        # for the process's CPU to go idle, which the index and analysis workers never
        # let happen: it would time out after 1 s and measure that.)
        await pilot.pause(0)
        out["screen_settled_s"] = time.monotonic() - t0
        # the first paint of the whole layout (the app times its first compositor refresh)
        while app.first_screen_s is None:
            await pilot.pause(0.01)
        out["first_screen_s"] = (app.started - t0) + app.first_screen_s
        first_rows = None
        peak_anon = rss_anon_mb() or 0.0
        while time.monotonic() - t0 < timeout:
            await pilot.pause(0.05)
            peak_anon = max(peak_anon, rss_anon_mb() or 0.0)
            table = app.query_one(ConnectionsTable)
            if first_rows is None and table.rows:
                first_rows = time.monotonic() - t0
            if app.index is not None and app.index.done and "index_s" not in out:
                out["index_s"] = time.monotonic() - t0
                out["packets"] = app.index.count
                # responsiveness while the analysis runs: scroll the whole-capture list
                packets = app.query_one(PacketList)
                packets.focus()
                app.action_all_packets()
                lags = []
                for _ in range(20):
                    t = time.monotonic()
                    app.user_active()  # what a key press does first (App.on_event)
                    packets.action_page(1)
                    await asyncio.sleep(0.02)
                    lags.append(time.monotonic() - t - 0.02)
                out["page_down_latency_max_s"] = max(lags)
                out["page_down_latency_mean_s"] = sum(lags) / len(lags)
                out["rows_in_packet_list"] = packets.row_count
                app.action_all_packets()
            if app.analysis is not None and app.analysis.done and app.seen_reports == -1:
                out["analysis_s"] = time.monotonic() - t0
                break
        out["first_connection_row_s"] = first_rows
        out["connections"] = len(app.query_one(ConnectionsTable).rows)
        out["peak_rss_without_mapped_file_mb"] = max(peak_anon, rss_anon_mb() or 0.0)
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the timings."""
    parser = argparse.ArgumentParser(prog="python -m tcpinc_analyze.tui.bench")
    parser.add_argument("capture")
    parser.add_argument("--keylog", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    result = asyncio.run(_bench(args.capture, args.keylog, args.timeout))
    for key, value in result.items():
        if isinstance(value, float):
            print(f"{key:32} {value:10.3f}")
        else:
            print(f"{key:32} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
