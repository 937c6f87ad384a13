"""The terminal browser driven through Textual's pilot, plus snapshots of its screens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("textual")

from tcpinc_analyze.analysis.run import analyze_file  # noqa: E402
from tcpinc_analyze.tui.app import TcpincApp, add_subparser  # noqa: E402
from tcpinc_analyze.tui.connections import ConnectionsTable, verification  # noqa: E402
from tcpinc_analyze.tui.detail import DetailTree  # noqa: E402
from tcpinc_analyze.tui.filter import FilterError, compile_filter  # noqa: E402
from tcpinc_analyze.tui.findings import FindingsPanel  # noqa: E402
from tcpinc_analyze.tui.follow import FollowScreen, FollowView  # noqa: E402
from tcpinc_analyze.tui.hexview import HexView  # noqa: E402
from tcpinc_analyze.tui.index import CaptureIndex  # noqa: E402
from tcpinc_analyze.tui.keylog_picker import KeylogPicker  # noqa: E402
from tcpinc_analyze.tui.ladder import Ladder  # noqa: E402
from tcpinc_analyze.tui.packets import PacketList  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SIZE = (160, 50)


def sample(name: str) -> str:
    return str(SAMPLES / name)


async def settle(app: TcpincApp, pilot, *, detail: bool = True) -> None:
    """Wait until index, analysis and the selected connection's deep run are done."""
    for _ in range(200):
        await pilot.pause(0.05)
        ready = (app.index is not None and app.index.done and app.analysis is not None
                 and app.analysis.done and app.seen_reports == -1)
        # The detail tree's cursor highlights its node's bytes a message later.
        shown = app.current_detail is not None and bool(app.query_one(HexView).highlighted)
        if ready and (not detail or shown):
            await pilot.pause()
            return
    raise AssertionError("the app did not settle")


# ---------------------------------------------------------------------- units
def test_index_matches_reader_numbering():
    from tcpinc_analyze.capture.reader import Record, read_capture

    for name in ("pcapng-multi-interface.pcapng", "p521-aes256-traffic-keys.pcap",
                 "snaplen.pcap"):
        index = CaptureIndex(sample(name))
        index.build()
        with open(sample(name), "rb") as fh:
            records = [r for r in read_capture(fh, name) if isinstance(r, Record)]
        assert index.count == len(records)
        assert all(index.record(r.number) == r for r in records)
        index.close()


def test_filter_expressions_on_busy_mix():
    rows = [r.to_json() for r in analyze_file(sample("busy-mix.pcap")).reports]
    fallback = compile_filter("tcpeno.status == fallback")
    assert sum(map(fallback, rows)) == sum(r["eno"]["status"] == "fallback" for r in rows) > 0
    chacha = compile_filter("tcpcrypt.aead == 0x10")
    named = compile_filter("tcpcrypt.aead == AEAD_CHACHA20_POLY1305")
    expected = sum((r["tcpcrypt"] or {}).get("aead") == 0x10 for r in rows)
    assert sum(map(chacha, rows)) == sum(map(named, rows)) == expected > 0
    port = compile_filter("443")
    assert all("443" in (r["a"] + r["b"]) for r in rows if port(r))
    combo = compile_filter("(tcpeno.negotiated_tep == 0x23 or tcpeno.negotiated_tep == 0x24) "
                           "and not tcpcrypt.aead == 1")
    assert all(r["eno"]["negotiated_tep"] in (0x23, 0x24) for r in rows if combo(r))
    host = rows[0]["a"].rsplit(":", 1)[0]
    assert any(map(compile_filter(host), rows))
    assert compile_filter("") is None
    for bad in ("tcpeno.nosuch == 1", "tcpeno.status ==", "(tcpeno.status == fallback",
                "tcpeno.status == fallback and"):
        with pytest.raises(FilterError):
            compile_filter(bad)


def test_add_subparser():
    import argparse

    parser = argparse.ArgumentParser()
    add_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["tui", "x.pcap", "--keylog", "a.keys", "--keylog", "b.keys"])
    assert args.capture == "x.pcap" and args.keylog == ["a.keys", "b.keys"]
    assert callable(args.func)


