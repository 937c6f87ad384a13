"""The ``tcpinc-analyze`` command line.

Subcommands are thin: they parse options, call library code and format results, so
every behaviour is testable without a terminal.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import __version__
from . import limits as _limits
from .wire import RESUME_SEARCH_DEPTH
from .words import plural

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOTHING = 3

_EXIT_LINES = {
    EXIT_OK: "0  done{ok}",
    EXIT_FAILED: "1  {failed}",
    EXIT_USAGE: "2  usage error or unusable input: a bad option, an unreadable or damaged "
                "file, not a capture, an unreadable key log",
    EXIT_NOTHING: "3  nothing to output: {nothing}",
}


def exit_help(ok: str = "", failed: str | None = None, nothing: str | None = None, *,
              refused: str | None = None) -> str:
    """The exit-status section of a command's --help (only the codes it uses): 1 is
    "verification failed: <failed>", or for commands that verify nothing, ``refused``."""
    lines = ["exit status:", "  " + _EXIT_LINES[EXIT_OK].format(ok=ok)]
    if failed:
        lines.append("  " + _EXIT_LINES[EXIT_FAILED].format(
            failed=f"verification failed: {failed}"))
    elif refused:
        lines.append("  " + _EXIT_LINES[EXIT_FAILED].format(failed=refused))
    lines.append("  " + _EXIT_LINES[EXIT_USAGE])
    if nothing:
        lines.append("  " + _EXIT_LINES[EXIT_NOTHING].format(nothing=nothing))
    return "\n".join(textwrap.fill(line, 79, subsequent_indent=" " * 5) for line in lines)


EXIT_HELP_ALL = exit_help(
    failed="a frame fails authentication (verify; decrypt and --follow when the keys "
    "authenticate nothing), a rule is violated (conformance)",
    nothing="no tcpcrypt connection or no key for any (decrypt), no decrypted data for "
    "the followed connection (--follow), no key log embedded (extract-secrets)")


def stderr_console() -> Console:
    """Messages, warnings and errors: stderr, never markup (file names and addresses may
    hold brackets), never wrapped mid-message."""
    return Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


class _DataConsole(Console):
    """stdout: a reader that goes away (``| head``) ends the command like any other broken
    pipe (rich would exit 1, which here means "verification failed")."""

    def on_broken_pipe(self) -> None:
        """Raise BrokenPipeError for main() to end quietly."""
        raise BrokenPipeError


def stdout_console(min_width: int = 180) -> Console:
    """The command's data. Not a terminal (a file, a pipe): wide enough for the table."""
    out = _DataConsole(highlight=False, markup=False)
    if not out.is_terminal:
        out = _DataConsole(highlight=False, markup=False, width=max(out.width, min_width))
    return out


CAPTURES = {"nargs": "*", "metavar": "CAPTURE",
            "help": "capture files, directories (searched for captures), globs, URLs "
            "(fsspec), or - for standard input"}


def _err(message: str) -> None:
    stderr_console().print(Text.assemble(("error: ", "bold red"), message))


def _warn(message: str) -> None:
    stderr_console().print(Text.assemble(("warning: ", "yellow"), message))


def _say(message: str) -> None:
    """A progress or outcome message (stderr: stdout carries only data)."""
    stderr_console().print(Text(message))


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
        stdout_console(120).print(table)
        return EXIT_OK
    if args.vectors:
        from .output.safe_files import OutputError
        from .synth.vectors import build_vectors, write_vectors

        try:
            write_vectors(Path(args.vectors))
        except OutputError as exc:
            _err(str(exc))
            return EXIT_USAGE
        count = len(build_vectors()["vectors"])
        _say(f"wrote {plural(count, 'RFC 8548 test vector')} to {args.vectors}")
        return EXIT_OK
    if args.catalog:
        written = write_catalog(Path(args.catalog))
        _say(f"wrote {plural(len(written), 'synthetic sample')} to {args.catalog}")
        return EXIT_OK
    scenario = SCENARIOS.get(args.scenario)
    if scenario is None:
        _err(f"unknown scenario {args.scenario!r}; 'tcpinc-analyze synth --list' lists them")
        return EXIT_USAGE
    from .output.safe_files import PUBLIC, OutputError, write_file

    sample = generate(scenario, args.seed)
    try:
        write_file(args.output, sample.capture, mode=PUBLIC)
        if args.keylog:
            write_file(args.keylog, sample.keylog)  # 0600: it holds secrets
        if args.expected:
            write_file(args.expected, sample.expected_json(), mode=PUBLIC)
    except OutputError as exc:
        _err(str(exc))
        return EXIT_USAGE
    _say(f"{scenario.name} (seed {sample.expected['seed']}): "
         f"{plural(sample.expected['capture']['packets'], 'packet')}, "
         f"{plural(len(sample.expected['connections']), 'connection')} -> {args.output}")
    return EXIT_OK


def _check_synth(args: argparse.Namespace) -> str | None:
    modes = [m for m, on in (("--list", args.list), ("--catalog", args.catalog),
                             ("--vectors", args.vectors), ("a scenario", args.scenario)) if on]
    if len(modes) > 1:
        return f"{' and '.join(modes)} cannot be combined: choose one"
    if not modes:
        return ("name a scenario (see 'tcpinc-analyze synth --list') or use --catalog DIR "
                "or --vectors FILE")
    if args.scenario is None:
        given = [o for o, v in (("-o", args.output), ("--keylog", args.keylog),
                                ("--expected", args.expected), ("--seed", args.seed)) if v]
        if given:
            return f"{', '.join(given)} only apply to a named scenario"
    elif not args.output:
        return "a scenario needs -o/--output FILE"
    return None


PROGRESS_MIN_SIZE = 20 * 1024 * 1024


