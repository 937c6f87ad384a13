"""Rich terminal output: one row per connection, findings, a summary line, details.

Every cell and label is a ``Text``, never a markup string: addresses such as
``[fd00::a]:443``, file names and finding messages are shown as they are.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from ..analysis.engine import CaptureSummary
from ..analysis.report import ConnectionReport
from ..fieldspec import value_name
from ..findings import Severity
from ..words import plural
from .secrets_view import secret_lines

STATUS_STYLE = {"negotiated": "bold green", "fallback": "bold yellow", "absent": "dim",
                "unknown": "magenta"}
SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.NOTE: "cyan"}
FINDINGS_SHOWN = 6
CAPPED = "findings-capped"


def _tep(value: int | None) -> str:
    if value is None:
        return ""
    return f"0x{value:02x} {str(value_name('tep', value)).removeprefix('TCPCRYPT_')}"


def _pair(d: dict | None, key: str) -> str:
    if not d:
        return ""
    return f"{d[key]['ab']}/{d[key]['ba']}"


def _verdict(tc: dict | None) -> Text:
    if not tc:
        return Text("")
    dec = tc.get("decrypted")
    if dec is None:
        return Text("no keys", style="dim")
    failed = dec["ab"]["failed"] + dec["ba"]["failed"]
    ok = dec["ab"]["ok"] + dec["ba"]["ok"]
    if failed:
        return Text(f"{ok} ok, {failed} FAILED" if ok else f"{failed} FAILED",
                    style="bold red")
    lost = dec["ab"].get("lost", 0) + dec["ba"].get("lost", 0)
    undecryptable = dec["ab"].get("undecryptable", 0) + dec["ba"].get("undecryptable", 0)
    extra = [f"{lost} lost"] if lost else []
    extra += [f"{undecryptable} no key"] if undecryptable else []
    if extra:
        return Text(", ".join([f"{ok} ok", *extra]), style="yellow")
    return Text(f"{ok} ok", style="green")


def _row_facts(r: ConnectionReport) -> dict[str, Text]:
    """Each cell of a connection's row, as Text (never parsed as markup)."""
    status = r.eno["status"]
    detail = (_tep(r.eno["negotiated_tep"]) if status == "negotiated"
              else r.eno["reason"] or "")
    if r.eno.get("encoding") == "experimental":
        detail += " (exp)"
    tc = r.tcpcrypt
    aead = (str(value_name("aead", tc["aead"])).removeprefix("AEAD_")
            if tc and tc["aead"] else "")
    if tc and tc["resumed"]:
        aead = (aead + " " if aead else "") + "resumed"
        if tc.get("resumes") is not None:
            aead += f" <- #{tc['resumes']}"
    counts = Counter(f.severity for f in r.findings)
    total = sum(f.code != CAPPED for f in r.findings) + sum(r.suppressed.values())
    worst = r.worst
    findings = Text(str(total), style=SEVERITY_STYLE[worst] if worst else "")
    if counts[Severity.ERROR]:
        findings = Text(f"{total} ({counts[Severity.ERROR]} err)",
                        style=SEVERITY_STYLE[Severity.ERROR])
    return {"id": Text(str(r.id)), "a": Text(r.a), "b": Text(r.b),
            "status": Text(status, style=STATUS_STYLE.get(status, "")),
            "detail": Text(detail), "aead": Text(aead), "frames": Text(_pair(tc, "frames")),
            "rekeys": Text(_pair(tc, "rekeys")), "verified": _verdict(tc),
            "findings": findings}


def connections_table(reports: Sequence[ConnectionReport], title: str,
                      width: int | None = None) -> Table:
    """The main table; when it does not fit ``width`` columns, a compact one that
    stacks related cells instead of cutting every column."""
    rows = [_row_facts(r) for r in reports]
    table = _full_table(rows, title)
    if width is not None:
        console = Console(width=1 << 16, file=io.StringIO())  # room for the natural width
        if Measurement.get(console, console.options, table).maximum > width:
            table = _compact_table(rows, title)
    return table


def _full_table(rows: list[dict[str, Text]], title: str) -> Table:
    table = Table(title=Text(title), title_justify="left", header_style="bold", expand=False)
    for name, kw in (("id", {"justify": "right"}), ("A", {}), ("B", {}), ("ENO", {}),
                     ("TEP / reason", {}), ("AEAD", {}), ("frames A>B/B>A", {"justify": "right"}),
                     ("rekeys", {"justify": "right"}), ("verified", {}),
                     ("findings", {"justify": "right"})):
        table.add_column(name, **kw)
    for c in rows:
        table.add_row(c["id"], c["a"], c["b"], c["status"], c["detail"], c["aead"],
                      c["frames"], c["rekeys"], c["verified"], c["findings"])
    return table


