"""The help screen: every key binding."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = [
    ("Tab / Shift+Tab", "next / previous pane (below 160 columns the panes are stacked: "
                        "Tab brings the hidden ones into view)"),
    ("[ ]  or click a tab", "previous / next tab of the stacked layouts"),
    ("j k ↑ ↓, PgUp PgDn, g G, h l", "move in tables, tree, lists, hex (vim keys; h l "
                                    "scroll tables sideways)"),
    ("Enter / click", "select a row; on a finding: jump to its packet; a click on a ladder "
                      "arrow selects its packet"),
    ("/", "in the connections, ladder or findings: the connections filter (Enter applies, "
          "Esc leaves); in the packet list, detail tree or hex pane: search"),
    ("n N", "next / previous match of the last search"),
    ("Y", "packet filter for the packet list (Enter applies, empty clears)"),
    ("filters", "Wireshark-style, the field spec's names: tcpeno.status == fallback, "
                "tcpeno.reason == role-conflict, tcpeno.global.b == 1, "
                "tcpeno.negotiated_tep == X448, tcpcrypt.aead == CHACHA20_POLY1305, "
                "tcp.port in {443 8443}, ip.addr == 10.0.0.0/8, tcp.stream == 3, "
                "tcpcrypt.frame.clen > 1000 (packets), frame contains \"GET\"; and/or/not, "
                "(); see README 'Display filters'"),
    ("ctrl+g", "go to a packet by number"),
    ("m  '  \"", "mark / unmark a packet; next / previous mark"),
    ("y", "copy the selected field's value, the highlighted bytes or the row"),
    ("s / S / click a column title", "sort connections by the next column / reverse / "
                                     "that column (again: reverse); addresses and ports "
                                     "sort as numbers"),
    ("\\ or z", "maximise the focused pane (again: restore)"),
    ("f", "follow stream (tcpcrypt: decrypted; plain TCP: its payload; h: hex/text, "
          "e: export, g G: top/bottom, Esc: back)"),
    ("r", "conformance: the selected connection's RFC 8547/8548 checklist, violations "
          "first (Enter: go to the rule's packet, a: all rules / violations only, Esc: back)"),
    ("i", "statistics: ENO outcomes and fallback reasons with bars, TEPs, AEADs, "
          "verification, bytes over time"),
    ("a", "packet list: whole capture / selected connection"),
    ("o", "load a key log (file picker); decryption results update in place"),
    ("x", "export the selected connection's JSON"),
    ("p", "export the selected connection's data, complete (decrypted, or plain TCP "
          "payload)"),
    ("c", "cancel indexing / analysis"),
    ("? or F1", "this help"),
    ("q", "quit"),
]


class HelpScreen(ModalScreen[None]):
    """Key bindings."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90%; height: 80%; border: thick $accent;
                                  background: $panel; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss(None)", "Close")]

    def __init__(self, notices: list[str] | None = None) -> None:
        super().__init__()
        self.notices = list(notices or [])

    def compose(self) -> ComposeResult:
        table = Table(title="tcpinc-analyze tui: keys", expand=True, show_lines=False)
        table.add_column("Key", style="bold cyan", no_wrap=True)
        table.add_column("Action")
        for key, action in KEYS:
            table.add_row(key, action)
        with VerticalScroll():
            yield Static(table, id="help-table")
            if self.notices:
                yield Static(Text("\n".join(["Warnings so far:"] + [f"• {m}" for m in
                                                                      self.notices])),
                             id="help-notices")
