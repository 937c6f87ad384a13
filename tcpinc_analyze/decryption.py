"""Decrypt and verify tcpcrypt connections from a key log, as the frames stream by.

For each tcpcrypt connection this finds its keys (ephemeral private key -> ES -> PRK ->
ss[0]; a logged session secret; logged traffic keys; or the resumption chain of an
earlier connection in the same capture), then opens every frame, verifies every tag,
follows rekeys per direction and passes application data on. After a gap it lets the
framing parser find the next frame boundary by authenticating candidates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag

from .analysis.connection import Connection
from .findings import Finding, Severity
from .keylog import KeyLog
from .tcpcrypt.frames import Aead, make_aead
from .tcpcrypt.keyschedule import (
    KeyAgreementError,
    SessionKeys,
    initial_session_secret,
    keypair_from_private,
    next_session_secret,
    session_keys,
    shared_secret,
)
from .tcpcrypt.messages import Init1, Init2
from .tcpcrypt.stream import FrameInfo, TcpcryptDirection
from .wire import (
    AEADS,
    PLAINTEXT_FIN,
    PLAINTEXT_RESERVED,
    decode_plaintext,
    eno_transcript,
    frame_associated_data,
    frame_nonce,
    next_traffic_key,
    resumption_identifiers,
)

QUEUE_LIMIT = 4 << 20
"""Ciphertext bytes held while a connection's keys are not known yet."""
MAX_FAILURE_REPORTS = 5
REKEY_LOOKAHEAD = 3
"""Key generations tried past the current one when resynchronising after a gap."""

PlaintextSink = Callable[[Connection, str, int, bytes, int], None]
"""(connection, direction, plaintext stream offset, application data, packet)."""


@dataclass
class ResumeEntry:
    """What a later connection needs to resume from an earlier one."""

    ss: bytes
    parent_id: int
    tep: int
    aead: int


@dataclass
class DecryptionContext:
    """Shared across connections: the key log, the resumption chain, the outputs."""

    keylog: KeyLog
    show_secrets: bool = False
    sink: PlaintextSink | None = None
    resume_index: dict[bytes, ResumeEntry] = field(default_factory=dict)
    frame_map: Callable[[Connection, str, int, int], None] | None = None
    """Called after every frame: (connection, direction, stream offset just past the
    frame, plaintext offset just past its data); lets --pcap-out re-map sequence numbers."""
    on_finalize: Callable[[Connection], None] | None = None

    def factory(self, conn: Connection, direction: str) -> DirectionDecryptor:
        """HandlerFactory: one decryptor per tcpcrypt direction, sharing one resolver."""
        resolver = conn.data.get("resolver")
        if resolver is None:
            resolver = conn.data["resolver"] = KeyResolver(self, conn)
        return DirectionDecryptor(resolver, direction)