def _progress_for(path: str, enabled: bool | None, *, streaming: bool = False):  # noqa: ANN202
    """A progress bar on stderr, only when stderr is a terminal: for files over 20 MB,
    or any file with --progress; never with --no-progress, for standard input, or while
    lines stream to a terminal (they show the progress themselves). Returns (context,
    callback) or (None, None).

    The bar never takes stdout over (rich's default redirects it through the bar's
    console, which sent a command's data to the terminal instead of its file)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    if path == "-" or enabled is False or not sys.stderr.isatty():
        return None, None
    if streaming and sys.stdout.isatty():
        return None, None
    try:
        size = Path(path).stat().st_size
    except OSError:
        return None, None
    if enabled is None and size <= PROGRESS_MIN_SIZE:
        return None, None
    console = Console(stderr=True, force_terminal=True)
    progress = Progress("[progress.description]{task.description}", BarColumn(),
                        DownloadColumn(), TimeRemainingColumn(), console=console,
                        transient=True, redirect_stdout=False, redirect_stderr=False)
    task = progress.add_task(Path(path).name, total=size)
    return progress, lambda offset: progress.update(task, completed=offset)


def _decryption(args: argparse.Namespace, sink=None):  # noqa: ANN001, ANN202
    """A DecryptionContext from --keylog (or TCPCRYPT_KEYLOGFILE); None without keys.

    Raises KeyLogError (reported by the caller) for an unreadable or malformed key log.
    """
    from .decryption import DecryptionContext
    from .keylog import KeyLogError, load_keylogs

    captures = [getattr(args, name, None) for name in ("capture", "first", "second")]
    if "-" in captures and "-" in (args.keylog or []):
        raise KeyLogError("--keylog - and the capture - cannot both be standard input")
    loaded = load_keylogs(args.keylog or [], any_file=getattr(args, "keylog_any_file", False))
    for warning in loaded.warnings:
        _warn(warning)
    return DecryptionContext(loaded.log, show_secrets=args.show_secrets, sink=sink,
                             resume_depth=args.resume_depth)


class _Selection:
    """``-Y EXPR`` and ``--id N``: which connections a command reports (or decrypts)."""

    def __init__(self, filt, ids: list[int] | None, details: bool) -> None:  # noqa: ANN001
        self.filt = filt
        self.ids = set(ids) if ids else None
        self.details = details

    @property
    def needs_frames(self) -> bool:
        """The expression names per-frame fields: collect each connection's frames."""
        return self.filt is not None and self.filt.needs_frames

    def keep_id(self, conn_id: int) -> bool:
        """Whether --id lets this connection through."""
        return self.ids is None or conn_id in self.ids

    def keep(self, report) -> bool:  # noqa: ANN001
        """Whether a finished connection's report is kept (frames collected only for the
        filter are dropped again unless --details asked for them)."""
        if not self.keep_id(report.id):
            return False
        if self.filt is not None and not self.filt(report.to_json()):
            return False
        if self.needs_frames and not self.details:
            report.extra.pop("frame_list", None)
        return True


def _selection(args: argparse.Namespace) -> _Selection | None | bool:
    """The -Y/--id selection (None when neither is given); False after printing the error
    (one line with the column where the expression went wrong)."""
    from .filtering import FilterError, compile_filter

    expr = getattr(args, "display_filter", None)
    ids = getattr(args, "ids", None)
    if not expr and not ids:
        return None
    try:
        filt = compile_filter(expr or "", frames=True)
    except FilterError as exc:
        _err(f"-Y: {exc.message} at column {exc.column} of {expr!r}")
        return False
    return _Selection(filt, ids, bool(getattr(args, "details", False)))


def _filter_options(p: argparse.ArgumentParser) -> None:
    """-Y EXPR and --id N (analyze, verify, decrypt, conformance)."""
    p.add_argument("-Y", "--display-filter", metavar="EXPR", dest="display_filter",
                   help="only connections matching this display filter (the terminal "
                   "browser's language, e.g. 'tcpeno.status == fallback'; README: Display "
                   "filters)")
    p.add_argument("--id", type=int, action="append", metavar="N", dest="ids",
                   help="only connection N (repeatable)")


def _run(args: argparse.Namespace, *, sink=None, on_report=None, factories=(),  # noqa: ANN001, ANN202
         configure=None, streaming: bool = False, select=None):  # noqa: ANN001
    """Analyze (and decrypt) the capture named in args; None after printing an error.
    Sets ``args.keylog_entries``: how many key-log entries the run had (given and
    embedded), so messages can tell "no key log" from "no matching entry".

    ``select`` (a _Selection) keeps only the connections -Y/--id let through."""
    from .analysis.handlers import Handlers, frame_list_factory
    from .analysis.run import AnalysisResult, analyze_file
    from .capture.reader import CaptureError
    from .keylog import KeyLogError

    if select is not None:
        kept: list = []
        then = on_report if on_report is not None else kept.append
        if select.needs_frames and frame_list_factory not in factories:
            factories = (*factories, frame_list_factory)

        def on_report(report, then=then):  # noqa: ANN001, ANN202
            if select.keep(report):
                then(report)

        result = _run(args, sink=sink, on_report=on_report, factories=factories,
                      configure=configure, streaming=streaming)
        if result is None:
            return None
        kept.sort(key=lambda r: r.id)
        return AnalysisResult(result.summary, kept)

    try:
        ctx = _decryption(args, sink)
    except KeyLogError as exc:
        _err(str(exc))
        return None
    if configure is not None:
        configure(ctx)
    progress, callback = _progress_for(args.capture, getattr(args, "progress", None),
                                       streaming=streaming)
    from .scale.runner import runner_for  # flow shards (-j), --dask, URLs, -i IFACE

    limits = _limits_of(args)
    if limits != _limits.DEFAULT and getattr(args, "jobs", None) is None:
        # Bounds the user set hold for the one flow table of a single process; flow
        # shards (-j) would apply them per worker.
        args.jobs = 1
    kwargs = {"handler_factory": Handlers(list(factories)) if factories else None,
              "decryption": ctx, "on_report": on_report}
    run = runner_for(args, plaintext=sink is not None or configure is not None) or partial(
        analyze_file, args.capture, limits=limits)
    try:
        if progress is not None:
            with progress:
                return run(progress=callback, **kwargs)
        return run(**kwargs)
    except CaptureError as exc:
        _err(str(exc))
        return None
    except KeyLogError as exc:  # a malformed key log embedded in the capture
        _err(str(exc))
        return None
    finally:
        args.keylog_entries = len(ctx.keylog)


