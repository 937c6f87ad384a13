"""TCP-ENO option codec and negotiation (RFC 8547, digest section 1).

Pure functions over bytes: the synthesizer encodes with them, the analyzer decodes
with them, and bad input becomes findings rather than exceptions. The negotiation
follows §4.3-§4.6 rule by rule; tcpcrypt's rules for its own suboption data (RFC 8548
§3.2, §3.5) decide which tcpcrypt suboptions are valid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .findings import Finding, Severity
from .wire import (
    ENO_EXID,
    ENO_EXPERIMENTAL_KIND,
    ENO_EXPERIMENTAL_KINDS,
    ENO_KIND,
    GLOBAL_A,
    GLOBAL_B,
    GLOBAL_MAX,
    GLOBAL_Z_MASK,
    GLT_MASK,
    IMPLICIT_GLOBAL,
    LENGTH_BYTE_DATA_MAX,
    RESUME_DATA_MAX,
    RESUME_DATA_MIN,
    TCPCRYPT_TEPS,
    TEP_MIN,
    V_BIT,
    EnoStatus,
    FallbackReason,
    session_id_first_byte,
)

ENCODING_RFC = "rfc"
ENCODING_EXPERIMENTAL = "experimental"

RFC8547 = "RFC 8547"
RFC8548 = "RFC 8548"


@dataclass(frozen=True)
class GlobalSuboption:
    """The one-byte global suboption ``0 0 0 z1 z2 z3 a b`` (RFC 8547 §4.2)."""

    byte: int

    @property
    def b(self) -> bool:
        """Passive role bit: 1 for passive openers; the host with b = 0 is host A."""
        return bool(self.byte & GLOBAL_B)

    @property
    def a(self) -> bool:
        """Application-aware bit."""
        return bool(self.byte & GLOBAL_A)

    @property
    def z(self) -> int:
        """The reserved z bits (z1 z2 z3), which must be sent as zero."""
        return (self.byte & GLOBAL_Z_MASK) >> 2

    @staticmethod
    def make(*, b: bool = False, a: bool = False, z: int = 0) -> GlobalSuboption:
        """Build the byte from its fields (the synthesizer's view)."""
        return GlobalSuboption((z & 7) << 2 | (GLOBAL_A if a else 0) | (GLOBAL_B if b else 0))


@dataclass(frozen=True)
class TepSuboption:
    """A TEP identifier suboption; v = 1 exactly when ``data`` is not None."""

    tep: int
    data: bytes | None = None
    length_byte: bool = False
    """The data was announced by a ``100nnnnn`` length byte (else it runs to the end)."""

    @property
    def v(self) -> bool:
        """The suboption's v bit."""
        return self.data is not None

    @property
    def byte(self) -> int:
        """The suboption's first byte as sent: TEP identifier with the v bit."""
        return session_id_first_byte(self.tep, self.v)


Suboption = GlobalSuboption | TepSuboption


@dataclass(frozen=True)
class EnoOption:
    """One decoded ENO option, whole, as it appeared in a segment."""

    encoding: str
    kind: int
    raw: bytes
    """The option bytes as on the wire: kind, length, [ExID,] contents."""
    suboptions: tuple[Suboption, ...]
    malformed: bool = False
    findings: tuple[Finding, ...] = field(default=())

    @property
    def contents(self) -> bytes:
        """The suboption bytes, without kind, length and ExID."""
        return self.raw[4:] if self.encoding == ENCODING_EXPERIMENTAL else self.raw[2:]

    @property
    def global_suboption(self) -> GlobalSuboption | None:
        """The global suboption that counts: the first one (§4.2), if any."""
        for sub in self.suboptions:
            if isinstance(sub, GlobalSuboption):
                return sub
        return None

    @property
    def effective_global(self) -> GlobalSuboption:
        """The explicit global suboption, else the implicit 0x00 (§4.2)."""
        return self.global_suboption or GlobalSuboption(IMPLICIT_GLOBAL)

    @property
    def teps(self) -> list[TepSuboption]:
        """TEP suboptions in wire order."""
        return [s for s in self.suboptions if isinstance(s, TepSuboption)]

    @property
    def b_bit(self) -> bool:
        """This option's (explicit or implicit) passive role bit."""
        return self.effective_global.b

    @property
    def vacuous(self) -> bool:
        """No TEP suboption at all (§4.6)."""
        return not self.teps


def encode_suboptions(suboptions: Sequence[Suboption]) -> bytes:
    """Encode suboptions; a TEP with data and no length byte must be the last one."""
    out = bytearray()
    for index, sub in enumerate(suboptions):
        if isinstance(sub, GlobalSuboption):
            if not 0 <= sub.byte <= GLOBAL_MAX:
                raise ValueError(f"global suboption byte 0x{sub.byte:02x} out of range")
            out.append(sub.byte)
            continue
        if not TEP_MIN <= sub.tep <= GLT_MASK:
            raise ValueError(f"TEP identifier 0x{sub.tep:02x} out of range 0x20-0x7f")
        if sub.data is None:
            out.append(sub.tep)
        elif sub.length_byte:
            if not 1 <= len(sub.data) <= LENGTH_BYTE_DATA_MAX:
                raise ValueError("a length byte announces 1 to 32 bytes of data")
            out.append(V_BIT | (len(sub.data) - 1))
            out.append(V_BIT | sub.tep)
            out += sub.data
        else:
            if index != len(suboptions) - 1:
                raise ValueError("a TEP with data but no length byte must come last")
            out.append(V_BIT | sub.tep)
            out += sub.data
    return bytes(out)


def encode_option(suboptions: Sequence[Suboption], *, encoding: str = ENCODING_RFC,
                  kind: int = ENO_EXPERIMENTAL_KIND) -> bytes:
    """Encode a whole ENO option (kind 69, or kind 253/254 + ExID 0x454E)."""
    contents = encode_suboptions(suboptions)
    if encoding == ENCODING_RFC:
        return bytes((ENO_KIND, len(contents) + 2)) + contents
    return bytes((kind, len(contents) + 4)) + ENO_EXID.to_bytes(2, "big") + contents


def encode_nonsyn_option(encoding: str = ENCODING_RFC, kind: int = ENO_EXPERIMENTAL_KIND,
                         contents: bytes = b"") -> bytes:
    """A non-SYN-form ENO option; tcpcrypt gives its contents no meaning, so they are
    sent empty (RFC 8547 §4.1): ``45 02``."""
    if encoding == ENCODING_RFC:
        return bytes((ENO_KIND, len(contents) + 2)) + contents
    return bytes((kind, len(contents) + 4)) + ENO_EXID.to_bytes(2, "big") + contents


def parse_suboptions(contents: bytes, base: int = 0
                     ) -> tuple[tuple[Suboption, ...], list[Finding], bool]:
    """Decode SYN-form contents (§4.1, §4.4). Returns (suboptions, findings, malformed).

    ``base`` is the offset of ``contents`` inside the option, so findings point at the
    exact byte. A malformed option is ignored and makes ENO fail (§4.4).
    """
    subs: list[Suboption] = []
    findings: list[Finding] = []
    globals_seen = 0
    pos = 0
    n = len(contents)
    while pos < n:
        byte = contents[pos]
        if byte & V_BIT == 0:
            if byte <= GLOBAL_MAX:
                glob = GlobalSuboption(byte)
                globals_seen += 1
                if globals_seen > 1:
                    findings.append(Finding(
                        Severity.WARNING, "eno-global-repeated",
                        f"a second global suboption 0x{byte:02x}: a SYN must carry at most "
                        "one; receivers ignore all but the first", base + pos,
                        rfc=f"{RFC8547} §4.2"))
                elif glob.z:
                    findings.append(Finding(
                        Severity.WARNING, "eno-global-reserved",
                        f"global suboption 0x{byte:02x} sets reserved z bits (must be sent "
                        "as zero, ignored on receipt)", base + pos, rfc=f"{RFC8547} §4.2"))
                subs.append(glob)
            else:
                subs.append(TepSuboption(byte))
            pos += 1
            continue
        glt = byte & GLT_MASK
        if glt > GLOBAL_MAX:
            subs.append(TepSuboption(glt, bytes(contents[pos + 1:])))
            pos = n
            continue
        data_len = glt + 1
        if pos + 1 >= n:
            findings.append(Finding(Severity.ERROR, "eno-length-byte",
                                    f"length byte 0x{byte:02x} is the option's last byte: its "
                                    f"{data_len} data bytes would run past the end",
                                    base + pos, rfc=f"{RFC8547} §4.4"))
            return tuple(subs), findings, True
        tep_byte = contents[pos + 1]
        if tep_byte < 0xA0:
            findings.append(Finding(Severity.ERROR, "eno-length-byte",
                                    f"length byte 0x{byte:02x} is followed by 0x{tep_byte:02x}: "
                                    "expected a TEP identifier with v = 1 (0xa0-0xff)",
                                    base + pos + 1, rfc=f"{RFC8547} §4.4"))
            return tuple(subs), findings, True
        end = pos + 2 + data_len
        if end > n:
            findings.append(Finding(Severity.ERROR, "eno-length-byte",
                                    f"length byte 0x{byte:02x} announces {data_len} data bytes "
                                    f"but only {n - pos - 2} remain in the option", base + pos,
                                    rfc=f"{RFC8547} §4.4"))
            return tuple(subs), findings, True
        subs.append(TepSuboption(tep_byte & GLT_MASK, bytes(contents[pos + 2:end]), True))
        pos = end
    return tuple(subs), findings, False


def decode_option(kind: int, data: bytes, offset: int = 0) -> EnoOption | None:
    """Decode an option whose kind and data (bytes after the length byte) are known.

    Returns None when the option is not ENO at all (an experimental option with
    another ExID). ``offset`` is where the option's kind byte sits, for findings.
    """
    raw = bytes((kind, (len(data) + 2) & 0xFF)) + bytes(data)
    if kind == ENO_KIND:
        subs, findings, malformed = parse_suboptions(data, offset + 2)
        return EnoOption(ENCODING_RFC, kind, raw, subs, malformed, tuple(findings))
    if kind in ENO_EXPERIMENTAL_KINDS:
        if len(data) < 2 or int.from_bytes(data[:2], "big") != ENO_EXID:
            return None
        subs, findings, malformed = parse_suboptions(data[2:], offset + 4)
        return EnoOption(ENCODING_EXPERIMENTAL, kind, raw, subs, malformed, tuple(findings))
    return None


# ------------------------------------------------------------------------- negotiation

SUB_FRESH = "fresh"
SUB_RESUME = "resume"
SUB_INVALID = "invalid"


def tcpcrypt_suboption_kind(sub: TepSuboption) -> str:
    """What a tcpcrypt TEP suboption asks for (RFC 8548 §3.2, §3.5).

    v = 0, or v = 1 with fewer than 9 data bytes: fresh key agreement ("MUST behave as
    if the same TEP had been sent with v = 0"); 9..17 bytes: resumption (a 9-byte
    identifier half and a 0..8-byte nonce); more: invalid (the nonce is at most 8).
    """
    if sub.data is None or len(sub.data) < RESUME_DATA_MIN:
        return SUB_FRESH
    if len(sub.data) <= RESUME_DATA_MAX:
        return SUB_RESUME
    return SUB_INVALID


@dataclass(frozen=True)
class SynEno:
    """The ENO options one SYN segment carried (normally zero or one)."""

    options: tuple[EnoOption, ...] = ()
    packet: int | None = None

    @property
    def option(self) -> EnoOption | None:
        """The option that counts: none when the SYN carried none or several (§4.1)."""
        return self.options[0] if len(self.options) == 1 else None

    @property
    def present(self) -> bool:
        """At least one ENO option was in the segment."""
        return bool(self.options)

    @property
    def multiple(self) -> bool:
        """More than one ENO option: the receiver behaves as if there were none."""
        return len(self.options) > 1


def _suboptions_for(option: EnoOption, tep: int) -> list[TepSuboption]:
    return [t for t in option.teps if t.tep == tep]


def tep_valid(syn_a: EnoOption, syn_b: EnoOption, tep: int) -> bool:
    """Whether ``tep`` is valid for the connection (RFC 8547 §4.5 conditions 1-3).

    1. both sides sent a suboption for it; 2. its data is valid for the TEP; 3. any
    repetition in one option is defined by the TEP. For tcpcrypt's TEPs: data of more
    than 17 bytes is invalid, tcpcrypt defines no repetition, and B's resumption
    suboption is valid only when A proposed resumption with that TEP (a host must not
    agree to resume unless asked, §3.5). Other TEPs' data rules are unknown here and
    taken as valid.
    """
    a_subs, b_subs = _suboptions_for(syn_a, tep), _suboptions_for(syn_b, tep)
    if not a_subs or not b_subs:
        return False
    if tep not in TCPCRYPT_TEPS:
        return True
    if len(a_subs) > 1 or len(b_subs) > 1:
        return False
    kind_a, kind_b = tcpcrypt_suboption_kind(a_subs[0]), tcpcrypt_suboption_kind(b_subs[0])
    if SUB_INVALID in (kind_a, kind_b):
        return False
    return not (kind_b == SUB_RESUME and kind_a != SUB_RESUME)


def choose_tep(syn_a: EnoOption, syn_b: EnoOption) -> TepSuboption | None:
    """The negotiated TEP: the last valid TEP identifier in B's SYN-form option (§4.5)."""
    chosen = None
    for sub in syn_b.teps:
        if tep_valid(syn_a, syn_b, sub.tep):
            chosen = sub
    return chosen


ROLES_B_BIT = "b-bit"
"""Roles came from the b bits (RFC 8547 §4.3)."""
ROLES_OPENER = "opener"
"""ENO established no roles: the active opener is called A."""
ROLES_PRE_RFC = "pre-rfc"
"""Pre-RFC experimental ENO without a global suboption in the SYN-ACK: the 2016 drafts
made the passive opener B without it; the RFC would call it a role conflict."""


@dataclass(frozen=True)
class Negotiation:
    """The ENO outcome of one connection."""

    status: EnoStatus
    reason: FallbackReason | None = None
    tep: int | None = None
    tep_byte: int | None = None
    """The byte B sent for the negotiated TEP, v bit included: the session ID's first."""
    resumed: bool = False
    """B's and A's suboptions for the negotiated TEP are both resumption suboptions."""
    pre_rfc_resume: bool = False
    """The 2016 tcpcryptd's session resumption (see ``pre_rfc_resumption``): the streams
    start with frames, unless B refused and an Init message comes after all."""
    a_is_first: bool = True
    """Host A sent ``first`` (the active opener's SYN, or the first SYN of a
    simultaneous open); False when the b bits made the other host A."""
    roles: str = ROLES_OPENER
    detail: str = ""


def negotiate(first: SynEno | None, second: SynEno | None, ack_has_eno: bool | None, *,
              simultaneous: bool = False, handshake_seen: bool = True) -> Negotiation:
    """Decide the ENO outcome with exactly one reason (RFC 8547 §4.1-§4.6).

    ``first`` is the active opener's SYN (in a simultaneous open, the first bare SYN),
    ``second`` the passive opener's SYN-ACK (the other bare SYN). ``ack_has_eno``: did
    the first ACK segment that host A's peer received carry ENO (A's third segment in a
    three-way handshake; both SYN-ACKs in a simultaneous open)? None when not captured.
    """
    if not handshake_seen:
        return Negotiation(EnoStatus.UNKNOWN, FallbackReason.HANDSHAKE_NOT_CAPTURED)
    first = first or SynEno()
    second = second or SynEno()
    if not first.present and (not simultaneous or not second.present):
        return Negotiation(EnoStatus.ABSENT, FallbackReason.ABSENT)
    for which, syn in (("A's SYN" if not simultaneous else "the first SYN", first),
                       ("B's SYN-ACK" if not simultaneous else "the second SYN", second)):
        if syn.multiple:
            return Negotiation(EnoStatus.FALLBACK, FallbackReason.MULTIPLE_ENO_OPTIONS,
                               detail=f"in {which}")
    for which, syn in (("A's SYN" if not simultaneous else "the first SYN", first),
                       ("B's SYN-ACK" if not simultaneous else "the second SYN", second)):
        if syn.option is not None and syn.option.malformed:
            return Negotiation(EnoStatus.FALLBACK, FallbackReason.MALFORMED_ENO,
                               detail=f"in {which}")
    opt_first, opt_second = first.option, second.option
    if opt_first is None or opt_second is None:
        return Negotiation(EnoStatus.FALLBACK, FallbackReason.SYNACK_WITHOUT_ENO,
                           a_is_first=opt_first is not None,
                           detail="" if not simultaneous else "one SYN without ENO")
    roles = ROLES_B_BIT
    if opt_first.b_bit == opt_second.b_bit:
        if pre_rfc_roles(opt_first, opt_second, simultaneous):
            roles = ROLES_PRE_RFC
        else:
            return Negotiation(EnoStatus.FALLBACK, FallbackReason.ROLE_CONFLICT,
                               detail=f"both hosts sent b = {int(opt_first.b_bit)}")
    a_is_first = roles == ROLES_PRE_RFC or not opt_first.b_bit
    syn_a, syn_b = (opt_first, opt_second) if a_is_first else (opt_second, opt_first)
    pre_resume = pre_rfc_resumption(syn_a, syn_b) if roles == ROLES_PRE_RFC else None
    chosen = pre_resume or choose_tep(syn_a, syn_b)
    if chosen is None:
        detail = "vacuous ENO option" if syn_a.vacuous or syn_b.vacuous else ""
        return Negotiation(EnoStatus.FALLBACK, FallbackReason.NO_COMMON_TEP,
                           a_is_first=a_is_first, roles=roles, detail=detail)
    resumed = pre_resume is not None or (
        chosen.tep in TCPCRYPT_TEPS and tcpcrypt_suboption_kind(chosen) == SUB_RESUME)
    common = {"tep": chosen.tep, "tep_byte": chosen.byte, "resumed": resumed,
              "a_is_first": a_is_first, "roles": roles,
              "pre_rfc_resume": pre_resume is not None}
    if ack_has_eno is None:
        return Negotiation(EnoStatus.UNKNOWN, FallbackReason.HANDSHAKE_NOT_CAPTURED,
                           detail="A's first non-SYN segment not captured", **common)
    if not ack_has_eno:
        return Negotiation(EnoStatus.FALLBACK, FallbackReason.ACK_WITHOUT_ENO,
                           a_is_first=a_is_first, roles=roles)
    return Negotiation(EnoStatus.NEGOTIATED, None, **common)


def pre_rfc_roles(first: EnoOption, second: EnoOption, simultaneous: bool) -> bool:
    """Whether a b-bit tie is the pre-RFC dialect's normal handshake (digest 2.8): both
    options in the experimental encoding, a three-way handshake, and a SYN-ACK whose b is
    0 (the 2016 drafts had no role bit: the daemon's SYN-ACK has no global suboption, or
    only its application-aware byte 0x02), so the passive opener is B."""
    return (not simultaneous and first.encoding == ENCODING_EXPERIMENTAL
            and second.encoding == ENCODING_EXPERIMENTAL and not first.b_bit
            and not second.b_bit)


def pre_rfc_resumption(syn_a: EnoOption, syn_b: EnoOption) -> TepSuboption | None:
    """The 2016 tcpcryptd's session resumption, recognised by its shape.

    The daemon's SYN lists its TEPs and appends a suboption with v = 1 carrying the
    cached session's identifier; a passive opener that has the session answers with
    that suboption's identifier byte alone (no data), and both streams then start with
    frames, no Init messages. Under RFC 8547 the repeated or unknown identifier makes
    no TEP valid, so this is judged only in the pre-RFC dialect. Returns B's answering
    suboption (the session ID byte), or None.
    """
    offers = {sub.tep for sub in syn_a.teps if sub.data}
    for sub in reversed(syn_b.teps):
        if sub.tep in offers and not sub.data:
            return sub
    return None
