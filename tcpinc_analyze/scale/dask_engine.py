"""``--dask SCHEDULER``: the same analysis on a Dask distributed cluster.

One task per capture, or, for a single capture, one task per flow shard: each shard task
reads the whole capture (from a path or fsspec URL every worker can reach: nothing is
shipped from here but the options and the key log), routes every record with the same
``Router`` as the local reader, and analyses its own flows; the results are put together
by the same ``Merger``, so the output is the single-process output, byte for byte.
``local:N`` starts a ``LocalCluster`` of N single-threaded worker processes on the
loopback interface. Dask is an optional extra: ``pip install 'tcpinc-analyze[dask]'``.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..analysis import engine
from ..analysis.connection import HandlerFactory
from ..analysis.report import ConnectionReport
from ..analysis.run import AnalysisResult
from ..capture.reader import CaptureError, Record, SecretsBlock, open_input, read_capture
from ..decryption import DecryptionContext
from ..keylog import KeyLogError
from .inputs import is_url
from .shard import Merger, ReaderState, RoundResult, Router, WorkerConfig


class DaskError(CaptureError):
    """Dask missing, or the scheduler unreachable (exit code 2, reported like unusable
    input by the commands)."""


@dataclass
class Pieces:
    """What the tasks of one capture returned, before merging."""

    name: str
    shards: list[RoundResult]
    reader: ReaderState


def _absolute(path: str) -> str:
    return path if is_url(path) or path == "-" else os.path.abspath(path)


def shard_task(path: str, shard: int, shards: int, config: WorkerConfig
               ) -> tuple[RoundResult, ReaderState] | Exception:
    """One flow shard of one capture (runs on a Dask worker): read everything, analyse
    the records of this shard, sweep at the single-process positions. Unusable input
    comes back as its exception (re-raised here, not logged as a worker crash)."""
    try:
        return _shard(path, shard, shards, config)
    except (CaptureError, KeyLogError) as exc:
        return exc


def _shard(path: str, shard: int, shards: int, config: WorkerConfig
           ) -> tuple[RoundResult, ReaderState]:
    if is_url(path):
        from .fs import open_url

        stream = open_url(path)
    else:
        stream = open_input(path)
    try:
        analyzer = config.analyzer()
        router = Router(shards)
        reader = ReaderState()
        every = engine.SWEEP_EVERY
        tcp = 0
        for seq, item in enumerate(read_capture(stream, config.name)):
            if item.__class__ is Record:
                target, counted = router.route(item)  # type: ignore[arg-type]
                reader.packets += 1
                if reader.first_ts is None:
                    reader.first_ts = item.ts_ns  # type: ignore[union-attr]
                reader.last_ts = item.ts_ns  # type: ignore[union-attr]
                if target == shard:
                    analyzer.seq = seq
                    analyzer.packet(item)  # type: ignore[arg-type]
                if counted:
                    tcp += 1
                    if tcp % every == 0:
                        analyzer.tick(seq, item.ts_ns)  # type: ignore[union-attr]
            elif isinstance(item, SecretsBlock):
                reader.secrets.append(item)
                analyzer.seq = seq
                analyzer.feed(item)
            else:
                reader.problem(seq, item)  # type: ignore[arg-type]
        analyzer.finish()
        return analyzer.take_round(final=True), reader
    finally:
        if path != "-":
            stream.close()


def merge(pieces: Pieces, on_report: Callable[[ConnectionReport], None] | None
          ) -> AnalysisResult:
    """The single-process result from the shards' results."""
    merger = Merger(pieces.name, len(pieces.shards), on_report)
    merger.add_round(pieces.shards)
    return merger.result(pieces.reader)


def replay(pieces: Pieces, *, on_report: Callable[[ConnectionReport], None] | None = None,
           **_ignored: Any) -> AnalysisResult:
    """Runner for a capture the cluster already analysed (several captures)."""
    return merge(pieces, on_report)


_CLIENTS: dict[str, Any] = {}


