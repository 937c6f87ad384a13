"""The named scenarios behind ``tcpinc-analyze synth`` and the samples/ catalog.

Each scenario is a seeded recipe: the same name and seed always give the same bytes,
which is what lets the test suite regenerate every committed sample and compare.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..eno import (
    ENCODING_EXPERIMENTAL,
    GlobalSuboption,
    Suboption,
    TepSuboption,
    encode_option,
)
from ..wire import (
    AEAD_AES_128_GCM,
    AEAD_AES_256_GCM,
    AEAD_CHACHA20_POLY1305,
    NONCE_OFFSET_AFTER_INIT,
    TEP_P256,
    TEP_P521,
    TEP_X448,
    TEP_X25519,
    EnoStatus,
    FallbackReason,
)
from .connection import (
    KEYS_MASTER,
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


def offer(*teps: int, glob: GlobalSuboption | None = None, encoding: str = "rfc",
          kind: int = 253) -> EnoSpec:
    """An ENO option listing TEPs in order (the global suboption first when given)."""
    subs: list[Suboption] = [glob] if glob else []
    subs += [TepSuboption(t) for t in teps]
    return EnoSpec(subs, encoding, kind)


PASSIVE = GlobalSuboption.make(b=True)
"""A passive opener's explicit global suboption: b = 1 (RFC 8547 §4.2)."""


def answer(*teps: int, encoding: str = "rfc", kind: int = 253) -> EnoSpec:
    """A passive opener's SYN-ACK option: explicit b = 1, then its TEP(s)."""
    return offer(*teps, glob=PASSIVE, encoding=encoding, kind=kind)


def tcpcrypt_plan(rng: random.Random, tep: int, aead: int, *, start_ns: int = BASE_NS,
                  size: int = 6000, a_ip: str = "10.0.0.1", b_ip: str = "10.0.0.2",
                  keylog: str = KEYS_SESSION_SECRET, a_teps: Sequence[int] | None = None,
                  **kw: object) -> ConnectionPlan:
    """A negotiated tcpcrypt connection carrying one HTTP exchange."""
    a, b = pair(rng, a_ip, b_ip, b_port=int(kw.pop("b_port", 80)))  # type: ignore[arg-type]
    enc = str(kw.pop("encoding", "rfc"))
    kind = int(kw.pop("kind", 253))  # type: ignore[arg-type]
    a_global = kw.pop("a_global", None)
    plan = ConnectionPlan(
        a=a, b=b, start_ns=start_ns,
        messages=http_messages(rng, b_ip, size),
        eno_a=offer(*(a_teps or (tep,)), glob=a_global,  # type: ignore[arg-type]
                    encoding=enc, kind=kind),
        eno_b=answer(tep, encoding=enc, kind=kind),
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
                          a_global=GlobalSuboption.make(a=True))]


def _p256_aes128(rng: random.Random) -> list[ConnectionPlan]:
    plan = tcpcrypt_plan(rng, TEP_P256, AEAD_AES_128_GCM, size=8000,
                         init1_ignored=rng.randbytes(7), init2_ignored=rng.randbytes(5),
                         aeads_a=(AEAD_AES_128_GCM,), aeads_b=(AEAD_AES_128_GCM,))
    plan.expect_findings = ("init-ignored-nonempty", "init-ignored-nonempty")
    return [plan]


def _p521_traffic_keys(rng: random.Random) -> list[ConnectionPlan]:
    # B rekeys in its response: with generation-0 traffic keys only, the frames after the
    # rekey cannot be decrypted (A has sent FINp already, so it need not answer).
    return [tcpcrypt_plan(rng, TEP_P521, AEAD_AES_256_GCM, size=12_000, keylog=KEYS_TRAFFIC,
                          a_teps=(TEP_P521, TEP_P256), rekey_ba=(2,))]


