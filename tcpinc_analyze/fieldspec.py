"""The project's one declarative field spec (``dissectors/fields.json``), for Python.

The Lua dissector's field declarations are generated from the same file
(``python -m tcpinc_analyze.wireshark.luagen``), so display-filter names, value names
and expert-info codes agree between the JSON output, the TUI and Wireshark.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SPEC_ENV = "TCPINC_FIELD_SPEC"
"""Environment variable naming another spec file (tests, packaging experiments)."""

REPO_SPEC = Path(__file__).resolve().parents[1] / "dissectors" / "fields.json"
"""The spec in a checkout (what the generator and an editable install use)."""
PACKAGED_SPEC = Path(__file__).resolve().parent / "dissectors" / "fields.json"
"""The same file installed as package data (a wheel, ``pip install .``, pipx)."""


@dataclass(frozen=True)
class FieldDef:
    """One field: display-filter name, Wireshark type and how it is shown."""

    abbrev: str
    type: str
    name: str
    description: str
    base: str | None = None
    mask: int | None = None
    values: str | None = None
    bits: int | None = None

    @property
    def protocol(self) -> str:
        """``tcpeno`` or ``tcpcrypt``: the part before the first dot."""
        return self.abbrev.split(".", 1)[0]


@dataclass(frozen=True)
class ExpertDef:
    """An expert-info definition keyed by the Python analyzer's finding code."""

    code: str
    protocol: str
    group: str
    severity: str
    message: str

    @property
    def abbrev(self) -> str:
        """The Wireshark expert field name, e.g. ``tcpcrypt.expert.tcp_gap``."""
        return f"{self.protocol}.expert.{self.code.replace('-', '_')}"


def spec_path() -> Path:
    """Where the spec is read from: $TCPINC_FIELD_SPEC, else the checkout's copy, else
    the installed package data."""
    env = os.environ.get(SPEC_ENV)
    if env:
        return Path(env)
    return REPO_SPEC if REPO_SPEC.is_file() else PACKAGED_SPEC


def _int(text: str | int | None) -> int | None:
    if text is None:
        return None
    return text if isinstance(text, int) else int(text, 0)


@cache
def load_spec(path: str | None = None) -> dict:
    """The raw spec as parsed JSON (cached per path)."""
    return json.loads(Path(path or spec_path()).read_text(encoding="utf-8"))


def _value_tables(raw: dict) -> dict[str, dict[int | str, str]]:
    tables: dict[str, dict[int | str, str]] = {}
    for name, table in raw["value_names"].items():
        conv: dict[int | str, str] = {}
        for key, text in table.items():
            conv[int(key, 16) if key.startswith("0x") else key] = text
        tables[name] = conv
    return tables


def _fields(raw: dict) -> dict[str, FieldDef]:
    out: dict[str, FieldDef] = {}
    for f in raw["fields"]:
        out[f["abbrev"]] = FieldDef(
            abbrev=f["abbrev"], type=f["type"], name=f["name"],
            description=f.get("description", ""), base=f.get("base"),
            mask=_int(f.get("mask")), values=f.get("values"), bits=f.get("bits"))
    return out


def _experts(raw: dict) -> dict[str, ExpertDef]:
    return {e["code"]: ExpertDef(e["code"], e["protocol"], e["group"], e["severity"], e["message"])
            for e in raw["experts"]}


_RAW = load_spec()
PROTOCOLS: dict[str, dict] = _RAW["protocols"]
VALUE_NAMES: dict[str, dict[int | str, str]] = _value_tables(_RAW)
FIELDS: dict[str, FieldDef] = _fields(_RAW)
EXPERTS: dict[str, ExpertDef] = _experts(_RAW)


def value_name(table: str, value: int | str | None, default: str | None = None) -> str | None:
    """The display name of ``value`` in value table ``table`` (``tep``, ``aead``, ...).

    Unknown values give ``default`` when given, else a hex (ints) or literal rendering
    so nothing disappears from the output.
    """
    if value is None:
        return default
    names = VALUE_NAMES[table]
    if value in names:
        return names[value]
    if default is not None:
        return default
    return f"unknown (0x{value:02x})" if isinstance(value, int) else f"unknown ({value})"


def field(abbrev: str) -> FieldDef:
    """A field by its display-filter name; KeyError names the missing field."""
    try:
        return FIELDS[abbrev]
    except KeyError:
        raise KeyError(f"{abbrev!r} is not in the field spec {spec_path()}") from None
