"""The project's tcpcrypt key log (digest section 3): a writer and a tolerant reader.

The writer is meant for anyone implementing tcpcrypt who wants their traffic to be
decryptable here, the way SSLKEYLOGFILE works for TLS. The reader keeps every valid
line and turns a malformed one into a warning naming file and line (a key log being
written while it is read often ends in a partial line); it never repeats any field's
contents in a message, only which field is wrong and how (a secret pasted into the
wrong column must not reach a terminal or a CI log).

Key logs are hostile input too: only regular files are read unless asked (a FIFO
without a writer would block, ``/dev/zero`` never ends), lines are read in bounded
chunks and an over-long line is skipped without being kept, and memory stays bounded
however long the log: past ``SPILL_ENTRIES`` entries they move to an anonymous private
temporary file, found through a compact hash index (16 bytes per slot).
"""

from __future__ import annotations

import fcntl
import glob
import os
import re
import stat
import struct
import sys
import tempfile
from array import array
from binascii import Error as BinasciiError
from binascii import unhexlify
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    MutableMapping,
    ValuesView,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from .tcpcrypt.keyschedule import canonical_public
from .wire import (
    AEADS,
    K_LEN,
    KEYLOG_ENV,
    KEYLOG_EPHEMERAL_PRIVATE,
    KEYLOG_MASTER_KEY,
    KEYLOG_SESSION_SECRET,
    KEYLOG_TRAFFIC_KEYS,
    N_A_LEN,
    RESUME_LEN,
    TCPCRYPT_TEPS,
)
from .words import plural

LINE_MAX = 4096
"""Longest key-log line read (the longest valid one, a P-521 private-key entry, has about
420 characters); longer lines are skipped without being kept in memory."""
STREAM_MAX = 1 << 30
"""Bytes read from a key log that is not a regular file (standard input, a FIFO) before
reading stops with a warning."""
SPILL_ENTRIES = 20_000
"""Entries kept in dictionaries; past this they move to the spool file."""
MALFORMED_LISTED = 20
"""Malformed lines listed one by one per source; the rest are counted."""
_CHUNK = 1 << 20
ID_LENS = (N_A_LEN, RESUME_LEN)
"""An entry's id: N_A (fresh key exchange) or the 18-byte resume[i] (resumed session)."""
_PUB_LENS = sorted({n for info in TCPCRYPT_TEPS.values()
                    for n in (info.point_len, info.uncompressed_len) if n})
_PRIV_LENS = sorted({info.private_len for info in TCPCRYPT_TEPS.values()})
TRAFFIC_KEY_LENS = sorted({info.traffic_key_len for info in AEADS.values()})
"""K || NR: 28 bytes (AES-128-GCM) or 44 (AES-256-GCM, ChaCha20-Poly1305)."""


class KeyLogWriter:
    """Appends key-log lines to a text stream, one entry per line, flushed at once."""

    def __init__(self, out: TextIO, *, comments: bool = True) -> None:
        self.out = out
        self.comments = comments

    def comment(self, text: str) -> None:
        """A ``#`` line: readers ignore it, people are helped by it."""
        if self.comments:
            for line in text.splitlines() or [""]:
                self.out.write(f"# {line}\n")

    def entry(self, label: str, *fields: bytes) -> None:
        """Write one entry of any label (the typed methods below are the usual way)."""
        self.out.write(" ".join([label, *(f.hex() for f in fields)]) + "\n")
        self.out.flush()

    def ephemeral_private(self, public: bytes, private: bytes) -> None:
        """``<public key> <private key>`` of either host's ephemeral key pair; the public
        key without pubkey_len (compressed for P-256/P-521)."""
        self.entry(KEYLOG_EPHEMERAL_PRIVATE, public, private)

    def session_secret(self, ident: bytes, ss: bytes) -> None:
        """``<id> <ss>``: ss[0] under N_A, or ss[i] under the 18-byte resume[i]."""
        self.entry(KEYLOG_SESSION_SECRET, ident, ss)

    def master_key(self, ident: bytes, mk0: bytes) -> None:
        """``<id> <mk[0]>``: every key generation, no session ID."""
        self.entry(KEYLOG_MASTER_KEY, ident, mk0)

    def traffic_keys(self, ident: bytes, k_ab: bytes, k_ba: bytes) -> None:
        """``<id> <k_ab[0]> <k_ba[0]>``: generation 0 only, each key K || NR."""
        self.entry(KEYLOG_TRAFFIC_KEYS, ident, k_ab, k_ba)


