"""Display filters: one language and one implementation for the CLI (``-Y EXPR``) and the
terminal browser (its connections filter and its packet filter).

The language is a subset of Wireshark's display filters, with the field spec's names
(``dissectors/fields.json``), so an expression typed here also works in Wireshark with
the Lua dissector::

    expr    := or
    or      := and (("or" | "||") and)*
    and     := not (("and" | "&&") not)*
    not     := ("not" | "!") not | atom
    atom    := "(" expr ")" | FIELD [OP VALUE | "in" "{" VALUE ... "}"] | WORD
    OP      := == eq  != ne  < lt  <= le  > gt  >= ge  contains  matches ~

A field with no comparison tests presence (true, non-empty). A field can have several
values (both SYNs' ``tcpeno.global.b``, the frames of a connection): ``==``, ``<`` ...
match when any value does; ``!=`` when the field is present and no value equals.
Values are numbers (``443``, ``0x23``), value names as the spec and the tables show them
(``AEAD_CHACHA20_POLY1305``, ``CHACHA20_POLY1305``, ``X448``), strings (``fallback``,
``"role-conflict"``), addresses and CIDR blocks (``ip.addr == 10.1.0.0/24``), byte strings
(``tcpcrypt.frame.tag == 63:2c:11...``; ``contains "GET"`` on bytes), sets and ranges
(``tcp.port in {80 443 8000..8100}``).

Two scopes: a *connection* filter evaluates each connection's JSON report (the CLI's
``-Y`` and the browser's connections table); a *packet* filter evaluates one packet
(the browser's packet list), where every field the detail tree shows is known. A bare
word (not a field) in a connection filter matches an address, a port, a connection id
or any text of the row. Errors name the column where the expression went wrong.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .fieldspec import FIELDS as SPEC_FIELDS
from .fieldspec import PROTOCOLS, VALUE_NAMES
from .wire import TCPCRYPT_TEPS

Row = dict


class FilterError(ValueError):
    """The expression is invalid; ``column`` (1-based) is where it went wrong."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.column = column

    def __str__(self) -> str:
        return f"{self.message} (column {self.column})"


# ---------------------------------------------------------------------- connection fields
def _split_ep(ep: str) -> tuple[str, int]:
    host, _, port = ep.rpartition(":")
    return host.strip("[]"), int(port)


def _tc(conn: dict) -> dict:
    return conn.get("tcpcrypt") or {}


def _eno(conn: dict) -> dict:
    return conn.get("eno") or {}


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
    eno = _eno(conn)
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


def _packets(conn: dict, key: str) -> object:
    return (_eno(conn).get("packets") or {}).get(key)


CONNECTION_FIELDS: dict[str, Callable[[dict], object]] = {
    # ENO outcome (RFC 8547), per connection (the dissector's generated tcpeno.connection)
    "tcpeno": lambda c: bool(_syns(c)),
    "tcpeno.status": lambda c: _eno(c).get("status"),
    "tcpeno.reason": lambda c: _eno(c).get("reason"),
    "tcpeno.negotiated_tep": lambda c: _eno(c).get("negotiated_tep"),
    "tcpeno.encoding": lambda c: _eno(c).get("encoding"),
    "tcpeno.roles": lambda c: _eno(c).get("roles"),
    "tcpeno.simultaneous_open": lambda c: _eno(c).get("simultaneous_open"),
    "tcpeno.resumed": lambda c: _tc(c).get("resumed"),
    "tcpeno.session_id": lambda c: _tc(c).get("session_id"),
    "tcpeno.host_a": lambda c: c.get("a"),
    "tcpeno.host_b": lambda c: c.get("b"),
    "tcpeno.syn_a": lambda c: _packets(c, "syn_a"),
    "tcpeno.syn_b": lambda c: _packets(c, "syn_b"),
    "tcpeno.ack_a": lambda c: _packets(c, "ack_a"),
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
    "tcpcrypt.init1": lambda c: _tc(c).get("init1") is not None,
    "tcpcrypt.init2": lambda c: _tc(c).get("init2") is not None,
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
    "tcp.stream": lambda c: c.get("id"),
    "id": lambda c: c.get("id"),
    "packets": lambda c: c.get("packets"),
    "bytes": lambda c: c.get("bytes"),
    "state": lambda c: c.get("state"),
    "findings": lambda c: len(c.get("findings", [])),
    "finding": lambda c: [f["code"] for f in c.get("findings", [])],
}
"""Fields a connection's report answers (``ip.src``/``tcp.srcport`` are host A's)."""

