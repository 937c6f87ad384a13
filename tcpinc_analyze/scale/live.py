"""``analyze -i IFACE``: live capture through dumpcap, analysed as the packets arrive.

dumpcap (Wireshark's capture engine, installed with tshark) writes pcapng into a pipe;
the analyzer reads it as a stream. Connections are reported once they have closed and
stayed quiet for ``LIVE_LINGER_S`` of wall-clock time (or gone silent for the analyzer's
idle timeout), so JSON Lines appear while the capture goes on; the table and summary
come when it stops: after ``--duration``, or at Ctrl-C, which stops dumpcap cleanly
(everything it captured is analysed) and exits 0. ``--write FILE`` keeps the pcapng
(with the key log in a Decryption Secrets Block when ``--keylog`` is given), written
beside FILE and renamed into place. Key logs are re-read as they grow.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from ..analysis.connection import HandlerFactory
from ..analysis.engine import Analyzer
from ..analysis.report import ConnectionReport
from ..analysis.run import AnalysisResult, make_analyzer
from ..capture.reader import CaptureError, read_capture
from ..decryption import DecryptionContext
from ..keylog import parse_keylog

LIVE_LINGER_S = 2.0
"""Wall-clock seconds a closed connection waits for late segments before it is reported."""
IDLE_POLL_S = 0.5
KEYLOG_POLL_S = 0.2


def sweep_live(analyzer: Analyzer, now_ns: int, linger_ns: int) -> None:
    """Report connections closed more than ``linger_ns`` ago (or idle past the analyzer's
    timeout) at wall-clock time ``now_ns``: a quiet link sends no packets that would
    advance capture time."""
    analyzer.now = max(analyzer.now, now_ns)
    for conn in list({id(c): c for c in analyzer.table.values()}.values()):
        if (conn.closed_ts is not None and analyzer.now - conn.closed_ts > linger_ns) or (
                analyzer.now - conn.last_ts > analyzer.limits.idle_timeout_ns):
            analyzer._retire(conn)  # noqa: SLF001 - the engine's own retirement


class KeyLogFollower:
    """Re-reads key-log files as they grow (complete lines only), into a live KeyLog."""

    def __init__(self, files: list[str], ctx: DecryptionContext | None) -> None:
        self.ctx = ctx
        self.offsets = {f: 0 for f in files}
        self.next_poll = 0.0
        self.poll(force=True)

    def poll(self, force: bool = False) -> None:
        """Parse what was appended since the last poll."""
        if self.ctx is None or not self.offsets:
            return
        now = time.monotonic()
        if not force and now < self.next_poll:
            return
        self.next_poll = now + KEYLOG_POLL_S
        for path, offset in self.offsets.items():
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read()
            except OSError:
                continue
            end = data.rfind(b"\n") + 1
            if end:
                parse_keylog(data[:end].decode("utf-8", errors="replace"), path,
                             self.ctx.keylog)
                self.offsets[path] = offset + end


class LivePipe:
    """dumpcap's output as a readable stream: copies it to the --write file, waits with
    a timeout so the analyzer can report finished connections while the link is quiet,
    and stops dumpcap at the deadline."""

    def __init__(self, proc: subprocess.Popen, on_idle: Callable[[], None],
                 deadline: float | None, tee: object | None,
                 on_read: Callable[[], None]) -> None:
        self.proc = proc
        self.fd = proc.stdout.fileno()  # type: ignore[union-attr]
        self.on_idle = on_idle
        self.deadline = deadline
        self.tee = tee
        self.on_read = on_read
        self.stopping = False

    def stop(self) -> None:
        """Ask dumpcap to finish (it flushes what it has and exits)."""
        if not self.stopping and self.proc.poll() is None:
            self.stopping = True
            self.proc.send_signal(signal.SIGINT)

    def read(self, n: int = -1) -> bytes:
        """What dumpcap has written (at least one byte), or b"" at its end."""
        want = 1 << 20 if n is None or n < 0 else n
        while True:
            timeout = IDLE_POLL_S
            if self.deadline is not None and not self.stopping:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    self.stop()
                else:
                    timeout = min(timeout, left)
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if ready:
                data = os.read(self.fd, want)
                if data and self.tee is not None:
                    self.tee.write(data)  # type: ignore[attr-defined]
                self.on_read()
                return data
            self.on_idle()

    read1 = read


def _dumpcap_command(args: argparse.Namespace) -> list[str]:
    dumpcap = shutil.which("dumpcap")
    if dumpcap is None:
        raise CaptureError("live capture needs dumpcap (Wireshark's capture engine; Debian: "
                           "apt-get install tshark)")
    cmd = [dumpcap, "-q", "-i", args.interface, "-w", "-"]
    if getattr(args, "capture_filter", None):
        cmd += ["-f", args.capture_filter]
    return cmd


def analyze_live(args: argparse.Namespace, *, handler_factory: HandlerFactory | None = None,
                 decryption: DecryptionContext | None = None,
                 on_report: Callable[[ConnectionReport], None] | None = None,
                 progress: Callable[[int], None] | None = None) -> AnalysisResult:
    """Capture from ``args.interface`` until ``args.duration`` or Ctrl-C, analysing as
    packets arrive; the result is complete when dumpcap has stopped."""
    del progress  # a live capture has no size to show progress against
    name = f"live:{args.interface}"
    cmd = _dumpcap_command(args)
    write = getattr(args, "write", None)
    files: list[str] = []
    if decryption is not None and args.keylog:
        from ..keylog import load_keylogs

        files = list(load_keylogs(args.keylog, use_env=False).files)
    tee = None
    tee_path: Path | None = None
    if write:
        target = Path(write)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
        tee_path = Path(tmp)
        tee = os.fdopen(fd, "wb")
    reports: list[ConnectionReport] = []
    analyzer = make_analyzer(name, on_report or reports.append,
                             handler_factory=handler_factory, decryption=decryption)
    follower = KeyLogFollower(files, decryption)
    linger = int(LIVE_LINGER_S * 1e9)
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + args.duration if getattr(args, "duration", None) else None
    pipe = LivePipe(proc, lambda: (follower.poll(), sweep_live(analyzer, time.time_ns(),
                                                               linger)),
                    deadline, tee, follower.poll)
    interrupts = [0]

    def on_sigint(_sig: int, _frame: FrameType | None) -> None:
        interrupts[0] += 1
        if interrupts[0] == 1:
            pipe.stop()
        else:
            proc.kill()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        try:
            items = read_capture(pipe, name)  # type: ignore[arg-type]
        except CaptureError as exc:
            proc.wait(timeout=10)
            err.seek(0)
            why = err.read().decode(errors="replace").strip()
            raise CaptureError(f"dumpcap -i {args.interface}: "
                               f"{why or exc} (exit code {proc.returncode})") from exc
        for item in items:
            analyzer.feed(item)
        analyzer.finish()
    finally:
        signal.signal(signal.SIGINT, previous)
        if proc.poll() is None:
            pipe.stop()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait()
        if tee is not None:
            tee.close()
        err.close()
    if write and tee_path is not None:
        _keep(tee_path, Path(write), files)
    reports.sort(key=lambda r: r.id)
    return AnalysisResult(analyzer.summary, reports)


def _keep(tmp: Path, target: Path, keylogs: list[str]) -> None:
    """Rename the captured pcapng into place; with key logs, embed them first (DSB)."""
    try:
        if keylogs:
            from ..secrets_block import inject_secrets

            text = "".join(Path(f).read_text(encoding="utf-8", errors="replace")
                           for f in keylogs)
            fd, embedded = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            os.close(fd)
            try:
                inject_secrets(str(tmp), text, Path(embedded))
                os.chmod(embedded, 0o600)  # it holds the key log now
                os.replace(embedded, target)
            finally:
                Path(embedded).unlink(missing_ok=True)
        else:
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