class KeyLogError(ValueError):
    """A key log that cannot be read at all (the message names the file)."""


# ---------------------------------------------------------------------- storage

_EPH, _SS, _MK, _TK = range(4)
_CODES = {KEYLOG_EPHEMERAL_PRIVATE: _EPH, KEYLOG_SESSION_SECRET: _SS,
          KEYLOG_MASTER_KEY: _MK, KEYLOG_TRAFFIC_KEYS: _TK}
_RECORD = struct.Struct("<BBH")
"""Spool record header: table code, key length, value length."""


class _Spool:
    """Entries moved out of memory: records in an unlinked 0600 temporary file (gone
    from the file system as soon as it is created, and from the disk when closed)."""

    def __init__(self) -> None:
        folder = tempfile.mkdtemp(prefix="tcpinc-keylog-")
        path = os.path.join(folder, "entries")
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.unlink(path)
        os.rmdir(folder)
        self.size = 0
        self.pending = bytearray()

    def append(self, code: int, key: bytes, value: bytes) -> int:
        offset = self.size + len(self.pending)
        self.pending += _RECORD.pack(code, len(key), len(value)) + key + value
        if len(self.pending) >= _CHUNK:
            self.flush()
        return offset

    def flush(self) -> None:
        if self.pending:
            os.pwrite(self.fd, self.pending, self.size)
            self.size += len(self.pending)
            self.pending = bytearray()

    def read(self, offset: int) -> tuple[int, bytes, bytes]:
        self.flush()
        head = os.pread(self.fd, _RECORD.size + 255 + 0xFFFF, offset)
        code, klen, vlen = _RECORD.unpack_from(head)
        at = _RECORD.size
        return code, head[at:at + klen], head[at + klen:at + klen + vlen]

    def records(self) -> Iterator[tuple[int, int, bytes, bytes]]:
        """(offset, code, key, value) of every record, in order."""
        self.flush()
        offset = 0
        buf = b""
        base = 0
        while offset < self.size:
            if offset + _RECORD.size + 255 + 0xFFFF > base + len(buf) and \
                    base + len(buf) < self.size:
                buf = os.pread(self.fd, _CHUNK + _RECORD.size + 255 + 0xFFFF, offset)
                base = offset
            at = offset - base
            code, klen, vlen = _RECORD.unpack_from(buf, at)
            at += _RECORD.size
            yield offset, code, buf[at:at + klen], buf[at + klen:at + klen + vlen]
            offset += _RECORD.size + klen + vlen

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        self.close()


class _Index:
    """Open-addressing hash index over spool offsets: two 8-byte arrays, load <= 1/2."""

    def __init__(self) -> None:
        self.hashes = array("q", bytes(8 * 1024))
        self.offsets = array("q", bytes(8 * 1024))
        self.used = 0

    @staticmethod
    def _hash(key: bytes) -> int:
        return (hash(key) & 0x3FFF_FFFF_FFFF_FFFF) | 1

    def add(self, key: bytes, offset: int) -> None:
        if 2 * (self.used + 1) > len(self.hashes):
            self._grow()
        self._put(self._hash(key), offset)
        self.used += 1

    def _put(self, h: int, offset: int) -> None:
        mask = len(self.hashes) - 1
        i = h & mask
        hashes = self.hashes
        while hashes[i]:
            i = (i + 1) & mask
        hashes[i] = h
        self.offsets[i] = offset

    def _grow(self) -> None:
        old_hashes, old_offsets = self.hashes, self.offsets
        size = 2 * len(old_hashes)
        self.hashes = array("q", bytes(8 * size))
        self.offsets = array("q", bytes(8 * size))
        for i, h in enumerate(old_hashes):
            if h:
                self._put(h, old_offsets[i])

    def candidates(self, key: bytes) -> Iterator[int]:
        """Offsets whose hash matches ``key``'s, in insertion order of their slots."""
        h = self._hash(key)
        mask = len(self.hashes) - 1
        i = h & mask
        hashes = self.hashes
        while hashes[i]:
            if hashes[i] == h:
                yield self.offsets[i]
            i = (i + 1) & mask


