"""``tui FIRST --compare SECOND``: the compare records in a table, and for the selected
one its verdict, what the path changed and both vantage points side by side (the same
ladder as ``compare --details``), with the study's summary a key away."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from ..analysis.compare import CompareResult, compare_traces, trace_capture
from ..output.compare_table import _changes, ladder, summary_line, summary_table


class CompareApp(App):
    """Two capture points of the same traffic."""

    TITLE = "tcpinc-analyze compare"
    CSS = """
    #records { height: 40%; }
    #detail { height: 1fr; border-top: solid $accent; }
    """
    BINDINGS = [Binding("q", "quit", "quit"), Binding("s", "summary", "summary"),
                Binding("j", "cursor_down", "down", show=False),
                Binding("k", "cursor_up", "up", show=False)]

    def __init__(self, result: CompareResult) -> None:
        super().__init__()
        self.result = result
        self.shown: object = None
        """What the lower pane shows (a rich renderable)."""
        self.sub_title = f"FIRST {result.first.name}  vs  SECOND {result.second.name}"

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="records", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="detail"):
            yield Static(id="ladder")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#records", DataTable)
        table.add_columns("id", "in", "FIRST", "SECOND", "matched by", "what the path did",
                          "cause")
        for rec in self.result.records:
            first = rec["first"]
            second = rec["second"]
            table.add_row(str(rec["id"]), rec["in"],
                          f"#{first['id']} {first['a']} > {first['b']}" if first else "-",
                          f"#{second['id']} {second['a']} > {second['b']}" if second else "-",
                          ", ".join(rec["matched_by"]) or "-", _changes(rec), rec["cause"],
                          key=str(rec["id"]))
        table.focus()
        if self.result.records:
            self.show(0)
        else:
            self.query_one("#ladder", Static).update("no TCP connections in either capture")

    def show(self, index: int) -> None:
        """Put one record's ladder in the lower pane."""
        comp = self.result.comparisons[index]
        self.shown = ladder(comp, self.result.clock_offset_ns)
        self.query_one("#ladder", Static).update(self.shown)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row is not None and event.cursor_row < len(self.result.comparisons):
            self.show(event.cursor_row)

    def action_summary(self) -> None:
        """The counts per cause and per option kind changed, and the clock offset."""
        from rich.console import Group
        from rich.text import Text

        self.shown = Group(summary_table(self.result), Text(summary_line(self.result)))
        self.query_one("#ladder", Static).update(self.shown)

    def action_cursor_down(self) -> None:
        self.query_one("#records", DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one("#records", DataTable).action_cursor_up()


def load(first: str, second: str, keylog: list[str]) -> CompareResult:
    """Analyze and compare the two captures (raises CaptureError, KeyLogError)."""
    from ..decryption import DecryptionContext
    from ..keylog import load_keylogs

    log = load_keylogs(keylog).log
    return compare_traces(trace_capture(first, DecryptionContext(log)),
                          trace_capture(second, DecryptionContext(log)))


def run(args: argparse.Namespace) -> int:
    """Entry point for ``tui FIRST --compare SECOND``."""
    from ..capture.reader import CaptureError
    from ..keylog import KeyLogError

    for path in (args.capture, args.compare):
        if not Path(path).is_file():
            print(f"{path}: no such file", file=sys.stderr)
            return 2
    try:
        result = load(args.capture, args.compare, args.keylog)
    except (CaptureError, KeyLogError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    CompareApp(result).run()
    return 0
