"""The packet list of the selected connection (or of the whole capture), decoded lazily."""

from __future__ import annotations

import ipaddress
from array import array
from collections.abc import Sequence

from rich.text import Text
from textual.cache import LRUCache

from ..capture.decode import DecodeProblem, IpDecoder, link_ip_offset
from ..eno import GlobalSuboption, decode_option
from ..tcp.options import walk_options
from ..wire import ENO_EXPERIMENTAL_KINDS, ENO_KIND
from .dissect import flag_text
from .index import CaptureIndex
from .model import ConnDetail
from .virtual_table import Column, VirtualTable

DIR_STYLE = {"ab": "cyan", "ba": "magenta"}


def _eno_summary(options: bytes, syn: bool) -> str:
    """``ENO [b=1 0x23 0x24+data]`` for SYN-form options, ``ENO ack`` otherwise."""
    walked, _f, _bad = walk_options(options)
    found = []
    for kind, off, odata in walked:
        if kind == ENO_KIND or kind in ENO_EXPERIMENTAL_KINDS:
            eno = decode_option(kind, odata, off)
            if eno is None:
                continue
            exp = "exp " if eno.encoding == "experimental" else ""
            if not syn:
                found.append(f"ENO {exp}ack" + (f" +{len(eno.contents)}B" if eno.contents
                                                 else ""))
                continue
            parts = []
            for sub in eno.suboptions:
                if isinstance(sub, GlobalSuboption):
                    bits = f"b={int(sub.b)}" + (" a=1" if sub.a else "") + (
                        f" z={sub.z}" if sub.z else "")
                    parts.append(bits)
                else:
                    parts.append(f"0x{sub.tep:02x}" + ("+data" if sub.data is not None else ""))
            bad = " MALFORMED" if eno.malformed else ""
            found.append(f"ENO {exp}[{' '.join(parts)}]{bad}")
    return "  ".join(found)


def endpoint(addr: bytes, port: int) -> str:
    """``10.0.0.1:443`` / ``[fe80::1]:443``, as the reports write endpoints."""
    ip = ipaddress.ip_address(addr)
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


