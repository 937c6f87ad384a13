"""``tcpinc-analyze tui``: an interactive browser for ENO and tcpcrypt captures.

The window opens at once; a thread indexes record offsets over an mmap while another
runs the analyzer and fills the connections table. Packets are decoded only when shown.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import Footer, Header, Input, Static, Tree

from ..capture.reader import CaptureError
from ..keylog import KeyLog, KeyLogError, load_keylogs
from .conformance import ConformanceScreen
from .connections import ConnectionsTable
from .detail import DetailTree
from .dissect import Node, dissect
from .export import ExportDialog
from .filter import FilterError, compile_filter
from .findings import FindingRef, FindingsPanel
from .follow import FollowScreen
from .help import HelpScreen
from .hexview import HexView
from .index import CaptureIndex
from .keylog_picker import KeylogPicker
from .ladder import Ladder
from .model import CaptureAnalysis, ConnDetail, DeepCache, FrameRecord, deep_analyze
from .packets import PacketList
from .virtual_table import VirtualTable

if TYPE_CHECKING:
    from ..scale.follow import Follow

POLL_SECONDS = 0.25


class TcpincApp(App):
    """The terminal browser."""

    TITLE = "tcpinc-analyze"
    CSS = """
    #filter { height: 3; border: round $primary; }
    #filter.-invalid { border: round $error; }
    #filter.-valid { border: round $success; }
    #main { height: 4fr; }
    #left { width: 1fr; }
    #right { width: 62; }
    ConnectionsTable { height: 1fr; border: round $primary-darken-2; }
    PacketList { height: 1fr; border: round $primary-darken-2; }
    #bottom { height: 3fr; }
    DetailTree { width: 1fr; border: round $primary-darken-2; }
    HexView { width: 79; border: round $primary-darken-2; }
    #ladder-box { height: 3fr; border: round $primary-darken-2; }
    FindingsPanel { height: 2fr; border: round $primary-darken-2; }
    ConnectionsTable:focus, PacketList:focus, DetailTree:focus, HexView:focus,
    #ladder-box:focus-within, FindingsPanel:focus { border: round $accent; }
    #status { height: 1; background: $boost; padding: 0 1; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("slash", "focus_filter", "Filter"),
        Binding("f", "follow", "Follow"),
        Binding("r", "conformance", "Conformance"),
        Binding("o", "load_keylog", "Key log"),
        Binding("x", "export('json')", "Export JSON"),
        Binding("p", "export('plaintext')", "Export text"),
        Binding("s", "sort_next", "Sort", show=False),
        Binding("a", "all_packets", "All pkts", show=False),
        Binding("backslash,z", "toggle_maximize", "Maximise"),
        Binding("c", "cancel", "Cancel", show=False),
        Binding("question_mark,f1", "help", "Help"),
    ]

    def __init__(self, capture: str, keylogs: list[str] | None = None, *,
                 export_dir: str | None = None, follow: Follow | None = None) -> None:
        super().__init__()
        self.capture = capture
        self.follow = follow
        """Set for a capture still being written (``--follow``, ``-i``)."""
        self.keylog_files: list[str] = list(keylogs or [])
        self.export_dir = export_dir or os.getcwd()
        self.keylog: KeyLog | None = None
        self.index: CaptureIndex | None = None
        self.analysis: CaptureAnalysis | None = None
        self.deep = DeepCache()
        self.seen_reports = 0
        self.current_conn: int | None = None
        self.current_detail: ConnDetail | None = None
        self.last_export: str | None = None
        self.error: str | None = None
        self.started = time.monotonic()
        self.first_screen_s: float | None = None
        self.index_s: float | None = None
        self.analysis_s: float | None = None
        self.sub_title = Path(capture).name

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        filt = Input(placeholder="/ filter: text, address, port, or tcpeno.status == fallback, "
                                 "tcpeno.reason == role-conflict, tcpcrypt.aead == 0x0010 …",
                     id="filter")
        yield filt
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield ConnectionsTable(id="connections")
                yield PacketList(id="packets")
            with Vertical(id="right"):
                with VerticalScroll(id="ladder-box"):
                    yield Ladder(id="ladder")
                yield FindingsPanel(id="findings")
        with Horizontal(id="bottom"):
            yield DetailTree(id="detail")
            yield HexView(id="hex")
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        sys.setswitchinterval(0.001)  # workers are pure Python: hand the GIL over often
        self.query_one("#ladder-box").border_title = "Handshake ladder"
        try:
            self.index = (self.follow.index(self.capture) if self.follow is not None
                          else CaptureIndex(self.capture))
        except (CaptureError, OSError) as exc:
            self.error = str(exc)
            self.query_one("#status", Static).update(Text(self.error, style="bold red"))
            return
        self.query_one(PacketList).index = self.index
        try:
            loaded = load_keylogs(self.keylog_files, use_env=False) if self.keylog_files \
                else None
        except KeyLogError as exc:
            self.notify(str(exc), severity="error", timeout=8)
        else:
            self.keylog = loaded.log if loaded is not None else None
            for warning in (loaded.log.malformed if loaded is not None else []):
                self.notify(warning, severity="warning", timeout=6)
        self.build_index()
        self.start_analysis()
        self.set_interval(POLL_SECONDS, self.poll)
        self.query_one(ConnectionsTable).focus()
        self.call_after_refresh(self._first_paint)

    def _first_paint(self) -> None:
        if self.first_screen_s is None:
            self.first_screen_s = time.monotonic() - self.started

    # ------------------------------------------------------------------ workers
    @work(thread=True, exclusive=True, group="index")
    def build_index(self) -> None:
        """Walk the capture's records over mmap (thread)."""
        assert self.index is not None
        self.index.build()
        if self.index.done:
            self.index_s = time.monotonic() - self.started

    @work(thread=True, exclusive=True, group="analysis")
    def run_analysis(self, analysis: CaptureAnalysis) -> None:
        """The analyzer over the whole capture (thread)."""
        t = time.monotonic()
        try:
            analysis.run()
        except CaptureError as exc:
            self.error = str(exc)
        if analysis.done:
            self.analysis_s = time.monotonic() - t

    def start_analysis(self) -> None:
        """(Re)start the analysis with the current key log."""
        if self.analysis is not None:
            self.analysis.cancelled.set()
        self.analysis = CaptureAnalysis(self.capture, self.keylog)
        if self.follow is not None:
            self.follow.attach(self.analysis)
        self.seen_reports = 0
        self.analysis_s = None
        self.run_analysis(self.analysis)

    def poll(self) -> None:
        """Move new reports into the table; show progress."""
        try:
            self._poll()
        except NoMatches:
            pass  # the app is shutting down: its widgets go before its timers

    def _poll(self) -> None:
        analysis, index = self.analysis, self.index
        if analysis is None or index is None:
            return
        table = self.query_one(ConnectionsTable)
        reports = analysis.reports
        n = len(reports)
        if n > self.seen_reports and not analysis.done:
            fresh = [r.to_json() for r in reports[self.seen_reports:n]]
            self.seen_reports = n
            table.add_reports(fresh)
        elif analysis.done and self.seen_reports != -1:
            fresh = [r.to_json() for r in analysis.reports[self.seen_reports:]]
            if self.seen_reports and len(analysis.reports) < len(table.rows):
                fresh = [r.to_json() for r in analysis.reports]
            table.add_reports(fresh)
            self.seen_reports = -1
            self.refresh_connection(reload=False)
        if self.current_conn is None and table.view:
            table.move_to(0)
            self.select_connection(table.current())
        packets = self.query_one(PacketList)
        if packets.all_packets and packets.row_count != index.count:
            packets.numbers = range(1, index.count + 1)
            packets.set_rows(index.count)
        self.update_status()

    def update_status(self) -> None:
        """Progress of both workers, key-log state, hints."""
        index, analysis = self.index, self.analysis
        if index is None or analysis is None:
            return
        text = Text()
        if index.done:
            text.append(f"{index.count} packets indexed", style="green")
        elif index.cancelled.is_set():
            text.append(f"index cancelled at {index.count} packets", style="yellow")
        else:
            text.append(f"indexing {index.progress:4.0%} ({index.count} packets) ",
                        style="yellow")
        text.append(" │ ")
        nconn = len(self.query_one(ConnectionsTable).rows)
        if analysis.done:
            text.append(f"{nconn} connections analysed", style="green")
        elif analysis.cancelled.is_set():
            text.append(f"analysis cancelled ({nconn} connections)", style="yellow")
        else:
            frac = analysis.bytes_read / index.size if index.size else 1
            text.append(f"analysing {frac:4.0%} ({nconn} connections)", style="yellow")
        text.append(" │ ")
        if self.keylog_files:
            text.append(f"keys: {', '.join(Path(k).name for k in self.keylog_files)}")
        else:
            text.append("no key log (o: load)", style="dim")
        if self.error:
            text.append(f" │ {self.error}", style="bold red")
        if not (index.done and analysis.done):
            text.append("  c: cancel", style="dim")
        self.query_one("#status", Static).update(text)

    # ------------------------------------------------------------------ selection
    def on_virtual_table_highlighted(self, event: VirtualTable.Highlighted) -> None:
        """Cursor moves in the connections table or the packet list."""
        if isinstance(event.table, ConnectionsTable):
            conn = event.table.current()
            if conn is not None and conn["id"] != self.current_conn:
                self.select_connection(conn)
        elif isinstance(event.table, PacketList):
            number = event.table.current()
            if number is not None:
                self.show_packet(number)

    def on_virtual_table_header_clicked(self, event: VirtualTable.HeaderClicked) -> None:
        """Sort the connections by the clicked column."""
        if isinstance(event.table, ConnectionsTable):
            event.table.sort_by(event.column)

    def select_connection(self, conn: dict | None) -> None:
        """Show a connection's packets, findings and (once analysed) ladder."""
        if conn is None or self.analysis is None:
            return
        self.current_conn = conn["id"]
        packets = self.query_one(PacketList)
        numbers = self.analysis.conn_packets.get(conn["id"], [])
        detail = self.deep.get(conn["id"])
        if not packets.all_packets:
            packets.show(numbers, detail, self._t0(numbers))
        self.query_one(FindingsPanel).show(self._capture_findings(), conn)
        self.current_detail = detail
        self.query_one(Ladder).show(detail)
        if detail is None:
            self.load_detail(conn, list(numbers))
        if not packets.all_packets and numbers:
            self.show_packet(numbers[0])

    def refresh_connection(self, reload: bool = True) -> None:
        """Redraw the current connection (after new keys: re-run its deep analysis)."""
        table = self.query_one(ConnectionsTable)
        conn = table.current()
        if conn is None:
            return
        if reload:
            self.deep.clear()
        self.current_conn = None
        self.select_connection(conn)

    def _t0(self, numbers: object) -> int:
        if self.index is None or not numbers:
            return 0
        rec = self.index.record(numbers[0])  # type: ignore[index]
        return rec.ts_ns if rec else 0

    def _capture_findings(self) -> list[dict]:
        summary = self.analysis.summary if self.analysis else None
        return [f.to_json() for f in summary.findings] if summary else []

    @work(thread=True, exclusive=True, group="deep")
    def load_detail(self, conn: dict, numbers: list[int]) -> None:
        """Re-analyse one connection alone (thread) for frames, plaintext and ladder."""
        detail = self.compute_detail(conn, numbers)
        self.call_from_thread(self._detail_ready, detail)

    def compute_detail(self, conn: dict, numbers: list[int]) -> ConnDetail:
        """The deep run of a connection (any thread); waits for the index to cover it."""
        assert self.index is not None and self.analysis is not None
        while numbers and self.index.count < numbers[-1] and not self.index.done:
            if self.index.cancelled.is_set():
                break
            time.sleep(0.05)
        ctx = self.analysis.ctx
        return deep_analyze(self.index, conn["id"], numbers, ctx.keylog, ctx.chain, conn)

    def _detail_ready(self, detail: ConnDetail) -> None:
        try:
            self._show_detail(detail)
        except NoMatches:
            pass  # the worker finished while the app was shutting down

    def _show_detail(self, detail: ConnDetail) -> None:
        self.deep.put(detail)
        if detail.conn_id != self.current_conn:
            return
        self.current_detail = detail
        packets = self.query_one(PacketList)
        if not packets.all_packets:
            packets.set_detail(detail)
        self.query_one(Ladder).show(detail)
        number = packets.current()
        if number is not None:
            self.show_packet(number)

    def show_packet(self, number: int) -> None:
        """Decode one packet into the tree and the hex view."""
        if self.index is None:
            return
        rec = self.index.record(number)
        tree = self.query_one(DetailTree)
        hexview = self.query_one(HexView)
        if rec is None:
            tree.show(None)
            hexview.show(b"")
            return
        detail = self.current_detail
        if detail is not None and number not in detail.pkt_dir:
            detail = None
        row = self.query_one(ConnectionsTable).current()
        findings = row.get("findings") if row is not None and detail is not None else None
        dissection = dissect(rec, detail, findings)
        tree.show(dissection)
        # The tree puts its cursor on the first node; highlight its bytes now rather than
        # rely on the highlight message (not sent when the cursor line does not change).
        first = dissection.nodes[0] if dissection.nodes else None
        hexview.show(rec.data, (first.start, first.end) if first is not None else (0, 0))

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        """Highlight the bytes of the field under the tree cursor."""
        node = event.node.data
        if isinstance(node, Node):
            self.query_one(HexView).highlight(node.start, node.end)

    def on_findings_panel_jump(self, event: FindingsPanel.Jump) -> None:
        """Go to a finding's connection and packet."""
        self.jump_to(event.ref)

    def jump_to(self, ref: FindingRef | None) -> None:
        """Select a finding's (or a conformance rule's) connection and packet."""
        if ref is None:
            return
        table = self.query_one(ConnectionsTable)
        packets = self.query_one(PacketList)
        if ref.conn_id is not None and ref.conn_id != self.current_conn:
            if not table.select_id(ref.conn_id):
                table.set_filter(None)
                self.query_one("#filter", Input).value = ""
                table.select_id(ref.conn_id)
            self.select_connection(table.current())
        if ref.packet is not None:
            if ref.conn_id is None and not packets.select_packet(ref.packet):
                self.action_all_packets(force=True)
            packets.select_packet(ref.packet)
            self.show_packet(ref.packet)
            packets.focus()

    # ------------------------------------------------------------------ filter
    def on_input_changed(self, event: Input.Changed) -> None:
        """Validate the filter as it is typed; apply it when valid."""
        if event.input.id != "filter":
            return
        try:
            pred = compile_filter(event.value)
        except FilterError as exc:
            event.input.set_class(True, "-invalid")
            event.input.set_class(False, "-valid")
            event.input.border_subtitle = str(exc)
            return
        event.input.set_class(False, "-invalid")
        event.input.set_class(bool(event.value.strip()), "-valid")
        event.input.border_subtitle = ""
        self.query_one(ConnectionsTable).set_filter(pred)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the filter: go to the connections."""
        if event.input.id == "filter":
            table = self.query_one(ConnectionsTable)
            table.focus()
            conn = table.current()
            if conn is not None and conn["id"] != self.current_conn:
                self.select_connection(conn)

    def on_key(self, event: object) -> None:
        """Esc in the filter box returns to the table."""
        key = getattr(event, "key", "")
        on_main = self.screen is self.screen_stack[0]
        if key == "escape" and isinstance(self.focused, Input) and on_main:
            self.query_one(ConnectionsTable).focus()

    # ------------------------------------------------------------------ actions
    def action_focus_filter(self) -> None:
        """``/``: type a filter."""
        self.query_one("#filter", Input).focus()

    def action_sort_next(self) -> None:
        """Sort the connections by the next column."""
        table = self.query_one(ConnectionsTable)
        col = 0 if table.sort_column is None else (table.sort_column + 1) % len(table.columns)
        table.sort_by(col)

    def action_toggle_maximize(self) -> None:
        """Maximise the focused pane, or restore."""
        screen = self.screen
        if screen.maximized is not None:
            screen.minimize()
        elif self.focused is not None:
            target = self.focused
            if isinstance(target, Ladder) or target.id == "ladder-box":
                target = self.query_one("#ladder-box")
            screen.maximize(target, container=False)

    def action_all_packets(self, force: bool = False) -> None:
        """Toggle the packet list between the connection and the whole capture."""
        packets = self.query_one(PacketList)
        packets.all_packets = True if force else not packets.all_packets
        if packets.all_packets and self.index is not None:
            numbers = range(1, self.index.count + 1)
            packets.show(numbers, None, self._t0(numbers))
            packets.border_title = "Packets (whole capture)"
        else:
            packets.border_title = "Packets"
            self.refresh_connection(reload=False)

    def action_cancel(self) -> None:
        """Stop indexing and analysis where they are."""
        if self.index is not None and not self.index.done:
            self.index.cancelled.set()
        if self.analysis is not None and not self.analysis.done:
            self.analysis.cancelled.set()
        self.notify("indexing/analysis cancelled: showing what was read so far")
        self.update_status()

    def action_help(self) -> None:
        """Show the key bindings."""
        self.push_screen(HelpScreen())

    async def detail_for_current(self) -> ConnDetail | None:
        """The deep run of the selected connection (computed now if needed)."""
        conn = self.query_one(ConnectionsTable).current()
        if conn is None:
            return None
        detail = self.deep.get(conn["id"])
        if detail is None and self.analysis is not None:
            numbers = list(self.analysis.conn_packets.get(conn["id"], []))
            detail = await asyncio.to_thread(self.compute_detail, conn, numbers)
            self.deep.put(detail)
        return detail

    async def action_follow(self) -> None:
        """Open the follow-stream view of the selected connection."""
        detail = await self.detail_for_current()
        if detail is None:
            self.notify("no connection selected", severity="warning")
            return
        await self.push_screen(FollowScreen(detail))

    def action_conformance(self) -> None:
        """Open the conformance checklist of the selected connection."""
        conn = self.query_one(ConnectionsTable).current()
        if conn is None or self.analysis is None:
            self.notify("no connection selected", severity="warning")
            return
        report = self.analysis.by_id.get(conn["id"])
        if report is None:
            self.notify("this connection is still being analysed", severity="warning")
            return
        self.push_screen(ConformanceScreen(report), self.jump_to)

    def action_load_keylog(self) -> None:
        """Pick a key log; decryption results then update in place."""
        start = str(Path(self.capture).resolve().parent)
        self.push_screen(KeylogPicker(start), self.load_keylog)

    def load_keylog(self, path: str | None) -> None:
        """Add a key log and re-run the analysis with it."""
        if not path:
            return
        files = self.keylog_files + [path]
        try:
            loaded = load_keylogs(files, use_env=False)
        except KeyLogError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        self.keylog_files = files
        self.keylog = loaded.log
        for warning in loaded.warnings:
            self.notify(warning, severity="warning", timeout=6)
        self.notify(f"key log loaded: {path}")
        self.deep.clear()
        self.current_detail = None
        self.start_analysis()

    def action_export(self, kind: str) -> None:
        """Export the selected connection's JSON or plaintext (asks for the file name)."""
        conn = self.query_one(ConnectionsTable).current()
        if conn is None:
            self.notify("no connection selected", severity="warning")
            return
        suffix = "json" if kind == "json" else "plaintext.bin"
        default = str(Path(self.export_dir) / f"conn-{conn['id']}.{suffix}")
        what = ("JSON" if kind == "json"
                else "decrypted plaintext (both directions, stream order)")

        async def chosen(path: str | None) -> None:
            if path:
                await self.write_export(kind, conn, path)

        self.push_screen(ExportDialog(what, default), chosen)

    async def write_export(self, kind: str, conn: dict, path: str) -> None:
        """Write the export file."""
        try:
            if kind == "json":
                detail = await self.detail_for_current()
                out = dict(conn)
                if detail is not None and detail.frames:
                    out["frame_list"] = [frame_json(f) for f in detail.frames]
                Path(path).write_text(json.dumps(out, indent=1) + "\n")
            else:
                detail = await self.detail_for_current()
                if detail is None or not (conn.get("tcpcrypt") or {}).get("decrypted"):
                    self.notify("no decrypted data for this connection (load a key log)",
                                severity="warning")
                    return
                Path(path).write_bytes(detail.plaintext())
        except OSError as exc:
            self.notify(f"export failed: {exc}", severity="error")
            return
        self.last_export = path
        self.notify(f"exported to {path}")

    def on_unmount(self) -> None:
        if self.analysis is not None:
            self.analysis.cancelled.set()
        if self.index is not None:
            self.index.cancelled.set()


