"""RFC 8548 §3.8's rekey obligations, checked from the wire without keys.

The rekey bit and clen are in the clear, and TCP's acknowledgment numbers say what
each host had received when it sent a segment: so the capture shows, wherever it was
taken, whether a host that received a rekey frame raising the peer past its own
generation answered with a rekey frame before it closed its side ("rekey-not-answered"),
and whether a host started a second empty rekey while its first was still unanswered
as far as it knew ("rekey-empty-repeated"). Nothing is tracked until the first rekey
frame, so connections that never rekey pay nothing.

"Immediately" (§3.8) is not judged by stream order: a host that encrypts when the
application writes may have frames queued under the old key ahead of its answer, so
frames without the rekey bit after the evidence are not a violation by themselves. A
violation is a host that goes on sending frames and closes its stream (TCP FIN) with
the answer still owed. A host that sends no frame at all after the evidence may have
sent its FINp frame before (which exempts it, and only keys show); an obligation still
open when the capture ends, or a stream with frames missing from the capture, is not
judged.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..findings import Finding, Severity
from ..tcpcrypt.stream import FrameInfo
from ..wire import FRAME_HEADER_LEN, FRAME_LENGTH_MIN, rekey_answer_exempt

RFC = "RFC 8548 §3.8"
SEGMENTS_KEPT = 256
PEER = {"ab": "ba", "ba": "ab"}
ARROW = {"ab": "A->B", "ba": "B->A"}


@dataclass
class _RekeyFrame:
    end: int
    generation: int
    packet: int
    acked: bool = False


@dataclass
class _Obligation:
    required: int
    from_offset: int
    evidence_packet: int
    rekey_packet: int
    frames_after: int = 0
    """Frames without the rekey bit the host sent after the evidence: proof it was still
    sending frames (so not exempt by an earlier FINp frame only keys would show)."""


class RekeyWatch:
    """Per connection; fed frames (framing parser) and segments (flow table)."""

    def __init__(self, findings: list[Finding], held: Callable[[str, int | None], None]) -> None:
        self.findings = findings
        self.held = held
        self.unacked = 0
        """Rekey frames the peer has not yet acknowledged."""
        self.gen = {"ab": 0, "ba": 0}
        self.rekey_frames: dict[str, list[_RekeyFrame]] = {"ab": [], "ba": []}
        self.obligations: dict[str, deque[_Obligation]] = {"ab": deque(), "ba": deque()}
        self.segments: dict[str, deque[tuple[int, int, int | None]]] = {
            "ab": deque(maxlen=SEGMENTS_KEPT), "ba": deque(maxlen=SEGMENTS_KEPT)}
        self.sent_end = {"ab": 0, "ba": 0}
        self.tcp_fin = {"ab": False, "ba": False}
        self.finp_offset: dict[str, int | None] = {"ab": None, "ba": None}
        self.empty_outstanding: dict[str, int | None] = {"ab": None, "ba": None}
        self.fin_packet: dict[str, int | None] = {"ab": None, "ba": None}
        """The packet with the direction's TCP FIN, sent while an answer was owed."""

    @property
    def active(self) -> bool:
        """Segments must be looked at: a rekey frame awaits its ACK (which makes its
        receiver owe an answer), or an owed answer awaits the sender's FIN. Otherwise
        the flow table skips the watch."""
        return self.unacked > 0 or bool(self.obligations["ab"] or self.obligations["ba"])

    # ------------------------------------------------------------------ inputs
    def finp(self, direction: str, offset: int) -> None:
        """The decryptor saw this direction's FINp frame (only known with keys)."""
        if self.finp_offset[direction] is None:
            self.finp_offset[direction] = offset

    def segment(self, direction: str, start: int, end: int, ack: int | None, fin: bool,
                packet: int) -> None:
        """A segment from ``direction``'s sender: its data range and what it acknowledges
        of the peer's stream (stream offsets). Call before its data is delivered."""
        self.segments[direction].append((start, end, ack))
        from_offset = max(start, self.sent_end[direction])
        self.sent_end[direction] = max(self.sent_end[direction], end)
        if ack is not None:
            for frame in self.rekey_frames[PEER[direction]]:
                if frame.acked or frame.end > ack:
                    continue
                frame.acked = True
                self.unacked -= 1
                exempt = rekey_answer_exempt(
                    self.tcp_fin[direction],
                    self.finp_offset[direction] is not None
                    and self.finp_offset[direction] < from_offset)
                if self.gen[direction] < frame.generation and not exempt:
                    self.obligations[direction].append(
                        _Obligation(frame.generation, from_offset, packet, frame.packet))
        if fin:
            self.tcp_fin[direction] = True
            if self.obligations[direction] and self.fin_packet[direction] is None:
                self.fin_packet[direction] = packet

    def frame(self, direction: str, info: FrameInfo) -> None:
        """A complete frame of ``direction``, in stream order."""
        rekey = bool(info.control & 1)
        if not rekey:
            # Frames queued under the old key may precede the answer.
            for due in self.obligations[direction]:
                if due.from_offset <= info.stream_offset:
                    due.frames_after += 1
            return
        # A rekey frame raises its sender's generation by one, so it settles the owed
        # answers up to its own generation (two peer rekeys need two answers).
        pending = self.obligations[direction]
        settled = [o for o in pending
                   if o.from_offset <= info.stream_offset and o.required <= info.generation]
        if settled:
            for due in settled:
                pending.remove(due)
            self.held("rekey-not-answered", info.packet)
        self.gen[direction] = max(self.gen[direction], info.generation)
        end = info.stream_offset + FRAME_HEADER_LEN + info.length
        self.rekey_frames[direction].append(_RekeyFrame(end, info.generation, info.packet))
        self.unacked += 1
        if info.length == FRAME_LENGTH_MIN:
            self._empty_rekey(direction, info)

    def _remote_known(self, direction: str, offset: int) -> int | None:
        """The peer generation the sender knew when it sent the byte at ``offset``: from
        that segment's ACK when it was looked at; otherwise every peer rekey frame had
        been acknowledged already (the watch was idle), so the acknowledged ones tell."""
        for start, end, ack in reversed(self.segments[direction]):
            if start <= offset < end:
                if ack is None:
                    return None
                return max((f.generation for f in self.rekey_frames[PEER[direction]]
                            if f.end <= ack), default=0)
        return max((f.generation for f in self.rekey_frames[PEER[direction]] if f.acked),
                   default=0)

    def _empty_rekey(self, direction: str, info: FrameInfo) -> None:
        remote = self._remote_known(direction, info.stream_offset)
        if remote is None:
            return
        if info.generation <= remote:
            return  # an answer that catches up, not an initiation
        outstanding = self.empty_outstanding[direction]
        own_before = info.generation - 1
        if outstanding is not None and remote < own_before:
            self.findings.append(Finding(
                Severity.WARNING, "rekey-empty-repeated",
                f"{ARROW[direction]}: a second empty rekey frame (generation "
                f"{info.generation}) while the one for generation {outstanding} is still "
                f"unanswered as far as the sender knew (peer generation {remote})",
                info.stream_offset, info.packet, direction, rfc=RFC))
        else:
            self.held("rekey-empty-repeated", info.packet)
        self.empty_outstanding[direction] = info.generation

    def finish(self, complete: dict[str, bool] | None = None) -> None:
        """End of the connection: a host that closed its side (TCP FIN) with an answer
        still owed broke the rule. ``complete`` says which directions' frames were all
        in the capture (an answer in a gap cannot be ruled out otherwise). Obligations
        without a FIN stay unjudged: the host may have answered after the capture ended."""
        for direction in ("ab", "ba"):
            pending = [due for due in self.obligations[direction] if due.frames_after]
            fin = self.fin_packet[direction]
            if pending and fin is not None and (complete or {}).get(direction, False):
                due = pending[-1]
                owed = (f"the rekey frame of packet {due.rekey_packet}" if len(pending) == 1
                        else f"{len(pending)} rekey frames (the last in packet "
                             f"{due.rekey_packet})")
                self.findings.append(Finding(
                    Severity.ERROR, "rekey-not-answered",
                    f"{ARROW[direction]}: closed its side (FIN in packet {fin}) without "
                    f"sending a rekey frame, although it had received (acknowledged in "
                    f"packet {pending[0].evidence_packet}) {owed} taking the peer to "
                    f"generation {due.required}: it must move to that generation and send a "
                    "frame with rekey = 1 at once", self.sent_end[direction], fin, direction,
                    rfc=RFC))
            self.obligations[direction].clear()
