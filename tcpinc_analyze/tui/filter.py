"""The connections filter: free text or simple field expressions with the spec's names.

Grammar: ``expr := term (("and"|"&&"|"or"|"||") term)*``, ``term := ["not"|"!"] atom``,
``atom := "(" expr ")" | FIELD OP VALUE | FIELD | WORD``. ``OP`` is one of
``== != < <= > >= contains``. A bare word matches an address, a port or any text of the
row. ``and`` binds tighter than ``or``.

Field names are the field spec's (``dissectors/fields.json``), evaluated per connection
from its JSON report: ``tcpeno.reason == role-conflict``, ``tcpcrypt.aead == 0x0010`` or
``== AEAD_CHACHA20_POLY1305`` (value names work wherever the spec has them),
``tcpcrypt.dialect == tcpcryptd-2016``. A field both SYNs can carry (``tcpeno.global.b``,
``tcpeno.tep``, ...) is a list and matches when any of its values does; a field alone
matches when it is true or non-empty. ``frames``, ``rekeys``, ``ip.*``, ``tcp.*``,
``state``, ``finding`` are the connection's counts and addresses, not protocol fields.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from ..fieldspec import FIELDS as SPEC_FIELDS
from .fields import known, value_names

Row = dict
Predicate = Callable[[Row], bool]

_TOKEN = re.compile(r"\s*(\(|\)|==|!=|<=|>=|<|>|&&|\|\||!|\"[^\"]*\"|[^\s()=!<>&|\"]+)")
OPS = ("==", "!=", "<", "<=", ">", ">=", "contains")


def _split_ep(ep: str) -> tuple[str, int]:
    host, _, port = ep.rpartition(":")
    return host.strip("[]"), int(port)


def _get(conn: dict, path: str) -> object:
    cur: object = conn
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _tc(conn: dict) -> dict:
    return conn.get("tcpcrypt") or {}


def _per_direction(conn: dict, key: str) -> list:
    v = _tc(conn).get(key) or {}
    return [v.get("ab"), v.get("ba")] if v else []


def _sum(conn: dict, key: str) -> int | None:
    v = _tc(conn).get(key) or {}
    return (v.get("ab", 0) + v.get("ba", 0)) if v else None


def _decrypted(conn: dict, key: str) -> list:
    dec = _tc(conn).get("decrypted") or {}
    return [(dec.get(d) or {}).get(key) for d in ("ab", "ba") if dec.get(d)]


def _verified(conn: dict) -> bool | None:
    """True: frames opened and none failed; False: some failed; None: not decrypted."""
    dec = _tc(conn).get("decrypted") or {}
    ok = sum((dec.get(d) or {}).get("ok", 0) for d in ("ab", "ba"))
    failed = sum((dec.get(d) or {}).get("failed", 0) for d in ("ab", "ba"))
    if failed:
        return False
    return True if ok else None


def _syns(conn: dict) -> list[dict]:
    eno = conn.get("eno") or {}
    return [s for s in (eno.get("syn_a"), eno.get("syn_b")) if s]


def _subs(conn: dict, key: str) -> list:
    """Every value of a suboption field in both SYNs' ENO options."""
    return [sub[key] for syn in _syns(conn) for sub in syn.get("suboptions", []) if key in sub]


def _generation(conn: dict) -> list:
    gens = [g for g in _decrypted(conn, "generation") if g is not None]
    return gens or [r for r in _per_direction(conn, "rekeys") if r is not None]


def _init(conn: dict, which: str, key: str) -> object:
    return (_tc(conn).get(which) or {}).get(key)


def _conformance(conn: dict, key: str) -> list:
    return [f.get(key) for f in conn.get("findings", []) if f.get("rfc")]