def _compact_table(rows: list[dict[str, Text]], title: str) -> Table:
    """Narrow terminals (80 columns): A over B, the ENO outcome over its TEP or reason,
    the AEAD over the frame and rekey counts and the verification; an IPv4 endpoint,
    every reason and AEAD name fit whole, longer cells wrap (fold), none is cut."""
    table = Table(title=Text(title, overflow="fold"), title_justify="left",
                  header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, expand=False,
                  padding=(0, 0))  # the box's blank divider separates the columns
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("A / B", overflow="fold", min_width=21)
    table.add_column("ENO", overflow="fold", min_width=22)
    table.add_column("tcpcrypt", overflow="fold", min_width=17)
    table.add_column("findings", justify="right", overflow="fold")
    for c in rows:
        lines = []
        if c["aead"].plain:
            lines.append(Text(c["aead"].plain.replace("_", "-")))
        if c["frames"].plain:
            counts = f"frames {c['frames'].plain}"
            if c["rekeys"].plain not in ("", "0/0"):
                counts += f", rekeys {c['rekeys'].plain}"
            lines.append(Text(counts))
        if c["verified"].plain:
            lines.append(c["verified"])
        detail = Text(c["detail"].plain.replace("ECDHE_", ""))
        table.add_row(c["id"], Text("\n").join([c["a"], c["b"]]),
                      Text("\n").join([c["status"], detail]) if detail.plain else c["status"],
                      Text("\n").join(lines), c["findings"])
    return table


def print_findings(console: Console, reports: Sequence[ConnectionReport],
                   summary: CaptureSummary, *, limit: int = FINDINGS_SHOWN) -> None:
    """Findings per connection (errors and warnings first), then capture-level ones."""
    for f in summary.findings:
        console.print(Text.assemble(("capture ", "bold"), (f"{f.severity:8s}",
                                                           SEVERITY_STYLE[f.severity]),
                                    f.message))
    for r in reports:
        shown = sorted(r.findings, key=lambda f: (f.severity != Severity.ERROR,
                                                  f.severity != Severity.WARNING,
                                                  f.packet or 0))
        for f in shown[:limit]:
            where = f"pkt {f.packet}" if f.packet else ""
            rfc = (f" [{f.code}, {f.rfc}]", "magenta") if f.rfc else ("", "")
            console.print(Text.assemble((f"#{r.id:<4d}", "bold"), (f"{f.severity:8s}",
                                                                   SEVERITY_STYLE[f.severity]),
                                        (f"{where:10s}", "dim"), f.message, rfc))
        if len(shown) > limit:
            console.print(Text(f"#{r.id:<4d}... {plural(len(shown) - limit, 'more finding')} "
                               "(--all-findings or --format json)", style="dim"))
        for f in shown[limit:]:
            if f.code == CAPPED:  # the count of a capped code is always shown
                console.print(Text.assemble((f"#{r.id:<4d}", "bold"), (f"{f.severity:8s}",
                                            SEVERITY_STYLE[f.severity]), (" " * 10, "dim"),
                                            f.message))


def summary_line(reports: Sequence[ConnectionReport], summary: CaptureSummary) -> Text:
    """One line: packets, connections by outcome, what decryption achieved, findings by
    severity. Decryption is counted honestly: a connection whose frames fail is not
    "decrypted"."""
    by_status = Counter(r.eno["status"] for r in reports)
    sev = Counter(f.severity for r in reports for f in r.findings if f.code != CAPPED)
    sev.update(f.severity for f in summary.findings if f.code != CAPPED)
    parts = [plural(summary.packets, "packet"), plural(len(reports), "connection")]
    parts += [f"{by_status[s]} {s}" for s in ("negotiated", "fallback", "absent", "unknown")
              if by_status[s]]
    decs = [r.tcpcrypt["decrypted"] for r in reports if r.tcpcrypt
            and r.tcpcrypt.get("decrypted")]
    failing = sum(1 for d in decs if d["ab"]["failed"] + d["ba"]["failed"])
    decrypted = sum(1 for d in decs if d["ab"]["ok"] + d["ba"]["ok"]
                    and not d["ab"]["failed"] + d["ba"]["failed"])
    if decs:
        parts.append(f"{decrypted} decrypted")
    if failing:
        parts.append(f"{failing} failing authentication")
    text = Text(", ".join(parts) + "; findings: ")
    text.append(plural(sev[Severity.ERROR], "error"),
                style="red" if sev[Severity.ERROR] else "")
    text.append(f", {plural(sev[Severity.WARNING], 'warning')}, "
                f"{plural(sev[Severity.NOTE], 'note')}")
    hidden = sum(summary.suppressed.values()) + sum(sum(r.suppressed.values())
                                                     for r in reports)
    if hidden:
        text.append(f" (and {hidden} repeated ones counted, not listed)")
    return text


