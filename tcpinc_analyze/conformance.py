"""Conformance: which rules of RFC 8547/8548 a capture shows kept, broken or unseen.

Every rule a capture can show (digest section 5) is one ``Rule`` with a stable code,
its RFC section and requirement level. The analyzer reports a broken rule as a finding
carrying that code and section; this module turns a connection's report into a
checklist: each rule held (with the packets that showed it), violated (with the
findings), or not observable in this capture, and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .analysis.report import ConnectionReport

MUST = "MUST"
SHOULD = "SHOULD"
HELD = "held"
VIOLATED = "violated"
NOT_OBSERVABLE = "not-observable"


@dataclass(frozen=True)
class Rule:
    """One rule a capture can show kept or broken."""

    code: str
    rfc: str
    level: str
    text: str
    observable: Callable[[ConnectionReport], str | None]
    """None when the capture lets the rule be judged, else why it does not."""


def _tc(r: ConnectionReport) -> dict:
    return r.tcpcrypt or {}


def _handshake(r: ConnectionReport) -> str | None:
    if r.eno.get("status") == "unknown" and r.eno.get("reason") == "handshake-not-captured":
        return "the handshake is not in the capture"
    return None


def _syn_eno(r: ConnectionReport) -> str | None:
    return _handshake(r) or (None if r.eno.get("syn_a") or r.eno.get("syn_b")
                             else "no SYN carries ENO")


def _observed(code: str, why: str) -> Callable[[ConnectionReport], str | None]:
    def check(r: ConnectionReport) -> str | None:
        return None if r.observed.get(code) else why
    return check


def _tcpcrypt(r: ConnectionReport) -> str | None:
    if not r.tcpcrypt:
        return "tcpcrypt did not run on this connection"
    return None


def _init(r: ConnectionReport) -> str | None:
    tc = _tc(r)
    if not tc:
        return "tcpcrypt did not run on this connection"
    if tc.get("resumed"):
        return "a resumed session has no Init messages"
    if not tc.get("init1") and not tc.get("init2"):
        return "no Init message in the capture"
    return None


def _nist(r: ConnectionReport) -> str | None:
    why = _init(r)
    if why:
        return why
    if _tc(r).get("tep") not in (0x21, 0x22):
        return "the TEP's keys have one encoding only (X25519/X448)"
    return None


def _frames(r: ConnectionReport) -> str | None:
    tc = _tc(r)
    if not tc:
        return "tcpcrypt did not run on this connection"
    if not (tc.get("frames") or {}).get("ab") and not (tc.get("frames") or {}).get("ba"):
        return "no encryption frame in the capture"
    return None


def _decrypted(r: ConnectionReport) -> str | None:
    why = _frames(r)
    if why:
        return why
    dec = _tc(r).get("decrypted")
    if not dec:
        return "needs keys (no key-log entry for this connection)"
    if not any(dec[d]["ok"] for d in ("ab", "ba")):
        return "no frame decrypted with the logged keys"
    return None


def _fin(r: ConnectionReport) -> str | None:
    why = _decrypted(r)
    if why:
        return why
    if r.state not in ("closed", "half-closed"):
        return "no TCP FIN in the capture"
    return None


def _finp(r: ConnectionReport) -> str | None:
    why = _decrypted(r)
    if why:
        return why
    dec = _tc(r)["decrypted"]
    if not any(dec[d].get("fin") for d in ("ab", "ba")):
        return "no frame with FINp was decrypted"
    return None


def _retransmitted(r: ConnectionReport) -> str | None:
    why = _tcpcrypt(r)
    if why:
        return why
    if not any(f.code in ("tcp-retransmission", "retransmission-conflict")
               for f in r.findings):
        return "no retransmitted bytes in the capture"
    return None


def _nonsyn_eno(r: ConnectionReport) -> str | None:
    why = _tcpcrypt(r)
    if why:
        return why
    return None if r.observed.get("eno-nonsyn-contents") else "no non-SYN ENO option seen"


def _resumption(r: ConnectionReport) -> str | None:
    why = _handshake(r)
    if why:
        return why
    for side in ("syn_a", "syn_b"):
        for sub in (r.eno.get(side) or {}).get("suboptions", []):
            if "tcpcrypt.resume.half" in sub or len(sub.get("tcpeno.tep.data", "")) > 34:
                return None
    return "no resumption suboption in the SYNs"


def _always(r: ConnectionReport) -> str | None:
    return None


R47 = "RFC 8547"
R48 = "RFC 8548"
RULES: tuple[Rule, ...] = (
    Rule("eno-multiple-syn", f"{R47} §4.1", MUST, "a SYN carries at most one ENO option",
         _syn_eno),
    Rule("eno-nonsyn-contents", f"{R47} §4.1", MUST,
         "a non-SYN-form ENO option is empty when the TEP gives its contents no meaning",
         _nonsyn_eno),
    Rule("eno-global-reserved", f"{R47} §4.2", MUST, "the z bits are sent as zero", _syn_eno),
    Rule("eno-global-repeated", f"{R47} §4.2", MUST,
         "a SYN has at most one global suboption", _syn_eno),
    Rule("eno-synack-no-explicit-b", f"{R47} §4.2, §4.3", MUST,
         "a passive opener's SYN-ACK ENO option has an explicit global suboption with b = 1",
         _observed("synack-eno", "no passive opener's SYN-ACK with ENO")),
    Rule("eno-length-byte", f"{R47} §4.4", MUST,
         "a length byte is followed by a TEP with v = 1 and its data fits the option",
         _observed("eno-length-byte", "no SYN-form ENO option decoded")),
    Rule("eno-synack-multiple-teps", f"{R47} §4.5", SHOULD,
         "a passive opener puts one (valid) TEP in its SYN-ACK",
         _observed("synack-eno", "no passive opener's SYN-ACK with ENO")),
    Rule("eno-vacuous-reply", f"{R47} §4.6", MUST,
         "a vacuous SYN-ACK option only answers a SYN that had ENO",
         _observed("synack-eno", "no passive opener's SYN-ACK with ENO")),
    Rule("eno-ack-missing", f"{R47} §4.6", MUST,
         "A's third segment carries ENO when the SYN-ACK had a valid, compatible option",
         _observed("eno-ack-missing", "A's third segment was not checked (no valid "
                   "SYN-ACK option, or not captured)")),
    Rule("eno-option-missing", f"{R47} §4.6", MUST,
         "every segment carries ENO until its sender receives a non-SYN segment",
         _observed("eno-option-missing", "no further segment sent before a non-SYN one "
                   "was received")),
    Rule("eno-after-fallback", f"{R47} §4.6", MUST,
         "after falling back, a host sends no ENO option",
         _observed("eno-after-fallback", "no host fell back before sending more segments")),
    Rule("eno-syn-changed", f"{R47} §4.6", MUST,
         "SYN-form options do not change on retransmission or in a simultaneous open's "
         "SYN-ACK", _observed("eno-syn-changed", "no SYN retransmission or simultaneous "
                              "open in the capture")),
    Rule("eno-syn-data", f"{R47} §4.7", MUST,
         "a SYN with ENO carries no data its SYN TEP does not define (nor a non-empty TFO "
         "option), and such data is not acknowledged", _observed(
             "eno-syn-data", "no SYN with ENO in the capture")),
    Rule("eno-both-encodings", f"{R47} §11", MUST,
         "a segment never carries both option 69 and option 253 with ExID 0x454E", _syn_eno),
    Rule("tcpcrypt-bad-magic", f"{R47} §4.6", MUST,
         "once ENO negotiated tcpcrypt, each direction's data starts with its Init message "
         "(no plaintext application data)",
         _observed("tcpcrypt-bad-magic", "no direction's first data bytes in the capture")),
    Rule("init-no-psh", f"{R48} §3.3", MUST,
         "the segment holding an Init message's last byte has PSH",
         _observed("init-no-psh", "no Init message's last segment in the capture")),
    Rule("init2-cipher-not-offered", f"{R48} §3.3", MUST,
         "Init2's sym_cipher is one Init1 offered", _observed(
             "init2-cipher-not-offered", "Init1 and Init2 are not both in the capture")),
    Rule("init-ignored-nonempty", f"{R48} §4.1", MUST,
         "senders leave the ignored field of Init1/Init2 empty", _init),
    Rule("pubkey-uncompressed", f"{R48} §5", MUST,
         "P-256/P-521 public keys are compressed points", _nist),
    Rule("pubkey-invalid", f"{R48} §5", MUST,
         "public keys are valid and give a non-zero shared secret", _init),
    Rule("frame-reserved-bits", f"{R48} §4.2", MUST, "frame cres bits are sent as zero",
         _frames),
    Rule("plaintext-reserved-bits", f"{R48} §4.2.1", MUST,
         "plaintext fres bits are sent as zero", _decrypted),
    Rule("frame-tag-failed", f"{R48} §3.6", MUST, "every frame authenticates", _decrypted),
    Rule("retransmission-conflict", f"{R48} §3.6", MUST,
         "retransmitted segments carry the same bytes", _retransmitted),
    Rule("fin-without-finp", f"{R48} §3.7", MUST,
         "the last frame before a TCP FIN has FINp", _fin),
    Rule("frames-after-finp", f"{R48} §3.7", MUST, "no frame follows the FINp frame", _finp),
    Rule("rekey-not-answered", f"{R48} §3.8", MUST,
         "a host that receives a rekey taking the peer past its own generation sends a "
         "rekey frame at once", _observed("rekey-not-answered", "no rekey that needed an "
                                          "answer was acknowledged")),
    Rule("rekey-empty-repeated", f"{R48} §3.8", MUST,
         "no second empty rekey while the first is unanswered",
         _observed("rekey-empty-repeated", "no empty rekey frame")),
    Rule("resume-nonce-too-long", f"{R48} §3.5", MUST,
         "a resumption nonce is at most 8 bytes", _resumption),
    Rule("resume-duplicate-suboption", f"{R48} §3.5", MUST,
         "at most one resumption suboption per TEP in a SYN", _resumption),
    Rule("resume-unsolicited", f"{R48} §3.5", MUST,
         "a passive opener agrees to resume only when A proposed resumption with that TEP",
         _observed("resume-unsolicited", "no resumption suboption in a SYN-ACK")),
    Rule("resume-multiple-suboptions", f"{R48} §3.5", SHOULD,
         "at most one resumption suboption in a SYN", _resumption),
    Rule("resume-identifier-reused", f"{R48} §3.5", MUST,
         "ss[i] secures one connection; hosts propose the lowest unused i",
         _observed("resume-identifier-reused", "no resumption proposed")),
)
RULE_CODES = {rule.code for rule in RULES}


@dataclass
class RuleResult:
    """One rule's verdict for one connection."""

    rule: Rule
    status: str
    packets: list[int]
    reason: str | None
    messages: list[str]

    def to_json(self) -> dict:
        """The JSON form (stable keys)."""
        return {"code": self.rule.code, "rfc": self.rule.rfc, "level": self.rule.level,
                "rule": self.rule.text, "status": self.status, "packets": self.packets,
                "reason": self.reason, "messages": self.messages}


def check(report: ConnectionReport) -> list[RuleResult]:
    """Every rule's verdict for one connection."""
    out = []
    for rule in RULES:
        broken = [f for f in report.findings if f.code == rule.code and f.rfc]
        if broken:
            packets = sorted({f.packet for f in broken if f.packet is not None})
            out.append(RuleResult(rule, VIOLATED, packets, None,
                                  [f.message for f in broken]))
            continue
        reason = rule.observable(report)
        if reason is not None:
            out.append(RuleResult(rule, NOT_OBSERVABLE, [], reason, []))
        else:
            packets = report.observed.get(rule.code, [])
            out.append(RuleResult(rule, HELD, list(packets), None, []))
    return out


def violations(results: list[RuleResult], *, strict: bool = False) -> int:
    """How many rules are violated (MUST rules; SHOULD too when ``strict``)."""
    return sum(1 for r in results if r.status == VIOLATED
               and (strict or r.rule.level == MUST))
