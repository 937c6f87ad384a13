"""One synthetic TCP-ENO connection: plan it, run the reference endpoints over the
simulated TCP stack, and record the ground truth the analyzer must reproduce.

The expected outcome a plan declares (status, reason, TEP) is checked against what
the endpoints actually negotiated, so a catalog entry can never silently disagree with
the capture it describes. Knobs named ``break_*`` make a host break one RFC rule on
purpose, for the conformance samples; everything else is what RFC 8547/8548 require.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..eno import (
    ENCODING_RFC,
    EnoOption,
    Negotiation,
    Suboption,
    SynEno,
    TepSuboption,
    decode_option,
    encode_nonsyn_option,
    encode_option,
    negotiate,
)
from ..tcpcrypt.endpoint import EndpointA, EndpointB, Resumption, resumption
from ..tcpcrypt.frames import FrameSealer
from ..tcpcrypt.keyschedule import SessionKeys
from ..tcpcrypt.messages import parse_init1
from ..wire import (
    FRAME_CONTROL_REKEY,
    NONCE_OFFSET_TCP_STREAM,
    PUBKEY_LEN_WHOLE,
    TCPCRYPT_TEPS,
    EnoStatus,
    FallbackReason,
)
from .tcpsim import HostConfig, Impairments, SimPacket, TcpConversation, drop_from_capture, reorder

KEYS_SESSION_SECRET = "session_secret"
KEYS_PRIVATE_A = "private_key_a"
KEYS_PRIVATE_B = "private_key_b"
KEYS_MASTER = "master_key"
KEYS_TRAFFIC = "traffic_keys"
KEYS_WRONG = "wrong_session_secret"
KEYS_NONE = "none"


@dataclass
class EnoSpec:
    """One host's ENO option: suboptions and encoding, or raw bytes for malformed ones."""

    suboptions: Sequence[Suboption] = ()
    encoding: str = ENCODING_RFC
    kind: int = 253
    raw: bytes | None = None

    def encode(self) -> bytes:
        """The option bytes as they go on the wire."""
        if self.raw is not None:
            return self.raw
        return encode_option(self.suboptions, encoding=self.encoding, kind=self.kind)


@dataclass
class Message:
    """One application write."""

    from_a: bool
    data: bytes
    think_ns: int = 1_000_000
    urgent: int | None = None
    """Mark the message's first frame URGp with this urgent field."""
    empty_rekeys: int = 0
    """Empty rekey frames the sender starts with, before its data (keep-alives)."""


