"""The terminal browser driven through Textual's pilot, plus snapshots of its screens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("textual")

from tcpinc_analyze.analysis.run import analyze_file  # noqa: E402
from tcpinc_analyze.filtering import CONNECTION_FIELDS as FILTER_FIELDS  # noqa: E402
from tcpinc_analyze.filtering import FilterError, compile_filter  # noqa: E402
from tcpinc_analyze.tui.app import TcpincApp, add_subparser  # noqa: E402
from tcpinc_analyze.tui.conformance import (  # noqa: E402
    ConformanceList,
    ConformanceScreen,
    rule_plain,
)
from tcpinc_analyze.tui.connections import ConnectionsTable, verification  # noqa: E402
from tcpinc_analyze.tui.detail import DetailTree  # noqa: E402
from tcpinc_analyze.tui.fields import known  # noqa: E402
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


def label(node) -> str:
    """A tree node's field text (without the dim abbreviation the tree appends)."""
    return node.data.label


def tree_nodes(tree: DetailTree, abbrev: str) -> list:
    """The detail tree's nodes for a spec field, in tree order."""
    found = []
    stack = list(reversed(tree.root.children))
    while stack:
        node = stack.pop()
        if node.data is not None and node.data.abbrev == abbrev:
            found.append(node)
        stack.extend(reversed(node.children))
    return found


async def show_packet(app: TcpincApp, pilot, number: int) -> DetailTree:
    """Put the packet list's cursor on a packet and return the detail tree."""
    packets = app.query_one(PacketList)
    assert packets.select_packet(number)
    await pilot.pause()
    tree = app.query_one(DetailTree)
    assert tree.dissection.record.number == number
    return tree


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
    chacha = compile_filter("tcpcrypt.aead == 0x0010")
    named = compile_filter("tcpcrypt.aead == AEAD_CHACHA20_POLY1305")
    expected = sum((r["tcpcrypt"] or {}).get("aead") == 0x0010 for r in rows)
    assert sum(map(chacha, rows)) == sum(map(named, rows)) == expected > 0
    # the global suboption's b bit (either SYN), the dialect, Init1's two-byte ciphers
    b_set = compile_filter("tcpeno.global.b == 1")
    assert sum(map(b_set, rows)) == sum(
        any(s.get("tcpeno.global.b") == 1 for side in ("syn_a", "syn_b")
            for s in (r["eno"][side] or {}).get("suboptions", [])) for r in rows) > 0
    rfc = compile_filter("tcpcrypt.dialect == rfc8548")
    assert sum(map(rfc, rows)) == sum((r["tcpcrypt"] or {}).get("dialect") == "rfc8548"
                                      for r in rows) > 0
    offered = compile_filter("tcpcrypt.init1.sym_cipher == AEAD_AES_128_GCM")
    assert all(0x0001 in r["tcpcrypt"]["init1"]["sym_ciphers"] for r in rows if offered(r))
    port = compile_filter("443")
    assert all("443" in (r["a"] + r["b"]) for r in rows if port(r))
    combo = compile_filter("(tcpeno.negotiated_tep == 0x23 or tcpeno.negotiated_tep == 0x24) "
                           "and not tcpcrypt.aead == 1")
    assert all(r["eno"]["negotiated_tep"] in (0x23, 0x24) for r in rows if combo(r))
    host = rows[0]["a"].rsplit(":", 1)[0]
    assert any(map(compile_filter(host), rows))
    assert compile_filter("") is None
    for bad in ("tcpeno.nosuch == 1", "tcpeno.status ==", "(tcpeno.status == fallback",
                "tcpeno.status == fallback and", "tcpeno.general.b == 1",
                "tcpcrypt.frame.length > 10", "tcpcrypt.frame.clen > 10"):
        with pytest.raises(FilterError):
            compile_filter(bad)


