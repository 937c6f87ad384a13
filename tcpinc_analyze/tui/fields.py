"""Field and value names for the detail tree, from the project's shared field spec.

Uses ``tcpinc_analyze.fieldspec`` when it exists, else reads ``dissectors/fields.json``
directly, else falls back to the spec's abbreviations (section 4) with no display names.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ..wire import AA_NAMES, AEADS, TEP_NAMES, tep_name

_JSON = Path(__file__).resolve().parents[2] / "dissectors" / "fields.json"


@lru_cache(maxsize=1)
def _spec() -> dict:
    try:
        from .. import fieldspec  # type: ignore[attr-defined]

        loader = getattr(fieldspec, "load", None) or getattr(fieldspec, "load_spec", None)
        if loader is not None:
            data = loader()
            if isinstance(data, dict) and "fields" in data:
                return data
    except Exception:  # noqa: BLE001 - the module is being written concurrently
        pass
    try:
        return json.loads(_JSON.read_text())
    except (OSError, ValueError):
        return {"fields": [], "value_names": {}}


@lru_cache(maxsize=1)
def _fields() -> dict[str, dict]:
    return {f["abbrev"]: f for f in _spec().get("fields", [])}


def value_names(table: str) -> dict:
    """A value-name table (integer keys as ints)."""
    raw = _spec().get("value_names", {}).get(table)
    if raw is None:
        fallback = {"tep": TEP_NAMES, "aead": {k: v.name for k, v in AEADS.items()},
                    "aa": AA_NAMES}
        return dict(fallback.get(table, {}))
    out: dict = {}
    for key, name in raw.items():
        out[int(key, 16) if key.startswith("0x") else key] = name
    return out


def display_name(abbrev: str) -> str:
    """The field's display name ("TEP"), or its abbreviation when unknown."""
    f = _fields().get(abbrev)
    return f["name"] if f else abbrev


def known(abbrev: str) -> bool:
    """Whether the field spec defines this abbreviation."""
    return abbrev in _fields()


def fmt(abbrev: str, value: object) -> str:
    """``Name: value (value name)`` the way the dissector shows a field."""
    f = _fields().get(abbrev, {})
    base = f.get("base")
    ftype = f.get("type", "")
    if isinstance(value, bool):
        text = "True" if value else "False"
    elif isinstance(value, int) and base == "hex":
        width = {"uint8": 2, "uint16": 4, "uint32": 8}.get(ftype, 2)
        text = f"0x{value:0{width}x}"
    elif isinstance(value, bytes):
        text = value.hex() if len(value) <= 24 else f"{value[:24].hex()}… ({len(value)} bytes)"
    else:
        text = str(value)
    table = f.get("values")
    if table and not isinstance(value, bool):
        names = value_names(table)
        name = names.get(value)
        if name is None and table == "tep" and isinstance(value, int):
            name = tep_name(value)
        if name is not None and name != text:
            text = f"{text} ({name})"
    return f"{display_name(abbrev)}: {text}"
