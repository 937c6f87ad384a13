"""Decrypt and verify tcpcrypt connections from a key log, as the frames stream by.

For each tcpcrypt connection this finds its keys, then opens every frame, verifies
every tag, follows rekeys per direction (each generation's key from mk[j]) and passes
application data on. Keys come from, most capable first: a logged session secret
(ss[0] under N_A, or ss[i] under resume[i]); an ephemeral private key (ES, transcript,
PRK, ss[0] computed here); the resumption chain ss[0] -> ss[i] of a session known from
the capture or the key log; a logged master key mk[0]; logged generation-0 traffic keys.
The frame-ID offset base (**[ambiguous]**, RFC 8548 §3.6) is found on each direction's
first frame by trying both readings; so is a resumed session's AEAD when its original
session is unknown.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .analysis.connection import Connection
from .eno import tcpcrypt_suboption_kind
from .findings import Finding, Severity
from .keylog import KeyLog
from .tcpcrypt.frames import TrafficCipher
from .tcpcrypt.keyschedule import (
    KeyAgreementError,
    KeyChain,
    SessionKeys,
    keypair_from_private,
    shared_secret,
)
from .tcpcrypt.messages import Init1, Init2
from .tcpcrypt.stream import FrameInfo, TcpcryptDirection
from .wire import (
    AEADS,
    NONCE_OFFSET_AFTER_INIT,
    NONCE_OFFSET_BASES,
    NONCE_OFFSET_TCP_STREAM,
    PLAINTEXT_FINP,
    PLAINTEXT_RESERVED,
    RESUME_HALF_LEN,
    RESUME_SEARCH_DEPTH,
    decode_plaintext,
    eno_transcript,
    first_master_key,
    frame_id_offset,
    initial_session_secret,
    next_session_secret,
    resume_identifier,
    resumed_session_aead,
    session_nonce,
    urgent_index,
)

QUEUE_LIMIT = 4 << 20
"""Ciphertext bytes held while a connection's keys are not known yet."""
MAX_FAILURE_REPORTS = 5
REKEY_LOOKAHEAD = 3
"""Key generations tried past the current one when resynchronising after a gap."""
RFC = "RFC 8548"

PlaintextSink = Callable[[Connection, str, int, bytes, int], None]
"""(connection, direction, plaintext stream offset, application data, packet)."""

KEYS_SESSION_SECRET = "session_secret"
KEYS_PRIVATE = "private_key"
KEYS_RESUMPTION = "resumption"
KEYS_MASTER = "master_key"
KEYS_TRAFFIC = "traffic_keys"


CHAIN_KEYLOG_MAX = 20_000
"""Key-log ss[0] entries whose resumption chains are built for resumed connections."""


@dataclass
class ChainEntry:
    """A session secret ss[i] reachable by its resumption identifier resume[i]."""

    ss: bytes
    index: int | None
    """i, when the chain's ss[0] is known; None for a chain started from a resumed
    session's secret logged under its resume[i] (i itself is not on the wire)."""
    aead: int | None
    """The original session's AEAD, when known (the resumed session reuses it)."""
    origin: int | None
    """Connection id that made ss[0] (None: from the key log only)."""


@dataclass
class KeySource:
    """Where one connection's keys come from and what they can do."""

    keys_from: str
    aead: int | None
    mk0: bytes | None = None
    """mk[0]: every generation (session secret, private key, chain, master key)."""
    traffic: tuple[bytes, bytes] | None = None
    """k_ab[0], k_ba[0] only (traffic-keys entries)."""
    session: SessionKeys | None = None
    ab_uses_k_ab: bool = True
    """Current host A encrypts with k_ab: always for a fresh session; for a resumed one,
    when the current A was A in the session that made ss[0] (RFC 8548 §3.3, §3.5)."""
    resume_index: int | None = None
    _chain: KeyChain | None = None

    def key(self, generation: int, direction: str) -> bytes | None:
        """The traffic key (K || NR) a direction uses in ``generation``; None when the
        source cannot give it (traffic keys past generation 0, AEAD unknown)."""
        if self.aead is None:
            return None
        ab = (direction == "ab") == self.ab_uses_k_ab
        if self.mk0 is not None:
            if self._chain is None:
                self._chain = KeyChain(self.mk0, self.aead)
            return self._chain.key(generation, ab)
        if self.traffic is not None and generation == 0:
            return self.traffic[0 if ab else 1]
        return None

    def with_aead(self, aead: int) -> None:
        """Fix the AEAD once a frame authenticated under it."""
        self.aead = aead
        self._chain = None
        if self.session is not None:
            self.session = SessionKeys(self.session.tep_byte, aead, self.session.ss,
                                       self.session.sn)


