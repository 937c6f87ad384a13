"""The packet list of the selected connection (or of the whole capture), decoded lazily."""

from __future__ import annotations

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


class PacketList(VirtualTable):
    """Rows are packet numbers; each row is decoded the first time it is drawn."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__([Column("No.", 8), Column("Time", 11), Column("Dir", 4),
                          Column("Flags", 12), Column("Len", 6), Column("Info", 0)], id=id)
        self.index: CaptureIndex | None = None
        self.numbers: Sequence[int] = array("I")
        self.detail: ConnDetail | None = None
        self.t0 = 0
        self.decoded: LRUCache[int, list] = LRUCache(4096)
        self.get_row = self._cells
        self.row_style = self._style
        self.border_title = "Packets"
        self.all_packets = False

    def show(self, numbers: Sequence[int], detail: ConnDetail | None, t0: int) -> None:
        """Show these packets (a connection's list, or a range over the whole capture)."""
        self.numbers = numbers
        self.detail = detail
        self.t0 = t0
        self.decoded.clear()
        self.set_rows(len(numbers), keep_cursor=False)
        self.border_subtitle = f"{len(numbers)} packets"

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

    def select_packet(self, number: int) -> bool:
        """Move the cursor to a packet number."""
        import bisect

        i = bisect.bisect_left(self.numbers, number)
        if i < len(self.numbers) and self.numbers[i] == number:
            self.cursor_row = i
            return True
        return False

    def _style(self, i: int) -> str:
        if self.detail is None or i >= len(self.numbers):
            return ""
        direction = self.detail.pkt_dir.get(self.numbers[i])
        return DIR_STYLE.get(direction or "", "")

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
            return [str(number), "", "", "", "", "(not indexed yet)"]
        t = f"{(rec.ts_ns - self.t0) / 1e9:.6f}"
        try:
            pos = link_ip_offset(rec.linktype, rec.data)
            seg = None if pos is None else IpDecoder().decode(
                number, rec.ts_ns, rec.data, pos, rec.orig_len - len(rec.data))
        except (KeyError, DecodeProblem) as exc:
            return [str(number), t, "", "", str(len(rec.data)), Text(f"malformed: {exc}",
                                                                      style="red")]
        if seg is None:
            return [str(number), t, "", "", str(len(rec.data)), "non-TCP"]
        d = self.detail
        direction = d.pkt_dir.get(number) if d else None
        arrow = {"ab": "A→B", "ba": "B→A"}.get(direction or "", "")
        info = [f"{seg.sport} → {seg.dport}"]
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
        if seg.payload and len(info) == 1 + bool(eno):
            info.append(f"data {len(seg.payload)}")
        if seg.missing:
            info.append(f"[{seg.missing} bytes not captured]")
        return [str(number), t, arrow, flag_text(seg.flags), str(len(seg.payload)),
                "  ".join(info)]
