"""tcpcrypt framing of one direction's reassembled stream: the Init message, then frames.

Consumes bytes in stream order (from the TCP reassembler), so messages and frames may
span any number of segments. It delimits and counts without keys; a ``FrameHandler``
(the decryptor) can be plugged in to see every frame and to authenticate candidate
frame boundaries when resynchronising after a gap.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..findings import Finding, Severity
from ..limits import DEFAULT, Limits
from ..wire import (
    FRAME_CONTROL_RESERVED,
    FRAME_HEADER_LEN,
    FRAME_LENGTH_MIN,
    INIT1_FIXED,
    INIT1_MAGIC,
    INIT2_MAGIC,
    INIT_MESSAGE_LEN_MAX,
)
from ..words import plural
from .keyschedule import validate_public
from .messages import Init1, Init2, infer_tep, parse_init1, parse_init2

RESYNC_CHAIN = 3
"""Consecutive plausible frame headers that make a boundary credible without keys."""
MAX_RESERVED_REPORTS = 5

MODE_INIT1 = "init1"
MODE_INIT2 = "init2"
MODE_FRAMES = "frames"
MODE_DETECT = "detect"
MODE_RESUME_OR_INIT = "resume-or-init"
"""The 2016 tcpcryptd's resumption: frames from the first byte, unless the stream
starts with this direction's Init magic (B refused to resume)."""

_INIT = 0
_FRAMES = 1
_RESYNC = 2
_DONE = 3
_HEAD = struct.Struct(">II")


@dataclass(slots=True)
class FrameInfo:
    """One complete frame as it sits in the stream."""

    direction: str
    stream_offset: int
    """Where the frame's control byte sits in its direction's TCP stream (0 = the first
    byte after the SYN): the frame-ID offset in the ``tcp-stream`` reading."""
    init_len: int
    """Bytes of the direction's Init message before the frames (0 when resumed)."""
    control: int
    length: int
    body: bytes
    packet: int
    first_packet: int
    generation: int = 0
    """Key generation by the rekey bits seen so far in this direction (after a gap the
    decryptor's count, which authenticates, is the one to trust)."""


class FrameHandler(Protocol):
    """The decryptor's view of a direction (see the decrypt module)."""

    def frame(self, info: FrameInfo) -> None:
        """A complete frame, in stream order."""

    def authenticates(self, info: FrameInfo) -> bool | None:
        """Whether a candidate frame verifies (None: cannot tell, e.g. no keys)."""


class RekeyObserver(Protocol):
    """The connection's rekey checks (``analysis.rekey_watch``)."""

    def frame(self, direction: str, info: FrameInfo) -> None:
        """A complete frame, in stream order."""