class _Table(MutableMapping[bytes, Any]):
    """One label's entries: a dict, or (past SPILL_ENTRIES) the shared spool and an
    index of its own. A later entry for the same key wins, as in a dict."""

    def __init__(self, log: KeyLog, code: int) -> None:
        self._log = log
        self._code = code
        self._mem: dict[bytes, Any] = {}
        self._index: _Index | None = None
        self._spilled = 0
        """Distinct keys in the spool."""

    # values are bytes, or (k_ab, k_ba) for traffic keys
    def _encode(self, value: Any) -> bytes:
        return value[0] + value[1] if self._code == _TK else value

    def _decode(self, raw: bytes) -> Any:
        if self._code == _TK:
            half = len(raw) // 2
            return raw[:half], raw[half:]
        return raw

    def _find(self, key: bytes) -> bytes | None:
        spool = self._log._spool
        if self._index is None or spool is None:
            return None
        best = -1
        found = None
        for offset in self._index.candidates(key):
            if offset > best:
                _code, k, v = spool.read(offset)
                if k == key:
                    best, found = offset, v
        return found

    def _note(self, key: bytes) -> None:
        asked = self._log.asked
        if asked is not None:
            asked.add((self._code, key))

    def __getitem__(self, key: bytes) -> Any:
        self._note(key)
        return self._get(key)

    def _get(self, key: bytes) -> Any:
        if key in self._mem:
            return self._mem[key]
        raw = self._find(key)
        if raw is None:
            raise KeyError(key)
        return self._decode(raw)

    def items(self) -> ItemsView[bytes, Any]:
        """Every entry; iterating is not looking up (``asked`` is not touched)."""
        return _Items(self)

    def values(self) -> ValuesView[Any]:
        """Every value; iterating is not looking up."""
        return _Values(self)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, bytes | bytearray):
            return False
        self._note(bytes(key))
        return key in self._mem or self._find(bytes(key)) is not None

    def __setitem__(self, key: bytes, value: Any) -> None:
        self.add(key, value)

    def add(self, key: bytes, value: Any) -> bool:
        """Store an entry; whether the key was there already (the new value wins)."""
        log = self._log
        if log._spool is None:
            mem = self._mem
            existed = key in mem
            mem[key] = value
            if not existed:
                log._in_memory += 1
                if log._in_memory > SPILL_ENTRIES:
                    log._spill()
            return existed
        existed = self._find(key) is not None
        if not existed:
            self._spilled += 1
        self._put(key, self._encode(value))
        return existed

    def _put(self, key: bytes, raw: bytes) -> None:
        spool = self._log._spool
        assert spool is not None
        if self._index is None:
            self._index = _Index()
        self._index.add(key, spool.append(self._code, key, raw))

    def _move_out(self) -> None:
        for key, value in self._mem.items():
            self._put(key, self._encode(value))
        self._spilled += len(self._mem)
        self._mem = {}

    def __delitem__(self, key: bytes) -> None:
        if self._index is not None:
            raise TypeError("entries moved to the spool cannot be deleted")
        del self._mem[key]

    def __iter__(self) -> Iterator[bytes]:
        yield from self._mem
        spool = self._log._spool
        if self._index is None or spool is None:
            return
        for offset, code, key, _value in spool.records():
            if code == self._code and max(
                    (o for o in self._index.candidates(key)
                     if spool.read(o)[1] == key), default=-1) == offset:
                yield key

    def __len__(self) -> int:
        return len(self._mem) + self._spilled

    def __repr__(self) -> str:
        return f"_Table({dict(self.items())!r})"