def test_filter_reason_dialect_and_base():
    rows = [r.to_json() for r in analyze_file(sample("role-conflicts.pcap")).reports]
    assert len(rows) == 4
    assert all(map(compile_filter("tcpeno.reason == role-conflict"), rows))
    assert not any(map(compile_filter("tcpeno.reason == no-common-tep"), rows))
    old = [r.to_json() for r in analyze_file(sample("tcpcryptd-2016-http-get.pcap")).reports]
    assert all(map(compile_filter("tcpcrypt.dialect == tcpcryptd-2016"), old))
    from tcpinc_analyze.decryption import DecryptionContext
    from tcpinc_analyze.keylog import load_keylogs

    ctx = DecryptionContext(load_keylogs([sample("nonce-after-init.keys")], use_env=False).log)
    rows = [r.to_json() for r in analyze_file(sample("nonce-after-init.pcap"),
                                              decryption=ctx).reports]
    after = compile_filter("tcpcrypt.nonce_offset_base == after-init")
    assert sum(map(after, rows)) == sum((r["tcpcrypt"] or {}).get("nonce_offset_base")
                                        == "after-init" for r in rows) > 0


def test_filter_and_tree_names_are_in_the_field_spec():
    """Every protocol field the filter or the detail tree uses is declared in
    dissectors/fields.json (the one spec the JSON report and Wireshark share)."""
    assert [f for f in FILTER_FIELDS if f.startswith(("tcpeno", "tcpcrypt")) and not known(f)] \
        == []
    from tcpinc_analyze.keylog import load_keylogs
    from tcpinc_analyze.tui.dissect import dissect
    from tcpinc_analyze.tui.model import CaptureAnalysis, deep_analyze

    seen: set[str] = set()

    def walk(node) -> None:
        if node.abbrev:
            seen.add(node.abbrev)
        for child in node.children:
            walk(child)

    for name in ("x25519-chacha20", "conformance-violations", "resumption",
                 "p256-aes128-ignored", "tcpcryptd-2016-http-get", "eno-edge-cases",
                 "experimental-encoding", "p521-aes256-traffic-keys"):
        pcap = sample(f"{name}.pcap")
        keys = SAMPLES / f"{name}.keys"
        log = load_keylogs([str(keys)], use_env=False).log if keys.exists() else None
        analysis = CaptureAnalysis(pcap, log)
        analysis.run()
        index = CaptureIndex(pcap)
        index.build()
        for report in analysis.reports:
            rep = report.to_json()
            numbers = list(analysis.conn_packets[report.id])
            detail = deep_analyze(index, report.id, numbers, analysis.ctx.keylog,
                                  analysis.ctx.chain, rep)
            for number in numbers:
                for node in dissect(index.record(number), detail, rep["findings"]).nodes:
                    walk(node)
        index.close()
    assert sorted(a for a in seen if not known(a)) == []
    for needed in ("tcpeno.global.b", "tcpeno.global.z", "tcpeno.global.implicit",
                   "tcpeno.tep.v", "tcpeno.length_byte", "tcpcrypt.resume.half",
                   "tcpcrypt.resume.nonce", "tcpcrypt.init1.sym_cipher",
                   "tcpcrypt.init1.pubkey_len", "tcpcrypt.init2.pubkey_len",
                   "tcpcrypt.init1.ignored", "tcpcrypt.dialect", "tcpcrypt.frame.clen",
                   "tcpcrypt.frame.offset", "tcpcrypt.frame.generation",
                   "tcpcrypt.frame.nonce", "tcpcrypt.frame.control.cres",
                   "tcpcrypt.plaintext.flags.finp", "tcpcrypt.plaintext.flags.fres",
                   "tcpcrypt.nonce_offset_base", "tcpeno.conformance",
                   "tcpeno.conformance.rfc"):
        assert needed in seen, needed


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
        first = data["frame_list"][0]
        assert first["tcpcrypt.frame.verified"] is True
        assert (first["tcpcrypt.frame.clen"], first["tcpcrypt.frame.generation"]) == (86, 0)
        assert first["tcpcrypt.frame.offset"] == first["tcpcrypt.stream_offset"] == 79
        assert first["tcpcrypt.nonce_offset_base"] == "tcp-stream"
        assert first["tcpcrypt.plaintext.flags.finp"] is True
        assert len(bytes.fromhex(first["tcpcrypt.frame.nonce"])) == 12
        assert all(known(k) for item in data["frame_list"] for k in item if "." in k)


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
        assert len(table.view) == total  # validated as typed, applied on Enter
        await pilot.press("enter")
        await pilot.pause()
        assert app.focused is table
        assert 0 < len(table.view) < total
        assert all(table.rows[i]["eno"]["status"] == "fallback" for i in table.view)
        await pilot.press("slash", "space", "a", "n", "d")  # incomplete: invalid
        await pilot.pause()
        assert filt.has_class("-invalid")
        kept = len(table.view)
        await pilot.press("enter")  # not applied: the applied filter stays
        await pilot.pause()
        assert len(table.view) == kept and 0 < kept < total
        filt.value = ""
        await pilot.press("enter")
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


