"""Comparing the analyzer's findings with a sample's expected-results file, exactly."""

from __future__ import annotations


def assert_findings_exact(where: str, want: list[dict], got: list[dict], *,
                          skip: set[str] = frozenset()) -> None:
    """Every finding code the expected file lists is reported exactly as often, at
    exactly the listed packets (where it lists them), and tcp-gap at its offset, size
    and direction."""
    for code in sorted({f["code"] for f in want} - set(skip)):
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
