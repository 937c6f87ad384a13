"""Run the analyzer over a capture file: the entry point outputs and tests share."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from ..capture.reader import SecretsBlock, open_input, read_capture
from ..decryption import DecryptionContext, finalize
from ..keylog import parse_keylog
from ..limits import DEFAULT, Limits
from ..wire import DSB_SECRETS_TYPE_TCPCRYPT
from .connection import HandlerFactory
from .engine import Analyzer, CaptureSummary
from .handlers import Handlers
from .report import ConnectionReport


def secrets_into(ctx: DecryptionContext, then: Callable[[SecretsBlock], None] | None
                  ) -> Callable[[SecretsBlock], None]:
    """Merge key logs embedded in the capture (pcapng DSB, type TCPC) into the context."""

    def take(block: SecretsBlock) -> None:
        if block.secrets_type == DSB_SECRETS_TYPE_TCPCRYPT:
            text = block.data.decode("utf-8", errors="replace")
            parse_keylog(text, f"Decryption Secrets Block at offset {block.offset}",
                         ctx.keylog)
        if then is not None:
            then(block)

    return take


def is_live(stream: object) -> bool:
    """Whether a stream is a pipe, socket or terminal (records arrive over time) rather
    than a regular file."""
    try:
        return not stat.S_ISREG(os.fstat(stream.fileno()).st_mode)  # type: ignore[attr-defined]
    except (OSError, AttributeError, ValueError):
        return False


@dataclass
class AnalysisResult:
    """Reports in id order plus the capture summary."""

    summary: CaptureSummary
    reports: list[ConnectionReport]


def make_analyzer(name: str, sink: Callable[[ConnectionReport], None], *,
                  handler_factory: HandlerFactory | None = None,
                  decryption: DecryptionContext | None = None,
                  on_secrets: Callable[[SecretsBlock], None] | None = None,
                  cls: type[Analyzer] = Analyzer, limits: Limits = DEFAULT) -> Analyzer:
    """An Analyzer wired to a decryption context: one place for that wiring, shared by
    analyze_file, the flow-shard workers and live capture (``tcpinc_analyze.scale``)."""
    before_report = None
    if decryption is not None:
        factories = [decryption.factory] + ([handler_factory] if handler_factory else [])
        handler_factory = Handlers(factories)
        before_report = partial(finalize, ctx=decryption)
        on_secrets = secrets_into(decryption, on_secrets)
    return cls(name, sink, handler_factory=handler_factory, on_secrets=on_secrets,
               before_report=before_report, limits=limits)


def analyze_file(path: str, *, handler_factory: HandlerFactory | None = None,
                 decryption: DecryptionContext | None = None,
                 on_report: Callable[[ConnectionReport], None] | None = None,
                 on_secrets: Callable[[SecretsBlock], None] | None = None,
                 progress: Callable[[int], None] | None = None,
                 limits: Limits = DEFAULT) -> AnalysisResult:
    """Analyze a capture (``-`` for stdin). Raises CaptureError for unusable input.

    With ``on_report`` the reports are streamed to it as connections finish and not
    kept (constant memory); otherwise they are collected and returned in id order.
    """
    reports: list[ConnectionReport] = []
    sink = on_report or reports.append
    stream = open_input(path)
    try:
        analyzer = make_analyzer(path, sink, handler_factory=handler_factory,
                                 decryption=decryption, on_secrets=on_secrets, limits=limits)
        if is_live(stream):
            analyzer.live_input = True
            analyzer.next_sweep_ns = 0
        items = read_capture(stream, path)
        if progress is None:
            analyzer.feed_all(items)
        else:
            # bytes read from the file itself: right for a gzip-compressed capture too,
            # whose records' offsets count decompressed bytes
            where = stream.tell if stream.seekable() else None
            for n, item in enumerate(items):
                analyzer.feed(item)
                if n & 0x3FF == 0:
                    progress(where() if where is not None else getattr(item, "offset", 0))
            analyzer.finish()
    finally:
        if path != "-":
            stream.close()
    reports.sort(key=lambda r: r.id)
    return AnalysisResult(analyzer.summary, reports)