def _x448_private_key(rng: random.Random) -> list[ConnectionPlan]:
    return [tcpcrypt_plan(rng, TEP_X448, AEAD_AES_256_GCM, size=9000, keylog=KEYS_PRIVATE_A),
            tcpcrypt_plan(rng, TEP_X25519, AEAD_AES_128_GCM, size=4000, keylog=KEYS_PRIVATE_B,
                          start_ns=BASE_NS + SECOND)]


def _rekey(rng: random.Random) -> list[ConnectionPlan]:
    # B initiates twice in its response (frames 5 and 15); A's POST answers both with its
    # first two frames, then initiates once more (frame 3); B's 204 answers that.
    plan = tcpcrypt_plan(rng, TEP_X25519, AEAD_AES_256_GCM, size=150_000,
                         frame_data_max=4000, rekey_ab=(3,), rekey_ba=(5, 15))
    plan.messages += [Message(True, b"POST /upload HTTP/1.1\r\nContent-Length: 9000\r\n\r\n"
                              + text_body(rng, 9000), think_ns=SECOND // 50, urgent=12),
                      Message(False, b"HTTP/1.1 204 No Content\r\n\r\n")]
    return [plan]


def _master_key(rng: random.Random) -> list[ConnectionPlan]:
    plan = tcpcrypt_plan(rng, TEP_P256, AEAD_CHACHA20_POLY1305, size=30_000, keylog=KEYS_MASTER,
                         rekey_ba=(1, 4))
    plan.messages += [Message(True, b"GET /more HTTP/1.1\r\nHost: 10.0.0.2\r\n\r\n",
                              think_ns=SECOND // 20),
                      Message(False, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nmore\n")]
    return [plan]


def _after_init(rng: random.Random) -> list[ConnectionPlan]:
    return [tcpcrypt_plan(rng, TEP_X25519, AEAD_AES_128_GCM, size=9000,
                          nonce_base=NONCE_OFFSET_AFTER_INIT),
            tcpcrypt_plan(rng, TEP_X448, AEAD_CHACHA20_POLY1305, size=5000,
                          nonce_base=NONCE_OFFSET_AFTER_INIT, keylog=KEYS_PRIVATE_B,
                          start_ns=BASE_NS + SECOND)]


def _resumption(rng: random.Random) -> list[ConnectionPlan]:
    first = tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, size=5000)
    second = tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, size=5000,
                           start_ns=BASE_NS + 2 * SECOND, keylog=KEYS_NONE, resume_parent=0)
    # The host that was B in the first session opens this one; nonces of 3 and 0 bytes.
    third = tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, size=5000,
                          a_ip="10.0.0.2", b_ip="10.0.0.1", start_ns=BASE_NS + 4 * SECOND,
                          keylog=KEYS_NONE, resume_parent=1, resume_nonces=(3, 0))
    refused = tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, size=3000,
                            start_ns=BASE_NS + 6 * SECOND, resume_parent=2,
                            resume_accepted=False)
    return [first, second, third, refused]


def _wrong_key(rng: random.Random) -> list[ConnectionPlan]:
    return [tcpcrypt_plan(rng, TEP_P256, AEAD_AES_128_GCM, size=6000, keylog=KEYS_WRONG)]


def _absent(rng: random.Random) -> list[ConnectionPlan]:
    return [plain_plan(rng, start_ns=BASE_NS, reason=FallbackReason.ABSENT,
                       status=EnoStatus.ABSENT, size=6000)]


def _synack_stripped(rng: random.Random) -> list[ConnectionPlan]:
    return [plain_plan(rng, start_ns=BASE_NS, reason=FallbackReason.SYNACK_WITHOUT_ENO,
                       eno_a=offer(TEP_X25519, TEP_P256), eno_b=answer(TEP_X25519),
                       synack_stripped=True)]


