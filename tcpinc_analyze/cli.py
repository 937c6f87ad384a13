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

from .wire import RESUME_SEARCH_DEPTH

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
    if args.vectors:
        from .output.safe_files import OutputError
        from .synth.vectors import build_vectors, write_vectors

        try:
            write_vectors(Path(args.vectors))
        except OutputError as exc:
            _err(str(exc))
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
    from .keylog import KeyLogError, load_keylogs

    captures = [getattr(args, name, None) for name in ("capture", "first", "second")]
    if "-" in captures and "-" in (args.keylog or []):
        raise KeyLogError("--keylog - and the capture - cannot both be standard input")
    loaded = load_keylogs(args.keylog or [], any_file=getattr(args, "keylog_any_file", False))
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
    try:
        kwargs = {"handler_factory": Handlers(list(factories)) if factories else None,
                  "decryption": ctx, "on_report": on_report}
        if progress is not None:
            with progress:
                return analyze_file(args.capture, progress=callback, **kwargs)
        return analyze_file(args.capture, **kwargs)
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
    from .output.secrets_view import print_secrets
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
        if args.show_secrets and not args.details:
            print_secrets(out, result.reports)
    out.print(summary_line(result.reports, summary))
    return EXIT_OK


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
    Console(stderr=True).print(f"recorded {result} -> {args.output}")
    return EXIT_OK


def _capture_options(p: argparse.ArgumentParser) -> None:
    """Options every capture-reading command shares."""
    p.add_argument("--keylog", action="append", metavar="K",
                   help="key log file, directory or glob (repeatable; default: "
                   "$TCPCRYPT_KEYLOGFILE); keys embedded in a pcapng are read too")
    p.add_argument("--keylog-any-file", action="store_true",
                   help="also read key logs that are not regular files (FIFOs, devices, "
                   "<(...) substitutions); without it they are refused")
    p.add_argument("--show-secrets", action="store_true",
                   help="include session secrets and traffic keys in the output (never "
                   "printed without it)")
    p.add_argument("--resume-depth", type=int, default=RESUME_SEARCH_DEPTH, metavar="N",
                   help="how far down a session's chain ss[0] -> ss[i] a resumed "
                   f"connection's identifier is looked for (default {RESUME_SEARCH_DEPTH})")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: for files over 20 MB on a terminal)")


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
            writer.write_index(result.reports, args.capture)
            writer.commit()
            err.print(f"{len(writer.started)} plaintext file(s) and index.json written to "
                      f"{args.output}")
        if rewrite is not None:
            count = rewrite.write(args.capture, Path(args.pcap_out), inputs=inputs)
            left = (f"; {rewrite.dropped} segment(s) that carried only tcpcrypt Init or "
                    "framing bytes left out") if rewrite.dropped else ""
            err.print(f"{args.pcap_out}: {count} segments of decrypted connections rewritten "
                      f"with their plaintext{left}")
    except OutputError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except OSError as exc:
        _err(f"{args.output or args.pcap_out}: cannot write: {exc.strerror or exc}")
        return EXIT_USAGE
    finally:
        if writer is not None:
            writer.abort()
        if rewrite is not None:
            rewrite.close()
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """One verdict per tcpcrypt connection; exit 1 on any failure."""
    from .output.secrets_view import secret_lines

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
        for label, value in secret_lines(r):  # only with --show-secrets
            out.print(Text(f"      {label}: {value}"))
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
        err.print(Text(f"warning: {problem}", style="yellow"))
    left = "" if args.all or len(lines) + already == total else \
        f"; {total - len(lines) - already} matching no connection of the capture left " \
        "out (--all embeds them)"
    if already:
        left += f"; {already} already embedded in the capture"
    err.print(f"{packets} packets and {len(lines)} of {total} key-log entries written to "
              f"{args.output}{left}")
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
        _err(f"{args.capture}: no tcpcrypt Decryption Secrets Block")
        return EXIT_FAILED
    text = "".join(t if t.endswith("\n") else t + "\n" for t in texts)
    if args.output:
        try:
            write_file(args.output, text, inputs=[args.capture])
        except OutputError as exc:
            _err(str(exc))
            return EXIT_USAGE
        Console(stderr=True).print(f"{len(texts)} key log(s) written to {args.output}")
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
    _capture_options(analyze)
    analyze.add_argument("--follow", type=int, metavar="ID",
                         help="print connection ID's decrypted data, both directions "
                         "interleaved in stream order")
    analyze.add_argument("--hex", action="store_true", help="with --follow: hex dump")
    analyze.set_defaults(func=cmd_analyze)

    decrypt = sub.add_parser("decrypt", help="write each tcpcrypt connection's plaintext",
                             description="Decrypt every tcpcrypt connection: one file per "
                             "connection and direction plus index.json.")
    decrypt.add_argument("capture", help="capture file, or - for standard input")
    decrypt.add_argument("-o", "--output", metavar="DIR",
                         help="directory for the plaintext files and index.json")
    decrypt.add_argument("--pcap-out", metavar="FILE",
                         help="write the capture with each decrypted tcpcrypt connection's "
                         "payload replaced by its plaintext (pcapng if FILE ends in .pcapng)")
    decrypt.add_argument("--force", action="store_true",
                         help="write into an existing -o DIR that is not empty (files of the "
                         "same names are replaced)")
    _capture_options(decrypt)
    decrypt.set_defaults(func=cmd_decrypt)

    verify = sub.add_parser("verify", help="verify every frame's tag; exit 1 on any failure",
                            description="Verdict per tcpcrypt connection. Exit 1 if a frame "
                            "fails authentication or a tcpcrypt connection cannot be "
                            "decrypted.")
    verify.add_argument("capture", help="capture file, or - for standard input")
    _capture_options(verify)
    verify.set_defaults(func=cmd_verify)

    conf = sub.add_parser(
        "conformance", help="check each connection against the rules of RFC 8547/8548",
        description="For each connection, every rule of RFC 8547/8548 a capture can show: "
        "held (with the packets that showed it), violated (packets and messages), or not "
        "observable in this capture and why. Exit 1 on any violation of a MUST rule.")
    conf.add_argument("capture", help="capture file, or - for standard input")
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
    inject.add_argument("--all", action="store_true",
                        help="embed every key-log entry, not only those of connections in "
                        "the capture")
    inject.add_argument("--keylog-any-file", action="store_true",
                        help="also read key logs that are not regular files")
    inject.add_argument("--resume-depth", type=int, default=RESUME_SEARCH_DEPTH, metavar="N",
                        help="how far down a session's chain an identifier is looked for")
    inject.set_defaults(func=cmd_inject)

    extract = sub.add_parser("extract-secrets", help="print key logs embedded in a capture",
                             description="Print the key logs embedded in a capture's "
                             "Decryption Secrets Blocks, secret fields hidden unless "
                             "--show-secrets; -o FILE writes them whole (mode 0600).")
    extract.add_argument("capture")
    extract.add_argument("--show-secrets", action="store_true",
                         help="print the secret fields too")
    extract.add_argument("-o", "--output", metavar="FILE",
                         help="write the embedded key log(s) to FILE (mode 0600)")
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
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
