"""The per-connection report: the one model every output formats.

Its JSON form is a public contract (see the README): keys may be added, never renamed
or removed without a note there.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import struct
from dataclasses import dataclass, field

from ..eno import SUB_RESUME, GlobalSuboption, SynEno, TepSuboption, tcpcrypt_suboption_kind
from ..fieldspec import value_name
from ..findings import FINDINGS_PER_CODE, Finding, Severity
from ..tcpcrypt.messages import Init1, Init2
from ..wire import (
    AEADS,
    DIALECT_TCPCRYPTD_2016,
    FALLBACK_DESCRIPTIONS,
    RESUME_HALF_LEN,
    TCPCRYPT_TEPS,
    FallbackReason,
    aead_name,
)
from ..words import plural
from .connection import Connection

_PORTS = struct.Struct("!HH")


def community_id(a_ip: bytes, a_port: int, b_ip: bytes, b_port: int) -> str:
    """Community ID v1 of a TCP flow (seed 0), from packed addresses: the specification's
    hash written out, because the ``communityid`` package (the tests' oracle) parses
    address text on every call and cost half of a short connection's record in a SYN
    flood (issue 10, item 26)."""
    if (a_ip, a_port) > (b_ip, b_port):
        a_ip, a_port, b_ip, b_port = b_ip, b_port, a_ip, a_port
    data = b"\x00\x00" + a_ip + b_ip + b"\x06\x00" + _PORTS.pack(a_port, b_port)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode()
SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.NOTE: 2}


def endpoint_text(addr: bytes, port: int) -> str:
    """``ip:port``, IPv6 as ``[addr]:port``."""
    ip = ipaddress.ip_address(addr)
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def suboptions_json(syn: SynEno | None) -> dict | None:
    """The ENO option of a SYN with the spec's field names (the first, when a SYN
    carried several: ``count`` says how many)."""
    if syn is None or not syn.options:
        return None
    option = syn.options[0]
    subs = []
    for sub in option.suboptions:
        if isinstance(sub, GlobalSuboption):
            subs.append({"tcpeno.global": sub.byte, "tcpeno.global.b": int(sub.b),
                         "tcpeno.global.a": int(sub.a), "tcpeno.global.z": sub.z})
        elif isinstance(sub, TepSuboption):
            item: dict = {"tcpeno.tep": sub.tep, "tcpeno.tep.v": int(sub.v),
                          "name": value_name("tep", sub.tep)}
            if sub.data is not None:
                item["tcpeno.tep.data"] = sub.data.hex()
                item["tcpeno.length_byte"] = sub.length_byte
                if sub.tep in TCPCRYPT_TEPS and tcpcrypt_suboption_kind(sub) == SUB_RESUME:
                    item["tcpcrypt.resume.half"] = sub.data[:RESUME_HALF_LEN].hex()
                    item["tcpcrypt.resume.nonce"] = sub.data[RESUME_HALF_LEN:].hex()
            subs.append(item)
    return {"encoding": option.encoding, "kind": option.kind, "raw": option.raw.hex(),
            "malformed": option.malformed, "count": len(syn.options),
            "implicit_global": option.global_suboption is None,
            "b": int(option.b_bit), "suboptions": subs}


def _init_json(init: Init1 | Init2 | None, raw: bytes | None) -> dict | None:
    if raw is None:
        return None
    out: dict = {"length": len(raw)}
    if isinstance(init, Init1 | Init2):
        if isinstance(init, Init1):
            out["sym_ciphers"] = list(init.sym_ciphers)
        else:
            out["sym_cipher"] = init.sym_cipher
        pub = init.pub
        out.update({"nonce": init.nonce.hex(), "pubkey": init.pubkey.hex(),
                    "ignored_len": len(init.ignored), "dialect": init.dialect})
        if pub is not None and pub.length_field is not None:
            out.update({"pubkey_len": pub.length_field,
                        "pubkey_len_reading": pub.length_reading,
                        "pubkey_compressed": pub.compressed})
    return out


@dataclass
class ConnectionReport:
    """Everything the outputs show about one connection."""

    id: int
    a: str
    b: str
    community_id: str
    first_packet: int
    last_packet: int
    start_ns: int
    end_ns: int
    packets: int
    bytes_ab: int
    bytes_ba: int
    state: str
    eno: dict
    tcpcrypt: dict | None
    findings: list[Finding] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    observed: dict[str, list[int]] = field(default_factory=dict)
    """Conformance rules checked and kept, with the packets that showed it (the
    ``conformance`` command's "held" evidence; not part of the JSON record)."""
    suppressed: dict[str, int] = field(default_factory=dict)
    """Findings counted but not listed, by code (beyond ``finding_cap`` of one code)."""
    finding_cap: int = FINDINGS_PER_CODE

    def to_json(self) -> dict:
        """The stable JSON object (see README: JSON output)."""
        out = {
            "id": self.id,
            "a": self.a,
            "b": self.b,
            "community_id": self.community_id,
            "first_packet": self.first_packet,
            "last_packet": self.last_packet,
            "start": self.start_ns / 1e9,
            "duration": (self.end_ns - self.start_ns) / 1e9,
            "packets": self.packets,
            "bytes": {"ab": self.bytes_ab, "ba": self.bytes_ba},
            "state": self.state,
            "eno": self.eno,
            "tcpcrypt": self.tcpcrypt,
            "findings": [f.to_json() for f in self.findings],
            "findings_suppressed": dict(self.suppressed),
        }
        out.update(self.extra)
        return out

    @property
    def worst(self) -> Severity | None:
        """The most serious finding's severity."""
        if not self.findings:
            return None
        return min((f.severity for f in self.findings), key=SEVERITY_ORDER.__getitem__)


def build_report(conn: Connection) -> ConnectionReport:
    """Freeze a finished connection into its report."""
    conn.decide_roles()
    a_ep = conn.x if conn.a_is_x else conn.y
    b_ep = conn.y if conn.a_is_x else conn.x
    a_is_x = conn.a_is_x
    neg = conn.negotiation
    syn_a, syn_b = conn.syn_of(True), conn.syn_of(False)
    encoding = None
    if syn_a is not None and syn_a.eno.options and not conn.legacy:
        encoding = syn_a.eno.options[0].encoding
    reason = neg.reason if neg else FallbackReason.HANDSHAKE_NOT_CAPTURED
    eno = {
        "status": str(neg.status) if neg else "unknown",
        "reason": str(reason) if reason else None,
        "reason_text": FALLBACK_DESCRIPTIONS.get(reason) if reason else None,
        "negotiated_tep": neg.tep if neg and neg.status == "negotiated" else None,
        "negotiated_tep_name": value_name("tep", neg.tep) if neg and neg.tep and
        neg.status == "negotiated" else None,
        "negotiated_tep_byte": neg.tep_byte if neg and neg.status == "negotiated" else None,
        "encoding": encoding,
        "roles": neg.roles if neg else None,
        "simultaneous_open": conn.simultaneous,
        "legacy_tcpcrypt": conn.legacy,
        "syn_a": suboptions_json(syn_a.eno if syn_a else None),
        "syn_b": suboptions_json(syn_b.eno if syn_b else None),
        "detail": neg.detail if neg and neg.detail else None,
        "ack_a_has_eno": conn.ack_eno,
        "packets": {"syn_a": syn_a.packet if syn_a else None,
                    "syn_b": syn_b.packet if syn_b else None,
                    "ack_a": conn.ack_packet},
    }
    tcpcrypt = _tcpcrypt_json(conn, a_is_x)
    _pre_rfc_note(conn, tcpcrypt)
    state = "reset" if conn.rst_packet is not None else (
        "closed" if len(conn.fin) == 2 else ("half-closed" if conn.fin else "open"))
    cid = community_id(a_ep[0], a_ep[1], b_ep[0], b_ep[1])
    suppressed = dict(getattr(conn.findings, "suppressed", {}))
    firsts = getattr(conn.findings, "first_suppressed", {})
    findings = sorted(conn.findings, key=lambda f: (f.packet or 0, SEVERITY_ORDER[f.severity]))
    for code, count in suppressed.items():
        findings.append(Finding(
            Severity.NOTE, "findings-capped",
            f"{plural(count, 'more ' + repr(code) + ' finding')} after the first "
            f"{FINDINGS_PER_CODE} (from packet {firsts.get(code)} on): counted, not listed",
            None, firsts.get(code)))
    return ConnectionReport(
        id=conn.id, a=endpoint_text(*a_ep), b=endpoint_text(*b_ep), community_id=cid,
        first_packet=conn.first_packet, last_packet=conn.last_packet, start_ns=conn.first_ts,
        end_ns=conn.last_ts, packets=conn.packets,
        bytes_ab=conn.bytes_xy if a_is_x else conn.bytes_yx,
        bytes_ba=conn.bytes_yx if a_is_x else conn.bytes_xy,
        state=state, eno=eno, tcpcrypt=tcpcrypt, findings=findings,
        extra=dict(conn.data.get("report_extra", {})), observed=dict(conn.observed),
        suppressed=suppressed)


def _pre_rfc_note(conn: Connection, tcpcrypt: dict | None) -> None:
    """One note on how the pre-RFC dialect differs from the RFCs (digest 2.8)."""
    dialect = tcpcrypt.get("dialect") if tcpcrypt else None
    roles_packet = conn.data.get("pre_rfc_roles")
    resumed = bool(tcpcrypt and tcpcrypt.get("resumed"))
    if dialect == DIALECT_TCPCRYPTD_2016:
        packet = roles_packet or min((p.init_packet for p in conn.tcpcrypt.values()
                                      if p is not None and p.init_packet), default=None)
        how = ("resumes a cached session the 2016 way: a v = 1 suboption carrying the "
               "session's identifier, answered by the identifier byte alone, then frames "
               "without Init messages (RFC 8548 §3.5 instead sends resume[i] halves and "
               "nonces, and under RFC 8547 §4.5 this shape names no valid TEP)"
               if resumed else
               "sym_cipher identifiers are two bytes and public keys compressed points "
               "(RFC 8548 §4.1, §5)")
        conn.add(Severity.NOTE, "pre-rfc-dialect",
                 "the 2016 tcpcryptd dialect (drafts eno-03 / tcpcrypt-02), judged by its own "
                 "rules; under the RFCs it differs: ENO must use kind 69, not 253/ExID "
                 "(RFC 8547 §11); a SYN-ACK whose b bit is 0 (no global suboption, or only "
                 "the application-aware bit) means a role conflict (RFC 8547 §4.3); it "
                 f"{how}", packet)
    elif roles_packet is not None:
        conn.add(Severity.NOTE, "pre-rfc-dialect",
                 "pre-RFC experimental ENO: the SYN-ACK's b bit is 0 (no global suboption, "
                 "or only the application-aware bit), so under RFC 8547 §4.3 both hosts "
                 "have b = 0 (a role conflict); the pre-RFC drafts made the passive opener "
                 "host B, and the handshake is judged by them", roles_packet)


def _tcpcrypt_json(conn: Connection, a_is_x: bool) -> dict | None:
    ab = conn.tcpcrypt.get(a_is_x)
    ba = conn.tcpcrypt.get(not a_is_x)
    neg = conn.negotiation
    running = [p for p in (ab, ba) if p is not None and not p.plain and p.mode != "detect"]
    if not running:
        return None
    if neg is not None and neg.status == "fallback":
        # A ran tcpcrypt on its own (e.g. a middlebox stripped ENO from its ACK): say so,
        # but tcpcrypt did not run on this connection.
        conn.add(Severity.WARNING, "tcpcrypt-after-fallback",
                 "A sent a tcpcrypt Init1 although ENO fell back: A believes ENO succeeded "
                 "(was ENO stripped from its ACK on the way?)", ab.init_packet if ab else None)
        return None
    aead = None
    init1 = ab.init if ab else None
    init2 = ba.init if ba else None
    for parser in (ab, ba):
        if parser is not None and parser.init is not None:
            conn.held("tcpcrypt-bad-magic", parser.init_packet)
    if isinstance(init2, Init2):
        aead = init2.sym_cipher
        if isinstance(init1, Init1) and aead not in init1.sym_ciphers:
            conn.add(Severity.ERROR, "init2-cipher-not-offered",
                     f"B chose {aead_name(aead)} (0x{aead:04x}), which A's Init1 did not "
                     "offer (A must abort)", ba.init_packet if ba else None,
                     rfc="RFC 8548 §3.3")
        elif isinstance(init1, Init1):
            conn.held("init2-cipher-not-offered", ba.init_packet if ba else None)
    tep = (neg.tep if neg and neg.tep else None) or (ab.tep if ab else None) or (
        ba.tep if ba else None)
    # A 2016-style resumption that B refused goes on with Init messages after all.
    resumed = bool(neg and neg.resumed) and not any(
        p is not None and p.init is not None for p in (ab, ba))
    decrypted = conn.data.get("decrypted")
    dialects = {p.dialect for p in (ab, ba) if p is not None and p.dialect}
    if resumed and neg is not None and neg.pre_rfc_resume:
        dialects = {DIALECT_TCPCRYPTD_2016}
    aead = aead if aead is not None else conn.data.get("aead")
    return {
        "resumed": resumed,
        "tep": tep,
        "dialect": dialects.pop() if len(dialects) == 1 else (
            "mixed" if dialects else ("rfc8548" if resumed else None)),
        "aead": aead,
        "aead_name": value_name("aead", aead) if aead in AEADS else None,
        "frames": {"ab": ab.frames + ab.incomplete_frames if ab else 0,
                   "ba": ba.frames + ba.incomplete_frames if ba else 0},
        "rekeys": {"ab": ab.rekeys if ab else 0, "ba": ba.rekeys if ba else 0},
        "incomplete_frames": {"ab": ab.incomplete_frames if ab else 0,
                              "ba": ba.incomplete_frames if ba else 0},
        "init1": _init_json(init1, ab.init_raw if ab else None),
        "init2": _init_json(init2, ba.init_raw if ba else None),
        "keys_from": conn.data.get("keys_from"),
        "session_id": conn.data.get("session_id"),
        "nonce_offset_base": conn.data.get("nonce_offset_base"),
        "decrypted": decrypted,
        "resumes": conn.data.get("resumes"),
        "resume_index": conn.data.get("resume_index"),
        "aead_probed": bool(conn.data.get("aead_probed")),
    }