def _check_analyze(args: argparse.Namespace) -> str | None:
    """Options that would do nothing together are errors, not silence."""
    if args.follow is None:
        if args.hex:
            return "--hex only applies to --follow ID"
    else:
        if args.follow < 0:
            return f"--follow {args.follow}: connection ids start at 0"
        if args.format != "table":
            return (f"--follow prints the connection's decrypted data, not {args.format}: "
                    "use one of --follow and --format")
        for option, given in (("--details", args.details),
                              ("--all-findings", args.all_findings)):
            if given:
                return f"{option} does not apply to --follow"
    if args.all_findings and args.format != "table":
        return f"--all-findings applies to the table; --format {args.format} lists every finding"
    return None


def _selected_text(args: argparse.Namespace, result) -> str:  # noqa: ANN001
    """``-Y EXPR, --id 3: 4 connections`` for a table title."""
    parts = [f"-Y {args.display_filter}"] if getattr(args, "display_filter", None) else []
    parts += [f"--id {i}" for i in getattr(args, "ids", None) or []]
    n = len(result.reports)
    return f"{', '.join(parts)}: {n} connection{'' if n == 1 else 's'}"


def cmd_analyze(args: argparse.Namespace) -> int:
    """Analyze a capture: ENO outcome and tcpcrypt framing per connection."""
    import json

    from .analysis.handlers import frame_list_factory
    from .output.plaintext import FollowCollector
    from .output.secrets_view import print_secrets
    from .output.table import connections_table, details_tree, print_findings, summary_line

    factories = [frame_list_factory] if args.details else []
    stream_jsonl = args.format == "jsonl"

    def emit(report):  # noqa: ANN001, ANN202
        sys.stdout.write(json.dumps(report.to_json(), separators=(",", ":")) + "\n")
        sys.stdout.flush()  # a live pipe shows each connection as it ends

    follow = FollowCollector(args.follow) if args.follow is not None else None
    select = _selection(args)
    if select is False:
        return EXIT_USAGE
    result = _run(args, sink=follow, on_report=emit if stream_jsonl else None,
                  factories=factories, streaming=stream_jsonl, select=select)
    if result is None:
        return EXIT_USAGE
    if follow is not None:
        return _follow(args, result, follow)
    summary = result.summary
    if args.format == "json":
        sys.stdout.write(json.dumps([r.to_json() for r in result.reports], indent=1) + "\n")
    if args.format in ("json", "jsonl"):
        err = stderr_console()
        for f in summary.findings:
            err.print(Text.assemble((f"{f.severity}: ", "yellow"), f.message))
        return EXIT_OK
    out = stdout_console()
    if not result.reports:
        out.print("no connection matches -Y/--id" if select else
                  "no TCP connections in this capture")
    else:
        title = args.capture + (f" ({_selected_text(args, result)})" if select else "")
        out.print(connections_table(result.reports, title, width=out.width))
        if args.details:
            for report in result.reports:
                out.print(details_tree(report))
        if args.show_secrets and not args.details:
            print_secrets(out, result.reports)
    print_findings(out, result.reports, summary, limit=1 << 30 if args.all_findings else 6)
    out.print(summary_line(result.reports, summary))
    return EXIT_OK


def _follow(args: argparse.Namespace, result, follow) -> int:  # noqa: ANN001
    """Print the followed connection, or say exactly why there is nothing to print."""
    report = next((r for r in result.reports if r.id == args.follow), None)
    if report is None:
        n = len(result.reports)
        _err(f"no connection with id {args.follow} "
             + (f"(ids 0-{n - 1})" if n else "(the capture has no TCP connection)"))
        return EXIT_USAGE
    dec = (report.tcpcrypt or {}).get("decrypted")
    ok = failed = 0
    if dec:
        ok = dec["ab"]["ok"] + dec["ba"]["ok"]
        failed = dec["ab"]["failed"] + dec["ba"]["failed"]
    if not follow.chunks and not ok:
        code, why = _why_nothing(args, report)
        _err(f"connection {args.follow}: {why}")
        return code
    if failed:
        _warn(f"connection {args.follow}: {plural(failed, 'frame')} failed authentication "
              "and are not shown")
    if not follow.chunks:
        _say(f"connection {args.follow}: {plural(ok, 'frame')} verified, without "
             "application data")
    follow.render(stdout_console(80), report, hexdump=args.hex)
    return EXIT_OK


def _why_nothing(args: argparse.Namespace, report) -> tuple[int, str]:  # noqa: ANN001
    """Why a connection yielded no plaintext, and the exit code that says it."""
    tc = report.tcpcrypt
    if not tc:
        eno = report.eno
        how = eno["status"] + (f" ({eno['reason']})" if eno.get("reason") else "")
        return EXIT_NOTHING, f"not a tcpcrypt connection (ENO {how}): there is nothing to decrypt"
    dec = tc.get("decrypted")
    if dec is None:
        if not getattr(args, "keylog_entries", 0):
            return EXIT_NOTHING, ("no key log: give one with --keylog KEYLOG or "
                                  "$TCPCRYPT_KEYLOGFILE (or embed it: inject-secrets)")
        return EXIT_NOTHING, "no key-log entry matches this connection"
    failed = dec["ab"]["failed"] + dec["ba"]["failed"]
    if failed:
        return EXIT_FAILED, (f"the logged keys ({tc.get('keys_from')}) fail to authenticate "
                             f"all {plural(failed, 'frame')}: the key-log entry is wrong (or "
                             "every frame was altered); nothing is shown")
    undecryptable = dec["ab"]["undecryptable"] + dec["ba"]["undecryptable"]
    if undecryptable:
        return EXIT_NOTHING, (f"the key log gives no key for the generation of its "
                              f"{plural(undecryptable, 'frame')}")
    return EXIT_NOTHING, "no complete frame in the capture"