FIELDS: dict[str, Callable[[dict], object]] = {
    # ENO outcome (RFC 8547), per connection
    "tcpeno": lambda c: bool(_syns(c)),
    "tcpeno.status": lambda c: c["eno"]["status"],
    "tcpeno.reason": lambda c: c["eno"]["reason"],
    "tcpeno.negotiated_tep": lambda c: c["eno"]["negotiated_tep"],
    "tcpeno.encoding": lambda c: c["eno"]["encoding"],
    "tcpeno.roles": lambda c: c["eno"].get("roles"),
    "tcpeno.simultaneous_open": lambda c: c["eno"].get("simultaneous_open"),
    "tcpeno.resumed": lambda c: _tc(c).get("resumed"),
    "tcpeno.session_id": lambda c: _tc(c).get("session_id"),
    "tcpeno.host_a": lambda c: c["a"],
    "tcpeno.host_b": lambda c: c["b"],
    "tcpeno.syn_a": lambda c: (c["eno"].get("packets") or {}).get("syn_a"),
    "tcpeno.syn_b": lambda c: (c["eno"].get("packets") or {}).get("syn_b"),
    "tcpeno.ack_a": lambda c: (c["eno"].get("packets") or {}).get("ack_a"),
    # the SYNs' ENO options: any of them (a list, as a packet field would match)
    "tcpeno.kind": lambda c: [s.get("kind") for s in _syns(c)],
    "tcpeno.option.encoding": lambda c: [s.get("encoding") for s in _syns(c)],
    "tcpeno.malformed": lambda c: [s.get("malformed") for s in _syns(c)],
    "tcpeno.global": lambda c: _subs(c, "tcpeno.global"),
    "tcpeno.global.b": lambda c: _subs(c, "tcpeno.global.b"),
    "tcpeno.global.a": lambda c: _subs(c, "tcpeno.global.a"),
    "tcpeno.global.z": lambda c: _subs(c, "tcpeno.global.z"),
    "tcpeno.global.implicit": lambda c: [s.get("implicit_global") for s in _syns(c)],
    "tcpeno.tep": lambda c: _subs(c, "tcpeno.tep"),
    "tcpeno.tep.v": lambda c: _subs(c, "tcpeno.tep.v"),
    "tcpeno.tep.data": lambda c: _subs(c, "tcpeno.tep.data"),
    "tcpeno.length_byte": lambda c: _subs(c, "tcpeno.length_byte"),
    "tcpeno.conformance": lambda c: _conformance(c, "code"),
    "tcpeno.conformance.rfc": lambda c: _conformance(c, "rfc"),
    # tcpcrypt (RFC 8548), per connection
    "tcpcrypt": lambda c: c.get("tcpcrypt") is not None,
    "tcpcrypt.aead": lambda c: _tc(c).get("aead"),
    "tcpcrypt.dialect": lambda c: _tc(c).get("dialect"),
    "tcpcrypt.nonce_offset_base": lambda c: _tc(c).get("nonce_offset_base"),
    "tcpcrypt.resumed": lambda c: _tc(c).get("resumed"),
    "tcpcrypt.resume.index": lambda c: _tc(c).get("resume_index"),
    "tcpcrypt.resume.half": lambda c: _subs(c, "tcpcrypt.resume.half"),
    "tcpcrypt.resume.nonce": lambda c: _subs(c, "tcpcrypt.resume.nonce"),
    "tcpcrypt.keys_from": lambda c: _tc(c).get("keys_from"),
    "tcpcrypt.init1.sym_cipher": lambda c: _init(c, "init1", "sym_ciphers") or [],
    "tcpcrypt.init1.nonce": lambda c: _init(c, "init1", "nonce"),
    "tcpcrypt.init1.pubkey_len": lambda c: _init(c, "init1", "pubkey_len"),
    "tcpcrypt.init1.pubkey": lambda c: _init(c, "init1", "pubkey"),
    "tcpcrypt.init2.sym_cipher": lambda c: _init(c, "init2", "sym_cipher"),
    "tcpcrypt.init2.nonce": lambda c: _init(c, "init2", "nonce"),
    "tcpcrypt.init2.pubkey_len": lambda c: _init(c, "init2", "pubkey_len"),
    "tcpcrypt.init2.pubkey": lambda c: _init(c, "init2", "pubkey"),
    "tcpcrypt.pubkey_len_reading": lambda c: [
        r for r in (_init(c, "init1", "pubkey_len_reading"),
                    _init(c, "init2", "pubkey_len_reading")) if r],
    "tcpcrypt.frame.verified": _verified,
    "tcpcrypt.frame.generation": _generation,
    "tcpcrypt.frame.control.rekey": lambda c: bool(_sum(c, "rekeys")),
    "tcpcrypt.plaintext.flags.finp": lambda c: _decrypted(c, "fin"),
    # not protocol fields: counts and addresses of the connection
    "frames": lambda c: _sum(c, "frames"),
    "frames.ab": lambda c: (_tc(c).get("frames") or {}).get("ab"),
    "frames.ba": lambda c: (_tc(c).get("frames") or {}).get("ba"),
    "rekeys": lambda c: _sum(c, "rekeys"),
    "undecryptable": lambda c: sum(x or 0 for x in _decrypted(c, "undecryptable")),
    "ip.addr": lambda c: [_split_ep(c["a"])[0], _split_ep(c["b"])[0]],
    "ip.src": lambda c: _split_ep(c["a"])[0],
    "ip.dst": lambda c: _split_ep(c["b"])[0],
    "tcp.port": lambda c: [_split_ep(c["a"])[1], _split_ep(c["b"])[1]],
    "tcp.srcport": lambda c: _split_ep(c["a"])[1],
    "tcp.dstport": lambda c: _split_ep(c["b"])[1],
    "id": lambda c: c["id"],
    "packets": lambda c: c["packets"],
    "state": lambda c: c.get("state"),
    "findings": lambda c: len(c.get("findings", [])),
    "finding": lambda c: [f["code"] for f in c.get("findings", [])],
}
VALUE_TABLES = {name: SPEC_FIELDS[name].values for name in FIELDS
                if name in SPEC_FIELDS and SPEC_FIELDS[name].values}
"""Fields whose values have names in the spec (``tcpcrypt.aead == AEAD_AES_128_GCM``)."""


class FilterError(ValueError):
    """The expression does not parse; the message says where."""