@dataclass
class DecryptionContext:
    """Shared across connections: the key log, the resumption chain, the outputs."""

    keylog: KeyLog
    show_secrets: bool = False
    sink: PlaintextSink | None = None
    resume_depth: int = RESUME_SEARCH_DEPTH
    """How far down ss[0] -> ss[i] a resumed connection's identifier is looked for."""
    chain: dict[bytes, ChainEntry] = field(default_factory=dict)
    """resume[i] -> ss[i], from connections decrypted so far and from the key log."""
    keylog_chained: bool = False
    chain_skipped: int = 0
    """Key-log session secrets left out of the resumption chain (over CHAIN_KEYLOG_MAX)."""
    frame_map: Callable[[Connection, str, int, int, int], None] | None = None
    """Called after every frame: (connection, direction, stream offset just past the
    frame, plaintext offset just past its data, the frame's stream offset); lets
    --pcap-out re-map sequence numbers."""
    on_finalize: Callable[[Connection], None] | None = None

    def factory(self, conn: Connection, direction: str) -> DirectionDecryptor:
        """HandlerFactory: one decryptor per tcpcrypt direction, sharing one resolver."""
        resolver = conn.data.get("resolver")
        if resolver is None:
            resolver = conn.data["resolver"] = KeyResolver(self, conn)
        return DirectionDecryptor(resolver, direction)

    def add_chain(self, ss: bytes, index: int | None, aead: int | None,
                  origin: int | None) -> None:
        """Index resume[j] of ss[index+1 .. index+depth] for later resumed connections."""
        for step in range(1, 1 + self.resume_depth):
            ss = next_session_secret(ss)
            ident = resume_identifier(ss)
            if ident not in self.chain or self.chain[ident].origin is None:
                j = None if index is None else index + step
                self.chain[ident] = ChainEntry(ss, j, aead, origin)

    def chain_lookup(self, ident: bytes) -> ChainEntry | None:
        """resume[i] -> ss[i]; chains of the key log's ss[0] entries are built on first
        need, so captures without resumption never pay for them. At most
        ``CHAIN_KEYLOG_MAX`` session secrets are chained (each costs ``resume_depth``
        HKDF steps and as many index entries): a huge key log must not cost minutes and
        gigabytes for one resumed connection; ``chain_skipped`` says how many were not."""
        entry = self.chain.get(ident)
        if entry is None and not self.keylog_chained:
            self.keylog_chained = True
            chained = 0
            for n_a, ss0 in self.keylog.session_secrets.items():
                if len(n_a) != 32:
                    continue
                if chained == CHAIN_KEYLOG_MAX:
                    self.chain_skipped += 1
                    continue
                self.add_chain(ss0, 0, None, None)
                chained += 1
            entry = self.chain.get(ident)
        return entry


@dataclass(frozen=True)
class ResumeView:
    """A resumed connection's two resumption suboptions, by current role."""

    half_a: bytes
    nonce_a: bytes
    half_b: bytes
    nonce_b: bytes

    def candidates(self) -> list[tuple[bytes, bool]]:
        """(resume[i], current A was originally A) for both orders of the halves."""
        return [(self.half_a + self.half_b, True), (self.half_b + self.half_a, False)]

    def sn(self, a_was_a: bool) -> bytes:
        """sn[i] = nonce of the originally-A host | nonce of the originally-B host."""
        return (session_nonce(self.nonce_a, self.nonce_b) if a_was_a
                else session_nonce(self.nonce_b, self.nonce_a))


