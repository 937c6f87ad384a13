"""The bounds that keep hostile captures cheap, in one place so the CLI can set them.

Each bound ends work that would otherwise grow without limit, and whenever one ends
something the analyzer reports it as a finding, so a bound never hides data silently.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_CONNECTIONS = 30_000
"""Connections open at once before the least recently active one is evicted (one
costs about 4 kB before it carries data; 30,000 keep a SYN flood near 150 MB of RSS,
under the 200 MB goal)."""
IDLE_TIMEOUT_S = 600.0
"""Capture time after which a silent open connection is finalised."""
RESYNC_BYTES = 1 << 16
"""How far past a gap the next tcpcrypt frame boundary is looked for."""
RESYNC_TRIES = 4096
"""Candidate boundaries per gap whose frame is authenticated with the keys (each try
opens a frame under a few key generations and both frame-ID readings)."""


@dataclass(frozen=True)
class Limits:
    """Bounds for one analysis (``--max-connections``, ``--idle-timeout``,
    ``--resync-bytes``, ``--resync-tries``)."""

    max_connections: int = MAX_CONNECTIONS
    idle_timeout_s: float = IDLE_TIMEOUT_S
    resync_bytes: int = RESYNC_BYTES
    resync_tries: int = RESYNC_TRIES

    def __post_init__(self) -> None:
        for name in ("max_connections", "idle_timeout_s", "resync_bytes", "resync_tries"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name.replace('_', '-')} must be positive")

    @property
    def idle_timeout_ns(self) -> int:
        """The idle timeout in capture-time nanoseconds."""
        return int(self.idle_timeout_s * 1_000_000_000)


DEFAULT = Limits()
