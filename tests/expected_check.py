"""Comparing the analyzer's findings with a sample's expected-results file, exactly."""

from __future__ import annotations

RECOVERY_NARRATION = frozenset({"tcpcrypt-frame-lost", "tcpcrypt-resync",
                                "tcpcrypt-resync-failed"})
"""The only findings a sample's expected file may leave out: notes on how the reader found
its way across missing bytes. What was lost is compared exactly elsewhere (frame counts,
``decrypted.lost``); how many steps the boundary search took to say so depends on the
search itself, which the synthesizer does not model. They are allowed only where the
expected file lists missing bytes (a ``tcp-gap`` or a ``packet-truncated``)."""


def assert_findings_exact(where: str, want: list[dict], got: list[dict], *,
                          skip: set[str] = frozenset()) -> None:
    """Every finding code the expected file lists is reported exactly as often, at
    exactly the listed packets (where it lists them), and tcp-gap at its offset, size
    and direction; a code it does not list is a failure (see RECOVERY_NARRATION)."""
    listed = {f["code"] for f in want}
    missing_bytes = bool(listed & {"tcp-gap", "packet-truncated"})
    unexpected = sorted({x["code"] for x in got} - listed - set(skip)
                        - (RECOVERY_NARRATION if missing_bytes else frozenset()))
    assert not unexpected, f"{where}: findings the expected file does not list: " \
        + ", ".join(f"{code} ({[x.get('packet') for x in got if x['code'] == code]})"
                    for code in unexpected)
    for code in sorted(listed - set(skip)):
        mine = [f for f in want if f["code"] == code]
        theirs = [x for x in got if x["code"] == code]
        assert len(theirs) == len(mine), f"{where}: {code}: {len(theirs)} reported, " \
            f"{len(mine)} expected"
        if all("packet" in f for f in mine):
            assert sorted(x["packet"] for x in theirs) == sorted(f["packet"] for f in mine), \
                f"{where}: {code} packets"
        if code == "tcp-gap":
            key = ("direction", "offset", "size")
            assert sorted(tuple(x.get(k) for k in key) for x in theirs) == \
                sorted(tuple(f[k] for k in key) for f in mine), f"{where}: tcp-gap"
