"""Findings of the capture and of the selected connection; Enter jumps to the packet.

A finding that reports a broken RFC rule (a conformance violation) shows its code and
RFC section; the conformance view (``r``) lists every rule of the connection."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "note": "cyan"}


@dataclass
class FindingRef:
    """Where a finding points."""

    conn_id: int | None
    packet: int | None
    code: str
    rfc: str | None = None
    """The RFC section of a broken rule (conformance findings only)."""


class FindingsPanel(OptionList):
    """One line per finding: severity, packet, code, message."""

    BINDINGS = [Binding("j", "cursor_down", show=False), Binding("k", "cursor_up", show=False),
                Binding("g", "first", show=False), Binding("G", "last", show=False)]

    class Jump(Message):
        """The user chose a finding."""

        def __init__(self, ref: FindingRef) -> None:
            super().__init__()
            self.ref = ref

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.border_title = "Findings"
        self.refs: list[FindingRef] = []

    def show(self, capture: list[dict], conn: dict | None) -> None:
        """Capture-level findings first, then the selected connection's."""
        self.clear_options()
        self.refs = []
        options: list[Option] = []

        def add(f: dict, conn_id: int | None, where: str) -> None:
            text = Text()
            text.append(f"{f['severity']:<8}", style=SEVERITY_STYLE.get(f["severity"], ""))
            pkt = f.get("packet")
            rfc = f.get("rfc")
            text.append(f"{('#' + str(pkt)) if pkt else '-':>6} ", style="dim")
            text.append(f"{where}{f['code']}", style="bold")
            if rfc:
                text.append(f" [{rfc}]", style="bold magenta")
            text.append(": ")
            text.append(f["message"])
            options.append(Option(text))
            self.refs.append(FindingRef(conn_id, pkt, f["code"], rfc))

        for f in capture:
            add(f, None, "capture ")
        if conn is not None:
            for f in conn.get("findings", []):
                add(f, conn["id"], "")
        if not options:
            options.append(Option(Text("no findings", style="dim"), disabled=True))
            self.refs.append(FindingRef(None, None, ""))
        self.add_options(options)
        n_conn = len(conn.get("findings", [])) if conn else 0
        n_rfc = sum(1 for f in conn.get("findings", []) if f.get("rfc")) if conn else 0
        self.border_subtitle = (f"capture {len(capture)} · connection {n_conn}"
                                + (f" · {n_rfc} RFC violations (r)" if n_rfc else ""))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Jump to the finding's packet."""
        event.stop()
        if 0 <= event.option_index < len(self.refs):
            self.post_message(self.Jump(self.refs[event.option_index]))
