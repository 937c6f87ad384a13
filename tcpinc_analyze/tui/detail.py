"""The detail tree of the selected packet (field names from the shared field spec)."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from .dissect import Dissection, Node


class DetailTree(Tree[Node]):
    """Layers and fields; highlighting a node tells the hex view which bytes it covers."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("l", "expand_node", "Expand", show=False),
        Binding("h", "collapse_node", "Collapse", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "Bottom", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__("No packet selected", id=id)
        self.show_root = False
        self.guide_depth = 2
        self.border_title = "Packet details"
        self.dissection: Dissection | None = None

    def show(self, dissection: Dissection | None) -> None:
        """Replace the tree with a packet's fields, expanding the interesting layers."""
        self.dissection = dissection
        self.clear()
        if dissection is None:
            return
        for node in dissection.nodes:
            self._add(self.root, node, depth=0)
        self.root.expand()
        self.move_cursor_to_line(0)

    def _add(self, parent: TreeNode[Node], node: Node, depth: int) -> None:
        label = Text(node.label)
        if node.abbrev:
            label.append(f"  [{node.abbrev}]", style="dim")
        if "FAILED" in node.label or "MALFORMED" in node.label or node.label.startswith(
                ("[error", "[ERROR")):
            label.stylize("bold red", 0, len(node.label))
        elif node.label.startswith("[warning"):
            label.stylize("yellow", 0, len(node.label))
        if node.children:
            branch = parent.add(label, data=node)
            for child in node.children:
                self._add(branch, child, depth + 1)
            if node.expanded is not None:
                if node.expanded:
                    branch.expand()
                return
            interesting = node.abbrev is not None or node.label.startswith(("Options", "TCP-ENO"))
            if interesting or node.label.startswith(("Transmission", "tcpcrypt")):
                branch.expand()
        else:
            parent.add_leaf(label, data=node)

    def all_nodes(self) -> list[TreeNode[Node]]:
        """Every node in tree order (collapsed ones too)."""
        out: list[TreeNode[Node]] = []
        stack = list(reversed(self.root.children))
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.children))
        return out

    def reveal(self, node: TreeNode[Node]) -> None:
        """Expand a node's ancestors and put the cursor on it."""
        parent = node.parent
        while parent is not None and parent is not self.root:
            parent.expand()
            parent = parent.parent
        self.call_after_refresh(self._cursor_to, node)
        self._cursor_to(node)

    def _cursor_to(self, node: TreeNode[Node]) -> None:
        if node.line >= 0:
            self.move_cursor(node)
            self.scroll_to_node(node, animate=False)

    def action_scroll_home(self) -> None:
        """First node."""
        self.move_cursor_to_line(0)
        self.scroll_home(animate=False)

    def action_scroll_end(self) -> None:
        """Last visible node."""
        self.move_cursor_to_line(max(0, self.last_line))
        self.scroll_end(animate=False)

    def action_expand_node(self) -> None:
        """Expand the node under the cursor."""
        node = self.cursor_node
        if node is not None:
            node.expand()

    def action_collapse_node(self) -> None:
        """Collapse the node under the cursor (or go to its parent)."""
        node = self.cursor_node
        if node is None:
            return
        if node.is_expanded and node.children:
            node.collapse()
        elif node.parent is not None and node.parent is not self.root:
            self.move_cursor(node.parent)