class KeyResolver:
    """Finds one connection's keys as soon as the messages that name them are seen."""

    def __init__(self, ctx: DecryptionContext, conn: Connection) -> None:
        self.ctx = ctx
        self.conn = conn
        self.keys: tuple[bytes, bytes] | None = None
        self.session: SessionKeys | None = None
        self.aead: int | None = None
        self.keys_from: str | None = None
        self.directions: dict[str, DirectionDecryptor] = {}
        self.hopeless = False
        """Both Init messages (or the resumption id) were seen and no entry matches."""
        self.pending_ss: tuple[bytes, int] | None = None
        """A session secret whose AEAD is still unknown (resumed session, parent unseen)."""
        conn.data["decrypted"] = None

    # ------------------------------------------------------------------ key discovery
    def _parsers(self) -> tuple:
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
        if self.keys is not None:
            return True
        neg = self.conn.negotiation
        ab, ba = self._parsers()
        log = self.ctx.keylog
        if neg is not None and neg.resumed:
            return self._resume()
        init1 = ab.init if ab is not None else None
        init2 = ba.init if ba is not None else None
        if not isinstance(init1, Init1):
            return False
        tep = ab.tep or (ba.tep if ba else None)
        aead = init2.sym_cipher if isinstance(init2, Init2) else None
        if init1.nonce in log.session_secrets and tep is not None and aead in AEADS:
            self._from_ss(log.session_secrets[init1.nonce], tep, aead, "session_secret")
            return True
        if init1.nonce in log.traffic_keys and aead in AEADS:
            k_ab, k_ba = log.traffic_keys[init1.nonce]
            if len(k_ab) != AEADS[aead].key_len:
                self._once("keylog-wrong-key-length",
                           f"logged traffic keys are {len(k_ab)} bytes but "
                           f"{AEADS[aead].name} needs {AEADS[aead].key_len}")
                return False
            self._set((k_ab, k_ba), aead, "traffic_keys", None)
            return True
        if isinstance(init2, Init2) and tep is not None and aead in AEADS:
            for own, peer in ((init1.pubkey, init2.pubkey), (init2.pubkey, init1.pubkey)):
                private = log.ephemeral_private.get(own)
                if private is not None:
                    return self._from_private(tep, aead, private, own, peer, ab, ba)
            self.hopeless = True  # everything that could name a key has been seen
        return False

    def _from_private(self, tep: int, aead: int, private: bytes, own: bytes, peer: bytes,
                      ab: TcpcryptDirection, ba: TcpcryptDirection) -> bool:
        try:
            if keypair_from_private(tep, private).public != own:
                self._once("keylog-private-mismatch",
                           "the logged private key does not belong to the public key in the "
                           "Init message (wrong key-log entry)")
                return False
            es = shared_secret(tep, private, peer)
        except (KeyAgreementError, ValueError) as exc:
            self._once("keylog-private-unusable", f"cannot use the logged private key: {exc}")
            return False
        syn_a, syn_b = self.conn.syn_of(True), self.conn.syn_of(False)
        if syn_a is None or syn_b is None or syn_a.eno is None or syn_b.eno is None:
            self._once("keys-need-handshake",
                       "an ephemeral private key needs the ENO options of both SYNs (the "
                       "transcript) and they are not in the capture; log the session secret")
            return False
        transcript = eno_transcript(syn_a.eno.rfc_form(), syn_b.eno.rfc_form())
        init1_raw, init2_raw = ab.init_raw or b"", ba.init_raw or b""
        n_a = init1_raw[9 + init1_raw[8]:9 + init1_raw[8] + 32]
        ss = initial_session_secret(n_a, transcript, init1_raw, init2_raw, es)
        self._from_ss(ss, tep, aead, "private_key")
        return True

    def _resume(self) -> bool:
        syn_a = self.conn.syn_of(True)
        neg = self.conn.negotiation
        ident = None
        if syn_a is not None and syn_a.eno is not None and neg is not None:
            ident = next((t.data for t in syn_a.eno.teps if t.tep == neg.tep and t.data), None)
        if ident is None:
            return False
        log = self.ctx.keylog
        entry = self.ctx.resume_index.get(ident)
        if ident in log.session_secrets:
            aead = entry.aead if entry else None
            self._from_ss(log.session_secrets[ident], neg.tep, aead, "session_secret")
            return True
        if ident in log.traffic_keys:
            k_ab, k_ba = log.traffic_keys[ident]
            aead = entry.aead if entry else None
            self._set((k_ab, k_ba), aead, "traffic_keys", None)
            return True
        if entry is not None:
            self.conn.data["resumes"] = entry.parent_id
            self._from_ss(entry.ss, entry.tep, entry.aead, "resumption")
            return True
        self.hopeless = True
        return False

    def _from_ss(self, ss: bytes, tep: int, aead: int | None, source: str) -> None:
        if aead is None:
            # A resumed session whose parent is not in the capture: the AEAD is found by
            # authenticating the first frame with each candidate.
            self.session = None
            self._set(None, None, source, ss, tep=tep)
            return
        keys = session_keys(ss, tep, aead)
        self._set((keys.k_ab, keys.k_ba), aead, source, keys)

    def _set(self, keys: tuple[bytes, bytes] | None, aead: int | None, source: str,
             session: SessionKeys | bytes | None, tep: int | None = None) -> None:
        self.keys_from = source
        self.conn.data["keys_from"] = source
        if isinstance(session, bytes):
            self.pending_ss = (session, tep or 0)
            self.keys = None
            return
        self.pending_ss = None
        self.keys = keys
        self.aead = aead
        self.conn.data["aead"] = aead
        if isinstance(session, SessionKeys):
            self.session = session
            next_ss = next_session_secret(session.ss)
            ident = resumption_identifiers(next_ss)[0]
            self.ctx.resume_index[ident] = ResumeEntry(next_ss, self.conn.id, session.tep,
                                                       session.aead)
        for direction in self.directions.values():
            direction.keys_ready()

    def probe_aead(self, info: FrameInfo) -> bool:
        """For a resumed session of unknown AEAD: find the AEAD that opens the first frame."""
        if self.pending_ss is None:
            return False
        ss, tep = self.pending_ss
        for aead in AEADS:
            keys = session_keys(ss, tep, aead)
            key = keys.k_ab if info.direction == "ab" else keys.k_ba
            if info.control & 1:
                key = next_traffic_key(key)
            if _open(make_aead(aead, key), info) is not None:
                self._set((keys.k_ab, keys.k_ba), aead, self.keys_from or "session_secret",
                          keys)
                return True
        return False

    def _once(self, code: str, message: str) -> None:
        if not any(f.code == code for f in self.conn.findings):
            self.conn.findings.append(Finding(Severity.WARNING, code, message))


