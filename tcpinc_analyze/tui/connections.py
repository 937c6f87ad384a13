"""The connections table: one row per connection report, filterable and sortable."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from rich.text import Text

from ..filtering import Filter
from ..wire import TCPCRYPT_TEPS, aead_name
from .virtual_table import Column, VirtualTable

ENO_STYLE = {"negotiated": "bold green", "fallback": "bold red", "absent": "dim",
             "unknown": "magenta"}


def verification(conn: dict) -> tuple[str, str]:
    """The verification state of a connection and its style."""
    tc = conn.get("tcpcrypt")
    if not tc:
        return "-", "dim"
    dec = tc.get("decrypted")
    if not dec:
        return "no keys", "yellow"
    ok = sum((dec.get(d) or {}).get("ok", 0) for d in ("ab", "ba"))
    failed = sum((dec.get(d) or {}).get("failed", 0) for d in ("ab", "ba"))
    lost = sum((dec.get(d) or {}).get("lost", 0) for d in ("ab", "ba"))
    undecryptable = sum((dec.get(d) or {}).get("undecryptable", 0) for d in ("ab", "ba"))
    if failed and not ok:
        return "FAILED", "bold red"
    if failed:
        return f"{failed} failed", "red"
    if undecryptable and not ok:
        return "no key/gen", "yellow"
    if undecryptable:
        return f"ok,{undecryptable} nokey", "yellow"
    if lost:
        return f"ok,{lost} lost", "yellow"
    return "verified", "green"


def tep_short(tep: int | None) -> str:
    """``0x23 X25519``."""
    if tep is None:
        return ""
    info = TCPCRYPT_TEPS.get(tep)
    return f"0x{tep:02x} {info.name.replace('ECDHE ', '')}" if info else f"0x{tep:02x}"


def aead_short(aead: int | None) -> str:
    """``CHACHA20_POLY1305``."""
    return "" if aead is None else aead_name(aead).replace("AEAD_", "")


def _frames(conn: dict, d: str) -> int | None:
    tc = conn.get("tcpcrypt")
    return tc["frames"][d] if tc else None


def endpoint_key(ep: str) -> tuple[int, int, int]:
    """Sort key of ``ip:port``: IPv4 before IPv6, then the address and the port as numbers
    (10.0.0.9 before 10.0.0.10, port 80 before 443)."""
    host, _, port = ep.rpartition(":")
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return (9, 0, 0)
    return (ip.version, int(ip), int(port) if port.isdigit() else 0)


SORT_KEYS: list[Callable[[dict], object]] = [
    lambda c: c["id"], lambda c: endpoint_key(c["a"]), lambda c: endpoint_key(c["b"]),
    lambda c: (c["eno"]["status"], c["eno"]["reason"] or ""),
    lambda c: c["eno"]["negotiated_tep"] or 0,
    lambda c: (c.get("tcpcrypt") or {}).get("aead") or 0,
    lambda c: _frames(c, "ab") or 0, lambda c: _frames(c, "ba") or 0,
    lambda c: verification(c)[0], lambda c: len(c["findings"]),
]


class ConnectionsTable(VirtualTable):
    """Connections, drawn from ``rows`` through the filtered, sorted ``view``."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__([
            Column("#", 4), Column("A", 22), Column("B", 22), Column("ENO", 24),
            Column("TEP", 11), Column("AEAD", 17), Column("A→B", 5), Column("B→A", 5),
            Column("Verify", 11), Column("Find", 4)], id=id)
        self.rows: list[dict] = []
        self.by_id: dict[int, int] = {}
        self.view: list[int] = []
        self.predicate: Filter | None = None
        self.get_row = self._cells
        self.border_title = "Connections"

    def on_resize(self) -> None:
        """Narrow panes get narrower endpoint and ENO columns (IPv4 endpoints fit)."""
        wide = self.size.width >= 110
        widths = (22, 22, 24) if wide else (16, 16, 20)
        if (self.columns[1].width, self.columns[2].width, self.columns[3].width) != widths:
            self.columns[1].width, self.columns[2].width, self.columns[3].width = widths
            self.invalidate()
        super().on_resize()

    # ------------------------------------------------------------------ data
    def add_reports(self, reports: list[dict]) -> None:
        """New or updated connections (an update replaces the row in place)."""
        for rep in reports:
            at = self.by_id.get(rep["id"])
            if at is None:
                self.by_id[rep["id"]] = len(self.rows)
                self.rows.append(rep)
            else:
                self.rows[at] = rep
        self.rebuild()

    def clear_rows(self) -> None:
        """Forget every row."""
        self.rows.clear()
        self.by_id.clear()
        self.rebuild()

    def rebuild(self) -> None:
        """Re-apply filter and sort, keeping the cursor on the same connection; when that
        connection is filtered out, the panes follow the row the cursor lands on."""
        current = self.current()
        pred = self.predicate
        view = [i for i, r in enumerate(self.rows) if pred is None or pred(r)]
        if self.sort_column is not None:
            key = SORT_KEYS[self.sort_column]
            view.sort(key=lambda i: key(self.rows[i]), reverse=self.sort_reverse)
        self.view = view
        self.set_rows(len(view))
        if current is not None:
            self.select_id(current["id"], announce=False)
        now = self.current()
        if (now or {}).get("id") != (current or {}).get("id"):
            self.post_message(self.Highlighted(self, self.cursor_row))
        self.border_subtitle = f"{len(view)} of {len(self.rows)}" + (
            f" · filter: {self.predicate.text}" if self.predicate is not None else "")

    def set_filter(self, predicate: Filter | None) -> None:
        """Show only rows the predicate accepts."""
        self.predicate = predicate
        self.rebuild()

    def sort_by(self, column: int) -> None:
        """Sort by a column; the same column again reverses."""
        if self.sort_column == column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False
        self.rebuild()

    def reverse_sort(self) -> None:
        """Reverse the order (by id when no column is sorted yet)."""
        if self.sort_column is None:
            self.sort_column = 0
        self.sort_reverse = not self.sort_reverse
        self.rebuild()

    def current(self) -> dict | None:
        """The connection under the cursor."""
        if not self.view or self.cursor_row >= len(self.view):
            return None
        return self.rows[self.view[self.cursor_row]]

    def select_id(self, conn_id: int, *, announce: bool = True) -> bool:
        """Move the cursor to a connection by id (False when filtered out)."""
        at = self.by_id.get(conn_id)
        if at is None or at not in self.view:
            return False
        row = self.view.index(at)
        if announce or row != self.cursor_row:
            self.cursor_row = row
        return True

    # ------------------------------------------------------------------ rendering
    def _cells(self, i: int) -> list[str | Text]:
        c = self.rows[self.view[i]]
        eno = c["eno"]
        status = eno["status"]
        eno_text = Text(status, style=ENO_STYLE.get(status, ""))
        if eno["reason"] and status != "absent":
            eno_text.append(f" {eno['reason']}", style="dim")
        tc = c.get("tcpcrypt") or {}
        ver, vstyle = verification(c)
        nf = len(c["findings"])
        worst = min((f["severity"] for f in c["findings"]),
                    key=["error", "warning", "note"].index, default=None)
        fstyle = {"error": "bold red", "warning": "yellow", "note": "cyan"}.get(worst or "", "")
        ab, ba = _frames(c, "ab"), _frames(c, "ba")
        return [str(c["id"]), c["a"], c["b"], eno_text,
                tep_short(eno["negotiated_tep"] or tc.get("tep")), aead_short(tc.get("aead")),
                "" if ab is None else str(ab), "" if ba is None else str(ba),
                Text(ver, style=vstyle), Text(str(nf) if nf else "", style=fstyle)]