def cmd_record(args: argparse.Namespace) -> int:
    """Record a scenario over the real Linux TCP stack between two namespaces."""
    from .synth.recorder import RecorderError, record

    if args.middlebox:
        from .synth.testbed import record_middlebox

        if not args.second:
            _err("--middlebox needs --second FILE for the capture on B's side")
            return EXIT_USAGE
        if args.scenario != "http":
            _err("--middlebox records the http scenario only")
            return EXIT_USAGE
        try:
            line = record_middlebox(args.middlebox, Path(args.output), Path(args.second),
                                    Path(args.keylog), expected_path=Path(args.expected)
                                    if args.expected else None, seed=args.seed,
                                    timeout=max(args.timeout, 30.0))
        except RecorderError as exc:
            _err(str(exc))
            return EXIT_USAGE
        Console(stderr=True).print(f"recorded {line} -> {args.output}, {args.second}")
        return EXIT_OK
    try:
        result = record(args.scenario, Path(args.output), Path(args.keylog),
                        expected_path=Path(args.expected) if args.expected else None,
                        seed=args.seed, timeout=args.timeout)
    except RecorderError as exc:
        _err(str(exc))
        return EXIT_USAGE
    _say(f"recorded {result} -> {args.output}")
    return EXIT_OK


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


CAPTURE_HELP = ("capture file (pcap or pcapng, gzip-compressed or not), or - for standard "
                "input")


def _capture_options(p: argparse.ArgumentParser) -> None:
    """Options every capture-reading command shares."""
    p.add_argument("--keylog", action="append", metavar="KEYLOG",
                   help="key log file, directory or glob (repeatable; default: "
                   "$TCPCRYPT_KEYLOGFILE); keys embedded in a pcapng are read too")
    p.add_argument("--keylog-any-file", action="store_true",
                   help="also read key logs that are not regular files (FIFOs, devices, "
                   "<(...) substitutions); without it they are refused")
    p.add_argument("--show-secrets", action="store_true",
                   help="include session secrets and traffic keys in the output (never "
                   "printed without it)")
    p.add_argument("--resume-depth", type=_non_negative, default=RESUME_SEARCH_DEPTH,
                   metavar="N",
                   help="how far down a session's chain ss[0] -> ss[i] a resumed "
                   f"connection's identifier is looked for (default {RESUME_SEARCH_DEPTH})")
    _limit_options(p)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr, shown only when stderr is a terminal "
                   "(default: for files over 20 MB; --progress: any file; --no-progress: "
                   "never)")
    from .scale.options import add_scale_options

    add_scale_options(p)


def _check_decrypt(args: argparse.Namespace) -> str | None:
    if not args.output and not args.pcap_out:
        return "decrypt needs -o DIR and/or --pcap-out FILE"
    captures = args.capture if isinstance(args.capture, list) else [args.capture]
    if args.pcap_out and "-" in captures:
        return "--pcap-out reads the capture twice: give a file, not -"
    return None


def _input_paths(args: argparse.Namespace) -> list[str]:
    """Every file the command reads (capture and key logs): outputs must not be one."""
    import os

    from .keylog import KEYLOG_ENV, expand_keylog_spec

    specs = list(getattr(args, "keylog", None) or [])
    if not specs and os.environ.get(KEYLOG_ENV):
        specs = [os.environ[KEYLOG_ENV]]
    paths = [args.capture]
    for spec in specs:
        paths += [str(p) for p in expand_keylog_spec(spec)]
    return paths


