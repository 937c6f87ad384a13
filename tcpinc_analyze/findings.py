"""Findings: problems and notable facts, carried as data instead of exceptions.

Parsers return them next to their values so one bad byte never stops an analysis; the
analyzer later adds the packet number, outputs format them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Severity(StrEnum):
    """How much a finding matters to the person reading the report."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True)
class Finding:
    """One thing worth telling the user, located as precisely as we can."""

    severity: Severity
    code: str
    message: str
    offset: int | None = None
    """Byte offset inside the unit that was parsed (option, message, stream)."""
    packet: int | None = None
    """1-based packet number in the capture, once known."""
    direction: str | None = None
    """``ab`` or ``ba`` when the finding concerns one direction's stream."""
    size: int | None = None
    """Bytes concerned (gaps, skipped bytes), when that is meaningful."""
    rfc: str | None = None
    """The RFC section whose rule this finding reports broken (``"RFC 8548 §3.8"``):
    set on conformance findings, the ones an implementer has to fix."""
    first_packet: int | None = None
    """For something spread over several packets (a frame over several segments): the
    first of them; ``packet`` is the last."""

    def to_json(self) -> dict:
        """The JSON form: severity, packet, message always; the rest when known."""
        out: dict = {"severity": str(self.severity), "packet": self.packet, "code": self.code,
                     "message": self.message}
        if self.offset is not None:
            out["offset"] = self.offset
        if self.direction is not None:
            out["direction"] = self.direction
        if self.size is not None:
            out["size"] = self.size
        if self.rfc is not None:
            out["rfc"] = self.rfc
        if self.first_packet is not None:
            out["first_packet"] = self.first_packet
        return out

    def at(self, *, packet: int | None = None, base: int = 0) -> Finding:
        """The same finding placed in a packet and shifted by ``base`` bytes."""
        offset = None if self.offset is None else self.offset + base
        return replace(self, packet=packet if packet is not None else self.packet, offset=offset)


FINDINGS_PER_CODE = 10
"""Findings of one code kept in full per connection; the rest are counted. Ten show a
pattern and its first places (where a problem starts), and keep the record of a
connection with 200,000 reordered segments a few kilobytes instead of 35 MB."""


class FindingList(list):
    """A connection's findings: at most ``FINDINGS_PER_CODE`` of one code in full, the
    rest counted (``suppressed``) with the first one's packet, so a flood of one kind
    neither fills memory nor buries the other findings."""

    __slots__ = ("counts", "suppressed", "first_suppressed")

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.counts: dict[str, int] = {}
        self.suppressed: dict[str, int] = {}
        self.first_suppressed: dict[str, int | None] = {}

    def append(self, finding: Finding) -> None:
        """Keep the finding, or count it once its code has reached the cap."""
        code = finding.code
        n = self.counts.get(code, 0) + 1
        self.counts[code] = n
        if n <= FINDINGS_PER_CODE:
            super().append(finding)
            return
        self.suppressed[code] = self.suppressed.get(code, 0) + 1
        self.first_suppressed.setdefault(code, finding.packet)
