"""The ``tcpinc-analyze`` command line.

Subcommands are thin: they parse options, call library code and format results, so
every behaviour is testable without a terminal.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _err(message: str) -> None:
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        Text.assemble(("error: ", "bold red"), message))


def cmd_synth(args: argparse.Namespace) -> int:
    """Write one named scenario's capture, key log and expected results."""
    from .synth.catalog import write_catalog
    from .synth.sample import generate
    from .synth.scenarios import SCENARIOS

    if args.list:
        table = Table(title="synth scenarios", show_lines=False)
        table.add_column("name", style="bold cyan", no_wrap=True)
        table.add_column("seed", justify="right")
        table.add_column("format")
        table.add_column("what it shows")
        for sc in SCENARIOS.values():
            table.add_row(sc.name, str(sc.seed), sc.capture.format, sc.summary)
        Console().print(table)
        return EXIT_OK
    if args.catalog:
        written = write_catalog(Path(args.catalog))
        Console(stderr=True).print(f"wrote {len(written)} synthetic samples to {args.catalog}")
        return EXIT_OK
    if not args.scenario:
        _err("name a scenario (see 'tcpinc-analyze synth --list') or use --catalog DIR")
        return EXIT_USAGE
    scenario = SCENARIOS.get(args.scenario)
    if scenario is None:
        _err(f"unknown scenario {args.scenario!r}; 'tcpinc-analyze synth --list' lists them")
        return EXIT_USAGE
    if not args.output:
        _err("-o/--output FILE is required")
        return EXIT_USAGE
    sample = generate(scenario, args.seed)
    try:
        Path(args.output).write_bytes(sample.capture)
        if args.keylog:
            Path(args.keylog).write_text(sample.keylog)
        if args.expected:
            Path(args.expected).write_text(sample.expected_json())
    except OSError as exc:
        _err(f"cannot write output: {exc}")
        return EXIT_USAGE
    Console(stderr=True).print(
        f"{scenario.name} (seed {sample.expected['seed']}): "
        f"{sample.expected['capture']['packets']} packets, "
        f"{len(sample.expected['connections'])} connection(s) -> {args.output}")
    return EXIT_OK