def _ack_stripped(rng: random.Random) -> list[ConnectionPlan]:
    plan = tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, ack_stripped=True,
                         expect_status=EnoStatus.FALLBACK,
                         expect_reason=FallbackReason.ACK_WITHOUT_ENO, keylog=KEYS_NONE)
    plan.expect_findings = ("eno-ack-missing",)
    return [plan]


def _fallback_reasons(rng: random.Random) -> list[ConnectionPlan]:
    t = BASE_NS
    both = encode_option([TepSuboption(TEP_X25519)]) + encode_option(
        [TepSuboption(TEP_X25519)], encoding=ENCODING_EXPERIMENTAL)
    plans = [
        plain_plan(rng, start_ns=t, reason=FallbackReason.ABSENT, status=EnoStatus.ABSENT),
        plain_plan(rng, start_ns=t + SECOND, reason=FallbackReason.SYNACK_WITHOUT_ENO,
                   eno_a=offer(TEP_X25519)),
        plain_plan(rng, start_ns=t + 2 * SECOND, reason=FallbackReason.NO_COMMON_TEP,
                   eno_a=offer(TEP_X25519, TEP_X448), eno_b=answer(TEP_P256),
                   expect_findings=("eno-after-fallback",)),
        # Length byte 0x81 followed by a v = 0 TEP: ill-formed in A's SYN.
        plain_plan(rng, start_ns=t + 3 * SECOND, reason=FallbackReason.MALFORMED_ENO,
                   eno_a=EnoSpec(raw=bytes.fromhex("4505812300")), eno_b=answer(TEP_X25519),
                   expect_findings=("eno-length-byte", "eno-after-fallback")),
        # Length byte announcing 4 bytes with only 2 left: ill-formed in B's SYN-ACK.
        plain_plan(rng, start_ns=t + 4 * SECOND, reason=FallbackReason.MALFORMED_ENO,
                   eno_a=offer(TEP_X25519), eno_b=EnoSpec(raw=bytes.fromhex("45070183a30102")),
                   expect_findings=("eno-length-byte",)),
        plain_plan(rng, start_ns=t + 5 * SECOND, reason=FallbackReason.ACK_WITHOUT_ENO,
                   eno_a=offer(TEP_X25519), eno_b=answer(TEP_X25519), ack_has_eno=False,
                   expect_findings=("eno-ack-missing",)),
        plain_plan(rng, start_ns=t + 6 * SECOND, reason=FallbackReason.ROLE_CONFLICT,
                   eno_a=offer(TEP_X25519, glob=PASSIVE), eno_b=offer(TEP_X25519, glob=PASSIVE),
                   simultaneous=True),
        # Two ENO options (69 and 253/ExID) in A's SYN count as none.
        plain_plan(rng, start_ns=t + 7 * SECOND, reason=FallbackReason.MULTIPLE_ENO_OPTIONS,
                   eno_a=EnoSpec(raw=both), eno_b=answer(TEP_X25519),
                   expect_findings=("eno-multiple-syn", "eno-both-encodings",
                                    "eno-after-fallback")),
        tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, start_ns=t + 8 * SECOND,
                      drop_handshake=True, expect_status=EnoStatus.UNKNOWN,
                      expect_reason=FallbackReason.HANDSHAKE_NOT_CAPTURED),
    ]
    return plans


