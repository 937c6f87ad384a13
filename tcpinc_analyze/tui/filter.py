"""The connections filter: free text or simple field expressions with the spec's names.

Grammar: ``expr := term (("and"|"&&"|"or"|"||") term)*``, ``term := ["not"|"!"] atom``,
``atom := "(" expr ")" | FIELD OP VALUE | FIELD | WORD``. ``OP`` is one of
``== != < <= > >= contains``. A bare word matches an address, a port or any text of the
row. ``and`` binds tighter than ``or``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from .fields import value_names

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


def _frames(conn: dict, key: str, d: str | None) -> object:
    tc = conn.get("tcpcrypt") or {}
    v = tc.get(key) or {}
    return v.get(d) if d else (v.get("ab", 0) + v.get("ba", 0) if v else None)


def _verified(conn: dict) -> str:
    from .connections import verification

    return verification(conn)[0]


FIELDS: dict[str, Callable[[dict], object]] = {
    "tcpeno.status": lambda c: c["eno"]["status"],
    "tcpeno.reason": lambda c: c["eno"]["reason"],
    "tcpeno.negotiated_tep": lambda c: c["eno"]["negotiated_tep"],
    "tcpeno.encoding": lambda c: c["eno"]["encoding"],
    "tcpeno.simultaneous_open": lambda c: c["eno"].get("simultaneous_open"),
    "tcpeno.session_id": lambda c: _get(c, "tcpcrypt.session_id"),
    "tcpeno.host_a": lambda c: c["a"],
    "tcpeno.host_b": lambda c: c["b"],
    "tcpcrypt.aead": lambda c: _get(c, "tcpcrypt.aead"),
    "tcpcrypt.tep": lambda c: _get(c, "tcpcrypt.tep"),
    "tcpcrypt.resumed": lambda c: _get(c, "tcpcrypt.resumed"),
    "tcpcrypt.keys_from": lambda c: _get(c, "tcpcrypt.keys_from"),
    "tcpcrypt.frames": lambda c: _frames(c, "frames", None),
    "tcpcrypt.frames.ab": lambda c: _frames(c, "frames", "ab"),
    "tcpcrypt.frames.ba": lambda c: _frames(c, "frames", "ba"),
    "tcpcrypt.rekeys": lambda c: _frames(c, "rekeys", None),
    "tcpcrypt.frame.verified": _verified,
    "tcpcrypt": lambda c: c.get("tcpcrypt") is not None,
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
VALUE_TABLES = {"tcpeno.negotiated_tep": "tep", "tcpcrypt.tep": "tep", "tcpcrypt.aead": "aead"}


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
