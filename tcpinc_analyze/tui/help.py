"""The help screen: every key binding."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = [
    ("Tab / Shift+Tab", "next / previous pane"),
    ("j k ↑ ↓, PgUp PgDn, g G", "move in tables, tree, lists (vim keys)"),
    ("Enter / click", "select a row; on a finding: jump to its packet"),
    ("/", "focus the filter box (Esc leaves it)"),
    ("filter", "text, an address, a port, or field expressions with the field spec's "
               "names: tcpeno.status == fallback, tcpeno.reason == role-conflict, "
               "tcpeno.global.b == 1, tcpcrypt.aead == 0x0010 (or AEAD_CHACHA20_POLY1305), "
               "tcpcrypt.dialect == tcpcryptd-2016, tcpcrypt.nonce_offset_base == after-init, "
               "tcpeno.conformance == rekey-not-answered, tcp.port == 443, "
               "ip.addr == 10.0.0.1; and/or/not, ()"),
    ("s / click a column title", "sort connections by the next column / that column "
                                 "(again: reverse)"),
    ("\\ or z", "maximise the focused pane (again: restore)"),
    ("f", "follow stream of the selected connection (h: hex/text, e: export, Esc: back)"),
    ("r", "conformance: the selected connection's RFC 8547/8548 checklist, violations "
          "first (Enter: go to the rule's packet, a: all rules / violations only, Esc: back)"),
    ("a", "packet list: whole capture / selected connection"),
    ("o", "load a key log (file picker); decryption results update in place"),
    ("x", "export the selected connection's JSON"),
    ("p", "export the selected connection's plaintext"),
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

    def compose(self) -> ComposeResult:
        table = Table(title="tcpinc-analyze tui: keys", expand=True, show_lines=False)
        table.add_column("Key", style="bold cyan", no_wrap=True)
        table.add_column("Action")
        for key, action in KEYS:
            table.add_row(key, action)
        with VerticalScroll():
            yield Static(table, id="help-table")