def _open(cipher: Aead, info: FrameInfo) -> bytes | None:
    try:
        return cipher.decrypt(frame_nonce(info.offset), info.body,
                              frame_associated_data(info.control, info.length))
    except InvalidTag:
        return None


class DirectionDecryptor:
    """Opens one direction's frames in order (FrameHandler for the framing parser)."""

    def __init__(self, resolver: KeyResolver, direction: str) -> None:
        self.resolver = resolver
        self.direction = direction
        self.key: bytes | None = None
        self.cipher: Aead | None = None
        self.generation = 0
        self.queue: list[FrameInfo] = []
        self.queued = 0
        self.ok = 0
        self.failed = 0
        self.fin_seen = False
        self.frames = 0
        self.plain_offset = 0
        self.hash = hashlib.sha256()
        self.resync_key: tuple[int, bytes, int] | None = None
        resolver.directions[direction] = self

    def relabel(self, direction: str) -> None:
        """Roles were corrected (no handshake in the capture): follow the new direction."""
        self.direction = direction
        self.resolver.directions[direction] = self

    # ------------------------------------------------------------------ key state
    def keys_ready(self) -> None:
        """The resolver found keys: set the generation-0 key and drain the queue."""
        keys = self.resolver.keys
        if keys is None or self.key is not None:
            return
        self.key = keys[0] if self.direction == "ab" else keys[1]
        self.cipher = make_aead(self.resolver.aead or 0, self.key)
        queued, self.queue, self.queued = self.queue, [], 0
        for info in queued:
            self._decrypt(info)

    def _ready(self, info: FrameInfo | None = None) -> bool:
        if self.key is not None:
            return True
        if self.resolver.hopeless:
            return False
        if self.resolver.resolve() and self.key is None:
            self.keys_ready()
        if self.key is None and info is not None and self.resolver.pending_ss is not None:
            self.resolver.probe_aead(info)
        return self.key is not None

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

    def authenticates(self, info: FrameInfo) -> bool | None:
        """Whether a resync candidate opens under the current or a few later generations."""
        if not self._ready() or self.key is None:
            return None
        key = self.key
        for step in range(REKEY_LOOKAHEAD + 1):
            trial = next_traffic_key(key) if info.control & 1 else key
            if _open(make_aead(self.resolver.aead or 0, trial), info) is not None:
                self.resync_key = (info.stream_offset, key, self.generation + step)
                return True
            key = next_traffic_key(key)
        return False

    # ------------------------------------------------------------------ decryption
    def _decrypt(self, info: FrameInfo) -> None:
        try:
            self._open_frame(info)
        finally:
            hook = self.resolver.ctx.frame_map
            if hook is not None:
                hook(self.resolver.conn, self.direction, info.stream_offset + 3 + info.length,
                     self.plain_offset)

    def _open_frame(self, info: FrameInfo) -> None:
        assert self.key is not None and self.cipher is not None
        if self.resync_key is not None and self.resync_key[0] == info.stream_offset:
            _, key, generation = self.resync_key
            if key != self.key:
                self.key, self.generation = key, generation
                self.cipher = make_aead(self.resolver.aead or 0, key)
            self.resync_key = None
        if info.control & 1:
            self.key = next_traffic_key(self.key)
            self.generation += 1
            self.cipher = make_aead(self.resolver.aead or 0, self.key)
        plain = _open(self.cipher, info)
        conn = self.resolver.conn
        if plain is None:
            self.failed += 1
            if self.failed <= MAX_FAILURE_REPORTS:
                arrow = "A->B" if self.direction == "ab" else "B->A"
                more = " (further failures in this direction are counted, not listed)" if (
                    self.failed == MAX_FAILURE_REPORTS) else ""
                conn.findings.append(Finding(
                    Severity.ERROR, "tcpcrypt-auth-failed",
                    f"{arrow}: frame at stream offset {info.stream_offset} (nonce offset "
                    f"{info.offset}, key generation {self.generation}) fails authentication; "
                    f"its bytes are not shown{more}", info.stream_offset, info.packet,
                    self.direction))
            return
        parsed = decode_plaintext(plain)  # [confirm] layout lives in wire.py
        if parsed is None:
            self.failed += 1
            conn.findings.append(Finding(Severity.ERROR, "tcpcrypt-plaintext-malformed",
                                         "decrypted frame too short for its header",
                                         info.stream_offset, info.packet, self.direction))
            return
        self.ok += 1
        if parsed.flags & PLAINTEXT_RESERVED:
            conn.findings.append(Finding(Severity.WARNING, "tcpcrypt-flags-reserved",
                                         f"plaintext flags 0x{parsed.flags:02x} set reserved "
                                         "bits", info.stream_offset, info.packet,
                                         self.direction))
        if parsed.flags & PLAINTEXT_FIN:
            self.fin_seen = True
        if parsed.urgent is not None:
            conn.findings.append(Finding(Severity.NOTE, "tcpcrypt-urgent",
                                         f"URGENT frame (urgent offset {parsed.urgent})",
                                         info.stream_offset, info.packet, self.direction))
        data = parsed.data
        self.hash.update(data)
        if self.resolver.ctx.sink is not None and data:
            self.resolver.ctx.sink(conn, self.direction, self.plain_offset, data, info.packet)
        self.plain_offset += len(data)


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
    if resolver.keys is None:
        conn.data["decrypted"] = None
        conn.data["keys_from"] = None
        if len(ctx.keylog) and any(p is not None and p.init is not None
                                   for p in conn.tcpcrypt.values()):
            conn.findings.append(Finding(Severity.NOTE, "tcpcrypt-no-keys",
                                         "no key-log entry matches this connection"))
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
            decrypted[direction] = {"ok": 0, "failed": 0, "lost": lost,
                                    "sha256": hashlib.sha256().hexdigest(), "bytes": 0}
            continue
        decrypted[direction] = {"ok": dec.ok, "failed": dec.failed, "lost": lost,
                                "lost_bytes": lost_bytes, "sha256": dec.hash.hexdigest(),
                                "bytes": dec.plain_offset, "fin": dec.fin_seen}
        total_ok += dec.ok
        total_failed += dec.failed
        if dec.frames and not dec.fin_seen and dec.ok:
            arrow = "A->B" if direction == "ab" else "B->A"
            conn.findings.append(Finding(Severity.WARNING, "tcpcrypt-no-fin-frame",
                                         f"{arrow}: the stream ends without a frame carrying "
                                         "FIN: the data may be truncated", None,
                                         conn.last_packet, direction))
    conn.data["decrypted"] = decrypted
    session = resolver.session
    if total_failed and not total_ok:
        conn.findings.append(Finding(Severity.ERROR, "tcpcrypt-wrong-key",
                                     f"no frame authenticates with the keys from "
                                     f"{resolver.keys_from}: the key-log entry is wrong"))
        conn.data["session_id"] = None
    else:
        conn.data["session_id"] = session.session_id.hex() if session else None
    if ctx.show_secrets and resolver.keys is not None:
        extra = conn.data.setdefault("report_extra", {})
        extra["secrets"] = {"ss": session.ss.hex() if session else None,
                            "k_ab": resolver.keys[0].hex(), "k_ba": resolver.keys[1].hex()}
