"""Counted nouns for messages ("1 warning", "2 warnings"): one helper so no output ever
says "1 connections" or hedges with "connection(s)"."""

from __future__ import annotations

IRREGULAR = {"was": "were", "is": "are", "has": "have", "this": "these", "it": "they"}


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``count`` and the noun, in the plural unless count is 1."""
    return f"{count} {noun if count == 1 else (many or _plural(noun))}"


def _plural(noun: str) -> str:
    if noun in IRREGULAR:
        return IRREGULAR[noun]
    if noun.endswith(("s", "x", "sh", "ch")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"