# ---------------------------------------------------------------------- pilot
@pytest.mark.asyncio
async def test_open_select_detail_hex_ladder_follow_export(tmp_path):
    app = TcpincApp(sample("x25519-chacha20.pcap"), [sample("x25519-chacha20.keys")],
                    export_dir=str(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = app.query_one(ConnectionsTable)
        assert len(table.rows) == 1
        conn = table.current()
        assert conn["eno"]["status"] == "negotiated" and verification(conn)[0] == "verified"
        # packet list: move to packet 4 (Init1) with vim keys
        packets = app.query_one(PacketList)
        assert packets.row_count == 34
        packets.focus()
        await pilot.press("j", "j", "j")
        assert packets.current() == 4
        tree = app.query_one(DetailTree)
        labels = [str(n.label) for n in tree.root.children]
        assert any(label.startswith("tcpcrypt (A->B)") for label in labels)
        # the tree cursor on a field highlights exactly its bytes
        hexview = app.query_one(HexView)
        target = None
        stack = list(tree.root.children)
        while stack:
            node = stack.pop()
            if str(node.label).startswith("Magic"):
                target = node
            stack.extend(node.children)
        assert target is not None
        tree.select_node(target)
        tree.move_cursor(target)
        await pilot.pause()
        assert hexview.highlighted == bytes.fromhex("15101a0e")
        # ladder: handshake, Init messages, first frames, FINs
        events = [label for _p, _d, label in app.query_one(Ladder).events]
        assert events[0].startswith("SYN ENO") and events[1].startswith("SYN-ACK ENO")
        assert any(e.startswith("Init1") for e in events)
        assert any(e.startswith("Init2") for e in events)
        assert sum(e.startswith("first frame") for e in events) == 2
        assert events.count("FIN") == 2
        # follow stream
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, FollowScreen)
        view = app.screen.query_one(FollowView)
        texts = [t for _s, t in view.lines]
        assert texts[0] == "GET /index.txt HTTP/1.1"
        assert any(t.startswith("HTTP/1.1 200 OK") for t in texts)
        await pilot.press("h")
        assert view.hexdump and view.lines[0][1].startswith("── packet")
        # export plaintext from the follow view
        await pilot.press("e")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        plain = Path(app.last_export)
        assert plain.read_bytes().startswith(b"GET /index.txt")
        assert len(plain.read_bytes()) == 69 + 20068
        await pilot.press("escape")
        assert not isinstance(app.screen, FollowScreen)
        # export JSON with a typed file name
        await pilot.press("x")
        await pilot.pause()
        field = app.screen.query_one("#export-path")
        field.value = str(tmp_path / "c0.json")
        await pilot.press("enter")
        await pilot.pause()
        data = json.loads((tmp_path / "c0.json").read_text())
        assert data["id"] == 0 and data["tcpcrypt"]["aead"] == 0x10
        assert data["frame_list"][0]["tcpcrypt.frame.verified"] is True


@pytest.mark.asyncio
async def test_filter_box_sort_and_maximise():
    app = TcpincApp(sample("busy-mix.pcap"), [])
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, detail=False)
        table = app.query_one(ConnectionsTable)
        total = len(table.rows)
        assert total == 60
        await pilot.press("slash")
        filt = app.query_one("#filter")
        assert app.focused is filt
        await pilot.press(*"tcpeno.status == fallback")
        await pilot.pause()
        assert filt.has_class("-valid")
        assert 0 < len(table.view) < total
        assert all(table.rows[i]["eno"]["status"] == "fallback" for i in table.view)
        await pilot.press("space", "a", "n", "d")  # incomplete: invalid, last filter kept
        await pilot.pause()
        assert filt.has_class("-invalid")
        kept = len(table.view)
        assert 0 < kept < total
        await pilot.press("enter")
        assert app.focused is table
        filt.value = ""
        await pilot.pause()
        assert len(table.view) == total
        # sort by the findings column (click on its title), then reverse
        table.sort_by(9)
        counts = [len(table.rows[i]["findings"]) for i in table.view]
        assert counts == sorted(counts)
        table.sort_by(9)
        counts = [len(table.rows[i]["findings"]) for i in table.view]
        assert counts == sorted(counts, reverse=True)
        # maximise the focused pane and restore it
        table.focus()
        await pilot.press("backslash")
        assert app.screen.maximized is table
        await pilot.press("backslash")
        assert app.screen.maximized is None
        await pilot.press("question_mark")
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")