def resume_view(conn: Connection) -> ResumeView | None:
    """The resumption halves and nonces of a resumed connection, from both SYNs."""
    neg = conn.negotiation
    if neg is None or not neg.resumed:
        return None
    parts = []
    for a in (True, False):
        syn = conn.syn_of(a)
        option = syn.eno.option if syn is not None and syn.eno is not None else None
        sub = next((t for t in option.teps if t.tep == neg.tep), None) if option else None
        if sub is None or sub.data is None or tcpcrypt_suboption_kind(sub) != "resume":
            return None
        parts.append((sub.data[:RESUME_HALF_LEN], sub.data[RESUME_HALF_LEN:]))
    (half_a, nonce_a), (half_b, nonce_b) = parts
    return ResumeView(half_a, nonce_a, half_b, nonce_b)


class KeyResolver:
    """Finds one connection's keys as soon as the messages that name them are seen."""

    def __init__(self, ctx: DecryptionContext, conn: Connection) -> None:
        self.ctx = ctx
        self.conn = conn
        self.source: KeySource | None = None
        self.directions: dict[str, DirectionDecryptor] = {}
        self.hopeless = False
        """Everything that could name a key has been seen and no entry matches."""
        self.base: str | None = None
        conn.data["decrypted"] = None

    @property
    def keys_from(self) -> str | None:
        """Which kind of key-log entry (or the chain) gave the keys."""
        return self.source.keys_from if self.source else None

    # ------------------------------------------------------------------ key discovery
    def _parsers(self) -> tuple[TcpcryptDirection | None, TcpcryptDirection | None]:
        ab = ba = None
        for parser in self.conn.tcpcrypt.values():
            if parser is None:
                continue
            if parser.label == "ab":
                ab = parser
            else:
                ba = parser
        return ab, ba

    def resolve(self) -> bool:
        """Try every way to get keys; True once they are known."""
        if self.source is not None:
            return True
        if self.hopeless:
            return False
        neg = self.conn.negotiation
        if neg is not None and neg.resumed:
            return self._resume()
        ab, ba = self._parsers()
        init1 = ab.init if ab is not None else None
        init2 = ba.init if ba is not None else None
        if not isinstance(init1, Init1) or not isinstance(init2, Init2):
            return False
        tep = (ab.tep if ab else None) or (ba.tep if ba else None)
        aead = init2.sym_cipher
        if tep is None or aead not in AEADS:
            self.hopeless = True
            return False
        tep_byte = neg.tep_byte if neg is not None and neg.tep_byte is not None else tep
        log = self.ctx.keylog
        n_a = init1.nonce
        if n_a in log.session_secrets:
            self._from_ss(SessionKeys(tep_byte, aead, log.session_secrets[n_a]),
                          KEYS_SESSION_SECRET)
            return True
        for own, peer in ((init1.pubkey, init2.pubkey), (init2.pubkey, init1.pubkey)):
            private = log.private_for(own)
            if private is not None and self._from_private(tep, tep_byte, aead, private, own,
                                                          peer, ab, ba):
                return True
        if n_a in log.master_keys:
            self._set(KeySource(KEYS_MASTER, aead, mk0=log.master_keys[n_a]))
            return True
        if n_a in log.traffic_keys:
            return self._from_traffic(log.traffic_keys[n_a], aead)
        self.hopeless = True
        return False

    def _from_traffic(self, keys: tuple[bytes, bytes], aead: int | None,
                      ab_uses_k_ab: bool = True) -> bool:
        if aead is not None and len(keys[0]) != AEADS[aead].traffic_key_len:
            self._once("keylog-wrong-key-length",
                       f"logged traffic keys are {len(keys[0])} bytes but "
                       f"{AEADS[aead].name} traffic keys (K || NR) are "
                       f"{AEADS[aead].traffic_key_len}")
            self.hopeless = True
            return False
        self._set(KeySource(KEYS_TRAFFIC, aead, traffic=keys, ab_uses_k_ab=ab_uses_k_ab))
        return True

    def _from_private(self, tep: int, tep_byte: int, aead: int, private: bytes, own: bytes,
                      peer: bytes, ab: TcpcryptDirection | None,
                      ba: TcpcryptDirection | None) -> bool:
        try:
            mine = keypair_from_private(tep, private).public
            if mine != own and keypair_from_private(tep, private, compressed=False).public != own:
                self._once("keylog-private-mismatch",
                           "the logged private key does not belong to the public key in the "
                           "Init message (wrong key-log entry)")
                return False
            es = shared_secret(tep, private, peer)
        except (KeyAgreementError, ValueError) as exc:
            self._once("keylog-private-unusable", f"cannot use the logged private key: {exc}")
            return False
        syn_a, syn_b = self.conn.syn_of(True), self.conn.syn_of(False)
        opt_a = syn_a.eno.option if syn_a is not None and syn_a.eno is not None else None
        opt_b = syn_b.eno.option if syn_b is not None and syn_b.eno is not None else None
        if opt_a is None or opt_b is None or ab is None or ba is None:
            self._once("keys-need-handshake",
                       "an ephemeral private key needs the ENO options of both SYNs (the "
                       "transcript) and they are not in the capture; log the session secret")
            return False
        transcript = eno_transcript(opt_a.raw, opt_b.raw)
        init1_raw, init2_raw = ab.init_raw or b"", ba.init_raw or b""
        init1 = ab.init
        assert isinstance(init1, Init1)
        ss = initial_session_secret(init1.nonce, transcript, init1_raw, init2_raw, es)
        self._from_ss(SessionKeys(tep_byte, aead, ss), KEYS_PRIVATE)
        return True

    def _resume(self) -> bool:
        view = resume_view(self.conn)
        neg = self.conn.negotiation
        if view is None or neg is None or neg.tep_byte is None:
            self.hopeless = True
            return False
        log = self.ctx.keylog
        for ident, a_was_a in view.candidates():
            sn = view.sn(a_was_a)
            entry = self.ctx.chain_lookup(ident)
            aead = resumed_session_aead(entry.aead if entry else None)
            if ident in log.session_secrets:
                self._from_ss(SessionKeys(neg.tep_byte, aead or 0, log.session_secrets[ident],
                                          sn), KEYS_SESSION_SECRET, a_was_a, aead)
                return True
            if entry is not None:
                if entry.origin is not None:
                    self.conn.data["resumes"] = entry.origin
                self.conn.data["resume_index"] = entry.index
                self._from_ss(SessionKeys(neg.tep_byte, aead or 0, entry.ss, sn),
                              KEYS_RESUMPTION, a_was_a, aead, entry.index)
                return True
            if ident in log.master_keys:
                self._set(KeySource(KEYS_MASTER, aead, mk0=log.master_keys[ident],
                                    ab_uses_k_ab=a_was_a))
                return True
            if ident in log.traffic_keys:
                return self._from_traffic(log.traffic_keys[ident], aead, a_was_a)
        self.hopeless = True
        return False

    def _from_ss(self, session: SessionKeys, keys_from: str, ab_uses_k_ab: bool = True,
                 aead: int | None = -1, index: int | None = None) -> None:
        known = session.aead if aead == -1 else aead
        source = KeySource(keys_from, known, mk0=first_master_key(session.ss, session.sn),
                           session=session, ab_uses_k_ab=ab_uses_k_ab, resume_index=index)
        self._set(source)

    def _set(self, source: KeySource) -> None:
        self.source = source
        self.conn.data["keys_from"] = source.keys_from
        if source.aead is not None:
            self._chain_from(source)
        for direction in self.directions.values():
            direction.keys_ready()

    def _chain_from(self, source: KeySource) -> None:
        self.conn.data["aead"] = source.aead
        session = source.session
        if session is None:
            return
        resumed = self.conn.negotiation is not None and self.conn.negotiation.resumed
        if not resumed:
            self.ctx.add_chain(session.ss, 0, source.aead, self.conn.id)
        else:
            origin = self.conn.data.get("resumes")
            self.ctx.add_chain(session.ss, source.resume_index, source.aead,
                               self.conn.id if origin is None else origin)

    def probe_aead(self, info: FrameInfo, init_len: int) -> bool:
        """Resumed session of unknown AEAD: find the AEAD that opens this frame."""
        source = self.source
        if source is None or source.aead is not None:
            return False
        for aead in AEADS:
            source.with_aead(aead)
            key = source.key(info.generation, info.direction)
            if key is None:
                continue
            if _try_open(key, aead, info, NONCE_OFFSET_TCP_STREAM) is not None:
                self.conn.data["aead_probed"] = True
                self._chain_from(source)
                return True
        source.aead = None
        return False

    def _once(self, code: str, message: str) -> None:
        if not any(f.code == code for f in self.conn.findings):
            self.conn.findings.append(Finding(Severity.WARNING, code, message))


