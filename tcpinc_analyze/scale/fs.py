"""Captures named by URL (``s3://``, ``gcs://``, ``http://``, ``file://`` ...), read with
fsspec as a stream: what a Dask cluster's workers can all reach. fsspec is part of the
optional ``[dask]`` extra."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import BinaryIO

from ..analysis.connection import HandlerFactory
from ..analysis.report import ConnectionReport
from ..analysis.run import AnalysisResult, make_analyzer
from ..capture.reader import CaptureError, ReadProblem, Record, SecretsBlock, read_capture
from ..decryption import DecryptionContext


def open_url(url: str) -> BinaryIO:
    """An fsspec file opened for reading; CaptureError when it cannot be."""
    try:
        import fsspec
    except ImportError as exc:
        raise CaptureError(f"{url}: reading URLs needs fsspec: pip install "
                           "'tcpinc-analyze[dask]'") from exc
    try:
        return fsspec.open(url, "rb").open()
    except (OSError, ValueError, ImportError) as exc:
        raise CaptureError(f"{url}: cannot open: {exc}") from exc


def feed(items: Iterable[Record | SecretsBlock | ReadProblem], analyzer: object,
         progress: Callable[[int], None] | None) -> None:
    """analyze_file's loop: every item, progress every 1024, then finish."""
    if progress is None:
        analyzer.feed_all(items)  # type: ignore[attr-defined]
        return
    for n, item in enumerate(items):
        analyzer.feed(item)  # type: ignore[attr-defined]
        if n & 0x3FF == 0:
            progress(getattr(item, "offset", 0))
    analyzer.finish()  # type: ignore[attr-defined]


def analyze_stream(stream: BinaryIO, name: str, *,
                   handler_factory: HandlerFactory | None = None,
                   decryption: DecryptionContext | None = None,
                   on_report: Callable[[ConnectionReport], None] | None = None,
                   on_secrets: Callable[[SecretsBlock], None] | None = None,
                   progress: Callable[[int], None] | None = None) -> AnalysisResult:
    """analyze_file over an open stream (a URL, a live pipe)."""
    reports: list[ConnectionReport] = []
    analyzer = make_analyzer(name, on_report or reports.append,
                             handler_factory=handler_factory, decryption=decryption,
                             on_secrets=on_secrets)
    feed(read_capture(stream, name), analyzer, progress)
    reports.sort(key=lambda r: r.id)
    return AnalysisResult(analyzer.summary, reports)


def analyze_url(url: str, **kwargs: object) -> AnalysisResult:
    """analyze_file for an fsspec URL."""
    stream = open_url(url)
    try:
        return analyze_stream(stream, url, **kwargs)  # type: ignore[arg-type]
    finally:
        stream.close()
