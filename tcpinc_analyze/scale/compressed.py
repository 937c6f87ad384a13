"""zstd- and lz4-compressed captures, read as tshark reads them: told by the magic
number (not the file name) and decompressed as a stream, never to disk.

The readers need the ``zstandard`` and ``lz4`` packages (the ``[compression]`` extra);
without them a compressed capture is refused with a message that says which package to
install. gzip is handled by ``capture.reader`` itself (the standard library has it).
A stream that breaks part way yields the records before the damage, then one
``ReadProblem`` naming the compressed stream and what went wrong.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from ..capture.reader import CaptureError, ReadProblem, Record, SecretsBlock

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
LZ4_MAGIC = b"\x04\x22\x4d\x18"
CHUNK = 1 << 20
STEP = 64 << 10


class _Prepended:
    """The bytes already read to sniff the magic number, then the rest of the stream."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self.head = head
        self.stream = stream
        self.more = getattr(stream, "read1", None) or stream.read

    def read(self, n: int = -1) -> bytes:
        """Up to n bytes of what is there."""
        if self.head:
            out = self.head if n < 0 else self.head[:n]
            self.head = self.head[len(out):]
            return out
        return self.more(CHUNK if n is None or n < 0 else n)

    read1 = read

    def readable(self) -> bool:
        """For io wrappers."""
        return True

    def close(self) -> None:
        """The caller closes the underlying stream."""


class _Guarded:
    """A decompressing stream whose errors end the stream (and are kept) instead of
    escaping as a traceback from inside the record reader."""

    def __init__(self, inner: BinaryIO, kind: str) -> None:
        self.inner = inner
        self.kind = kind
        self.error: str | None = None
        self.delivered = 0

    def read(self, n: int = -1) -> bytes:
        """Decompressed bytes, or b"" once the stream ended or broke."""
        if self.error is not None:
            return b""
        try:
            # small reads: a damaged frame then costs only what follows it
            out = self.inner.read(STEP if n is None or n < 0 else min(n, STEP))
        except Exception as exc:  # noqa: BLE001 - each library raises its own errors
            self.error = str(exc) or exc.__class__.__name__
            return b""
        self.delivered += len(out)
        return out

    read1 = read


def _zstd(source: _Prepended, name: str) -> BinaryIO:
    try:
        import zstandard
    except ImportError as exc:
        raise CaptureError(f"{name}: zstd-compressed; reading it needs the zstandard package "
                           "(pip install 'tcpinc-analyze[compression]'), or decompress it "
                           "first with zstd -d") from exc
    return zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True,
                                                      read_size=CHUNK)


def _lz4(source: _Prepended, name: str) -> BinaryIO:
    try:
        import lz4.frame
    except ImportError as exc:
        raise CaptureError(f"{name}: lz4-compressed; reading it needs the lz4 package "
                           "(pip install 'tcpinc-analyze[compression]'), or decompress it "
                           "first with lz4 -d") from exc
    return lz4.frame.LZ4FrameFile(source, "rb")  # type: ignore[return-value]


def open_compressed(head: bytes, stream: BinaryIO, name: str
                    ) -> Iterator[Record | SecretsBlock | ReadProblem] | None:
    """The items of a zstd/lz4-compressed capture whose first bytes are ``head``; None
    when ``head`` is not one of their magic numbers."""
    if head[:4] == ZSTD_MAGIC:
        kind, opener = "zstd", _zstd
    elif head[:4] == LZ4_MAGIC:
        kind, opener = "lz4", _lz4
    else:
        return None
    from ..capture.reader import read_capture

    guarded = _Guarded(opener(_Prepended(head, stream), name), kind)
    try:
        items = read_capture(guarded, f"{name} ({kind}-decompressed)")  # type: ignore[arg-type]
    except CaptureError as exc:
        if guarded.error is not None:
            raise CaptureError(f"{name}: {kind}-compressed, but it cannot be decompressed: "
                               f"{guarded.error}") from exc
        raise
    return _then_damage(items, guarded, name)


def _then_damage(items: Iterator[Record | SecretsBlock | ReadProblem], guarded: _Guarded,
                 name: str) -> Iterator[Record | SecretsBlock | ReadProblem]:
    """The records, then what broke the compressed stream (the capture reader says where
    the capture inside ended; this says why)."""
    try:
        yield from items
    except CaptureError as exc:
        if guarded.error is None:
            raise
        raise CaptureError(f"{name}: {guarded.kind}-compressed, but it cannot be "
                           f"decompressed: {guarded.error}") from exc
    if guarded.error is not None:
        yield ReadProblem(f"{name}: the {guarded.kind} data is damaged after "
                          f"{guarded.delivered} decompressed bytes ({guarded.error}); the "
                          "packets before were read", guarded.delivered, fatal=True)
