"""``tui --follow``: the browser over a capture that is still being written grows like
``tail -f`` (connections and packets appear as the file grows), and ends with what
the whole file holds."""

from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path

import pytest

pytest.importorskip("textual")

from tcpinc_analyze.analysis.run import analyze_file  # noqa: E402
from tcpinc_analyze.capture.reader import Record, read_capture  # noqa: E402
from tcpinc_analyze.scale.follow import Follow  # noqa: E402
from tcpinc_analyze.tui.app import TcpincApp  # noqa: E402
from tcpinc_analyze.tui.connections import ConnectionsTable  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def pcap_records(path: Path, now_ns: int) -> list[bytes]:
    """The sample's records, shifted so the capture ends about now (as if live)."""
    with open(path, "rb") as f:
        recs = [r for r in read_capture(f, str(path)) if isinstance(r, Record)]
    shift = now_ns - recs[-1].ts_ns - 1_000_000_000
    out = []
    for r in recs:
        ts = r.ts_ns + shift
        out.append(struct.pack("<IIII", ts // 1_000_000_000, ts % 1_000_000_000 // 1000,
                               len(r.data), r.orig_len) + r.data)
    return out


async def wait_for(pilot, check, seconds: float = 30.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        await pilot.pause(0.2)
    raise AssertionError("timed out waiting for the browser")


@pytest.mark.asyncio
async def test_follow_grows_like_tail_f(tmp_path: Path) -> None:
    source = SAMPLES / "busy-mix.pcap"
    records = pcap_records(source, time.time_ns())
    whole = analyze_file(str(source)).reports
    # the first part ends after the 20th connection's last packet
    cut = sorted(r.last_packet for r in whole)[19]
    path = tmp_path / "growing.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
                     + b"".join(records[:cut]))
    follow = Follow(str(path))
    app = TcpincApp(str(path), [], follow=follow)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            table = app.query_one(ConnectionsTable)
            await wait_for(pilot, lambda: app.index is not None and app.index.count == cut)
            # connections that closed in the first part show while the file waits
            await wait_for(pilot, lambda: len(table.rows) >= 15)
            first_rows = len(table.rows)
            assert first_rows < len(whole)
            with open(path, "ab") as f:
                for i in range(cut, len(records), 50):
                    f.write(b"".join(records[i:i + 50]))
                    f.flush()
                    await asyncio.sleep(0.05)
            await wait_for(pilot, lambda: app.index.count == len(records))
            await wait_for(pilot, lambda: len(table.rows) >= len(whole) - 2)
            assert len(table.rows) > first_rows
            shown = {(r["a"], r["b"]) for r in table.rows}
            assert shown <= {(r.a, r.b) for r in whole}
    finally:
        follow.close()
