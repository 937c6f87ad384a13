"""One synthetic TCP-ENO connection: plan it, run the reference endpoints over the
simulated TCP stack, and record the ground truth the analyzer must reproduce.

The expected outcome a plan declares (status, reason, TEP) is checked against what
the endpoints actually negotiated, so a catalog entry can never silently disagree with
the capture it describes.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..eno import (
    ENCODING_RFC,
    EnoOption,
    Suboption,
    TepSuboption,
    decode_option,
    encode_option,
    negotiate,
)
from ..tcpcrypt.endpoint import EndpointA, EndpointB, resumed_keys
from ..tcpcrypt.frames import FrameSealer
from ..tcpcrypt.keyschedule import SessionKeys
from ..wire import (
    TCPCRYPT_TEPS,
    EnoStatus,
    FallbackReason,
    eno_transcript,
)
from .tcpsim import HostConfig, Impairments, SimPacket, TcpConversation, drop_from_capture, reorder

KEYS_SESSION_SECRET = "session_secret"
KEYS_PRIVATE_A = "private_key_a"
KEYS_PRIVATE_B = "private_key_b"
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


def ack_eno(spec: EnoSpec | None) -> bytes:
    """The (empty) ENO option A puts on its first non-SYN segment, in A's encoding."""
    enc = spec.encoding if spec else ENCODING_RFC
    kind = spec.kind if spec else 253
    return encode_option((), encoding=enc, kind=kind)


@dataclass
class Message:
    """One application write."""

    from_a: bool
    data: bytes
    think_ns: int = 1_000_000
    urgent: int | None = None
    """Mark the message's first frame URGENT with this offset."""


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
    """A middlebox overwrote A's ENO on its first ACK with NOPs; A still runs tcpcrypt."""
    aeads_a: Sequence[int] = (0x10, 0x02, 0x01)
    aeads_b: Sequence[int] = (0x10, 0x02, 0x01)
    init1_ignored: bytes = b""
    init2_ignored: bytes = b""
    frame_data_max: int = 4000
    rekey_ab: Sequence[int] = ()
    """Indexes of A->B frames that switch to the next key generation."""
    rekey_ba: Sequence[int] = ()
    fin_frames: bool = True
    close: str = "fin"
    keylog: str = KEYS_SESSION_SECRET
    resume_parent: int | None = None
    resume_accepted: bool = True
    """B answers A's resumption offer (else B falls back to a full key exchange)."""
    impairments: Impairments = field(default_factory=Impairments)
    reorder_count: int = 0
    gap_from_a: bool | None = None
    drop_handshake: bool = False
    syn_retransmit: bool = False
    iface: int = 0
    rtt_ns: int = 2_000_000


@dataclass
class FrameRecord:
    """A frame as the sender produced it (stream offset counts from the stream start)."""

    stream_offset: int
    size: int
    data: bytes
    rekey: bool


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


def _endpoint_text(host: HostConfig) -> str:
    return f"[{host.ip}]:{host.port}" if ":" in host.ip else f"{host.ip}:{host.port}"


def _decode(raw: bytes | None) -> EnoOption | None:
    if not raw:
        return None
    return decode_option(raw[0], raw[2:])


def _nop_strip(raw: bytes) -> bytes:
    return b"\x01" * len(raw)


def _frames_for(sealer: FrameSealer, data: bytes, max_data: int, start: int, counter: list[int],
                rekeys: Sequence[int], fin: bool, urgent: int | None,
                records: list[FrameRecord]) -> bytes:
    out = bytearray()
    chunks = [data[i:i + max_data] for i in range(0, len(data), max_data)] or [b""]
    for n, chunk in enumerate(chunks):
        index = counter[0]
        counter[0] += 1
        last = n == len(chunks) - 1
        frame = sealer.seal(chunk, fin=fin and last, rekey=index in rekeys,
                            urgent=urgent if n == 0 else None)
        records.append(FrameRecord(start + len(out), len(frame), chunk, index in rekeys))
        out += frame
    return bytes(out)


