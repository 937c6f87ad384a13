"""Field and value names for the detail tree, from the project's one field spec
(``dissectors/fields.json`` through ``tcpinc_analyze.fieldspec``).

Every abbreviation the TUI shows must be declared there (the tests check it), so the
tree, the JSON report and the Wireshark dissector use the same names.
"""

from __future__ import annotations

from ..fieldspec import FIELDS, PROTOCOLS, VALUE_NAMES
from ..wire import tep_name

_HEX_WIDTH = {"uint8": 2, "uint16": 4, "uint32": 8, "uint64": 16}


def value_names(table: str) -> dict:
    """A value-name table of the spec (integer keys as ints); empty when unknown."""
    return dict(VALUE_NAMES.get(table, {}))


def display_name(abbrev: str) -> str:
    """The field's display name ("TEP"), the protocol's name, or the abbreviation."""
    f = FIELDS.get(abbrev)
    if f is not None:
        return f.name
    proto = PROTOCOLS.get(abbrev)
    return proto["name"] if proto else abbrev


def known(abbrev: str) -> bool:
    """Whether the field spec declares this abbreviation (a field or a protocol)."""
    return abbrev in FIELDS or abbrev in PROTOCOLS


def bit_pattern(mask: int, raw: int, bits: int = 8) -> str:
    """Wireshark's ``.... ..1.`` view of the masked bits of ``raw``."""
    out = []
    for i in range(bits - 1, -1, -1):
        bit = 1 << i
        out.append(("1" if raw & bit else "0") if mask & bit else ".")
        if i and i % 4 == 0:
            out.append(" ")
    return "".join(out)


def value_text(abbrev: str, value: object) -> str:
    """A value the way the dissector shows it, with its value name when it has one."""
    f = FIELDS.get(abbrev)
    base = f.base if f else None
    ftype = f.type if f else ""
    if isinstance(value, bool):
        text = "True" if value else "False"
    elif isinstance(value, int) and base == "hex":
        text = f"0x{value:0{_HEX_WIDTH.get(ftype, 2)}x}"
    elif isinstance(value, bytes | bytearray):
        value = bytes(value)
        text = (value.hex() if len(value) <= 24
                else f"{value[:24].hex()}… ({len(value)} bytes)") if value else "(empty)"
    else:
        text = str(value)
    table = f.values if f else None
    if table and not isinstance(value, bool | bytes):
        name = VALUE_NAMES.get(table, {}).get(value)  # type: ignore[arg-type]
        if name is None and table == "tep" and isinstance(value, int):
            name = tep_name(value)
        if name is None and table == "aead" and isinstance(value, int):
            name = f"unknown AEAD (0x{value:04x})"
        if name is not None and name != text:
            text = f"{text} ({name})"
    return text


def fmt(abbrev: str, value: object, raw: int | None = None) -> str:
    """``Name: value (value name)``; with ``raw`` (the whole byte) a masked field is
    prefixed with its bit pattern, as Wireshark shows bit fields."""
    f = FIELDS.get(abbrev)
    text = f"{display_name(abbrev)}: {value_text(abbrev, value)}"
    if raw is not None and f is not None and f.mask is not None:
        text = f"{bit_pattern(f.mask, raw, f.bits or 8)} = {text}"
    return text
