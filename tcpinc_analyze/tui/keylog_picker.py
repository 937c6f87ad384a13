"""A modal file picker for key logs (DirectoryTree), with a path box for typing."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Input, Label


class KeylogTree(DirectoryTree):
    """Directories and files that look like key logs (or anything, after ``.``)."""

    SUFFIXES = (".keys", ".keylog", ".log", ".txt")

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        """Hide dot files and files that are not key logs."""
        return [p for p in paths if not p.name.startswith(".")
                and (p.is_dir() or p.suffix in self.SUFFIXES)]


class KeylogPicker(ModalScreen[str | None]):
    """Returns the chosen path, or None."""

    DEFAULT_CSS = """
    KeylogPicker { align: center middle; }
    KeylogPicker > Vertical { width: 80%; height: 80%; border: thick $accent;
                              background: $panel; padding: 0 1; }
    KeylogPicker KeylogTree { height: 1fr; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, start: str = ".") -> None:
        super().__init__()
        self.start = start

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Load a key log: choose a file (Enter) or type a path below")
            yield KeylogTree(self.start, id="keylog-tree")
            yield Input(placeholder="path to a key log, Enter to load", id="keylog-path")

    def on_mount(self) -> None:
        self.query_one(KeylogTree).focus()

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        """A file was chosen in the tree."""
        event.stop()
        self.dismiss(str(event.path))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """A path was typed."""
        event.stop()
        if event.value.strip():
            self.dismiss(event.value.strip())