@pytest.mark.asyncio
async def test_detail_tree_rfc_fields():
    """Global suboption bits, Init1's two-byte ciphers, frame generation/offset/nonce,
    plaintext flags: named as the field spec names them, highlighting their bytes."""
    app = TcpincApp(sample("x25519-chacha20.pcap"), [sample("x25519-chacha20.keys")])
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        hexview = app.query_one(HexView)
        # B's SYN-ACK: explicit global suboption 0x01, b = 1
        tree = await show_packet(app, pilot, 2)
        [glob] = tree_nodes(tree, "tcpeno.global")
        assert label(glob).startswith("Global suboption: 0x01")
        [b_bit] = tree_nodes(tree, "tcpeno.global.b")
        assert "b (passive role): True" in label(b_bit)
        assert label(b_bit).startswith(".... ...1 = ")
        tree.move_cursor(b_bit)
        await pilot.pause()
        assert hexview.highlighted == b"\x01"
        [z_bits] = tree_nodes(tree, "tcpeno.global.z")
        assert "z (reserved): 0" in label(z_bits)
        assert [label(n).split(" = ")[1] for n in tree_nodes(tree, "tcpeno.tep.v")] == [
            "v (has data): False"]
        # A's SYN has a = 1 and no b
        tree = await show_packet(app, pilot, 1)
        [a_bit] = tree_nodes(tree, "tcpeno.global.a")
        assert "a (application-aware): True" in label(a_bit)
        [b_bit] = tree_nodes(tree, "tcpeno.global.b")
        assert "b (passive role): False" in label(b_bit)
        # Init1: three two-byte sym_cipher ids, ChaCha20-Poly1305 first
        tree = await show_packet(app, pilot, 4)
        ciphers = tree_nodes(tree, "tcpcrypt.init1.sym_cipher")
        assert [label(n) for n in ciphers][0].startswith(
            "Offered cipher: 0x0010 (AEAD_CHACHA20_POLY1305)")
        assert len(ciphers) == 3
        tree.move_cursor(ciphers[0])
        await pilot.pause()
        assert hexview.highlighted == b"\x00\x10"
        # B's last frame: generation 0, frame-ID offset (tcp-stream), nonce, FINp set
        detail = app.current_detail
        last = [f for f in detail.frames if f.direction == "ba"][-1]
        assert last.verdict == "ok" and last.flags & 1 and last.nonce is not None
        tree = await show_packet(app, pilot, last.packet)
        frames = tree_nodes(tree, "tcpcrypt.frame")
        assert "(FINp) [verified]" in label(frames[-1])
        gens = tree_nodes(tree, "tcpcrypt.frame.generation")
        assert label(gens[-1]) == "Key generation: 0"
        offsets = tree_nodes(tree, "tcpcrypt.frame.offset")
        assert label(offsets[-1]) == (f"Frame-ID offset: {last.stream_offset} "
                                          "(tcp-stream reading)")
        nonces = tree_nodes(tree, "tcpcrypt.frame.nonce")
        assert last.nonce.hex() in label(nonces[-1])
        assert f"clen: {last.length}" in [label(n) for n in
                                          tree_nodes(tree, "tcpcrypt.frame.clen")]
        finp = tree_nodes(tree, "tcpcrypt.plaintext.flags.finp")
        assert label(finp[-1]) == ".... ...1 = FINp: True"
        assert label(tree_nodes(tree, "tcpcrypt.plaintext.flags.urgp")[-1]).endswith(
            "URGp: False")
        tags = tree_nodes(tree, "tcpcrypt.frame.tag")
        tree.move_cursor(tags[-1])
        await pilot.pause()
        assert hexview.highlighted == last.tag
        # the ladder names the b bits
        events = [text for _p, _d, text in app.query_one(Ladder).events]
        assert events[0] == "SYN ENO b=0 a=1 0x23 0x21"
        assert events[1] == "SYN-ACK ENO b=1 0x23"
        assert "FINp frame ✓" in events