def _positive(kind: type) -> object:
    """An argparse type: a positive int or float."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _limit_options(p: argparse.ArgumentParser) -> None:
    """The bounds that keep hostile captures cheap (issue 10, items 24 and 26)."""
    p.add_argument("--max-connections", type=_positive(int), default=_limits.MAX_CONNECTIONS,
                   metavar="N", help="connections open at once; beyond it the least recently "
                   "active one is finalised early, with a finding (default "
                   f"{_limits.MAX_CONNECTIONS})")
    p.add_argument("--idle-timeout", type=_positive(float), default=_limits.IDLE_TIMEOUT_S,
                   metavar="SECONDS", help="capture time after which a silent connection is "
                   f"finalised (default {_limits.IDLE_TIMEOUT_S:g})")
    p.add_argument("--resync-bytes", type=_positive(int), default=_limits.RESYNC_BYTES,
                   metavar="N", help="bytes after a gap searched for the next tcpcrypt frame "
                   f"(default {_limits.RESYNC_BYTES})")
    p.add_argument("--resync-tries", type=_positive(int), default=_limits.RESYNC_TRIES,
                   metavar="N", help="candidate frames authenticated with the keys per gap "
                   f"(default {_limits.RESYNC_TRIES})")


def _limits_of(args: argparse.Namespace) -> _limits.Limits:
    """The bounds from the options (defaults for a command that has none of them)."""
    d = _limits.DEFAULT
    return _limits.Limits(getattr(args, "max_connections", d.max_connections),
                          getattr(args, "idle_timeout", d.idle_timeout_s),
                          getattr(args, "resync_bytes", d.resync_bytes),
                          getattr(args, "resync_tries", d.resync_tries))


def cmd_decrypt(args: argparse.Namespace) -> int:
    """Plaintext files per connection and direction plus index.json, and/or a capture
    whose tcpcrypt payloads are replaced by their plaintext."""
    from .output.plaintext import DirectoryWriter
    from .output.plaintext_capture import PlaintextCapture
    from .output.safe_files import OutputError, check_output

    if not args.output and not args.pcap_out:
        _err("decrypt needs -o DIR and/or --pcap-out FILE")
        return EXIT_USAGE
    if args.pcap_out and args.capture == "-":
        _err("--pcap-out needs to read the capture twice: give a file, not -")
        return EXIT_USAGE
    select = _selection(args)
    if select is False:
        return EXIT_USAGE
    if select is not None and select.filt is not None:
        # The filter judges finished connections, but plaintext is written as it is
        # decrypted: a first pass finds the matching ids, the second decrypts only those.
        if args.capture == "-":
            _err("decrypt -Y reads the capture twice: give a file, not - (--id works on "
                 "standard input)")
            return EXIT_USAGE
        first = _run(args, select=select)
        if first is None:
            return EXIT_USAGE
        select = _Selection(None, [r.id for r in first.reports] or [-1], False)
    inputs = _input_paths(args)
    try:
        if args.pcap_out:
            check_output(Path(args.pcap_out), inputs)
        writer = DirectoryWriter(Path(args.output), force=args.force, inputs=inputs) \
            if args.output else None
    except OutputError as exc:
        _err(str(exc))
        return EXIT_USAGE
    rewrite = PlaintextCapture() if args.pcap_out else None
    sinks = [s for s in (writer, rewrite.sink if rewrite else None) if s is not None]

    def tee(*a):  # noqa: ANN002, ANN202
        if select is not None and not select.keep_id(a[0].id):
            return
        for sink in sinks:
            sink(*a)

    def hooks(ctx):  # noqa: ANN001, ANN202
        if rewrite is not None:
            ctx.frame_map = rewrite.frame_map

            def finalize(conn):  # noqa: ANN001, ANN202
                if select is None or select.keep_id(conn.id):
                    rewrite.on_finalize(conn)

            ctx.on_finalize = finalize

    try:
        result = _run(args, sink=tee, configure=hooks, select=select)
        if result is None:
            return EXIT_USAGE
        if not _keyed_any(result.reports):
            # no tcpcrypt connection, or no key for one: nothing to write (exit 3)
            return _decrypt_outcome(args, result.reports)
        if writer is not None:
            writer.write_index(result.reports, args.capture)
            writer.commit()
            _say(f"{plural(len(writer.started), 'plaintext file')} and index.json written to "
                 f"{args.output}")
        if rewrite is not None:
            count = rewrite.write(args.capture, Path(args.pcap_out), inputs=inputs)
            left = (f"; {plural(rewrite.dropped, 'segment')} that carried only tcpcrypt Init "
                    "or framing bytes left out") if rewrite.dropped else ""
            _say(f"{args.pcap_out}: {plural(count, 'segment')} of decrypted connections "
                 f"rewritten with their plaintext{left}")
    except OutputError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except (OSError, ValueError) as exc:
        _err(f"{args.output or args.pcap_out}: cannot write: "
             f"{getattr(exc, 'strerror', None) or exc}")
        return EXIT_USAGE
    finally:
        if writer is not None:
            writer.abort()
        if rewrite is not None:
            rewrite.close()
    return _decrypt_outcome(args, result.reports)


def _keyed_any(reports: list) -> bool:
    """Whether any tcpcrypt connection had keys (even failing ones: index.json then
    records what failed); without one, decrypt has nothing to write."""
    return any((r.tcpcrypt or {}).get("decrypted") is not None for r in reports)


def _decrypt_outcome(args: argparse.Namespace, reports: list) -> int:
    """Say what was decrypted and what was not; non-zero when nothing was."""
    tcpcrypt = [r for r in reports if r.tcpcrypt]
    decs = [(r, r.tcpcrypt.get("decrypted")) for r in tcpcrypt]
    decrypted = [r for r, d in decs if d and d["ab"]["ok"] + d["ba"]["ok"]]
    failing = [r for r, d in decs if d and d["ab"]["failed"] + d["ba"]["failed"]]
    keyless = [r for r, d in decs if d is None]
    parts = [f"{plural(len(tcpcrypt), 'tcpcrypt connection')}: {len(decrypted)} decrypted"]
    if failing:
        parts.append(f"{len(failing)} with frames failing authentication "
                     f"(#{', #'.join(str(r.id) for r in failing[:10])}"
                     + (", ..." if len(failing) > 10 else "") + ")")
    if keyless:
        parts.append(f"{len(keyless)} without a matching key-log entry")
    (_say if decrypted and not failing else _warn)(", ".join(parts))
    if decrypted:
        return EXIT_OK
    if failing:
        _err("nothing was decrypted: the logged keys authenticate no frame")
        return EXIT_FAILED
    if not tcpcrypt:
        _err("nothing to decrypt: no tcpcrypt connection in this capture")
    elif not getattr(args, "keylog_entries", 0):
        _err("nothing was decrypted: no key log (give --keylog KEYLOG or "
             "$TCPCRYPT_KEYLOGFILE)")
    else:
        _err("nothing was decrypted: no key-log entry matches a connection of this capture")
    return EXIT_NOTHING


def _frame_packets(finding) -> str:  # noqa: ANN001
    """"packet 8", or "packets 5-8" for a frame spread over several segments."""
    first = getattr(finding, "first_packet", None)
    if first is not None and first != finding.packet:
        return f"packets {first}-{finding.packet}"
    return f"packet {finding.packet}"


def cmd_verify(args: argparse.Namespace) -> int:
    """One verdict per tcpcrypt connection; exit 1 on any failure."""
    from .output.secrets_view import secret_lines

    select = _selection(args)
    if select is False:
        return EXIT_USAGE
    result = _run(args, select=select)
    if result is None:
        return EXIT_USAGE
    out = _DataConsole(highlight=False, soft_wrap=True, markup=False)
    bad = 0
    checked = 0
    for r in result.reports:
        tc = r.tcpcrypt
        if not tc:
            continue
        checked += 1
        dec = tc.get("decrypted")
        head = Text.assemble((f"#{r.id:<4d}", "bold"), f"{r.a} -> {r.b}  ")
        if dec is None:
            bad += 1
            out.print(head, Text("NOT DECRYPTED", style="bold red"),
                      "  no key-log entry for this connection")
            continue
        failed = dec["ab"]["failed"] + dec["ba"]["failed"]
        ok = dec["ab"]["ok"] + dec["ba"]["ok"]
        lost = dec["ab"].get("lost", 0) + dec["ba"].get("lost", 0)
        sid = tc.get("session_id")
        if failed:
            bad += 1
            worst = next((f for f in r.findings if f.code == "frame-tag-failed"), None)
            where = (f"; first at {_frame_packets(worst)}, stream offset {worst.offset}"
                     if worst else "")
            why = "  the keys authenticate no frame: wrong key-log entry" if not ok else ""
            out.print(head, Text(f"FAILED {plural(failed, 'frame')}", style="bold red"),
                      f"  ({ok} verified{where}){why}")
        else:
            note = f", {plural(lost, 'frame')} lost in gaps" if lost else ""
            chain = f", resumes #{tc['resumes']}" if tc.get("resumes") is not None else ""
            out.print(head, Text("VERIFIED", style="bold green"),
                      f"  {plural(ok, 'frame')} ({tc['keys_from']}{chain}{note})"
                      + (f"  session ID {sid}" if sid else ""))
        for label, value in secret_lines(r):  # only with --show-secrets
            out.print(Text(f"      {label}: {value}"))
    if not checked:
        out.print("no tcpcrypt connection matches -Y/--id" if select else
                  "no tcpcrypt connections in this capture")
    return EXIT_FAILED if bad else EXIT_OK


def _check_conformance(args: argparse.Namespace) -> str | None:
    if args.all_rules and args.format == "json":
        return "--all-rules applies to the table; --format json lists every rule"
    return None


def cmd_conformance(args: argparse.Namespace) -> int:
    """Per connection, every RFC 8547/8548 rule the capture shows: held, violated, or not
    observable (and why). Exit 1 on any violation, so it can gate an implementer's CI."""
    import json

    from .conformance import check, violations
    from .output.table import conformance_tables

    select = _selection(args)
    if select is False:
        return EXIT_USAGE
    result = _run(args, select=select)
    if result is None:
        return EXIT_USAGE
    checked = [(r, check(r)) for r in result.reports]
    bad = sum(violations(rules, strict=args.strict) for _, rules in checked)
    if args.format == "json":
        print(json.dumps([{"id": r.id, "a": r.a, "b": r.b, "eno": r.eno.get("status"),
                           "violations": violations(rules, strict=args.strict),
                           "rules": [x.to_json() for x in rules]} for r, rules in checked],
                         indent=1))
    else:
        conformance_tables(stdout_console(160), checked, show_all=args.all_rules)
    return EXIT_FAILED if bad else EXIT_OK


