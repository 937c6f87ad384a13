"""Hex and ASCII of the selected packet, highlighting the bytes of the selected field."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

WIDTH = 16
HIGHLIGHT = Style(bgcolor="dark_goldenrod", color="black", bold=True)


class HexView(ScrollView, can_focus=True):
    """Offset, 16 bytes of hex, their ASCII; lines rendered on demand."""

    DEFAULT_CSS = "HexView { background: $surface; }"
    BINDINGS = [("j", "scroll_down", "Down"), ("k", "scroll_up", "Up"),
                ("g", "scroll_home", "Top"), ("G", "scroll_end", "Bottom")]

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.data = b""
        self.span = (0, 0)
        self.border_title = "Bytes"

    def show(self, data: bytes, span: tuple[int, int] = (0, 0)) -> None:
        """Show a packet's bytes."""
        self.data = data
        self.span = span
        self.virtual_size = Size(10 + WIDTH * 3 + 1 + WIDTH, (len(data) + WIDTH - 1) // WIDTH)
        self.refresh()

    def highlight(self, start: int, end: int) -> None:
        """Highlight bytes [start, end) and scroll them into view."""
        self.span = (start, end)
        if end > start:
            line = start // WIDTH
            if not self.scroll_y <= line < self.scroll_y + self.size.height:
                self.scroll_to(y=max(0, line - 1), animate=False)
        self.refresh()

    @property
    def highlighted(self) -> bytes:
        """The bytes currently highlighted."""
        return self.data[self.span[0]:self.span[1]]

    def render_line(self, y: int) -> Strip:
        """One line of the dump."""
        scroll_x, scroll_y = self.scroll_offset
        line = scroll_y + y
        base = self.rich_style
        start = line * WIDTH
        if start >= len(self.data):
            return Strip.blank(self.size.width, base)
        chunk = self.data[start:start + WIDTH]
        lo, hi = self.span
        segs = [Segment(f"{start:08x}  ", base + Style(dim=True))]
        text_segs = []
        for i, byte in enumerate(chunk):
            pos = start + i
            style = base + HIGHLIGHT if lo <= pos < hi else base
            sep = " " if i < WIDTH - 1 and lo <= pos + 1 < hi and lo <= pos < hi else None
            segs.append(Segment(f"{byte:02x}", style))
            segs.append(Segment(" ", style if sep else base))
            text_segs.append(Segment(chr(byte) if 32 <= byte < 127 else ".", style))
        segs.append(Segment("   " * (WIDTH - len(chunk)) + " ", base))
        segs.extend(text_segs)
        strip = Strip(segs)
        return strip.crop_extend(scroll_x, scroll_x + self.size.width, base)
