"""The project's tcpcrypt key log (spec section 3): a writer and a strict reader.

The writer is meant for anyone implementing tcpcrypt who wants their traffic to be
decryptable here, the way SSLKEYLOGFILE works for TLS; the reader names file and line
for every malformed entry so a user can fix the log.
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

from .wire import (
    K_LEN,
    KEYLOG_ENV,
    KEYLOG_EPHEMERAL_PRIVATE,
    KEYLOG_SESSION_SECRET,
    KEYLOG_TRAFFIC_KEYS,
    NONCE_LEN_A,
    RESUME_ID_LEN,
    TCPCRYPT_TEPS,
)

_HEX = re.compile(r"^[0-9a-fA-F]*$")
_LINE_BREAK = re.compile(r"\r\n|[\r\n]")
_ID_LENS = (NONCE_LEN_A, RESUME_ID_LEN)
_PUB_LENS = {info.pubkey_len for info in TCPCRYPT_TEPS.values()}
_PRIV_LENS = {info.private_len for info in TCPCRYPT_TEPS.values()}
_TRAFFIC_KEY_LENS = (16, 32)


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

    def session_secret(self, ident: bytes, ss: bytes) -> None:
        """``<id> <ss>``: id is N_A, or A's 9-byte resumption identifier."""
        self.entry(KEYLOG_SESSION_SECRET, ident, ss)

    def ephemeral_private(self, public: bytes, private: bytes) -> None:
        """``<public key> <private key>`` of either host's ephemeral key pair."""
        self.entry(KEYLOG_EPHEMERAL_PRIVATE, public, private)

    def traffic_keys(self, ident: bytes, k_ab: bytes, k_ba: bytes) -> None:
        """``<id> <k_ab> <k_ba>``: generation-0 traffic keys, enough to decrypt without SID."""
        self.entry(KEYLOG_TRAFFIC_KEYS, ident, k_ab, k_ba)


class KeyLogError(ValueError):
    """A malformed key-log line; the message names the file and line."""


@dataclass
class KeyLog:
    """What a set of key-log files contains, indexed by what the wire shows."""

    session_secrets: dict[bytes, bytes] = field(default_factory=dict)
    ephemeral_private: dict[bytes, bytes] = field(default_factory=dict)
    traffic_keys: dict[bytes, tuple[bytes, bytes]] = field(default_factory=dict)
    unknown_labels: int = 0
    duplicates: int = 0

    def __len__(self) -> int:
        return len(self.session_secrets) + len(self.ephemeral_private) + len(self.traffic_keys)


def _field(value: str, where: str, what: str, lengths: Iterable[int]) -> bytes:
    if len(value) % 2 or not _HEX.match(value):
        raise KeyLogError(f"{where}: {what} is not hex: {value[:20]!r}")
    raw = bytes.fromhex(value)
    allowed = sorted(set(lengths))
    if len(raw) not in allowed:
        raise KeyLogError(f"{where}: {what} is {len(raw)} bytes, expected "
                          f"{' or '.join(map(str, allowed))}")
    return raw


def parse_keylog(text: str, name: str = "<key log>", into: KeyLog | None = None) -> KeyLog:
    """Parse key-log text; raises KeyLogError naming ``name`` and the line number."""
    log = into if into is not None else KeyLog()
    # Only CR, LF and CRLF end a line (as in universal-newline text mode): splitlines()
    # also breaks at \x0b, \x0c, \x1c-\x1e, \x85, U+2028/9, which shifted line numbers
    # and turned text after such a character in a comment into an entry.
    for number, line in enumerate(_LINE_BREAK.split(text), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{name}:{number}"
        label, *fields = line.split()
        if label == KEYLOG_SESSION_SECRET:
            if len(fields) != 2:
                raise KeyLogError(f"{where}: {label} takes 2 fields (<id> <ss>), got {len(fields)}")
            key = _field(fields[0], where, "id", _ID_LENS)
            value = _field(fields[1], where, "session secret", (K_LEN,))
            target: dict = log.session_secrets
            entry: object = value
        elif label == KEYLOG_EPHEMERAL_PRIVATE:
            if len(fields) != 2:
                raise KeyLogError(f"{where}: {label} takes 2 fields (<public key> <private key>), "
                                  f"got {len(fields)}")
            key = _field(fields[0], where, "public key", _PUB_LENS)
            entry = _field(fields[1], where, "private key", _PRIV_LENS)
            target = log.ephemeral_private
        elif label == KEYLOG_TRAFFIC_KEYS:
            if len(fields) != 3:
                raise KeyLogError(f"{where}: {label} takes 3 fields (<id> <k_ab> <k_ba>), "
                                  f"got {len(fields)}")
            key = _field(fields[0], where, "id", _ID_LENS)
            k_ab = _field(fields[1], where, "k_ab", _TRAFFIC_KEY_LENS)
            k_ba = _field(fields[2], where, "k_ba", _TRAFFIC_KEY_LENS)
            if len(k_ab) != len(k_ba):
                raise KeyLogError(f"{where}: k_ab and k_ba differ in length")
            entry = (k_ab, k_ba)
            target = log.traffic_keys
        else:
            log.unknown_labels += 1
            continue
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

    Raises KeyLogError for an unreadable file or a malformed line.
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
    if log.unknown_labels:
        warnings.append(f"{log.unknown_labels} key-log line(s) with unknown labels skipped")
    return LoadedKeyLogs(log, files, warnings)
