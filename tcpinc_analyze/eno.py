"""TCP-ENO option codec and negotiation (RFC 8547, spec section 1).

Pure functions over bytes: the synthesizer encodes with them, the analyzer decodes
with them, and bad input becomes findings rather than exceptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .findings import Finding, Severity
from .wire import (
    ENO_EXID,
    ENO_EXPERIMENTAL_KINDS,
    ENO_KIND,
    GENERAL_AA_MASK,
    GENERAL_B,
    GENERAL_MAX,
    GENERAL_ZZ_MASK,
    GLT_MASK,
    LENGTH_BYTE_DATA_MAX,
    V_BIT,
    EnoStatus,
    FallbackReason,
)

ENCODING_RFC = "rfc"
ENCODING_EXPERIMENTAL = "experimental"


@dataclass(frozen=True)
class GeneralSuboption:
    """The one-byte general suboption ``000zzaab``."""

    cs: int

    @property
    def b(self) -> bool:
        """Passive-role bit: the sender insists on being host B."""
        return bool(self.cs & GENERAL_B)

    @property
    def aa(self) -> int:
        """Application-aware bits (0 not aware, 1 aware, 2 reserved, 3 mandatory)."""
        return (self.cs & GENERAL_AA_MASK) >> 1

    @property
    def zz(self) -> int:
        """Reserved bits that must be zero."""
        return (self.cs & GENERAL_ZZ_MASK) >> 3

    @staticmethod
    def make(*, b: bool = False, aa: int = 0, zz: int = 0) -> GeneralSuboption:
        """Build the byte from its fields (the synthesizer's view)."""
        return GeneralSuboption((zz & 3) << 3 | (aa & 3) << 1 | int(b))


@dataclass(frozen=True)
class TepSuboption:
    """A TEP identifier, with suboption data when ``data`` is not None (v = 1)."""

    tep: int
    data: bytes | None = None
    length_byte: bool = False
    """The data was announced by a ``100nnnnn`` length byte (else it runs to the end)."""


Suboption = GeneralSuboption | TepSuboption


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
    def general(self) -> GeneralSuboption | None:
        """The general suboption that counts (the first one), if any."""
        for sub in self.suboptions:
            if isinstance(sub, GeneralSuboption):
                return sub
        return None

    @property
    def teps(self) -> list[TepSuboption]:
        """TEP suboptions in wire order."""
        return [s for s in self.suboptions if isinstance(s, TepSuboption)]

    @property
    def b_bit(self) -> bool:
        """Whether this option's sender claims role B."""
        general = self.general
        return general.b if general else False

    def rfc_form(self) -> bytes:
        """The option re-encoded as kind 69, as the transcript takes it."""
        contents = self.contents
        return bytes((ENO_KIND, len(contents) + 2)) + contents


def encode_suboptions(suboptions: Sequence[Suboption]) -> bytes:
    """Encode suboptions; a TEP with data and no length byte must be the last one."""
    out = bytearray()
    for index, sub in enumerate(suboptions):
        if isinstance(sub, GeneralSuboption):
            if not 0 <= sub.cs <= GENERAL_MAX:
                raise ValueError(f"general suboption byte 0x{sub.cs:02x} out of range")
            out.append(sub.cs)
            continue
        if not 0x20 <= sub.tep <= GLT_MASK:
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
                  kind: int = ENO_EXPERIMENTAL_KINDS[0]) -> bytes:
    """Encode a whole ENO option (RFC kind 69, or kind 253/254 + ExID 0x454E)."""
    contents = encode_suboptions(suboptions)
    if encoding == ENCODING_RFC:
        return bytes((ENO_KIND, len(contents) + 2)) + contents
    return bytes((kind, len(contents) + 4)) + ENO_EXID.to_bytes(2, "big") + contents