FRAME_FIELDS = frozenset(
    name for name in SPEC_FIELDS
    if name.startswith(("tcpcrypt.frame", "tcpcrypt.plaintext", "tcpcrypt.stream_offset"))
    and name not in ("tcpcrypt.frame", "tcpcrypt.plaintext"))
"""Per-frame fields: on a connection, any of its frames (the CLI collects the frame list
when an expression names one)."""

CONNECTION_GENERATED = frozenset(
    name for name in CONNECTION_FIELDS
    if name in ("tcpeno.status", "tcpeno.reason", "tcpeno.negotiated_tep", "tcpeno.encoding",
                "tcpeno.roles", "tcpeno.simultaneous_open", "tcpeno.resumed",
                "tcpeno.session_id", "tcpeno.host_a", "tcpeno.host_b", "tcpeno.syn_a",
                "tcpeno.syn_b", "tcpeno.ack_a", "tcpcrypt.aead", "tcpcrypt.dialect",
                "tcpcrypt.nonce_offset_base", "tcpcrypt.resumed", "tcpcrypt.resume.index",
                "tcpcrypt.keys_from"))
"""Spec fields the dissector shows on every packet of a connection (from its report):
a packet filter reads them from the connection, without dissecting the packet."""

HELPER_FIELDS = frozenset(n for n in CONNECTION_FIELDS if "." not in n or n.startswith(
    ("frames.", "ip.", "tcp.")))
"""Connection counts and addresses (not protocol fields)."""

PACKET_FIELDS = frozenset({
    "frame", "frame.number", "frame.len", "frame.cap_len", "frame.time_epoch",
    "frame.time_relative", "frame.interface_id", "ip", "ipv6", "ip.version", "ip.src",
    "ip.dst", "ip.addr", "ipv6.src", "ipv6.dst", "ipv6.addr", "tcp", "tcp.srcport",
    "tcp.dstport", "tcp.port", "tcp.stream", "tcp.seq", "tcp.ack", "tcp.len",
    "tcp.flags", "tcp.flags.fin", "tcp.flags.syn", "tcp.flags.reset", "tcp.flags.push",
    "tcp.flags.ack", "tcp.flags.urg", "tcp.window_size_value", "tcp.payload",
    "tcp.options"})
"""Fields every packet answers from its headers (Wireshark's names)."""

VALUE_TABLES = {name: f.values for name, f in SPEC_FIELDS.items() if f.values}
"""Fields whose values have names in the spec (``tcpcrypt.aead == AEAD_AES_128_GCM``)."""


def connection_field_names() -> list[str]:
    """Every field a connection filter knows (for help texts and completion)."""
    return sorted(set(CONNECTION_FIELDS) | FRAME_FIELDS)


def packet_field_names() -> list[str]:
    """Every field a packet filter knows."""
    return sorted(set(CONNECTION_FIELDS) | set(SPEC_FIELDS) | set(PROTOCOLS) | PACKET_FIELDS)


# ---------------------------------------------------------------------- values
def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _aliases(table: str, value: int) -> set[str]:
    """Normalised names a value answers to: the spec's, and the shorter ones the tables
    show (``CHACHA20_POLY1305`` for AEAD_CHACHA20_POLY1305, ``X448`` for the Curve448
    TEP)."""
    names = set()
    spec = VALUE_NAMES.get(table, {}).get(value)  # type: ignore[call-overload]
    if isinstance(spec, str):
        full = _norm(spec)
        names.add(full)
        for prefix in ("aead", "tcpcryptecdhe", "tcpcrypt"):
            if full.startswith(prefix) and len(full) > len(prefix):
                names.add(full[len(prefix):])
    if table == "tep" and value in TCPCRYPT_TEPS:
        short = _norm(TCPCRYPT_TEPS[value].name)
        names.update({short, short.removeprefix("ecdhe")})
    return names