@pytest.mark.asyncio
async def test_conformance_view_and_jump():
    """r: the checklist of the selected connection, violations first; Enter on
    rekey-not-answered (RFC 8548 §3.8) goes to its packet, whose tree names the rule."""
    app = TcpincApp(sample("conformance-violations.pcap"),
                    [sample("conformance-violations.keys")])
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = app.query_one(ConnectionsTable)
        assert len(table.rows) == 10
        assert table.select_id(2)
        await settle(app, pilot)
        assert app.current_conn == 2
        # the findings pane shows the code and its RFC section
        panel = app.query_one(FindingsPanel)
        rekey = [r for r in panel.refs if r.code == "rekey-not-answered"]
        assert rekey and all(r.rfc == "RFC 8548 §3.8" for r in rekey)
        text = str(panel.get_option_at_index(panel.refs.index(rekey[0])).prompt)
        assert "rekey-not-answered [RFC 8548 §3.8]" in text
        await pilot.press("r")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ConformanceScreen)
        statuses = [r.status for r in screen.shown]
        assert statuses == sorted(statuses, key=["violated", "held", "not-observable"].index)
        violated = {r.rule.code: r for r in screen.shown if r.status == "violated"}
        assert set(violated) == {"frame-reserved-bits", "plaintext-reserved-bits",
                                 "frame-tag-failed", "fin-without-finp", "frames-after-finp",
                                 "rekey-not-answered", "rekey-empty-repeated"}
        result = violated["rekey-not-answered"]
        assert result.rule.rfc == "RFC 8548 §3.8" and result.rule.level == "MUST"
        assert result.packets == [78]  # B's FIN: it closed with three answers owed
        rules = screen.query_one(ConformanceList)
        at = screen.shown.index(result)
        prompt = rule_plain(screen.shown[at])
        assert rules.get_option_at_index(at).prompt is not None
        assert "VIOLATED" in prompt and "RFC 8548 §3.8" in prompt and "#78" in prompt
        held = [r for r in screen.shown if r.status == "held"]
        unseen = [r for r in screen.shown if r.status == "not-observable"]
        assert held and unseen and all(r.reason for r in unseen)
        # a: violations only, and back
        await pilot.press("a")
        assert len(screen.shown) == len(violated)
        await pilot.press("a")
        rules.highlighted = screen.shown.index(result)
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, ConformanceScreen)
        packets = app.query_one(PacketList)
        assert packets.current() == 78 and app.focused is packets
        tree = app.query_one(DetailTree)
        assert tree.dissection.record.number == 78
        codes = [label(n) for n in tree_nodes(tree, "tcpeno.conformance")]
        assert "Conformance: rekey-not-answered" in codes
        rfcs = [label(n) for n in tree_nodes(tree, "tcpeno.conformance.rfc")]
        assert "RFC section: RFC 8548 §3.8" in rfcs
        # another connection: its own checklist (an all-zero X25519 key, RFC 8548 §5)
        assert table.select_id(3)
        await settle(app, pilot)
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, ConformanceScreen)
        shown = {r.rule.code: r for r in app.screen.shown if r.status == "violated"}
        assert app.screen.shown[0].status == "violated"
        assert shown["pubkey-invalid"].rule.rfc == "RFC 8548 §5"
        assert shown["resume-unsolicited"].rule.rfc == "RFC 8548 §3.5"
        await pilot.press("escape")
        assert not isinstance(app.screen, ConformanceScreen)


