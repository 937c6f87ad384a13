"""``compare``: pairing the connections of two capture points and what the path did.

The synthetic pairs' expected comparisons are written by the generator from what it
did (which connection is which, what the middlebox changed), never by ``compare``; the
tests run the real command on the committed captures and hold it to them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tcpinc_analyze.analysis.compare import CAUSES, EVIDENCE, compare_files
from tcpinc_analyze.synth.pairs import PAIR_SCENARIOS, generate_pair

PAIRS = Path(__file__).resolve().parents[1] / "samples" / "pairs"
INDEX = json.loads((PAIRS / "pairs.json").read_text())["pairs"]
SYNTHETIC = [e for e in INDEX if e["origin"] == "synthetic"]
RECORD_KEYS = {"id", "in", "first", "second", "matched_by", "translated", "seq_shift",
               "option_changes", "resegmented", "payload_changed", "only_in_first",
               "only_in_second", "eno", "cause", "verdict"}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcpinc_analyze.cli", *args],
                          capture_output=True, text=True, timeout=300, check=False)


def compare_json(entry: dict, *extra: str, swap: bool = False) -> list[dict]:
    first, second = PAIRS / entry["first"], PAIRS / entry["second"]
    if swap:
        first, second = second, first
    proc = run("compare", str(first), str(second), "--keylog", str(PAIRS / entry["keylog"]),
               "--format", "json", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def by_first(records: list[dict]) -> dict[int, dict]:
    return {r["first"]["id"]: r for r in records if r["first"] is not None}


def changes(rec: dict) -> set[tuple]:
    return {(c["direction"], c["segment"], c["kind"], c["change"]) for c in rec["option_changes"]}


def check_record(got: dict, want: dict) -> None:
    """One product record against the generator's truth."""
    name = f"first #{want['first']['id']}"
    if want["in"] == "either":  # only scraps (no data, no SYN) reached SECOND
        assert got["second"] is None or got["second"]["id"] == want["second"]["id"], name
        return
    assert got["in"] == want["in"], name
    if want["in"] == "first":
        assert got["second"] is None, name
    else:
        assert got["second"]["id"] == want["second"]["id"], name
        assert got["second"]["a"] == want["second"]["a"], name
        assert got["second"]["b"] == want["second"]["b"], name
    assert got["first"]["a"] == want["first"]["a"] and got["first"]["b"] == want["first"]["b"]
    if want["cause"] is not None:
        assert got["cause"] == want["cause"], (name, got["verdict"])
    if want["eno"] is not None:
        assert got["eno"] == want["eno"], name
    if want["translated"] is not None:
        assert got["translated"] == want["translated"], name
    if want["seq_shift"] is not None:
        assert got["seq_shift"] == want["seq_shift"], name
    if want["resegmented"] is not None:
        assert got["resegmented"] == want["resegmented"], name
    if want["in"] == "both":
        assert {d: bool(got["payload_changed"][d]) for d in ("ab", "ba")} == \
            want["payload_changed"], name
    want_changes = {tuple(c) for c in want["option_changes"]}
    if want["option_changes_exact"]:
        assert changes(got) == want_changes, name
    else:
        assert changes(got) >= want_changes, name


@pytest.mark.parametrize("entry", SYNTHETIC, ids=[e["name"] for e in SYNTHETIC])
def test_synthetic_pair_regenerates_byte_identically(entry: dict) -> None:
    gen = generate_pair(PAIR_SCENARIOS[entry["name"]], entry["seed"])
    assert gen.first == (PAIRS / entry["first"]).read_bytes()
    assert gen.second == (PAIRS / entry["second"]).read_bytes()
    assert gen.keylog == (PAIRS / entry["keylog"]).read_text()
    assert gen.expected_json() == (PAIRS / entry["expected"]).read_text()


