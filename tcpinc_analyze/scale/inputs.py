"""Turn the capture arguments (files, directories, globs, URLs) into an ordered list.

Order is the order of the arguments; a directory's captures and a glob's matches are
sorted by path, so the same command over the same tree always lists the same captures
in the same order (the output's order depends on it).
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".dmp", ".ntar")
COMPRESSED_SUFFIXES = (".gz", ".zst", ".zstd", ".lz4")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_GLOB = re.compile(r"[*?[]")


class InputError(Exception):
    """An argument names nothing to read (exit code 2)."""


@dataclass(frozen=True)
class Inputs:
    """The captures to read, and whether the user asked for more than one (then every
    JSON record names its capture)."""

    paths: list[str]
    many: bool


def is_url(arg: str) -> bool:
    """An fsspec URL such as s3://bucket/x.pcap or file:///data/x.pcap."""
    return bool(_URL.match(arg))


def looks_like_capture(path: str) -> bool:
    """A directory's files are taken by name (a capture folder often holds key logs and
    notes too); a file named on the command line is taken whatever its name."""
    name = path.lower()
    for suffix in COMPRESSED_SUFFIXES:
        if name.endswith(suffix):
            name = name[:-len(suffix)]
            break
    return name.endswith(CAPTURE_SUFFIXES)


def _directory(path: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in files:
            full = os.path.join(root, name)
            if looks_like_capture(full):
                found.append(full)
    return sorted(found)


def expand(args: list[str]) -> Inputs:
    """Files as given; directories searched recursively for capture files; globs (with
    ``**``) expanded; URLs passed on (read with fsspec). Raises InputError when an
    argument matches nothing."""
    paths: list[str] = []
    many = len(args) > 1
    for arg in args:
        if arg == "-" or is_url(arg):
            found = [arg]
        elif os.path.isdir(arg):
            many = True
            found = _directory(arg)
            if not found:
                raise InputError(f"{arg}: directory holds no capture files "
                                 f"({', '.join(CAPTURE_SUFFIXES)}, optionally "
                                 f"{'/'.join(COMPRESSED_SUFFIXES)}-compressed)")
        elif _GLOB.search(arg) and not os.path.exists(arg):
            many = True
            found = sorted(p for p in glob.glob(arg, recursive=True) if os.path.isfile(p))
            if not found:
                raise InputError(f"{arg}: no file matches this pattern")
        else:
            found = [arg]
        paths.extend(found)
    seen: set[str] = set()
    unique = []
    for p in paths:
        key = p if p == "-" or is_url(p) else os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    if "-" in unique and len(unique) > 1:
        raise InputError("standard input (-) can only be read alone")
    return Inputs(unique, many)


def labels(paths: list[str]) -> list[str]:
    """A short distinct name per capture for per-capture output files (decrypt -o)."""
    out: list[str] = []
    used: set[str] = set()
    for p in paths:
        name = Path(p.rstrip("/")).name or "capture"
        for suffix in COMPRESSED_SUFFIXES:
            if name.lower().endswith(suffix):
                name = name[:-len(suffix)]
        stem = Path(name).stem or name
        candidate, n = stem, 2
        while candidate in used:
            candidate, n = f"{stem}-{n}", n + 1
        used.add(candidate)
        out.append(candidate)
    return out