class _Items(ItemsView[bytes, Any]):
    def __iter__(self) -> Iterator[tuple[bytes, Any]]:
        table = self._mapping
        for key in table:
            yield key, table._get(key)


class _Values(ValuesView[Any]):
    def __iter__(self) -> Iterator[Any]:
        table = self._mapping
        for key in table:
            yield table._get(key)


@dataclass(eq=False)
class KeyLog:
    """What a set of key-log files contains, indexed by what the wire shows."""

    unknown_labels: int = 0
    duplicates: int = 0
    malformed: list[str] = field(default_factory=list)
    """One message per skipped line: file, line, label, field, what is wrong (the first
    MALFORMED_LISTED per source; then one message with the count)."""
    asked: set[tuple[int, bytes]] | None = None
    """With :meth:`track`, every (table, key) the analyzer looked up: what
    ``inject-secrets`` embeds."""

    def __post_init__(self) -> None:
        self._spool: _Spool | None = None
        self._in_memory = 0
        self.ephemeral_private: MutableMapping[bytes, bytes] = _Table(self, _EPH)
        """Canonical public key (NIST points compressed) -> private key."""
        self.session_secrets: MutableMapping[bytes, bytes] = _Table(self, _SS)
        self.master_keys: MutableMapping[bytes, bytes] = _Table(self, _MK)
        self.traffic_keys: MutableMapping[bytes, tuple[bytes, bytes]] = _Table(self, _TK)

    def _tables(self) -> list[Any]:
        return [self.ephemeral_private, self.session_secrets, self.master_keys,
                self.traffic_keys]

    def _spill(self) -> None:
        self._spool = _Spool()
        for table in self._tables():
            table._move_out()
        self._in_memory = 0

    @property
    def spilled(self) -> bool:
        """Whether entries live in the spool file (a very long key log)."""
        return self._spool is not None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyLog):
            return NotImplemented
        return (all(dict(a.items()) == dict(b.items())
                    for a, b in zip(self._tables(), other._tables(), strict=True))
                and (self.unknown_labels, self.duplicates, self.malformed)
                == (other.unknown_labels, other.duplicates, other.malformed))

    def __len__(self) -> int:
        return sum(len(t) for t in self._tables())

    def private_for(self, public: bytes) -> bytes | None:
        """The logged private key of a public key, whatever encoding either used."""
        return self.ephemeral_private.get(canonical_public(public))

    def track(self) -> None:
        """Start recording the keys the analyzer looks up (see ``asked``)."""
        self.asked = set()

    def close(self) -> None:
        """Release the spool file (also done when the log is garbage-collected)."""
        if self._spool is not None:
            self._spool.close()


# ---------------------------------------------------------------------- parsing

class _Malformed(ValueError):
    pass


_SPECS: dict[str, tuple[tuple[str, ...], tuple[Iterable[int], ...]]] = {
    KEYLOG_EPHEMERAL_PRIVATE: (("public key", "private key"), (_PUB_LENS, _PRIV_LENS)),
    KEYLOG_SESSION_SECRET: (("id", "session secret"), (ID_LENS, (K_LEN,))),
    KEYLOG_MASTER_KEY: (("id", "master key"), (ID_LENS, (K_LEN,))),
    KEYLOG_TRAFFIC_KEYS: (("id", "k_ab", "k_ba"), (ID_LENS, TRAFFIC_KEY_LENS, TRAFFIC_KEY_LENS)),
}
_ALLOWED = {label: tuple(tuple(sorted(set(ls))) for ls in lengths)
            for label, (_names, lengths) in _SPECS.items()}
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")
_FAST = {label.encode(): (label, allowed) for label, allowed in _ALLOWED.items()}


