"""Several captures, directories or globs in one command, on all cores.

Each capture runs the unchanged subcommand in a worker process with its standard output
and error spooled to private files (0600, in a 0700 folder; they may hold secrets or
plaintext); the main process replays them in capture order. So every command, option
and format behaves per capture exactly as with one capture, and the combined output is
deterministic: ordered by capture, then by connection. JSON gets one ``capture`` key per
record (first key); text formats get a ``==> capture <==`` heading (as ``head`` and
``tail`` print for several files). A capture that fails (unreadable, not a capture, a
crash) is reported on standard error and the others still complete; the exit status is
the worst of the captures' (2 if any capture was unusable).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .inputs import InputError, expand, labels
from .shard import _context, default_jobs

EXIT_USAGE = 2


def _err(message: str) -> None:
    from rich.console import Console
    from rich.text import Text

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        Text.assemble(("error: ", "bold red"), message))


def run_command(args: argparse.Namespace) -> int:
    """main()'s dispatcher: expand the capture arguments, then run the subcommand once
    (one capture) or per capture in parallel (several)."""
    try:
        return _dispatch(args)
    finally:
        dask = sys.modules.get("tcpinc_analyze.scale.dask_engine")
        if dask is not None:
            dask.close_clients()


def _dispatch(args: argparse.Namespace) -> int:
    func: Callable[[argparse.Namespace], int] = args.func
    captures = getattr(args, "capture", None)
    if not isinstance(captures, list):
        return int(func(args))
    if getattr(args, "interface", None):
        if captures:
            _err("give either -i IFACE or captures, not both")
            return EXIT_USAGE
        args.capture = f"live:{args.interface}"
        return _single(args)
    if not captures:
        _err("name a capture (file, directory, glob, URL or - for standard input)")
        return EXIT_USAGE
    try:
        inputs = expand(captures)
    except InputError as exc:
        _err(str(exc))
        return EXIT_USAGE
    if not inputs.many:
        args.capture = inputs.paths[0]
        return _single(args)
    return run_many(args, inputs.paths)


# ---------------------------------------------------------------------------- one capture
def _single(args: argparse.Namespace) -> int:
    """One capture; ``--format parquet`` is written from the command's JSON Lines."""
    if getattr(args, "format", None) != "parquet":
        return int(args.func(args))
    from .parquet import ParquetError, check_output, write_parquet

    try:
        check_output(args.output, [args.capture])
    except ParquetError as exc:
        _err(str(exc))
        return EXIT_USAGE
    args.format = "jsonl"
    with tempfile.TemporaryDirectory(prefix="tcpinc-") as tmp:
        spool = Path(tmp) / "out.jsonl"
        with _open_private(spool) as out:
            saved, sys.stdout = sys.stdout, out
            try:
                code = int(args.func(args))
            finally:
                sys.stdout = saved
        try:
            rows = write_parquet(args.output, [(None, spool)],
                                 private=bool(getattr(args, "show_secrets", False)))
        except ParquetError as exc:
            _err(str(exc))
            return EXIT_USAGE
    print(f"{rows} connection(s) written to {args.output}", file=sys.stderr)
    return code


def _open_private(path: Path) -> TextIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return open(fd, "w", encoding="utf-8", newline="")  # noqa: SIM115 - caller closes


# ---------------------------------------------------------------------------- many captures
@dataclass
class Plan:
    """How the per-capture runs are asked to print and how their output is combined."""

    kind: str
    """``text``, ``jsonl``, ``json-lines`` (a JSON array built from JSON Lines),
    ``json-array`` (each capture printed an array) or ``parquet``."""


def _plan(args: argparse.Namespace) -> Plan:
    fmt = getattr(args, "format", None)
    if args.command == "analyze":
        if fmt == "jsonl":
            return Plan("jsonl")
        if fmt == "json":
            return Plan("json-lines")
        if fmt == "parquet":
            return Plan("parquet")
    if args.command == "conformance" and fmt == "json":
        return Plan("json-array")
    return Plan("text")


def _per_capture(args: argparse.Namespace, path: str, label: str, plan: Plan
                 ) -> argparse.Namespace:
    one = copy.copy(args)
    one.capture = path
    one.jobs = 1
    if plan.kind in ("json-lines", "parquet"):
        one.format = "jsonl"
    if args.command == "decrypt":
        if getattr(args, "output", None):
            one.output = str(Path(args.output) / label)
        if getattr(args, "pcap_out", None):
            suffix = ".pcapng" if path.lower().endswith((".pcapng", ".pcapng.gz")) else ".pcap"
            one.pcap_out = str(Path(args.pcap_out) / f"{label}-plaintext{suffix}")
    return one


def _task(args: argparse.Namespace, out_path: str, err_path: str, color: bool,
          width: int | None) -> int:
    """Run one capture's subcommand with its output spooled (in a worker process)."""
    if color:
        os.environ["FORCE_COLOR"] = "1"
    if width:
        os.environ["COLUMNS"] = str(width)
    with _open_private(Path(out_path)) as out, _open_private(Path(err_path)) as err:
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        try:
            return int(args.func(args))
        except KeyboardInterrupt:
            raise
        except BrokenPipeError:
            return 0
        except BaseException as exc:  # noqa: BLE001 - one capture must not stop the rest
            print(f"error: {args.capture}: internal error: {exc!r}", file=err)
            return EXIT_USAGE
        finally:
            sys.stdout, sys.stderr = saved


def _copy(src: Path, dst: TextIO) -> None:
    with open(src, encoding="utf-8", newline="") as f:
        shutil.copyfileobj(f, dst, 1 << 20)
    dst.flush()


