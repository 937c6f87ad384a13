"""The ``tcpinc-analyze`` command line.

Subcommands are thin: they parse options, call library code and format results, so
every behaviour is testable without a terminal.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .wire import RESUME_SEARCH_DEPTH

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
CAPTURES = {"nargs": "*", "metavar": "CAPTURE",
            "help": "capture files, directories (searched for captures), globs, URLs "
            "(fsspec), or - for standard input"}


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
    if args.vectors:
        from .synth.vectors import build_vectors, write_vectors

        try:
            write_vectors(Path(args.vectors))
        except OSError as exc:
            _err(f"cannot write {args.vectors}: {exc.strerror or exc}")
            return EXIT_USAGE
        count = len(build_vectors()["vectors"])
        Console(stderr=True).print(f"wrote {count} RFC 8548 test vectors to {args.vectors}")
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


def _decryption(args: argparse.Namespace, sink=None):  # noqa: ANN001, ANN202
    """A DecryptionContext from --keylog (or TCPCRYPT_KEYLOGFILE); None without keys.

    Raises KeyLogError (reported by the caller) for an unreadable or malformed key log.
    """
    from .decryption import DecryptionContext
    from .keylog import load_keylogs

    loaded = load_keylogs(args.keylog or [])
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for warning in loaded.warnings:
        err.print(Text.assemble(("warning: ", "yellow"), warning))
    return DecryptionContext(loaded.log, show_secrets=args.show_secrets, sink=sink,
                             resume_depth=args.resume_depth)


def _run(args: argparse.Namespace, *, sink=None, on_report=None, factories=(),  # noqa: ANN001, ANN202
         configure=None):  # noqa: ANN001
    """Analyze (and decrypt) the capture named in args; None after printing an error."""
    from .analysis.handlers import Handlers
    from .analysis.run import analyze_file
    from .capture.reader import CaptureError
    from .keylog import KeyLogError

    try:
        ctx = _decryption(args, sink)
    except KeyLogError as exc:
        _err(str(exc))
        return None
    if configure is not None:
        configure(ctx)
    progress, callback = _progress_for(args.capture, getattr(args, "progress", None))
    from .scale.runner import runner_for  # flow shards (-j), --dask, URLs, -i IFACE

    run = runner_for(args, plaintext=sink is not None or configure is not None) or partial(
        analyze_file, args.capture)
    try:
        kwargs = {"handler_factory": Handlers(list(factories)) if factories else None,
                  "decryption": ctx, "on_report": on_report}
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


def cmd_analyze(args: argparse.Namespace) -> int:
    """Analyze a capture: ENO outcome and tcpcrypt framing per connection."""
    import json

    from .analysis.handlers import frame_list_factory
    from .output.plaintext import FollowCollector
    from .output.table import connections_table, details_tree, print_findings, summary_line

    factories = [frame_list_factory] if args.details else []
    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=max(out.width, 180))
    stream_jsonl = args.format == "jsonl" and args.follow is None

    def emit(report):  # noqa: ANN001, ANN202
        print(json.dumps(report.to_json(), separators=(",", ":")))

    follow = FollowCollector(args.follow) if args.follow is not None else None
    result = _run(args, sink=follow, on_report=emit if stream_jsonl else None,
                  factories=factories)
    if result is None:
        return EXIT_USAGE
    if follow is not None:
        report = next((r for r in result.reports if r.id == args.follow), None)
        if report is None:
            _err(f"no connection with id {args.follow} (ids 0-{len(result.reports) - 1})")
            return EXIT_USAGE
        if not follow.chunks:
            _err(f"connection {args.follow}: no decrypted data (is it tcpcrypt, and does "
                 "the key log have its keys?)")
            return EXIT_FAILED
        follow.render(out, report, hexdump=args.hex)
        return EXIT_OK
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


def _capture_options(p: argparse.ArgumentParser) -> None:
    """Options every capture-reading command shares."""
    p.add_argument("--keylog", action="append", metavar="K",
                   help="key log file, directory or glob (repeatable; default: "
                   "$TCPCRYPT_KEYLOGFILE); keys embedded in a pcapng are read too")
    p.add_argument("--show-secrets", action="store_true",
                   help="include session secrets and traffic keys in the output")
    p.add_argument("--resume-depth", type=int, default=RESUME_SEARCH_DEPTH, metavar="N",
                   help="how far down a session's chain ss[0] -> ss[i] a resumed "
                   f"connection's identifier is looked for (default {RESUME_SEARCH_DEPTH})")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: for files over 20 MB on a terminal)")
    from .scale.options import add_scale_options

    add_scale_options(p)


def cmd_decrypt(args: argparse.Namespace) -> int:
    """Plaintext files per connection and direction plus index.json, and/or a capture
    whose tcpcrypt payloads are replaced by their plaintext."""
    from .output.plaintext import DirectoryWriter
    from .output.plaintext_capture import PlaintextCapture

    if not args.output and not args.pcap_out:
        _err("decrypt needs -o DIR and/or --pcap-out FILE")
        return EXIT_USAGE
    writer = DirectoryWriter(Path(args.output)) if args.output else None
    rewrite = PlaintextCapture() if args.pcap_out else None
    sinks = [s for s in (writer, rewrite.sink if rewrite else None) if s is not None]

    def tee(*a):  # noqa: ANN002, ANN202
        for sink in sinks:
            sink(*a)

    def hooks(ctx):  # noqa: ANN001, ANN202
        if rewrite is not None:
            ctx.frame_map = rewrite.frame_map
            ctx.on_finalize = rewrite.on_finalize

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        result = _run(args, sink=tee, configure=hooks)
        if result is None:
            return EXIT_USAGE
        if writer is not None:
            writer.close()
            index = writer.write_index(result.reports, args.capture)
            err.print(f"{len(writer.started)} plaintext file(s) and {index} written")
        if rewrite is not None:
            if args.capture == "-":
                _err("--pcap-out needs to read the capture twice: give a file, not -")
                return EXIT_USAGE
            try:
                count = rewrite.write(args.capture, Path(args.pcap_out))
            except (OSError, ValueError) as exc:
                _err(f"{args.pcap_out}: {exc}")
                return EXIT_USAGE
            err.print(f"{args.pcap_out}: {count} segments of decrypted connections rewritten "
                      "with their plaintext")
    finally:
        if writer is not None:
            writer.close()
        if rewrite is not None:
            rewrite.close()
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """One verdict per tcpcrypt connection; exit 1 on any failure."""
    result = _run(args)
    if result is None:
        return EXIT_USAGE
    out = Console(highlight=False, soft_wrap=True)
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
            where = f"; first at packet {worst.packet}, stream offset {worst.offset}" if worst \
                else ""
            out.print(head, Text(f"FAILED {failed} frame(s)", style="bold red"),
                      f"  ({ok} verified{where})")
        else:
            note = f", {lost} lost in gaps" if lost else ""
            chain = f", resumes #{tc['resumes']}" if tc.get("resumes") is not None else ""
            out.print(head, Text("VERIFIED", style="bold green"),
                      f"  {ok} frames ({tc['keys_from']}{chain}{note})"
                      + (f"  session ID {sid}" if sid else ""))
    if not checked:
        out.print("no tcpcrypt connections in this capture")
    return EXIT_FAILED if bad else EXIT_OK


def cmd_conformance(args: argparse.Namespace) -> int:
    """Per connection, every RFC 8547/8548 rule the capture shows: held, violated, or not
    observable (and why). Exit 1 on any violation, so it can gate an implementer's CI."""
    import json

    from .conformance import check, violations
    from .output.table import conformance_tables

    result = _run(args)
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
        out = Console(highlight=False)
        if not out.is_terminal:
            out = Console(highlight=False, width=max(out.width, 160))
        conformance_tables(out, checked, show_all=args.all_rules)
    return EXIT_FAILED if bad else EXIT_OK


