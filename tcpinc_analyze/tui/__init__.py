"""Interactive terminal browser (``tcpinc-analyze tui``), built with Textual.

``add_subparser`` here registers the subcommand without importing Textual, so the
other subcommands do not pay for it.
"""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from .app import run

    return run(args)


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``tui CAPTURE [--keylog K ...]`` (Textual is imported only when run)."""
    p = subparsers.add_parser("tui", help="interactive terminal browser (Textual)",
                              description="Browse a capture: connections, packets, fields, "
                                          "hex, handshake ladder, follow stream, findings.")
    p.add_argument("capture", metavar="CAPTURE", nargs="?", help="pcap or pcapng file")
    p.add_argument("--keylog", action="append", metavar="K", default=[],
                   help="key log file, directory or glob (repeatable)")
    from ..scale.options import add_follow_options  # --follow, -i IFACE (growing captures)

    add_follow_options(p)
    p.set_defaults(func=_run)
    return p