@pytest.mark.parametrize("entry", INDEX, ids=[e["name"] for e in INDEX])
def test_pair_compares_as_expected(entry: dict) -> None:
    expected = json.loads((PAIRS / entry["expected"]).read_text())
    records = compare_json(entry)
    got = by_first(records)
    for want in expected["connections"]:
        check_record(got[want["first"]["id"]], want)
    # nothing paired twice, every connection of both captures in exactly one record
    firsts = [r["first"]["id"] for r in records if r["first"]]
    seconds = [r["second"]["id"] for r in records if r["second"]]
    assert len(firsts) == len(set(firsts)) and len(seconds) == len(set(seconds))
    assert sorted(firsts) == list(range(len(firsts)))
    assert [r["id"] for r in records] == list(range(len(records)))
    for r in records:
        assert set(r) >= RECORD_KEYS
        assert r["cause"] in CAUSES and r["verdict"]
        assert all(n in EVIDENCE for n in r["matched_by"])
        assert r["in"] == "both" or not r["matched_by"]
        for c in r["option_changes"]:
            assert c["direction"] in ("ab", "ba") and c["segment"] in (
                "syn", "syn-ack", "ack", "data")
            assert c["change"] in ("removed", "added", "modified")
            whole = bytes.fromhex(c["first"] or c["second"])
            assert whole[0] == c["kind"] and whole[1] == len(whole)


def test_nat_with_200_connections_port_reuse_and_partial_overlap() -> None:
    entry = next(e for e in INDEX if e["name"] == "nat-many")
    expected = json.loads((PAIRS / entry["expected"]).read_text())["connections"]
    assert len(expected) == 200
    seconds = [w["second"]["b"] for w in expected if w["second"]]
    ports = [w["second"]["a"] for w in expected if w["second"]]
    assert len(set(ports)) < len(ports) / 4  # ports really are reused
    assert len({p.rsplit(":", 1)[0] for p in ports}) == 1 and len(set(seconds)) == 1
    records = compare_json(entry)
    assert sum(r["in"] == "first" for r in records) == sum(w["in"] == "first"
                                                            for w in expected) > 0
    paired = [r for r in records if r["in"] == "both"]
    assert all(r["translated"] == {"addresses": True, "ports": True} for r in paired)
    assert all({"tcp-timestamps", "isn", "payload"} <= set(r["matched_by"]) for r in paired
               if r["eno"]["second"] != "unknown")


def test_without_timestamps_and_with_shifted_sequence_numbers_payload_and_timing_decide(
        ) -> None:
    entry = next(e for e in INDEX if e["name"] == "nat-shift-no-timestamps")
    for r in compare_json(entry):
        assert r["in"] == "both"
        assert "tcp-timestamps" not in r["matched_by"] and "isn" not in r["matched_by"]
        assert "payload" in r["matched_by"]


def test_clock_offset_and_orientation_whichever_capture_comes_first() -> None:
    entry = next(e for e in INDEX if e["name"] == "strip-eno-synack")
    first = str(PAIRS / entry["first"])
    second = str(PAIRS / entry["second"])
    res = compare_files(first, second)
    assert res.summary()["clock_offset"] == pytest.approx(3.250417, abs=1e-5)
    assert res.near_a == "first"
    swapped = compare_files(second, first)
    assert swapped.summary()["clock_offset"] == pytest.approx(-3.250417, abs=1e-5)
    assert swapped.near_a == "second"
    # the change is along the packet's travel: removed, whichever capture is named first
    for r in swapped.records[:2]:
        assert changes(r) == {("ba", "syn-ack", 69, "removed")}
        assert r["cause"] == "path-stripped-eno"
        assert "B's SYN-ACK" in r["verdict"] and "A fell back" in r["verdict"]


def test_table_has_rows_and_the_studys_summary() -> None:
    entry = next(e for e in INDEX if e["name"] == "strip-eno-syn")
    proc = run("compare", str(PAIRS / entry["first"]), str(PAIRS / entry["second"]))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "path-stripped-eno" in out and "peer-without-eno" in out
    lines = {" ".join(line.replace("│", " ").split()) for line in out.splitlines()}
    assert "cause path-stripped-eno 2" in lines
    assert "cause peer-without-eno 1" in lines
    assert "option 69 (ENO) removed in syn 2" in lines
    assert "SECOND's clock is +3.250417 s from FIRST's" in out
    assert proc.stderr == ""