def _field(value: str, column: int, what: str, allowed: tuple[int, ...]) -> bytes:
    """One hex field; the message names column, field and fault, never the value."""
    try:
        if len(value) % 2:
            raise ValueError
        raw = bytes.fromhex(value)
        if len(raw) * 2 != len(value):
            raise ValueError
    except ValueError:
        bad = next((i for i, ch in enumerate(value) if ch not in _HEXDIGITS), None)
        why = (f"character {bad + 1} is not a hex digit" if bad is not None
               else f"odd number of hex digits ({len(value)})")
        raise _Malformed(f"field {column} ({what}): {why}") from None
    if len(raw) not in allowed:
        raise _Malformed(f"field {column} ({what}) is {len(raw)} bytes, expected "
                         f"{' or '.join(map(str, allowed))}")
    return raw


def parse_line(line: str) -> tuple[str, bytes, Any] | None:
    """(label, lookup key, value) of one entry; None for a blank line, a comment or an
    unknown label (``KeyError`` is raised for the last, so it can be counted).

    Raises ``ValueError`` with a message naming the fault (never a field's value)."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    label, *fields = line.split()
    spec = _SPECS.get(label)
    if spec is None:
        raise KeyError(label)
    names, _lengths = spec
    allowed = _ALLOWED[label]
    if len(fields) != len(names):
        raise _Malformed(f"{label} takes {len(names)} fields "
                         f"({' '.join(f'<{n}>' for n in names)}), got {len(fields)}")
    try:
        values = [_field(v, i + 2, n, a)
                  for i, (v, n, a) in enumerate(zip(fields, names, allowed, strict=True))]
    except _Malformed as exc:
        raise _Malformed(f"{label} {exc}") from None
    if label == KEYLOG_TRAFFIC_KEYS:
        if len(values[1]) != len(values[2]):
            raise _Malformed(f"{label} k_ab and k_ba differ in length")
        return label, values[0], (values[1], values[2])
    if label == KEYLOG_EPHEMERAL_PRIVATE:
        return label, canonical_public(values[0]), values[1]
    return label, values[0], values[1]


class _Reader:
    """Adds lines of one source to a KeyLog, counting and capping what it reports."""

    def __init__(self, log: KeyLog, name: str) -> None:
        self.log = log
        self.name = name
        self.bad = 0
        self.tables = {KEYLOG_EPHEMERAL_PRIVATE: log.ephemeral_private,
                       KEYLOG_SESSION_SECRET: log.session_secrets,
                       KEYLOG_MASTER_KEY: log.master_keys,
                       KEYLOG_TRAFFIC_KEYS: log.traffic_keys}

    def malformed(self, number: int, why: str) -> None:
        self.bad += 1
        if self.bad <= MALFORMED_LISTED:
            self.log.malformed.append(f"{self.name}:{number}: {why}; line skipped")

    def line(self, number: int, raw: bytes | str | None) -> None:
        if raw is None:
            self.malformed(number, f"longer than {LINE_MAX} bytes")
            return
        if isinstance(raw, bytes) and self._fast(raw):
            return
        if isinstance(raw, bytes):
            stripped = raw.strip()
            if not stripped or stripped.startswith(b"#"):
                return
            try:
                raw = stripped.decode("ascii")
            except UnicodeDecodeError:
                self.malformed(number, "not ASCII text")
                return
        try:
            entry = parse_line(raw)
        except KeyError:
            self.log.unknown_labels += 1
            return
        except ValueError as exc:
            self.malformed(number, str(exc))
            return
        if entry is None:
            return
        label, key, value = entry
        if self.tables[label].add(key, value):
            self.log.duplicates += 1

    def _fast(self, raw: bytes) -> bool:
        """The common case of a well-formed entry, without building messages; False
        sends the line to the full parser (comments, unknown labels, faults)."""
        parts = raw.split()
        if not parts:
            return True
        spec = _FAST.get(parts[0])
        if spec is None or len(parts) != len(spec[1]) + 1:
            return False
        label, allowed = spec
        try:
            values = [unhexlify(v) for v in parts[1:]]
        except (BinasciiError, ValueError):
            return False
        for v, ok in zip(values, allowed, strict=True):
            if len(v) not in ok:
                return False
        if label == KEYLOG_TRAFFIC_KEYS:
            if len(values[1]) != len(values[2]):
                return False
            key, value = values[0], (values[1], values[2])
        elif label == KEYLOG_EPHEMERAL_PRIVATE:
            key, value = canonical_public(values[0]), values[1]
        else:
            key, value = values
        if self.tables[label].add(key, value):
            self.log.duplicates += 1
        return True

    def done(self) -> None:
        if self.bad > MALFORMED_LISTED:
            self.log.malformed.append(f"{self.name}: {self.bad - MALFORMED_LISTED} more "
                                      "malformed line(s) skipped")


def _split_lines(buf: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines of ``buf`` and the unfinished rest; CR, LF and CRLF end a line.
    (bytes.split runs at memory speed; a regular expression took 0.2 s per MiB.)"""
    parts = buf.split(b"\n")
    pending = parts.pop()
    lines: list[bytes] = []
    for part in parts:
        if part.endswith(b"\r"):
            part = part[:-1]
        if b"\r" in part:
            lines += part.split(b"\r")
        else:
            lines.append(part)
    if b"\r" in pending:
        more = pending.split(b"\r")
        pending = more.pop()
        lines += more
    return lines, pending


