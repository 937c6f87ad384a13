"""The named scenarios behind ``tcpinc-analyze synth`` and the samples/ catalog.

Each scenario is a seeded recipe: the same name and seed always give the same bytes,
which is what lets the test suite regenerate every committed sample and compare.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..eno import ENCODING_EXPERIMENTAL, GeneralSuboption, Suboption, TepSuboption
from ..wire import (
    AEAD_AES_128_GCM,
    AEAD_AES_256_GCM,
    AEAD_CHACHA20_POLY1305,
    TEP_P256,
    TEP_P521,
    TEP_X448,
    TEP_X25519,
    EnoStatus,
    FallbackReason,
)
from .connection import (
    KEYS_NONE,
    KEYS_PRIVATE_A,
    KEYS_PRIVATE_B,
    KEYS_SESSION_SECRET,
    KEYS_TRAFFIC,
    KEYS_WRONG,
    ConnectionPlan,
    EnoSpec,
    Message,
)
from .packets import LinkParams, LinkType
from .sample import CaptureSpec, Scenario
from .tcpsim import HostConfig, Impairments

BASE_NS = 1_764_460_800 * 1_000_000_000  # 2025-11-30 00:00:00 UTC: fixed, never the clock
SECOND = 1_000_000_000
ALL_AEADS = (AEAD_CHACHA20_POLY1305, AEAD_AES_256_GCM, AEAD_AES_128_GCM)

_WORDS = ("tcp", "eno", "crypt", "frame", "session", "resume", "nonce", "key", "stream",
          "segment", "window", "option", "cipher", "tag", "verify", "packet")


def text_body(rng: random.Random, size: int, words: Sequence[str] = _WORDS) -> bytes:
    """Readable, compressible-looking filler so decrypted output is easy to eyeball."""
    out = bytearray()
    line = 0
    while len(out) < size:
        line_words = " ".join(rng.choice(words) for _ in range(10))
        out += f"{line:05d} {line_words}\n".encode()
        line += 1
    return bytes(out[:size])


def http_messages(rng: random.Random, host: str, size: int, *, path: str = "/index.txt",
                  requests: int = 1) -> list[Message]:
    """An HTTP/1.1 request/response exchange (keep-alive when several requests)."""
    msgs = []
    for n in range(requests):
        p = path if requests == 1 else f"{path}?n={n}"
        req = f"GET {p} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tcpinc-synth\r\n\r\n".encode()
        body = text_body(rng, size)
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}"
                "\r\n\r\n").encode()
        msgs += [Message(True, req, think_ns=SECOND // 100),
                 Message(False, head + body, think_ns=SECOND // 500)]
    return msgs


def pair(rng: random.Random, a_ip: str = "10.0.0.1", b_ip: str = "10.0.0.2", *,
         b_port: int = 80, a_port: int | None = None, isn_a: int | None = None,
         isn_b: int | None = None, mss: int | None = None) -> tuple[HostConfig, HostConfig]:
    """Host A (client, ephemeral port) and host B (server)."""
    v6 = ":" in a_ip
    mss = mss or (1440 if v6 else 1460)
    a = HostConfig(a_ip, a_port or rng.randrange(32768, 61000),
                   rng.getrandbits(32) if isn_a is None else isn_a, mss=mss,
                   ts_start=rng.getrandbits(31))
    b = HostConfig(b_ip, b_port, rng.getrandbits(32) if isn_b is None else isn_b, mss=mss,
                   ts_start=rng.getrandbits(31))
    return a, b


def offer(*teps: int, general: GeneralSuboption | None = None, encoding: str = "rfc",
          kind: int = 253) -> EnoSpec:
    """An ENO option listing TEPs in order (general suboption first when given)."""
    subs: list[Suboption] = [general] if general else []
    subs += [TepSuboption(t) for t in teps]
    return EnoSpec(subs, encoding, kind)


def tcpcrypt_plan(rng: random.Random, tep: int, aead: int, *, start_ns: int = BASE_NS,
                  size: int = 6000, a_ip: str = "10.0.0.1", b_ip: str = "10.0.0.2",
                  keylog: str = KEYS_SESSION_SECRET, a_teps: Sequence[int] | None = None,
                  **kw: object) -> ConnectionPlan:
    """A negotiated tcpcrypt connection carrying one HTTP exchange."""
    a, b = pair(rng, a_ip, b_ip, b_port=int(kw.pop("b_port", 80)))  # type: ignore[arg-type]
    enc = str(kw.pop("encoding", "rfc"))
    kind = int(kw.pop("kind", 253))  # type: ignore[arg-type]
    a_general = kw.pop("a_general", GeneralSuboption.make(aa=0))
    plan = ConnectionPlan(
        a=a, b=b, start_ns=start_ns,
        messages=http_messages(rng, b_ip, size),
        eno_a=offer(*(a_teps or (tep,)), general=a_general,  # type: ignore[arg-type]
                    encoding=enc, kind=kind),
        eno_b=offer(tep, encoding=enc, kind=kind),
        expect_tep=tep, aeads_a=(aead,) + tuple(x for x in ALL_AEADS if x != aead),
        aeads_b=(aead,), keylog=keylog,
    )
    for key, value in kw.items():
        setattr(plan, key, value)
    return plan


def plain_plan(rng: random.Random, *, start_ns: int, reason: FallbackReason,
               status: EnoStatus = EnoStatus.FALLBACK, eno_a: EnoSpec | None = None,
               eno_b: EnoSpec | None = None, size: int = 3000, **kw: object) -> ConnectionPlan:
    """A connection that ends up as plain TCP, for the given reason."""
    a, b = pair(rng)
    plan = ConnectionPlan(a=a, b=b, start_ns=start_ns, messages=http_messages(rng, b.ip, size),
                          eno_a=eno_a, eno_b=eno_b, expect_status=status, expect_reason=reason,
                          keylog=KEYS_NONE)
    for key, value in kw.items():
        setattr(plan, key, value)
    return plan


# ------------------------------------------------------------------------------- scenarios

def _x25519_chacha(rng: random.Random) -> list[ConnectionPlan]:
    return [tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, size=20_000,
                          a_teps=(TEP_X25519, TEP_P256),
                          a_general=GeneralSuboption.make(aa=1))]


def _p256_aes128(rng: random.Random) -> list[ConnectionPlan]:
    return [tcpcrypt_plan(rng, TEP_P256, AEAD_AES_128_GCM, size=8000,
                          init1_ignored=rng.randbytes(7), init2_ignored=rng.randbytes(5),
                          aeads_a=(AEAD_AES_128_GCM,), aeads_b=(AEAD_AES_128_GCM,))]


def _p521_traffic_keys(rng: random.Random) -> list[ConnectionPlan]:
    return [tcpcrypt_plan(rng, TEP_P521, AEAD_AES_256_GCM, size=12_000, keylog=KEYS_TRAFFIC,
                          a_teps=(TEP_P521, TEP_P256))]


def _x448_private_key(rng: random.Random) -> list[ConnectionPlan]:
    return [tcpcrypt_plan(rng, TEP_X448, AEAD_AES_256_GCM, size=9000, keylog=KEYS_PRIVATE_A),
            tcpcrypt_plan(rng, TEP_X25519, AEAD_AES_128_GCM, size=4000, keylog=KEYS_PRIVATE_B,
                          start_ns=BASE_NS + SECOND)]


def _rekey(rng: random.Random) -> list[ConnectionPlan]:
    plan = tcpcrypt_plan(rng, TEP_X25519, AEAD_AES_256_GCM, size=150_000,
                         frame_data_max=4000, rekey_ab=(1, 2), rekey_ba=(5, 15, 16, 30))
    # A second request in the same connection, so A->B has frames to rekey.
    plan.messages += [Message(True, b"POST /upload HTTP/1.1\r\nContent-Length: 9000\r\n\r\n"
                              + text_body(rng, 9000), think_ns=SECOND // 50, urgent=12),
                      Message(False, b"HTTP/1.1 204 No Content\r\n\r\n")]
    return [plan]


def _resumption(rng: random.Random) -> list[ConnectionPlan]:
    first = tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, size=5000)
    second = tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, size=5000,
                           start_ns=BASE_NS + 2 * SECOND, keylog=KEYS_NONE, resume_parent=0)
    third = tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, size=5000,
                          start_ns=BASE_NS + 4 * SECOND, keylog=KEYS_NONE, resume_parent=1)
    refused = tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, size=3000,
                            start_ns=BASE_NS + 6 * SECOND, resume_parent=2,
                            resume_accepted=False)
    return [first, second, third, refused]


def _wrong_key(rng: random.Random) -> list[ConnectionPlan]:
    return [tcpcrypt_plan(rng, TEP_P256, AEAD_AES_128_GCM, size=6000, keylog=KEYS_WRONG)]


def _absent(rng: random.Random) -> list[ConnectionPlan]:
    return [plain_plan(rng, start_ns=BASE_NS, reason=FallbackReason.NO_ENO_IN_SYN,
                       status=EnoStatus.ABSENT, size=6000)]


def _synack_stripped(rng: random.Random) -> list[ConnectionPlan]:
    return [plain_plan(rng, start_ns=BASE_NS, reason=FallbackReason.SYNACK_WITHOUT_ENO,
                       eno_a=offer(TEP_X25519, TEP_P256), eno_b=offer(TEP_X25519),
                       synack_stripped=True)]


def _ack_stripped(rng: random.Random) -> list[ConnectionPlan]:
    return [tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, ack_stripped=True,
                          expect_status=EnoStatus.FALLBACK,
                          expect_reason=FallbackReason.ACK_WITHOUT_ENO, keylog=KEYS_NONE)]


def _fallback_reasons(rng: random.Random) -> list[ConnectionPlan]:
    t = BASE_NS
    plans = [
        plain_plan(rng, start_ns=t, reason=FallbackReason.NO_ENO_IN_SYN,
                   status=EnoStatus.ABSENT),
        plain_plan(rng, start_ns=t + SECOND, reason=FallbackReason.SYNACK_WITHOUT_ENO,
                   eno_a=offer(TEP_X25519)),
        plain_plan(rng, start_ns=t + 2 * SECOND, reason=FallbackReason.NO_COMMON_TEP,
                   eno_a=offer(TEP_X25519, TEP_X448), eno_b=offer(TEP_P256)),
        # Length byte 0x81 followed by a v=0 TEP: malformed in A's SYN.
        plain_plan(rng, start_ns=t + 3 * SECOND, reason=FallbackReason.MALFORMED_OPTION,
                   eno_a=EnoSpec(raw=bytes.fromhex("4505812300")), eno_b=offer(TEP_X25519)),
        # Length byte announcing 4 bytes with only 2 left: malformed in B's SYN-ACK.
        plain_plan(rng, start_ns=t + 4 * SECOND, reason=FallbackReason.MALFORMED_OPTION,
                   eno_a=offer(TEP_X25519), eno_b=EnoSpec(raw=bytes.fromhex("450683a30102"))),
        plain_plan(rng, start_ns=t + 5 * SECOND, reason=FallbackReason.ACK_WITHOUT_ENO,
                   eno_a=offer(TEP_X25519), eno_b=offer(TEP_X25519), ack_has_eno=False),
        plain_plan(rng, start_ns=t + 6 * SECOND, reason=FallbackReason.ROLE_CONFLICT,
                   eno_a=offer(TEP_X25519, general=GeneralSuboption.make(b=True)),
                   eno_b=offer(TEP_X25519, general=GeneralSuboption.make(b=True)),
                   simultaneous=True),
        tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, start_ns=t + 7 * SECOND,
                      drop_handshake=True, expect_status=EnoStatus.UNKNOWN,
                      expect_reason=FallbackReason.HANDSHAKE_NOT_CAPTURED),
    ]
    return plans


def _simultaneous(rng: random.Random) -> list[ConnectionPlan]:
    a, b = pair(rng, b_port=7000, a_port=7000)
    plan = ConnectionPlan(
        a=a, b=b, start_ns=BASE_NS, messages=http_messages(rng, b.ip, 4000),
        eno_a=offer(TEP_X25519, TEP_P256, general=GeneralSuboption.make(b=False)),
        eno_b=offer(TEP_P256, TEP_X25519, general=GeneralSuboption.make(b=True)),
        simultaneous=True, expect_tep=TEP_X25519, keylog=KEYS_SESSION_SECRET,
    )
    return [plan]


def _experimental(rng: random.Random) -> list[ConnectionPlan]:
    return [tcpcrypt_plan(rng, TEP_P256, AEAD_AES_128_GCM, encoding=ENCODING_EXPERIMENTAL,
                          kind=253, a_teps=(TEP_P256, TEP_P521)),
            tcpcrypt_plan(rng, TEP_X25519, AEAD_AES_256_GCM, encoding=ENCODING_EXPERIMENTAL,
                          kind=254, start_ns=BASE_NS + SECOND)]


def _ipv6_vlan(rng: random.Random) -> list[ConnectionPlan]:
    first = tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, a_ip="2001:db8::1",
                          b_ip="2001:db8::2", b_port=443, size=10_000)
    second = tcpcrypt_plan(rng, TEP_P256, AEAD_AES_128_GCM, a_ip="2001:db8:1::10",
                           b_ip="2001:db8:2::20", b_port=443, start_ns=BASE_NS + SECOND,
                           iface=1)
    return [first, second]


def _sll(rng: random.Random) -> list[ConnectionPlan]:
    return [tcpcrypt_plan(rng, TEP_P256, AEAD_AES_256_GCM, size=7000),
            plain_plan(rng, start_ns=BASE_NS + SECOND, reason=FallbackReason.NO_ENO_IN_SYN,
                       status=EnoStatus.ABSENT)]


def _pcapng_multi(rng: random.Random) -> list[ConnectionPlan]:
    return [
        tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, iface=0),
        tcpcrypt_plan(rng, TEP_P256, AEAD_AES_128_GCM, start_ns=BASE_NS + SECOND // 2,
                      a_ip="192.168.7.1", b_ip="192.168.7.2", iface=1),
        tcpcrypt_plan(rng, TEP_X448, AEAD_AES_256_GCM, start_ns=BASE_NS + SECOND,
                      a_ip="127.0.0.1", b_ip="127.0.0.1", iface=2),
        tcpcrypt_plan(rng, TEP_P521, AEAD_AES_128_GCM, start_ns=BASE_NS + 3 * SECOND // 2,
                      a_ip="fd00::a", b_ip="fd00::b", iface=3),
    ]


def _seq_wrap(rng: random.Random) -> list[ConnectionPlan]:
    plan = tcpcrypt_plan(rng, TEP_X25519, AEAD_AES_128_GCM, size=40_000)
    plan.a.isn = (1 << 32) - 700
    plan.b.isn = (1 << 32) - 5000
    plan.messages.insert(1, Message(True, text_body(rng, 9000)))
    return [plan]


def _gap(rng: random.Random) -> list[ConnectionPlan]:
    return [tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, size=30_000,
                          frame_data_max=1000, gap_from_a=False)]


def _retransmissions(rng: random.Random) -> list[ConnectionPlan]:
    imp = Impairments(duplicate_retransmission=0.1, resegmented_retransmission=1.0,
                      conflicting_retransmission=True)
    return [tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, size=40_000,
                          impairments=imp, reorder_count=3, syn_retransmit=True)]


def _snaplen(rng: random.Random) -> list[ConnectionPlan]:
    return [tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, size=6000,
                          frame_data_max=60)]


def _rst_no_fin(rng: random.Random) -> list[ConnectionPlan]:
    return [tcpcrypt_plan(rng, TEP_X25519, AEAD_AES_128_GCM, size=5000, fin_frames=False,
                          close="rst")]


def _busy_mix(rng: random.Random) -> list[ConnectionPlan]:
    plans: list[ConnectionPlan] = []
    teps = (TEP_P256, TEP_P521, TEP_X25519, TEP_X448)
    reasons = (FallbackReason.SYNACK_WITHOUT_ENO, FallbackReason.NO_COMMON_TEP,
               FallbackReason.ACK_WITHOUT_ENO)
    for n in range(60):
        start = BASE_NS + n * SECOND // 20 + rng.randrange(SECOND // 40)
        kind = rng.random()
        if kind < 0.7:
            tep = rng.choice(teps)
            aead = rng.choice(ALL_AEADS)
            plan = tcpcrypt_plan(rng, tep, aead, start_ns=start, size=rng.randrange(500, 15_000),
                                 a_ip=f"10.1.{n // 200}.{n % 200 + 1}", b_ip="10.2.0.1",
                                 b_port=rng.choice((80, 443, 8080)),
                                 keylog=rng.choice((KEYS_SESSION_SECRET, KEYS_SESSION_SECRET,
                                                    KEYS_PRIVATE_A, KEYS_TRAFFIC)),
                                 rekey_ba=(2,) if rng.random() < 0.3 else ())
        elif kind < 0.85:
            plan = plain_plan(rng, start_ns=start, reason=FallbackReason.NO_ENO_IN_SYN,
                              status=EnoStatus.ABSENT, size=rng.randrange(200, 8000))
        else:
            reason = rng.choice(reasons)
            kw: dict[str, object] = {"eno_a": offer(TEP_X25519, TEP_P256)}
            if reason == FallbackReason.NO_COMMON_TEP:
                kw["eno_b"] = offer(TEP_X448)
            elif reason == FallbackReason.ACK_WITHOUT_ENO:
                kw["eno_b"] = offer(TEP_P256)
                kw["ack_has_eno"] = False
            plan = plain_plan(rng, start_ns=start, reason=reason, **kw)
        plans.append(plan)
    return plans


_ETH = LinkParams()
_VLAN = LinkParams(vlan_ids=(100,))
_QINQ = LinkParams(vlan_ids=(200, 300))
_SLL = LinkParams(LinkType.LINUX_SLL)
_SLL2 = LinkParams(LinkType.LINUX_SLL2, ifindex=3)
_NULL = LinkParams(LinkType.NULL)
_RAW = LinkParams(LinkType.RAW)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("x25519-chacha20", "X25519 + ChaCha20-Poly1305, HTTP GET of 20 kB",
             _x25519_chacha, seed=101,
             notes="Negotiated TEP 0x23; A's general suboption has aa=01; key log: session "
                   "secret. Decrypts both directions; shows the session ID."),
    Scenario("p256-aes128-ignored", "P-256 + AES-128-GCM, Init1/Init2 with ignored bytes",
             _p256_aes128, CaptureSpec(nanosecond=True), seed=102,
             notes="Negotiated TEP 0x21, single AEAD offered; Init1 carries 7 and Init2 5 "
                   "ignored bytes (must be skipped, not misparsed). Nanosecond pcap."),
    Scenario("p521-aes256-traffic-keys", "P-521 + AES-256-GCM, key log with traffic keys only",
             _p521_traffic_keys, CaptureSpec(big_endian=True), seed=103,
             notes="Negotiated TEP 0x22 (A offered 0x22, 0x21). Key log has only "
                   "TCPCRYPT_TRAFFIC_KEYS: decrypts, but no session ID can be shown. "
                   "Big-endian pcap."),
    Scenario("x448-private-key", "X448 and X25519 with only an ephemeral private key logged",
             _x448_private_key, seed=104,
             notes="Connection 0: TEP 0x24 with A's private key; connection 1: TEP 0x23 with "
                   "B's private key. The analyzer must compute ES, PRK and ss[0] itself."),
    Scenario("rekey-both-directions", "AES-256-GCM with rekeys in both directions and URGENT",
             _rekey, seed=105,
             notes="Rekeys A->B at frames 1 and 2, B->A at frames 5, 15, 16, 30; A's POST "
                   "begins with an URGENT frame (urgent offset 12)."),
    Scenario("resumption", "Full exchange, two chained resumptions, a refused resumption",
             _resumption, seed=106,
             notes="Connection 0 full exchange (session secret logged); 1 resumes 0 and 2 "
                   "resumes 1 (keys only via the chain); 3 offers resumption, B refuses and "
                   "a full exchange follows (its own secret logged)."),
    Scenario("wrong-key", "A key log whose session secret is wrong", _wrong_key, seed=107,
             notes="Every frame fails authentication; verify must fail with a clear report "
                   "and no plaintext may be shown."),
    Scenario("fallback-absent", "Plain TCP without any ENO", _absent, seed=108,
             notes="Status absent, reason no-eno-in-syn; no tcpcrypt."),
    Scenario("fallback-synack-stripped", "A middlebox overwrote B's ENO with NOPs",
             _synack_stripped, seed=109,
             notes="Fallback: synack-without-eno (the SYN-ACK shows NOPs where ENO was)."),
    Scenario("fallback-ack-stripped", "A middlebox stripped ENO from A's first ACK",
             _ack_stripped, seed=110,
             notes="Fallback: ack-without-eno. A still sends Init1 (it never saw the "
                   "stripping); B treats it as data and resets."),
    Scenario("fallback-reasons", "One connection per ENO outcome that is not success",
             _fallback_reasons, seed=111,
             notes="Connections 0-7: absent, synack-without-eno, no-common-tep, "
                   "malformed-option (A's SYN: length byte before a v=0 TEP), "
                   "malformed-option (B's SYN-ACK: data past the end), ack-without-eno, "
                   "simultaneous-open-role-conflict (both b=1), handshake-not-captured "
                   "(tcpcrypt still decodable; session secret logged)."),
    Scenario("simultaneous-open", "Simultaneous open resolved by B's b bit", _simultaneous,
             seed=112,
             notes="Both hosts send bare SYNs on port 7000; the host with b=1 is B. "
                   "Negotiated TEP 0x23 (last of B's TEPs that A lists)."),
    Scenario("experimental-encoding", "ENO in the pre-RFC kind 253/254 + ExID 0x454E form",
             _experimental, seed=113,
             notes="Both connections negotiated with encoding experimental (kind 253 and "
                   "254); the transcript uses the RFC form of the options."),
    Scenario("ipv6-vlan", "IPv6 over 802.1Q and QinQ, pcapng", _ipv6_vlan,
             CaptureSpec("pcapng", (_VLAN, _QINQ)), seed=114,
             notes="Interface 0: VLAN 100; interface 1: QinQ 200/300. Both IPv6, negotiated."),
    Scenario("linux-sll", "Linux cooked capture (SLL)", _sll,
             CaptureSpec(interfaces=(_SLL,)), seed=115,
             notes="One tcpcrypt connection (P-256, AES-256-GCM) and one plain TCP."),
    Scenario("pcapng-multi-interface", "pcapng: Ethernet, SLL2, NULL, raw IP; DSB key log",
             _pcapng_multi,
             CaptureSpec("pcapng", (_ETH, _SLL2, _NULL, _RAW), tsresol=(6, 9, 6, 9),
                         embed_keylog=True), seed=116,
             notes="Four interfaces with per-interface link type and timestamp resolution; "
                   "the key log is also embedded in a Decryption Secrets Block (type "
                   "0x54435043) before the first packet."),
    Scenario("seq-wrap", "Both directions' sequence numbers wrap past 2^32", _seq_wrap,
             seed=117,
             notes="ISNs just below 2^32: stream offsets must continue across the wrap."),
    Scenario("gap", "A B->A segment is missing from the capture", _gap, seed=118,
             notes="One data segment of B's response was not captured: report the gap "
                   "(offset and size), resynchronise at the next frame, count the lost "
                   "frames."),
    Scenario("retransmission-reorder",
             "SYN retransmission, duplicate and re-segmented retransmissions, a conflicting "
             "retransmission, reordering", _retransmissions, seed=119,
             notes="One connection despite the repeated SYN; retransmitted bytes merged; "
                   "the conflicting copy reported as a possible injection (the first copy "
                   "is used); reordered segments buffered."),
    Scenario("snaplen", "Captured with snaplen 200: payloads truncated", _snaplen,
             CaptureSpec(snaplen=200), seed=120,
             notes="Truncated packets are reported, never misparsed; ENO and Init messages "
                   "still decode; only frames wholly captured decrypt."),
    Scenario("rst-no-fin-frame", "tcpcrypt connection torn down by RST without FIN frames",
             _rst_no_fin, seed=121,
             notes="No frame carries the FIN flag: both directions possibly truncated."),
    Scenario("busy-mix", "60 connections: all TEPs and AEADs, plain TCP and fallbacks",
             _busy_mix, seed=122,
             notes="A mix to exercise the flow table; every connection's outcome is in the "
                   "expected file."),
)}
