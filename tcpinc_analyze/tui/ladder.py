"""The handshake ladder: SYN, SYN-ACK, ACK (with ENO), Init1/Init2, first frames, rekeys,
FIN/RST as arrows between A and B, with times relative to the first packet."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widgets import Static

from ..analysis.connection import ACK, FIN, RST, SYN
from .model import ConnDetail

ARROW_WIDTH = 34


def _eno_text(sub: dict | None) -> str:
    """``ENO b=1 0x23 0x24+data`` from a report's ``eno.syn_a``/``syn_b`` (the b bit is
    the global suboption's, or ``b=0 (implicit)`` when the option has none)."""
    if not sub:
        return "no ENO"
    parts = []
    if sub.get("implicit_global"):
        parts.append("b=0 (implicit)")
    for s in sub.get("suboptions", []):
        if "tcpeno.global" in s:
            bits = f"b={s['tcpeno.global.b']}"
            if s.get("tcpeno.global.a"):
                bits += " a=1"
            if s.get("tcpeno.global.z"):
                bits += f" z={s['tcpeno.global.z']}"
            parts.append(bits)
        else:
            parts.append(f"0x{s['tcpeno.tep']:02x}" + ("+data" if "tcpeno.tep.data" in s
                                                        else ""))
    enc = " exp" if sub.get("encoding") == "experimental" else ""
    bad = " MALFORMED" if sub.get("malformed") else ""
    many = f" (+{sub['count'] - 1} more options)" if sub.get("count", 1) > 1 else ""
    return f"ENO{enc} " + " ".join(parts) + bad + many


def ladder_events(detail: ConnDetail) -> list[tuple[int, str, str]]:
    """(packet, direction, label) in packet order."""
    rep = detail.report
    eno = rep.get("eno") or {}
    pk = eno.get("packets") or {}
    events: list[tuple[int, str, str]] = []
    seen_syn: set[str] = set()
    for number in detail.packets:
        flags = detail.flags.get(number)
        direction = detail.pkt_dir.get(number)
        if flags is None or direction is None:
            continue
        if flags & SYN:
            kind = "SYN-ACK" if flags & ACK else "SYN"
            key = f"{kind}{direction}"
            if key in seen_syn:
                events.append((number, direction, f"{kind} (retransmitted)"))
                continue
            seen_syn.add(key)
            if number == pk.get("syn_a"):
                sub = _eno_text(eno.get("syn_a"))
            elif number == pk.get("syn_b"):
                sub = _eno_text(eno.get("syn_b"))
            else:
                sub = ""
            events.append((number, direction, f"{kind} {sub}".strip()))
        elif number == pk.get("ack_a"):
            has = eno.get("ack_a_has_eno")
            events.append((number, direction, "ACK " + ("ENO" if has else "no ENO")))
        if flags & FIN:
            events.append((number, direction, "FIN"))
        if flags & RST:
            events.append((number, direction, "RST"))
    for direction, init in detail.init.items():
        name = type(init.parsed).__name__ if init.parsed is not None else (
            "Init1" if direction == "ab" else "Init2")
        events.append((init.packet, direction, f"{name} ({len(init.raw)} bytes)"))
    firsts: set[str] = set()
    for fr in detail.frames:
        verdict = {"ok": " ✓", "failed": " ✗ FAILED"}.get(fr.verdict, "")
        if fr.direction not in firsts:
            firsts.add(fr.direction)
            events.append((fr.packet, fr.direction, f"first frame, clen {fr.length}{verdict}"))
        if fr.rekey:
            events.append((fr.packet, fr.direction,
                           f"rekey → gen {fr.generation} @{fr.stream_offset}{verdict}"))
        if fr.flags is not None and fr.flags & 0x01:
            events.append((fr.packet, fr.direction, f"FINp frame{verdict}"))
    order = {"SYN": 0, "SYN-": 0, "ACK": 1, "Init": 2, "firs": 3, "reke": 4, "FINp": 5,
             "FIN": 6, "RST": 7}
    events.sort(key=lambda e: (e[0], order.get(e[2][:4], order.get(e[2][:3], 9))))
    return events


HEADER_LINES = 3
"""Lines above the first arrow (the hosts, then the lifelines)."""


def render_ladder(detail: ConnDetail, width: int = 0) -> Text:
    """The diagram as rich text; ``width`` (the pane's) widens the arrows so long
    labels (IPv6 hosts, ENO suboptions) are not cut."""
    rep = detail.report
    a, b = rep.get("a", "A"), rep.get("b", "B")
    arrow_width = max(ARROW_WIDTH, min(width - 22, 80)) if width else ARROW_WIDTH
    t0 = min(detail.ts.values()) if detail.ts else 0
    out = Text()
    out.append(f"{'time':>10}  ", style="bold")
    out.append(f"A {a}", style="bold cyan")
    out.append("\n")
    out.append(" " * 12)
    out.append(f"B {b}".rjust(arrow_width + 2), style="bold magenta")
    out.append("\n")
    pad = " " * 12
    out.append(f"{pad}│{' ' * arrow_width}│\n")
    for packet, direction, label in ladder_events(detail):
        t = (detail.ts.get(packet, t0) - t0) / 1e9
        style = "cyan" if direction == "ab" else "magenta"
        if "FAILED" in label or label in ("RST",):
            style = "bold red"
        inner = arrow_width - 2
        text = f" {label} "
        if len(text) > inner - 2:
            text = text[:inner - 3] + "… "
        if direction == "ab":
            line = ("─" + text).ljust(inner, "─") + "▶"
            out.append(f"{t:10.6f}  ")
            out.append("├", style=style)
            out.append(line + "─", style=style)
            out.append("┤", style=style)
        else:
            line = "◀" + (text + "─").rjust(inner, "─")
            out.append(f"{t:10.6f}  ")
            out.append("├", style=style)
            out.append("─" + line, style=style)
            out.append("┤", style=style)
        out.append(f" #{packet}\n", style="dim")
    return out


class Ladder(Static):
    """The diagram for the selected connection; a click on an arrow selects its
    packet."""

    class Clicked(Message):
        """An arrow was clicked."""

        def __init__(self, packet: int) -> None:
            super().__init__()
            self.packet = packet

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__("Select a connection", id=id)
        self.border_title = "Handshake ladder"
        self.events: list[tuple[int, str, str]] = []
        self.detail: ConnDetail | None = None
        self.drawn_width = 0

    def show(self, detail: ConnDetail | None, placeholder: str = "Analysing connection…"
             ) -> None:
        """Draw the ladder of a connection (or a placeholder)."""
        self.detail = detail
        if detail is None:
            self.events = []
            self.update(placeholder)
            return
        self.events = ladder_events(detail)
        self.drawn_width = self.size.width
        self.update(render_ladder(detail, self.size.width))

    def on_resize(self) -> None:
        """Redraw for the new width."""
        if self.detail is not None and self.size.width != self.drawn_width:
            self.show(self.detail)

    def on_click(self, event: events.Click) -> None:
        """Select the clicked arrow's packet."""
        offset = event.get_content_offset(self)
        if offset is None:
            return
        i = offset.y - HEADER_LINES
        if 0 <= i < len(self.events):
            self.post_message(self.Clicked(self.events[i][0]))