def iter_lines(read: Callable[[int], bytes], limit: int | None = None
               ) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line) from a byte source read in chunks; only CR, LF and CRLF end a
    line. A line longer than LINE_MAX comes as None and is never held in memory. With
    ``limit``, reading stops after that many bytes (then StopIteration's value is True).
    """
    number = 0
    pending = b""
    skipping = False
    total = 0
    while True:
        chunk = read(_CHUNK)
        if not chunk:
            break
        total += len(chunk)
        buf = pending + chunk
        hold = b""
        if buf.endswith(b"\r"):  # maybe half of a CRLF split between chunks
            buf, hold = buf[:-1], b"\r"
        parts, pending = _split_lines(buf)
        for part in parts:
            number += 1
            if skipping:
                skipping = False
                yield number, None
            else:
                yield number, part if len(part) <= LINE_MAX else None
        if len(pending) > LINE_MAX:
            skipping, pending = True, b""
        if skipping:
            pending = b""
        pending += hold
        if limit is not None and total >= limit:
            return True
    if pending.endswith(b"\r"):
        pending = pending[:-1]
        number += 1
        yield number, None if skipping else pending
    elif skipping or pending:
        number += 1
        yield number, None if skipping else pending
    return False


def parse_keylog(text: str, name: str = "<key log>", into: KeyLog | None = None) -> KeyLog:
    """Parse key-log text; malformed lines become ``log.malformed`` messages naming
    ``name`` and the line number, and every valid line is used."""
    log = into if into is not None else KeyLog()
    reader = _Reader(log, name)
    # Only CR, LF and CRLF end a line (as in universal-newline text mode): splitlines()
    # also breaks at \x0b, \x0c, \x1c-\x1e, \x85, U+2028/9.
    for number, line in enumerate(re.split(r"\r\n|[\r\n]", text), 1):
        reader.line(number, line if len(line) <= LINE_MAX else None)
    reader.done()
    return log


# ---------------------------------------------------------------------- files

@dataclass
class LoadedKeyLogs:
    """Key logs read from files, with what a user should be told about them."""

    log: KeyLog
    files: list[str]
    warnings: list[str]


KEYLOG_SUFFIXES = (".keys", ".keylog", ".log", ".txt")
"""Files a directory given as --keylog contributes (captures may sit beside them)."""
STDIN = "-"


def expand_keylog_spec(spec: str) -> list[Path]:
    """The files a ``--keylog`` value names: itself, a directory's key-log files, or a
    glob's matches."""
    if spec == STDIN:
        return [Path(STDIN)]
    path = Path(spec)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix in KEYLOG_SUFFIXES)
    if any(ch in spec for ch in "*?[") and not path.exists():
        return sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file())
    return [path]