def build_connection(plan: ConnectionPlan, rng: random.Random,
                     parents: Sequence[BuiltConnection | None] = ()) -> BuiltConnection:
    """Generate one connection's packets and its ground truth."""
    parent = parents[plan.resume_parent] if plan.resume_parent is not None else None
    parent_keys = parent.keys if parent else None
    resume: tuple[SessionKeys, bytes, bytes] | None = None
    eno_a, eno_b = plan.eno_a, plan.eno_b
    if parent_keys is not None and eno_a is not None and eno_b is not None:
        resume = resumed_keys(parent_keys)
        tep = parent_keys.tep
        eno_a = EnoSpec([TepSuboption(tep, resume[1], length_byte=True), *eno_a.suboptions],
                        eno_a.encoding, eno_a.kind)
        if plan.resume_accepted:
            eno_b = EnoSpec([*eno_b.suboptions, TepSuboption(tep, resume[2])],
                            eno_b.encoding, eno_b.kind)
    syn_a_raw = eno_a.encode() if eno_a else b""
    syn_b_raw = eno_b.encode() if eno_b else b""
    opt_a, opt_b = _decode(syn_a_raw), _decode(syn_b_raw)
    seen_b = None if plan.synack_stripped else opt_b
    outcome = negotiate(opt_a, seen_b, plan.ack_has_eno and not plan.ack_stripped,
                        simultaneous=plan.simultaneous, handshake_seen=not plan.drop_handshake)
    if (outcome.status, outcome.reason) != (plan.expect_status, plan.expect_reason):
        raise AssertionError(f"plan expects {plan.expect_status}/{plan.expect_reason}, "
                             f"endpoints negotiated {outcome.status}/{outcome.reason}")
    if outcome.tep != plan.expect_tep and plan.expect_status == EnoStatus.NEGOTIATED:
        raise AssertionError(f"plan expects TEP {plan.expect_tep}, got {outcome.tep}")
    encoding = opt_a.encoding if opt_a is not None and not plan.drop_handshake else None
    # What A itself believes (a middlebox may have stripped its ACK's ENO unseen by A).
    a_runs_tcpcrypt = ((outcome.status == EnoStatus.NEGOTIATED or plan.ack_stripped)
                       and plan.expect_tep in TCPCRYPT_TEPS)
    b_runs_tcpcrypt = outcome.status == EnoStatus.NEGOTIATED and plan.expect_tep in TCPCRYPT_TEPS
    if plan.drop_handshake:
        a_runs_tcpcrypt = b_runs_tcpcrypt = plan.expect_tep in TCPCRYPT_TEPS

    conv = TcpConversation(plan.a, plan.b, start_ns=plan.start_ns, rng=rng, rtt_ns=plan.rtt_ns,
                           impairments=plan.impairments)
    ack_bytes = ack_eno(eno_a) if opt_a is not None and plan.ack_has_eno else b""
    if plan.ack_stripped:
        ack_bytes = _nop_strip(ack_bytes)
    conv.open(syn_a_eno=syn_a_raw,
              syn_b_eno=_nop_strip(syn_b_raw) if plan.synack_stripped else syn_b_raw,
              ack_a_eno=ack_bytes, simultaneous=plan.simultaneous,
              syn_retransmit=plan.syn_retransmit)
    handshake_packets = len(conv.packets)
    if outcome.reason == FallbackReason.MALFORMED_OPTION:
        blame_a = bool(opt_a and opt_a.malformed)
        next(p for p in conv.packets if p.from_a == blame_a).tags.add("eno-malformed")

    keylog: list[tuple[str, tuple[bytes, ...]]] = []
    keys: SessionKeys | None = None
    frames: dict[str, list[FrameRecord]] = {"ab": [], "ba": []}
    init_len = {"ab": 0, "ba": 0}
    tcpcrypt_truth: dict | None = None
    if a_runs_tcpcrypt:
        tep = plan.expect_tep or 0
        if opt_a is None or opt_b is None:
            raise AssertionError("tcpcrypt needs ENO options on both SYNs")
        transcript = eno_transcript(opt_a.rfc_form(), opt_b.rfc_form())
        ident: bytes
        if resume is not None and outcome.resumed:
            keys, ident = resume[0], resume[1]
        else:
            ep_a = EndpointA(tep, plan.aeads_a, rng, ignored=plan.init1_ignored)
            ep_b = EndpointB(tep, plan.aeads_b, rng, ignored=plan.init2_ignored)
            conv.send(True, ep_a.init1)
            init_len["ab"] = len(ep_a.init1)
            if not b_runs_tcpcrypt:
                # B never took part: it reads Init1 as application data and gives up.
                conv.wait(plan.rtt_ns)
                conv.reset(from_a=False)
                return _finish(plan, conv, rng, keylog, None, frames, init_len, encoding,
                               None, handshake_packets)
            init2 = ep_b.receive_init1(ep_a.init1, transcript)
            conv.send(False, init2, think_ns=200_000)
            init_len["ba"] = len(init2)
            keys = ep_a.receive_init2(init2, transcript)
            ident = ep_a.nonce
            if plan.keylog == KEYS_PRIVATE_A:
                keylog.append(("TCPCRYPT_EPHEMERAL_PRIVATE",
                               (ep_a.keypair.public, ep_a.keypair.private)))
            elif plan.keylog == KEYS_PRIVATE_B:
                keylog.append(("TCPCRYPT_EPHEMERAL_PRIVATE",
                               (ep_b.keypair.public, ep_b.keypair.private)))
            tcpcrypt_truth = {"init1": {"sym_ciphers": list(plan.aeads_a),
                                        "ignored_len": len(plan.init1_ignored),
                                        "length": len(ep_a.init1)},
                              "init2": {"sym_cipher": keys.aead,
                                        "ignored_len": len(plan.init2_ignored),
                                        "length": len(init2)}}
        if plan.keylog == KEYS_SESSION_SECRET:
            keylog.append(("TCPCRYPT_SESSION_SECRET", (ident, keys.ss)))
        elif plan.keylog == KEYS_TRAFFIC:
            keylog.append(("TCPCRYPT_TRAFFIC_KEYS", (ident, keys.k_ab, keys.k_ba)))
        elif plan.keylog == KEYS_WRONG:
            keylog.append(("TCPCRYPT_SESSION_SECRET", (ident, rng.randbytes(32))))
        seal = {True: FrameSealer(keys.aead, keys.k_ab), False: FrameSealer(keys.aead, keys.k_ba)}
        counters = {True: [0], False: [0]}
        last_index = {d: max((k for k, m in enumerate(plan.messages) if m.from_a == d),
                             default=-1) for d in (True, False)}
        for k, msg in enumerate(plan.messages):
            key = "ab" if msg.from_a else "ba"
            start = conv.stream_len[0 if msg.from_a else 1]
            payload = _frames_for(seal[msg.from_a], msg.data, plan.frame_data_max, start,
                                  counters[msg.from_a],
                                  plan.rekey_ab if msg.from_a else plan.rekey_ba,
                                  plan.fin_frames and k == last_index[msg.from_a], msg.urgent,
                                  frames[key])
            conv.send(msg.from_a, payload, think_ns=msg.think_ns)
        tcpcrypt_truth = tcpcrypt_truth or {}
    else:
        for msg in plan.messages:
            conv.send(msg.from_a, msg.data, think_ns=msg.think_ns)
    return _finish(plan, conv, rng, keylog, keys, frames, init_len, encoding, tcpcrypt_truth,
                   handshake_packets, resumed=bool(resume and outcome.resumed))


