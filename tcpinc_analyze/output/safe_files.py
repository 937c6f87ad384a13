"""Writing output files without destroying input or leaving half a file behind.

Every output goes to a temporary name in its final folder (created with ``O_EXCL |
O_NOFOLLOW``, so a planted symlink is never followed) and is renamed into place only when
complete; an output that is one of the command's inputs (the same inode, whatever the
path says) is refused before anything is written. Files holding secrets or plaintext are
created 0600. A path that cannot be written is an :class:`OutputError` whose message
names the path and says why: the command line turns it into one ``error:`` line.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

PRIVATE = 0o600
"""Mode of files holding plaintext, secrets or key logs."""
PUBLIC = 0o644
"""Mode of other outputs (before the umask)."""
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(
    os, "O_CLOEXEC", 0)


class OutputError(Exception):
    """An output path that must not or cannot be written (exit status 2)."""


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def identities(paths: Iterable[str | os.PathLike[str]]) -> set[tuple[int, int]]:
    """(device, inode) of every input that exists (``-`` and missing paths skipped)."""
    found = set()
    for path in paths:
        if str(path) == "-":
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        found.add((st.st_dev, st.st_ino))
    return found


def check_output(path: Path, inputs: Iterable[str | os.PathLike[str]] = ()) -> None:
    """Refuse an output path that is an input, a directory, or in a missing folder."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {_why(exc)}") from exc
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{path}: is a directory; name a file")
        if (st.st_dev, st.st_ino) in identities(inputs):
            raise OutputError(f"{path}: is also an input of this command; refusing to "
                              "overwrite it (name another output file)")
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"{path}: folder {folder} does not exist")


def _temp_name(name: str) -> str:
    return f".{name}.tmp-{secrets.token_hex(4)}"


@contextmanager
def atomic_output(path: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str]] = (),
                  mode: int = PRIVATE) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through: a temporary file in the same folder,
    renamed over ``path`` when the block ends without an exception and removed when it
    does not. Raises OutputError for a path that is an input or cannot be written."""
    path = Path(path)
    check_output(path, inputs)
    tmp = path.parent / _temp_name(path.name)
    try:
        fd = os.open(tmp, _CREATE, mode)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {_why(exc)}") from exc
    done = False
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # Re-check: the input may have been named through another path created meanwhile.
        check_output(path, inputs)
        os.replace(tmp, path)
        done = True
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {_why(exc)}") from exc
    finally:
        if not done:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def write_file(path: str | os.PathLike[str], data: bytes | str, *,
               inputs: Iterable[str | os.PathLike[str]] = (), mode: int = PRIVATE) -> None:
    """Write a whole file at once through :func:`atomic_output`."""
    with atomic_output(path, inputs=inputs, mode=mode) as out:
        out.write(data.encode() if isinstance(data, str) else data)


class PrivateOutputDir:
    """An output folder whose files are written in a private (0700) temporary folder and
    moved into place on :meth:`commit`.

    A new folder is created 0700 (the temporary folder renamed into place). An existing
    folder must be empty unless ``force``; its files of the same names are replaced by
    rename, which replaces a planted symlink instead of writing through it.
    """

    def __init__(self, path: str | os.PathLike[str], *, force: bool = False,
                 inputs: Iterable[str | os.PathLike[str]] = ()) -> None:
        self.path = Path(path)
        self.inputs = [str(p) for p in inputs]
        self.names: list[str] = []
        self.dir_fd: int | None = None
        try:
            st: os.stat_result | None = os.stat(self.path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot use as output folder: {_why(exc)}") from exc
        self.existing = st is not None
        if st is not None:
            if not stat.S_ISDIR(st.st_mode):
                raise OutputError(f"{self.path}: exists and is not a directory")
            try:
                with os.scandir(self.path) as entries:
                    occupied = any(True for _ in entries)
            except OSError as exc:
                raise OutputError(f"{self.path}: cannot read the folder: {_why(exc)}") from exc
            if occupied and not force:
                raise OutputError(f"{self.path}: folder is not empty; use --force to write "
                                  "into it (files of the same names are replaced)")
            parent = self.path
        else:
            parent = self.path.parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"{self.path}: cannot create the folder: {_why(exc)}"
                                  ) from exc
        try:
            self.work = Path(parent) / _temp_name(self.path.name or "out")
            os.mkdir(self.work, 0o700)
            self.dir_fd = os.open(self.work, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write in {parent}: {_why(exc)}") from exc
        self.closed = False

    def open(self, name: str, *, append: bool = False) -> BinaryIO:
        """A file in the folder: created 0600 (never through a symlink), or reopened for
        appending by a writer that keeps few files open at once."""
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"not a plain file name: {name!r}")
        if self.dir_fd is None:
            raise OutputError(f"{self.path}: the output folder is already closed")
        flags = (os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)) if append \
            else _CREATE
        try:
            fd = os.open(name, flags, PRIVATE, dir_fd=self.dir_fd)  # type: ignore[arg-type]
        except OSError as exc:
            raise OutputError(f"{self.path / name}: cannot write: {_why(exc)}") from exc
        if not append:
            self.names.append(name)
        return os.fdopen(fd, "ab" if append else "wb")

    def write(self, name: str, data: bytes) -> Path:
        """Write a whole file; returns its final path."""
        with self.open(name) as out:
            out.write(data)
        return self.path / name

    def commit(self) -> None:
        """Move the files into place (a new folder is renamed as a whole)."""
        if self.closed:
            return
        self._close_fd()
        try:
            if self.existing:
                taken = identities(self.inputs)
                for name in self.names:
                    if identities([self.path / name]) & taken:
                        raise OutputError(f"{self.path / name}: is also an input of this "
                                          "command; refusing to overwrite it")
                for name in self.names:
                    os.replace(self.work / name, self.path / name)
                os.rmdir(self.work)
            else:
                os.rename(self.work, self.path)
        except OutputError:
            self.abort()
            raise
        except OSError as exc:
            self.abort()
            raise OutputError(f"{self.path}: cannot move the output into place: {_why(exc)}"
                              ) from exc
        self.closed = True

    def abort(self) -> None:
        """Remove everything written so far."""
        self._close_fd()
        if not self.closed:
            shutil.rmtree(self.work, ignore_errors=True)
            self.closed = True

    def _close_fd(self) -> None:
        if self.dir_fd is not None:
            os.close(self.dir_fd)
            self.dir_fd = None