def _project_samples() -> Path:
    return Path(__file__).resolve().parents[1] / "samples"


def _is_project_sample(path: Path) -> bool:
    """Key logs shipped in this project's samples/ (public test data that git checks out
    0644 whatever we do) do not get the permission warning."""
    try:
        return path.resolve().parent == _project_samples()
    except OSError:
        return False


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a directory"))


def _open_source(path: Path, any_file: bool) -> tuple[BinaryIO, int | None, os.stat_result | None]:
    """An open key log, the byte limit to read from it (None: a regular file, read whole)
    and its status."""
    if str(path) == STDIN:
        return sys.stdin.buffer, STREAM_MAX, None
    try:
        st = os.stat(path)
    except OSError as exc:
        raise KeyLogError(f"{path}: cannot read key log: {exc.strerror or exc}") from exc
    regular = stat.S_ISREG(st.st_mode)
    if not regular:
        kind = next((text for test, text in _KINDS if test(st.st_mode)), "not a regular file")
        if not any_file or stat.S_ISDIR(st.st_mode):
            raise KeyLogError(f"{path}: is {kind}, not a regular file; key logs are read from "
                              "regular files, '-' (standard input), or any file with "
                              "--keylog-any-file")
    try:
        if regular:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        else:
            # O_NONBLOCK: opening a FIFO that has no writer must not hang; reads block
            # again afterwards (a FIFO with no writer then reads as empty).
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    except OSError as exc:
        raise KeyLogError(f"{path}: cannot read key log: {exc.strerror or exc}") from exc
    return os.fdopen(fd, "rb", buffering=0), None if regular else STREAM_MAX, st


def read_keylog_file(path: Path, log: KeyLog, *, any_file: bool = False) -> list[str]:
    """Add one key-log file (or ``-``) to ``log``; returns warnings about the file itself.

    Raises KeyLogError when it cannot be read at all."""
    stream, limit, st = _open_source(path, any_file)
    warnings = []
    name = "<standard input>" if str(path) == STDIN else str(path)
    reader = _Reader(log, name)
    try:
        lines = iter_lines(stream.read, limit)
        while True:
            try:
                number, line = next(lines)
            except StopIteration as stop:
                if stop.value:
                    warnings.append(f"{name}: stopped reading after {limit} bytes (not a "
                                    "regular file); save the key log to a file to read it "
                                    "whole")
                break
            reader.line(number, line)
    except OSError as exc:
        raise KeyLogError(f"{name}: cannot read key log: {exc.strerror or exc}") from exc
    finally:
        if str(path) != STDIN:
            stream.close()
    reader.done()
    if st is not None and stat.S_ISREG(st.st_mode) and st.st_mode & (
            stat.S_IRGRP | stat.S_IROTH) and not _is_project_sample(path):
        warnings.append(f"{path}: the key log is readable by other users "
                        f"(mode {stat.S_IMODE(st.st_mode):o}); it holds session secrets: "
                        f"chmod 600 {path}")
    return warnings


