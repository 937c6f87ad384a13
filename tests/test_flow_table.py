"""The bounded connection table (analysis/engine.py, issue 10 item 26): a SYN flood
never holds more connections than the limit, every evicted connection's record is
emitted with a finding, an active connection outlives idle ones, the idle timeout
finalises silent connections, and the CLI options set the bounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcpinc_analyze.analysis.engine import Analyzer
from tcpinc_analyze.analysis.report import ConnectionReport
from tcpinc_analyze.capture.reader import Record
from tcpinc_analyze.cli import main
from tcpinc_analyze.limits import Limits
from tcpinc_analyze.synth.hostile import (
    A_IP,
    B_IP,
    ipv4_frame,
    syn_flood_frames,
    tcp_bytes,
    write_pcap,
)

SECOND = 1_000_000_000


def run(frames: list[tuple[int, bytes]], limits: Limits) -> tuple[Analyzer, list, list[int]]:
    """Feed (timestamp, frame) pairs; also record the table size after every packet."""
    reports: list[ConnectionReport] = []
    sizes: list[int] = []
    analyzer = Analyzer("test", reports.append, limits=limits)
    for n, (ts, data) in enumerate(frames, 1):
        analyzer.packet(Record(n, ts, 1, 0, data, len(data), 0))
        sizes.append(len(analyzer.live))
        assert len(analyzer.table) == 2 * len(analyzer.live)
    analyzer.finish()
    return analyzer, reports, sizes


def codes(report: ConnectionReport) -> list[tuple[str, int | None]]:
    return [(f.code, f.packet) for f in report.findings]


def test_syn_flood_keeps_the_table_at_its_limit() -> None:
    frames = [(SECOND + n, f) for n, f in enumerate(syn_flood_frames(3000))]
    analyzer, reports, sizes = run(frames, Limits(max_connections=500))
    assert max(sizes) == 500
    assert len(reports) == 3000 and sorted(r.id for r in reports) == list(range(3000))
    evicted = [r for r in reports if any(c == "connection-evicted" for c, _ in codes(r))]
    assert len(evicted) == 2500 and analyzer.summary.evicted == 2500
    # the oldest goes first: connection k is evicted by the SYN of connection k + 500
    assert [r.id for r in evicted] == list(range(2500))
    for r in evicted:
        assert ("connection-evicted", r.id + 500 + 1) in codes(r)
    full = [f for f in analyzer.summary.findings if f.code == "connection-table-full"]
    assert len(full) == 1 and full[0].packet == 501 and "500 connections" in full[0].message


def _talk(sport: int, n: int) -> bytes:
    return ipv4_frame(A_IP, B_IP, tcp_bytes(sport, 80, 100 + n, 1, 0x10))


def test_an_active_connection_outlives_idle_ones() -> None:
    frames = [(SECOND, ipv4_frame(A_IP, B_IP, tcp_bytes(999, 80, 99, 0, 0x02)))]
    for n, f in enumerate(syn_flood_frames(2000)):
        frames.append((SECOND + n, f))
        if n % 50 == 0:  # the busy connection sends now and then
            frames.append((SECOND + n, _talk(999, n)))
    _, reports, sizes = run(frames, Limits(max_connections=100))
    assert max(sizes) == 100
    busy = next(r for r in reports if r.id == 0)
    assert not any(c == "connection-evicted" for c, _ in codes(busy))
    assert busy.to_json()["packets"] == 1 + 40
    assert sum(any(c == "connection-evicted" for c, _ in codes(r)) for r in reports) == 1901


def test_idle_timeout_finalises_silent_connections() -> None:
    first = [(SECOND, ipv4_frame(A_IP, B_IP, tcp_bytes(999, 80, 99, 0, 0x02)))]
    later = [(SECOND * 20 + n, f) for n, f in enumerate(syn_flood_frames(4096))]
    order: list[int] = []
    reports: list[ConnectionReport] = []

    def take(report: ConnectionReport) -> None:
        order.append(report.id)
        reports.append(report)

    analyzer = Analyzer("test", take, limits=Limits(idle_timeout_s=5))
    for n, (ts, data) in enumerate(first + later, 1):
        analyzer.packet(Record(n, ts, 1, 0, data, len(data), 0))
    # the sweep after 4096 TCP packets found connection 0 silent for 19 s > 5 s
    assert order == [0] and 0 not in analyzer.live
    analyzer.finish()
    assert not any(f.code == "connection-evicted" for r in reports for f in r.findings)


@pytest.mark.parametrize("option", ["--max-connections", "--idle-timeout", "--resync-bytes",
                                    "--resync-tries"])
def test_limit_options_refuse_non_positive_values(option: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "x.pcap", option, "0"]) == 2  # usage error, with the usage
    assert f"argument {option}: must be positive, got 0" in capsys.readouterr().err


def test_max_connections_option_bounds_the_cli(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "flood.pcap"
    write_pcap(path, syn_flood_frames(300))
    assert main(["analyze", str(path), "--format", "jsonl", "--max-connections", "50"]) == 0
    out = capsys.readouterr()
    records = [json.loads(line) for line in out.out.splitlines()]
    assert len(records) == 300
    evicted = [r for r in records if any(f["code"] == "connection-evicted"
                                         for f in r["findings"])]
    assert len(evicted) == 250
    assert "connection-table-full" not in out.out  # capture findings go to stderr
    assert "more than 50 connections were open at once" in out.err


def test_community_id_agrees_with_the_reference_package() -> None:
    """The record's Community ID is computed in-line (speed); the communityid package
    is the oracle, over both address families and both tuple orders."""
    import ipaddress
    import random

    import communityid

    from tcpinc_analyze.analysis.report import community_id

    oracle = communityid.CommunityID()
    rng = random.Random(9)
    for _ in range(300):
        size = rng.choice((4, 16))
        a, b = rng.randbytes(size), rng.randbytes(size)
        if rng.random() < 0.2:
            b = a  # same host: the ports decide the order
        pa, pb = rng.randrange(65536), rng.randrange(65536)
        text_a, text_b = str(ipaddress.ip_address(a)), str(ipaddress.ip_address(b))
        want = oracle.calc(communityid.FlowTuple.make_tcp(text_a, text_b, pa, pb))
        assert community_id(a, pa, b, pb) == want == community_id(b, pb, a, pa)