@pytest.mark.asyncio
async def test_load_keylog_updates_in_place():
    app = TcpincApp(sample("x25519-chacha20.pcap"), [])
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = app.query_one(ConnectionsTable)
        assert verification(table.current())[0] == "no keys"
        await pilot.press("f")
        await pilot.pause()
        assert app.screen.query_one(FollowView).lines == []
        await pilot.press("escape")
        await pilot.press("o")
        await pilot.pause()
        assert isinstance(app.screen, KeylogPicker)
        path_box = app.screen.query_one("#keylog-path")
        path_box.focus()
        path_box.value = sample("x25519-chacha20.keys")
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, KeylogPicker)
        for _ in range(100):
            await pilot.pause(0.05)
            detail = app.current_detail
            if (verification(table.current())[0] == "verified" and detail is not None
                    and detail.chunks):
                break
        await settle(app, pilot)
        assert len(table.rows) == 1
        conn = table.current()
        assert verification(conn)[0] == "verified"
        assert conn["tcpcrypt"]["keys_from"] == "session_secret"
        assert conn["tcpcrypt"]["session_id"]
        await pilot.press("f")
        await pilot.pause()
        assert app.screen.query_one(FollowView).lines[0][1] == "GET /index.txt HTTP/1.1"


@pytest.mark.asyncio
async def test_wrong_key_marks_failed_frames():
    app = TcpincApp(sample("wrong-key.pcap"), [sample("wrong-key.keys")])
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert verification(app.query_one(ConnectionsTable).current())[0] == "FAILED"
        await pilot.press("f")
        await pilot.pause()
        chunks = app.screen.detail.chunks
        assert chunks and all(c.failed for c in chunks)


@pytest.mark.asyncio
async def test_findings_jump_to_packet():
    app = TcpincApp(sample("retransmission-reorder.pcap"),
                    [sample("retransmission-reorder.keys")])
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        panel = app.query_one(FindingsPanel)
        at, ref = next((i, r) for i, r in enumerate(panel.refs)
                       if r.packet and r.packet > 3 and r.conn_id is not None)
        assert ref.code
        panel.focus()
        panel.highlighted = at
        await pilot.press("enter")
        await pilot.pause()
        packets = app.query_one(PacketList)
        assert packets.current() == ref.packet
        assert app.focused is packets
        assert app.query_one(DetailTree).dissection.record.number == ref.packet


# ---------------------------------------------------------------------- snapshots
async def _ready(pilot) -> None:
    await settle(pilot.app, pilot)


def test_snapshot_main_negotiated(snap_compare):
    app = TcpincApp(sample("x25519-chacha20.pcap"), [sample("x25519-chacha20.keys")])
    assert snap_compare(app, terminal_size=SIZE, run_before=_ready)


def test_snapshot_main_fallback_reasons(snap_compare):
    app = TcpincApp(sample("fallback-reasons.pcap"), [sample("fallback-reasons.keys")])
    assert snap_compare(app, terminal_size=SIZE, run_before=_ready)


def test_snapshot_follow(snap_compare):
    async def follow(pilot) -> None:
        await settle(pilot.app, pilot)
        await pilot.press("f")
        await pilot.pause()

    app = TcpincApp(sample("rekey-both-directions.pcap"),
                    [sample("rekey-both-directions.keys")])
    assert snap_compare(app, terminal_size=SIZE, run_before=follow)