def details_tree(r: ConnectionReport) -> Tree:
    """Per-connection decoded fields, named as in the spec (tcpeno.*, tcpcrypt.*), and
    with --details each frame's verdict, plaintext flags and key generation."""
    tree = Tree(Text.assemble((f"connection {r.id} ", "bold"), f"{r.a} -> {r.b}  ",
                              (r.community_id, "dim")))
    eno = tree.add(Text.assemble(("tcpeno.status", "bold"), f" = {r.eno['status']}",
                                 f"  (reason: {r.eno['reason']})" if r.eno["reason"] else ""))
    for role in ("syn_a", "syn_b"):
        opt = r.eno.get(role)
        pkt = r.eno["packets"][role]
        label = {"syn_a": "A's SYN", "syn_b": "B's SYN"}[role]
        if opt is None:
            eno.add(Text(f"{label} (packet {pkt}): no ENO option" if pkt
                         else f"{label}: not seen"))
            continue
        node = eno.add(Text(f"{label} (packet {pkt}): kind {opt['kind']} ({opt['encoding']}), "
                            f"raw {opt['raw']}" + ("  MALFORMED" if opt["malformed"] else "")))
        for sub in opt["suboptions"]:
            node.add(Text(", ".join(f"{k} = {_fmt(v)}" for k, v in sub.items())))
    if r.eno["negotiated_tep"] is not None:
        eno.add(Text(f"tcpeno.negotiated_tep = {_tep(r.eno['negotiated_tep'])}"))
    tc = r.tcpcrypt
    if tc:
        node = tree.add(Text("tcpcrypt", style="bold"))
        for name in ("init1", "init2"):
            msg = tc.get(name)
            if msg:
                sub = node.add(Text(f"{name.capitalize()} ({plural(msg['length'], 'byte')})"))
                for key, value in msg.items():
                    if key != "length":
                        sub.add(Text(f"tcpcrypt.{name}.{key} = {_fmt(value)}"))
        node.add(Text(f"frames A->B {tc['frames']['ab']} (rekeys {tc['rekeys']['ab']}), "
                      f"B->A {tc['frames']['ba']} (rekeys {tc['rekeys']['ba']})"))
        for key in ("dialect", "nonce_offset_base", "keys_from", "resume_index"):
            if tc.get(key) is not None:
                node.add(Text(f"tcpcrypt.{key} = {_fmt(tc[key])}"))
        if tc.get("session_id"):
            node.add(Text(f"tcpeno.session_id = {tc['session_id']}"))
        for label, value in secret_lines(r):  # only with --show-secrets
            node.add(Text(f"{label} = {value}"))
        frames = r.extra.get("frame_list")
        if frames:
            flist = node.add(Text(f"frames ({len(frames)})"))
            for fr in frames[:200]:
                flist.add(_frame_line(fr))
            if len(frames) > 200:
                flist.add(Text(f"... {len(frames) - 200} more (see --format json)"))
    return tree


VERDICT_STYLE = {"verified": "green", "failed": "bold red", "undecryptable": "yellow",
                 "no-key": "dim"}


def _frame_line(fr: dict) -> Text:
    """One frame: its verdict first (coloured), then every field."""
    verdict = fr.get("verdict")
    line = Text()
    if verdict:
        line.append(f"{verdict.upper()} ", style=VERDICT_STYLE.get(verdict, ""))
    line.append(", ".join(f"{k} = {_fmt(v)}" for k, v in fr.items() if k != "verdict"))
    return line


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value} (0x{value:x})"
    if isinstance(value, list):
        return "[" + ", ".join(f"0x{v:02x}" if isinstance(v, int) else str(v)
                               for v in value) + "]"
    return str(value)


CONFORMANCE_STYLE = {"held": "green", "violated": "bold red", "not-observable": "dim"}


def conformance_tables(console: Console, checked: Sequence[tuple[ConnectionReport, list]],
                       *, show_all: bool = False) -> None:
    """Per connection, its rule verdicts: violations always, the rest with ``show_all``."""
    from ..conformance import MUST, VIOLATED

    total = Counter()
    for report, results in checked:
        counts = Counter(r.status for r in results)
        total.update(counts)
        title = Text.assemble((f"connection {report.id} ", "bold"), f"{report.a} -> {report.b}"
                              f"  ENO {report.eno.get('status')}: "
                              f"{counts['violated']} violated, {counts['held']} held, "
                              f"{counts['not-observable']} not observable")
        rows = [r for r in results if show_all or r.status == VIOLATED]
        if not rows:
            console.print(title)
            continue
        table = Table(title=title, title_justify="left", header_style="bold")
        for name in ("rule", "RFC", "level", "status", "packets", "detail"):
            table.add_column(name, overflow="fold")
        for r in rows:
            detail = "; ".join(r.messages) if r.messages else (r.reason or r.rule.text)
            level = Text(r.rule.level, style="" if r.rule.level == MUST else "dim")
            packets = ", ".join(map(str, r.packets[:8])) + (" ..." if len(r.packets) > 8 else "")
            table.add_row(Text(r.rule.code), Text(r.rule.rfc), level,
                          Text(r.status, style=CONFORMANCE_STYLE[r.status]), Text(packets),
                          Text(detail))
        console.print(table)
    console.print(Text(f"{plural(len(checked), 'connection')}: "
                       f"{plural(total['violated'], 'rule violation')}, "
                       f"{plural(total['held'], 'rule')} held, "
                       f"{total['not-observable']} not observable"))
