"""Captures that are still being written, for ``tui --follow CAPTURE`` and ``tui -i IFACE``.

The terminal browser reads a capture twice, both in background threads: an index of
record offsets (for the packet list) and one analyzer pass (for the connections). Here
both keep going as the file grows, like ``tail -f``: the analysis reads through a
stream that waits at the end of the file instead of ending (and, while it waits,
reports connections that closed, by wall-clock time as live capture does); the index is
rebuilt over the grown file every ``REFRESH_S`` and swapped in whole, so the packet
numbers the browser already shows never change. ``tui -i`` runs dumpcap into a private
temporary pcapng and follows it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..capture.reader import CaptureError
from ..tui.index import CaptureIndex
from .live import LIVE_LINGER_S, sweep_live

REFRESH_S = 0.5
HEADER_WAIT_S = 15.0


def _running() -> bool:
    """The browser is still up (its worker threads must end with it)."""
    return threading.main_thread().is_alive()


class FollowFile:
    """A file read like ``tail -f``: at its end, wait for more (calling ``on_idle``)
    until ``stop`` is set or the browser exits."""

    def __init__(self, path: str, stop: threading.Event,
                 on_idle: Callable[[], None] | None = None) -> None:
        self.f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self.stop = stop
        self.on_idle = on_idle

    def read(self, n: int = -1) -> bytes:
        """At least one byte, or b"" once following has stopped."""
        while True:
            data = self.f.read(1 << 20 if n is None or n < 0 else n)
            if data:
                return data
            if self.stop.is_set() or not _running():
                return b""
            if self.on_idle is not None:
                self.on_idle()
            time.sleep(REFRESH_S / 2)

    read1 = read

    def close(self) -> None:
        """Close the file."""
        self.f.close()


class GrowingIndex(CaptureIndex):
    """A CaptureIndex that follows its file: each pass indexes the file as it is now,
    in a fresh index, and takes over its offsets when done (never fewer than before)."""

    def __init__(self, path: str, stop: threading.Event) -> None:
        super().__init__(path)
        self.stop = stop

    def build(self, on_batch: Callable[[int], None] | None = None) -> None:
        """Index, then keep indexing what is appended until stopped."""
        super().build(on_batch)
        while not self.stop.is_set() and not self.cancelled.is_set() and _running():
            time.sleep(REFRESH_S)
            try:
                size = os.path.getsize(self.path)
            except OSError:
                continue
            if size <= self.size:
                continue
            fresh = CaptureIndex(self.path)
            fresh.build()
            if fresh.count < self.count:
                continue
            with self._lock:
                self.mm, self.size = fresh.mm, fresh.size
                self.offsets = fresh.offsets
                self._sections, self._section_starts = fresh._sections, fresh._section_starts
                self.scanned = fresh.scanned
            if on_batch is not None:
                on_batch(self.count)


class Follow:
    """What the browser needs to follow one growing capture."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stop = threading.Event()
        self.linger_ns = int(LIVE_LINGER_S * 1e9)

    def index(self, path: str) -> CaptureIndex:
        """The packet index (grows with the file)."""
        return GrowingIndex(path, self.stop)

    def attach(self, analysis: object) -> None:
        """Make a CaptureAnalysis read the file as it grows and report closed
        connections while it waits."""

        def idle() -> None:
            analyzer = getattr(analysis, "analyzer", None)
            if analyzer is not None:
                sweep_live(analyzer, time.time_ns(), self.linger_ns)

        cancelled: threading.Event = analysis.cancelled  # type: ignore[attr-defined]

        class _Stop:
            def is_set(inner) -> bool:  # noqa: N805 - reads both events
                return self.stop.is_set() or cancelled.is_set()

        analysis.opener = lambda path: FollowFile(path, _Stop(), idle)  # type: ignore[attr-defined]

    def close(self) -> None:
        """Stop following."""
        self.stop.set()


class LiveCapture:
    """``tui -i IFACE``: dumpcap writing a private temporary pcapng, followed by the
    browser; ``--write FILE`` keeps it when the browser closes."""

    def __init__(self, args: argparse.Namespace) -> None:
        dumpcap = shutil.which("dumpcap")
        if dumpcap is None:
            raise CaptureError("live capture needs dumpcap (Wireshark's capture engine; "
                               "Debian: apt-get install tshark)")
        self.folder = Path(tempfile.mkdtemp(prefix="tcpinc-live-"))
        self.path = self.folder / "live.pcapng"
        self.write = getattr(args, "write", None)
        cmd = [dumpcap, "-q", "-i", args.interface, "-w", str(self.path)]
        if getattr(args, "capture_filter", None):
            cmd += ["-f", args.capture_filter]
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.err,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + HEADER_WAIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.err.seek(0)
                why = self.err.read().decode(errors="replace").strip()
                self.close()
                raise CaptureError(f"dumpcap -i {args.interface}: {why or 'ended'} "
                                   f"(exit code {self.proc.returncode})")
            if self.path.exists() and self.path.stat().st_size >= 28:
                return
            time.sleep(0.1)
        self.close()
        raise CaptureError(f"dumpcap -i {args.interface}: no capture file after "
                           f"{HEADER_WAIT_S:.0f} s")

    def close(self) -> None:
        """Stop dumpcap, keep the file if asked, remove the temporary folder."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        if self.write and self.path.exists():
            shutil.move(str(self.path), self.write)
        shutil.rmtree(self.folder, ignore_errors=True)


def run_following(args: argparse.Namespace, app_class: type) -> int:
    """``tui --follow CAPTURE`` or ``tui -i IFACE``: the browser over a growing file."""
    live = None
    if getattr(args, "interface", None):
        if args.capture:
            print("give either -i IFACE or a capture, not both")
            return 2
        try:
            live = LiveCapture(args)
        except CaptureError as exc:
            print(f"error: {exc}")
            return 2
        path = str(live.path)
    else:
        if not args.capture or not Path(args.capture).is_file():
            print(f"{args.capture}: no such file")
            return 2
        path = args.capture
    follow = Follow(path)
    try:
        app_class(path, args.keylog, follow=follow).run()
    finally:
        follow.close()
        if live is not None:
            live.close()
    return 0