@dataclass
class Literal:
    """A value as typed, with the readings it allows."""

    text: str
    quoted: bool
    column: int
    integer: int | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    raw: bytes | None = None
    low: int | None = None
    high: int | None = None

    @classmethod
    def parse(cls, text: str, quoted: bool, column: int, *, in_set: bool = False) -> Literal:
        lit = cls(text, quoted, column)
        if quoted:
            return lit
        try:
            lit.integer = int(text, 0)
        except ValueError:
            pass
        if in_set and ".." in text and lit.integer is None:
            lo, _, hi = text.partition("..")
            try:
                lit.low, lit.high = int(lo, 0), int(hi, 0)
            except ValueError as exc:
                raise FilterError(f"range {text!r} needs two numbers", column) from exc
        try:
            lit.network = ipaddress.ip_network(text.strip("[]"), strict=False)
        except ValueError:
            pass
        hexdigits = re.sub(r"[:.\-]", "", text) if re.fullmatch(
            r"[0-9a-fA-F]{2}([:.\-]?[0-9a-fA-F]{2})*", text) else None
        if hexdigits is not None:
            lit.raw = bytes.fromhex(hexdigits)
        return lit

    @property
    def boolean(self) -> bool | None:
        low = self.text.lower()
        if low in ("true", "false"):
            return low == "true"
        if self.integer in (0, 1) and not self.quoted:
            return bool(self.integer)
        return None


def _as_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return None


def _equal(actual: object, lit: Literal, table: str | None) -> bool:
    if actual is None:
        return False
    if lit.low is not None and lit.high is not None:
        return isinstance(actual, int) and not isinstance(actual, bool) and \
            lit.low <= actual <= lit.high
    if isinstance(actual, bool):
        return lit.boolean is not None and actual == lit.boolean
    if isinstance(actual, int):
        if lit.integer is not None:
            return actual == lit.integer
        if lit.boolean is not None:
            return actual == int(lit.boolean)
        if table:
            return _norm(lit.text) in _aliases(table, actual)
        return False
    if isinstance(actual, bytes | bytearray | memoryview):
        data = bytes(actual)
        if lit.raw is not None and not lit.quoted:
            return data == lit.raw
        return data == lit.text.encode()
    text = str(actual)
    if lit.network is not None:
        ip = _as_ip(text)
        if ip is not None:
            return ip in lit.network
    if lit.raw is not None and not lit.quoted and re.fullmatch(r"[0-9a-fA-F]+", text):
        return text.lower() == lit.raw.hex()  # a hex field (session ID, tag) as typed
    return text.lower() == lit.text.lower()


def _order(actual: object, op: str, lit: Literal) -> bool:
    if isinstance(actual, bool) or not isinstance(actual, int | float) or lit.integer is None:
        return False
    want = lit.integer
    return {"<": actual < want, "<=": actual <= want, ">": actual > want,
            ">=": actual >= want}[op]


def _contains(actual: object, lit: Literal, table: str | None) -> bool:
    if actual is None:
        return False
    if isinstance(actual, bytes | bytearray | memoryview):
        data = bytes(actual)
        if lit.raw is not None and not lit.quoted:
            return lit.raw in data
        return lit.text.encode() in data
    if isinstance(actual, int) and not isinstance(actual, bool) and table:
        return any(_norm(lit.text) in name for name in _aliases(table, actual))
    return lit.text.lower() in str(actual).lower()


def _matches(actual: object, pattern: re.Pattern[str]) -> bool:
    if actual is None:
        return False
    if isinstance(actual, bytes | bytearray | memoryview):
        return pattern.search(bytes(actual).decode("latin-1")) is not None
    return pattern.search(str(actual)) is not None


def _values(value: object) -> list:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [v for v in value if v is not None]
    return [value]


def _present(values: list) -> bool:
    return any(v is not False and v != [] and v != "" and v != b"" for v in values)


# ---------------------------------------------------------------------- sources
class Source:
    """What an expression is evaluated against: field name -> its values."""

    def values(self, name: str) -> list:
        """The field's values here (empty when absent)."""
        raise NotImplementedError

    def text(self, word: str) -> bool:
        """A bare word: does it match this item?"""
        return False