def cmd_inject(args: argparse.Namespace) -> int:
    """Write a pcapng with the key log in a Decryption Secrets Block: the entries of
    connections in the capture, or every entry with --all."""
    from .analysis.run import analyze_file
    from .capture.reader import CaptureError
    from .decryption import DecryptionContext
    from .keylog import KeyLogError, entry_lines, load_keylogs, parse_keylog
    from .output.safe_files import OutputError, check_output
    from .secrets_block import extract_secrets, inject_secrets

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if args.capture == "-" and not args.all:
        _err("inject-secrets reads the capture twice to find the key-log entries its "
             "connections use: give a file, or --all to embed every entry")
        return EXIT_USAGE
    try:
        if args.capture == "-" and "-" in args.keylog:
            raise KeyLogError("--keylog - and the capture - cannot both be standard input")
        check_output(Path(args.output), [args.capture, *args.keylog])
        loaded = load_keylogs(args.keylog, use_env=False, any_file=args.keylog_any_file)
        for warning in loaded.warnings:
            err.print(Text.assemble(("warning: ", "yellow"), warning))
        total = len(loaded.log)
        already = 0
        if args.all:
            lines = entry_lines(loaded.log, everything=True)
        else:
            embedded = parse_keylog("\n".join(extract_secrets(args.capture)))
            loaded.log.track()
            analyze_file(args.capture, decryption=DecryptionContext(
                loaded.log, resume_depth=args.resume_depth))
            lines = entry_lines(loaded.log, skip=embedded)
            already = len(entry_lines(loaded.log)) - len(lines)
        if not lines and not already:
            _err(f"none of the {total} key-log entries matches a connection of "
                 f"{args.capture}; nothing to embed (--all embeds every entry)")
            return EXIT_USAGE
        packets, problems = inject_secrets(args.capture, "\n".join(lines) + "\n" if lines
                                           else "", Path(args.output), inputs=loaded.files)
    except (KeyLogError, CaptureError, OutputError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    except OSError as exc:
        _err(f"{args.capture}: {exc.strerror or exc}")
        return EXIT_USAGE
    for problem in problems:
        _warn(problem)
    left = "" if args.all or len(lines) + already == total else \
        f"; {total - len(lines) - already} matching no connection of the capture left " \
        "out (--all embeds them)"
    if already:
        left += f"; {already} already embedded in the capture"
    _say(f"{plural(packets, 'packet')} and {len(lines)} of {plural(total, 'key-log entry')} "
         f"written to {args.output}{left}")
    return EXIT_OK


def cmd_extract(args: argparse.Namespace) -> int:
    """Print (or write with -o) the key logs a capture carries; secret fields are hidden
    unless --show-secrets."""
    from .capture.reader import CaptureError
    from .keylog import redact_line
    from .output.safe_files import OutputError, write_file
    from .secrets_block import extract_secrets

    try:
        texts = extract_secrets(args.capture)
    except CaptureError as exc:
        _err(str(exc))
        return EXIT_USAGE
    if not texts:
        _err(f"{args.capture}: no key log embedded (no tcpcrypt Decryption Secrets Block)")
        return EXIT_NOTHING
    text = "".join(t if t.endswith("\n") else t + "\n" for t in texts)
    if args.output:
        try:
            write_file(args.output, text, inputs=[args.capture])
        except OutputError as exc:
            _err(str(exc))
            return EXIT_USAGE
        _say(f"{plural(len(texts), 'key log')} written to {args.output}")
        return EXIT_OK
    if args.show_secrets:
        sys.stdout.write(text)
        return EXIT_OK
    for line in text.splitlines():
        sys.stdout.write(redact_line(line) + "\n")
    Console(stderr=True, highlight=False).print(
        "note: secret fields hidden; --show-secrets prints them, -o FILE writes the key "
        "log to a file (mode 0600)")
    return EXIT_OK


class _HelpFormatter(argparse.HelpFormatter):
    """Descriptions wrapped to the terminal as usual; the exit-status section, already
    laid out in lines, kept as it is."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for tests and documentation."""
    raw = _HelpFormatter
    parser = argparse.ArgumentParser(
        prog="tcpinc-analyze", formatter_class=raw, epilog=EXIT_HELP_ALL,
        description="Analyze and decrypt TCP-ENO (RFC 8547) and tcpcrypt (RFC 8548) traffic.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, epilog: str, **kw: object) -> argparse.ArgumentParser:
        return sub.add_parser(name, formatter_class=raw, epilog=epilog, **kw)

    analyze = command(
        "analyze", exit_help(
            failed="--follow: the keys authenticate none of the connection's frames",
            nothing="--follow: the connection is not tcpcrypt, or no key decrypts it"),
        help="report ENO negotiation and tcpcrypt framing per connection",
        description="Analyze a pcap or pcapng capture (or - for standard input): one row per "
        "connection, its findings and a summary line.")
    analyze.add_argument("capture", **CAPTURES)
    analyze.add_argument("--format", choices=("table", "json", "jsonl", "parquet"),
                         default="table",
                         help="table (default), json (an array), jsonl (one object per line, "
                         "streamed as connections finish), parquet (with -o FILE: one row per "
                         "connection, dotted column names)")
    analyze.add_argument("--details", action="store_true",
                         help="show decoded fields per connection and frame (spec names)")
    analyze.add_argument("--all-findings", action="store_true",
                         help="table: list every finding, not only the first few per "
                         "connection")
    _capture_options(analyze)
    _filter_options(analyze)
    analyze.add_argument("--follow", type=int, metavar="ID",
                         help="print connection ID's decrypted data, both directions "
                         "interleaved in stream order")
    analyze.add_argument("--hex", action="store_true", help="with --follow: hex dump")
    from .scale.options import add_live_options

    add_live_options(analyze)
    analyze.set_defaults(func=cmd_analyze, check=_check_analyze)

    decrypt = command(
        "decrypt", exit_help(
            ok=": something was decrypted",
            failed="the logged keys authenticate no frame",
            nothing="no tcpcrypt connection, or no key-log entry for any"),
        help="write each tcpcrypt connection's plaintext",
        description="Decrypt every tcpcrypt connection: one file per connection and "
        "direction plus index.json, and/or the capture with its payloads decrypted.")
    decrypt.add_argument("capture", **CAPTURES)
    decrypt.add_argument("-o", "--output", metavar="DIR",
                         help="directory for the plaintext files and index.json")
    decrypt.add_argument("--pcap-out", metavar="FILE",
                         help="write the capture with each decrypted tcpcrypt connection's "
                         "payload replaced by its plaintext (pcapng if FILE ends in .pcapng)")
    decrypt.add_argument("--force", action="store_true",
                         help="write into an existing -o DIR that is not empty (files of the "
                         "same names are replaced)")
    _capture_options(decrypt)
    _filter_options(decrypt)
    decrypt.set_defaults(func=cmd_decrypt, check=_check_decrypt)

    verify = command(
        "verify", exit_help(
            ok=": every frame of every tcpcrypt connection authenticates",
            failed="a frame fails authentication, or a tcpcrypt connection has no key"),
        help="verify every frame's tag; exit 1 on any failure",
        description="Verdict per tcpcrypt connection. Exit 1 if a frame fails "
        "authentication or a tcpcrypt connection cannot be decrypted.")
    verify.add_argument("capture", **CAPTURES)
    _capture_options(verify)
    _filter_options(verify)
    verify.set_defaults(func=cmd_verify)

    conf = command(
        "conformance", exit_help(
            ok=": no MUST rule is violated (--strict: no SHOULD rule either)",
            failed="a MUST rule is violated (--strict: or a SHOULD rule)"),
        help="check each connection against the rules of RFC 8547/8548",
        description="For each connection, every rule of RFC 8547/8548 a capture can show: "
        "held (with the packets that showed it), violated (packets and messages), or not "
        "observable in this capture and why. Exit 1 on any violation of a MUST rule.")
    conf.add_argument("capture", **CAPTURES)
    conf.add_argument("--format", choices=("table", "json"), default="table",
                      help="table (default) or json (one object per connection)")
    conf.add_argument("--all-rules", action="store_true",
                      help="table: list every rule, not only violations and a count of the rest")
    conf.add_argument("--strict", action="store_true",
                      help="SHOULD rules count as violations for the exit status too")
    _capture_options(conf)
    _filter_options(conf)
    conf.set_defaults(func=cmd_conformance, check=_check_conformance)

    inject = command(
        "inject-secrets", exit_help(),
        help="embed a key log in a pcapng (DSB)",
        description="Copy a capture to pcapng with the key-log entries its connections use "
        "in a Decryption Secrets Block (type 0x54435043) before the first packet, so the "
        "capture carries its own keys (Wireshark and this tool read them from there).")
    inject.add_argument("capture", metavar="CAPTURE", help=CAPTURE_HELP)
    inject.add_argument("--keylog", action="append", required=True, metavar="KEYLOG",
                        help="key log file, directory or glob to embed (repeatable)")
    inject.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="pcapng file to write")
    inject.add_argument("--all", action="store_true",
                        help="embed every key-log entry, not only those of connections in "
                        "the capture")
    inject.add_argument("--keylog-any-file", action="store_true",
                        help="also read key logs that are not regular files")
    inject.add_argument("--resume-depth", type=_non_negative, default=RESUME_SEARCH_DEPTH,
                        metavar="N",
                        help="how far down a session's chain an identifier is looked for")
    inject.set_defaults(func=cmd_inject)

    extract = command(
        "extract-secrets", exit_help(
            ok=": the embedded key logs were printed",
            nothing="the capture has no key log embedded"),
        help="print key logs embedded in a capture",
        description="Print the key logs embedded in a pcapng's tcpcrypt Decryption Secrets "
        "Blocks, in file order, secret fields hidden unless --show-secrets; -o FILE writes "
        "them whole (mode 0600).")
    extract.add_argument("capture", metavar="CAPTURE", help=CAPTURE_HELP)
    extract.add_argument("--show-secrets", action="store_true",
                         help="print the secret fields too")
    extract.add_argument("-o", "--output", metavar="FILE",
                         help="write the embedded key log(s) to FILE (mode 0600)")
    extract.set_defaults(func=cmd_extract)

    synth = command("synth", exit_help(),
                    help="write a synthetic sample capture with its key log",
                    description="Generate a named scenario deterministically.")
    synth.add_argument("scenario", nargs="?", metavar="SCENARIO",
                       help="scenario name (see --list)")
    synth.add_argument("-o", "--output", metavar="FILE",
                       help="capture file to write (.pcap or .pcapng)")
    synth.add_argument("--keylog", metavar="FILE", help="key-log file to write")
    synth.add_argument("--expected", metavar="FILE", help="expected-results JSON file to write")
    synth.add_argument("--seed", type=int, default=None, metavar="N",
                       help="random seed (default: the scenario's catalog seed)")
    synth.add_argument("--list", action="store_true", help="list the named scenarios")
    synth.add_argument("--catalog", metavar="DIR",
                       help="regenerate every synthetic sample of the catalog into DIR")
    synth.add_argument("--vectors", metavar="FILE",
                       help="write the RFC 8548 known-answer test vectors (JSON) to FILE")
    synth.set_defaults(func=cmd_synth, check=_check_synth)

    rec = command(
        "record", exit_help(),
        help="record a sample over the real Linux TCP stack (root; two network namespaces "
        "joined by a veth pair)",
        description="Run a scenario's reference endpoints over the real Linux TCP stack "
        "between two network namespaces created for the purpose (root), capture it with "
        "tcpdump and insert the ENO options into the handshake.")
    rec.add_argument("scenario", metavar="SCENARIO",
                     help="recorder scenario: http or bulk")
    rec.add_argument("-o", "--output", required=True, metavar="FILE", help="pcap file to write")
    rec.add_argument("--keylog", required=True, metavar="FILE", help="key-log file to write")
    rec.add_argument("--expected", metavar="FILE", help="expected-results JSON file to write")
    rec.add_argument("--seed", type=int, default=1, metavar="N",
                     help="seed for keys and content (default 1)")
    rec.add_argument("--timeout", type=_positive_seconds, default=20.0, metavar="SECONDS",
                     help="seconds before the recording is abandoned (default 20)")
    rec.add_argument("--middlebox", choices=("nat", "mss-clamp", "strip-eno", "seq-shift",
                                             "proxy"),
                     help="record through a real middlebox in a third namespace, capturing "
                     "on both sides of it: -o is A's side (FIRST), --second B's side")
    rec.add_argument("--second", metavar="FILE",
                     help="with --middlebox: the capture on B's side of the middlebox")
    rec.set_defaults(func=cmd_record)

    from .compare_cli import add_subparser as add_compare_subparser
    from .tui import add_subparser as add_tui_subparser
    from .wireshark.install import add_subparser as add_wireshark_subparser

    add_compare_subparser(sub)

    wireshark = add_wireshark_subparser(sub)
    ws_codes = exit_help(refused="not done: a different plugin file is in the way "
                         "(--force), or (status) tshark is not found")
    for extra in (wireshark, add_tui_subparser(sub), *_children(wireshark)):
        extra.formatter_class = raw
        extra.epilog = extra.epilog or (exit_help() if extra.prog.endswith("tui")
                                        else ws_codes)
    return parser


def _children(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    return [child for action in parser._actions
            if isinstance(action, argparse._SubParsersAction)
            for child in action.choices.values()]


HINTS = {
    "-r": "give the capture as an argument (analyze CAPTURE), not with -r",
    "-k": "the key log option is --keylog KEYLOG",
    "-w": "to write files use decrypt -o DIR or --pcap-out FILE",
}


def _leaf_parser(parser: argparse.ArgumentParser, args: argparse.Namespace
                 ) -> argparse.ArgumentParser:
    """The (sub)command parser the arguments reached, for its usage line in errors."""
    current = parser
    for dest in ("command", "wireshark_action"):
        subs = next((a for a in current._actions
                     if isinstance(a, argparse._SubParsersAction)), None)
        name = getattr(args, dest, None)
        if subs is None or name not in subs.choices:
            break
        current = subs.choices[name]
    return current


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run a subcommand and return its exit code."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        leaf = _leaf_parser(parser, args)
        if extra:
            hint = next((HINTS[a] for a in extra if a in HINTS), None)
            leaf.error(f"unrecognized arguments: {' '.join(extra)}"
                       + (f" ({hint})" if hint else ""))
        check = getattr(args, "check", None)
        problem = check(args) if check is not None else None
        if problem:
            leaf.error(problem)
    except SystemExit as exc:  # --help, --version, usage errors: argparse's own exit
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None
                                                           else EXIT_USAGE)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from .scale.multi import run_command  # several captures, directories, globs

    try:
        return run_command(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, and keep Python's own flush at exit
        # from failing on the closed pipe again.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit
        except OSError:
            pass
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
