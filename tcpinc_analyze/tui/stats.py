"""Statistics: what Wireshark users look for under Conversations and I/O graphs, for
ENO: each outcome and fallback reason as counts and bars, TEPs, AEADs, verification,
and bytes over time."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Sparkline, Static

from .connections import aead_short, tep_short, verification

BAR = 40


@dataclass
class Stats:
    """Counts over the connections the table holds (all of them, not the filtered)."""

    total: int
    outcomes: Counter[str]
    teps: Counter[str]
    aeads: Counter[str]
    verification: Counter[str]


def outcome(conn: dict) -> str:
    """``negotiated``, ``fallback: <reason>``, ``absent`` or ``unknown``."""
    eno = conn.get("eno") or {}
    status = eno.get("status") or "unknown"
    if status == "fallback":
        return f"fallback: {eno.get('reason')}"
    return status


def compute(rows: list[dict]) -> Stats:
    """Count outcomes, TEPs, AEADs and verification states."""
    outcomes: Counter[str] = Counter()
    teps: Counter[str] = Counter()
    aeads: Counter[str] = Counter()
    ver: Counter[str] = Counter()
    for c in rows:
        outcomes[outcome(c)] += 1
        tc = c.get("tcpcrypt") or {}
        tep = (c.get("eno") or {}).get("negotiated_tep") or tc.get("tep")
        if tep is not None:
            teps[tep_short(tep)] += 1
        if tc.get("aead") is not None:
            aeads[aead_short(tc["aead"])] += 1
        if tc:
            state = verification(c)[0]
            ver["failed" if "fail" in state.lower() else state] += 1
    return Stats(len(rows), outcomes, teps, aeads, ver)


def bar_table(title: str, counts: Counter[str], total: int, style: str = "cyan") -> Table:
    """One labelled bar per value, longest first, with count and share."""
    table = Table(title=title, title_justify="left", show_header=False, box=None,
                  padding=(0, 1), expand=False)
    table.add_column(no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(no_wrap=True)
    top = max(counts.values(), default=0)
    for name, n in counts.most_common():
        width = round(BAR * n / top) if top else 0
        share = f"{100 * n / total:.0f}%" if total else ""
        bar_style = {"negotiated": "green", "absent": "dim"}.get(name, style)
        if name.startswith("fallback"):
            bar_style = "red"
        table.add_row(name, str(n), share, Text("█" * max(width, 1 if n else 0),
                                                  style=bar_style))
    if not counts:
        table.add_row(Text("none", style="dim"), "", "", "")
    return table


def buckets(series: dict[int, int], width: int) -> list[float]:
    """Bytes per second folded into at most ``width`` buckets (the sparkline's data)."""
    if not series:
        return []
    lo, hi = min(series), max(series)
    span = hi - lo + 1
    n = max(1, min(width, span))
    out = [0.0] * n
    for sec, size in series.items():
        out[(sec - lo) * n // span] += size
    return out


class StatsScreen(Screen):
    """``i``: outcome counts, TEPs, AEADs, verification, and bytes over time."""

    BINDINGS = [Binding("escape,q,i", "app.pop_screen", "Back"),
                Binding("j", "scroll_down", show=False), Binding("k", "scroll_up", show=False)]
    DEFAULT_CSS = """
    StatsScreen VerticalScroll { padding: 0 1; }
    StatsScreen Sparkline { height: 6; margin: 0 0 1 0; }
    """

    def __init__(self, rows: list[dict], per_second: dict[int, int], *,
                 complete: bool) -> None:
        super().__init__()
        self.rows = rows
        self.per_second = per_second
        self.stats = compute(rows)
        self.complete = complete

    def compose(self) -> ComposeResult:
        st = self.stats
        head = Text()
        n = st.total
        head.append(f"{n} connection{'' if n == 1 else 's'}", style="bold")
        if not self.complete:
            head.append("  (analysis still running: counts so far)", style="yellow")
        with VerticalScroll(id="stats-body"):
            yield Static(head, id="stats-head")
            yield Static(bar_table("ENO outcome per connection", st.outcomes, n),
                         id="stats-outcomes")
            yield Static(bar_table("Negotiated TEP", st.teps, n), id="stats-teps")
            yield Static(bar_table("AEAD", st.aeads, n, "magenta"), id="stats-aeads")
            yield Static(bar_table("Verification (tcpcrypt connections)", st.verification,
                                   sum(st.verification.values()), "yellow"), id="stats-verify")
            total = sum(self.per_second.values())
            secs = (max(self.per_second) - min(self.per_second) + 1) if self.per_second else 0
            peak = max(self.per_second.values(), default=0)
            yield Static(Text(f"Bytes over time: {total:,} bytes in {secs} s, peak "
                              f"{peak:,} bytes/s", style="bold"), id="stats-io-title")
            yield Sparkline(buckets(self.per_second, 120), id="stats-io")
        yield Footer()

    def action_scroll_down(self) -> None:
        """Scroll the statistics."""
        self.query_one("#stats-body", VerticalScroll).scroll_down()

    def action_scroll_up(self) -> None:
        """Scroll the statistics."""
        self.query_one("#stats-body", VerticalScroll).scroll_up()