@dataclass
class ConnectionPlan:
    """Everything that defines one connection of a sample."""

    a: HostConfig
    b: HostConfig
    start_ns: int
    messages: list[Message]
    eno_a: EnoSpec | None = None
    eno_b: EnoSpec | None = None
    ack_has_eno: bool = True
    expect_status: EnoStatus = EnoStatus.NEGOTIATED
    expect_reason: FallbackReason | None = None
    expect_tep: int | None = None
    simultaneous: bool = False
    synack_stripped: bool = False
    """A middlebox overwrote B's ENO with NOPs (the capture shows the stripped SYN-ACK)."""
    ack_stripped: bool = False
    """A middlebox overwrote A's non-SYN ENO options with NOPs; A still runs tcpcrypt."""
    aeads_a: Sequence[int] = (0x0010, 0x0002, 0x0001)
    aeads_b: Sequence[int] = (0x0010, 0x0002, 0x0001)
    init1_ignored: bytes = b""
    init2_ignored: bytes = b""
    frame_data_max: int = 4000
    rekey_ab: Sequence[int] = ()
    """Indexes of A->B frames with which A initiates a rekey (answers come on top)."""
    rekey_ba: Sequence[int] = ()
    fin_frames: bool = True
    close: str = "fin"
    keylog: str = KEYS_SESSION_SECRET
    resume_parent: int | None = None
    """Plan index of the connection whose session this one resumes (ss[i+1] of it)."""
    resume_accepted: bool = True
    """B answers A's resumption offer (else with v = 0: a fresh key exchange follows)."""
    resume_nonces: tuple[int, int] = (8, 8)
    """Nonce lengths of the (active opener's, passive opener's) resumption suboptions."""
    nonce_base: str = NONCE_OFFSET_TCP_STREAM
    """Which reading of the frame-ID offset (RFC 8548 §3.6) both hosts use."""
    impairments: Impairments = field(default_factory=Impairments)
    reorder_count: int = 0
    gap_from_a: bool | None = None
    drop_handshake: bool = False
    syn_retransmit: bool = False
    iface: int = 0
    rtt_ns: int = 2_000_000
    syn_data: bytes = b""
    """Data in A's SYN (only the conformance samples: tcpcrypt defines no SYN data)."""
    break_syn_retransmit_eno: bytes | None = None
    """A's retransmitted SYN carries this ENO option instead of repeating its own."""
    break_nonsyn_contents: bytes = b""
    """Contents A puts in its non-SYN-form ENO options (must be empty under tcpcrypt)."""
    break_ack_eno: bool = False
    """A puts ENO on its ACK although the SYN-ACK made it fall back."""
    break_eno_only_on_ack: bool = False
    """A's handshake ACK carries ENO but its next segments (sent before any non-SYN
    segment from B) do not."""
    break_init1_psh: bool = False
    """A sends Init1 without PSH on its last segment."""
    break_uncompressed: bool = False
    """Both hosts send uncompressed NIST points."""
    break_cipher: int | None = None
    """B answers Init1 with this sym_cipher whatever A offered."""
    break_a_pubkey: bytes | None = None
    """A's Init1 carries this public key (an invalid one); B aborts with RST."""
    break_control: dict[int, int] = field(default_factory=dict)
    """A->B frame index -> reserved control bits to set."""
    break_flags: dict[int, int] = field(default_factory=dict)
    """B->A frame index -> reserved plaintext flag bits to set."""
    break_early_finp_ab: int | None = None
    """A->B frame index that carries FINp although frames follow it."""
    break_no_finp_ba: bool = False
    """B closes with TCP FIN but sets FINp on no frame."""
    break_no_rekey_answer_b: bool = False
    """B never answers A's rekeys."""
    break_tag_ba: int | None = None
    """B->A frame index whose tag is damaged on the wire."""
    break_plaintext_b: bytes | None = None
    """B answers Init1 with these plaintext bytes instead of Init2 (A then resets)."""
    expect_findings: tuple[str, ...] = ()
    """Conformance codes this connection must raise (one entry per expected finding)."""


@dataclass
class FrameRecord:
    """A frame as the sender produced it (stream offset counts from the stream start)."""

    stream_offset: int
    size: int
    data: bytes
    rekey: bool
    generation: int = 0
    intact: bool = True
    urgent: bool = False


@dataclass
class BuiltConnection:
    """A generated connection: its packets, key-log entries and ground truth."""

    plan: ConnectionPlan
    packets: list[SimPacket]
    keylog: list[tuple[str, tuple[bytes, ...]]]
    keys: SessionKeys | None
    truth: dict
    frames: dict[str, list[FrameRecord]]
    init_len: dict[str, int]
    findings: list[dict]
    ss0: bytes | None = None
    """ss[0] of the session chain this connection belongs to (for later resumptions)."""
    ss_index: int = 0
    active_was_a: bool = True
    """The active opener played A in the session that made ss[0]."""
    orig_a_ip: str | None = None
    """Address of the host that played A in the session that made ss[0]."""
    aead: int | None = None
    a_first: bool = True
    """ENO's host A is the simulator's first host (plan.a); False when the b bits made
    plan.b host A (a simultaneous open whose b = 1 host sent its SYN first)."""


def _endpoint_text(host: HostConfig) -> str:
    return f"[{host.ip}]:{host.port}" if ":" in host.ip else f"{host.ip}:{host.port}"


def _decode(raw: bytes | None) -> SynEno:
    """All ENO options in ``raw`` (usually one), decoded as the analyzer will."""
    if not raw:
        return SynEno()
    out: list[EnoOption] = []
    pos = 0
    while pos + 1 < len(raw):
        kind, length = raw[pos], raw[pos + 1]
        if length < 2 or pos + length > len(raw):
            break
        option = decode_option(kind, raw[pos + 2:pos + length])
        if option is not None:
            out.append(option)
        pos += length
    if not out and raw:
        out.append(EnoOption("rfc", raw[0], bytes(raw), (), True))
    return SynEno(tuple(out))


def _nop_strip(raw: bytes) -> bytes:
    return b"\x01" * len(raw)


class _Side:
    """One host's sending state: its sealer and key generation."""

    def __init__(self, sealer: FrameSealer, from_a: bool) -> None:
        self.sealer = sealer
        self.from_a = from_a
        self.counter = 0

    @property
    def gen(self) -> int:
        return self.sealer.generation