def _progress_for(path: str, enabled: bool | None):  # noqa: ANN202 - context + callback
    """A rich progress bar on stderr for large files (or when asked), else None."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    if path == "-":
        return None, None
    try:
        size = Path(path).stat().st_size
    except OSError:
        return None, None
    console = Console(stderr=True)
    if enabled is None:
        enabled = console.is_terminal and size > 20 * 1024 * 1024
    if not enabled:
        return None, None
    progress = Progress("[progress.description]{task.description}", BarColumn(),
                        DownloadColumn(), TimeRemainingColumn(), console=console,
                        transient=True)
    task = progress.add_task(Path(path).name, total=size)
    return progress, lambda offset: progress.update(task, completed=offset)


def cmd_analyze(args: argparse.Namespace) -> int:
    """Analyze a capture: ENO outcome and tcpcrypt framing per connection."""
    import json

    from .analysis.handlers import Handlers, frame_list_factory
    from .analysis.run import analyze_file
    from .capture.reader import CaptureError
    from .output.table import connections_table, details_tree, print_findings, summary_line

    factories = [frame_list_factory] if args.details else []
    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=max(out.width, 180))
    stream_jsonl = args.format == "jsonl"

    def emit(report):  # noqa: ANN001, ANN202
        print(json.dumps(report.to_json(), separators=(",", ":")), flush=False)

    progress, callback = _progress_for(args.capture, args.progress)
    try:
        if progress is not None:
            with progress:
                result = analyze_file(args.capture, handler_factory=Handlers(factories),
                                      on_report=emit if stream_jsonl else None,
                                      progress=callback)
        else:
            result = analyze_file(args.capture, handler_factory=Handlers(factories),
                                  on_report=emit if stream_jsonl else None)
    except CaptureError as exc:
        _err(str(exc))
        return EXIT_USAGE
    summary = result.summary
    err = Console(stderr=True, highlight=False)
    if args.format == "json":
        print(json.dumps([r.to_json() for r in result.reports], indent=1))
    if args.format in ("json", "jsonl"):
        for f in summary.findings:
            err.print(f"[yellow]{f.severity}[/]: {f.message}")
        return EXIT_OK
    if not result.reports:
        out.print("no TCP connections in this capture")
    else:
        out.print(connections_table(result.reports, f"{args.capture}"))
        if args.details:
            for report in result.reports:
                out.print(details_tree(report))
        print_findings(out, result.reports, summary,
                       limit=1 << 30 if args.all_findings else 6)
    out.print(summary_line(result.reports, summary))
    return EXIT_OK


def cmd_record(args: argparse.Namespace) -> int:
    """Record a scenario over the real Linux TCP stack between two namespaces."""
    from .synth.recorder import RecorderError, record

    try:
        result = record(args.scenario, Path(args.output), Path(args.keylog),
                        expected_path=Path(args.expected) if args.expected else None,
                        seed=args.seed, timeout=args.timeout)
    except RecorderError as exc:
        _err(str(exc))
        return EXIT_USAGE
    Console(stderr=True).print(f"recorded {result} -> {args.output}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for tests and documentation."""
    parser = argparse.ArgumentParser(
        prog="tcpinc-analyze",
        description="Analyze and decrypt TCP-ENO (RFC 8547) and tcpcrypt (RFC 8548) traffic.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    analyze = sub.add_parser(
        "analyze", help="report ENO negotiation and tcpcrypt framing per connection",
        description="Analyze a pcap or pcapng capture (or - for standard input).")
    analyze.add_argument("capture", help="capture file, or - for standard input")
    analyze.add_argument("--format", choices=("table", "json", "jsonl"), default="table",
                         help="table (default), json (an array), jsonl (one object per line, "
                         "streamed as connections finish)")
    analyze.add_argument("--details", action="store_true",
                         help="show decoded fields per connection and frame (spec names)")
    analyze.add_argument("--all-findings", action="store_true",
                         help="list every finding, not only the first few per connection")
    analyze.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                         help="progress bar on stderr (default: for files over 20 MB on a "
                         "terminal)")
    analyze.set_defaults(func=cmd_analyze)

    synth = sub.add_parser("synth", help="write a synthetic sample capture with its key log",
                           description="Generate a named scenario deterministically.")
    synth.add_argument("scenario", nargs="?", help="scenario name (see --list)")
    synth.add_argument("-o", "--output", help="capture file to write (.pcap or .pcapng)")
    synth.add_argument("--keylog", help="key-log file to write")
    synth.add_argument("--expected", help="expected-results JSON file to write")
    synth.add_argument("--seed", type=int, default=None,
                       help="random seed (default: the scenario's catalog seed)")
    synth.add_argument("--list", action="store_true", help="list the named scenarios")
    synth.add_argument("--catalog", metavar="DIR",
                       help="regenerate every synthetic sample of the catalog into DIR")
    synth.set_defaults(func=cmd_synth)

    rec = sub.add_parser("record", help="record a sample over the real Linux TCP stack "
                         "(root; two network namespaces joined by a veth pair)")
    rec.add_argument("scenario", help="recorder scenario: http or bulk")
    rec.add_argument("-o", "--output", required=True, help="pcap file to write")
    rec.add_argument("--keylog", required=True, help="key-log file to write")
    rec.add_argument("--expected", help="expected-results JSON file to write")
    rec.add_argument("--seed", type=int, default=1, help="seed for keys and content")
    rec.add_argument("--timeout", type=float, default=20.0,
                     help="seconds before the recording is abandoned")
    rec.set_defaults(func=cmd_record)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run a subcommand and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
