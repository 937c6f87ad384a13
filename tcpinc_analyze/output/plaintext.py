"""Where decrypted application data goes: files per connection and direction, or the
terminal (follow stream), both fed while frames are decrypted."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.text import Text

from ..analysis.connection import Connection
from ..analysis.report import ConnectionReport
from .safe_files import PrivateOutputDir

OPEN_FILES_MAX = 64
DIRECTION_STYLE = {"ab": "cyan", "ba": "magenta"}


def file_name(conn_id: int, direction: str) -> str:
    """The plaintext file of one connection direction."""
    return f"conn-{conn_id:05d}-{direction}.bin"


class DirectoryWriter:
    """Streams plaintext into one file per connection and direction (bounded open files).

    The files are written 0600 into a private temporary folder and moved into the output
    folder by :meth:`commit` (see :class:`PrivateOutputDir`): a symlink planted in the
    output folder is replaced, never written through.
    """

    def __init__(self, directory: Path, *, force: bool = False,
                 inputs: Sequence[str] = ()) -> None:
        self.directory = directory
        self.out = PrivateOutputDir(directory, force=force, inputs=inputs)
        self.handles: OrderedDict[str, BinaryIO] = OrderedDict()
        self.started: set[str] = set()

    def __call__(self, conn: Connection, direction: str, offset: int, data: bytes,
                 packet: int) -> None:
        """PlaintextSink: append data to its file."""
        name = file_name(conn.id, direction)
        handle = self.handles.get(name)
        if handle is None:
            handle = self.out.open(name, append=name in self.started)
            self.started.add(name)
            self.handles[name] = handle
            if len(self.handles) > OPEN_FILES_MAX:
                _, old = self.handles.popitem(last=False)
                old.close()
        else:
            self.handles.move_to_end(name)
        handle.write(data)

    def close(self) -> None:
        """Close every open file."""
        for handle in self.handles.values():
            handle.close()
        self.handles.clear()

    def write_index(self, reports: list[ConnectionReport], capture: str) -> Path:
        """index.json: which file holds what, with hashes and verification counts."""
        entries = []
        for r in reports:
            tc = r.tcpcrypt
            if not tc:
                continue
            dec = tc.get("decrypted") or {}
            for direction in ("ab", "ba"):
                name = file_name(r.id, direction)
                present = name in self.started
                d = dec.get(direction) or {}
                entries.append({
                    "id": r.id, "direction": direction,
                    "from": r.a if direction == "ab" else r.b,
                    "to": r.b if direction == "ab" else r.a,
                    "file": name if present else None,
                    "bytes": d.get("bytes", 0), "sha256": d.get("sha256"),
                    "frames_ok": d.get("ok", 0), "frames_failed": d.get("failed", 0),
                    "frames_lost": d.get("lost", 0),
                    "session_id": tc.get("session_id"), "keys_from": tc.get("keys_from"),
                })
                if r.extra.get("secrets"):  # only with --show-secrets
                    entries[-1]["secrets"] = r.extra["secrets"]
        self.close()
        return self.out.write("index.json", (json.dumps(
            {"capture": capture, "files": entries}, indent=1) + "\n").encode())

    def commit(self) -> None:
        """Move every file into the output folder."""
        self.close()
        self.out.commit()

    def abort(self) -> None:
        """Remove everything written (the output folder is left as it was)."""
        self.close()
        self.out.abort()


class FollowCollector:
    """Keeps one connection's plaintext chunks to print them interleaved in stream order."""

    def __init__(self, conn_id: int) -> None:
        self.conn_id = conn_id
        self.chunks: list[tuple[int, str, bytes]] = []

    def __call__(self, conn: Connection, direction: str, offset: int, data: bytes,
                 packet: int) -> None:
        """PlaintextSink: keep chunks of the followed connection only."""
        if conn.id == self.conn_id:
            self.chunks.append((packet, direction, data))

    def render(self, console: Console, report: ConnectionReport, *, hexdump: bool = False
               ) -> None:
        """Both directions, in the order the frames completed, coloured per direction."""
        console.print(Text.assemble(("A ", "bold"), (report.a, DIRECTION_STYLE["ab"]),
                                    ("  B ", "bold"), (report.b, DIRECTION_STYLE["ba"])))
        for packet, direction, data in sorted(self.chunks, key=lambda c: c[0]):
            style = DIRECTION_STYLE[direction]
            if hexdump:
                console.print(Text(f"[packet {packet}, {direction}]", style="dim"))
                console.print(Text(hex_dump(data), style=style))
            else:
                console.print(Text(escape(data), style=style), end="")
        console.print()


def escape(data: bytes) -> str:
    """Printable ASCII as is, newlines and tabs kept, everything else as \\xNN."""
    out = []
    for byte in data:
        if byte in (9, 10) or 32 <= byte < 127:
            out.append(chr(byte))
        elif byte == 13:
            out.append("\\r")
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def hex_dump(data: bytes, width: int = 16) -> str:
    """A classic offset / hex / ASCII dump."""
    lines = []
    for i in range(0, len(data), width):
        chunk = data[i:i + width]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{i:08x}  {hexes:<{width * 3}} {text}")
    return "\n".join(lines)