def _seal_message(side: _Side, peer: _Side, msg: Message, plan: ConnectionPlan, last: bool,
                  records: list[FrameRecord], start: int, answer: bool) -> bytes:
    """The frames of one application write, rekeys included (RFC 8548 §3.8): first the
    answers the sender owes for the peer's rekeys it has received, then its own."""
    answers = max(0, peer.gen - side.gen) if answer else 0
    chunks = [msg.data[i:i + plan.frame_data_max]
              for i in range(0, len(msg.data), plan.frame_data_max)] or [b""]
    plain: list[tuple[bytes, bool]] = [(b"", True)] * msg.empty_rekeys
    extra = max(0, answers - len(chunks))
    plain += [(b"", True)] * extra
    answers -= extra
    plain += [(c, k < answers) for k, c in enumerate(chunks)]
    out = bytearray()
    initiations = plan.rekey_ab if side.from_a else plan.rekey_ba
    data_index = 0
    for n, (chunk, rekey) in enumerate(plain):
        index = side.counter
        side.counter += 1
        rekey = rekey or index in initiations
        is_data = n >= len(plain) - len(chunks)
        fin = plan.fin_frames and last and n == len(plain) - 1
        if side.from_a and plan.break_early_finp_ab == index:
            fin = True
        if not side.from_a and plan.break_no_finp_ba:
            fin = False
        control = plan.break_control.get(index, 0) if side.from_a else 0
        flags = 0 if side.from_a else plan.break_flags.get(index, 0)
        urgent = msg.urgent if is_data and data_index == 0 else None
        frame = side.sealer.seal(chunk, fin=fin, rekey=rekey, urgent=urgent,
                                 extra_control=control, extra_flags=flags)
        intact = True
        if not side.from_a and plan.break_tag_ba == index:
            frame = frame[:-1] + bytes((frame[-1] ^ 0x80,))
            intact = False
        if is_data:
            data_index += 1
        records.append(FrameRecord(start + len(out), len(frame), chunk,
                                   bool(frame[0] & FRAME_CONTROL_REKEY), side.gen, intact,
                                   urgent is not None))
        out += frame
    return bytes(out)


def _negotiate(plan: ConnectionPlan, opt_a: SynEno, opt_b: SynEno) -> Negotiation:
    seen_b = SynEno() if plan.synack_stripped else opt_b
    return negotiate(opt_a, seen_b, plan.ack_has_eno and not plan.ack_stripped,
                     simultaneous=plan.simultaneous, handshake_seen=not plan.drop_handshake)


def _resumption_specs(plan: ConnectionPlan, parent: BuiltConnection, rng: random.Random
                      ) -> tuple[Resumption, bool]:
    """Resumption with the parent chain's next secret; returns it and whether the
    current active opener was A when ss[0] was made (RFC 8548 §3.5: the half a host
    sends follows its role in that original session, whatever its role now)."""
    active_was_a = plan.a.ip == parent.orig_a_ip
    len_active, len_passive = plan.resume_nonces
    nonce_active, nonce_passive = rng.randbytes(len_active), rng.randbytes(len_passive)
    nonce_a, nonce_b = ((nonce_active, nonce_passive) if active_was_a
                        else (nonce_passive, nonce_active))
    assert parent.ss0 is not None
    return resumption(parent.ss0, parent.ss_index + 1, nonce_a, nonce_b), active_was_a