def _role_conflicts(rng: random.Random) -> list[ConnectionPlan]:
    t = BASE_NS
    return [
        # The passive opener's SYN-ACK has no global suboption: implicit b = 0, like A's.
        plain_plan(rng, start_ns=t, reason=FallbackReason.ROLE_CONFLICT,
                   eno_a=offer(TEP_X25519, TEP_P256), eno_b=offer(TEP_X25519),
                   expect_findings=("eno-synack-no-explicit-b",)),
        # An explicit global suboption with b = 0 in the SYN-ACK.
        plain_plan(rng, start_ns=t + SECOND, reason=FallbackReason.ROLE_CONFLICT,
                   eno_a=offer(TEP_X448), eno_b=offer(TEP_X448, glob=GlobalSuboption.make()),
                   expect_findings=("eno-synack-no-explicit-b",)),
        # An active opener configured with b = 1 meets a passive opener (b = 1); B should
        # have disabled ENO instead of answering with it.
        plain_plan(rng, start_ns=t + 2 * SECOND, reason=FallbackReason.ROLE_CONFLICT,
                   eno_a=offer(TEP_X25519, glob=PASSIVE), eno_b=answer(TEP_X25519),
                   expect_findings=("eno-after-fallback",)),
        # Simultaneous open where both keep the default b = 0.
        plain_plan(rng, start_ns=t + 3 * SECOND, reason=FallbackReason.ROLE_CONFLICT,
                   eno_a=offer(TEP_X25519), eno_b=offer(TEP_X25519), simultaneous=True),
    ]


def _eno_edge_cases(rng: random.Random) -> list[ConnectionPlan]:
    t = BASE_NS
    return [
        # A vacuous option from A: ENO is supported but no TEP is offered.
        plain_plan(rng, start_ns=t, reason=FallbackReason.NO_COMMON_TEP, eno_a=offer(),
                   eno_b=offer(glob=PASSIVE)),
        # A vacuous SYN-ACK option answering a SYN without ENO: not allowed.
        plain_plan(rng, start_ns=t + SECOND, reason=FallbackReason.ABSENT,
                   status=EnoStatus.ABSENT, eno_b=offer(glob=PASSIVE),
                   expect_findings=("eno-vacuous-reply",)),
        # Two ENO options in B's SYN-ACK (both kind 69).
        plain_plan(rng, start_ns=t + 2 * SECOND, reason=FallbackReason.MULTIPLE_ENO_OPTIONS,
                   eno_a=offer(TEP_X25519),
                   eno_b=EnoSpec(raw=answer(TEP_X25519).encode() + answer(TEP_P256).encode()),
                   expect_findings=("eno-multiple-syn",)),
        # A global suboption repeated and one with z bits; B lists two TEPs (a SHOULD).
        tcpcrypt_plan(rng, TEP_X25519, AEAD_AES_128_GCM, start_ns=t + 3 * SECOND, size=2000,
                      eno_a=EnoSpec([GlobalSuboption.make(a=True), GlobalSuboption(0x00),
                                     TepSuboption(TEP_P256), TepSuboption(TEP_X25519)]),
                      eno_b=EnoSpec([GlobalSuboption(0x05), TepSuboption(TEP_P256),
                                     TepSuboption(TEP_X25519)]),
                      expect_findings=("eno-global-repeated", "eno-global-reserved",
                                       "eno-synack-multiple-teps")),
        # v = 1 with fewer than 9 data bytes is a plain offer; B answers v = 1 too, so the
        # session ID starts with 0xa3.
        tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, start_ns=t + 4 * SECOND,
                      size=2000, eno_a=EnoSpec([TepSuboption(TEP_X25519, b"\x01\x02")]),
                      eno_b=EnoSpec([PASSIVE, TepSuboption(TEP_X25519, b"\x07")])),
    ]


def _simultaneous(rng: random.Random) -> list[ConnectionPlan]:
    a, b = pair(rng, b_port=7000, a_port=7000)
    plan = ConnectionPlan(
        a=a, b=b, start_ns=BASE_NS, messages=http_messages(rng, b.ip, 4000),
        eno_a=offer(TEP_X25519, TEP_P256, glob=GlobalSuboption.make(b=False)),
        eno_b=offer(TEP_P256, TEP_X25519, glob=PASSIVE),
        simultaneous=True, expect_tep=TEP_X25519, keylog=KEYS_SESSION_SECRET,
    )
    # The host with b = 1 sends its SYN first: it is host B all the same.
    c, d = pair(rng, "10.0.0.3", "10.0.0.4", b_port=7001, a_port=7001)
    second = ConnectionPlan(
        a=c, b=d, start_ns=BASE_NS + SECOND, messages=http_messages(rng, c.ip, 3000),
        eno_a=offer(TEP_X448, glob=PASSIVE), eno_b=offer(TEP_X448),
        simultaneous=True, expect_tep=TEP_X448, keylog=KEYS_PRIVATE_A,
    )
    return [plan, second]


