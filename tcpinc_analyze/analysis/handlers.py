"""Frame handlers that ride along the tcpcrypt framing parser.

The framing parser calls one handler per direction; these let several consumers
(per-frame details, the decryptor) share that slot without knowing of each other.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..tcpcrypt.stream import FrameHandler, FrameInfo
from .connection import Connection, HandlerFactory


class CompositeHandler:
    """Calls several handlers in order; the first definite authentication verdict wins."""

    def __init__(self, handlers: Sequence[FrameHandler]) -> None:
        self.handlers = list(handlers)

    def frame(self, info: FrameInfo) -> None:
        """Forward a frame to every handler."""
        for handler in self.handlers:
            handler.frame(info)

    def relabel(self, direction: str) -> None:
        """Pass a role correction on."""
        for handler in self.handlers:
            relabel = getattr(handler, "relabel", None)
            if relabel is not None:
                relabel(direction)

    def authenticates(self, info: FrameInfo) -> bool | None:
        """Ask each handler until one can tell."""
        for handler in self.handlers:
            verdict = handler.authenticates(info)
            if verdict is not None:
                return verdict
        return None


class FrameListHandler:
    """Records every frame's header fields for ``--details`` (memory grows: opt-in)."""

    def __init__(self, conn: Connection, direction: str) -> None:
        extra = conn.data.setdefault("report_extra", {})
        self.conn = conn
        self.frames = extra.setdefault("frame_list", [])
        self.direction = direction

    def frame(self, info: FrameInfo) -> None:
        """Keep the spec-named fields of one frame, and what decryption made of it: its
        ``verdict`` (verified, failed, undecryptable, malformed, or no-key), and for a
        verified frame the plaintext flags (FINp, URGp) and its key generation. The
        decryptor runs first; a frame it had to queue until the keys are known gets its
        verdict when it is decrypted (``no-key`` until then, and for good if never)."""
        item = {"direction": self.direction, "packet": info.packet,
                "first_packet": info.first_packet,
                "tcpcrypt.stream_offset": info.stream_offset,
                "tcpcrypt.frame.control": info.control,
                "tcpcrypt.frame.control.rekey": bool(info.control & 1),
                "tcpcrypt.frame.clen": info.length,
                "tcpcrypt.frame.generation": info.generation,
                "tcpcrypt.frame.tag": info.body[-16:].hex()}
        resolver = self.conn.data.get("resolver")
        dec = resolver.directions.get(self.direction) if resolver is not None else None
        last = dec.last if dec is not None else None
        if last is not None and last["stream_offset"] == info.stream_offset:
            item.update({k: v for k, v in last.items() if k != "stream_offset"})
        elif dec is not None:
            item["verdict"] = "no-key"
            if not dec.ready and not resolver.hopeless:
                dec.details[info.stream_offset] = item
        self.frames.append(item)

    def relabel(self, direction: str) -> None:
        """Follow a role correction."""
        self.direction = direction

    def authenticates(self, info: FrameInfo) -> bool | None:
        """Details cannot authenticate."""
        return None


class Handlers:
    """Builds the per-direction handler chain from the enabled features."""

    def __init__(self, factories: Sequence[HandlerFactory]) -> None:
        self.factories = list(factories)

    def __call__(self, conn: Connection, direction: str) -> FrameHandler | None:
        """One handler (or a composite) for this direction."""
        made = [h for f in self.factories if (h := f(conn, direction)) is not None]
        if not made:
            return None
        return made[0] if len(made) == 1 else CompositeHandler(made)


def frame_list_factory(conn: Connection, direction: str) -> FrameHandler:
    """Factory for FrameListHandler."""
    return FrameListHandler(conn, direction)