def build_connection(plan: ConnectionPlan, rng: random.Random,
                     parents: Sequence[BuiltConnection | None] = ()) -> BuiltConnection:
    """Generate one connection's packets and its ground truth."""
    parent = parents[plan.resume_parent] if plan.resume_parent is not None else None
    resume: Resumption | None = None
    active_was_a = True
    eno_a, eno_b = plan.eno_a, plan.eno_b
    if parent is not None and parent.ss0 is not None and eno_a is not None and eno_b is not None:
        resume, active_was_a = _resumption_specs(plan, parent, rng)
        tep = parent.keys.tep if parent.keys else plan.expect_tep or 0
        # The resumption suboption replaces A's plain offer of that TEP (it implies
        # willingness to do a fresh key agreement, RFC 8548 §3.2); last, so no length byte.
        sub_a = TepSuboption(tep, resume.suboption_data(active_was_a))
        others = [s for s in eno_a.suboptions if not isinstance(s, TepSuboption) or s.tep != tep]
        eno_a = EnoSpec([*others, sub_a], eno_a.encoding, eno_a.kind)
        b_sub = (TepSuboption(tep, resume.suboption_data(not active_was_a))
                 if plan.resume_accepted else TepSuboption(tep))
        eno_b = EnoSpec([*[s for s in eno_b.suboptions if not isinstance(s, TepSuboption)
                           or s.tep != tep], b_sub], eno_b.encoding, eno_b.kind)
    syn_a_raw = eno_a.encode() if eno_a else b""
    syn_b_raw = eno_b.encode() if eno_b else b""
    opt_a, opt_b = _decode(syn_a_raw), _decode(syn_b_raw)
    outcome = _negotiate(plan, opt_a, opt_b)
    if (outcome.status, outcome.reason) != (plan.expect_status, plan.expect_reason):
        raise AssertionError(f"plan expects {plan.expect_status}/{plan.expect_reason}, "
                             f"endpoints negotiated {outcome.status}/{outcome.reason}")
    if outcome.tep != plan.expect_tep and plan.expect_status == EnoStatus.NEGOTIATED:
        raise AssertionError(f"plan expects TEP {plan.expect_tep}, got {outcome.tep}")
    resumed = bool(resume is not None and outcome.resumed)
    encoding = (opt_a.options[0].encoding if opt_a.options and not plan.drop_handshake
                else None)
    view = negotiate(opt_a, SynEno() if plan.synack_stripped else opt_b, True,
                     simultaneous=plan.simultaneous)
    # What A itself believes (a middlebox may have stripped its ACK's ENO unseen by A).
    a_runs_tcpcrypt = ((outcome.status == EnoStatus.NEGOTIATED or plan.ack_stripped)
                       and plan.expect_tep in TCPCRYPT_TEPS)
    b_runs_tcpcrypt = outcome.status == EnoStatus.NEGOTIATED and plan.expect_tep in TCPCRYPT_TEPS
    if plan.drop_handshake:
        a_runs_tcpcrypt = b_runs_tcpcrypt = plan.expect_tep in TCPCRYPT_TEPS

    conv = TcpConversation(plan.a, plan.b, start_ns=plan.start_ns, rng=rng, rtt_ns=plan.rtt_ns,
                           impairments=plan.impairments)
    conv.eno_nonsyn_once = plan.break_eno_only_on_ack
    a_enables = view.status == EnoStatus.NEGOTIATED and opt_a.present
    enc = opt_a.options[0].encoding if opt_a.options else ENCODING_RFC
    kind = opt_a.options[0].kind if opt_a.options else 253
    nonsyn = encode_nonsyn_option(enc, kind, plan.break_nonsyn_contents)
    ack_bytes = nonsyn if (a_enables and plan.ack_has_eno) or plan.break_ack_eno else b""
    if plan.ack_stripped:
        ack_bytes = _nop_strip(ack_bytes)
    conv.open(syn_a_eno=syn_a_raw,
              syn_b_eno=_nop_strip(syn_b_raw) if plan.synack_stripped else syn_b_raw,
              ack_a_eno=ack_bytes, simultaneous=plan.simultaneous,
              syn_retransmit=plan.syn_retransmit or plan.break_syn_retransmit_eno is not None,
              syn_retransmit_eno=plan.break_syn_retransmit_eno, syn_a_data=plan.syn_data,
              nonsyn_b_eno=encode_nonsyn_option(enc, kind) if a_enables else b"")
    handshake_packets = len(conv.packets)
    if outcome.reason == FallbackReason.MALFORMED_ENO:
        blame_a = bool(opt_a.option and opt_a.option.malformed) or (
            opt_a.present and opt_a.option is None)
        next(p for p in conv.packets if p.from_a == blame_a).tags.add("eno-malformed")

    keylog: list[tuple[str, tuple[bytes, ...]]] = []
    keys: SessionKeys | None = None
    frames: dict[str, list[FrameRecord]] = {"ab": [], "ba": []}
    init_len = {"ab": 0, "ba": 0}
    tcpcrypt_truth: dict | None = None
    built_extra: dict = {}
    if a_runs_tcpcrypt:
        tep = plan.expect_tep or 0
        if not opt_a.option or not opt_b.option:
            raise AssertionError("tcpcrypt needs ENO options on both SYNs")
        a_first = outcome.a_is_first
        syn_a_opt, syn_b_opt = ((opt_a.option, opt_b.option) if a_first
                                else (opt_b.option, opt_a.option))
        transcript = syn_a_opt.raw + syn_b_opt.raw
        tep_byte = outcome.tep_byte if outcome.tep_byte is not None else tep
        ident: bytes
        ab_uses_k_ab = True
        if resume is not None and resumed:
            aead = parent.aead if parent is not None and parent.aead else 0x0010
            keys = resume.keys(tep_byte, aead)
            ident = resume.resume
            ab_uses_k_ab = active_was_a
            built_extra = {"ss0": parent.ss0 if parent else None,
                           "ss_index": resume.index, "active_was_a": active_was_a,
                           "orig_a_ip": parent.orig_a_ip if parent else None}
        else:
            ep_a = EndpointA(tep, plan.aeads_a, rng, ignored=plan.init1_ignored,
                             pubkey_reading=PUBKEY_LEN_WHOLE,
                             compressed=not plan.break_uncompressed)
            if plan.break_a_pubkey is not None:
                parsed = parse_init1(ep_a.init1, tep)[0]
                assert parsed is not None
                ep_a.init1 = ep_a.init1.replace(parsed.pub_wire, plan.break_a_pubkey)
            ep_b = EndpointB(tep, plan.aeads_b, rng, ignored=plan.init2_ignored,
                             compressed=not plan.break_uncompressed,
                             force_cipher=plan.break_cipher)
            conv.send(a_first, ep_a.init1, psh=not plan.break_init1_psh)
            init_len["ab"] = len(ep_a.init1)
            if (not b_runs_tcpcrypt or plan.break_a_pubkey is not None
                    or plan.break_plaintext_b is not None):
                if plan.break_plaintext_b is not None:
                    # B answers in plaintext although ENO negotiated tcpcrypt: A aborts.
                    conv.send(not a_first, plan.break_plaintext_b, think_ns=200_000)
                    conv.wait(plan.rtt_ns)
                    conv.reset(from_a=a_first)
                else:
                    # B never took part (reads Init1 as data), or must abort: it resets.
                    conv.wait(plan.rtt_ns)
                    conv.reset(from_a=not a_first)
                aborted = None
                if b_runs_tcpcrypt:
                    aborted = {"init1": {"sym_ciphers": list(plan.aeads_a),
                                         "ignored_len": len(plan.init1_ignored),
                                         "length": len(ep_a.init1)}}
                return _finish(plan, conv, rng, keylog, None, frames, init_len, encoding,
                               aborted, handshake_packets, a_first=a_first)
            init2 = ep_b.receive_init1(ep_a.init1, transcript, tep_byte)
            conv.send(not a_first, init2, think_ns=200_000)
            init_len["ba"] = len(init2)
            if plan.break_cipher is not None:
                keys = ep_b.keys
            else:
                keys = ep_a.receive_init2(init2, transcript, tep_byte)
            assert keys is not None
            ident = ep_a.nonce
            if plan.keylog == KEYS_PRIVATE_A:
                keylog.append(("TCPCRYPT_EPHEMERAL_PRIVATE",
                               (ep_a.keypair.public, ep_a.keypair.private)))
            elif plan.keylog == KEYS_PRIVATE_B:
                keylog.append(("TCPCRYPT_EPHEMERAL_PRIVATE",
                               (ep_b.keypair.public, ep_b.keypair.private)))
            built_extra = {"ss0": keys.ss, "ss_index": 0, "active_was_a": a_first,
                           "orig_a_ip": (plan.a if a_first else plan.b).ip}
            tcpcrypt_truth = {"init1": {"sym_ciphers": list(plan.aeads_a),
                                        "ignored_len": len(plan.init1_ignored),
                                        "length": len(ep_a.init1)},
                              "init2": {"sym_cipher": keys.aead,
                                        "ignored_len": len(plan.init2_ignored),
                                        "length": len(init2)}}
        if plan.keylog == KEYS_SESSION_SECRET:
            keylog.append(("TCPCRYPT_SESSION_SECRET", (ident, keys.ss)))
        elif plan.keylog == KEYS_MASTER:
            keylog.append(("TCPCRYPT_MASTER_KEY", (ident, keys.mk0)))
        elif plan.keylog == KEYS_TRAFFIC:
            k_ab, k_ba = keys.k_ab, keys.k_ba
            keylog.append(("TCPCRYPT_TRAFFIC_KEYS", (ident, k_ab, k_ba)))
        elif plan.keylog == KEYS_WRONG:
            keylog.append(("TCPCRYPT_SESSION_SECRET", (ident, rng.randbytes(32))))
        chain = keys.chain()
        sides = {}
        for from_a in (True, False):
            uses_k_ab = from_a == ab_uses_k_ab
            start = conv.stream_len[0 if from_a == a_first else 1]
            sealer = FrameSealer(keys.aead, lambda g, ab=uses_k_ab: chain.key(g, ab),
                                 offset=start, init_len=start, base=plan.nonce_base)
            sides[from_a] = _Side(sealer, from_a)
        last_index = {d: max((k for k, m in enumerate(plan.messages) if m.from_a == d),
                             default=-1) for d in (True, False)}
        for k, msg in enumerate(plan.messages):
            key = "ab" if msg.from_a else "ba"
            side, peer = sides[msg.from_a], sides[not msg.from_a]
            conv_from = msg.from_a == a_first
            start = conv.stream_len[0 if conv_from else 1]
            answer = not (plan.break_no_rekey_answer_b and not msg.from_a)
            payload = _seal_message(side, peer, msg, plan, k == last_index[msg.from_a],
                                    frames[key], start, answer)
            conv.send(conv_from, payload, think_ns=msg.think_ns)
        tcpcrypt_truth = tcpcrypt_truth or {}
    else:
        for msg in plan.messages:
            conv.send(msg.from_a, msg.data, think_ns=msg.think_ns)
    built = _finish(plan, conv, rng, keylog, keys, frames, init_len, encoding, tcpcrypt_truth,
                    handshake_packets, resumed=resumed, a_first=outcome.a_is_first)
    if built_extra:
        built.ss0 = built_extra["ss0"]
        built.ss_index = built_extra["ss_index"]
        built.active_was_a = built_extra["active_was_a"]
        built.orig_a_ip = built_extra["orig_a_ip"]
        built.aead = keys.aead if keys is not None else None
    return built