def _try_open(key: bytes, aead: int, info: FrameInfo, base: str) -> bytes | None:
    try:
        cipher = TrafficCipher(aead, key)
    except ValueError:
        return None
    return cipher.open(frame_id_offset(info.stream_offset, info.init_len, base), info.control,
                       info.body)


class DirectionDecryptor:
    """Opens one direction's frames in order (FrameHandler for the framing parser)."""

    def __init__(self, resolver: KeyResolver, direction: str) -> None:
        self.resolver = resolver
        self.direction = direction
        self.generation = 0
        self.ciphers: dict[int, TrafficCipher | None] = {}
        self.queue: list[FrameInfo] = []
        self.queued = 0
        self.ok = 0
        self.failed = 0
        self.undecryptable = 0
        self.fin_seen = False
        self.fin_offset: int | None = None
        self.last_ok = False
        """The direction's latest frame decrypted (only then can a missing FINp show)."""
        self.last: dict | None = None
        """The latest frame's verdict, spec-named (``--details`` shows it)."""
        self.details: dict[int, dict] = {}
        """--details entries of frames queued until the keys are known, by stream offset:
        filled in when the frame is decrypted."""
        self.frames = 0
        self.plain_offset = 0
        self.hash = hashlib.sha256()
        self.base: str | None = None
        self.resync_generation: tuple[int, int] | None = None
        self.ready = False
        resolver.directions[direction] = self

    def relabel(self, direction: str) -> None:
        """Roles were corrected (no handshake in the capture): follow the new direction."""
        self.direction = direction
        self.resolver.directions[direction] = self

    # ------------------------------------------------------------------ key state
    def keys_ready(self) -> None:
        """The resolver found keys: drain the queue."""
        if self.ready:
            return
        self.ready = True
        queued, self.queue, self.queued = self.queue, [], 0
        for info in queued:
            self._decrypt(info)

    def _cipher(self, generation: int) -> TrafficCipher | None:
        if generation in self.ciphers:
            return self.ciphers[generation]
        source = self.resolver.source
        key = source.key(generation, self.direction) if source is not None else None
        cipher = None
        if key is not None and source is not None and source.aead is not None:
            cipher = TrafficCipher(source.aead, key)
        self.ciphers[generation] = cipher
        return cipher

    def _ready(self, info: FrameInfo | None = None) -> bool:
        if self.ready:
            return True
        if self.resolver.resolve():
            self.keys_ready()
        return self.ready

    # ------------------------------------------------------------------ FrameHandler
    def frame(self, info: FrameInfo) -> None:
        """Decrypt now, or queue until the keys are known."""
        self.frames += 1
        if not self._ready(info):
            if not self.resolver.hopeless and self.queued + info.length <= QUEUE_LIMIT:
                self.queue.append(info)
                self.queued += info.length
            return
        self._decrypt(info)

    def _bases(self, info: FrameInfo) -> tuple[str, ...]:
        base = self.base or self.resolver.base
        if base is not None:
            return (base,)
        return NONCE_OFFSET_BASES if info.init_len else (NONCE_OFFSET_TCP_STREAM,)

    def authenticates(self, info: FrameInfo) -> bool | None:
        """Whether a resync candidate opens under the current or a few later generations."""
        if not self._ready() or self.resolver.source is None:
            return None
        start = self.generation + (1 if info.control & 1 else 0)
        for generation in range(start, start + REKEY_LOOKAHEAD + 1):
            cipher = self._cipher(generation)
            if cipher is None:
                return None
            for base in self._bases(info):
                offset = frame_id_offset(info.stream_offset, info.init_len, base)
                if cipher.open(offset, info.control, info.body) is not None:
                    self.resync_generation = (info.stream_offset,
                                              generation - (1 if info.control & 1 else 0))
                    return True
        return False

    # ------------------------------------------------------------------ decryption
    def _decrypt(self, info: FrameInfo) -> None:
        try:
            self._open_frame(info)
        finally:
            if self.details:
                item = self.details.pop(info.stream_offset, None)
                if item is not None and self.last is not None:
                    item.update({k: v for k, v in self.last.items() if k != "stream_offset"})
            hook = self.resolver.ctx.frame_map
            if hook is not None:
                hook(self.resolver.conn, self.direction, info.stream_offset + 3 + info.length,
                     self.plain_offset, info.stream_offset)

    def _open_frame(self, info: FrameInfo) -> None:
        self.last = {"stream_offset": info.stream_offset, "verdict": "undecryptable",
                     "tcpcrypt.frame.verified": None}
        resolver = self.resolver
        source = resolver.source
        assert source is not None
        if self.resync_generation is not None and self.resync_generation[0] == info.stream_offset:
            self.generation = self.resync_generation[1]
            self.resync_generation = None
        if info.control & 1:
            self.generation += 1
        if source.aead is None and not resolver.probe_aead(
                FrameInfo(info.direction, info.stream_offset, info.init_len, info.control,
                          info.length, info.body, info.packet, info.first_packet,
                          self.generation), info.init_len):
            self._undecryptable(info, "no AEAD authenticates the frame with the resumed "
                                      "session's keys")
            return
        cipher = self._cipher(self.generation)
        if cipher is None:
            self._undecryptable(info, f"the key log gives no key for generation "
                                      f"{self.generation} (traffic keys cover generation 0 "
                                      "only; log TCPCRYPT_MASTER_KEY or the session secret)")
            return
        plain = None
        for base in self._bases(info):
            plain = cipher.open(frame_id_offset(info.stream_offset, info.init_len, base),
                                info.control, info.body)
            if plain is not None:
                if self.base is None:
                    self.base = base
                    if resolver.base is None:
                        resolver.base = base
                    elif resolver.base != base:
                        resolver.base = "mixed"
                break
        conn = resolver.conn
        arrow = "A->B" if self.direction == "ab" else "B->A"
        self.last_ok = plain is not None
        self.last.update({"verdict": "verified" if plain is not None else "failed",
                          "tcpcrypt.frame.verified": plain is not None,
                          "tcpcrypt.frame.generation": self.generation})
        if self.base is not None:
            self.last["tcpcrypt.frame.offset"] = frame_id_offset(
                info.stream_offset, info.init_len, self.base)
        if plain is None:
            self.failed += 1
            if self.failed <= MAX_FAILURE_REPORTS:
                more = " (further failures in this direction are counted, not listed)" if (
                    self.failed == MAX_FAILURE_REPORTS) else ""
                conn.findings.append(Finding(
                    Severity.ERROR, "frame-tag-failed",
                    f"{arrow}: frame at stream offset {info.stream_offset} (key generation "
                    f"{self.generation}) fails authentication; its bytes are not shown{more}",
                    info.stream_offset, info.packet, self.direction, rfc=f"{RFC} §3.6",
                    first_packet=info.first_packet))
            return
        parsed = decode_plaintext(plain)
        if parsed is None:
            self.failed += 1
            self.last["verdict"] = "malformed"
            conn.findings.append(Finding(Severity.ERROR, "tcpcrypt-plaintext-malformed",
                                         f"{arrow}: decrypted frame too short for its flags "
                                         "and urgent fields", info.stream_offset, info.packet,
                                         self.direction, first_packet=info.first_packet))
            return
        self.ok += 1
        self.last.update({"tcpcrypt.plaintext.flags": parsed.flags,
                          "tcpcrypt.plaintext.flags.finp": bool(parsed.flags & PLAINTEXT_FINP),
                          "tcpcrypt.plaintext.flags.urgp": parsed.urgent is not None,
                          "tcpcrypt.plaintext.data_len": len(parsed.data)})
        if parsed.urgent is not None:
            self.last["tcpcrypt.plaintext.urgent"] = parsed.urgent
        if parsed.flags & PLAINTEXT_RESERVED:
            conn.findings.append(Finding(Severity.WARNING, "plaintext-reserved-bits",
                                         f"{arrow}: plaintext flags 0x{parsed.flags:02x} set "
                                         "reserved fres bits (must be sent as zero)",
                                         info.stream_offset, info.packet, self.direction,
                                         rfc=f"{RFC} §4.2.1"))
        if self.fin_seen:
            conn.findings.append(Finding(Severity.ERROR, "frames-after-finp",
                                         f"{arrow}: frame at stream offset "
                                         f"{info.stream_offset} follows the frame with FINp "
                                         "(FINp must be on the sender's last frame only)",
                                         info.stream_offset, info.packet, self.direction,
                                         rfc=f"{RFC} §3.7"))
        if parsed.flags & PLAINTEXT_FINP and not self.fin_seen:
            self.fin_seen = True
            self.fin_offset = info.stream_offset
            watch = conn.data.get("rekey_watch")
            if watch is not None:
                watch.finp(self.direction, info.stream_offset)
        if parsed.urgent is not None:
            frame_offset = frame_id_offset(info.stream_offset, info.init_len,
                                           self.base or NONCE_OFFSET_TCP_STREAM)
            conn.findings.append(Finding(
                Severity.NOTE, "tcpcrypt-urgent",
                f"{arrow}: URGp frame, urgent field {parsed.urgent} (frame offset "
                f"{frame_offset} + urgent = {urgent_index(frame_offset, parsed.urgent)}, "
                "which RFC 8548 §3.7 calls the last urgent byte's index in the application "
                "stream although the frame offset counts framing bytes)",
                info.stream_offset, info.packet, self.direction))
        data = parsed.data
        self.hash.update(data)
        if resolver.ctx.sink is not None and data:
            resolver.ctx.sink(conn, self.direction, self.plain_offset, data, info.packet)
        self.plain_offset += len(data)

    def _undecryptable(self, info: FrameInfo, why: str) -> None:
        self.undecryptable += 1
        self.last_ok = False
        conn = self.resolver.conn
        code = "tcpcrypt-no-key-for-frame"
        if not any(f.code == code and f.direction == self.direction for f in conn.findings):
            arrow = "A->B" if self.direction == "ab" else "B->A"
            conn.findings.append(Finding(
                Severity.WARNING, code,
                f"{arrow}: frames from stream offset {info.stream_offset} on cannot be "
                f"decrypted: {why}; they are counted as undecryptable, not as failures",
                info.stream_offset, info.packet, self.direction))


