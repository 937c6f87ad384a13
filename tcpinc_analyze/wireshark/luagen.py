"""Write the field-declaration block of ``lua/tcpinc.lua`` from ``dissectors/fields.json``.

``python -m tcpinc_analyze.wireshark.luagen`` rewrites the block between the marker
comments; ``--check`` exits 1 (and writes nothing) when the committed Lua is stale.
Everything outside the markers is hand-written and left alone.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..fieldspec import load_spec, spec_path

BEGIN = "-- BEGIN GENERATED FIELDS"
END = "-- END GENERATED FIELDS"
BEGIN_LINE = (f"{BEGIN} (python -m tcpinc_analyze.wireshark.luagen; "
              "source: dissectors/fields.json)")
LUA_PATH = Path(__file__).resolve().parents[2] / "lua" / "tcpinc.lua"

_UINT_TYPES = {"uint8", "uint16", "uint24", "uint32", "uint64"}
_BASES = {"dec": "base.DEC", "hex": "base.HEX", "oct": "base.OCT", "dec_hex": "base.DEC_HEX",
          "hex_dec": "base.HEX_DEC"}
_SEVERITIES = {"comment": "COMMENT", "chat": "CHAT", "note": "NOTE", "warn": "WARN",
               "error": "ERROR"}


class SpecError(ValueError):
    """The field spec cannot be turned into Lua (unknown type, group, ...)."""


def lua_str(text: str) -> str:
    """A double-quoted Lua string literal."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 32:
            out.append(f"\\{ord(ch):03d}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _key(key: str) -> str:
    """A Lua table key: hex keys keep their width (``0x0001`` for the two-byte AEAD
    identifiers, ``0x21`` for TEPs), other keys are strings."""
    if key.startswith("0x"):
        digits = max(2, len(key) - 2)
        return f"[0x{int(key, 16):0{digits}x}]"
    return f"[{lua_str(key)}]"


def _field_line(f: dict) -> str:
    abbrev, ftype, name = f["abbrev"], f["type"], f["name"]
    desc = lua_str(f.get("description", ""))
    vals = f"VALS.{f['values']}" if f.get("values") and ftype in _UINT_TYPES else "nil"
    mask = f.get("mask")
    mask_lua = f"0x{int(mask, 16):0{max(2, len(mask) - 2)}x}" if mask else "nil"
    a, n = lua_str(abbrev), lua_str(name)
    if ftype in _UINT_TYPES:
        base = _BASES.get(f.get("base", "dec"))
        if base is None:
            raise SpecError(f"{abbrev}: unknown base {f.get('base')!r}")
        if ftype == "uint64":
            return f"ProtoField.{ftype}({a}, {n}, {base}, nil, nil, {desc})"
        return f"ProtoField.{ftype}({a}, {n}, {base}, {vals}, {mask_lua}, {desc})"
    if ftype == "bool":
        bits = f.get("bits", 0)
        display = str(bits) if bits else "base.NONE"
        return f"ProtoField.bool({a}, {n}, {display}, nil, {mask_lua}, {desc})"
    if ftype == "string":
        return f"ProtoField.string({a}, {n}, base.ASCII, {desc})"
    if ftype == "bytes":
        return f"ProtoField.bytes({a}, {n}, base.NONE, {desc})"
    if ftype == "none":
        return f"ProtoField.none({a}, {n}, {desc})"
    if ftype == "framenum":
        return f"ProtoField.framenum({a}, {n}, base.NONE, nil, nil, {desc})"
    raise SpecError(f"{abbrev}: unknown type {ftype!r}")


def generate_block(spec: dict) -> str:
    """The Lua text between (and including) the two marker lines."""
    lines = [BEGIN_LINE, "-- Do not edit: change dissectors/fields.json and run the generator."]
    protos = spec["protocols"]
    lines.append("local P = {")
    for short, info in protos.items():
        lines.append(f"    {short} = Proto({lua_str(short)}, {lua_str(info['description'])}),")
    lines.append("}")
    lines.append("local VALS = {")
    for table, values in spec["value_names"].items():
        lines.append(f"    {table} = {{")
        for key, text in values.items():
            lines.append(f"        {_key(key)} = {lua_str(text)},")
        lines.append("    },")
    lines.append("}")
    lines.append("local F = {}")
    per_proto: dict[str, list[str]] = {p: [] for p in protos}
    for f in spec["fields"]:
        proto = f["abbrev"].split(".", 1)[0]
        if proto not in protos:
            raise SpecError(f"{f['abbrev']}: protocol {proto!r} is not declared")
        lines.append(f"F[{lua_str(f['abbrev'])}] = {_field_line(f)}")
        per_proto[proto].append(f["abbrev"])
    for proto, names in per_proto.items():
        lines.append(f"P.{proto}.fields = {{")
        lines.extend(f"    F[{lua_str(n)}]," for n in names)
        lines.append("}")
    lines.append("local function xgroup(name)")
    lines.append("    return expert.group[name] or expert.group.PROTOCOL")
    lines.append("end")
    lines.append("local E = {}")
    lines.append("local EXPERT_DEFS = {}")
    per_proto_x: dict[str, list[str]] = {p: [] for p in protos}
    for e in spec["experts"]:
        code, proto = e["code"], e["protocol"]
        if proto not in protos:
            raise SpecError(f"expert {code}: protocol {proto!r} is not declared")
        sev = _SEVERITIES.get(e["severity"])
        if sev is None:
            raise SpecError(f"expert {code}: unknown severity {e['severity']!r}")
        abbrev = f"{proto}.expert.{code.replace('-', '_')}"
        lines.append(f"EXPERT_DEFS[{lua_str(code)}] = {{ protocol = {lua_str(proto)}, "
                     f"group = {lua_str(e['group'])}, severity = {lua_str(e['severity'])} }}")
        lines.append(f"E[{lua_str(code)}] = ProtoExpert.new({lua_str(abbrev)}, "
                     f"{lua_str(e['message'])}, xgroup({lua_str(e['group'].upper())}), "
                     f"expert.severity.{sev})")
        per_proto_x[proto].append(code)
    for proto, codes in per_proto_x.items():
        lines.append(f"P.{proto}.experts = {{")
        lines.extend(f"    E[{lua_str(c)}]," for c in codes)
        lines.append("}")
    lines.append(END)
    return "\n".join(lines)


def render(lua_text: str, spec: dict) -> str:
    """``lua_text`` with its generated block replaced."""
    start = lua_text.find(BEGIN)
    end = lua_text.find(END)
    if start < 0 or end < 0 or end < start:
        raise SpecError(f"marker comments {BEGIN!r} / {END!r} not found in the Lua file")
    line_start = lua_text.rfind("\n", 0, start) + 1
    return lua_text[:line_start] + generate_block(spec) + lua_text[end + len(END):]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: rewrite the Lua file, or with --check report whether it is stale."""
    parser = argparse.ArgumentParser(
        prog="python -m tcpinc_analyze.wireshark.luagen",
        description="Generate the field declarations of lua/tcpinc.lua from the field spec.")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the Lua file is not up to date (write nothing)")
    parser.add_argument("--lua", type=Path, default=LUA_PATH,
                        help="Lua file (default: %(default)s)")
    parser.add_argument("--spec", type=Path, default=None,
                        help="field spec JSON (default: dissectors/fields.json)")
    args = parser.parse_args(argv)
    spec = load_spec(str(args.spec or spec_path()))
    try:
        current = args.lua.read_text(encoding="utf-8")
        wanted = render(current, spec)
    except (OSError, SpecError) as exc:
        print(f"luagen: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if wanted != current:
            print(f"luagen: {args.lua} is stale; run python -m tcpinc_analyze.wireshark.luagen",
                  file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        args.lua.write_text(wanted, encoding="utf-8")
        print(f"luagen: rewrote the field block of {args.lua}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