def _finish(plan: ConnectionPlan, conv: TcpConversation, rng: random.Random,
            keylog: list, keys: SessionKeys | None, frames: dict[str, list[FrameRecord]],
            init_len: dict[str, int], encoding: str | None, tcpcrypt_truth: dict | None,
            handshake_packets: int, *, resumed: bool = False,
            a_first: bool = True) -> BuiltConnection:
    if not conv.closed:
        if plan.close == "fin":
            conv.close(first_from_a=True)
        elif plan.close == "rst":
            conv.reset(from_a=True)
    packets = conv.packets
    findings: list[dict] = []
    if plan.drop_handshake:
        del packets[:handshake_packets]
    if plan.reorder_count:
        reorder(packets, rng, plan.reorder_count)
    if plan.gap_from_a is not None:
        key = "ab" if plan.gap_from_a else "ba"
        first = frames[key][1].stream_offset if len(frames[key]) > 1 else init_len[key]
        dropped = drop_from_capture(packets, rng, from_a=plan.gap_from_a, min_offset=first)
        if dropped is None:
            raise AssertionError("no data segment could be removed for the gap")
        findings.append({"code": "tcp-gap", "direction": key,
                         "offset": dropped.stream_offset, "size": len(dropped.seg.payload)})
    host_a, host_b = (plan.a, plan.b) if a_first else (plan.b, plan.a)
    truth = {
        "a": _endpoint_text(host_a),
        "b": _endpoint_text(host_b),
        "eno": {
            "status": str(plan.expect_status),
            "reason": str(plan.expect_reason) if plan.expect_reason else None,
            "negotiated_tep": plan.expect_tep if plan.expect_status == EnoStatus.NEGOTIATED
            else None,
            "encoding": encoding,
        },
        "tcpcrypt": None,
    }
    if keys is None and tcpcrypt_truth is not None:
        truth["tcpcrypt"] = {"resumed": False, "aead": None, "frames": {"ab": 0, "ba": 0},
                             "rekeys": {"ab": 0, "ba": 0}, "nonce_offset_base": None,
                             **tcpcrypt_truth}
    elif keys is not None and tcpcrypt_truth is not None:
        truth["tcpcrypt"] = {
            "resumed": resumed,
            "aead": keys.aead,
            "frames": {d: len(frames[d]) for d in ("ab", "ba")},
            "rekeys": {d: sum(f.rekey for f in frames[d]) for d in ("ab", "ba")},
            "nonce_offset_base": None if resumed else plan.nonce_base,
            **tcpcrypt_truth,
        }
    findings += [{"code": code, "conformance": True} for code in plan.expect_findings]
    return BuiltConnection(plan, packets, keylog, keys, truth, frames, init_len, findings,
                           a_first=a_first)


def frame_sha256(records: Sequence[FrameRecord]) -> str:
    """sha256 over the application data of the given frames, in order."""
    h = hashlib.sha256()
    for r in records:
        h.update(r.data)
    return h.hexdigest()
