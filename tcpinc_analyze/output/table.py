"""Rich terminal output: one row per connection, findings, a summary line, details."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from ..analysis.engine import CaptureSummary
from ..analysis.report import ConnectionReport
from ..fieldspec import value_name
from ..findings import Severity
from .secrets_view import secret_lines

STATUS_STYLE = {"negotiated": "bold green", "fallback": "bold yellow", "absent": "dim",
                "unknown": "magenta"}
SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.NOTE: "cyan"}
FINDINGS_SHOWN = 6


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
        return Text(f"{failed} FAILED", style="bold red")
    lost = dec["ab"].get("lost", 0) + dec["ba"].get("lost", 0)
    if lost:
        return Text(f"{ok} ok, {lost} lost", style="yellow")
    return Text(f"{ok} ok", style="green")


def connections_table(reports: Sequence[ConnectionReport], title: str) -> Table:
    """The main table."""
    table = Table(title=title, title_justify="left", header_style="bold", expand=False)
    for name, kw in (("id", {"justify": "right"}), ("A", {}), ("B", {}), ("ENO", {}),
                     ("TEP / reason", {}), ("AEAD", {}), ("frames A>B/B>A", {"justify": "right"}),
                     ("rekeys", {"justify": "right"}), ("verified", {}),
                     ("findings", {"justify": "right"})):
        table.add_column(name, **kw)
    for r in reports:
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
        worst = r.worst
        findings = Text(str(len(r.findings)), style=SEVERITY_STYLE[worst] if worst else "")
        if counts[Severity.ERROR]:
            findings = Text(f"{len(r.findings)} ({counts[Severity.ERROR]} err)",
                            style=SEVERITY_STYLE[Severity.ERROR])
        table.add_row(str(r.id), r.a, r.b, Text(status, style=STATUS_STYLE.get(status, "")),
                      detail, aead, _pair(tc, "frames"), _pair(tc, "rekeys"), _verdict(tc),
                      findings)
    return table


def print_findings(console: Console, reports: Sequence[ConnectionReport],
                   summary: CaptureSummary, *, limit: int = FINDINGS_SHOWN) -> None:
    """Findings per connection (errors and warnings first), then capture-level ones."""
    for f in summary.findings:
        console.print(Text.assemble(("capture ", "bold"), (f"{f.severity:7s} ",
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
            console.print(Text(f"#{r.id:<4d}... {len(shown) - limit} more findings "
                               "(--all-findings or --format json)", style="dim"))


def summary_line(reports: Sequence[ConnectionReport], summary: CaptureSummary) -> Text:
    """One line: packets, connections by outcome, findings by severity."""
    by_status = Counter(r.eno["status"] for r in reports)
    sev = Counter(f.severity for r in reports for f in r.findings)
    sev.update(f.severity for f in summary.findings)
    n = len(reports)
    parts = [f"{summary.packets} packets", f"{n} connection{'s' if n != 1 else ''}"]
    parts += [f"{by_status[s]} {s}" for s in ("negotiated", "fallback", "absent", "unknown")
              if by_status[s]]
    decrypted = [r for r in reports if r.tcpcrypt and r.tcpcrypt.get("decrypted")]
    if decrypted:
        parts.append(f"{len(decrypted)} decrypted")
    text = Text(", ".join(parts) + "; findings: ")
    text.append(f"{sev[Severity.ERROR]} errors", style="red" if sev[Severity.ERROR] else "")
    text.append(f", {sev[Severity.WARNING]} warnings, {sev[Severity.NOTE]} notes")
    return text


def details_tree(r: ConnectionReport) -> Tree:
    """Per-connection decoded fields, named as in the spec (tcpeno.*, tcpcrypt.*)."""
    tree = Tree(Text.assemble((f"connection {r.id} ", "bold"), f"{r.a} -> {r.b}  ",
                              (r.community_id, "dim")))
    eno = tree.add(Text.assemble(("tcpeno.status", "bold"), f" = {r.eno['status']}",
                                 f"  (reason: {r.eno['reason']})" if r.eno["reason"] else ""))
    for role in ("syn_a", "syn_b"):
        opt = r.eno.get(role)
        pkt = r.eno["packets"][role]
        label = {"syn_a": "A's SYN", "syn_b": "B's SYN"}[role]
        if opt is None:
            eno.add(f"{label} (packet {pkt}): no ENO option" if pkt else f"{label}: not seen")
            continue
        node = eno.add(f"{label} (packet {pkt}): kind {opt['kind']} ({opt['encoding']}), "
                       f"raw {opt['raw']}" + ("  MALFORMED" if opt["malformed"] else ""))
        for sub in opt["suboptions"]:
            node.add(", ".join(f"{k} = {_fmt(v)}" for k, v in sub.items()))
    if r.eno["negotiated_tep"] is not None:
        eno.add(f"tcpeno.negotiated_tep = {_tep(r.eno['negotiated_tep'])}")
    tc = r.tcpcrypt
    if tc:
        node = tree.add(Text("tcpcrypt", style="bold"))
        for name in ("init1", "init2"):
            msg = tc.get(name)
            if msg:
                sub = node.add(f"{name.capitalize()} ({msg['length']} bytes)")
                for key, value in msg.items():
                    if key != "length":
                        sub.add(f"tcpcrypt.{name}.{key} = {_fmt(value)}")
        node.add(f"frames A->B {tc['frames']['ab']} (rekeys {tc['rekeys']['ab']}), "
                 f"B->A {tc['frames']['ba']} (rekeys {tc['rekeys']['ba']})")
        for key in ("dialect", "nonce_offset_base", "keys_from", "resume_index"):
            if tc.get(key) is not None:
                node.add(f"tcpcrypt.{key} = {_fmt(tc[key])}")
        if tc.get("session_id"):
            node.add(f"tcpeno.session_id = {tc['session_id']}")
        for label, value in secret_lines(r):  # only with --show-secrets
            node.add(Text(f"{label} = {value}"))
        frames = r.extra.get("frame_list")
        if frames:
            flist = node.add(f"frames ({len(frames)})")
            for fr in frames[:200]:
                flist.add(", ".join(f"{k} = {_fmt(v)}" for k, v in fr.items()))
            if len(frames) > 200:
                flist.add(f"... {len(frames) - 200} more (see --format json)")
    return tree


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
            level = r.rule.level if r.rule.level == MUST else Text(r.rule.level, style="dim")
            packets = ", ".join(map(str, r.packets[:8])) + (" ..." if len(r.packets) > 8 else "")
            table.add_row(r.rule.code, r.rule.rfc, level,
                          Text(r.status, style=CONFORMANCE_STYLE[r.status]), packets, detail)
        console.print(table)
    console.print(Text(f"{len(checked)} connection{'s' if len(checked) != 1 else ''}: "
                       f"{total['violated']} rule violations, {total['held']} rules held, "
                       f"{total['not-observable']} not observable"))