def _literal(text: str) -> object:
    text = text.strip('"')
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none"):
        return None
    try:
        return int(text, 0)
    except ValueError:
        return text


def _compare(actual: object, op: str, want: object, table: str | None) -> bool:
    if isinstance(actual, list):
        hits = [_compare(a, op, want, table) for a in actual]
        return not any(not h for h in hits) if op == "!=" else any(hits)
    if table and isinstance(want, str) and isinstance(actual, int):
        names = value_names(table)
        if op in ("==", "!=", "contains"):
            name = str(names.get(actual, ""))
            hit = (name.lower() == want.lower() if op != "contains"
                   else want.lower() in name.lower())
            return hit != (op == "!=")
    if op == "contains":
        return actual is not None and str(want).lower() in str(actual).lower()
    if isinstance(actual, str) and isinstance(want, str):
        a, w = actual.lower(), want.lower()
        if op in ("==", "!="):
            try:
                same = ipaddress.ip_address(a) == ipaddress.ip_address(w)
            except ValueError:
                same = a == w
            return same != (op == "!=")
        actual, want = a, w
    if isinstance(want, str) and not isinstance(actual, str) and actual is not None:
        actual = str(actual).lower()
        want = want.lower()
    if op == "==":
        return actual == want
    if op == "!=":
        return actual != want
    try:
        return bool({"<": actual < want, "<=": actual <= want,  # type: ignore[operator]
                     ">": actual > want, ">=": actual >= want}[op])  # type: ignore[operator]
    except TypeError:
        return False


def _text_match(word: str) -> Predicate:
    low = word.lower()
    port = int(low) if low.isdigit() else None
    host = None
    try:
        host = ipaddress.ip_address(low.strip("[]"))
    except ValueError:
        pass

    def pred(c: Row) -> bool:
        if host is not None:
            return any(ipaddress.ip_address(_split_ep(ep)[0]) == host for ep in (c["a"], c["b"]))
        if low in (c["a"].lower(), c["b"].lower()):
            return True
        if port is not None:
            return port in (_split_ep(c["a"])[1], _split_ep(c["b"])[1]) or low == str(c["id"])
        hay = " ".join(str(x) for x in (
            c["a"], c["b"], c["eno"]["status"], c["eno"]["reason"] or "",
            (c.get("tcpcrypt") or {}).get("aead_name") or "",
            (c.get("tcpcrypt") or {}).get("dialect") or "",
            c["eno"].get("negotiated_tep_name") or "",
            " ".join(f["code"] for f in c.get("findings", [])))).lower()
        return low in hay

    return pred


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[str] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or not m.group(1):
                raise FilterError(f"unexpected character at {pos}: {text[pos:pos + 10]!r}")
            self.tokens.append(m.group(1))
            pos = m.end()
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise FilterError("expression ends too early")
        self.i += 1
        return tok

    def expr(self) -> Predicate:
        left = self.conj()
        while self.peek() in ("or", "||"):
            self.take()
            right = self.conj()
            left = (lambda a, b: lambda c: a(c) or b(c))(left, right)
        return left

    def conj(self) -> Predicate:
        left = self.term()
        while self.peek() in ("and", "&&"):
            self.take()
            right = self.term()
            left = (lambda a, b: lambda c: a(c) and b(c))(left, right)
        return left

    def term(self) -> Predicate:
        if self.peek() in ("not", "!"):
            self.take()
            inner = self.term()
            return lambda c: not inner(c)
        return self.atom()

    def atom(self) -> Predicate:
        tok = self.take()
        if tok == "(":
            inner = self.expr()
            if self.take() != ")":
                raise FilterError("missing ')'")
            return inner
        if tok == ")":
            raise FilterError("unexpected ')'")
        if tok in FIELDS:
            getter = FIELDS[tok]
            table = VALUE_TABLES.get(tok)
            if self.peek() in OPS:
                op = self.take()
                if self.peek() is None or self.peek() in OPS + ("(", ")", "and", "or"):
                    raise FilterError(f"'{tok} {op}' needs a value")
                want = _literal(self.take())
                return lambda c: _compare(getter(c), op, want, table)

            def present(c: Row) -> bool:
                v = getter(c)
                return bool(v) if not isinstance(v, list) else any(v)

            return present
        if known(tok):
            raise FilterError(f"{tok!r} is a per-packet field: the connections filter does "
                              "not know it (see ? for the fields it knows)")
        if "." in tok and tok.split(".")[0] in ("tcpeno", "tcpcrypt", "ip", "tcp"):
            raise FilterError(f"unknown field {tok!r}")
        if self.peek() in OPS:
            raise FilterError(f"unknown field {tok!r}")
        return _text_match(tok.strip('"'))


def compile_filter(text: str) -> Predicate | None:
    """A predicate over connection JSON objects; None for an empty filter.

    Raises FilterError when the expression is invalid.
    """
    if not text.strip():
        return None
    parser = _Parser(text)
    pred = parser.expr()
    if parser.peek() is not None:
        raise FilterError(f"unexpected {parser.peek()!r}")
    return pred