class ConnectionSource(Source):
    """A connection's JSON report (``frame_list``, when present, answers frame fields)."""

    def __init__(self, row: Row) -> None:
        self.row = row

    def values(self, name: str) -> list:
        """Report fields; per-frame fields from any frame in ``frame_list``."""
        getter = CONNECTION_FIELDS.get(name)
        if name in FRAME_FIELDS and "frame_list" in self.row and (
                getter is None or name not in ("tcpcrypt.frame.verified",)):
            return [f.get(name) for f in self.row["frame_list"] if f.get(name) is not None]
        if getter is None:
            return []
        try:
            return _values(getter(self.row))
        except (KeyError, TypeError, ValueError):
            return []

    def text(self, word: str) -> bool:
        """An address (or CIDR block), a port, an id, or text anywhere in the row."""
        c = self.row
        low = word.lower()
        eps = [c.get("a", ""), c.get("b", "")]
        try:
            net = ipaddress.ip_network(low.strip("[]"), strict=False)
        except ValueError:
            net = None
        if net is not None:
            return any((ip := _as_ip(_split_ep(ep)[0])) is not None and ip in net
                       for ep in eps if ep)
        if low in (eps[0].lower(), eps[1].lower()):
            return True
        if low.isdigit():
            return int(low) in [_split_ep(ep)[1] for ep in eps if ep] or low == str(c.get("id"))
        eno = _eno(c)
        tc = _tc(c)
        hay = " ".join(str(x) for x in (
            *eps, eno.get("status") or "", eno.get("reason") or "",
            tc.get("aead_name") or "", tc.get("dialect") or "",
            eno.get("negotiated_tep_name") or "",
            " ".join(f["code"] for f in c.get("findings", [])))).lower()
        return low in hay


class PacketSource(Source):
    """One packet: header fields from ``headers`` (name -> value), connection fields from
    its connection's report, the detail tree's fields from ``tree`` (called at most once,
    and only when the expression names a field only the tree has)."""

    def __init__(self, headers: dict[str, object], conn: Row | None,
                 tree: Callable[[], dict[str, list]] | None = None) -> None:
        self.headers = headers
        self.conn = conn
        self._tree = tree
        self._tree_values: dict[str, list] | None = None

    def values(self, name: str) -> list:
        """Headers first, then the connection's generated fields, then the tree."""
        if name in PACKET_FIELDS:
            return _values(self.headers.get(name))
        if self.conn is not None and (name in CONNECTION_GENERATED or name in HELPER_FIELDS):
            return ConnectionSource(self.conn).values(name)
        if name in HELPER_FIELDS:
            return []
        if self._tree_values is None:
            self._tree_values = self._tree() if self._tree is not None else {}
        return self._tree_values.get(name, [])

    def text(self, word: str) -> bool:
        """An address (or CIDR block) or a port of the packet."""
        net = None
        try:
            net = ipaddress.ip_network(word.strip("[]"), strict=False)
        except ValueError:
            pass
        if net is not None:
            return any((ip := _as_ip(str(a))) is not None and ip in net
                       for a in _values(self.headers.get("ip.addr")))
        if word.isdigit():
            return int(word) in _values(self.headers.get("tcp.port"))
        return False


