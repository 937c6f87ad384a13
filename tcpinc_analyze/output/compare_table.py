"""Terminal output of ``compare``: one row per connection, the study's summary, and
(``--details``) a side-by-side ladder of both vantage points."""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ..analysis.compare import CAUSES, CompareResult, Comparison, SegRec, option_list
from ..tcp.options import OPTION_NAMES

CAUSE_STYLE = {"path-stripped-eno": "bold red", "path-modified-eno": "bold red",
               "path-added-eno": "bold yellow", "peer-without-eno": "yellow",
               "not-negotiated": "dim", "negotiated": "bold green"}
LADDER_ROWS = 40
"""Segments per connection in the ladder (handshake and the first exchanges)."""
_FLAGS = ((0x02, "S"), (0x10, "."), (0x08, "P"), (0x01, "F"), (0x04, "R"))


def _side(rec: dict, which: str) -> Text:
    side = rec[which]
    if side is None:
        return Text("-", style="dim")
    return Text(f"#{side['id']} {side['a']} > {side['b']}")


def _changes(rec: dict) -> str:
    parts = []
    tr = rec["translated"]
    if tr["addresses"] or tr["ports"]:
        parts.append("NAT " + "+".join(k for k in ("addresses", "ports") if tr[k]))
    shift = rec["seq_shift"]
    if any(shift[d] for d in ("ab", "ba") if shift[d] is not None):
        parts.append("seq " + "/".join(f"{d}{'+' if shift[d] else '='}" for d in ("ab", "ba")
                                      if shift[d] is not None))
    kinds: dict[str, set[str]] = {}
    for c in rec["option_changes"]:
        name = OPTION_NAMES.get(c["kind"], str(c["kind"]))
        kinds.setdefault(f"{name} {c['change']}", set()).add(c["segment"])
    parts += [f"{k} ({','.join(sorted(v))})" for k, v in sorted(kinds.items())]
    if rec["resegmented"]["ab"] or rec["resegmented"]["ba"]:
        parts.append("resegmented " + "/".join(d for d in ("ab", "ba")
                                                if rec["resegmented"][d]))
    changed = [d for d in ("ab", "ba") if rec["payload_changed"][d]]
    if changed:
        parts.append("payload changed " + "/".join(changed))
    lost = [f"{d} {rec['only_in_first'][d]}" for d in ("ab", "ba") if rec["in"] == "both"
            and rec["only_in_first"][d]]
    if lost:
        parts.append("only in FIRST: " + ", ".join(lost))
    return "; ".join(parts) or "-"


def compare_table(result: CompareResult) -> Table:
    """One row per connection seen in either capture."""
    table = Table(title=f"FIRST {result.first.name}  vs  SECOND {result.second.name}",
                  title_justify="left", header_style="bold", show_lines=False)
    for name, kw in (("id", {"justify": "right"}), ("in", {}), ("FIRST", {}), ("SECOND", {}),
                     ("matched by", {}), ("what the path did", {}), ("cause", {})):
        table.add_column(name, **kw)
    for rec in result.records:
        table.add_row(str(rec["id"]), rec["in"], _side(rec, "first"), _side(rec, "second"),
                      ", ".join(rec["matched_by"]) or "-", _changes(rec),
                      Text(rec["cause"], style=CAUSE_STYLE.get(rec["cause"], "")))
    return table


def summary_table(result: CompareResult) -> Table:
    """The counts a measurement study reports."""
    s = result.summary()
    table = Table(title="summary", title_justify="left", header_style="bold", show_header=True)
    table.add_column("what")
    table.add_column("connections", justify="right")
    for k in ("both", "first", "second"):
        label = {"both": "seen at both points", "first": "only in FIRST",
                 "second": "only in SECOND"}[k]
        table.add_row(label, str(s["in"][k]))
    for cause in CAUSES:
        table.add_row(Text(f"cause {cause}", style=CAUSE_STYLE.get(cause, "")),
                      str(s["cause"][cause]))
    for item in s["option_changes"]:
        name = OPTION_NAMES.get(item["kind"], "option")
        table.add_row(f"option {item['kind']} ({name}) {item['change']} in {item['segment']}",
                      str(item["connections"]))
    table.add_row("addresses or ports translated", str(s["translated"]))
    table.add_row("re-segmented", str(s["resegmented"]))
    table.add_row("payload changed", str(s["payload_changed"]))
    return table


def summary_line(result: CompareResult) -> str:
    """One line under the tables: clock offset and orientation."""
    s = result.summary()
    off = s["clock_offset"]
    near = {"first": "FIRST is nearer A", "second": "SECOND is nearer A",
            None: "which point is nearer A is not known (no delay seen)"}[s["near_a"]]
    offset = f"SECOND's clock is {off:+.6f} s from FIRST's" if off is not None else \
        "no clock offset could be estimated"
    return (f"{s['connections']} connection(s): {s['in']['both']} at both points, "
            f"{s['in']['first']} only in FIRST, {s['in']['second']} only in SECOND; "
            f"{offset}; {near}")


def _seg_text(rec: SegRec | None, base: int | None, t0: int, offset: int, d: str,
              second: bool) -> Text:
    if rec is None:
        return Text("")
    flags = "".join(ch for bit, ch in _FLAGS if rec.flags & bit)
    rel = (rec.seq - base) % (1 << 32) if base is not None and not rec.flags & 0x02 else None
    t = (rec.ts - (offset if second else 0) - t0) / 1e6
    arrow = "A>B" if d == "ab" else "B>A"
    opts = " ".join(OPTION_NAMES.get(k, str(k)).split(" ")[0] if k != 69 else "ENO"
                    for k, _w in option_list(rec.options))
    text = Text(f"{rec.packet:>5} {t:9.3f}ms {arrow} {flags:<3}")
    text.append(f" {'' if rel is None else rel:>7} len {rec.length:<5}")
    if opts:
        text.append(f" [{opts}]", style="cyan")
    return text


def ladder(comp: Comparison, offset: int | None) -> Table:
    """Both vantage points side by side: each row one segment as FIRST and SECOND saw it
    (times in FIRST's clock, stream offsets relative to each side's ISN)."""
    rec = comp.record
    table = Table(title=f"#{rec['id']} {rec['verdict']}", title_justify="left",
                  header_style="bold", show_lines=False, expand=False)
    table.add_column("FIRST")
    table.add_column("SECOND")
    views = {}
    if comp.pair is not None:
        views = {"first": comp.pair.first, "second": comp.pair.second}
    elif comp.only is not None:
        views = {rec["in"]: comp.only}
    off = offset or 0
    times = [r.ts - (off if r is b else 0) for a, b, _d in comp.ladder for r in (a, b)
             if r is not None]
    t0 = min(times) if times else 0
    for n, (a, b, d) in enumerate(comp.ladder):
        if n >= LADDER_ROWS:
            table.add_row(Text(f"... {len(comp.ladder) - n} more", style="dim"), "")
            break
        cells = []
        for which, seg in (("first", a), ("second", b)):
            view = views.get(which)
            base = view.side(d).base if view is not None else None
            cells.append(_seg_text(seg, base, t0, off, d, which == "second"))
        if a is not None and b is not None and a.options != b.options:
            cells[1].stylize("bold")
        table.add_row(*cells)
    return table


def print_compare(out: Console, result: CompareResult, *, details: bool) -> None:
    """The whole table output."""
    if not result.records:
        out.print("no TCP connections in either capture")
        return
    out.print(compare_table(result))
    if details:
        for comp in result.comparisons:
            out.print(ladder(comp, result.clock_offset_ns))
    out.print(Group(summary_table(result)))
    out.print(summary_line(result))
