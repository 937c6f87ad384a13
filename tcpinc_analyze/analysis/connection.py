"""One TCP connection as the analyzer follows it: roles, handshake, ENO, streams.

A connection owns its two reassemblers and, when tcpcrypt runs, its two framing
parsers; everything it learns ends up in a ConnectionReport when it is finalised, after
which its state is dropped (that is what keeps memory flat on long captures). The
handshake rules of RFC 8547 §4.1-§4.7 that a capture can show are checked here, each
broken one a finding with its code and RFC section.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..capture.decode import Segment
from ..eno import (
    ENCODING_EXPERIMENTAL,
    ROLES_PRE_RFC,
    SUB_INVALID,
    SUB_RESUME,
    EnoOption,
    Negotiation,
    SynEno,
    decode_option,
    negotiate,
    parse_suboptions,
    tcpcrypt_suboption_kind,
)
from ..findings import Finding, FindingList, Severity
from ..limits import DEFAULT, Limits
from ..tcp.options import walk_options
from ..tcp.reassembly import DirectionStream
from ..tcpcrypt.stream import (
    MODE_DETECT,
    MODE_FRAMES,
    MODE_INIT1,
    MODE_INIT2,
    MODE_RESUME_OR_INIT,
    FrameHandler,
    TcpcryptDirection,
)
from ..wire import (
    ENO_EXPERIMENTAL_KINDS,
    ENO_KIND,
    LEGACY_TCPCRYPT_MAC_KIND,
    TCPCRYPT_TEPS,
    TFO_EXPERIMENTAL_KIND,
    TFO_EXPERIMENTAL_MAGIC,
    TFO_KIND,
    EnoStatus,
    FallbackReason,
)
from ..words import plural
from .rekey_watch import RekeyWatch
from .resume_registry import ResumeRegistry

SYN = 0x02
ACK = 0x10
FIN = 0x01
RST = 0x04
PSH = 0x08

LEGACY_PKCONF_OPCODES = (0x41, 0x42)
LEGACY_OTHER_OPCODES = (0x05, 0x06, 0x07, 0x08, 0x83, 0x84, 0x85)
R8547 = "RFC 8547"
R8548 = "RFC 8548"
INIT_SEGMENTS_KEPT = 64
"""Segments remembered per direction until its Init message is complete (PSH rule)."""


@dataclass
class SynInfo:
    """What one host's SYN (or SYN-ACK) said."""

    packet: int
    isn: int
    eno: SynEno
    legacy: bool = False
    data_len: int = 0

    @property
    def raw_eno(self) -> tuple[bytes, ...]:
        """The ENO options' bytes, to compare retransmissions."""
        return tuple(o.raw for o in self.eno.options)


@dataclass
class SegmentEno:
    """The ENO options of one segment and what the walk found."""

    options: tuple[EnoOption, ...]
    legacy: bool
    tfo: bytes | None


HandlerFactory = Callable[["Connection", str], "FrameHandler | None"]
"""Builds a FrameHandler per tcpcrypt direction (details, the decryptor plug in here)."""