def cmd_inject(args: argparse.Namespace) -> int:
    """Write a pcapng with the key log in a Decryption Secrets Block."""
    from .capture.reader import CaptureError
    from .keylog import KeyLogError, load_keylogs
    from .secrets_block import inject_secrets

    try:
        loaded = load_keylogs(args.keylog, use_env=False)
        text = "".join(Path(f).read_text() for f in loaded.files)
        packets, problems = inject_secrets(args.capture, text, Path(args.output))
    except (KeyLogError, CaptureError, OSError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    for problem in problems:
        Console(stderr=True, soft_wrap=True).print(Text(f"warning: {problem}", style="yellow"))
    Console(stderr=True).print(f"{packets} packets and {len(loaded.log)} key-log entries "
                               f"written to {args.output}")
    return EXIT_OK


def cmd_extract(args: argparse.Namespace) -> int:
    """Print the key logs a capture carries."""
    from .capture.reader import CaptureError
    from .secrets_block import extract_secrets

    try:
        texts = extract_secrets(args.capture)
    except CaptureError as exc:
        _err(str(exc))
        return EXIT_USAGE
    if not texts:
        _err(f"{args.capture}: no tcpcrypt Decryption Secrets Block")
        return EXIT_FAILED
    for text in texts:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
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
    analyze.add_argument("capture", **CAPTURES)
    analyze.add_argument("--format", choices=("table", "json", "jsonl", "parquet"),
                         default="table",
                         help="table (default), json (an array), jsonl (one object per line, "
                         "streamed as connections finish), parquet (with -o FILE: one row per "
                         "connection, dotted column names)")
    analyze.add_argument("--details", action="store_true",
                         help="show decoded fields per connection and frame (spec names)")
    analyze.add_argument("--all-findings", action="store_true",
                         help="list every finding, not only the first few per connection")
    _capture_options(analyze)
    analyze.add_argument("--follow", type=int, metavar="ID",
                         help="print connection ID's decrypted data, both directions "
                         "interleaved in stream order")
    analyze.add_argument("--hex", action="store_true", help="with --follow: hex dump")
    from .scale.options import add_live_options

    add_live_options(analyze)
    analyze.set_defaults(func=cmd_analyze)

    decrypt = sub.add_parser("decrypt", help="write each tcpcrypt connection's plaintext",
                             description="Decrypt every tcpcrypt connection: one file per "
                             "connection and direction plus index.json.")
    decrypt.add_argument("capture", **CAPTURES)
    decrypt.add_argument("-o", "--output", metavar="DIR",
                         help="directory for the plaintext files and index.json")
    decrypt.add_argument("--pcap-out", metavar="FILE",
                         help="write the capture with each decrypted tcpcrypt connection's "
                         "payload replaced by its plaintext (pcapng if FILE ends in .pcapng)")
    _capture_options(decrypt)
    decrypt.set_defaults(func=cmd_decrypt)

    verify = sub.add_parser("verify", help="verify every frame's tag; exit 1 on any failure",
                            description="Verdict per tcpcrypt connection. Exit 1 if a frame "
                            "fails authentication or a tcpcrypt connection cannot be "
                            "decrypted.")
    verify.add_argument("capture", **CAPTURES)
    _capture_options(verify)
    verify.set_defaults(func=cmd_verify)

    conf = sub.add_parser(
        "conformance", help="check each connection against the rules of RFC 8547/8548",
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
    conf.set_defaults(func=cmd_conformance)

    inject = sub.add_parser("inject-secrets", help="embed a key log in a pcapng (DSB)",
                            description="Copy a capture to pcapng with the key log in a "
                            "Decryption Secrets Block (type 0x54435043) before the first "
                            "packet.")
    inject.add_argument("capture")
    inject.add_argument("--keylog", action="append", required=True, help="key log(s) to embed")
    inject.add_argument("-o", "--output", required=True, help="pcapng file to write")
    inject.set_defaults(func=cmd_inject)

    extract = sub.add_parser("extract-secrets", help="print key logs embedded in a capture")
    extract.add_argument("capture")
    extract.set_defaults(func=cmd_extract)

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
    synth.add_argument("--vectors", metavar="FILE",
                       help="write the RFC 8548 known-answer test vectors (JSON) to FILE")
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

    from .tui import add_subparser as add_tui_subparser
    from .wireshark.install import add_subparser as add_wireshark_subparser

    add_wireshark_subparser(sub)
    add_tui_subparser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run a subcommand and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    from .scale.multi import run_command  # several captures, directories, globs

    try:
        return run_command(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