def test_details_show_both_vantage_points_side_by_side() -> None:
    entry = next(e for e in INDEX if e["name"] == "mss-clamp")
    proc = run("compare", str(PAIRS / entry["first"]), str(PAIRS / entry["second"]),
               "--details", "--keylog", str(PAIRS / entry["keylog"]))
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if "A>B S " in line]
    assert rows and all(line.count("A>B S ") == 2 for line in rows)  # FIRST | SECOND


def test_jsonl_is_one_record_per_line_and_same_as_json() -> None:
    entry = next(e for e in INDEX if e["name"] == "seq-shift")
    as_json = compare_json(entry)
    proc = run("compare", str(PAIRS / entry["first"]), str(PAIRS / entry["second"]),
               "--keylog", str(PAIRS / entry["keylog"]), "--format", "jsonl")
    assert [json.loads(line) for line in proc.stdout.splitlines()] == as_json


def test_unreadable_input_is_a_clear_message_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-capture.pcap"
    bad.write_bytes(b"hello, this is not a capture file at all")
    good = PAIRS / "nat.first.pcap"
    for args in ((str(bad), str(good)), (str(good), str(tmp_path / "missing.pcap")),
                 ("-", "-")):
        proc = run("compare", *args)
        assert proc.returncode == 2
        assert proc.stdout == ""
        assert "Traceback" not in proc.stderr and "error:" in proc.stderr


def test_a_capture_compared_with_itself_pairs_everything_unchanged() -> None:
    cap = str(PAIRS / "nat.first.pcap")
    res = compare_files(cap, cap)
    assert all(r["in"] == "both" and r["first"]["id"] == r["second"]["id"]
               for r in res.records)
    assert all(not r["option_changes"] and r["seq_shift"] == {"ab": 0, "ba": 0}
               and not r["translated"]["addresses"] for r in res.records)
    assert res.summary()["clock_offset"] == 0


def test_a_segment_lost_between_the_points_is_counted_and_payload_changes_located(
        tmp_path: Path) -> None:
    """Drop one B->A data segment from FIRST and flip bytes of another in SECOND."""
    from dataclasses import replace

    from tcpinc_analyze.synth import pairs

    sc = PAIR_SCENARIOS["nat"]
    gen = generate_pair(sc)
    conn = gen.conns[0]
    data = [k for k, p in enumerate(conn.first) if not p.from_a and len(p.seg.payload) > 100]
    lost = conn.first.pop(data[0])
    victim = next(k for k, p in enumerate(conn.second) if not p.from_a
                  and len(p.seg.payload) > 100 and p.seg.seq != lost.seg.seq)
    p = conn.second[victim]
    payload = bytearray(p.seg.payload)
    payload[10:14] = bytes(b ^ 0xFF for b in payload[10:14])
    conn.second[victim] = replace(p, seg=replace(p.seg, payload=bytes(payload)))
    first = [(q.ts_ns, c, q) for c, pc in enumerate(gen.conns) for q in pc.first]
    second = [(q.ts_ns + pairs.CLOCK_OFFSET_NS, c, q) for c, pc in enumerate(gen.conns)
              for q in pc.second]
    (tmp_path / "1.pcap").write_bytes(pairs._write(first)[0])
    (tmp_path / "2.pcap").write_bytes(pairs._write(second)[0])
    res = compare_files(str(tmp_path / "1.pcap"), str(tmp_path / "2.pcap"))
    rec = next(r for r in res.records if r["first"]["a"].startswith("10.9.0.1:"))
    assert rec["in"] == "both"
    assert rec["only_in_second"]["ba"] == 1 and rec["only_in_first"]["ba"] == 0
    isn_b = next(q.seg.seq for q in conn.first if not q.from_a and q.seg.flags & 0x02)
    offset = (p.seg.seq - isn_b - 1) % (1 << 32)
    assert rec["payload_changed"]["ba"] == [[offset + 10, 4]]
    assert rec["payload_changed"]["ab"] == []