# ---------------------------------------------------------------------- parser
_TOKEN = re.compile(r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<op>==|!=|<=|>=|&&|\|\||[()<>{},!~])
  | (?P<word>[^\s(){},=!<>&|"~]+)
  | (?P<bad>\S))""", re.VERBOSE)
OPS = {"==": "==", "eq": "==", "!=": "!=", "ne": "!=", "<": "<", "lt": "<", "<=": "<=",
       "le": "<=", ">": ">", "gt": ">", ">=": ">=", "ge": ">=", "contains": "contains",
       "matches": "matches", "~": "matches"}
KEYWORDS = {"and", "or", "not", "in", "&&", "||", "!"}


@dataclass
class _Tok:
    text: str
    column: int
    kind: str  # str, op, word


Node = Callable[[Source], bool]


@dataclass
class Filter:
    """A compiled display filter. Call it with a connection report (``filter(row)``), or
    use :meth:`match` with any :class:`Source`."""

    text: str
    scope: str
    node: Node
    fields: frozenset[str] = field(default_factory=frozenset)

    def __call__(self, row: Row) -> bool:
        return self.node(ConnectionSource(row))

    def match(self, source: Source) -> bool:
        """Evaluate against a connection or a packet."""
        return self.node(source)

    @property
    def needs_frames(self) -> bool:
        """A connection filter naming per-frame fields (needs each connection's frames)."""
        return bool(self.fields & (FRAME_FIELDS - set(CONNECTION_FIELDS)))

    @property
    def needs_tree(self) -> bool:
        """A packet filter naming fields only the dissected packet has."""
        return any(f not in PACKET_FIELDS and f not in CONNECTION_GENERATED
                   and f not in HELPER_FIELDS for f in self.fields)


class _Parser:
    def __init__(self, text: str, scope: str, frames: bool) -> None:
        self.text = text
        self.scope = scope
        self.frames = frames
        self.tokens: list[_Tok] = []
        self.fields: set[str] = set()
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                break
            kind = m.lastgroup or "bad"
            tok = m.group(kind)
            column = m.start(kind) + 1
            if kind == "bad":
                if tok == '"':
                    raise FilterError("unterminated string", column)
                if tok in "=&|":
                    raise FilterError(f"unexpected {tok!r} (did you mean "
                                      f"{tok * 2!r}?)", column)
                raise FilterError(f"unexpected character {tok!r}", column)
            self.tokens.append(_Tok(tok, column, kind))
            pos = m.end()
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def end_column(self) -> int:
        return len(self.text.rstrip()) + 1

    def take(self, what: str = "more") -> _Tok:
        tok = self.peek()
        if tok is None:
            raise FilterError(f"the expression ends too early: expected {what}",
                              self.end_column())
        self.i += 1
        return tok

    def at(self, *words: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind != "str" and tok.text.lower() in words

    def expr(self) -> Node:
        left = self.conj()
        while self.at("or", "||"):
            self.take()
            right = self.conj()
            left = (lambda a, b: lambda s: a(s) or b(s))(left, right)
        return left

    def conj(self) -> Node:
        left = self.term()
        while self.at("and", "&&"):
            self.take()
            right = self.term()
            left = (lambda a, b: lambda s: a(s) and b(s))(left, right)
        return left

    def term(self) -> Node:
        if self.at("not", "!"):
            self.take()
            inner = self.term()
            return lambda s: not inner(s)
        return self.atom()

    def known(self, name: str) -> bool:
        if self.scope == "packet":
            return name in PACKET_FIELDS or name in CONNECTION_FIELDS or \
                name in SPEC_FIELDS or name in PROTOCOLS
        return name in CONNECTION_FIELDS or name in FRAME_FIELDS

    def check_scope(self, tok: _Tok) -> None:
        name = tok.text
        if self.scope == "connection" and name in FRAME_FIELDS and \
                name not in CONNECTION_FIELDS and not self.frames:
            raise FilterError(f"{name!r} is a per-packet field: filter packets with it "
                              "(the packet list's filter)", tok.column)

    def value(self, what: str, *, in_set: bool = False) -> Literal:
        tok = self.take(what)
        if tok.kind == "op" or (tok.kind == "word" and tok.text.lower() in KEYWORDS):
            raise FilterError(f"expected {what}, found {tok.text!r}", tok.column)
        if tok.kind == "str":
            body = re.sub(r"\\(.)", r"\1", tok.text[1:-1])
            return Literal.parse(body, True, tok.column)
        return Literal.parse(tok.text, False, tok.column, in_set=in_set)

    def atom(self) -> Node:
        tok = self.take("a field, a value or '('")
        if tok.kind == "op" and tok.text == "(":
            inner = self.expr()
            close = self.peek()
            if close is None:
                raise FilterError(f"missing ')' for the '(' at column {tok.column}",
                                  self.end_column())
            if close.text != ")":
                raise FilterError(f"expected ')', found {close.text!r}", close.column)
            self.take()
            return inner
        if tok.kind == "op" or (tok.kind == "word" and tok.text.lower() in KEYWORDS):
            raise FilterError(f"unexpected {tok.text!r}", tok.column)
        if tok.kind == "word" and self.known(tok.text):
            return self.comparison(tok)
        nxt = self.peek()
        follows_op = nxt is not None and (nxt.text in OPS or nxt.text.lower() in OPS
                                          or nxt.text.lower() == "in") and nxt.kind != "str"
        if tok.kind == "word" and (follows_op or ("." in tok.text and tok.text.split(".")[0] in
                                                  ("tcpeno", "tcpcrypt", "ip", "ipv6", "tcp",
                                                   "frame"))):
            if self.scope == "connection" and (tok.text in SPEC_FIELDS or
                                               tok.text in PACKET_FIELDS):
                raise FilterError(f"{tok.text!r} is a per-packet field: filter packets with "
                                  "it (the packet list's filter)", tok.column)
            raise FilterError(f"unknown field {tok.text!r}", tok.column)
        word = tok.text if tok.kind == "word" else re.sub(r"\\(.)", r"\1", tok.text[1:-1])
        if self.scope == "packet" and not (word.isdigit() or _as_ip(word) is not None
                                           or "/" in word):
            raise FilterError(f"{word!r} is not a field (a packet filter takes field "
                              "names, an address or a port)", tok.column)
        return lambda s: s.text(word)

    def comparison(self, tok: _Tok) -> Node:
        name = tok.text
        self.check_scope(tok)
        self.fields.add(name)
        table = VALUE_TABLES.get(name)
        nxt = self.peek()
        if nxt is None or nxt.kind == "str" or not (nxt.text in OPS or nxt.text.lower() in OPS
                                                    or nxt.text.lower() == "in"):
            if nxt is not None and nxt.kind != "op" and nxt.text.lower() not in KEYWORDS:
                raise FilterError(f"expected an operator (==, !=, <, >, contains, in ...) "
                                  f"after {name!r}, found {nxt.text!r}", nxt.column)
            return lambda s: _present(s.values(name))
        op_tok = self.take()
        op = OPS.get(op_tok.text.lower(), op_tok.text.lower())
        if op == "in":
            return self.membership(name, table)
        lit = self.value(f"a value after '{op_tok.text}'")
        if op == "==":
            return lambda s: any(_equal(v, lit, table) for v in s.values(name))
        if op == "!=":
            return lambda s: bool(vals := s.values(name)) and not any(
                _equal(v, lit, table) for v in vals)
        if op in ("<", "<=", ">", ">="):
            if lit.integer is None:
                raise FilterError(f"'{op_tok.text}' compares numbers; {lit.text!r} is not a "
                                  "number", lit.column)
            return lambda s: any(_order(v, op, lit) for v in s.values(name))
        if op == "contains":
            return lambda s: any(_contains(v, lit, table) for v in s.values(name))
        try:
            pattern = re.compile(lit.text, re.IGNORECASE)
        except re.error as exc:
            raise FilterError(f"bad regular expression: {exc}", lit.column) from exc
        return lambda s: any(_matches(v, pattern) for v in s.values(name))

    def membership(self, name: str, table: str | None) -> Node:
        brace = self.take("'{'")
        if brace.text != "{":
            raise FilterError(f"expected '{{' after 'in', found {brace.text!r}", brace.column)
        items: list[Literal] = []
        while True:
            tok = self.peek()
            if tok is None:
                raise FilterError(f"missing '}}' for the '{{' at column {brace.column}",
                                  self.end_column())
            if tok.text == "}":
                self.take()
                break
            if tok.text == ",":
                self.take()
                continue
            items.append(self.value("a set member", in_set=True))
        if not items:
            raise FilterError("an empty set matches nothing", brace.column)
        return lambda s: any(_equal(v, lit, table) for v in s.values(name) for lit in items)


def compile_filter(text: str, scope: str = "connection", *,
                   frames: bool = False) -> Filter | None:
    """Compile ``text``; None for an empty filter. Raises FilterError (with a column).

    ``scope`` is ``connection`` (reports) or ``packet``. ``frames``: a connection filter
    may name per-frame fields (the caller collects each connection's frame list)."""
    if not text.strip():
        return None
    parser = _Parser(text, scope, frames)
    node = parser.expr()
    extra = parser.peek()
    if extra is not None:
        hint = " (missing 'and'/'or'?)" if extra.kind != "op" else ""
        raise FilterError(f"unexpected {extra.text!r}{hint}", extra.column)
    return Filter(text, scope, node, frozenset(parser.fields))


def filter_ids(filt: Filter | None, ids: Iterable[int] | None, rows: Iterable[Row]
               ) -> list[Row]:
    """The rows a filter and an id list keep (both optional), in order."""
    wanted = set(ids) if ids is not None else None
    return [r for r in rows if (wanted is None or r.get("id") in wanted)
            and (filt is None or filt(r))]