def parse_suboptions(contents: bytes, base: int = 0
                     ) -> tuple[tuple[Suboption, ...], list[Finding], bool]:
    """Decode SYN-form contents. Returns (suboptions, findings, malformed).

    ``base`` is the offset of ``contents`` inside the option, so findings point at the
    exact byte. A malformed option makes ENO fail for the connection (spec 1.1).
    """
    subs: list[Suboption] = []
    findings: list[Finding] = []
    generals = 0
    pos = 0
    n = len(contents)
    while pos < n:
        cs = contents[pos]
        if cs & V_BIT == 0:
            if cs <= GENERAL_MAX:
                general = GeneralSuboption(cs)
                generals += 1
                if generals > 1:
                    findings.append(Finding(Severity.WARNING, "eno-extra-general",
                                            f"further general suboption 0x{cs:02x} is ignored "
                                            "(only the first counts)", base + pos))
                if general.zz:
                    findings.append(Finding(Severity.WARNING, "eno-zz-set",
                                            f"reserved zz bits set in general suboption "
                                            f"0x{cs:02x}", base + pos))
                if general.aa == 2:
                    findings.append(Finding(Severity.NOTE, "eno-aa-reserved",
                                            "application-aware bits use the reserved value 10",
                                            base + pos))
                subs.append(general)
            else:
                subs.append(TepSuboption(cs))
            pos += 1
            continue
        glt = cs & GLT_MASK
        if glt > GENERAL_MAX:
            subs.append(TepSuboption(glt, bytes(contents[pos + 1:])))
            pos = n
            continue
        data_len = glt + 1
        if pos + 1 >= n:
            findings.append(Finding(Severity.ERROR, "eno-malformed",
                                    f"length byte 0x{cs:02x} is the last byte: expected a "
                                    "TEP identifier with v=1 after it", base + pos))
            return tuple(subs), findings, True
        tep_byte = contents[pos + 1]
        if tep_byte & V_BIT == 0 or (tep_byte & GLT_MASK) <= GENERAL_MAX:
            findings.append(Finding(Severity.ERROR, "eno-malformed",
                                    f"length byte 0x{cs:02x} is followed by 0x{tep_byte:02x}: "
                                    "expected a TEP identifier with v=1", base + pos + 1))
            return tuple(subs), findings, True
        end = pos + 2 + data_len
        if end > n:
            findings.append(Finding(Severity.ERROR, "eno-malformed",
                                    f"length byte 0x{cs:02x} announces {data_len} data bytes "
                                    f"but only {n - pos - 2} remain in the option", base + pos))
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


@dataclass(frozen=True)
class Negotiation:
    """The ENO outcome of one connection."""

    status: EnoStatus
    reason: FallbackReason | None = None
    tep: int | None = None
    resumed: bool = False
    """The negotiated TEP carried data in both SYNs (tcpcrypt session resumption)."""
    detail: str = ""


def choose_tep(syn_a: EnoOption, syn_b: EnoOption) -> TepSuboption | None:
    """The last TEP suboption in B's SYN whose identifier A's SYN also lists (spec 1.2)."""
    offered = {t.tep for t in syn_a.teps}
    chosen = None
    for tep in syn_b.teps:
        if tep.tep in offered:
            chosen = tep
    return chosen


def simultaneous_b_is_second(first: EnoOption | None, second: EnoOption | None) -> bool | None:
    """Resolve roles in a simultaneous open from the b bits.

    Returns True when the second SYN's sender is B, False when the first's is, and None
    when both or neither set b (a role conflict: ENO fails).
    """
    b1 = first.b_bit if first else False
    b2 = second.b_bit if second else False
    if b1 == b2:
        return None
    return b2


def negotiate(syn_a: EnoOption | None, syn_b: EnoOption | None, ack_a_has_eno: bool | None,
              *, simultaneous: bool = False, handshake_seen: bool = True) -> Negotiation:
    """Decide the ENO outcome with exactly one reason (spec 1.2).

    ``syn_b`` is B's SYN (the SYN-ACK, or B's bare SYN in a simultaneous open);
    ``ack_a_has_eno`` is None when A's first non-SYN segment was not captured.
    """
    if not handshake_seen:
        return Negotiation(EnoStatus.UNKNOWN, FallbackReason.HANDSHAKE_NOT_CAPTURED)
    if syn_a is None:
        return Negotiation(EnoStatus.ABSENT, FallbackReason.NO_ENO_IN_SYN)
    if syn_a.malformed:
        return Negotiation(EnoStatus.FALLBACK, FallbackReason.MALFORMED_OPTION,
                           detail="in A's SYN")
    if syn_b is None:
        return Negotiation(EnoStatus.FALLBACK, FallbackReason.SYNACK_WITHOUT_ENO)
    if syn_b.malformed:
        return Negotiation(EnoStatus.FALLBACK, FallbackReason.MALFORMED_OPTION,
                           detail="in B's SYN")
    if simultaneous and syn_a.b_bit == syn_b.b_bit:
        return Negotiation(EnoStatus.FALLBACK, FallbackReason.ROLE_CONFLICT)
    chosen = choose_tep(syn_a, syn_b)
    if chosen is None:
        return Negotiation(EnoStatus.FALLBACK, FallbackReason.NO_COMMON_TEP)
    if ack_a_has_eno is None:
        return Negotiation(EnoStatus.UNKNOWN, FallbackReason.HANDSHAKE_NOT_CAPTURED,
                           tep=chosen.tep, detail="A's first non-SYN segment not captured")
    if not ack_a_has_eno:
        return Negotiation(EnoStatus.FALLBACK, FallbackReason.ACK_WITHOUT_ENO, tep=None)
    a_data = next((t.data for t in syn_a.teps if t.tep == chosen.tep and t.data), None)
    resumed = bool(chosen.data) and bool(a_data)
    return Negotiation(EnoStatus.NEGOTIATED, None, chosen.tep, resumed)
