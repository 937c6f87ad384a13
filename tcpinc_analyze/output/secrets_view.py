"""Secrets on screen: one rule for every command.

Session secrets, master and traffic keys reach a report only with ``--show-secrets``
(``report.extra["secrets"]``); every output that shows them reads them from there, so a
command without the option cannot print them by accident.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.text import Text

from ..analysis.report import ConnectionReport

SECRET_NAMES = {"ss": "session secret ss[i]", "sn": "session nonce sn[i]",
                "mk0": "master key mk[0]", "k_ab": "traffic key k_ab[0] (K || NR)",
                "k_ba": "traffic key k_ba[0] (K || NR)"}
SHOW_SECRETS_HINT = "secrets are hidden; --show-secrets prints them"


def secret_lines(report: ConnectionReport) -> list[tuple[str, str]]:
    """(label, hex) of the secrets a report carries; empty without --show-secrets."""
    secrets = report.extra.get("secrets") or {}
    return [(SECRET_NAMES.get(k, k), v) for k, v in secrets.items() if v]


def print_secrets(console: Console, reports: Iterable[ConnectionReport]) -> None:
    """A "secrets" section after a table: one block per connection that has them."""
    blocks = [(r, lines) for r in reports if (lines := secret_lines(r))]
    if not blocks:
        return
    console.print(Text("secrets (--show-secrets)", style="bold"))
    for r, lines in blocks:
        console.print(Text.assemble((f"#{r.id} ", "bold"), f"{r.a} -> {r.b}"))
        for label, value in lines:
            console.print(Text(f"  {label}: {value}"), soft_wrap=True)