class PacketList(VirtualTable):
    """Rows are packet numbers; each row is decoded the first time it is drawn."""

    MIN_FLEX = 6

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__([Column("No.", 7), Column("Time", 10), Column("Source", 21),
                          Column("Destination", 21), Column("Dir", 3), Column("Flags", 11),
                          Column("Len", 5), Column("Info", 0)], id=id)
        self.index: CaptureIndex | None = None
        self.numbers: Sequence[int] = array("I")
        self.detail: ConnDetail | None = None
        self.conn: dict | None = None
        self.t0 = 0
        self.decoded: LRUCache[int, list] = LRUCache(4096)
        self.dirs: dict[int, str] = {}
        self.marks: set[int] = set()
        self.get_row = self._cells
        self.row_style = self._style
        self.border_title = "Packets"
        self.all_packets = False
        self.total: int | None = None
        """Packets before the packet filter (None: no filter)."""

    def on_resize(self) -> None:
        """Narrow panes get narrower address columns (IPv4 endpoints still fit)."""
        width = 21 if self.size.width >= 110 else 15
        if self.columns[2].width != width:
            self.columns[2].width = self.columns[3].width = width
            self.invalidate()
        super().on_resize()

    def show(self, numbers: Sequence[int], detail: ConnDetail | None, t0: int,
             conn: dict | None = None, *, total: int | None = None) -> None:
        """Show these packets (a connection's list, a range over the whole capture, or
        what the packet filter kept of either)."""
        self.numbers = numbers
        self.detail = detail
        self.conn = conn
        self.t0 = t0
        self.total = total
        self.decoded.clear()
        self.dirs.clear()
        self.set_rows(len(numbers), keep_cursor=False)
        n = len(numbers)
        self.border_subtitle = (f"{n} of {total} packets" if total is not None
                                else f"{n} packet{'' if n == 1 else 's'}")

    def set_detail(self, detail: ConnDetail | None) -> None:
        """The connection's deep run arrived: redraw Info with tcpcrypt details."""
        self.detail = detail
        self.decoded.clear()
        self.invalidate()

    def current(self) -> int | None:
        """The packet number under the cursor."""
        if not self.row_count or self.cursor_row >= len(self.numbers):
            return None
        return self.numbers[self.cursor_row]

    def row_of(self, number: int) -> int | None:
        """The row showing a packet number (None when it is not in the list)."""
        import bisect

        i = bisect.bisect_left(self.numbers, number)
        if i < len(self.numbers) and self.numbers[i] == number:
            return i
        return None

    def select_packet(self, number: int) -> bool:
        """Move the cursor to a packet number."""
        row = self.row_of(number)
        if row is None:
            return False
        self.cursor_row = row
        return True

    def toggle_mark(self) -> int | None:
        """Mark (or unmark) the packet under the cursor."""
        number = self.current()
        if number is None:
            return None
        self.marks ^= {number}
        self.decoded.clear()
        self.invalidate()
        return number

    def next_mark(self, step: int) -> int | None:
        """Go to the next (step 1) or previous (-1) marked packet in this list."""
        rows = sorted(r for r in (self.row_of(m) for m in self.marks) if r is not None)
        if not rows:
            return None
        cur = self.cursor_row
        after = [r for r in rows if (r > cur if step > 0 else r < cur)]
        row = (after[0] if step > 0 else after[-1]) if after else (
            rows[0] if step > 0 else rows[-1])
        self.cursor_row = row
        return self.numbers[row]

    def direction_of(self, number: int) -> str | None:
        """``ab``/``ba``: from the deep run, else from the connection's endpoints."""
        if self.detail is not None:
            direction = self.detail.pkt_dir.get(number)
            if direction is not None:
                return direction
        return self.dirs.get(number)

    def _style(self, i: int) -> str:
        if i >= len(self.numbers):
            return ""
        number = self.numbers[i]
        self._cells(i)  # decodes the row once, noting its direction
        style = DIR_STYLE.get(self.direction_of(number) or "", "")
        if number in self.marks:
            style = (style + " on dark_blue").strip()
        return style

    def _cells(self, i: int) -> list:
        number = self.numbers[i]
        cached = self.decoded.get(number)
        if cached is not None:
            return cached
        cells = self._decode(number)
        self.decoded[number] = cells
        return cells

    def _decode(self, number: int) -> list:
        rec = self.index.record(number) if self.index else None
        if rec is None:
            return [str(number), "", "", "", "", "", "", "(not indexed yet)"]
        t = f"{(rec.ts_ns - self.t0) / 1e9:.6f}"
        try:
            pos = link_ip_offset(rec.linktype, rec.data)
            seg = None if pos is None else IpDecoder().decode(
                number, rec.ts_ns, rec.data, pos, rec.orig_len - len(rec.data))
        except (KeyError, DecodeProblem) as exc:
            return [str(number), t, "", "", "", "", str(len(rec.data)),
                    Text(f"malformed: {exc}", style="red")]
        if seg is None:
            return [str(number), t, "", "", "", "", str(len(rec.data)), "non-TCP"]
        src, dst = endpoint(seg.src, seg.sport), endpoint(seg.dst, seg.dport)
        d = self.detail
        direction = d.pkt_dir.get(number) if d else None
        if direction is None and self.conn is not None:
            direction = "ab" if src == self.conn.get("a") else (
                "ba" if src == self.conn.get("b") else None)
        if direction is not None:
            self.dirs[number] = direction
        arrow = {"ab": "A→B", "ba": "B→A"}.get(direction or "", "")
        mark = "● " if number in self.marks else ""
        info: list[str] = []
        eno = _eno_summary(seg.options, bool(seg.flags & 0x02)) if seg.options else ""
        if eno:
            info.append(eno)
        if d is not None and direction is not None:
            init = d.init.get(direction)
            if init is not None and init.packet == number:
                info.append(type(init.parsed).__name__ if init.parsed is not None
                            else ("Init1" if direction == "ab" else "Init2"))
            frames = d.frames_ending_in(number)
            if frames:
                ok = sum(f.verdict == "ok" for f in frames)
                bad = sum(f.verdict == "failed" for f in frames)
                rk = sum(f.rekey for f in frames)
                fin = sum(f.flags is not None and bool(f.flags & 0x01) for f in frames)
                text = f"{len(frames)} frame{'s' if len(frames) > 1 else ''}"
                if rk:
                    text += f" ({rk} rekey)"
                if fin:
                    text += " FINp"
                if bad:
                    text += f" [{bad} FAILED]"
                elif ok:
                    text += " [verified]"
                info.append(text)
        if seg.payload and len(info) == bool(eno):
            info.append(f"data {len(seg.payload)}")
        if seg.missing:
            info.append(f"[{seg.missing} bytes not captured]")
        return [mark + str(number), t, src, dst, arrow, flag_text(seg.flags),
                str(len(seg.payload)), "  ".join(info)]