def _experimental(rng: random.Random) -> list[ConnectionPlan]:
    return [tcpcrypt_plan(rng, TEP_P256, AEAD_AES_128_GCM, encoding=ENCODING_EXPERIMENTAL,
                          kind=253, a_teps=(TEP_P256, TEP_P521)),
            tcpcrypt_plan(rng, TEP_X25519, AEAD_AES_256_GCM, encoding=ENCODING_EXPERIMENTAL,
                          kind=254, start_ns=BASE_NS + SECOND, keylog=KEYS_PRIVATE_A)]


def _ipv6_vlan(rng: random.Random) -> list[ConnectionPlan]:
    first = tcpcrypt_plan(rng, TEP_X25519, AEAD_CHACHA20_POLY1305, a_ip="2001:db8::1",
                          b_ip="2001:db8::2", b_port=443, size=10_000)
    second = tcpcrypt_plan(rng, TEP_P256, AEAD_AES_128_GCM, a_ip="2001:db8:1::10",
                           b_ip="2001:db8:2::20", b_port=443, start_ns=BASE_NS + SECOND,
                           iface=1)
    return [first, second]


def _sll(rng: random.Random) -> list[ConnectionPlan]:
    return [tcpcrypt_plan(rng, TEP_P256, AEAD_AES_256_GCM, size=7000),
            plain_plan(rng, start_ns=BASE_NS + SECOND, reason=FallbackReason.ABSENT,
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


def _conformance(rng: random.Random) -> list[ConnectionPlan]:
    """One implementation that breaks many rules of RFC 8547/8548 (digest section 5)."""
    t = BASE_NS
    x, p256 = TEP_X25519, TEP_P256
    handshake = tcpcrypt_plan(
        rng, x, AEAD_CHACHA20_POLY1305, start_ns=t, size=3000, syn_data=b"early data",
        break_syn_retransmit_eno=offer(x, TEP_X448).encode(), break_nonsyn_contents=b"\x01",
        break_eno_only_on_ack=True,
        expect_findings=("eno-syn-data", "eno-syn-data", "eno-syn-changed",
                         "eno-nonsyn-contents", "eno-option-missing"))
    messages = tcpcrypt_plan(
        rng, p256, AEAD_AES_128_GCM, start_ns=t + SECOND, size=3000, break_uncompressed=True,
        init1_ignored=b"\x00\x00", break_init1_psh=True, break_cipher=AEAD_AES_256_GCM,
        aeads_a=(AEAD_AES_128_GCM, AEAD_CHACHA20_POLY1305),
        expect_findings=("init-ignored-nonempty", "pubkey-uncompressed", "pubkey-uncompressed",
                         "init-no-psh", "init2-cipher-not-offered"))
    frames = tcpcrypt_plan(
        rng, x, AEAD_AES_256_GCM, start_ns=t + 2 * SECOND, size=20_000, rekey_ab=(1,),
        break_control={2: 0x10}, break_flags={1: 0x40}, break_early_finp_ab=2,
        break_no_finp_ba=True, break_no_rekey_answer_b=True, break_tag_ba=3,
        expect_findings=("frame-reserved-bits", "plaintext-reserved-bits")
        + ("frames-after-finp",) * 3 + ("fin-without-finp",) + ("rekey-not-answered",))
    # (its damaged frame's frame-tag-failed is listed, with its packet, by the generator)
    frames.messages[:0] = [Message(True, b"PING\r\n", think_ns=SECOND // 100)]
    frames.messages.insert(2, Message(True, b"", empty_rekeys=2, think_ns=SECOND // 100))
    frames.messages += [Message(True, b"BYE\r\n"), Message(False, b"OK\r\n")]
    frames.expect_findings += ("rekey-empty-repeated",)
    bad_key = tcpcrypt_plan(rng, x, AEAD_CHACHA20_POLY1305, start_ns=t + 3 * SECOND, size=500,
                            break_a_pubkey=bytes(32),
                            eno_b=EnoSpec([PASSIVE, TepSuboption(TEP_X448, bytes(range(9)),
                                                                 length_byte=True),
                                           TepSuboption(x)]),
                            expect_findings=("resume-unsolicited", "eno-synack-multiple-teps",
                                             "pubkey-invalid"))
    long_nonce = tcpcrypt_plan(
        rng, TEP_X448, AEAD_AES_128_GCM, start_ns=t + 4 * SECOND, size=1000,
        eno_a=EnoSpec([TepSuboption(x, bytes(range(18)), length_byte=True),
                       TepSuboption(TEP_X448)]),
        break_plaintext_b=b"HTTP/1.1 400 Bad Request\r\n\r\n",
        expect_findings=("resume-nonce-too-long", "tcpcrypt-bad-magic"))
    duplicate = tcpcrypt_plan(
        rng, TEP_X448, AEAD_AES_128_GCM, start_ns=t + 5 * SECOND, size=1000,
        eno_a=EnoSpec([TepSuboption(x, bytes(range(9)), length_byte=True),
                       TepSuboption(x, bytes(range(10, 19)), length_byte=True),
                       TepSuboption(TEP_X448)]),
        expect_findings=("resume-duplicate-suboption", "resume-multiple-suboptions"))
    for plan in (long_nonce, duplicate):
        plan.a.timestamps = False  # room in the SYN for the long ENO option
    parent = tcpcrypt_plan(rng, x, AEAD_CHACHA20_POLY1305, start_ns=t + 6 * SECOND, size=1000)
    resumed = tcpcrypt_plan(rng, x, AEAD_CHACHA20_POLY1305, start_ns=t + 7 * SECOND,
                            size=1000, keylog=KEYS_NONE, resume_parent=6)
    replayed = tcpcrypt_plan(rng, x, AEAD_CHACHA20_POLY1305, start_ns=t + 8 * SECOND,
                             size=1000, keylog=KEYS_NONE, resume_parent=6,
                             expect_findings=("resume-identifier-reused",
                                              "resume-identifier-reused"))
    after_fallback = plain_plan(rng, start_ns=t + 9 * SECOND,
                                reason=FallbackReason.SYNACK_WITHOUT_ENO, eno_a=offer(x),
                                break_ack_eno=True, expect_findings=("eno-after-fallback",))
    return [handshake, messages, frames, bad_key, long_nonce, duplicate, parent, resumed,
            replayed, after_fallback]


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
                                                    KEYS_PRIVATE_A, KEYS_MASTER, KEYS_TRAFFIC)),
                                 rekey_ba=(2,) if rng.random() < 0.3 else ())
        elif kind < 0.85:
            plan = plain_plan(rng, start_ns=start, reason=FallbackReason.ABSENT,
                              status=EnoStatus.ABSENT, size=rng.randrange(200, 8000))
        else:
            reason = rng.choice(reasons)
            kw: dict[str, object] = {"eno_a": offer(TEP_X25519, TEP_P256)}
            if reason == FallbackReason.NO_COMMON_TEP:
                kw["eno_b"] = answer(TEP_X448)
                kw["expect_findings"] = ("eno-after-fallback",)
            elif reason == FallbackReason.ACK_WITHOUT_ENO:
                kw["eno_b"] = answer(TEP_P256)
                kw["ack_has_eno"] = False
                kw["expect_findings"] = ("eno-ack-missing",)
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
             notes="Negotiated TEP 0x23; A's global suboption has a = 1; B's SYN-ACK has "
                   "b = 1; key log: session secret. Decrypts both directions; shows the "
                   "session ID."),
    Scenario("p256-aes128-ignored", "P-256 + AES-128-GCM, Init1/Init2 with ignored bytes",
             _p256_aes128, CaptureSpec(nanosecond=True), seed=102,
             notes="Negotiated TEP 0x21 (compressed points behind pubkey_len 35), single AEAD "
                   "offered; Init1 carries 7 and Init2 5 ignored bytes: skipped, not "
                   "misparsed, and reported (init-ignored-nonempty, RFC 8548 §4.1). "
                   "Nanosecond pcap."),
    Scenario("p521-aes256-traffic-keys",
             "P-521 + AES-256-GCM, key log with traffic keys only, B rekeys",
             _p521_traffic_keys, CaptureSpec(big_endian=True), seed=103,
             notes="Negotiated TEP 0x22 (A offered 0x22, 0x21). Key log has only "
                   "TCPCRYPT_TRAFFIC_KEYS (generation 0): decrypts until B's rekey; later B->A "
                   "frames are counted as undecryptable, not as tag failures; no session ID. "
                   "Big-endian pcap."),
    Scenario("x448-private-key", "X448 and X25519 with only an ephemeral private key logged",
             _x448_private_key, seed=104,
             notes="Connection 0: TEP 0x24 with A's private key; connection 1: TEP 0x23 with "
                   "B's private key. The analyzer computes ES, PRK and ss[0] itself."),
    Scenario("rekey-both-directions", "AES-256-GCM, rekeys initiated and answered both ways",
             _rekey, seed=105,
             notes="B initiates rekeys at its frames 5 and 15; A's POST answers both with its "
                   "first two frames, then initiates at its frame 3, which B's 204 answers "
                   "(RFC 8548 §3.8). A's POST begins with an URGp frame (urgent 12)."),
    Scenario("master-key-only", "P-256 + ChaCha20-Poly1305 with only mk[0] logged, rekeys",
             _master_key, seed=123,
             notes="Key log: TCPCRYPT_MASTER_KEY: every generation decrypts (mk[j] chain), no "
                   "session ID can be shown."),
    Scenario("nonce-after-init", "Frame IDs counted from after the Init message",
             _after_init, seed=124,
             notes="Both hosts use the after-init reading of RFC 8548 §3.6's frame offset: "
                   "the reader tries both readings on each direction's first frame and reports "
                   "nonce_offset_base after-init. Connection 1 uses B's private key."),
    Scenario("resumption", "Fresh exchange, resumptions by either host, a refused resumption",
             _resumption, seed=106,
             notes="Connection 0 fresh (ss[0] logged); 1 resumes with ss[1]; 2 is opened by "
                   "the host that was B in connection 0 and resumes with ss[2] (nonces of 3 "
                   "and 0 bytes; keys from the chain, each host keeps its original key "
                   "direction); 3 proposes ss[3], B answers with v = 0 and a fresh key "
                   "exchange follows (its own secret logged)."),
    Scenario("wrong-key", "A key log whose session secret is wrong", _wrong_key, seed=107,
             notes="Every frame fails authentication; verify must fail with a clear report "
                   "and no plaintext may be shown."),
    Scenario("fallback-absent", "Plain TCP without any ENO", _absent, seed=108,
             notes="Status absent, reason absent; no tcpcrypt."),
    Scenario("fallback-synack-stripped", "A middlebox overwrote B's ENO with NOPs",
             _synack_stripped, seed=109,
             notes="Fallback: synack-without-eno (the SYN-ACK shows NOPs where ENO was)."),
    Scenario("fallback-ack-stripped", "A middlebox stripped ENO from A's first ACK",
             _ack_stripped, seed=110,
             notes="Fallback: ack-without-eno (and eno-ack-missing: the capture cannot tell "
                   "A's omission from stripping). A still sends Init1; B resets."),
    Scenario("fallback-reasons", "One connection per ENO fallback reason",
             _fallback_reasons, seed=111,
             notes="Connections 0-8: absent, synack-without-eno, no-common-tep, malformed-eno "
                   "(A's SYN: length byte before a v = 0 TEP), malformed-eno (B's SYN-ACK: "
                   "data past the end), ack-without-eno, role-conflict (simultaneous open, "
                   "both b = 1), multiple-eno-options (kind 69 and 253 in A's SYN), "
                   "handshake-not-captured (tcpcrypt still decodable; session secret logged)."),
    Scenario("role-conflicts", "ENO role conflicts (RFC 8547 §4.3)", _role_conflicts,
             seed=125,
             notes="SYN-ACK without a global suboption; SYN-ACK with b = 0; an active opener "
                   "with b = 1 against a passive opener; a simultaneous open with both b = 0. "
                   "All four fall back with role-conflict."),
    Scenario("eno-edge-cases", "Vacuous options, two ENO options, repeated global suboptions",
             _eno_edge_cases, seed=126,
             notes="A vacuous option (no-common-tep); a vacuous SYN-ACK option answering a "
                   "SYN without ENO (eno-vacuous-reply); two ENO options in a SYN-ACK "
                   "(multiple-eno-options); a repeated global suboption and z bits (negotiated); "
                   "v = 1 with 2 data bytes as a plain offer (session ID starts 0xa3)."),
    Scenario("simultaneous-open", "Simultaneous opens resolved by the b bit", _simultaneous,
             seed=112,
             notes="Both hosts send bare SYNs; the host with b = 1 is B, whichever SYN came "
                   "first. Connection 0: TEP 0x23 (last of B's TEPs that A lists); "
                   "connection 1: the b = 1 host sends first, TEP 0x24, A's private key logged."),
    Scenario("experimental-encoding", "ENO in the pre-RFC kind 253/254 + ExID 0x454E form",
             _experimental, seed=113,
             notes="Both connections negotiated with encoding experimental (kind 253 and "
                   "254); the transcript takes the options as they appeared (ExID included). "
                   "Connection 1 uses A's private key, so that reading is checked."),
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
                   "the conflicting copy reported (retransmission-conflict, RFC 8548 §3.6; the "
                   "first copy is used); reordered segments buffered."),
    Scenario("snaplen", "Captured with snaplen 200: payloads truncated", _snaplen,
             CaptureSpec(snaplen=200), seed=120,
             notes="Truncated packets are reported, never misparsed; ENO and Init messages "
                   "still decode; only frames wholly captured decrypt."),
    Scenario("rst-no-fin-frame", "tcpcrypt connection torn down by RST without FINp frames",
             _rst_no_fin, seed=121,
             notes="No frame carries FINp and no TCP FIN is sent: both directions possibly "
                   "truncated (an abort, not a violation)."),
    Scenario("conformance-violations", "An implementation that breaks many RFC rules",
             _conformance, seed=127,
             notes="Ten connections, each breaking rules of RFC 8547/8548 that a capture "
                   "shows: SYN data and a changed SYN retransmission, non-empty non-SYN ENO "
                   "on the ACK and none on Init1 (sent before B's first ACK); "
                   "uncompressed keys, ignored bytes, Init1 without PSH, an Init2 cipher A "
                   "never offered; reserved control and flag bits, FINp too early, FIN "
                   "without FINp, an unanswered rekey, repeated empty rekeys, a damaged tag; "
                   "an all-zero X25519 key; resumption nonce too long, two resumption "
                   "suboptions for one TEP, one ss[i] resumed twice; ENO after a fallback. "
                   "Each connection's expected findings list the codes it must raise."),
    Scenario("busy-mix", "60 connections: all TEPs and AEADs, plain TCP and fallbacks",
             _busy_mix, seed=122,
             notes="A mix to exercise the flow table; every connection's outcome is in the "
                   "expected file."),
)}