def finalize(conn: Connection, ctx: DecryptionContext) -> None:
    """Fill the connection's decryption results before its report is built."""
    try:
        _finalize(conn, ctx)
    finally:
        if ctx.on_finalize is not None:
            ctx.on_finalize(conn)


def _finalize(conn: Connection, ctx: DecryptionContext) -> None:
    resolver: KeyResolver | None = conn.data.get("resolver")
    if resolver is None:
        return
    resolver.resolve()
    source = resolver.source
    if source is None:
        conn.data["decrypted"] = None
        conn.data["keys_from"] = None
        if len(ctx.keylog) and any(p is not None and (p.init is not None or p.frames)
                                   for p in conn.tcpcrypt.values()):
            skipped = (f" (a resumed session's chain was searched from the first "
                       f"{CHAIN_KEYLOG_MAX} session secrets of the key log only; "
                       f"{ctx.chain_skipped} were left out)"
                       if ctx.chain_skipped and resume_view(conn) is not None else "")
            conn.findings.append(Finding(Severity.NOTE, "tcpcrypt-no-keys",
                                         f"no key-log entry matches this connection{skipped}"))
        return
    decrypted = {}
    total_ok = total_failed = 0
    for direction in ("ab", "ba"):
        dec = resolver.directions.get(direction)
        parser = next((p for p in conn.tcpcrypt.values() if p is not None
                       and p.label == direction), None)
        lost = parser.incomplete_frames if parser is not None else 0
        stream = next((st for st in conn.streams.values() if st is not None
                       and st.label == direction), None)
        lost_bytes = stream.lost if stream is not None else 0
        if dec is None:
            decrypted[direction] = {"ok": 0, "failed": 0, "undecryptable": 0, "lost": lost,
                                    "lost_bytes": lost_bytes,
                                    "sha256": hashlib.sha256().hexdigest(), "bytes": 0,
                                    "fin": False, "nonce_offset_base": None,
                                    "generation": 0}
            continue
        decrypted[direction] = {"ok": dec.ok, "failed": dec.failed,
                                "undecryptable": dec.undecryptable, "lost": lost,
                                "lost_bytes": lost_bytes, "sha256": dec.hash.hexdigest(),
                                "bytes": dec.plain_offset, "fin": dec.fin_seen,
                                "nonce_offset_base": dec.base if parser is not None
                                and parser.init_len else None,
                                "generation": dec.generation}
        total_ok += dec.ok
        total_failed += dec.failed
        _check_fin(conn, dec, direction)
    conn.data["decrypted"] = decrypted
    base = resolver.base
    if base in (NONCE_OFFSET_TCP_STREAM, NONCE_OFFSET_AFTER_INIT) and not any(
            p is not None and p.init_len for p in conn.tcpcrypt.values()):
        base = None  # resumed: the two readings coincide
    conn.data["nonce_offset_base"] = base
    session = source.session
    if total_failed and not total_ok:
        # Nothing authenticates: the key log is wrong, which says nothing about the sender.
        conn.findings[:] = [replace(f, rfc=None) if f.code == "frame-tag-failed" else f
                            for f in conn.findings]
        conn.findings.append(Finding(Severity.ERROR, "tcpcrypt-wrong-key",
                                     f"no frame authenticates with the keys from "
                                     f"{source.keys_from}: the key-log entry is wrong"))
        conn.data["session_id"] = None
    else:
        conn.data["session_id"] = (session.session_id.hex()
                                   if session is not None and source.aead is not None else None)
    if ctx.show_secrets:
        extra = conn.data.setdefault("report_extra", {})
        secrets: dict = {"ss": session.ss.hex() if session else None,
                         "sn": session.sn.hex() if session else None,
                         "mk0": source.mk0.hex() if source.mk0 else None}
        if source.aead is not None:
            k_ab, k_ba = source.key(0, "ab"), source.key(0, "ba")
            secrets["k_ab"] = k_ab.hex() if k_ab else None
            secrets["k_ba"] = k_ba.hex() if k_ba else None
        extra["secrets"] = secrets


