"""The ``compare`` subcommand: two captures of the same traffic, one near each end.

Kept out of ``cli.py`` (which registers it with one call) so the command's options,
output and exit codes live in one place.
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console

EXIT_OK = 0
EXIT_USAGE = 2


def cmd_compare(args: argparse.Namespace) -> int:
    """Analyze both captures, pair the connections they share, say what the path did."""
    from .analysis.compare import compare_traces, trace_capture
    from .capture.reader import CaptureError
    from .cli import _decryption, _err
    from .decryption import DecryptionContext
    from .keylog import KeyLogError
    from .output.compare_table import print_compare

    if args.first == "-" and args.second == "-":
        _err("only one of FIRST and SECOND can be read from standard input")
        return EXIT_USAGE
    traces = []
    try:
        ctx = _decryption(args)  # loads the key logs once (and warns once)
    except KeyLogError as exc:
        _err(str(exc))
        return EXIT_USAGE
    for path in (args.first, args.second):
        try:
            # each capture gets its own context (resumption chains are per capture),
            # over the same key log (keys embedded in either capture count for both)
            own = DecryptionContext(ctx.keylog, show_secrets=args.show_secrets,
                                    resume_depth=args.resume_depth)
            traces.append(trace_capture(path, own))
        except (CaptureError, KeyLogError) as exc:
            _err(str(exc))
            return EXIT_USAGE
    result = compare_traces(*traces)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for caps in traces:
        for f in caps.summary.findings:
            err.print(f"[yellow]{f.severity}[/]: {caps.name}: {f.message}")
    if args.format == "json":
        print(json.dumps(result.records, indent=1))
    elif args.format == "jsonl":
        for rec in result.records:
            print(json.dumps(rec, separators=(",", ":")))
    else:
        out = Console(highlight=False)
        if not out.is_terminal:
            out = Console(highlight=False, width=max(out.width, 200))
        print_compare(out, result, details=args.details)
    return EXIT_OK


def add_subparser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``compare FIRST SECOND``."""
    from .cli import _capture_options, _HelpFormatter, exit_help

    p = sub.add_parser(
        "compare", formatter_class=_HelpFormatter,
        epilog=exit_help(ok=": the captures were compared"),
        help="pair the connections two capture points share and show what the "
        "path changed (ENO above all)",
        description="Analyze two captures of the same traffic (FIRST near host A, SECOND "
        "near host B, or the other way round) and pair up their connections, through NAT, "
        "sequence rewriting, clock offsets and partial overlap; for each, what the path "
        "changed (options, segmentation, bytes) and why ENO did or did not succeed.")
    p.add_argument("first", metavar="FIRST", help="capture taken at one point (- for stdin)")
    p.add_argument("second", metavar="SECOND", help="capture taken at the other point")
    p.add_argument("--format", choices=("table", "json", "jsonl"), default="table",
                   help="table (default, with a summary), json (an array), jsonl")
    p.add_argument("--details", action="store_true",
                   help="a side-by-side ladder of both vantage points per connection")
    _capture_options(p)
    p.set_defaults(func=cmd_compare)
    return p
