"""Capture-wide resumption bookkeeping: RFC 8548 §3.5's once-only rules.

A secret ss[i] must never secure two connections, and an active opener must propose
the lowest i it has not used before (successfully or not). Both show on the wire
without keys: the same identifier half proposed again in a later connection's SYN,
and two resumed connections whose SYNs carry the same pair of halves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..eno import SUB_RESUME, tcpcrypt_suboption_kind
from ..findings import Severity
from ..wire import RESUME_HALF_LEN, TCPCRYPT_TEPS, EnoStatus

if TYPE_CHECKING:
    from .connection import Connection

RFC = "RFC 8548 §3.5"
MAX_ENTRIES = 200_000
"""Identifiers remembered per kind; beyond it older ones are forgotten (bounded memory)."""


class ResumeRegistry:
    """Identifier halves proposed and pairs resumed so far in the capture."""

    def __init__(self) -> None:
        self.proposed: dict[bytes, tuple[int, int]] = {}
        self.resumed: dict[tuple[bytes, bytes], tuple[int, int]] = {}

    @staticmethod
    def _halves(conn: Connection, active: bool) -> list[bytes]:
        first, second = conn.first_second()
        syn = first if active else second
        option = syn.eno.option if syn is not None else None
        if option is None:
            return []
        return [sub.data[:RESUME_HALF_LEN] for sub in option.teps
                if sub.tep in TCPCRYPT_TEPS and sub.data is not None
                and tcpcrypt_suboption_kind(sub) == SUB_RESUME]

    def check(self, conn: Connection) -> None:
        """Called once per connection when its ENO outcome is decided."""
        first, second = conn.first_second()
        if first is None:
            return
        for half in self._halves(conn, True):
            earlier = self.proposed.get(half)
            if earlier is not None and earlier[0] != conn.id:
                conn.add(Severity.ERROR, "resume-identifier-reused",
                         f"the SYN proposes resumption with identifier half {half.hex()}, "
                         f"already proposed in connection {earlier[0]} (packet {earlier[1]}): "
                         "a host must propose the lowest i it has not used before", first.packet,
                         rfc=RFC)
            elif earlier is None and len(self.proposed) < MAX_ENTRIES:
                self.proposed[half] = (conn.id, first.packet)
                conn.held("resume-identifier-reused", first.packet)
        neg = conn.negotiation
        if neg is None or neg.status != EnoStatus.NEGOTIATED or not neg.resumed:
            return
        ours, theirs = self._halves(conn, True), self._halves(conn, False)
        if not ours or not theirs or second is None:
            return
        pair = tuple(sorted((ours[0], theirs[0])))
        earlier = self.resumed.get(pair)  # type: ignore[arg-type]
        if earlier is not None:
            conn.add(Severity.ERROR, "resume-identifier-reused",
                     f"this connection resumes with the same identifier as connection "
                     f"{earlier[0]}: the session secret ss[i] secures two connections",
                     second.packet, rfc=RFC)
        elif len(self.resumed) < MAX_ENTRIES:
            self.resumed[pair] = (conn.id, second.packet)  # type: ignore[index]
