"""A virtualised table on Textual's Line API: only visible rows are built and rendered.

Rows come from a callback, so the table holds no data of its own; rendered strips sit in
an LRU cache. Half a million rows cost nothing until they scroll into view.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

Cell = str | Text


@dataclass
class Column:
    """A column: title, width in cells (0 = take the rest), sort key name."""

    title: str
    width: int
    key: str = ""


class VirtualTable(ScrollView, can_focus=True):
    """Rows ``0..row_count-1`` fetched through ``get_row(i)`` when they are shown."""

    DEFAULT_CSS = """
    VirtualTable { background: $surface; scrollbar-size-horizontal: 0; }
    VirtualTable:focus { background-tint: $foreground 4%; }
    """
    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup,ctrl+b", "page(-1)", "Page up", show=False),
        Binding("pagedown,ctrl+f", "page(1)", "Page down", show=False),
        Binding("home,g", "jump(0)", "Top", show=False),
        Binding("end,G", "jump(-1)", "Bottom", show=False),
        Binding("left,h", "scroll_columns(-8)", "Left", show=False),
        Binding("right,l", "scroll_columns(8)", "Right", show=False),
        Binding("enter", "select", "Select", show=False),
    ]

    cursor_row: reactive[int] = reactive(0, always_update=True, repaint=False)

    class Highlighted(Message):
        """The cursor moved to a row."""

        def __init__(self, table: VirtualTable, row: int) -> None:
            super().__init__()
            self.table = table
            self.row = row

        @property
        def control(self) -> VirtualTable:
            """The table."""
            return self.table

    class Selected(Highlighted):
        """Enter or a click on a row."""

    class HeaderClicked(Message):
        """A click on a column title."""

        def __init__(self, table: VirtualTable, column: int) -> None:
            super().__init__()
            self.table = table
            self.column = column

    def __init__(self, columns: Sequence[Column], *, id: str | None = None,  # noqa: A002
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.columns = list(columns)
        self.row_count = 0
        self.get_row: Callable[[int], Sequence[Cell]] = lambda i: ()
        self.row_style: Callable[[int], str] = lambda i: ""
        self._cache: LRUCache[tuple, Strip] = LRUCache(1024)
        self.generation = 0
        self.sort_column: int | None = None
        self.sort_reverse = False

    # ------------------------------------------------------------------ data
    def set_rows(self, count: int, *, keep_cursor: bool = True) -> None:
        """Change the row count (and invalidate rendered rows)."""
        self.row_count = count
        self.generation += 1
        self._cache.clear()
        self.virtual_size = Size(max(self._total_width(), self.size.width), count + 1)
        if not keep_cursor or self.cursor_row >= count:
            self.cursor_row = max(0, min(self.cursor_row if keep_cursor else 0, count - 1))
        self.refresh()

    def invalidate(self) -> None:
        """Re-render every row (their data changed, not their number)."""
        self.generation += 1
        self._cache.clear()
        self.refresh()

    MIN_FLEX = 12
    """Cells the flexible (width 0) column keeps before the table scrolls sideways."""

    def _total_width(self) -> int:
        """Fixed columns plus a minimal flexible one: wider views stretch the flexible
        column rather than show a horizontal scrollbar (which would hide the last row)."""
        return sum(c.width + 1 for c in self.columns if c.width) + (
            self.MIN_FLEX if any(not c.width for c in self.columns) else 0)

    @property
    def visible_rows(self) -> int:
        """Rows on screen below the header (scrollbars excluded)."""
        return max(1, self.scrollable_content_region.height - 1)

    # ------------------------------------------------------------------ movement
    def watch_cursor_row(self, old: int, new: int) -> None:
        self._cache.clear()
        self.refresh()
        self.scroll_to_row(new)
        if self.row_count:
            self.post_message(self.Highlighted(self, new))

    def scroll_to_row(self, row: int) -> None:
        """Keep ``row`` on screen."""
        visible = self.visible_rows
        top = int(self.scroll_y)
        if row < top:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= top + visible:
            self.scroll_to(y=row - visible + 1, animate=False, immediate=True)

    def move_to(self, row: int) -> None:
        """Put the cursor on a row."""
        if self.row_count:
            self.cursor_row = max(0, min(row, self.row_count - 1))

    def action_cursor(self, delta: int) -> None:
        """Move the cursor by ``delta`` rows."""
        self.move_to(self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        """Move by a page."""
        self.move_to(self.cursor_row + direction * max(1, self.visible_rows - 1))

    def action_jump(self, where: int) -> None:
        """First or last row."""
        self.move_to(0 if where == 0 else self.row_count - 1)

    def action_select(self) -> None:
        """Announce the current row as selected."""
        if self.row_count:
            self.post_message(self.Selected(self, self.cursor_row))

    def action_scroll_columns(self, cells: int) -> None:
        """Scroll sideways (long Info columns, narrow terminals)."""
        self.scroll_to(x=max(0, self.scroll_x + cells), animate=False)

    def on_click(self, event: events.Click) -> None:
        """A click on the header sorts, on a row selects it (coordinates inside the
        border: a click on row N's line selects row N)."""
        offset = event.get_content_offset(self)
        if offset is None:
            return
        y = offset.y
        if y == 0:
            x = offset.x + int(self.scroll_x)
            pos = 0
            for i, col in enumerate(self.columns):
                width = col.width or 10_000
                if pos <= x < pos + width + 1:
                    self.post_message(self.HeaderClicked(self, i))
                    return
                pos += width + 1
            return
        row = int(self.scroll_y) + y - 1
        if 0 <= row < self.row_count:
            self.cursor_row = row
            self.post_message(self.Selected(self, row))

    # ------------------------------------------------------------------ rendering
    def _widths(self, total: int) -> list[int]:
        fixed = sum(c.width + 1 for c in self.columns if c.width)
        return [c.width or max(8, total - fixed) for c in self.columns]

    def _line(self, cells: Sequence[Cell], widths: list[int], style: Style,
              post: Style | None = None) -> list[Segment]:
        """A row's segments: ``style`` under the cells' own styles (the direction colour),
        ``post`` over them (the cursor's reverse video)."""
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, (cell, width) in enumerate(zip(cells, widths, strict=False)):
            piece = cell if isinstance(cell, Text) else Text(str(cell))
            piece = piece.copy()
            piece.truncate(width, overflow="ellipsis", pad=True)
            text.append_text(piece)
            if i < len(widths) - 1:
                text.append(" ")
        return list(Segment.apply_style(text.render(self.app.console), style, post))

    def render_line(self, y: int) -> Strip:
        """One screen line: the header, or the row scrolled there."""
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        total = max(width + scroll_x, self._total_width())
        widths = self._widths(total)
        if y == 0:
            key: tuple = ("h", self.generation, total, self.sort_column, self.sort_reverse)
            strip = self._cache.get(key)
            if strip is None:
                titles: list[Cell] = []
                for i, col in enumerate(self.columns):
                    mark = ""
                    if i == self.sort_column:
                        mark = " ▼" if self.sort_reverse else " ▲"
                    titles.append(col.title + mark)
                strip = Strip(self._line(titles, widths, self.rich_style + Style(
                    bold=True, reverse=False, underline=True)))
                self._cache[key] = strip
            return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)
        row = scroll_y + y - 1
        if row >= self.row_count:
            return Strip.blank(width, self.rich_style)
        cursor = row == self.cursor_row
        key = (row, self.generation, total, cursor, self.has_focus)
        strip = self._cache.get(key)
        if strip is None:
            base = self.row_style(row)
            style = self.rich_style + Style.parse(base) if base else self.rich_style
            post = Style(reverse=True, bold=self.has_focus) if cursor else None
            strip = Strip(self._line(self.get_row(row), widths, style, post))
            self._cache[key] = strip
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)

    def on_focus(self) -> None:
        self._cache.clear()
        self.refresh()

    def on_blur(self) -> None:
        self._cache.clear()
        self.refresh()

    def on_resize(self) -> None:
        self.virtual_size = Size(max(self._total_width(), self.size.width), self.row_count + 1)
        self._cache.clear()
