"""The project's tcpcrypt key log (digest section 3): a writer and a tolerant reader.

The writer is meant for anyone implementing tcpcrypt who wants their traffic to be
decryptable here, the way SSLKEYLOGFILE works for TLS. The reader keeps every valid
line and turns a malformed one into a warning naming file and line (a key log being
written while it is read often ends in a partial line); it never repeats a secret
field's contents in a message, only which field is wrong and how.
"""

from __future__ import annotations

import glob
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

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

_HEX = re.compile(r"^[0-9a-fA-F]*$")
_LINE_BREAK = re.compile(r"\r\n|[\r\n]")
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


@dataclass
class KeyLog:
    """What a set of key-log files contains, indexed by what the wire shows."""

    ephemeral_private: dict[bytes, bytes] = field(default_factory=dict)
    """Canonical public key (NIST points compressed) -> private key."""
    session_secrets: dict[bytes, bytes] = field(default_factory=dict)
    master_keys: dict[bytes, bytes] = field(default_factory=dict)
    traffic_keys: dict[bytes, tuple[bytes, bytes]] = field(default_factory=dict)
    unknown_labels: int = 0
    duplicates: int = 0
    malformed: list[str] = field(default_factory=list)
    """One message per skipped line: file, line, label, field, what is wrong."""

    def __len__(self) -> int:
        return (len(self.session_secrets) + len(self.ephemeral_private)
                + len(self.master_keys) + len(self.traffic_keys))

    def private_for(self, public: bytes) -> bytes | None:
        """The logged private key of a public key, whatever encoding either used."""
        return self.ephemeral_private.get(canonical_public(public))


class _Malformed(ValueError):
    pass


_SPECS: dict[str, tuple[tuple[str, ...], tuple[Iterable[int], ...]]] = {
    KEYLOG_EPHEMERAL_PRIVATE: (("public key", "private key"), (_PUB_LENS, _PRIV_LENS)),
    KEYLOG_SESSION_SECRET: (("id", "session secret"), (ID_LENS, (K_LEN,))),
    KEYLOG_MASTER_KEY: (("id", "master key"), (ID_LENS, (K_LEN,))),
    KEYLOG_TRAFFIC_KEYS: (("id", "k_ab", "k_ba"), (ID_LENS, TRAFFIC_KEY_LENS, TRAFFIC_KEY_LENS)),
}
_PUBLIC_FIELDS = {"id", "public key"}
"""Fields that are not secret: their values may be quoted in messages."""


def _field(value: str, column: int, what: str, lengths: Iterable[int]) -> bytes:
    if len(value) % 2 or not _HEX.match(value):
        bad = next((i for i, ch in enumerate(value) if ch not in "0123456789abcdefABCDEF"),
                   None)
        why = (f"character {bad + 1} is not a hex digit" if bad is not None
               else f"odd number of hex digits ({len(value)})")
        shown = f" {value[:24]!r}" if what in _PUBLIC_FIELDS else ""
        raise _Malformed(f"field {column} ({what}){shown}: {why}")
    raw = bytes.fromhex(value)
    allowed = sorted(set(lengths))
    if len(raw) not in allowed:
        raise _Malformed(f"field {column} ({what}) is {len(raw)} bytes, expected "
                         f"{' or '.join(map(str, allowed))}")
    return raw


def parse_keylog(text: str, name: str = "<key log>", into: KeyLog | None = None) -> KeyLog:
    """Parse key-log text; malformed lines become ``log.malformed`` messages naming
    ``name`` and the line number, and every valid line is used."""
    log = into if into is not None else KeyLog()
    # Only CR, LF and CRLF end a line (as in universal-newline text mode): splitlines()
    # also breaks at \x0b, \x0c, \x1c-\x1e, \x85, U+2028/9.
    for number, line in enumerate(_LINE_BREAK.split(text), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        label, *fields = line.split()
        spec = _SPECS.get(label)
        if spec is None:
            log.unknown_labels += 1
            continue
        names, lengths = spec
        try:
            if len(fields) != len(names):
                raise _Malformed(f"takes {len(names)} fields "
                                 f"({' '.join(f'<{n}>' for n in names)}), got {len(fields)}")
            values = [_field(v, i + 2, n, ls)
                      for i, (v, n, ls) in enumerate(zip(fields, names, lengths, strict=True))]
            if label == KEYLOG_TRAFFIC_KEYS and len(values[1]) != len(values[2]):
                raise _Malformed("k_ab and k_ba differ in length")
        except _Malformed as exc:
            log.malformed.append(f"{name}:{number}: {label} {exc}; line skipped")
            continue
        key = values[0]
        target: dict
        if label == KEYLOG_EPHEMERAL_PRIVATE:
            key, target, entry = canonical_public(key), log.ephemeral_private, values[1]
        elif label == KEYLOG_SESSION_SECRET:
            target, entry = log.session_secrets, values[1]
        elif label == KEYLOG_MASTER_KEY:
            target, entry = log.master_keys, values[1]
        else:
            target, entry = log.traffic_keys, (values[1], values[2])
        if key in target:
            log.duplicates += 1
        target[key] = entry
    return log


@dataclass
class LoadedKeyLogs:
    """Key logs read from files, with what a user should be told about them."""

    log: KeyLog
    files: list[str]
    warnings: list[str]


KEYLOG_SUFFIXES = (".keys", ".keylog", ".log", ".txt")
"""Files a directory given as --keylog contributes (captures may sit beside them)."""


def _expand(spec: str) -> list[Path]:
    path = Path(spec)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix in KEYLOG_SUFFIXES)
    if any(ch in spec for ch in "*?["):
        return sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file())
    return [path]


def load_keylogs(specs: Iterable[str], *, use_env: bool = True) -> LoadedKeyLogs:
    """Read every key log named by files, directories or globs (default: the env var).

    Raises KeyLogError for a file that cannot be read; malformed lines are warnings.
    """
    specs = list(specs)
    if not specs and use_env and os.environ.get(KEYLOG_ENV):
        specs = [os.environ[KEYLOG_ENV]]
    log = KeyLog()
    files: list[str] = []
    warnings: list[str] = []
    for spec in specs:
        paths = _expand(spec)
        if not paths:
            raise KeyLogError(f"{spec}: no key-log file matches")
        for path in paths:
            try:
                mode = path.stat().st_mode
                text = path.read_text(encoding="utf-8", errors="strict")
            except (OSError, UnicodeDecodeError) as exc:
                raise KeyLogError(f"{path}: cannot read key log: {exc}") from exc
            if mode & (stat.S_IRGRP | stat.S_IROTH):
                warnings.append(f"{path}: the key log is readable by other users "
                                f"(mode {stat.S_IMODE(mode):o}); it holds session secrets: "
                                f"chmod 600 {path}")
            parse_keylog(text, str(path), log)
            files.append(str(path))
    warnings += log.malformed
    if log.unknown_labels:
        warnings.append(f"{plural(log.unknown_labels, 'key-log line')} with unknown labels "
                        "skipped")
    return LoadedKeyLogs(log, files, warnings)