@dataclass
class Connection:
    """Mutable per-connection state."""

    id: int
    x: tuple[bytes, int]
    y: tuple[bytes, int]
    first_packet: int
    first_ts: int
    last_ts: int = 0
    last_packet: int = 0
    packets: int = 0
    bytes_xy: int = 0
    bytes_yx: int = 0
    syn: dict[bool, SynInfo] = field(default_factory=dict)
    """The latest bare SYN by sender (True: x); a retransmission replaces it."""
    synack: dict[bool, SynInfo] = field(default_factory=dict)
    a_is_x: bool = True
    simultaneous: bool = False
    handshake_seen: bool = True
    negotiation: Negotiation | None = None
    ack_eno: bool | None = None
    ack_packet: int | None = None
    streams: dict[bool, DirectionStream | None] = field(default_factory=dict)
    tcpcrypt: dict[bool, TcpcryptDirection | None] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=FindingList)
    fin: dict[bool, int] = field(default_factory=dict)
    rst_packet: int | None = None
    closed_ts: int | None = None
    legacy: bool = False
    handler_factory: HandlerFactory | None = None
    data: dict = field(default_factory=dict)
    """Room for later stages (decryption) to keep per-connection results."""
    nonsyn_from: dict[bool, int] = field(default_factory=dict)
    """Packet of the first non-SYN segment each side sent (True: x)."""
    nonsyn_eno: dict[bool, bool] = field(default_factory=dict)
    """Whether each side still sends ENO on its early non-SYN segments (False once it
    omitted one: it has disabled encryption, and later omissions say nothing new)."""
    eno_phase_done: bool = False
    after_fallback: dict[bool, bool] = field(default_factory=dict)
    """Whether each side's later segments are still checked for ENO options (RFC 8547
    §4.6, after a fallback): decided at the side's first segment after it received a
    non-SYN one, False once it sent one; the flow table tests each segment of a watched
    side (``check_after_fallback``)."""
    init_segments: dict[bool, list[tuple[int, int, bool, int]]] = field(default_factory=dict)
    """(start, end, PSH, packet) of each direction's segments until its Init is parsed."""
    init_open: set[bool] = field(default_factory=set)
    """Directions whose Init message is still awaited (the PSH rule watches them)."""
    rekey_watch: RekeyWatch | None = None
    observed: dict[str, list[int]] = field(default_factory=dict)
    """Conformance rules checked and found kept: code -> packets that showed it."""
    resume_registry: ResumeRegistry | None = None
    limits: Limits = DEFAULT
    """Bounds of this analysis (the framing parsers' resynchronisation search)."""
    early: bool = True
    """Still in the handshake phase (ENO rules, outcome not decided): the flow table's
    per-segment fast path skips that work once it is False."""



    # ------------------------------------------------------------------ helpers
    def from_x(self, seg: Segment) -> bool:
        """Whether a segment was sent by endpoint x."""
        return (seg.src, seg.sport) == self.x

    def side_is_a(self, from_x: bool) -> bool:
        """Whether the sender is host A."""
        return from_x == self.a_is_x

    def label(self, from_x: bool) -> str:
        """``ab`` for A->B, ``ba`` for B->A."""
        return "ab" if self.side_is_a(from_x) else "ba"

    def add(self, severity: Severity, code: str, message: str, packet: int | None,
            offset: int | None = None, rfc: str | None = None) -> None:
        """Record a connection finding."""
        self.findings.append(Finding(severity, code, message, offset, packet, rfc=rfc))

    def held(self, code: str, packet: int | None) -> None:
        """A conformance rule was checked at ``packet`` and kept (for the checklist)."""
        packets = self.observed.setdefault(code, [])
        if packet is not None and len(packets) < 8 and packet not in packets:
            packets.append(packet)

    @property
    def closed(self) -> bool:
        """Both FINs or a RST seen."""
        return self.rst_packet is not None or len(self.fin) == 2

    @property
    def active_is_x(self) -> bool:
        """The active opener is x unless the capture starts after its SYN."""
        return True in self.syn or not (False in self.synack and True not in self.synack)

    # ------------------------------------------------------------------ options
    def segment_eno(self, seg: Segment) -> SegmentEno:
        """Every ENO option of a segment (RFC or experimental encoding), whole.

        A malformed TCP option walk that stops at an ENO kind gives a malformed option,
        so the negotiation fails with that reason; offsets are relative to the TCP header.
        """
        options, problems, bad_kind = walk_options(seg.options)
        for problem in problems:
            self.findings.append(problem.at(packet=seg.number, base=20))
        found: list[EnoOption] = []
        legacy = False
        tfo = None
        kinds: set[str] = set()
        for kind, pos, data in options:
            if kind == LEGACY_TCPCRYPT_MAC_KIND:
                legacy = True
            elif kind == TFO_KIND:
                tfo = data
            elif kind == TFO_EXPERIMENTAL_KIND and data[:2] == TFO_EXPERIMENTAL_MAGIC:
                tfo = data[2:]
            if kind != ENO_KIND and kind not in ENO_EXPERIMENTAL_KINDS:
                continue
            option = decode_option(kind, data, pos + 20)
            if option is None:
                continue
            if kind == ENO_KIND and looks_legacy(data, seg.flags, self.legacy):
                legacy = True
                continue
            kinds.add(option.encoding)
            found.append(option)
        if bad_kind in (ENO_KIND, *ENO_EXPERIMENTAL_KINDS):
            found.append(EnoOption("rfc" if bad_kind == ENO_KIND else "experimental",
                                   bad_kind, b"", (), True))
        if len(kinds) == 2:
            self.add(Severity.ERROR, "eno-both-encodings",
                     "option 69 and option 253 with ExID 0x454E in one segment (hosts must "
                     "not send both)", seg.number, rfc=f"{R8547} §11")
        return SegmentEno(tuple(found), legacy, tfo)

    def _syn_eno(self, seg: Segment) -> tuple[SynEno, bool, bytes | None]:
        """The ENO options of a SYN or SYN-ACK, with the SYN-only rules checked."""
        got = self.segment_eno(seg)
        syn = SynEno(got.options, seg.number)
        if len(got.options) > 1:
            self.add(Severity.ERROR, "eno-multiple-syn",
                     f"{len(got.options)} ENO options in one SYN: the receiver must behave as "
                     "if there were none and disable encryption", seg.number, rfc=f"{R8547} §4.1")
        elif got.options:
            self.held("eno-multiple-syn", seg.number)
        for option in got.options:
            for problem in option.findings:
                self.findings.append(problem.at(packet=seg.number))
            if option.malformed:
                detail = "; ".join(f.message for f in option.findings) or (
                    f"kind {option.kind} with a bad TCP option length")
                self.add(Severity.ERROR, "eno-malformed",
                         f"ill-formed ENO option: {detail}; the option is ignored and ENO "
                         "fails", seg.number)
            elif not any(f.code == "eno-length-byte" for f in option.findings):
                self.held("eno-length-byte", seg.number)
            self._resumption_rules(option, seg.number)
        self._syn_data_rules(seg, got)
        return syn, got.legacy, got.tfo

    def _resumption_rules(self, option: EnoOption, packet: int) -> None:
        resumes: dict[int, int] = {}
        for sub in option.teps:
            if sub.tep not in TCPCRYPT_TEPS:
                continue
            kind = tcpcrypt_suboption_kind(sub)
            if kind == SUB_INVALID:
                self.add(Severity.ERROR, "resume-nonce-too-long",
                         f"resumption suboption for TEP 0x{sub.tep:02x} carries "
                         f"{len(sub.data or b'')} data bytes: a 9-byte identifier half and a "
                         "nonce of at most 8 bytes allow 17", packet, rfc=f"{R8548} §3.5")
            elif kind == SUB_RESUME:
                resumes[sub.tep] = resumes.get(sub.tep, 0) + 1
                self.held("resume-nonce-too-long", packet)
        for tep, count in resumes.items():
            if count > 1:
                self.add(Severity.ERROR, "resume-duplicate-suboption",
                         f"{count} resumption suboptions for TEP 0x{tep:02x} in one SYN "
                         "(at most one per TEP)", packet, rfc=f"{R8548} §3.5")
        if sum(resumes.values()) > 1:
            self.add(Severity.NOTE, "resume-multiple-suboptions",
                     f"{sum(resumes.values())} resumption suboptions in one SYN (should be at "
                     "most one)", packet, rfc=f"{R8548} §3.5")

    def _syn_data_rules(self, seg: Segment, got: SegmentEno) -> None:
        option = got.options[0] if len(got.options) == 1 else None
        if option is None or option.malformed:
            return
        if got.tfo:
            self.add(Severity.ERROR, "eno-syn-data",
                     "a SYN with ENO carries a non-empty TCP Fast Open option", seg.number,
                     rfc=f"{R8547} §4.7")
        teps = option.teps
        syn_tep = teps[-1].tep if teps else None
        if seg.payload or seg.missing:
            if syn_tep in TCPCRYPT_TEPS or syn_tep is None:
                self.add(Severity.ERROR, "eno-syn-data",
                         f"a SYN with ENO carries {len(seg.payload) + seg.missing} data bytes "
                         f"although its SYN TEP ({'none' if syn_tep is None else hex(syn_tep)}) "
                         "defines no SYN data (tcpcrypt defines none); the receiver must "
                         "discard them", seg.number, rfc=f"{R8547} §4.7")
        elif not got.tfo:
            self.held("eno-syn-data", seg.number)

    # ------------------------------------------------------------------ handshake
    def on_syn(self, seg: Segment, from_x: bool) -> None:
        """A bare SYN from one side (A's, or either in a simultaneous open)."""
        eno, legacy, _tfo = self._syn_eno(seg)
        previous = self.syn.get(from_x)
        info = SynInfo(seg.number, seg.seq, eno, legacy, len(seg.payload))
        if previous is not None and previous.isn == seg.seq:
            self._compare_retransmission(previous, info, bare=True)
        self.syn[from_x] = info
        self.legacy |= legacy
        if len(self.syn) == 2:
            self.simultaneous = True

    def on_synack(self, seg: Segment, from_x: bool) -> None:
        """A SYN-ACK: B's SYN in a normal open; repeats a SYN in a simultaneous open."""
        eno, legacy, _tfo = self._syn_eno(seg)
        info = SynInfo(seg.number, seg.seq, eno, legacy, len(seg.payload))
        previous = self.synack.get(from_x)
        if previous is not None:
            if previous.isn == seg.seq:
                self._compare_retransmission(previous, info, bare=False)
            return
        self.synack[from_x] = info
        self.legacy |= legacy
        if self.simultaneous:
            own = self.syn.get(from_x)
            if own is not None:
                self._compare_simultaneous(own, info, from_x)
        else:
            self._check_passive_synack(info, from_x)
        self._check_syn_data_acked(seg, from_x, info)

    def _compare_retransmission(self, previous: SynInfo, info: SynInfo, *, bare: bool) -> None:
        if previous.raw_eno == info.raw_eno:
            self.held("eno-syn-changed", info.packet)
            return
        if bare and previous.eno.present and not info.eno.present:
            self.add(Severity.NOTE, "eno-dropped-on-retransmission",
                     f"the SYN retransmitted in packet {info.packet} drops the ENO option of "
                     f"packet {previous.packet}: the active opener disabled ENO (allowed, e.g. "
                     "against middleboxes that drop ENO)", info.packet, rfc=f"{R8547} §4.6")
            return
        self.add(Severity.ERROR, "eno-syn-changed",
                 f"the retransmitted {'SYN' if bare else 'SYN-ACK'} in packet {info.packet} "
                 f"changes the SYN-form ENO option of packet {previous.packet}", info.packet,
                 rfc=f"{R8547} §4.6")

    def _compare_simultaneous(self, own: SynInfo, info: SynInfo, from_x: bool) -> None:
        if own.raw_eno == info.raw_eno:
            self.held("eno-syn-changed", info.packet)
            return
        if not info.eno.present:
            # Allowed only when the received SYN made this host disable encryption.
            other = self.syn.get(not from_x)
            outcome = negotiate(own.eno, other.eno if other else None, True,
                                simultaneous=True)
            if other is not None and outcome.status == EnoStatus.NEGOTIATED:
                self.add(Severity.ERROR, "eno-syn-changed",
                         f"simultaneous open: the SYN-ACK in packet {info.packet} drops the ENO "
                         f"option of the same host's SYN (packet {own.packet}), although the SYN "
                         f"it received (packet {other.packet}) left encryption possible",
                         info.packet, rfc=f"{R8547} §4.6")
            return
        self.add(Severity.ERROR, "eno-syn-changed",
                 f"simultaneous open: the SYN-ACK in packet {info.packet} does not repeat the "
                 f"ENO option of the same host's SYN (packet {own.packet})", info.packet,
                 rfc=f"{R8547} §4.6")

    def _check_passive_synack(self, info: SynInfo, from_x: bool) -> None:
        """The passive opener's SYN-ACK rules (§4.2, §4.3, §4.5, §4.6)."""
        option = info.eno.option
        syn = self.syn.get(not from_x)
        a_eno = syn.eno if syn is not None else None
        if option is None or option.malformed:
            return
        self.held("synack-eno", info.packet)
        glob = option.global_suboption
        pre_rfc = (option.encoding == ENCODING_EXPERIMENTAL and not option.b_bit
                   and a_eno is not None and a_eno.option is not None
                   and a_eno.option.encoding == ENCODING_EXPERIMENTAL)
        if glob is None or not glob.b:
            if not pre_rfc:
                what = ("no global suboption" if glob is None
                        else f"global suboption 0x{glob.byte:02x}")
                self.add(Severity.ERROR, "eno-synack-no-explicit-b",
                         f"the passive opener's SYN-ACK ENO option has {what}: passive "
                         "openers must send an explicit global suboption with b = 1", info.packet,
                         rfc=f"{R8547} §4.2, §4.3")
        else:
            self.held("eno-synack-no-explicit-b", info.packet)
        if option.vacuous and (a_eno is None or not a_eno.present):
            self.add(Severity.ERROR, "eno-vacuous-reply",
                     "vacuous ENO option in a SYN-ACK answering a SYN without ENO", info.packet,
                     rfc=f"{R8547} §4.6")
        elif option.vacuous:
            self.held("eno-vacuous-reply", info.packet)
        self._unsolicited_resumption(option, a_eno, info.packet)
        if len(option.teps) > 1:
            self.add(Severity.NOTE, "eno-synack-multiple-teps",
                     f"the passive opener's SYN-ACK lists {len(option.teps)} TEPs (it should "
                     "list only one, a valid one)", info.packet, rfc=f"{R8547} §4.5")
        if a_eno is not None and not option.vacuous:
            received = a_eno if a_eno.option is not None else None
            # (A b-bit tie where B's own b is 0 is reported as eno-synack-no-explicit-b.)
            disabled = (received is None or received.option is None or received.option.malformed
                        or received.option.b_bit and option.b_bit
                        or not any(t.tep in {s.tep for s in received.option.teps}
                                   for t in option.teps))
            if disabled:
                self.add(Severity.ERROR, "eno-after-fallback",
                         "the passive opener sends a (non-vacuous) ENO option although the SYN "
                         "it answers made ENO fail (no usable ENO option, same b bit, or no "
                         "TEP in common)", info.packet, rfc=f"{R8547} §4.6")

    def _unsolicited_resumption(self, option: EnoOption, a_eno: SynEno | None,
                                packet: int) -> None:
        """A passive opener agrees to resume only a session A asked to resume with that
        TEP ("Otherwise, it MUST NOT agree to resumption", RFC 8548 §3.5)."""
        offers = [s for s in option.teps
                  if s.tep in TCPCRYPT_TEPS and tcpcrypt_suboption_kind(s) == SUB_RESUME]
        a_opt = a_eno.option if a_eno is not None else None
        if not offers or a_opt is None or a_opt.malformed:
            return
        asked = {s.tep for s in a_opt.teps
                 if s.tep in TCPCRYPT_TEPS and tcpcrypt_suboption_kind(s) == SUB_RESUME}
        for sub in offers:
            if sub.tep in asked:
                self.held("resume-unsolicited", packet)
            else:
                self.add(Severity.ERROR, "resume-unsolicited",
                         f"the passive opener sends a resumption suboption for TEP "
                         f"0x{sub.tep:02x} although A's SYN proposed no resumption with it: a "
                         "host agrees to resume only a session it is asked to", packet,
                         rfc=f"{R8548} §3.5")

    def _check_syn_data_acked(self, seg: Segment, from_x: bool, info: SynInfo) -> None:
        """A receiver that discards SYN data must acknowledge only the ISN (§4.7). Only
        a receiver known to implement ENO (its SYN-ACK carries ENO) is bound, and only a
        tcpcrypt (or no) SYN TEP is known to define no SYN data."""
        syn = self.syn.get(not from_x)
        if syn is None or not syn.data_len or not syn.eno.present or not info.eno.present:
            return
        option = syn.eno.option
        teps = option.teps if option is not None else []
        if teps and teps[-1].tep not in TCPCRYPT_TEPS:
            return
        if (seg.ack - syn.isn) % (1 << 32) > 1:
            self.add(Severity.ERROR, "eno-syn-data",
                     f"the SYN-ACK acknowledges {syn.data_len} SYN data bytes of a SYN with "
                     "ENO; tcpcrypt defines no SYN data, so they must be discarded and not "
                     "acknowledged", seg.number, rfc=f"{R8547} §4.7")

    def decide_roles(self) -> None:
        """Provisional roles (the active opener is A) until ENO's b bits decide."""
        neg = self.negotiation
        first_x = self.active_is_x
        if self.simultaneous:
            first_x = True
        if neg is not None:
            self.a_is_x = first_x == neg.a_is_first
        else:
            self.a_is_x = first_x

    def first_second(self) -> tuple[SynInfo | None, SynInfo | None]:
        """The negotiation's inputs: the active opener's SYN and the passive opener's
        SYN-ACK (in a simultaneous open, x's and y's bare SYNs)."""
        if self.simultaneous:
            return self.syn.get(True), self.syn.get(False)
        active_x = self.active_is_x
        return self.syn.get(active_x), self.synack.get(not active_x)

    def syn_of(self, a: bool) -> SynInfo | None:
        """Host A's SYN (a=True) or host B's SYN/SYN-ACK."""
        x_side = self.a_is_x if a else not self.a_is_x
        if self.simultaneous:
            return self.syn.get(x_side)
        if x_side == self.active_is_x:
            return self.syn.get(x_side)
        return self.synack.get(x_side)

    def decide_eno(self, ack_has_eno: bool | None, packet: int | None) -> None:
        """Decide the ENO outcome (at the active opener's first non-SYN segment, or at the
        first non-SYN segment of a simultaneous open, or at the end)."""
        if self.negotiation is not None:
            return
        first, second = self.first_second()
        eno_first = SynEno() if self.legacy or first is None else first.eno
        seen = first is not None and (second is not None or not eno_first.present)
        if self.simultaneous:
            acks = [self.synack.get(s) for s in (True, False)]
            ack_has_eno = (None if any(a is None for a in acks)
                           else all(a is not None and a.eno.present for a in acks))
        self.ack_eno = ack_has_eno
        self.ack_packet = packet
        self.negotiation = negotiate(eno_first, second.eno if second else None, ack_has_eno,
                                     simultaneous=self.simultaneous, handshake_seen=seen)
        self.decide_roles()
        neg = self.negotiation
        if self.resume_registry is not None and seen:
            self.resume_registry.check(self)
        if not seen:
            self.handshake_seen = False
            missing = "A's SYN" if first is None else "B's SYN-ACK"
            self.add(Severity.NOTE, "handshake-not-captured",
                     f"{missing} is not in the capture: roles and ENO outcome are inferred",
                     packet)
        if neg.roles == ROLES_PRE_RFC:
            # One note at the end: with the 2016 Init layout it says everything at once.
            self.data["pre_rfc_roles"] = second.packet if second else packet
        if self.legacy:
            self.add(Severity.NOTE, "legacy-tcpcrypt-option",
                     "kind 69 is used as the pre-2015 tcpcrypt CRYPT option (with kind 70 MAC), "
                     "not as ENO", first.packet if first else packet)
        if neg.status == EnoStatus.FALLBACK and neg.reason == FallbackReason.SYNACK_WITHOUT_ENO \
                and not self.simultaneous:
            self.add(Severity.WARNING, "eno-downgrade",
                     "A's SYN offered ENO and B's SYN-ACK carries none: B lacks ENO, or ENO was "
                     "stripped on the path (a downgrade to plain TCP; RFC 8547 §6 Figures 10 "
                     "and 11, §9)", second.packet if second else packet)
        self._setup_streams()

    def view(self) -> Negotiation | None:
        """The outcome as the hosts see it from the SYNs alone, before any ACK: what the
        active opener enables on receiving the SYN-ACK (a stripped ACK option cannot
        change it). None until both SYNs are known."""
        first, second = self.first_second()
        if first is None or second is None or self.legacy:
            return None
        key = (id(first), id(second), self.simultaneous)
        cached = self.data.get("view")
        if cached is None or cached[0] != key:
            cached = self.data["view"] = (key, negotiate(first.eno, second.eno, True,
                                                         simultaneous=self.simultaneous))
        return cached[1]

    def check_nonsyn_eno(self, seg: Segment, from_x: bool) -> bool | None:
        """RFC 8547 §4.6 for a non-SYN segment sent before its sender received one: with
        encryption still possible it must carry ENO, after a fallback it must not. Returns
        whether the segment carried ENO (None when the rule no longer applies)."""
        if not self.syn and not self.synack:
            self.eno_phase_done = True
        if self.eno_phase_done:
            return None
        if (not from_x) in self.nonsyn_from:
            # The sender has received a non-SYN segment: ENO is no longer needed; but a
            # host that fell back must still send no ENO option at all (§4.6): from here
            # on the flow table watches its segments.
            if from_x not in self.after_fallback:
                watch = self.after_fallback[from_x] = self._fallback_watch_applies(from_x)
                if watch:
                    self.held("eno-after-fallback", seg.number)
            if from_x in self.nonsyn_from:
                self.eno_phase_done = True
            return None
        got = self.segment_eno(seg)
        self.legacy |= got.legacy
        has = bool(got.options)
        view = self.view()
        if view is None:
            return has
        wants = view.status == EnoStatus.NEGOTIATED
        first_of_sender = from_x not in self.nonsyn_from
        active = from_x == self.active_is_x and not self.simultaneous
        for option in got.options:
            if option.contents and wants and view.tep in TCPCRYPT_TEPS:
                self.add(Severity.WARNING, "eno-nonsyn-contents",
                         f"non-SYN-form ENO option with {plural(len(option.contents), 'byte')} "
                         "of contents: tcpcrypt gives them no meaning, so they must be sent empty",
                         seg.number, rfc=f"{R8547} §4.1")
            elif not option.contents:
                self.held("eno-nonsyn-contents", seg.number)
        state = self.nonsyn_eno.get(from_x)
        if wants and not has:
            if state is None and active and first_of_sender:
                self.add(Severity.ERROR, "eno-ack-missing",
                         "A's third segment (the handshake ACK) carries no ENO option although "
                         "the SYN-ACK it answers carried a valid, compatible one (or a "
                         "middlebox between A and the capture point stripped it)", seg.number,
                         rfc=f"{R8547} §4.6")
            elif state:
                self.add(Severity.WARNING, "eno-option-missing",
                         "a segment sent before its sender received any non-SYN segment "
                         "carries no ENO option (every such segment must, until encryption is "
                         "disabled)", seg.number, rfc=f"{R8547} §4.6")
            self.nonsyn_eno[from_x] = False
        elif wants and state is not False:
            self.held("eno-ack-missing" if active and first_of_sender else "eno-option-missing",
                      seg.number)
            self.nonsyn_eno[from_x] = True
        elif has and state is not False:
            self.add(Severity.ERROR, "eno-after-fallback",
                     "an ENO option on a segment sent after its sender fell back to plain TCP "
                     "(no further ENO options may be sent)", seg.number, rfc=f"{R8547} §4.6")
            self.nonsyn_eno[from_x] = False
        elif not has and not wants:
            self.held("eno-after-fallback", seg.number)
        return has

    def _fallback_watch_applies(self, from_x: bool) -> bool:
        """Both hosts know from the SYNs that ENO fell back, the sender took part (its
        SYN-form segment had ENO), and it has not been caught sending one yet."""
        if self.nonsyn_eno.get(from_x) is False:
            return False
        view = self.view()
        if view is None or view.status != EnoStatus.FALLBACK:
            return False
        own = (self.syn.get(from_x) if self.simultaneous or from_x == self.active_is_x
               else self.synack.get(from_x))
        return own is not None and own.eno.present

    def check_after_fallback(self, seg: Segment, from_x: bool) -> None:
        """§4.6 "refrain from sending any further ENO options", on a watched side's segment
        whose options hold a byte that could start one (the caller's cheap test)."""
        if self.segment_eno(seg).options:
            self.add(Severity.ERROR, "eno-after-fallback",
                     "an ENO option on a segment sent after its sender fell back to plain TCP "
                     "(no further ENO options may be sent)", seg.number, rfc=f"{R8547} §4.6")
            self.nonsyn_eno[from_x] = self.after_fallback[from_x] = False

    def _setup_streams(self) -> None:
        neg = self.negotiation
        assert neg is not None
        tep = neg.tep
        modes: dict[bool, str | None] = {True: None, False: None}
        if neg.status == EnoStatus.NEGOTIATED and neg.pre_rfc_resume:
            # The 2016 daemon's resumption: frames from the first byte, or an Init
            # message if B refused after all (the parser tells by the magic).
            modes = {True: MODE_RESUME_OR_INIT, False: MODE_RESUME_OR_INIT}
        elif neg.status == EnoStatus.NEGOTIATED and tep in TCPCRYPT_TEPS:
            modes = {True: MODE_FRAMES if neg.resumed else MODE_INIT1,
                     False: MODE_FRAMES if neg.resumed else MODE_INIT2}
        elif neg.status == EnoStatus.UNKNOWN:
            modes = {True: MODE_DETECT, False: MODE_DETECT}
        elif neg.reason == FallbackReason.ACK_WITHOUT_ENO:
            modes = {True: MODE_DETECT, False: None}
        if any(modes.values()) and self.rekey_watch is None:
            self.rekey_watch = RekeyWatch(self.findings, self.held)
            self.data["rekey_watch"] = self.rekey_watch
        for a_side in (True, False):
            from_x = a_side == self.a_is_x
            mode = modes[a_side]
            label = "ab" if a_side else "ba"
            existing = self.streams.get(from_x)
            if mode is None:
                self.streams[from_x] = None
                self.tcpcrypt[from_x] = None
                continue
            handler = self.handler_factory(self, label) if self.handler_factory else None
            parser = TcpcryptDirection(label, mode, tep if tep in TCPCRYPT_TEPS else None,
                                       self.findings, handler, self._detected, self.limits)
            parser.watch = self.rekey_watch
            if mode in (MODE_INIT1, MODE_INIT2):
                self.init_open.add(from_x)
            stream = existing or DirectionStream(parser, self.findings, label)
            stream.consumer = parser
            stream.label = label
            if mode != MODE_DETECT:
                stream.rfc = f"{R8548} §3.6"
            self.streams[from_x] = stream
            self.tcpcrypt[from_x] = parser

    def _detected(self, parser: TcpcryptDirection) -> None:
        """Without a handshake, the stream that starts with Init1 is A's: fix the roles."""
        if (parser.mode == MODE_INIT1) == (parser.label == "ab"):
            return
        self.a_is_x = not self.a_is_x
        for from_x in (True, False):
            label = "ab" if from_x == self.a_is_x else "ba"
            stream, tc = self.streams.get(from_x), self.tcpcrypt.get(from_x)
            if stream is not None:
                stream.label = label
            if tc is not None:
                tc.label = label
                relabel = getattr(tc.handler, "relabel", None)
                if relabel is not None:
                    relabel(label)

    def start_stream(self, from_x: bool, isn: int) -> None:
        """Offsets of a direction count from its ISN + 1."""
        stream = self.streams.get(from_x)
        if stream is None and from_x not in self.streams:
            stream = DirectionStream(None, self.findings, "ab")
            self.streams[from_x] = stream
        if stream is not None and stream.base is None:
            stream.start(isn + 1)

    def note_init_segment(self, from_x: bool, seg: Segment, stream: DirectionStream) -> None:
        """Remember where an early data segment sits and whether it has PSH (§3.3)."""
        kept = self.init_segments.setdefault(from_x, [])
        if len(kept) < INIT_SEGMENTS_KEPT:
            start = stream.offset_of(seg.seq)
            kept.append((start, start + len(seg.payload) + seg.missing, bool(seg.flags & PSH),
                         seg.number))

    def check_init_psh(self, from_x: bool) -> None:
        """The segment holding an Init message's last byte must have PSH (RFC 8548 §3.3)."""
        parser = self.tcpcrypt.get(from_x)
        if parser is None or parser.state_done():
            self.init_open.discard(from_x)
            self.init_segments.pop(from_x, None)
            return
        if parser.init_raw is None:
            return
        kept = self.init_segments.pop(from_x, [])
        self.init_open.discard(from_x)
        last = parser.init_len - 1
        covering = [(psh, packet) for start, end, psh, packet in kept if start <= last < end]
        if not covering:
            return
        name = "Init1" if parser.mode == MODE_INIT1 else "Init2"
        if any(psh for psh, _ in covering):
            self.held("init-no-psh", covering[0][1])
            return
        self.add(Severity.WARNING, "init-no-psh",
                 f"the segment holding {name}'s last byte (packet {covering[0][1]}) does not "
                 "have PSH set", covering[0][1], rfc=f"{R8548} §3.3")

    def release(self) -> None:
        """Drop per-connection state at once: parsers, handlers and the decryptor refer
        back to the connection, and leaving those cycles to the garbage collector lets
        memory climb on long captures."""
        self.streams.clear()
        self.tcpcrypt.clear()
        self.data.clear()
        self.handler_factory = None
        self.rekey_watch = None

    def finish(self) -> None:
        """Flush reassembly and framing at the end of the connection or capture."""
        if self.negotiation is None:
            self.decide_eno(None, None)
        for from_x in (True, False):
            stream = self.streams.get(from_x)
            if stream is not None:
                stream.finish()
            parser = self.tcpcrypt.get(from_x)
            if parser is not None:
                parser.finish()
        if self.rekey_watch is not None:
            complete = {}
            for parser in self.tcpcrypt.values():
                if parser is not None:
                    complete[parser.label] = parser.ended_clean and not parser.incomplete_frames
            self.rekey_watch.finish(complete)


def looks_legacy(data: bytes, flags: int, seen: bool = False) -> bool:
    """Whether kind-69 option data is the pre-2015 tcpcrypt CRYPT option, not ENO.

    Only unambiguous shapes count: a SYN-ACK whose PKCONF carries a cipher list of
    3-byte specs, and, once the connection has shown that (``seen``) or a kind-70 MAC
    option, other CRYPT opcodes that are not a valid ENO suboption sequence. A non-SYN
    ENO option's contents are ignored by its receiver (RFC 8547 §4.1), so on their own
    they never turn an ENO option into something else.
    """
    if not data:
        return False
    op = data[0]
    if flags & SYN and not flags & ACK:
        return False  # a bare SYN's 0x01/0x02 is also a valid ENO global suboption
    if flags & SYN and op in LEGACY_PKCONF_OPCODES and len(data) > 1 and (len(data) - 1) % 3 == 0:
        return True
    if seen and not flags & SYN and op in LEGACY_OTHER_OPCODES and len(data) >= 2:
        return parse_suboptions(data)[2]
    return False