def test_tui_compare_view_lists_records_and_shows_the_ladder_of_the_selected_one() -> None:
    import asyncio

    from textual.widgets import DataTable

    from tcpinc_analyze.tui.compare_view import CompareApp, load

    entry = next(e for e in INDEX if e["name"] == "strip-eno-syn")
    result = load(str(PAIRS / entry["first"]), str(PAIRS / entry["second"]), [])

    def text(app: CompareApp) -> str:
        from rich.console import Console

        console = Console(record=True, width=200, file=open(os.devnull, "w"))  # noqa: SIM115
        console.print(app.shown)
        return console.export_text()

    async def drive() -> tuple[int, str, str, str]:
        app = CompareApp(result)
        async with app.run_test(size=(200, 50)) as pilot:
            await pilot.pause()
            rows = app.query_one("#records", DataTable).row_count
            first = text(app)
            await pilot.press("j", "j")
            await pilot.pause()
            third = text(app)
            await pilot.press("s")
            await pilot.pause()
            summary = text(app)
        return rows, first, third, summary

    rows, first, third, summary = asyncio.run(drive())
    assert rows == 3
    assert "ENO was removed from A's SYN" in first
    assert "B lacks ENO" in third
    assert "cause path-stripped-eno" in summary and "cause peer-without-eno" in summary


def test_partial_overlap_says_which_point_missed_the_handshake() -> None:
    entry = next(e for e in INDEX if e["name"] == "partial-overlap")
    records = compare_json(entry)
    cut = [r for r in records if r["eno"]["second"] == "unknown"]
    assert cut and all("SECOND missed the handshake" in r["verdict"] for r in cut)
    assert all(r["cause"] == "not-negotiated" and not r["option_changes"] for r in cut)


def test_eno_modified_or_added_on_the_way_is_named_as_such(tmp_path: Path) -> None:
    """A's SYN rewritten in transit: its ENO option changed (a negotiated connection),
    or an ENO option added (a plain one)."""
    from dataclasses import replace

    from tcpinc_analyze.synth import pairs

    gen = generate_pair(PAIR_SCENARIOS["nat"])
    negotiated, plain = gen.conns[0], gen.conns[2]
    assert negotiated.expect["cause"] == "negotiated" and plain.expect["cause"] == \
        "not-negotiated"
    syn = negotiated.second[0]
    options = syn.seg.options
    eno_at = options.index(bytes.fromhex("450323"))
    changed = options[:eno_at] + bytes.fromhex("450324") + options[eno_at + 3:]
    negotiated.second[0] = replace(syn, seg=replace(syn.seg, options=changed))
    syn = plain.second[0]
    plain.second[0] = replace(syn, seg=replace(syn.seg, options=syn.seg.options + bytes.fromhex(
        "450323")))
    first = [(q.ts_ns, c, q) for c, pc in enumerate(gen.conns) for q in pc.first]
    second = [(q.ts_ns + pairs.CLOCK_OFFSET_NS, c, q) for c, pc in enumerate(gen.conns)
              for q in pc.second]
    (tmp_path / "1.pcap").write_bytes(pairs._write(first)[0])
    (tmp_path / "2.pcap").write_bytes(pairs._write(second)[0])
    res = compare_files(str(tmp_path / "1.pcap"), str(tmp_path / "2.pcap"))
    recs = {r["first"]["id"]: r for r in res.records}
    mod, add = recs[0], recs[2]
    assert mod["cause"] == "path-modified-eno"
    assert changes(mod) == {("ab", "syn", 69, "modified")}
    assert "modified in A's SYN" in mod["verdict"]
    assert add["cause"] == "path-added-eno"
    assert changes(add) == {("ab", "syn", 69, "added")}
    assert next(c for c in add["option_changes"])["second"] == "450323"
    summary = res.summary()
    assert summary["cause"]["path-modified-eno"] == 1 and summary["cause"]["path-added-eno"] == 1