def load_keylogs(specs: Iterable[str], *, use_env: bool = True,
                 any_file: bool = False) -> LoadedKeyLogs:
    """Read every key log named by files, directories or globs (default: the env var).

    Raises KeyLogError for a file named on the command line that cannot be read; one
    named only by $TCPCRYPT_KEYLOGFILE is a warning (a stale variable must not stop an
    analysis that needs no keys). Malformed lines are warnings.
    """
    specs = list(specs)
    from_env = False
    if not specs and use_env and os.environ.get(KEYLOG_ENV):
        specs = [os.environ[KEYLOG_ENV]]
        from_env = True
    log = KeyLog()
    files: list[str] = []
    warnings: list[str] = []
    if sum(1 for s in specs if s == STDIN) > 1:
        raise KeyLogError("--keylog -: standard input can be read once")
    for spec in specs:
        try:
            paths = expand_keylog_spec(spec)
            if not paths:
                raise KeyLogError(f"{spec}: no key-log file matches")
            for path in paths:
                warnings += read_keylog_file(path, log, any_file=any_file)
                files.append(str(path))
        except KeyLogError as exc:
            if not from_env:
                raise
            warnings.append(f"{KEYLOG_ENV}={spec}: {exc}; analysing without it")
    warnings += log.malformed
    if log.unknown_labels:
        warnings.append(f"{plural(log.unknown_labels, 'key-log line')} with unknown labels "
                        "skipped")
    return LoadedKeyLogs(log, files, warnings)


def _entry_line(code: int, key: bytes, value: Any) -> str:
    label = next(label for label, c in _CODES.items() if c == code)
    fields = [key, *(value if code == _TK else (value,))]
    return " ".join([label, *(f.hex() for f in fields)])


def entry_lines(log: KeyLog, *, everything: bool = False,
                skip: KeyLog | None = None) -> list[str]:
    """Key-log lines for ``inject-secrets``: every entry, or (default) those the analyzer
    looked up after ``log.track()``, i.e. the entries of connections in the capture. A
    session secret also counts when a resumed connection looked up an identifier of its
    chain ss[0] -> ss[i] (within ``RESUME_SEARCH_DEPTH``). Entries equal to one in
    ``skip`` (keys the capture already embeds) are left out."""
    from .wire import RESUME_SEARCH_DEPTH, next_session_secret, resume_identifier

    tables = log._tables()
    skip_tables = skip._tables() if skip is not None else None
    lines: list[str] = []

    def keep(code: int, key: bytes, value: Any) -> None:
        if skip_tables is not None and skip_tables[code].get(key) == value:
            return
        lines.append(_entry_line(code, key, value))

    asked, log.asked = log.asked, None  # what we look up here is not the analyzer's
    try:
        if everything:
            for code, table in enumerate(tables):
                for key, value in table.items():
                    keep(code, key, value)
            return lines
        wanted = asked or set()
        found: set[tuple[int, bytes]] = set()
        for code, key in sorted(wanted):
            if key in tables[code]:
                found.add((code, key))
                keep(code, key, tables[code][key])
        resumed = {key for code, key in wanted if len(key) == RESUME_LEN
                   and (code, key) not in found}
        if resumed:
            for key, ss in tables[_SS].items():
                if len(key) != N_A_LEN or (_SS, key) in found:
                    continue
                for _ in range(RESUME_SEARCH_DEPTH):
                    ss = next_session_secret(ss)
                    if resume_identifier(ss) in resumed:
                        keep(_SS, key, tables[_SS][key])
                        break
        return lines
    finally:
        log.asked = asked


_SECRET_COLUMNS = {KEYLOG_EPHEMERAL_PRIVATE: (False, True), KEYLOG_SESSION_SECRET: (False, True),
                   KEYLOG_MASTER_KEY: (False, True), KEYLOG_TRAFFIC_KEYS: (False, True, True)}


def redact_line(line: str) -> str:
    """A key-log line with every secret field replaced by its size: what
    ``extract-secrets`` prints without ``--show-secrets``."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return line.rstrip("\r\n")
    label, *fields = stripped.split()
    secret = _SECRET_COLUMNS.get(label)
    if secret is None or len(fields) != len(secret):
        return f"{label if secret is not None else '<unknown label>'} [{len(fields)} " \
               "field(s) hidden]"
    shown = [f"[{len(v) // 2}-byte secret hidden]" if hide else v
             for v, hide in zip(fields, secret, strict=True)]
    return " ".join([label, *shown])