@pytest.mark.asyncio
async def test_filter_box_role_conflict():
    app = TcpincApp(sample("role-conflicts.pcap"), [sample("role-conflicts.keys")])
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = app.query_one(ConnectionsTable)
        assert len(table.rows) == 4
        await pilot.press("slash", *"tcpeno.reason == role-conflict", "enter")
        await pilot.pause()
        filt = app.query_one("#filter")
        assert filt.has_class("-valid")
        assert len(table.view) == 4

        async def apply(text: str) -> None:
            filt.value = text
            filt.focus()
            await pilot.press("enter")
            await pilot.pause()

        await apply("tcpeno.reason == no-common-tep")
        assert len(table.view) == 0
        await apply("tcpeno.global.b == 1 and tcpeno.reason == role-conflict")
        both = [table.rows[i] for i in table.view]
        assert 0 < len(both) < 4
        filt.value = "tcpeno.general.b == 1"
        await pilot.pause()
        assert filt.has_class("-invalid") and "unknown field" in filt.border_subtitle
        assert "column 1" in filt.border_subtitle
        filt.value = "tcpcrypt.frame.clen > 1"
        await pilot.pause()
        assert filt.has_class("-invalid") and "per-packet" in filt.border_subtitle
        await apply("")
        # the ladder of a SYN-ACK without a global suboption says b=0 (implicit)
        assert table.select_id(0)
        await settle(app, pilot)
        events = [text for _p, _d, text in app.query_one(Ladder).events]
        assert any("b=0 (implicit)" in e for e in events[:2]), events


# ---------------------------------------------------------------------- snapshots
async def _ready(pilot) -> None:
    await settle(pilot.app, pilot)
    pilot.app.clear_notifications()  # the samples' key logs are 0644: a warning toast


def test_snapshot_main_negotiated(snap_compare):
    app = TcpincApp(sample("x25519-chacha20.pcap"), [sample("x25519-chacha20.keys")])
    assert snap_compare(app, terminal_size=SIZE, run_before=_ready)


def test_snapshot_main_fallback_reasons(snap_compare):
    app = TcpincApp(sample("fallback-reasons.pcap"), [sample("fallback-reasons.keys")])
    assert snap_compare(app, terminal_size=SIZE, run_before=_ready)


def test_snapshot_conformance(snap_compare):
    async def conformance(pilot) -> None:
        await settle(pilot.app, pilot)
        pilot.app.query_one(ConnectionsTable).select_id(2)
        await settle(pilot.app, pilot)
        pilot.app.clear_notifications()
        await pilot.press("r")
        await pilot.pause()

    app = TcpincApp(sample("conformance-violations.pcap"),
                    [sample("conformance-violations.keys")])
    assert snap_compare(app, terminal_size=SIZE, run_before=conformance)


def test_snapshot_follow(snap_compare):
    async def follow(pilot) -> None:
        await settle(pilot.app, pilot)
        pilot.app.clear_notifications()
        await pilot.press("f")
        await pilot.pause()

    app = TcpincApp(sample("rekey-both-directions.pcap"),
                    [sample("rekey-both-directions.keys")])
    assert snap_compare(app, terminal_size=SIZE, run_before=follow)