def _finish(plan: ConnectionPlan, conv: TcpConversation, rng: random.Random,
            keylog: list, keys: SessionKeys | None, frames: dict[str, list[FrameRecord]],
            init_len: dict[str, int], encoding: str | None, tcpcrypt_truth: dict | None,
            handshake_packets: int, *, resumed: bool = False) -> BuiltConnection:
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
    truth = {
        "a": _endpoint_text(plan.a),
        "b": _endpoint_text(plan.b),
        "eno": {
            "status": str(plan.expect_status),
            "reason": str(plan.expect_reason) if plan.expect_reason else None,
            "negotiated_tep": plan.expect_tep if plan.expect_status == EnoStatus.NEGOTIATED
            else None,
            "encoding": encoding,
        },
        "tcpcrypt": None,
    }
    if keys is not None and tcpcrypt_truth is not None:
        truth["tcpcrypt"] = {
            "resumed": resumed,
            "aead": keys.aead,
            "frames": {d: len(frames[d]) for d in ("ab", "ba")},
            "rekeys": {d: sum(f.rekey for f in frames[d]) for d in ("ab", "ba")},
            **tcpcrypt_truth,
        }
    return BuiltConnection(plan, packets, keylog, keys, truth, frames, init_len, findings)


def frame_sha256(records: Sequence[FrameRecord]) -> str:
    """sha256 over the application data of the given frames, in order."""
    h = hashlib.sha256()
    for r in records:
        h.update(r.data)
    return h.hexdigest()