def client_for(scheduler: str) -> Any:
    """A Dask client: ``local:N`` starts a LocalCluster (kept for the process's other
    captures), anything else is a scheduler address."""
    if scheduler in _CLIENTS:
        return _CLIENTS[scheduler]
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise DaskError("--dask needs Dask: pip install 'tcpinc-analyze[dask]'") from exc
    logging.getLogger("distributed").setLevel(logging.ERROR)
    try:
        if scheduler.startswith("local"):
            _, _, count = scheduler.partition(":")
            try:
                workers = int(count) if count else (os.cpu_count() or 1)
            except ValueError:
                raise DaskError(f"--dask {scheduler}: expected local:N with N a number of "
                                "workers") from None
            if workers < 1:
                raise DaskError(f"--dask {scheduler}: at least one worker")
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address=None,
                                   silence_logs=logging.CRITICAL)
            client = Client(cluster)
        else:
            client = Client(scheduler, timeout="10s")
    except DaskError:
        raise
    except (OSError, TimeoutError, ValueError) as exc:
        raise DaskError(f"--dask {scheduler}: cannot reach the scheduler: {exc}") from exc
    _CLIENTS[scheduler] = client
    return client


def close_clients() -> None:
    """Shut down clusters this process started."""
    while _CLIENTS:
        _, client = _CLIENTS.popitem()
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None:
            cluster.close()


def _config(name: str, decryption: DecryptionContext | None,
            handler_factory: HandlerFactory | None) -> WorkerConfig:
    return WorkerConfig.from_context(name, decryption, handler_factory)


def analyze_dask(path: str, scheduler: str | Any, shards: int | None = None, *,
                 handler_factory: HandlerFactory | None = None,
                 decryption: DecryptionContext | None = None,
                 on_report: Callable[[ConnectionReport], None] | None = None,
                 progress: Callable[[int], None] | None = None) -> AnalysisResult:
    """``analyze_file`` on a Dask cluster: one task per flow shard (default: one per
    worker thread of the cluster). ``scheduler`` is an address, ``local:N`` or a
    ``distributed.Client``."""
    client = client_for(scheduler) if isinstance(scheduler, str) else scheduler
    if shards is None:
        shards = max(1, sum(client.nthreads().values()))
    config = _config(path, decryption, handler_factory)
    where = _absolute(path)
    futures = [client.submit(shard_task, where, i, shards, config, pure=False)
               for i in range(shards)]
    done = client.gather(futures)
    for got in done:
        if isinstance(got, Exception):
            raise got
    pieces = Pieces(path, [r for r, _ in done], done[0][1])
    return merge(pieces, on_report)


def prefetch(args: argparse.Namespace, paths: list[str]) -> argparse.Namespace:
    """Several captures: one task per capture on the cluster, gathered here; each
    capture's command then formats its result (``args.dask_results``)."""
    if args.command == "decrypt":
        raise DaskError("decrypt writes plaintext files on this machine: run it without "
                        "--dask (-j N uses the local cores)")
    from ..analysis.handlers import Handlers, frame_list_factory
    from ..keylog import KeyLogError, load_keylogs

    try:
        loaded = load_keylogs(args.keylog or [])
    except KeyLogError as exc:
        raise DaskError(str(exc)) from exc
    ctx = DecryptionContext(loaded.log, show_secrets=args.show_secrets,
                            resume_depth=args.resume_depth)
    details = Handlers([frame_list_factory]) if getattr(args, "details", False) else None
    client = client_for(args.dask)
    futures = {p: client.submit(shard_task, _absolute(p), 0, 1, _config(p, ctx, details),
                                pure=False) for p in paths}
    results: dict[str, Pieces | None] = {}
    for p, future in futures.items():
        try:
            got = future.result()
        except Exception:  # noqa: BLE001 - the capture's own run reports it locally
            got = None
        results[p] = None if got is None or isinstance(got, Exception) else Pieces(
            p, [got[0]], got[1])
    out = argparse.Namespace(**vars(args))
    out.dask_results = {p: v for p, v in results.items() if v is not None}
    out.dask = None
    return out