def parser_lost(conn: Connection, direction: str) -> bool:
    """Whether a direction's last frames were cut off (a gap or the capture's end)."""
    return any(p is not None and p.label == direction and not p.ended_clean
               for p in conn.tcpcrypt.values())


def _check_fin(conn: Connection, dec: DirectionDecryptor, direction: str) -> None:
    arrow = "A->B" if direction == "ab" else "B->A"
    sender_x = conn.a_is_x if direction == "ab" else not conn.a_is_x
    tcp_fin = conn.fin.get(sender_x)
    if dec.fin_seen or not dec.ok:
        return
    if not dec.last_ok or parser_lost(conn, direction):
        return  # the last frame, which must carry FINp, could not be read
    if tcp_fin is not None:
        conn.findings.append(Finding(
            Severity.ERROR, "fin-without-finp",
            f"{arrow}: TCP FIN without a frame carrying FINp: the receiver must not report "
            "end-of-file (truncation or an injected FIN)", None, tcp_fin, direction,
            rfc=f"{RFC} §3.7"))
    else:
        conn.findings.append(Finding(Severity.WARNING, "tcpcrypt-no-fin-frame",
                                     f"{arrow}: the stream ends without a frame carrying "
                                     "FINp: the data may be truncated", None,
                                     conn.last_packet, direction))