class TcpcryptDirection:
    """Delimits the Init message and the frames of one direction."""

    def __init__(self, label: str, mode: str, tep: int | None, findings: list[Finding],
                 handler: FrameHandler | None = None,
                 on_detect: Callable[[TcpcryptDirection], None] | None = None,
                 limits: Limits = DEFAULT) -> None:
        self.on_detect = on_detect
        self.limits = limits
        self.scan = 0
        """Resync: candidates before this buffer position are already rejected (the
        search resumes there when more bytes arrive instead of starting over)."""
        self.tries = 0
        """Resync: candidate frames authenticated with the keys since the gap."""
        self.label = label
        self.mode = mode
        self.tep = tep
        self.findings = findings
        self.handler = handler
        self.state = _FRAMES if mode == MODE_FRAMES else _INIT
        self.buf = bytearray()
        self.buf_off = 0
        self.first_packet = 0
        self.frames_origin: int | None = 0 if mode == MODE_FRAMES else None
        self.init: Init1 | Init2 | None = None
        self.init_raw: bytes | None = None
        self.init_packet: int | None = None
        self.frames = 0
        self.rekeys = 0
        self.incomplete_frames = 0
        self.skipped = 0
        self.reserved_reports = 0
        self.dialect: str | None = None
        """``rfc8548`` or ``tcpcryptd-2016`` once the Init message is parsed."""
        self.plain = False
        self.resume_at: int | None = None
        """After a gap, the stream offset of the next frame when the cut frame's header
        told it (no search needed)."""
        self.ended_clean = False
        """At the end, the stream stopped on a frame boundary with nothing cut off."""
        self.watch: RekeyObserver | None = None
        """Sees every frame (the connection's rekey checks)."""

    def state_done(self) -> bool:
        """Nothing more will be parsed (plain data, or a fatal problem)."""
        return self.state == _DONE

    @property
    def init_len(self) -> int:
        """Stream bytes before the first frame: the Init message (0 when resumed)."""
        return self.frames_origin or 0

    # ------------------------------------------------------------------ input
    def data(self, offset: int, chunk: bytes, packet: int) -> None:
        """Contiguous bytes from the reassembler."""
        if self.state == _DONE:
            return
        if not self.buf:
            self.buf_off = offset
            self.first_packet = packet
        self.buf += chunk
        self._process(packet, at_end=False)

    def gap(self, offset: int, size: int, packet: int | None) -> None:
        """Bytes missing from the capture: whatever was being parsed is cut."""
        if self.state == _DONE:
            return
        if self.state == _INIT:
            known = len(self.buf) >= 8
            length = _HEAD.unpack_from(self.buf)[1] if known else None
            name = {MODE_INIT1: "Init1", MODE_INIT2: "Init2"}.get(self.mode, "Init message")
            self._note(Severity.ERROR, "tcpcrypt-init-incomplete",
                       f"{name} is cut by a gap of {plural(size, 'byte')} at offset {offset}",
                       packet, offset)
            if length is not None and offset + size <= self.buf_off + length:
                self.frames_origin = self.buf_off + length
                self._enter_resync()
            else:
                self.state = _DONE
        elif self.state == _FRAMES:
            # The next frame boundary is known when the cut frame's header is in hand (or
            # the gap starts right at a boundary): resume there without a search if it
            # lies past the gap; if it lies inside, the frame starting there is lost too.
            boundary: int | None = self.buf_off
            if self.buf:
                self.incomplete_frames += 1
                self._note(Severity.WARNING, "tcpcrypt-frame-lost",
                           f"frame at offset {self.buf_off} is cut by a gap of "
                           f"{plural(size, 'byte')}",
                           packet, self.buf_off)
                boundary = None
                if len(self.buf) >= FRAME_HEADER_LEN:
                    length = (self.buf[1] << 8) | self.buf[2]
                    if length >= FRAME_LENGTH_MIN:
                        boundary = self.buf_off + FRAME_HEADER_LEN + length
            self._lose_boundary(boundary, offset, size)
            self._enter_resync()
        elif self.state == _RESYNC:
            if self.resume_at is not None:
                boundary, self.resume_at = self.resume_at, None
                self._lose_boundary(boundary, offset, size)
            self._enter_resync()  # the bytes searched so far are gone: a new search
        self.buf.clear()
        self.buf_off = offset + size

    def _enter_resync(self) -> None:
        """Start a new search for a frame boundary, with fresh bounds."""
        self.state = _RESYNC
        self.scan = 0
        self.tries = 0

    def _lose_boundary(self, boundary: int | None, offset: int, size: int) -> None:
        """A known frame start meets a gap: resume there, or count its frame as lost."""
        if boundary is None or boundary < offset:
            return
        if boundary >= offset + size:
            self.resume_at = boundary
        else:
            self.incomplete_frames += 1

    def finish(self) -> None:
        """End of the stream: report anything left half-parsed."""
        self.ended_clean = self.state == _FRAMES and not self.buf
        if self.state == _RESYNC and self.buf:
            self._process(0, at_end=True)
        if self.state == _INIT and self.buf and not self.plain:
            self._note(Severity.ERROR, "tcpcrypt-init-incomplete",
                       f"stream ends inside the Init message ({plural(len(self.buf), 'byte')})",
                       None, self.buf_off)
        elif self.state == _FRAMES and self.buf:
            self.incomplete_frames += 1
            self._note(Severity.WARNING, "tcpcrypt-frame-truncated",
                       f"stream ends inside a frame at offset {self.buf_off} "
                       f"({plural(len(self.buf), 'byte')} present)", None, self.buf_off)
        self.buf.clear()

    # ------------------------------------------------------------------ parsing
    def _note(self, severity: Severity, code: str, message: str, packet: int | None,
              offset: int | None = None, size: int | None = None, rfc: str | None = None
              ) -> None:
        arrow = {"ab": "A->B", "ba": "B->A"}.get(self.label, self.label)
        self.findings.append(Finding(severity, code, f"{arrow}: {message}", offset, packet,
                                     self.label, size, rfc=rfc))

    def _process(self, packet: int, *, at_end: bool) -> None:
        while True:
            if self.state == _INIT:
                if not self._init(packet):
                    return
            elif self.state == _FRAMES:
                if not self._frame(packet):
                    return
            elif self.state == _RESYNC:
                if not self._resync(at_end):
                    return
            else:
                self.buf.clear()
                return

    def _init(self, packet: int) -> bool:
        if self.mode == MODE_RESUME_OR_INIT:
            if len(self.buf) < 4:
                return False
            magic = int.from_bytes(self.buf[:4], "big")
            if magic in (INIT1_MAGIC, INIT2_MAGIC):
                self.mode = MODE_INIT1 if self.label == "ab" else MODE_INIT2
            else:
                self.mode = MODE_FRAMES
                self.state = _FRAMES
                self.frames_origin = self.buf_off
                return True
        if len(self.buf) < 8:
            return False
        magic, length = _HEAD.unpack_from(self.buf)
        if self.mode == MODE_DETECT:
            if magic == INIT1_MAGIC:
                self.mode = MODE_INIT1
            elif magic == INIT2_MAGIC:
                self.mode = MODE_INIT2
            else:
                self.plain = True
                self.state = _DONE
                return False
            if self.on_detect is not None:
                self.on_detect(self)
        is1 = self.mode == MODE_INIT1
        name = "Init1" if is1 else "Init2"
        expected = INIT1_MAGIC if is1 else INIT2_MAGIC
        if magic != expected:
            self._note(Severity.ERROR, "tcpcrypt-bad-magic",
                       f"stream starts with 0x{magic:08x}, expected the {name} magic "
                       f"0x{expected:08x}: once ENO has negotiated tcpcrypt, the data "
                       "stream must follow it (no plaintext application data)",
                       self.first_packet, self.buf_off, rfc="RFC 8547 §4.6")
            self.state = _DONE
            return False
        fixed = INIT1_FIXED
        if not fixed <= length <= INIT_MESSAGE_LEN_MAX:
            self._note(Severity.ERROR, "tcpcrypt-bad-length",
                       f"{name} message_len {length} outside {fixed}..{INIT_MESSAGE_LEN_MAX}",
                       self.first_packet, self.buf_off + 4)
            self.state = _DONE
            return False
        if len(self.buf) < length:
            return False
        message = bytes(self.buf[:length])
        if self.tep is None:
            self.tep = infer_tep(message, is1)
        parsed, problems = (parse_init1 if is1 else parse_init2)(message, self.tep or 0)
        for problem in problems:
            self.findings.append(problem.at(packet=self.first_packet, base=self.buf_off))
        if parsed is not None:
            self.dialect = parsed.dialect
            problem = validate_public(self.tep or 0, parsed.pubkey)
            if problem is not None:
                self.findings.append(Finding(
                    Severity.ERROR, "pubkey-invalid",
                    f"{'A->B' if self.label == 'ab' else 'B->A'}: {name} public key is "
                    f"invalid: {problem} (the receiver must abort)", self.buf_off,
                    self.first_packet, self.label, rfc="RFC 8548 §5"))
        self.init = parsed
        self.init_raw = message
        self.init_packet = packet
        del self.buf[:length]
        self.buf_off += length
        self.frames_origin = self.buf_off
        self.first_packet = packet
        self.state = _FRAMES
        return True

    def _frame(self, packet: int) -> bool:
        if len(self.buf) < FRAME_HEADER_LEN:
            return False
        control = self.buf[0]
        length = (self.buf[1] << 8) | self.buf[2]
        if length < FRAME_LENGTH_MIN:
            self._note(Severity.ERROR, "tcpcrypt-short-frame",
                       f"frame length {length} at offset {self.buf_off} cannot hold a tag "
                       f"and flags (minimum {FRAME_LENGTH_MIN}); resynchronising",
                       self.first_packet, self.buf_off)
            self._enter_resync()
            return True
        total = FRAME_HEADER_LEN + length
        if len(self.buf) < total:
            return False
        if control & FRAME_CONTROL_RESERVED and self.reserved_reports < MAX_RESERVED_REPORTS:
            self.reserved_reports += 1
            self.findings.append(Finding(
                Severity.WARNING, "frame-reserved-bits",
                f"{'A->B' if self.label == 'ab' else 'B->A'}: frame at offset {self.buf_off} "
                f"has control 0x{control:02x}: reserved cres bits set (must be sent as zero)",
                self.buf_off, self.first_packet, self.label, rfc="RFC 8548 §4.2"))
        self._emit(control, length, packet)
        return True

    def _emit(self, control: int, length: int, packet: int) -> None:
        total = FRAME_HEADER_LEN + length
        if control & 0x01:
            self.rekeys += 1
        info = FrameInfo(self.label, self.buf_off, self.init_len, control, length,
                         bytes(self.buf[FRAME_HEADER_LEN:total]), packet, self.first_packet,
                         self.rekeys)
        self.frames += 1
        if self.watch is not None:
            self.watch.frame(self.label, info)
        if self.handler is not None:
            self.handler.frame(info)
        del self.buf[:total]
        self.buf_off += total
        self.first_packet = packet

    def _plausible(self, pos: int, cres_ok: bool = False) -> int | None:
        """Length of a plausible frame header at ``pos`` (None if implausible/unknown).
        Set cres bits make a header implausible for the key-less heuristic only: with
        keys the tag decides, and receivers ignore cres (RFC 8548 §4.2)."""
        if pos + FRAME_HEADER_LEN > len(self.buf):
            return None
        control = self.buf[pos]
        length = (self.buf[pos + 1] << 8) | self.buf[pos + 2]
        if (control & FRAME_CONTROL_RESERVED and not cres_ok) or length < FRAME_LENGTH_MIN:
            return None
        return length

    def _candidate(self, pos: int, at_end: bool) -> bool | None:
        """True/False when a boundary at ``pos`` is (not) credible; None: need more bytes."""
        if self.frames_origin is not None and self.buf_off + pos < self.frames_origin:
            return False
        length = self._plausible(pos, cres_ok=self.handler is not None)
        if length is None:
            return None if pos + FRAME_HEADER_LEN > len(self.buf) and not at_end else False
        end = pos + FRAME_HEADER_LEN + length
        if self.handler is not None and end <= len(self.buf):
            info = FrameInfo(self.label, self.buf_off + pos, self.init_len, self.buf[pos],
                             length, bytes(self.buf[pos + FRAME_HEADER_LEN:end]), 0, 0)
            verdict = self.handler.authenticates(info)
            if verdict is not None:
                self.tries += 1
            if verdict is not None:
                return verdict
        if self.buf[pos] & FRAME_CONTROL_RESERVED:
            return False  # only a tag may vouch for a header with cres bits set
        chain = 0
        while chain < RESYNC_CHAIN:
            if end == len(self.buf) and at_end:
                return True
            if end + FRAME_HEADER_LEN > len(self.buf):
                return None if not at_end else False
            length = self._plausible(end)
            if length is None:
                return False
            chain += 1
            end += FRAME_HEADER_LEN + length
        return True

    def _skip_to(self, offset: int) -> bool:
        """Drop buffered bytes before stream ``offset``; True once the buffer starts there."""
        skip = min(len(self.buf), offset - self.buf_off)
        del self.buf[:skip]
        self.buf_off += skip
        self.scan = max(0, self.scan - skip)
        return self.buf_off >= offset

    def _resync(self, at_end: bool) -> bool:
        """Find the next frame boundary after a gap: resume where the cut frame's header
        said, or try each offset in turn (authenticated with the keys when they are
        known, else by a chain of plausible headers). The search is bounded in bytes
        and in authentication tries (``Limits``; 100 KB of junk cost two minutes
        without the bounds, issue 10 item 24) and reports when a bound ends it."""
        if self.resume_at is not None:
            if not self._skip_to(self.resume_at):
                return False
            self.resume_at = None
            self.state = _FRAMES
            return True
        if self.frames_origin is not None and self.buf_off < self.frames_origin:
            if not self._skip_to(self.frames_origin):
                return False
        limits = self.limits
        limit = min(len(self.buf), limits.resync_bytes)
        pos = self.scan
        while pos < limit:
            verdict = self._candidate(pos, at_end)
            if verdict is None:
                self.scan = pos
                return False
            if verdict:
                if pos:
                    self.skipped += pos
                    self._note(Severity.NOTE, "tcpcrypt-resync",
                               f"resynchronised at offset {self.buf_off + pos} after skipping "
                               f"{plural(pos, 'byte')}", None, self.buf_off + pos, pos)
                del self.buf[:pos]
                self.buf_off += pos
                self.scan = 0
                self.state = _FRAMES
                return True
            pos += 1
            if self.tries >= limits.resync_tries:
                self._note(Severity.ERROR, "tcpcrypt-resync-failed",
                           f"no frame boundary found after offset {self.buf_off}: the search "
                           f"stopped at its bound of {limits.resync_tries} authenticated "
                           f"candidates ({pos} bytes searched; --resync-tries raises it); the "
                           "rest of this direction is not delimited", None, self.buf_off, pos)
                self.state = _DONE
                return False
        self.scan = pos
        if pos >= limits.resync_bytes or at_end:
            bound = (" (the search's bound; --resync-bytes raises it)"
                     if pos >= limits.resync_bytes else "")
            self._note(Severity.ERROR, "tcpcrypt-resync-failed",
                       f"no frame boundary found in {pos} bytes after offset {self.buf_off}"
                       f"{bound}; the rest of this direction is not delimited", None,
                       self.buf_off, pos)
            self.state = _DONE
        return False
