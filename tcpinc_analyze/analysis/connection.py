"""One TCP connection as the analyzer follows it: roles, handshake, ENO, streams.

A connection owns its two reassemblers and, when tcpcrypt runs, its two framing
parsers; everything it learns ends up in a ConnectionReport when it is finalised, after
which its state is dropped (that is what keeps memory flat on long captures).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..capture.decode import Segment
from ..eno import (
    EnoOption,
    Negotiation,
    decode_option,
    negotiate,
    parse_suboptions,
    simultaneous_b_is_second,
)
from ..findings import Finding, Severity
from ..tcp.options import walk_options
from ..tcp.reassembly import DirectionStream
from ..tcpcrypt.stream import (
    MODE_DETECT,
    MODE_FRAMES,
    MODE_INIT1,
    MODE_INIT2,
    FrameHandler,
    TcpcryptDirection,
)
from ..wire import (
    ENO_EXPERIMENTAL_KINDS,
    ENO_KIND,
    LEGACY_TCPCRYPT_MAC_KIND,
    TCPCRYPT_TEPS,
    EnoStatus,
    FallbackReason,
)

SYN = 0x02
ACK = 0x10
FIN = 0x01
RST = 0x04

LEGACY_PKCONF_OPCODES = (0x41, 0x42)
LEGACY_OTHER_OPCODES = (0x05, 0x06, 0x07, 0x08, 0x83, 0x84, 0x85)


@dataclass
class SynInfo:
    """What one host's SYN (or SYN-ACK) said."""

    packet: int
    isn: int
    eno: EnoOption | None
    eno_offset: int | None
    legacy: bool = False


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
    """Bare SYNs by sender (True: x)."""
    synack: dict[bool, SynInfo] = field(default_factory=dict)
    a_is_x: bool = True
    simultaneous: bool = False
    handshake_seen: bool = True
    negotiation: Negotiation | None = None
    ack_eno: bool | None = None
    ack_packet: int | None = None
    streams: dict[bool, DirectionStream | None] = field(default_factory=dict)
    tcpcrypt: dict[bool, TcpcryptDirection | None] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    fin: dict[bool, int] = field(default_factory=dict)
    rst_packet: int | None = None
    closed_ts: int | None = None
    legacy: bool = False
    handler_factory: HandlerFactory | None = None
    data: dict = field(default_factory=dict)
    """Room for later stages (decryption) to keep per-connection results."""

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
            offset: int | None = None) -> None:
        """Record a connection finding."""
        self.findings.append(Finding(severity, code, message, offset, packet))

    @property
    def closed(self) -> bool:
        """Both FINs or a RST seen."""
        return self.rst_packet is not None or len(self.fin) == 2

    # ------------------------------------------------------------------ options
    def parse_eno(self, seg: Segment) -> tuple[EnoOption | None, int | None, bool]:
        """The ENO option of a SYN or first ACK: (option, offset, legacy CRYPT seen).

        A malformed option (bad TCP option length) becomes a malformed EnoOption so the
        negotiation fails with that reason; offsets are relative to the TCP header.
        """
        options, problems, bad_kind = walk_options(seg.options)
        for problem in problems:
            self.findings.append(problem.at(packet=seg.number, base=20))
        found: EnoOption | None = None
        offset: int | None = None
        legacy = False
        for kind, pos, data in options:
            if kind == LEGACY_TCPCRYPT_MAC_KIND:
                legacy = True
            option = decode_option(kind, data, pos + 20) if kind == ENO_KIND or (
                kind in ENO_EXPERIMENTAL_KINDS) else None
            if option is None:
                continue
            if kind == ENO_KIND and looks_legacy(data, seg.flags):
                legacy = True
                continue
            if found is not None:
                self.add(Severity.WARNING, "eno-duplicate",
                         "more than one ENO option in one segment; the first counts",
                         seg.number, pos + 20)
                continue
            found, offset = option, pos + 20
            for problem in option.findings:
                if problem.code != "eno-malformed":  # summarised below, with its consequence
                    self.findings.append(problem.at(packet=seg.number))
        if found is None and bad_kind in (ENO_KIND, *ENO_EXPERIMENTAL_KINDS):
            self.add(Severity.ERROR, "eno-malformed",
                     f"ENO option (kind {bad_kind}) with a bad length: the option is ignored "
                     "and ENO fails", seg.number)
            found = EnoOption("rfc" if bad_kind == ENO_KIND else "experimental", bad_kind,
                              b"", (), True)
        elif found is not None and found.malformed:
            inner = [f for f in found.findings if f.code == "eno-malformed"]
            where = inner[0].offset if inner and inner[0].offset is not None else offset
            detail = "; ".join(f.message for f in inner)
            self.add(Severity.ERROR, "eno-malformed",
                     f"malformed ENO option (TCP header byte {where}): {detail}; the option is "
                     "ignored and ENO fails", seg.number, where)
        return found, offset, legacy

    # ------------------------------------------------------------------ handshake
    def on_syn(self, seg: Segment, from_x: bool) -> None:
        """A bare SYN from one side (A's, or either in a simultaneous open)."""
        eno, off, legacy = self.parse_eno(seg)
        self.syn[from_x] = SynInfo(seg.number, seg.seq, eno, off, legacy)
        self.legacy |= legacy
        if len(self.syn) == 2:
            self.simultaneous = True

    def on_synack(self, seg: Segment, from_x: bool) -> None:
        """A SYN-ACK: B's SYN in a normal open (ENO repeated in a simultaneous open)."""
        if self.simultaneous or from_x in self.synack:
            return
        eno, off, legacy = self.parse_eno(seg)
        self.synack[from_x] = SynInfo(seg.number, seg.seq, eno, off, legacy)
        self.legacy |= legacy

    def decide_roles(self) -> None:
        """A is the bare-SYN sender; in a simultaneous open the b bit decides."""
        if self.simultaneous:
            second_is_b = simultaneous_b_is_second(self.syn[True].eno, self.syn[False].eno)
            self.a_is_x = second_is_b is not False
        elif True in self.syn:
            self.a_is_x = True
        elif False in self.synack or True in self.synack:
            # Capture began after A's SYN: the SYN-ACK's receiver is A.
            self.a_is_x = False in self.synack

    def syn_of(self, a: bool) -> SynInfo | None:
        """Host A's SYN (a=True) or host B's SYN/SYN-ACK."""
        x_side = self.a_is_x if a else not self.a_is_x
        if self.simultaneous:
            return self.syn.get(x_side)
        if a:
            return self.syn.get(x_side)
        return self.synack.get(x_side)

    def decide_eno(self, ack_has_eno: bool | None, packet: int | None) -> None:
        """Decide the ENO outcome (at A's first non-SYN segment, or at the end)."""
        if self.negotiation is not None:
            return
        self.decide_roles()
        syn_a, syn_b = self.syn_of(True), self.syn_of(False)
        # Legacy CRYPT (kind 69 before ENO) means A's SYN carried no ENO at all; and a
        # SYN without ENO decides the outcome even if B's SYN-ACK was not captured.
        eno_a = None if self.legacy or syn_a is None else syn_a.eno
        seen = syn_a is not None and (syn_b is not None or eno_a is None)
        self.ack_eno = ack_has_eno
        self.ack_packet = packet
        self.negotiation = negotiate(eno_a, syn_b.eno if syn_b else None, ack_has_eno,
                                     simultaneous=self.simultaneous, handshake_seen=seen)
        if not seen:
            self.handshake_seen = False
            missing = "A's SYN" if syn_a is None else "B's SYN-ACK"
            self.add(Severity.NOTE, "handshake-not-captured",
                     f"{missing} is not in the capture: roles and ENO outcome are inferred",
                     packet)
        if self.legacy:
            self.add(Severity.NOTE, "legacy-tcpcrypt-option",
                     "kind 69 is used as the pre-2015 tcpcrypt CRYPT option (with kind 70 MAC), "
                     "not as ENO", syn_a.packet if syn_a else packet)
        self._setup_streams()

    def _setup_streams(self) -> None:
        neg = self.negotiation
        assert neg is not None
        tep = neg.tep
        modes: dict[bool, str | None] = {True: None, False: None}
        if neg.status == EnoStatus.NEGOTIATED and tep in TCPCRYPT_TEPS:
            modes = {True: MODE_FRAMES if neg.resumed else MODE_INIT1,
                     False: MODE_FRAMES if neg.resumed else MODE_INIT2}
        elif neg.status == EnoStatus.UNKNOWN:
            modes = {True: MODE_DETECT, False: MODE_DETECT}
        elif neg.reason == FallbackReason.ACK_WITHOUT_ENO:
            modes = {True: MODE_DETECT, False: None}
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
                                       self.findings, handler, self._detected)
            stream = existing or DirectionStream(parser, self.findings, label)
            stream.consumer = parser
            stream.label = label
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

    def release(self) -> None:
        """Drop per-connection state at once: parsers, handlers and the decryptor refer
        back to the connection, and leaving those cycles to the garbage collector lets
        memory climb on long captures."""
        self.streams.clear()
        self.tcpcrypt.clear()
        self.data.clear()
        self.handler_factory = None

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


def looks_legacy(data: bytes, flags: int) -> bool:
    """Whether kind-69 option data is the pre-2015 tcpcrypt CRYPT option, not ENO.

    Only unambiguous shapes count: a SYN saying exactly HELLO/HELLO_SUPPORT, a SYN-ACK
    whose PKCONF carries a cipher list of 3-byte specs, and other CRYPT opcodes that are
    not a valid ENO suboption sequence.
    """
    if not data:
        return False
    op = data[0]
    if flags & SYN and not flags & ACK:
        return False  # a bare SYN's 0x01/0x02 is also a valid ENO general suboption
    if flags & SYN and op in LEGACY_PKCONF_OPCODES and len(data) > 1 and (len(data) - 1) % 3 == 0:
        return True
    if not flags & SYN and op in LEGACY_OTHER_OPCODES and len(data) >= 2:
        return parse_suboptions(data)[2]
    return False

