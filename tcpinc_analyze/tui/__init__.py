"""Interactive terminal browser (``tcpinc-analyze tui``), built with Textual.

``add_subparser`` here registers the subcommand without importing Textual, so the
other subcommands do not pay for it.
"""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "compare", None):
        from .compare_view import run as run_compare

        return run_compare(args)
    from .app import run

    return run(args)


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``tui CAPTURE [--keylog K ...]`` (Textual is imported only when run)."""
    p = subparsers.add_parser("tui", help="interactive terminal browser (Textual)",
                              description="Browse a capture: connections, packets, fields, "
                                          "hex, handshake ladder, follow stream, findings.")
    p.add_argument("capture", metavar="CAPTURE", nargs="?",
                   help="pcap or pcapng file, or - for standard input (copied to a private "
                   "temporary file)")
    p.add_argument("--keylog", action="append", metavar="KEYLOG", default=[],
                   help="key log file, directory or glob (repeatable)")
    p.add_argument("--compare", metavar="SECOND",
                   help="compare CAPTURE (FIRST) with a capture of the same traffic taken at "
                   "another point: pairs, what the path changed, both ladders side by side")
    from ..scale.options import add_follow_options  # --follow, -i IFACE (growing captures)

    add_follow_options(p)
    p.set_defaults(func=_run)
    return p
