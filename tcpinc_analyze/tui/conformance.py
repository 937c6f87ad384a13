"""The conformance view: one connection's RFC 8547/8548 checklist.

Every rule a capture can show (``tcpinc_analyze.conformance``) with its verdict: held
(with the packets that showed it), violated (with the findings' messages), or not
observable in this capture (and why). Violations come first; Enter on a rule with
packets goes back to the main screen on its first packet, as a finding does.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from ..analysis.report import ConnectionReport
from ..conformance import HELD, MUST, NOT_OBSERVABLE, VIOLATED, RuleResult, check
from .findings import FindingRef

STATUS_ORDER = {VIOLATED: 0, HELD: 1, NOT_OBSERVABLE: 2}
STATUS_TEXT = {VIOLATED: "VIOLATED", HELD: "held", NOT_OBSERVABLE: "not observable"}
STATUS_STYLE = {VIOLATED: "bold red", HELD: "green", NOT_OBSERVABLE: "dim"}
PACKETS_SHOWN = 8


def checklist(report: ConnectionReport) -> list[RuleResult]:
    """The connection's rule verdicts, violations first (then held, then not
    observable), each group in the order of the RFC rules."""
    results = check(report)
    return sorted(results, key=lambda r: STATUS_ORDER.get(r.status, 9))


def rule_text(result: RuleResult) -> Table:
    """One rule as a (possibly multi-line) option: status, code, RFC, level, packets,
    then the rule, the findings' messages or why it could not be observed (wrapped under
    the rule, not under the status)."""
    rule = result.rule
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(width=14, no_wrap=True)
    grid.add_column(ratio=1)
    head = Text()
    head.append(f"{rule.code:<27}", style="bold")
    head.append(f"{rule.rfc:<20}", style="magenta")
    head.append(f"{rule.level:<7}", style="" if rule.level == MUST else "dim")
    if result.packets:
        shown = ", ".join(f"#{p}" for p in result.packets[:PACKETS_SHOWN])
        more = f" (+{len(result.packets) - PACKETS_SHOWN})" if (
            len(result.packets) > PACKETS_SHOWN) else ""
        head.append(f"packets {shown}{more}", style="cyan")
    grid.add_row(Text(STATUS_TEXT[result.status], style=STATUS_STYLE[result.status]), head)
    grid.add_row("", Text(rule.text, style="italic"))
    if result.status == VIOLATED:
        for message in result.messages:
            grid.add_row("", Text(f"✗ {message}", style="red"))
    elif result.status == NOT_OBSERVABLE and result.reason:
        grid.add_row("", Text(f"({result.reason})", style="dim"))
    return grid


def rule_plain(result: RuleResult) -> str:
    """The option's text without styles (tests, exports)."""
    parts = [STATUS_TEXT[result.status], result.rule.code, result.rule.rfc, result.rule.level,
             " ".join(f"#{p}" for p in result.packets), result.rule.text, *result.messages]
    if result.reason:
        parts.append(f"({result.reason})")
    return " ".join(p for p in parts if p)


class ConformanceList(OptionList):
    """The rules; Enter on one with packets jumps to its first packet."""

    BINDINGS = [Binding("j", "cursor_down", show=False), Binding("k", "cursor_up", show=False)]


class ConformanceScreen(Screen[FindingRef | None]):
    """Full-screen checklist of the selected connection; returns where to jump, if
    anywhere (``a`` toggles all rules / violations only, Esc returns)."""

    BINDINGS = [
        Binding("escape,q,r", "dismiss(None)", "Back"),
        Binding("a", "toggle_all", "All rules / violations"),
    ]
    DEFAULT_CSS = """
    ConformanceScreen #conformance-head { height: auto; padding: 0 1; background: $boost; }
    ConformanceScreen ConformanceList { height: 1fr; border: round $primary-darken-2; }
    """

    def __init__(self, report: ConnectionReport) -> None:
        super().__init__()
        self.report = report
        self.results = checklist(report)
        self.show_all = True
        self.shown: list[RuleResult] = []

    @property
    def counts(self) -> dict[str, int]:
        """Rules per status."""
        out = {VIOLATED: 0, HELD: 0, NOT_OBSERVABLE: 0}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def compose(self) -> ComposeResult:
        rep = self.report
        counts = self.counts
        head = Text()
        head.append(f"Connection {rep.id}  ", style="bold")
        head.append(f"A {rep.a}", style="cyan")
        head.append("  ")
        head.append(f"B {rep.b}", style="magenta")
        status = rep.eno.get("status")
        reason = rep.eno.get("reason")
        head.append(f"   ENO {status}" + (f" ({reason})" if reason and status != "negotiated"
                                          else ""), style="bold")
        head.append("\n")
        head.append(f"{counts[VIOLATED]} violated", style="bold red" if counts[VIOLATED]
                    else "green")
        head.append(f", {counts[HELD]} held", style="green")
        head.append(f", {counts[NOT_OBSERVABLE]} not observable", style="dim")
        head.append("   RFC 8547 (TCP-ENO) and RFC 8548 (tcpcrypt) rules a capture can show; "
                    "Enter: go to the rule's first packet", style="dim")
        with Vertical():
            yield Static(head, id="conformance-head")
            rules = ConformanceList(id="conformance-rules")
            rules.border_title = "Conformance checklist"
            yield rules
        yield Footer()

    def on_mount(self) -> None:
        self.fill()
        self.query_one(ConformanceList).focus()

    def fill(self) -> None:
        """(Re)build the list for the current toggle."""
        rules = self.query_one(ConformanceList)
        rules.clear_options()
        self.shown = [r for r in self.results if self.show_all or r.status == VIOLATED]
        if self.shown:
            rules.add_options([Option(rule_text(r)) for r in self.shown])
        else:
            rules.add_option(Option(Text("no rule is violated on this connection",
                                         style="green"), disabled=True))
        rules.border_subtitle = "all rules" if self.show_all else "violations only"
        if self.shown:
            rules.highlighted = 0

    def action_toggle_all(self) -> None:
        """All rules / violations only."""
        self.show_all = not self.show_all
        self.fill()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Jump to the rule's first packet (back on the main screen)."""
        event.stop()
        if not 0 <= event.option_index < len(self.shown):
            return
        result = self.shown[event.option_index]
        if not result.packets:
            self.notify(f"{result.rule.code}: no packet to show", severity="warning")
            return
        self.dismiss(FindingRef(self.report.id, result.packets[0], result.rule.code,
                                result.rule.rfc))
