"""Follow stream: a connection's decrypted data, both directions in stream order."""

from __future__ import annotations

import bisect
import re
from array import array

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.cache import LRUCache
from textual.containers import Vertical
from textual.geometry import Size
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Footer, Static

from .model import PLAINTEXT_KEEP, Chunk, ConnDetail

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


def _size(n: int) -> str:
    return f"{n:,} bytes" if n < 1 << 20 else f"{n / (1 << 20):,.1f} MiB ({n:,} bytes)"


def marker_text(chunk: Chunk) -> str:
    """The one line a marker chunk shows (failed frame, elided data, capture gap)."""
    if chunk.elided is not None:
        ab, ba = chunk.elided.get("ab", 0), chunk.elided.get("ba", 0)
        return (f"[… {_size(ab + ba)} not shown from here on (A→B {ab:,}, B→A {ba:,}): the "
                f"view keeps the first {PLAINTEXT_KEEP >> 20} MiB; e exports the whole "
                "stream]")
    if chunk.gap:
        arrow = "A→B" if chunk.direction == "ab" else "B→A"
        return f"[… {chunk.gap:,} bytes of {arrow} missing from the capture]"
    return f"✗ packet {chunk.packet} {chunk.direction}: " + chunk.data.decode(errors="replace")


ELIDED = Style(color="black", bgcolor="yellow", bold=True)


def _is_marker(chunk: Chunk) -> bool:
    return chunk.failed or chunk.elided is not None or bool(chunk.gap)


class FollowView(ScrollView, can_focus=True):
    """The interleaved stream, rendered line by line (Line API): only per-chunk line
    counts are computed up front, a line's text when it scrolls into view."""

    DEFAULT_CSS = "FollowView { background: $surface; }"
    BINDINGS = [Binding("j", "scroll_down", show=False), Binding("k", "scroll_up", show=False),
                Binding("g", "scroll_home", show=False), Binding("G", "scroll_end", show=False),
                Binding("space", "page_down", show=False)]

    def __init__(self, detail: ConnDetail, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.detail = detail
        self.chunks = detail.follow()
        self.hexdump = False
        self.starts = array("Q")
        self.line_count = 0
        self._newlines: LRUCache[int, list[int]] = LRUCache(256)
        self.rebuild()

    def _lines_in(self, chunk: Chunk) -> int:
        if _is_marker(chunk):
            return 1
        if self.hexdump:
            return 1 + (len(chunk.data) + 15) // 16 if chunk.data else 0
        data = chunk.data
        if not data:
            return 0
        return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)

    def rebuild(self) -> None:
        """Recount lines (after the hex/text toggle); cheap even for 16 MiB."""
        starts = array("Q")
        total = 0
        for chunk in self.chunks:
            starts.append(total)
            total += self._lines_in(chunk)
        self.starts = starts
        self.line_count = total
        self._newlines.clear()
        width = max((len(self.line(i)[1]) for i in range(min(total, 2000))), default=10)
        self.virtual_size = Size(max(width, 76 if self.hexdump else 10), total)
        self.refresh()

    @property
    def lines(self) -> list[tuple[Style, str]]:
        """Every line (tests and small streams; the view itself renders lazily)."""
        return [self.line(i) for i in range(self.line_count)]

    def line(self, i: int) -> tuple[Style, str]:
        """Display line ``i`` with its style."""
        c = bisect.bisect_right(self.starts, i) - 1
        chunk = self.chunks[c]
        k = i - self.starts[c]
        if chunk.elided is not None or chunk.gap:
            return ELIDED, marker_text(chunk)
        if chunk.failed:
            return FAILED, marker_text(chunk)
        style = STYLES.get(chunk.direction, Style())
        data = chunk.data
        if self.hexdump:
            if k == 0:
                arrow = "A→B" if chunk.direction == "ab" else "B→A"
                return Style(dim=True), f"── packet {chunk.packet} {arrow}, {len(data)} bytes"
            at = (k - 1) * 16
            part = data[at:at + 16]
            hexes = " ".join(f"{b:02x}" for b in part)
            text = "".join(chr(b) if 32 <= b < 127 else "." for b in part)
            return style, f"{at:08x}  {hexes:<48} {text}"
        breaks = self._newlines.get(c)
        if breaks is None:
            breaks = [-1] + [m.start() for m in re.finditer(b"\n", data)] + [len(data)]
            self._newlines[c] = breaks
        return style, _printable(data[breaks[k] + 1:breaks[k + 1]])

    def render_line(self, y: int) -> Strip:
        """One line of the stream."""
        scroll_x, scroll_y = self.scroll_offset
        i = scroll_y + y
        if i >= self.line_count:
            return Strip.blank(self.size.width, self.rich_style)
        style, text = self.line(i)
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
            head.append(f"   {failed} failed-frame marker{'' if failed == 1 else 's'}",
                        style="bold red")
        if self.detail.dropped:
            head.append(f"   {self.detail.dropped:,} bytes beyond the view's "
                        f"{PLAINTEXT_KEEP >> 20} MiB (marked; e exports all)", style="yellow")
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
            if not tc and self.detail.plain_tcp:
                yield Static("Plain TCP (no tcpcrypt): its TCP payload as sent, in stream "
                             "order.", id="follow-note")
            elif not tc:
                yield Static("This connection does not run tcpcrypt: nothing to decrypt.",
                             id="follow-note")
            elif not tc.get("decrypted"):
                yield Static("No key-log entry matches this connection: press Esc, then o to "
                             "load a key log.", id="follow-note")
            view = FollowView(self.detail, id="follow-view")
            view.border_title = "Follow stream (text)"
            view.border_subtitle = f"{view.line_count:,} lines"
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
        view.border_subtitle = f"{view.line_count:,} lines"
