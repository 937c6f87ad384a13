"""Which engine analyses one capture: the usual single process, flow shards on local
cores, a Dask cluster, an fsspec URL, or a live interface. Every engine takes the
keywords of ``analyze_file`` and returns its ``AnalysisResult``, so the subcommands
format the result without knowing where it came from."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from functools import partial

from ..analysis.run import AnalysisResult
from .inputs import is_url
from .shard import AUTO_SHARD_BYTES, analyze_sharded, default_jobs, is_regular_file

Runner = Callable[..., AnalysisResult]


def runner_for(args: argparse.Namespace, *, plaintext: bool) -> Runner | None:
    """The engine for ``args.capture``; None for the single-process ``analyze_file``.

    ``plaintext``: the command takes decrypted data or rewrites the capture (decrypt,
    --follow), which needs every connection in this process.
    """
    path = args.capture
    interface = getattr(args, "interface", None)
    if interface:
        from .live import analyze_live

        return partial(analyze_live, args)
    precomputed = getattr(args, "dask_results", None)
    if precomputed is not None and path in precomputed:
        from .dask_engine import replay

        return partial(replay, precomputed[path])
    dask = getattr(args, "dask", None)
    if dask and not plaintext:
        from .dask_engine import analyze_dask

        return partial(analyze_dask, path, dask, getattr(args, "jobs", None))
    if is_url(path):
        from .fs import analyze_url

        return partial(analyze_url, path)
    jobs = getattr(args, "jobs", None)
    if plaintext or not is_regular_file(path):
        return None
    if jobs is None:
        try:
            if os.path.getsize(path) < AUTO_SHARD_BYTES:
                return None
        except OSError:
            return None
        jobs = default_jobs()
    if jobs <= 1:
        return None
    return partial(analyze_sharded, path, jobs)