def frame_json(f: FrameRecord) -> dict:
    """One frame of the JSON export, with the field spec's names (as ``--details``)."""
    item: dict = {"direction": f.direction, "packet": f.packet,
                  "first_packet": f.first_packet,
                  "tcpcrypt.frame.number": f.number,
                  "tcpcrypt.stream_offset": f.stream_offset,
                  "tcpcrypt.frame.control": f.control,
                  "tcpcrypt.frame.control.rekey": f.rekey,
                  "tcpcrypt.frame.clen": f.length,
                  "tcpcrypt.frame.generation": f.generation,
                  "tcpcrypt.frame.tag": f.tag.hex(),
                  "tcpcrypt.frame.verified": {"ok": True, "failed": False}.get(f.verdict)}
    if f.frame_offset is not None:
        item["tcpcrypt.frame.offset"] = f.frame_offset
    if f.base is not None:
        item["tcpcrypt.nonce_offset_base"] = f.base
    if f.nonce is not None:
        item["tcpcrypt.frame.nonce"] = f.nonce.hex()
    if f.flags is not None:
        item["tcpcrypt.plaintext.flags"] = f.flags
        item["tcpcrypt.plaintext.flags.finp"] = bool(f.flags & 0x01)
        item["tcpcrypt.plaintext.flags.urgp"] = bool(f.flags & 0x02)
    if f.urgent is not None:
        item["tcpcrypt.plaintext.urgent"] = f.urgent
    if f.data_len is not None:
        item["tcpcrypt.plaintext.data_len"] = f.data_len
    if f.verdict == "undecryptable":
        item["undecryptable"] = True
    return item


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``tui CAPTURE [--keylog K ...]`` (same as ``tcpinc_analyze.tui``'s)."""
    from . import add_subparser as register

    return register(subparsers)


def run(args: argparse.Namespace) -> int:
    """Entry point for the subcommand."""
    if getattr(args, "interface", None) or getattr(args, "follow", False):
        from ..scale.follow import run_following

        return run_following(args, TcpincApp)
    if not Path(args.capture).is_file():
        print(f"{args.capture}: no such file")
        return 2
    TcpincApp(args.capture, args.keylog).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m tcpinc_analyze.tui.app CAPTURE``."""
    parser = argparse.ArgumentParser(prog="tcpinc-analyze")
    sub = parser.add_subparsers(dest="command", required=True)
    add_subparser(sub)
    args = parser.parse_args(["tui", *(argv if argv is not None else sys.argv[1:])])
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
