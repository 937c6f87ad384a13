"""Run the analyzer over a capture file: the entry point outputs and tests share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..capture.reader import SecretsBlock, open_input, read_capture
from .connection import HandlerFactory
from .engine import Analyzer, CaptureSummary
from .report import ConnectionReport


@dataclass
class AnalysisResult:
    """Reports in id order plus the capture summary."""

    summary: CaptureSummary
    reports: list[ConnectionReport]


def analyze_file(path: str, *, handler_factory: HandlerFactory | None = None,
                 on_report: Callable[[ConnectionReport], None] | None = None,
                 on_secrets: Callable[[SecretsBlock], None] | None = None,
                 progress: Callable[[int], None] | None = None) -> AnalysisResult:
    """Analyze a capture (``-`` for stdin). Raises CaptureError for unusable input.

    With ``on_report`` the reports are streamed to it as connections finish and not
    kept (constant memory); otherwise they are collected and returned in id order.
    """
    reports: list[ConnectionReport] = []
    sink = on_report or reports.append
    stream = open_input(path)
    try:
        analyzer = Analyzer(path, sink, handler_factory=handler_factory, on_secrets=on_secrets)
        items = read_capture(stream, path)
        if progress is None:
            analyzer.feed_all(items)
        else:
            for n, item in enumerate(items):
                analyzer.feed(item)
                if n & 0x3FF == 0:
                    progress(getattr(item, "offset", 0))
            analyzer.finish()
    finally:
        if path != "-":
            stream.close()
    reports.sort(key=lambda r: r.id)
    return AnalysisResult(analyzer.summary, reports)
