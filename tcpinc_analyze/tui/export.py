"""A modal asking where to export the selected connection (JSON or plaintext)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class ExportDialog(ModalScreen[str | None]):
    """Returns the file name to write, or None."""

    DEFAULT_CSS = """
    ExportDialog { align: center middle; }
    ExportDialog > Vertical { width: 70; height: auto; border: thick $accent;
                              background: $panel; padding: 1 2; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, what: str, default: str) -> None:
        super().__init__()
        self.what = what
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Export {self.what} to (Enter writes, Esc cancels):")
            yield Input(self.default, id="export-path")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Write to the typed path."""
        event.stop()
        self.dismiss(event.value.strip() or None)
