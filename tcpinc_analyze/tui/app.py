"""``tcpinc-analyze tui``: an interactive browser for ENO and tcpcrypt captures.

The window opens at once; a thread indexes record offsets over an mmap while another
runs the analyzer and fills the connections table. Packets are decoded only when shown.
The layout follows the terminal: three regions side by side from 160 columns, panes
stacked with a tab bar below that (every pane reachable from 80x24 up).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import stat
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container, VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import Footer, Header, Input, Static, Tab, Tabs, Tree

from ..capture.decode import DecodeProblem, IpDecoder, link_ip_offset
from ..capture.reader import CaptureError, Record
from ..filtering import Filter, FilterError, PacketSource, compile_filter
from ..keylog import KeyLog, KeyLogError, LoadedKeyLogs, load_keylogs
from ..words import plural
from .conformance import ConformanceScreen
from .connections import ConnectionsTable
from .detail import DetailTree
from .dissect import Node, dissect, field_values, node_text
from .export import ExportDialog
from .findings import FindingRef, FindingsPanel
from .follow import FollowScreen
from .help import HelpScreen
from .hexview import HexView
from .index import CaptureIndex
from .keylog_picker import KeylogPicker
from .ladder import Ladder
from .model import CaptureAnalysis, ConnDetail, DeepCache, FrameRecord, deep_analyze
from .packets import PacketList
from .prompt import Prompt
from .stats import StatsScreen
from .virtual_table import VirtualTable

if TYPE_CHECKING:
    from ..scale.follow import Follow

POLL_SECONDS = 0.25
WIDE = 160
"""Columns from which connections, ladder, packets, findings, details and bytes are all
on screen at once."""
MEDIUM = 110
"""Columns from which packets, details and bytes share the screen (ladder and findings
behind tabs)."""
PANES = ("packets", "detail", "hex", "ladder", "findings")
PANE_TITLES = {"packets": "Packets", "detail": "Details", "hex": "Bytes",
               "ladder": "Ladder", "findings": "Findings"}
PANE_WIDGETS = {"connections": "#connections", "packets": "#packets", "detail": "#detail",
                "hex": "#hex", "ladder": "#ladder-box", "findings": "#findings"}
FOCUS_ORDER = ("connections", "packets", "detail", "hex", "ladder", "findings")


class TcpincApp(App):
    """The terminal browser."""

    TITLE = "tcpinc-analyze"
    CSS = """
    #filter, #pfilter { height: 3; border: round $primary; }
    #pfilter { display: none; }
    #pfilter.-shown { display: block; }
    #filter.-invalid, #pfilter.-invalid { border: round $error; }
    #filter.-valid, #pfilter.-valid { border: round $success; }
    #body { height: 1fr; }
    #pane-tabs { display: none; }
    ConnectionsTable, PacketList, DetailTree, HexView, FindingsPanel, #ladder-box {
        height: 1fr; border: round $primary-darken-2; }
    ConnectionsTable:focus, PacketList:focus, DetailTree:focus, HexView:focus,
    #ladder-box:focus-within, FindingsPanel:focus { border: round $accent; }
    #status { height: 1; background: $boost; padding: 0 1; }

    /* wide: connections | ladder / packets | findings / details | bytes */
    #body.-wide { layout: grid; grid-size: 3; grid-columns: 1fr 17 62;
                  grid-rows: 2fr 2fr 3fr; }
    #body.-wide ConnectionsTable, #body.-wide PacketList, #body.-wide HexView {
        column-span: 2; }

    /* medium: connections / tabs / packets / details | bytes (ladder, findings: tabs) */
    #body.-medium { layout: grid; grid-size: 2; grid-columns: 1fr 77; }
    #body.-medium #pane-tabs, #body.-narrow #pane-tabs { display: block; column-span: 2;
                                                          height: 2; }
    #body.-medium ConnectionsTable, #body.-medium PacketList { column-span: 2; }
    #body.-medium.-main { grid-rows: 2fr 2 2fr 3fr; }
    #body.-medium.-main #ladder-box, #body.-medium.-main FindingsPanel { display: none; }
    #body.-medium.-side { grid-rows: 1fr 2 3fr; }
    #body.-medium.-side PacketList, #body.-medium.-side DetailTree,
    #body.-medium.-side HexView { display: none; }
    #body.-medium.-side #ladder-box, #body.-medium.-side FindingsPanel { column-span: 2; }
    #body.-medium.-tab-ladder FindingsPanel, #body.-medium.-tab-findings #ladder-box {
        display: none; }

    /* narrow: connections / tabs / one pane */
    #body.-narrow { layout: grid; grid-size: 1; grid-rows: 1fr 2 2fr; }
    #body.-narrow PacketList, #body.-narrow DetailTree, #body.-narrow HexView,
    #body.-narrow #ladder-box, #body.-narrow FindingsPanel { display: none; }
    #body.-narrow.-tab-packets PacketList, #body.-narrow.-tab-detail DetailTree,
    #body.-narrow.-tab-hex HexView, #body.-narrow.-tab-ladder #ladder-box,
    #body.-narrow.-tab-findings FindingsPanel { display: block; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("slash", "slash", "Filter/search"),
        Binding("Y", "packet_filter", "Pkt filter"),
        Binding("f", "follow", "Follow"),
        Binding("r", "conformance", "Conformance"),
        Binding("i", "statistics", "Stats"),
        Binding("ctrl+g", "goto_packet", "Go to"),
        Binding("o", "load_keylog", "Key log"),
        Binding("x", "export('json')", "Export JSON"),
        Binding("p", "export('plaintext')", "Export data"),
        Binding("n", "search_again(1)", "Next", show=False),
        Binding("N", "search_again(-1)", "Previous", show=False),
        Binding("m", "mark", "Mark", show=False),
        Binding("apostrophe", "next_mark(1)", "Next mark", show=False),
        Binding("quotation_mark", "next_mark(-1)", "Previous mark", show=False),
        Binding("y", "copy", "Copy", show=False),
        Binding("s", "sort_next", "Sort", show=False),
        Binding("S", "sort_reverse", "Reverse sort", show=False),
        Binding("a", "all_packets", "All pkts", show=False),
        Binding("right_square_bracket", "next_tab(1)", "Next tab", show=False),
        Binding("left_square_bracket", "next_tab(-1)", "Previous tab", show=False),
        Binding("tab", "next_pane(1)", "Next pane", show=False, priority=True),
        Binding("shift+tab", "next_pane(-1)", "Previous pane", show=False, priority=True),
        Binding("backslash,z", "toggle_maximize", "Maximise", show=False),
        Binding("c", "cancel", "Cancel", show=False),
        Binding("question_mark,f1", "help", "Help"),
    ]

    def __init__(self, capture: str, keylogs: list[str] | None = None, *,
                 export_dir: str | None = None, loaded: LoadedKeyLogs | None = None,
                 display_name: str | None = None, follow: Follow | None = None) -> None:
        super().__init__()
        self.capture = capture
        self.follow = follow
        """Set for a capture still being written (``--follow``, ``-i``)."""
        self.keylog_files: list[str] = []
        """Key-log files that loaded (what the status line names)."""
        self.keylog_specs: list[str] = list(keylogs or [])
        self.export_dir = export_dir or os.getcwd()
        self.keylog: KeyLog | None = None
        self.file_entries = 0
        self.preloaded = loaded
        self.index: CaptureIndex | None = None
        self.analysis: CaptureAnalysis | None = None
        self.deep = DeepCache()
        self.seen_reports = 0
        self.current_conn: int | None = None
        self.current_detail: ConnDetail | None = None
        self.last_export: str | None = None
        self.exporting: str | None = None
        self.error: str | None = None
        self.started = time.monotonic()
        self.first_screen_s: float | None = None
        self.index_s: float | None = None
        self.analysis_s: float | None = None
        self.layout_mode = ""
        self.pane = "packets"
        self.packet_filter: Filter | None = None
        self.packet_filter_job: threading.Event | None = None
        self.search_text: str | None = None
        self.search_pane: str | None = None
        self.searching: threading.Event | None = None
        self.last_copied: str | None = None
        self.pinned_span: tuple[int, int] | None = None
        self.search_hit: tuple[int, tuple[int, int]] | None = None
        """The packet a search found and the matching bytes (kept highlighted)."""
        self.notices: list[str] = []
        """Every warning shown (toasts show a summary; the help screen lists them)."""
        self.sub_title = display_name or Path(capture).name

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="/ connections filter (Enter applies): tcpeno.status == "
                                "fallback, tcp.port in {443 8443}, ip.addr == 10.0.0.0/8 …",
                    id="filter")
        yield Input(placeholder="Y packet filter (Enter applies, empty clears): "
                                "tcp.flags.syn == 1, tcpcrypt.frame.clen > 1000 …",
                    id="pfilter")
        with Container(id="body"):
            yield ConnectionsTable(id="connections")
            yield Tabs(*(Tab(PANE_TITLES[p], id=f"tab-{p}") for p in PANES), id="pane-tabs")
            with VerticalScroll(id="ladder-box"):
                yield Ladder(id="ladder")
            yield PacketList(id="packets")
            yield FindingsPanel(id="findings")
            yield DetailTree(id="detail")
            yield HexView(id="hex")
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        sys.setswitchinterval(0.001)  # workers are pure Python: hand the GIL over often
        self.query_one("#ladder-box").border_title = "Handshake ladder"
        self.query_one("#pane-tabs", Tabs).can_focus = False
        self.apply_layout(self.size.width)
        self.set_pane("packets")
        try:
            self.index = (self.follow.index(self.capture) if self.follow is not None
                          else CaptureIndex(self.capture))
        except (CaptureError, OSError) as exc:
            self.error = str(exc)
            self.query_one("#status", Static).update(Text(self.error, style="bold red"))
            return
        self.query_one(PacketList).index = self.index
        self.query_one(ConnectionsTable).focus()
        # Paint the first screen before the workers (pure Python: they take the GIL) and
        # before reading key logs.
        self.call_after_refresh(self._first_paint)
        self.call_after_refresh(self._start)

    def _start(self) -> None:
        """Key logs, then the index and analysis workers (after the first paint)."""
        loaded = self.preloaded
        if loaded is None and self.keylog_specs:
            try:
                loaded = load_keylogs(self.keylog_specs, use_env=False)
            except KeyLogError as exc:
                self.warn([str(exc)], severity="error")
        if loaded is not None:
            self.keylog = loaded.log
            self.keylog_files = list(loaded.files)
            self.file_entries = len(loaded.log)
            self.warn(loaded.warnings)
        self.build_index()
        self.start_analysis()
        self.set_interval(POLL_SECONDS, self.poll)

    def _first_paint(self) -> None:
        if self.first_screen_s is None:
            self.first_screen_s = time.monotonic() - self.started

    USER_ACTIVE_S = 0.5
    """How long after a key or a click the analysis worker stands back."""

    async def on_event(self, event: events.Event) -> None:
        """Keys and clicks: the user is busy, so the workers give the UI thread the GIL."""
        if isinstance(event, events.Key | events.MouseDown | events.MouseScrollDown
                      | events.MouseScrollUp):
            self.user_active()
        await super().on_event(event)

    def user_active(self) -> None:
        """Note that the user is interacting (the analysis backs off for a moment)."""
        if self.analysis is not None:
            self.analysis.yield_until = time.monotonic() + self.USER_ACTIVE_S

    def on_resize(self, event: events.Resize) -> None:
        """Pick the layout for the terminal's width."""
        self.apply_layout(event.size.width)

    def apply_layout(self, width: int) -> None:
        """``-wide`` (three regions), ``-medium`` (stacked, ladder and findings as tabs)
        or ``-narrow`` (one pane under the connections, chosen with the tab bar)."""
        mode = "-wide" if width >= WIDE else "-medium" if width >= MEDIUM else "-narrow"
        if mode == self.layout_mode:
            return
        try:
            body = self.query_one("#body")
        except NoMatches:
            return
        body.remove_class("-wide", "-medium", "-narrow")
        body.add_class(mode)
        self.layout_mode = mode
        self.set_pane(self.pane)

    def set_pane(self, pane: str) -> None:
        """Show a pane in the stacked layouts (the tab bar follows)."""
        self.pane = pane
        try:
            body = self.query_one("#body")
            tabs = self.query_one("#pane-tabs", Tabs)
        except NoMatches:
            return
        body.remove_class(*(f"-tab-{p}" for p in PANES), "-main", "-side")
        body.add_class(f"-tab-{pane}", "-side" if pane in ("ladder", "findings") else "-main")
        if tabs.active != f"tab-{pane}":
            tabs.active = f"tab-{pane}"

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        """A click on a tab (or ``[``/``]``) shows its pane."""
        if event.tab is not None and event.tab.id:
            pane = event.tab.id.removeprefix("tab-")
            if pane != self.pane:
                self.set_pane(pane)

    def pane_of(self, widget: object) -> str | None:
        """Which pane a widget is (or is inside)."""
        node = widget
        while node is not None:
            for pane, selector in PANE_WIDGETS.items():
                if getattr(node, "id", None) == selector[1:]:
                    return pane
            node = getattr(node, "parent", None)
        return None

    def focus_pane(self, pane: str) -> None:
        """Focus a pane, switching the tab bar to it when the layout hides it."""
        if pane != "connections" and self.layout_mode != "-wide":
            if self.layout_mode == "-narrow" or pane in ("ladder", "findings") or \
                    self.pane in ("ladder", "findings"):
                self.set_pane(pane)
        widget = self.query_one(PANE_WIDGETS[pane])
        self.call_after_refresh(widget.focus)
        widget.focus()

    def action_next_pane(self, step: int) -> None:
        """Tab / Shift+Tab: the next pane, in every layout (hidden panes come into view)."""
        if self.screen is not self.screen_stack[0]:
            self.screen.focus_next() if step > 0 else self.screen.focus_previous()
            return
        if isinstance(self.focused, Input):
            self.query_one(ConnectionsTable).focus()
            return
        current = self.pane_of(self.focused) or "connections"
        at = FOCUS_ORDER.index(current)
        self.focus_pane(FOCUS_ORDER[(at + step) % len(FOCUS_ORDER)])

    def action_next_tab(self, step: int) -> None:
        """``]`` / ``[``: the next tab of the stacked layouts."""
        at = PANES.index(self.pane)
        self.focus_pane(PANES[(at + step) % len(PANES)])

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
        except KeyLogError as exc:  # a malformed key log embedded in the capture
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
        if packets.all_packets and self.packet_filter is None and packets.row_count != index.count:
            packets.numbers = range(1, index.count + 1)
            packets.set_rows(index.count)
            packets.border_subtitle = f"{index.count} packets"
        self.update_status()

    def keys_text(self) -> Text:
        """What decrypts: loaded files (entries), keys embedded in the capture, or none."""
        text = Text()
        analysis = self.analysis
        embedded = 0
        if analysis is not None:
            embedded = max(0, len(analysis.ctx.keylog) - self.file_entries)
        if self.keylog_files:
            names = (Path(self.keylog_files[0]).name if len(self.keylog_files) == 1
                     else f"{len(self.keylog_files)} files")
            text.append(f"keys: {names} ({self.file_entries})")
            if embedded:
                text.append(f" + {embedded} embedded")
        elif embedded:
            text.append(f"keys: {embedded} embedded in the capture")
        else:
            text.append("no key log (o: load)", style="dim")
        return text

    def update_status(self) -> None:
        """Progress of both workers, key-log state, hints."""
        index, analysis = self.index, self.analysis
        if index is None or analysis is None:
            return
        text = Text()
        short = self.size.width < MEDIUM
        if index.done:
            text.append(plural(index.count, "packet") + ("" if short else " indexed"),
                        style="green")
        elif index.cancelled.is_set():
            text.append(f"index cancelled at {plural(index.count, 'packet')}", style="yellow")
        else:
            text.append(f"indexing {index.progress:4.0%} ({plural(index.count, 'packet')}) ",
                        style="yellow")
        text.append(" │ ")
        nconn = len(self.query_one(ConnectionsTable).rows)
        if analysis.done:
            text.append(plural(nconn, "connection") + ("" if short else " analysed"),
                        style="green")
        elif analysis.cancelled.is_set():
            text.append(f"analysis cancelled ({plural(nconn, 'connection')})", style="yellow")
        else:
            frac = analysis.bytes_read / index.size if index.size else 1
            text.append(f"analysing {frac:4.0%} ({plural(nconn, 'connection')})",
                        style="yellow")
        text.append(" │ ")
        text.append_text(self.keys_text())
        if self.exporting:
            text.append(f" │ {self.exporting}", style="yellow")
        if self.error:
            text.append(f" │ {self.error}", style="bold red")
        running = not (index.done or index.cancelled.is_set()) or not (
            analysis.done or analysis.cancelled.is_set())
        if running:
            text.append("  c: cancel", style="dim")
        self.query_one("#status", Static).update(text)

    def warn(self, messages: list[str], severity: str = "warning") -> None:
        """One toast for any number of warnings (a directory of key logs gives many);
        all of them are kept for the help screen."""
        if not messages:
            return
        self.notices.extend(messages)
        if len(messages) == 1:
            self.notify(messages[0], severity=severity, timeout=8)  # type: ignore[arg-type]
            return
        shown = "\n".join(f"• {m}" for m in messages[:3])
        more = f"\n… and {len(messages) - 3} more (? lists them all)" if len(messages) > 3 \
            else ""
        self.notify(f"{len(messages)} warnings:\n{shown}{more}", severity=severity,  # type: ignore[arg-type]
                    timeout=10)

    # ------------------------------------------------------------------ selection
    def on_virtual_table_highlighted(self, event: VirtualTable.Highlighted) -> None:
        """Cursor moves in the connections table or the packet list."""
        try:
            self._highlighted(event)
        except NoMatches:
            pass  # a message still queued while the app shuts down

    def _highlighted(self, event: VirtualTable.Highlighted) -> None:
        if isinstance(event.table, ConnectionsTable):
            conn = event.table.current()
            if conn is None:
                self.clear_connection()
            elif conn["id"] != self.current_conn:
                self.select_connection(conn)
        elif isinstance(event.table, PacketList):
            number = event.table.current()
            if number is not None:
                self.show_packet(number)

    def on_virtual_table_header_clicked(self, event: VirtualTable.HeaderClicked) -> None:
        """Sort the connections by the clicked column."""
        if isinstance(event.table, ConnectionsTable):
            event.table.sort_by(event.column)

    def clear_connection(self) -> None:
        """No connection under the cursor (the filter matches none): empty the panes."""
        self.current_conn = None
        self.current_detail = None
        packets = self.query_one(PacketList)
        if not packets.all_packets:
            packets.show([], None, 0)
        self.query_one(DetailTree).show(None)
        self.query_one(HexView).show(b"")
        self.query_one(Ladder).show(None, placeholder="No connection matches the filter")
        self.query_one(FindingsPanel).show(self._capture_findings(), None)

    def select_connection(self, conn: dict | None) -> None:
        """Show a connection's packets, findings and (once analysed) ladder."""
        if conn is None or self.analysis is None:
            return
        self.current_conn = conn["id"]
        packets = self.query_one(PacketList)
        numbers = self.analysis.conn_packets.get(conn["id"], [])
        detail = self.deep.get(conn["id"])
        if not packets.all_packets:
            packets.show(numbers, detail, self._t0(numbers), conn)
            if self.packet_filter is not None:
                self.run_packet_filter()
        self.query_one(FindingsPanel).show(self._capture_findings(), conn)
        self.current_detail = detail
        self.query_one(Ladder).show(detail)
        if detail is None:
            self.load_detail(conn, list(numbers))
        if not packets.all_packets and numbers and self.packet_filter is None:
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

    def compute_detail(self, conn: dict, numbers: list[int], **kwargs: object) -> ConnDetail:
        """The deep run of a connection (any thread); waits for the index to cover it."""
        assert self.index is not None and self.analysis is not None
        while numbers and self.index.count < numbers[-1] and not self.index.done:
            if self.index.cancelled.is_set():
                break
            time.sleep(0.05)
        ctx = self.analysis.ctx
        return deep_analyze(self.index, conn["id"], numbers, ctx.keylog, ctx.chain, conn,
                            **kwargs)  # type: ignore[arg-type]

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
        self.pinned_span = None
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
        hit = self.search_hit
        if hit is not None and hit[0] == number:
            hexview.highlight(*hit[1])
            self.pinned_span = hit[1]
        elif hit is not None:
            self.search_hit = None

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        """Highlight the bytes of the field under the tree cursor (after a byte search,
        the tree's first highlight of the new packet keeps the match highlighted)."""
        node = event.node.data
        try:
            hexview = self.query_one(HexView)
        except NoMatches:
            return  # a message still queued while the app shuts down
        if self.pinned_span is not None:
            span, self.pinned_span = self.pinned_span, None
            hexview.highlight(*span)
            return
        if isinstance(node, Node):
            hexview.highlight(node.start, node.end)

    def on_findings_panel_jump(self, event: FindingsPanel.Jump) -> None:
        """Go to a finding's connection and packet."""
        self.jump_to(event.ref)

    def on_ladder_clicked(self, event: Ladder.Clicked) -> None:
        """A click on a ladder arrow selects its packet."""
        self.jump_to(FindingRef(self.current_conn, event.packet, "ladder"))

    def jump_to(self, ref: FindingRef | None) -> None:
        """Select a finding's (or a conformance rule's, or a ladder arrow's) connection
        and packet, and show the packet list."""
        if ref is None:
            return
        table = self.query_one(ConnectionsTable)
        if ref.conn_id is not None and ref.conn_id != self.current_conn:
            if not table.select_id(ref.conn_id):
                table.set_filter(None)
                self.query_one("#filter", Input).value = ""
                table.select_id(ref.conn_id)
            self.select_connection(table.current())
        if ref.packet is not None:
            self.goto_packet(ref.packet)

    def goto_packet(self, number: int) -> bool:
        """Put the packet list on a packet: in the list shown, else (a packet of another
        connection, or one the packet filter hides) in the whole capture."""
        packets = self.query_one(PacketList)
        if self.index is None or not 1 <= number <= self.index.count:
            self.notify(f"no packet {number} (the capture has "
                        f"{self.index.count if self.index else 0})", severity="warning")
            return False
        if not packets.select_packet(number):
            self.clear_packet_filter()
            if not packets.select_packet(number):
                self.action_all_packets(force=True)
                packets.select_packet(number)
        self.show_packet(number)
        self.focus_pane("packets")
        return True

    # ------------------------------------------------------------------ filters
    def on_input_changed(self, event: Input.Changed) -> None:
        """Validate a filter as it is typed (green/red, the error and its column);
        nothing is applied before Enter."""
        if event.input.id not in ("filter", "pfilter"):
            return
        scope = "packet" if event.input.id == "pfilter" else "connection"
        try:
            compile_filter(event.value, scope)
        except FilterError as exc:
            event.input.set_class(True, "-invalid")
            event.input.set_class(False, "-valid")
            event.input.border_subtitle = str(exc)
            return
        event.input.set_class(False, "-invalid")
        event.input.set_class(bool(event.value.strip()), "-valid")
        event.input.border_subtitle = ""

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in a filter box: apply it if valid (an invalid one leaves the applied
        filter as it was and says why)."""
        if event.input.id == "filter":
            table = self.query_one(ConnectionsTable)
            try:
                pred = compile_filter(event.value)
            except FilterError as exc:
                self.notify(f"filter not applied: {exc}", severity="error", timeout=8)
                return
            table.set_filter(pred)
            event.input.border_title = f"applied: {event.value.strip()}" if pred else ""
            table.focus()
            conn = table.current()
            if conn is None:
                self.clear_connection()
            elif conn["id"] != self.current_conn:
                self.select_connection(conn)
        elif event.input.id == "pfilter":
            try:
                filt = compile_filter(event.value, "packet")
            except FilterError as exc:
                self.notify(f"packet filter not applied: {exc}", severity="error", timeout=8)
                return
            self.packet_filter = filt
            if filt is None:
                self.clear_packet_filter()
            else:
                event.input.border_title = f"applied: {filt.text}"
                self.run_packet_filter()
            self.focus_pane("packets")

    def on_key(self, event: events.Key) -> None:
        """Esc in a filter box returns to the table."""
        on_main = self.screen is self.screen_stack[0]
        if event.key == "escape" and isinstance(self.focused, Input) and on_main:
            if self.focused.id == "pfilter":
                self.focus_pane("packets")
            else:
                self.query_one(ConnectionsTable).focus()

    def action_slash(self) -> None:
        """``/``: the connections filter, or a search in the packet, detail and hex
        panes (termshark's keys)."""
        pane = self.pane_of(self.focused)
        if pane in ("packets", "detail", "hex"):
            self.action_search(pane)
        else:
            self.query_one("#filter", Input).focus()

    def action_packet_filter(self) -> None:
        """``Y``: type a packet filter for the packet list."""
        box = self.query_one("#pfilter", Input)
        box.add_class("-shown")
        box.focus()

    def clear_packet_filter(self) -> None:
        """Back to every packet of the list (connection or capture)."""
        if self.packet_filter_job is not None:
            self.packet_filter_job.set()
        self.packet_filter = None
        box = self.query_one("#pfilter", Input)
        box.border_title = ""
        box.value = ""
        box.remove_class("-shown")
        packets = self.query_one(PacketList)
        if packets.all_packets and self.index is not None:
            numbers = range(1, self.index.count + 1)
            packets.show(numbers, None, self._t0(numbers))
        else:
            conn = self.query_one(ConnectionsTable).current()
            if conn is not None and self.analysis is not None:
                numbers = self.analysis.conn_packets.get(conn["id"], [])
                packets.show(numbers, self.deep.get(conn["id"]), self._t0(numbers), conn)

    def run_packet_filter(self) -> None:
        """Filter the packet list (thread): the connection's packets, or the capture's."""
        filt = self.packet_filter
        if filt is None or self.index is None or self.analysis is None:
            return
        if self.packet_filter_job is not None:
            self.packet_filter_job.set()
        stop = self.packet_filter_job = threading.Event()
        packets = self.query_one(PacketList)
        if packets.all_packets:
            numbers: object = range(1, self.index.count + 1)
            conn = None
        else:
            conn = self.query_one(ConnectionsTable).current()
            numbers = self.analysis.conn_packets.get(conn["id"], []) if conn else []
        packets.border_subtitle = "filtering…"
        packets.total = None
        self._filter_packets(filt, list(numbers) if not isinstance(numbers, range)  # type: ignore[arg-type]
                             else numbers, conn, stop)

    @work(thread=True, group="packet-filter")
    def _filter_packets(self, filt: Filter, numbers: object, conn: dict | None,
                        stop: threading.Event) -> None:
        """Evaluate the packet filter over ``numbers`` (thread)."""
        assert self.index is not None and self.analysis is not None
        owner = self._packet_owner(numbers) if conn is None else None
        rows = {r["id"]: r for r in self.query_one(ConnectionsTable).rows} if owner else {}
        detail = self.deep.get(conn["id"]) if conn else None
        if conn is not None and detail is None and filt.needs_tree:
            detail = self.compute_detail(conn, list(numbers))  # type: ignore[arg-type]
            self.deep.put(detail)
        kept = array("I")
        t0 = self._t0(numbers)
        last = time.monotonic()
        total = len(numbers)  # type: ignore[arg-type]
        for n, number in enumerate(numbers):  # type: ignore[attr-defined]
            if stop.is_set():
                return
            row = conn
            deep = detail
            if owner is not None:
                cid = owner[number] if number < len(owner) else -1
                row = rows.get(cid)
                deep = self.deep.get(cid) if cid >= 0 else None
            if self.packet_matches(filt, number, row, deep, t0):
                kept.append(number)
            now = time.monotonic()
            if now - last > 0.25:
                last = now
                self.call_from_thread(self._filter_progress, n, total, stop)
        self.call_from_thread(self._filter_done, kept, total, conn, detail, t0, stop)

    def _packet_owner(self, numbers: object) -> array | None:
        """Packet number -> connection id, for filtering the whole capture."""
        assert self.analysis is not None and self.index is not None
        owner = array("i", [-1]) * (self.index.count + 1)
        for cid, nums in list(self.analysis.conn_packets.items()):
            for number in nums:
                if number < len(owner):
                    owner[number] = cid
        return owner

    def packet_matches(self, filt: Filter, number: int, conn: dict | None,
                       detail: ConnDetail | None, t0: int) -> bool:
        """Evaluate a packet filter on one packet (any thread)."""
        assert self.index is not None
        rec = self.index.record(number)
        if rec is None:
            return False
        headers = packet_headers(rec, t0, conn)
        if detail is not None and number not in detail.pkt_dir:
            detail = None

        def tree() -> dict[str, list]:
            findings = conn.get("findings") if conn is not None and detail else None
            return field_values(dissect(rec, detail, findings).nodes)

        return filt.match(PacketSource(headers, conn, tree))

    def _filter_progress(self, n: int, total: int, stop: threading.Event) -> None:
        if not stop.is_set():
            for packets in self.query(PacketList):
                packets.border_subtitle = f"filtering {n}/{total}…"

    def _filter_done(self, kept: array, total: int, conn: dict | None,
                     detail: ConnDetail | None, t0: int, stop: threading.Event) -> None:
        if stop.is_set() or not self.query(PacketList):
            return
        packets = self.query_one(PacketList)
        packets.show(kept, detail if not packets.all_packets else None, t0, conn, total=total)
        if kept:
            self.show_packet(kept[0])

    # ------------------------------------------------------------------ go to, search
    def action_goto_packet(self) -> None:
        """``ctrl+g``: go to a packet by number."""
        def answer(text: str | None) -> None:
            if text is None:
                return
            if not text.strip().isdigit():
                self.notify(f"not a packet number: {text!r}", severity="warning")
                return
            self.goto_packet(int(text))

        self.push_screen(Prompt("Go to packet number:"), answer)

    def action_search(self, pane: str) -> None:
        """``/`` in the packet list (decoded fields and bytes of the following packets),
        the detail tree (field labels) or the hex pane (bytes: text or hex)."""
        what = {"packets": "Search the packets' decoded fields and bytes (text or hex):",
                "detail": "Search the detail tree's fields:",
                "hex": "Search the bytes (text, or hex such as 15101a0e):"}[pane]

        def answer(text: str | None) -> None:
            if text:
                self.search_text = text
                self.search_pane = pane
                self.focus_pane(pane)
                self.search(pane, text, 1)

        self.push_screen(Prompt(what, self.search_text or ""), answer)

    def action_search_again(self, step: int) -> None:
        """``n`` / ``N``: the next / previous match of the last search."""
        if not self.search_text:
            self.notify("no search yet (/ in the packet, detail or hex pane)")
            return
        pane = self.pane_of(self.focused)
        if pane not in ("packets", "detail", "hex"):
            pane = self.search_pane or "packets"
        self.search(pane, self.search_text, step)

    def search(self, pane: str, text: str, step: int) -> None:
        """Run a search in a pane, forward (1) or backward (-1) from the cursor."""
        if pane == "detail":
            self.search_tree(text, step)
        elif pane == "hex":
            self.search_hex(text, step)
        else:
            packets = self.query_one(PacketList)
            if self.searching is not None:
                self.searching.set()
            self.searching = threading.Event()
            packets.border_subtitle = f"searching {text!r}…"
            self._search_packets(text, step, packets.cursor_row, list(packets.numbers),
                                 self.searching)

    def search_tree(self, text: str, step: int) -> bool:
        """Move the tree cursor to the next node whose label contains ``text``."""
        tree = self.query_one(DetailTree)
        nodes = tree.all_nodes()
        if not nodes:
            return False
        low = text.lower()
        cur = tree.cursor_node
        at = nodes.index(cur) if cur in nodes else -1
        order = [nodes[(at + step * k) % len(nodes)] for k in range(1, len(nodes) + 1)]
        for node in order:
            if low in str(node.label).lower():
                tree.reveal(node)
                return True
        self.notify(f"{text!r} is not in this packet's fields", severity="warning")
        return False

    def search_hex(self, text: str, step: int) -> bool:
        """Highlight the next occurrence of the bytes (hex digits, else the text)."""
        hexview = self.query_one(HexView)
        needle = search_bytes(text)
        start = hexview.span[0] + (1 if step > 0 else -1) if hexview.span[1] > \
            hexview.span[0] else 0
        data = hexview.data
        at = data.find(needle, max(0, start)) if step > 0 else data.rfind(
            needle, 0, max(0, start) + len(needle) - 1)
        if at < 0:
            at = data.find(needle) if step > 0 else data.rfind(needle)
        if at < 0 or not needle:
            self.notify(f"{text!r} is not in this packet's bytes", severity="warning")
            return False
        hexview.highlight(at, at + len(needle))
        return True

    @work(thread=True, group="search")
    def _search_packets(self, text: str, step: int, row: int, numbers: list[int],
                        stop: threading.Event) -> None:
        """Find the next packet whose decoded fields or bytes contain ``text`` (thread)."""
        assert self.index is not None
        low = text.lower()
        needle = search_bytes(text)
        detail = self.current_detail
        n = len(numbers)
        for k in range(1, n + 1):
            if stop.is_set():
                return
            i = (row + step * k) % n
            rec = self.index.record(numbers[i])
            if rec is None:
                continue
            if needle and needle in rec.data:
                self.call_from_thread(self._search_found, i, text, stop)
                return
            deep = detail if detail is not None and numbers[i] in detail.pkt_dir else None
            if low in node_text(dissect(rec, deep).nodes):
                self.call_from_thread(self._search_found, i, text, stop)
                return
        self.call_from_thread(self._search_found, None, text, stop)

    def _search_found(self, row: int | None, text: str, stop: threading.Event) -> None:
        if not self.query(PacketList):
            return  # the app is shutting down
        packets = self.query_one(PacketList)
        n = len(packets.numbers)
        packets.border_subtitle = (f"{n} of {packets.total} packets"
                                   if packets.total is not None else f"{n} packets")
        if stop.is_set():
            return
        if row is None:
            self.notify(f"{text!r} not found in these packets", severity="warning")
            return
        number = packets.numbers[row]
        rec = self.index.record(number) if self.index is not None else None
        needle = search_bytes(text)
        at = rec.data.find(needle) if rec is not None and needle else -1
        self.search_hit = (number, (at, at + len(needle))) if at >= 0 else None
        packets.move_to(row)
        self.show_packet(number)

    # ------------------------------------------------------------------ marks, copy
    def action_mark(self) -> None:
        """``m``: mark / unmark the packet under the cursor."""
        number = self.query_one(PacketList).toggle_mark()
        if number is not None:
            marked = number in self.query_one(PacketList).marks
            self.notify(f"packet {number} {'marked' if marked else 'unmarked'}")

    def action_next_mark(self, step: int) -> None:
        """``'`` / ``"``: the next / previous marked packet."""
        number = self.query_one(PacketList).next_mark(step)
        if number is None:
            self.notify("no marked packet in this list (m marks one)", severity="warning")
            return
        self.show_packet(number)

    def action_copy(self) -> None:
        """``y``: copy the selected field's value (tree), the highlighted bytes (hex) or
        the row (packet list) to the clipboard."""
        pane = self.pane_of(self.focused)
        text = None
        if pane == "detail":
            node = self.query_one(DetailTree).cursor_node
            data = node.data if node is not None else None
            if isinstance(data, Node):
                text = copy_value(data)
        elif pane == "hex":
            text = self.query_one(HexView).highlighted.hex()
        elif pane == "packets":
            packets = self.query_one(PacketList)
            if packets.row_count:
                cells = packets.get_row(packets.cursor_row)
                text = "  ".join(str(c) for c in cells)
        elif pane == "connections":
            conn = self.query_one(ConnectionsTable).current()
            text = f"{conn['a']} {conn['b']}" if conn else None
        if not text:
            self.notify("nothing to copy here", severity="warning")
            return
        self.last_copied = text
        self.copy_to_clipboard(text)
        self.notify(f"copied: {text[:60]}{'…' if len(text) > 60 else ''}")

    # ------------------------------------------------------------------ actions
    def action_sort_next(self) -> None:
        """Sort the connections by the next column."""
        table = self.query_one(ConnectionsTable)
        col = 0 if table.sort_column is None else (table.sort_column + 1) % len(table.columns)
        table.sort_by(col)

    def action_sort_reverse(self) -> None:
        """``S``: reverse the connections' order."""
        self.query_one(ConnectionsTable).reverse_sort()

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
            if self.packet_filter is not None:
                self.run_packet_filter()
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
        """Show the key bindings (and every warning so far)."""
        self.push_screen(HelpScreen(self.notices))

    def action_statistics(self) -> None:
        """``i``: outcome counts and bars, TEPs, AEADs, bytes over time."""
        rows = self.query_one(ConnectionsTable).rows
        analysis = self.analysis
        per_second = dict(analysis.per_second) if analysis is not None else {}
        self.push_screen(StatsScreen(list(rows), per_second,
                                     complete=bool(analysis and analysis.done)))

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
        """Add a key log (a file, a directory or a glob) and re-run the analysis."""
        if not path:
            return
        specs = self.keylog_specs + [path]
        try:
            loaded = load_keylogs(specs, use_env=False)
        except KeyLogError as exc:
            self.notify(f"key log not loaded: {exc}", severity="error", timeout=8)
            return
        self.keylog_specs = specs
        self.keylog_files = list(loaded.files)
        self.keylog = loaded.log
        self.file_entries = len(loaded.log)
        self.warn(loaded.warnings)
        n = len(loaded.files)
        self.notify(f"key log loaded: {path} ({n} file{'' if n == 1 else 's'}, "
                    f"{self.file_entries} entries)")
        self.deep.clear()
        self.current_detail = None
        self.start_analysis()

    def action_export(self, kind: str) -> None:
        """Export the selected connection's JSON, or its data (tcpcrypt: the decrypted
        stream; plain TCP: the TCP payload), asking for the file name."""
        conn = self.query_one(ConnectionsTable).current()
        if conn is None:
            self.notify("no connection selected", severity="warning")
            return
        tc = conn.get("tcpcrypt")
        if kind != "json" and tc and not tc.get("decrypted"):
            if self.keylog_files or (self.analysis and len(self.analysis.ctx.keylog)):
                self.notify(f"connection {conn['id']}: the loaded key logs have no keys for "
                            "it: nothing decrypted to export", severity="warning")
            else:
                self.notify(f"connection {conn['id']}: no decrypted data (load a key log "
                            "with o)", severity="warning")
            return
        if kind == "json":
            suffix, what = "json", "JSON"
        elif tc:
            suffix, what = "plaintext.bin", "decrypted data (both directions, stream order)"
        else:
            suffix, what = "payload.bin", "TCP payload (plain TCP, both directions)"
        default = str(Path(self.export_dir) / f"conn-{conn['id']}.{suffix}")

        async def chosen(path: str | None) -> None:
            if path:
                await self.write_export(kind, conn, path)

        self.push_screen(ExportDialog(what, default), chosen)

    async def write_export(self, kind: str, conn: dict, path: str) -> None:
        """Write an export atomically (temporary name, then rename); data exports
        stream every byte of the connection to the file (never only the view's part)."""
        target = Path(path)
        try:
            if target.exists() and target.resolve().samefile(Path(self.capture).resolve()):
                self.notify(f"{path} is the capture being browsed: not overwritten",
                            severity="error")
                return
        except OSError:
            pass
        try:
            if kind == "json":
                detail = await self.detail_for_current()
                out = dict(conn)
                if detail is not None and detail.frames:
                    out["frame_list"] = [frame_json(f) for f in detail.frames]
                written = await asyncio.to_thread(
                    atomic_write, target, lambda fh: fh.write(
                        (json.dumps(out, indent=1) + "\n").encode()), 0o644)
            else:
                assert self.analysis is not None
                numbers = list(self.analysis.conn_packets.get(conn["id"], []))
                self.exporting = f"exporting connection {conn['id']}…"

                def stream(fh: object) -> int:
                    detail = self.compute_detail(conn, numbers, out=fh, keep=0)
                    return sum(detail.plaintext_bytes.values())

                written = await asyncio.to_thread(atomic_write, target, stream, 0o600)
        except OSError as exc:
            self.notify(f"export failed: {exc}", severity="error")
            return
        finally:
            self.exporting = None
        self.last_export = path
        self.notify(f"exported {written:,} bytes to {path}")

    def on_unmount(self) -> None:
        if self.analysis is not None:
            self.analysis.cancelled.set()
        if self.index is not None:
            self.index.cancelled.set()
        for job in (self.packet_filter_job, self.searching):
            if job is not None:
                job.set()


def atomic_write(path: Path, write: Callable[[object], object], mode: int) -> int:
    """Write through ``write(fh)`` to a temporary file beside ``path`` (``mode``), then
    rename it into place; returns the bytes written (or what ``write`` returns)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            result = write(fh)
            size = fh.tell()
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return result if isinstance(result, int) and not isinstance(result, bool) else size


def search_bytes(text: str) -> bytes:
    """A search term as bytes: hex digits (spaces or colons allowed) or the text."""
    compact = text.replace(" ", "").replace(":", "")
    if len(compact) >= 2 and len(compact) % 2 == 0 and all(
            c in "0123456789abcdefABCDEF" for c in compact):
        return bytes.fromhex(compact)
    return text.encode("utf-8", errors="replace")


def copy_value(node: Node) -> str:
    """A field's value as text (hex for bytes), else its label's part after ': '."""
    value = node.value
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if value is not None and not isinstance(value, bool):
        return str(value)
    label = node.label
    return label.split(": ", 1)[1] if ": " in label else label


def packet_headers(rec: Record, t0: int, conn: dict | None) -> dict[str, object]:
    """The header fields of one packet (Wireshark's names) for packet filters."""
    out: dict[str, object] = {
        "frame": rec.data, "frame.number": rec.number, "frame.len": rec.orig_len,
        "frame.cap_len": len(rec.data), "frame.time_epoch": rec.ts_ns / 1e9,
        "frame.time_relative": (rec.ts_ns - t0) / 1e9, "frame.interface_id": rec.interface}
    try:
        pos = link_ip_offset(rec.linktype, rec.data)
        seg = None if pos is None else IpDecoder().decode(
            rec.number, rec.ts_ns, rec.data, pos, rec.orig_len - len(rec.data))
    except (KeyError, DecodeProblem):
        return out
    if seg is None:
        return out
    import ipaddress

    src, dst = str(ipaddress.ip_address(seg.src)), str(ipaddress.ip_address(seg.dst))
    version = 6 if len(seg.src) == 16 else 4
    prefix = "ipv6" if version == 6 else "ip"
    out.update({prefix: True, f"{prefix}.src": src, f"{prefix}.dst": dst,
                f"{prefix}.addr": [src, dst], "ip.version": version, "tcp": True,
                "tcp.srcport": seg.sport, "tcp.dstport": seg.dport,
                "tcp.port": [seg.sport, seg.dport], "tcp.seq": seg.seq, "tcp.ack": seg.ack,
                "tcp.len": len(seg.payload), "tcp.flags": seg.flags,
                "tcp.flags.fin": bool(seg.flags & 0x01), "tcp.flags.syn": bool(seg.flags & 0x02),
                "tcp.flags.reset": bool(seg.flags & 0x04),
                "tcp.flags.push": bool(seg.flags & 0x08),
                "tcp.flags.ack": bool(seg.flags & 0x10), "tcp.flags.urg": bool(seg.flags & 0x20),
                "tcp.window_size_value": seg.window, "tcp.payload": seg.payload or None,
                "tcp.options": seg.options or None})
    if version == 6:  # Wireshark keeps ip.* for IPv4; ours answer for both
        out.update({"ip.src": src, "ip.dst": dst, "ip.addr": [src, dst]})
    if conn is not None:
        out["tcp.stream"] = conn.get("id")
    return out


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


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _spool_stdin() -> str:
    """Copy a capture piped to standard input into a private temporary file (the
    browser maps the file and reads it twice)."""
    fd, tmp = tempfile.mkstemp(prefix="tcpinc-tui-", suffix=".cap")
    os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
    return tmp


def _terminal_as_stdin() -> None:
    """After reading a piped capture, take the terminal as standard input so the UI
    can read keys (as ``less`` does)."""
    tty = os.open("/dev/tty", os.O_RDONLY)
    os.dup2(tty, 0)
    os.close(tty)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's stdin


def check_input(capture: str) -> str | None:
    """Why a path cannot be browsed (the CLI's wording), or None."""
    path = Path(capture)
    if path.is_dir():
        return f"{capture}: is a directory, not a capture file"
    if not path.exists():
        return f"{capture}: no such file"
    if not path.is_file():
        return f"{capture}: not a regular file (pipe it to 'tui -' instead)"
    try:
        CaptureIndex(capture).close()
    except CaptureError as exc:
        return str(exc)
    except OSError as exc:
        return f"{capture}: cannot read: {exc.strerror or exc}"
    return None


def run(args: argparse.Namespace) -> int:
    """Entry point for the subcommand: bad input is one ``error:`` line and exit 2,
    before the UI starts (as every other command)."""
    if getattr(args, "interface", None) or getattr(args, "follow", False):
        from ..scale.follow import run_following

        return run_following(args, TcpincApp)
    capture = args.capture
    if capture is None:
        return _error("tui: name a CAPTURE (or - for standard input), or use --follow "
                      "CAPTURE or -i IFACE")
    spooled = None
    if capture == "-":
        if sys.stdin.isatty():
            return _error("tui -: standard input is a terminal, not a capture")
        try:
            spooled = capture = _spool_stdin()
        except OSError as exc:
            return _error(f"tui -: cannot read standard input: {exc}")
    try:
        problem = check_input(capture)
        if problem is not None:
            return _error(problem if spooled is None else
                          problem.replace(capture, "standard input"))
        if spooled is not None:
            try:
                _terminal_as_stdin()
            except OSError as exc:
                return _error(f"tui -: the capture was read, but there is no terminal to "
                              f"browse it in: {exc.strerror or exc}")
        loaded = None
        if args.keylog:
            try:
                loaded = load_keylogs(args.keylog, use_env=False)
            except KeyLogError as exc:
                return _error(str(exc))
        TcpincApp(capture, args.keylog, loaded=loaded,
                  display_name="standard input" if spooled else None).run()
        return 0
    finally:
        if spooled is not None:
            os.unlink(spooled)


def main(argv: list[str] | None = None) -> int:
    """``python -m tcpinc_analyze.tui.app CAPTURE``."""
    parser = argparse.ArgumentParser(prog="tcpinc-analyze")
    sub = parser.add_subparsers(dest="command", required=True)
    add_subparser(sub)
    args = parser.parse_args(["tui", *(argv if argv is not None else sys.argv[1:])])
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
