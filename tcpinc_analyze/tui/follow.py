"""Follow stream: a connection's decrypted data, both directions in stream order."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.geometry import Size
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Footer, Static

from .model import Chunk, ConnDetail

STYLES = {"ab": Style(color="cyan"), "ba": Style(color="magenta")}
FAILED = Style(color="white", bgcolor="red", bold=True)


def _printable(data: bytes) -> str:
    out = []
    for byte in data:
        if byte == 9:
            out.append("    ")
        elif 32 <= byte < 127:
            out.append(chr(byte))
        elif byte == 13:
            out.append("")
        else:
            out.append("·")
    return "".join(out)


def follow_lines(chunks: list[Chunk], hexdump: bool) -> list[tuple[Style, str]]:
    """Each display line with its style (direction colour or failure marking)."""
    lines: list[tuple[Style, str]] = []
    for chunk in chunks:
        style = FAILED if chunk.failed else STYLES[chunk.direction]
        if chunk.failed:
            lines.append((style, f"✗ packet {chunk.packet} {chunk.direction}: "
                                 + chunk.data.decode()))
            continue
        if hexdump:
            arrow = "A→B" if chunk.direction == "ab" else "B→A"
            lines.append((Style(dim=True), f"── packet {chunk.packet} {arrow}, "
                                           f"{len(chunk.data)} bytes"))
            for i in range(0, len(chunk.data), 16):
                part = chunk.data[i:i + 16]
                hexes = " ".join(f"{b:02x}" for b in part)
                text = "".join(chr(b) if 32 <= b < 127 else "." for b in part)
                lines.append((style, f"{i:08x}  {hexes:<48} {text}"))
        else:
            parts = chunk.data.split(b"\n")
            for i, part in enumerate(parts):
                if i == len(parts) - 1 and not part:
                    break
                lines.append((style, _printable(part)))
    return lines


class FollowView(ScrollView, can_focus=True):
    """The interleaved stream, rendered line by line (Line API)."""

    DEFAULT_CSS = "FollowView { background: $surface; }"
    BINDINGS = [Binding("j", "scroll_down", show=False), Binding("k", "scroll_up", show=False),
                Binding("space", "page_down", show=False)]

    def __init__(self, detail: ConnDetail, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.detail = detail
        self.hexdump = False
        self.lines: list[tuple[Style, str]] = []
        self.rebuild()

    def rebuild(self) -> None:
        """Recompute lines (after the hex/text toggle)."""
        self.lines = follow_lines(self.detail.follow(), self.hexdump)
        width = max((len(t) for _s, t in self.lines[:5000]), default=10)
        self.virtual_size = Size(width, len(self.lines))
        self.refresh()

    def render_line(self, y: int) -> Strip:
        """One line of the stream."""
        scroll_x, scroll_y = self.scroll_offset
        i = scroll_y + y
        if i >= len(self.lines):
            return Strip.blank(self.size.width, self.rich_style)
        style, text = self.lines[i]
        strip = Strip([Segment(text, self.rich_style + style)])
        return strip.crop_extend(scroll_x, scroll_x + self.size.width, self.rich_style)


class FollowScreen(Screen):
    """Full-screen follow view; ``h`` toggles hex, ``e`` exports, Esc returns."""

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("h,x", "toggle_hex", "Hex/text"),
        Binding("e", "app.export('plaintext')", "Export plaintext"),
    ]

    def __init__(self, detail: ConnDetail) -> None:
        super().__init__()
        self.detail = detail

    def compose(self) -> ComposeResult:
        rep = self.detail.report
        head = Text()
        head.append(f"Connection {self.detail.conn_id}  ", style="bold")
        head.append(f"A {rep.get('a')}", style="cyan")
        head.append("  ")
        head.append(f"B {rep.get('b')}", style="magenta")
        pb = self.detail.plaintext_bytes
        head.append(f"   A→B {pb['ab']} bytes, B→A {pb['ba']} bytes", style="dim")
        failed = sum(c.failed for c in self.detail.chunks)
        if failed:
            head.append(f"   {failed} failed-frame marker(s)", style="bold red")
        if self.detail.dropped:
            head.append(f"   ({self.detail.dropped} bytes beyond the view limit)", style="dim")
        tc = rep.get("tcpcrypt")
        dec = (tc or {}).get("decrypted") or {}
        if tc and dec:
            gens = "/".join(str((dec.get(d) or {}).get("generation", 0)) for d in ("ab", "ba"))
            head.append(f"   keys: {tc.get('keys_from')}, generations A→B/B→A {gens}",
                        style="dim")
            if tc.get("nonce_offset_base"):
                head.append(f", frame-ID offsets {tc['nonce_offset_base']}", style="dim")
            nokey = sum((dec.get(d) or {}).get("undecryptable", 0) for d in ("ab", "ba"))
            if nokey:
                head.append(f"   {nokey} frame(s) without a key for their generation",
                            style="yellow")
        with Vertical():
            yield Static(head, id="follow-head")
            if not tc:
                yield Static("This connection does not run tcpcrypt: nothing to decrypt.",
                             id="follow-note")
            elif not tc.get("decrypted"):
                yield Static("No key-log entry matches this connection: press Esc, then o to "
                             "load a key log.", id="follow-note")
            view = FollowView(self.detail, id="follow-view")
            view.border_title = "Follow stream (text)"
            yield view
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(FollowView).focus()

    def action_toggle_hex(self) -> None:
        """Switch between text and hex dump."""
        view = self.query_one(FollowView)
        view.hexdump = not view.hexdump
        view.border_title = f"Follow stream ({'hex' if view.hexdump else 'text'})"
        view.rebuild()