def _copy_new_lines(src: Path, dst: TextIO, seen: set[str]) -> None:
    """A capture's standard error, without lines an earlier capture already printed
    (each run loads the same key logs and would repeat their warnings)."""
    with open(src, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line not in seen:
                seen.add(line)
                dst.write(line)
    dst.flush()


def _lines(src: Path) -> Iterator[dict]:
    with open(src, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                yield json.loads(line)


class _ArrayWriter:
    """One JSON array over all captures, formatted as ``json.dumps(..., indent=1)``."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.count = 0

    def add(self, obj: dict) -> None:
        text = json.dumps(obj, indent=1).replace("\n", "\n ")
        self.out.write(("[\n " if not self.count else ",\n ") + text)
        self.count += 1

    def close(self) -> None:
        self.out.write("\n]\n" if self.count else "[]\n")
        self.out.flush()


def _check_outputs(args: argparse.Namespace, paths: list[str]) -> str | None:
    if getattr(args, "follow", None) is not None:
        return "--follow ID needs a single capture (ids restart in every capture)"
    if args.command == "decrypt" and getattr(args, "pcap_out", None):
        target = Path(args.pcap_out)
        if target.exists() and not target.is_dir():
            return (f"--pcap-out {args.pcap_out}: with several captures this is a directory "
                    "(one plaintext capture per input)")
    return None


def run_many(args: argparse.Namespace, paths: list[str]) -> int:
    """Every capture through the subcommand, ``-j`` at a time, output in capture order."""
    problem = _check_outputs(args, paths)
    if problem:
        _err(problem)
        return EXIT_USAGE
    plan = _plan(args)
    if plan.kind == "parquet":
        from .parquet import ParquetError, check_output

        try:
            check_output(args.output, paths)
        except ParquetError as exc:
            _err(str(exc))
            return EXIT_USAGE
    if args.command == "decrypt" and getattr(args, "pcap_out", None):
        Path(args.pcap_out).mkdir(parents=True, exist_ok=True)
    if getattr(args, "dask", None):
        from .dask_engine import DaskError, prefetch

        try:
            args = prefetch(args, paths)
        except DaskError as exc:
            _err(str(exc))
            return EXIT_USAGE
    jobs = getattr(args, "jobs", None) or default_jobs()
    names = labels(paths)
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    tmp = tempfile.mkdtemp(prefix="tcpinc-many-")
    codes: list[int] = []
    seen_err: set[str] = set()
    try:
        spools = [(Path(tmp) / f"{i}.out", Path(tmp) / f"{i}.err") for i in range(len(paths))]
        calls = [(_per_capture(args, p, n, plan), str(o), str(e), color, width)
                 for p, n, (o, e) in zip(paths, names, spools, strict=True)]
        results = _execute(calls, jobs, in_process=hasattr(args, "dask_results"))
        out = sys.stdout
        array = _ArrayWriter(out) if plan.kind in ("json-lines", "json-array") else None
        for i, (path, code) in enumerate(zip(paths, results, strict=False)):
            codes.append(code)
            spool_out, spool_err = spools[i]
            if plan.kind == "text":
                out.write(("\n" if i else "") + f"==> {path} <==\n")
                out.flush()
            if spool_err.exists():
                _copy_new_lines(spool_err, sys.stderr, seen_err)
            if not spool_out.exists():
                continue
            if plan.kind == "text":
                _copy(spool_out, out)
            elif plan.kind == "jsonl":
                for obj in _lines(spool_out):
                    out.write(json.dumps({"capture": path, **obj}, separators=(",", ":"))
                              + "\n")
                out.flush()
            elif plan.kind == "json-lines":
                assert array is not None
                for obj in _lines(spool_out):
                    array.add({"capture": path, **obj})
            elif plan.kind == "json-array":
                assert array is not None
                text = spool_out.read_text(encoding="utf-8").strip()
                for obj in json.loads(text) if text else []:
                    array.add({"capture": path, **obj})
            if plan.kind != "parquet":
                spool_out.unlink()
        if array is not None:
            array.close()
        if plan.kind == "parquet":
            from .parquet import ParquetError, write_parquet

            try:
                rows = write_parquet(args.output, [(p, s[0]) for p, s, c in
                                                   zip(paths, spools, codes, strict=True)
                                                   if s[0].exists()],
                                     private=bool(getattr(args, "show_secrets", False)))
            except ParquetError as exc:
                _err(str(exc))
                return EXIT_USAGE
            print(f"{rows} connection(s) from {len(paths)} captures written to {args.output}",
                  file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    failed = [p for p, c in zip(paths, codes, strict=False) if c == EXIT_USAGE]
    worst = max(codes) if codes else EXIT_USAGE
    note = f"{len(paths)} captures: {len(paths) - len(failed)} read"
    if failed:
        note += f", {len(failed)} failed ({', '.join(failed[:5])}" + (
            ", ..." if len(failed) > 5 else "") + ")"
    print(note, file=sys.stderr)
    return worst


def _execute(calls: list[tuple], jobs: int, in_process: bool = False) -> Iterator[int]:
    """Run the calls, ``jobs`` at a time, yielding exit codes in call order as soon as
    each and all before it are done."""
    if jobs <= 1 or len(calls) == 1 or in_process:
        for call in calls:
            yield _task(*call)
        return
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=min(jobs, len(calls)),
                                                  mp_context=_context())
    try:
        futures = [pool.submit(_task, *call) for call in calls]
        for call, future in zip(calls, futures, strict=True):
            try:
                yield future.result()
            except concurrent.futures.process.BrokenProcessPool:
                Path(call[2]).write_text(f"error: {call[0].capture}: the worker process "
                                         "ended unexpectedly (out of memory?)\n")
                yield EXIT_USAGE
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
