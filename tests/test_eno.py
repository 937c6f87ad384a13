"""TCP-ENO option codec and negotiation (RFC 8547 §4, digest section 1), checked against a
byte layout written out in this file from the RFC's Table 1 and Figures 2-7 rather than
against the project's encoder, and against the RFC's negotiation rules case by case."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpinc_analyze.eno import (
    ENCODING_EXPERIMENTAL,
    ENCODING_RFC,
    ROLES_B_BIT,
    ROLES_PRE_RFC,
    EnoOption,
    GlobalSuboption,
    Suboption,
    SynEno,
    TepSuboption,
    choose_tep,
    decode_option,
    encode_option,
    encode_suboptions,
    negotiate,
    parse_suboptions,
    tcpcrypt_suboption_kind,
    tep_valid,
)
from tcpinc_analyze.findings import Severity
from tcpinc_analyze.wire import EnoStatus, FallbackReason

SETTINGS = settings(max_examples=150, deadline=None)

RFC_MAX_CONTENTS = 40 - 2  # kind + length
EXP_MAX_CONTENTS = 40 - 4  # kind + length + ExID

# (encoding, kind, bytes in front of the contents, content budget)
ENCODINGS = [
    pytest.param(ENCODING_RFC, 69, b"", RFC_MAX_CONTENTS, id="rfc-69"),
    pytest.param(ENCODING_EXPERIMENTAL, 253, b"\x45\x4e", EXP_MAX_CONTENTS, id="exp-253"),
    pytest.param(ENCODING_EXPERIMENTAL, 254, b"\x45\x4e", EXP_MAX_CONTENTS, id="exp-254"),
]


# --- an independent encoder, straight from the table in spec 1.1 ----------------------------


def spec_bytes(sub: Suboption) -> bytes:
    """The wire bytes of one suboption, as spec 1.1 lays them out."""
    if isinstance(sub, GlobalSuboption):
        return bytes([sub.byte])
    if sub.data is None:
        return bytes([sub.tep])  # v = 0
    if sub.length_byte:
        return bytes([0x80 | (len(sub.data) - 1), 0x80 | sub.tep]) + sub.data
    return bytes([0x80 | sub.tep]) + sub.data


def spec_contents(subs: list[Suboption]) -> bytes:
    return b"".join(spec_bytes(s) for s in subs)


def expected_notes(subs: list[Suboption], base: int) -> list[tuple[str, int]]:
    """(code, offset) of every finding a valid sequence must produce (RFC 8547 §4.2): a
    second global suboption; z bits set in the first one."""
    notes = []
    globals_seen = 0
    pos = base
    for sub in subs:
        if isinstance(sub, GlobalSuboption):
            globals_seen += 1
            if globals_seen > 1:
                notes.append(("eno-global-repeated", pos))
            elif sub.byte & 0x1C:
                notes.append(("eno-global-reserved", pos))
        pos += len(spec_bytes(sub))
    return sorted(notes)


# --- strategies ---------------------------------------------------------------------------

tep_ids = st.integers(0x20, 0x7F)
globals_ = st.builds(
    lambda b, a, z: GlobalSuboption.make(b=b, a=a, z=z),
    st.booleans(), st.booleans(), st.integers(0, 7),
)


@st.composite
def suboption_lists(draw: st.DrawFn, budget: int = RFC_MAX_CONTENTS) -> list[Suboption]:
    """Valid SYN-form suboption sequences whose contents fit in ``budget`` bytes."""
    subs: list[Suboption] = []
    left = budget
    for _ in range(draw(st.integers(0, 14))):
        if left < 1:
            break
        choices = ["global", "tep"] + (["length"] if left >= 3 else [])
        kind = draw(st.sampled_from(choices))
        if kind == "global":
            subs.append(draw(globals_))
            left -= 1
        elif kind == "tep":
            subs.append(TepSuboption(draw(tep_ids)))
            left -= 1
        else:
            data = draw(st.binary(min_size=1, max_size=min(32, left - 2)))
            subs.append(TepSuboption(draw(tep_ids), data, True))
            left -= 2 + len(data)
    if left >= 1 and draw(st.booleans()):
        data = draw(st.binary(max_size=left - 1))
        subs.append(TepSuboption(draw(tep_ids), data, False))
    return subs


@st.composite
def encoded_cases(draw: st.DrawFn) -> tuple[str, int, bytes, list[Suboption]]:
    encoding, kind, prefix, budget = draw(st.sampled_from([p.values for p in ENCODINGS]))
    return encoding, kind, prefix, draw(suboption_lists(budget))


# --- round trip -----------------------------------------------------------------------------


@pytest.mark.parametrize(("encoding", "kind", "prefix", "budget"), ENCODINGS)
@SETTINGS
@given(data=st.data())
def test_encode_decode_round_trip(encoding, kind, prefix, budget, data):
    subs = data.draw(suboption_lists(budget))
    where = data.draw(st.integers(0, 38))  # offset of the option's kind byte in the header
    contents = spec_contents(subs)
    assert len(contents) <= budget

    wire = encode_option(subs, encoding=encoding, kind=kind)
    assert wire == bytes([kind, len(prefix) + len(contents) + 2]) + prefix + contents
    assert encode_suboptions(subs) == contents
    assert len(wire) <= 40

    opt = decode_option(wire[0], wire[2:], where)
    assert isinstance(opt, EnoOption)
    assert opt.encoding == encoding
    assert opt.kind == kind
    assert opt.raw == wire
    assert opt.contents == contents
    assert opt.suboptions == tuple(subs)
    assert opt.malformed is False

    base = where + 2 + len(prefix)
    got = sorted((f.code, f.offset) for f in opt.findings)
    assert got == expected_notes(subs, base)
    assert all(f.severity != Severity.ERROR for f in opt.findings)

    first_global = next((s for s in subs if isinstance(s, GlobalSuboption)), None)
    assert opt.global_suboption == first_global
    assert opt.b_bit == (bool(first_global.byte & 1) if first_global else False)
    assert opt.teps == [s for s in subs if isinstance(s, TepSuboption)]
    assert opt.vacuous == (not opt.teps)


def test_experimental_option_keeps_its_bytes():
    """The transcript takes options as they appeared (digest 1.7 [ambiguous]): the
    decoded option's raw bytes are the experimental bytes, ExID included."""
    exp = bytes([253, 8, 0x45, 0x4E, 0x01, 0x21, 0x23, 0x24])
    opt = decode_option(exp[0], exp[2:])
    assert opt is not None and opt.encoding == ENCODING_EXPERIMENTAL
    assert opt.raw == exp
    assert opt.contents == bytes([0x01, 0x21, 0x23, 0x24])
    assert opt.suboptions == (GlobalSuboption(1), TepSuboption(0x21), TepSuboption(0x23),
                              TepSuboption(0x24))


@pytest.mark.parametrize(("b", "a", "z", "byte"), [
    (False, False, 0, 0x00), (True, False, 0, 0x01), (False, True, 0, 0x02),
    (True, True, 0, 0x03), (False, False, 1, 0x04), (False, False, 2, 0x08),
    (False, False, 4, 0x10), (True, True, 7, 0x1F),
])
def test_global_suboption_bits(b, a, z, byte):
    """RFC 8547 Figure 5: 0 0 0 z1 z2 z3 a b."""
    g = GlobalSuboption.make(b=b, a=a, z=z)
    assert g.byte == byte
    assert (g.b, g.a, g.z) == (b, a, z)


def test_only_first_global_counts_and_implicit_is_zero():
    contents = bytes([0x00, 0x01, 0x21])
    opt = decode_option(69, contents, 10)
    assert opt is not None
    assert opt.global_suboption == GlobalSuboption(0)
    assert opt.b_bit is False
    assert [(f.code, f.offset) for f in opt.findings] == [("eno-global-repeated", 13)]
    assert opt.findings[0].rfc == "RFC 8547 §4.2"
    implicit = decode_option(69, bytes([0x21]))
    assert implicit is not None and implicit.global_suboption is None
    assert implicit.effective_global == GlobalSuboption(0x00)
    assert implicit.b_bit is False


# --- arbitrary bytes ------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(contents=st.binary(max_size=60), base=st.integers(0, 1000))
def test_parse_suboptions_never_raises_and_locates_findings(contents, base):
    subs, findings, malformed = parse_suboptions(contents, base)
    assert isinstance(malformed, bool)
    for f in findings:
        assert f.offset is not None
        assert base <= f.offset < base + len(contents), (f, contents.hex())
    if malformed:
        assert findings and findings[-1].code == "eno-length-byte"
        assert findings[-1].severity == Severity.ERROR
    else:
        assert all(f.code != "eno-length-byte" for f in findings)
        # a well-formed parse must re-encode to exactly the input
        assert spec_contents(list(subs)) == contents


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from([69, 253, 254]), data=st.binary(max_size=40),
       where=st.integers(0, 38))
def test_decode_option_never_raises(kind, data, where):
    opt = decode_option(kind, data, where)
    if opt is None:
        assert kind != 69
        return
    prefix = 2 if kind == 69 else 4
    for f in opt.findings:
        assert where + prefix <= f.offset < where + 2 + len(data)


# --- hand-written malformed options (spec 1.1) ----------------------------------------------

BASE = 17


@pytest.mark.parametrize(("contents", "offset", "subs_before", "why"), [
    (bytes([0x21, 0x85]), 1, (TepSuboption(0x21),), "last byte"),
    (bytes([0x80]), 0, (), "last byte"),
    (bytes([0x81, 0x21, 0xAA, 0xBB]), 1, (), "followed by 0x21"),
    (bytes([0x00, 0x81, 0x85, 0xAA, 0xBB]), 2, (GlobalSuboption(0),), "followed by 0x85"),
    (bytes([0x81, 0x9F, 0xAA, 0xBB]), 1, (), "followed by 0x9f"),
    (bytes([0x21, 0x83, 0xA2, 0x01, 0x02]), 1, (TepSuboption(0x21),), "announces 4"),
    (bytes([0x9F, 0xA3]) + bytes(31), 0, (), "announces 32"),
])
def test_malformed_length_byte(contents, offset, subs_before, why):
    subs, findings, malformed = parse_suboptions(contents, BASE)
    assert malformed is True
    assert subs == subs_before
    assert [(f.code, f.offset) for f in findings] == [("eno-length-byte", BASE + offset)]
    assert findings[0].severity == Severity.ERROR
    assert findings[0].rfc == "RFC 8547 §4.4"
    assert why in findings[0].message

    rfc = decode_option(69, contents, BASE)
    assert rfc is not None and rfc.malformed
    assert [(f.code, f.offset) for f in rfc.findings] == [("eno-length-byte", BASE + 2 + offset)]
    exp = decode_option(254, b"\x45\x4e" + contents, BASE)
    assert exp is not None and exp.malformed
    assert [(f.code, f.offset) for f in exp.findings] == [("eno-length-byte", BASE + 4 + offset)]


def test_length_byte_with_exact_data_is_fine():
    contents = bytes([0x9F, 0xA3]) + bytes(range(32)) + bytes([0x24])
    subs, findings, malformed = parse_suboptions(contents)
    assert not malformed and not findings
    assert subs == (TepSuboption(0x23, bytes(range(32)), True), TepSuboption(0x24))


def test_trailing_tep_with_data_runs_to_end():
    contents = bytes([0x21, 0xA3, 0x81, 0x21, 0x00])
    subs, findings, malformed = parse_suboptions(contents)
    assert not malformed and not findings
    assert subs == (TepSuboption(0x21), TepSuboption(0x23, bytes([0x81, 0x21, 0x00])))


@pytest.mark.parametrize(("kind", "data"), [
    (253, b"\x45\x4f\x21"),
    (254, b"\x00\x00"),
    (253, b"\x4e\x45\x21"),
    (253, b""),
    (254, b"\x45"),
    (253, b"\x4e"),
    (70, b"\x21"),
    (30, b"\x45\x4e\x21"),
])
def test_decode_option_not_eno(kind, data):
    assert decode_option(kind, data) is None


def test_empty_options():
    rfc = decode_option(69, b"")
    assert rfc is not None and rfc.suboptions == () and not rfc.malformed and not rfc.findings
    assert rfc.raw == b"\x45\x02"
    exp = decode_option(253, b"\x45\x4e")
    assert exp is not None and exp.suboptions == () and exp.encoding == ENCODING_EXPERIMENTAL
    assert exp.raw == b"\xfd\x04\x45\x4e" and exp.vacuous


@pytest.mark.parametrize("subs", [
    [TepSuboption(0x21, b"ab"), TepSuboption(0x22)],
    [TepSuboption(0x1F)],
    [TepSuboption(0x80)],
    [GlobalSuboption(0x20)],
    [TepSuboption(0x21, b"", True)],
    [TepSuboption(0x21, bytes(33), True)],
])
def test_encoder_rejects_invalid(subs):
    with pytest.raises(ValueError):
        encode_suboptions(subs)


# --- negotiation (RFC 8547 §4.3-§4.6, RFC 8548 §3.2, §3.5) -------------------------------


def opt(*subs: Suboption) -> EnoOption:
    wire = encode_option(list(subs))
    decoded = decode_option(wire[0], wire[2:])
    assert decoded is not None
    return decoded


def syn(*options: EnoOption) -> SynEno:
    return SynEno(tuple(options))


def malformed_opt() -> EnoOption:
    decoded = decode_option(69, bytes([0x21, 0x85]))
    assert decoded is not None and decoded.malformed
    return decoded


G = GlobalSuboption.make
T = TepSuboption
B1 = G(b=True)
A_SYN = syn(opt(T(0x21), T(0x23)))
B_SYN = syn(opt(B1, T(0x23)))

FALLBACK_CASES = [
    pytest.param(dict(first=A_SYN, second=B_SYN, ack_has_eno=True, handshake_seen=False),
                 EnoStatus.UNKNOWN, FallbackReason.HANDSHAKE_NOT_CAPTURED, id="not-captured"),
    pytest.param(dict(first=syn(), second=syn(), ack_has_eno=False),
                 EnoStatus.ABSENT, FallbackReason.ABSENT, id="absent"),
    pytest.param(dict(first=syn(), second=B_SYN, ack_has_eno=True),
                 EnoStatus.ABSENT, FallbackReason.ABSENT, id="absent-b-has"),
    pytest.param(dict(first=syn(opt(T(0x23)), opt(T(0x23))), second=B_SYN, ack_has_eno=True),
                 EnoStatus.FALLBACK, FallbackReason.MULTIPLE_ENO_OPTIONS, id="two-in-a"),
    pytest.param(dict(first=A_SYN, second=syn(opt(B1, T(0x23)), opt(B1, T(0x23))),
                      ack_has_eno=True),
                 EnoStatus.FALLBACK, FallbackReason.MULTIPLE_ENO_OPTIONS, id="two-in-b"),
    pytest.param(dict(first=syn(malformed_opt()), second=B_SYN, ack_has_eno=True),
                 EnoStatus.FALLBACK, FallbackReason.MALFORMED_ENO, id="malformed-a"),
    pytest.param(dict(first=A_SYN, second=syn(malformed_opt()), ack_has_eno=True),
                 EnoStatus.FALLBACK, FallbackReason.MALFORMED_ENO, id="malformed-b"),
    pytest.param(dict(first=A_SYN, second=syn(), ack_has_eno=True),
                 EnoStatus.FALLBACK, FallbackReason.SYNACK_WITHOUT_ENO, id="synack-without"),
    pytest.param(dict(first=A_SYN, second=syn(opt(T(0x23))), ack_has_eno=True),
                 EnoStatus.FALLBACK, FallbackReason.ROLE_CONFLICT, id="synack-implicit-b"),
    pytest.param(dict(first=A_SYN, second=syn(opt(G(), T(0x23))), ack_has_eno=True),
                 EnoStatus.FALLBACK, FallbackReason.ROLE_CONFLICT, id="synack-b-zero"),
    pytest.param(dict(first=syn(opt(B1, T(0x23))), second=B_SYN, ack_has_eno=True),
                 EnoStatus.FALLBACK, FallbackReason.ROLE_CONFLICT, id="active-b-one"),
    pytest.param(dict(first=A_SYN, second=syn(opt(B1, T(0x22))), ack_has_eno=True),
                 EnoStatus.FALLBACK, FallbackReason.NO_COMMON_TEP, id="b-answers-unoffered"),
    pytest.param(dict(first=A_SYN, second=syn(opt(B1)), ack_has_eno=True),
                 EnoStatus.FALLBACK, FallbackReason.NO_COMMON_TEP, id="b-vacuous"),
    pytest.param(dict(first=syn(opt(G())), second=B_SYN, ack_has_eno=True),
                 EnoStatus.FALLBACK, FallbackReason.NO_COMMON_TEP, id="a-vacuous"),
    pytest.param(dict(first=A_SYN, second=B_SYN, ack_has_eno=False),
                 EnoStatus.FALLBACK, FallbackReason.ACK_WITHOUT_ENO, id="ack-without"),
    pytest.param(dict(first=syn(opt(B1, T(0x23))), second=syn(opt(B1, T(0x23))),
                      ack_has_eno=True, simultaneous=True),
                 EnoStatus.FALLBACK, FallbackReason.ROLE_CONFLICT, id="simul-both-b"),
    pytest.param(dict(first=syn(opt(G(), T(0x23))), second=syn(opt(T(0x23))),
                      ack_has_eno=True, simultaneous=True),
                 EnoStatus.FALLBACK, FallbackReason.ROLE_CONFLICT, id="simul-neither-b"),
]


@pytest.mark.parametrize(("kwargs", "status", "reason"), FALLBACK_CASES)
def test_negotiate_fallbacks(kwargs, status, reason):
    result = negotiate(**kwargs)
    assert result.status == status
    assert result.reason == reason
    assert result.resumed is False
    if reason != FallbackReason.HANDSHAKE_NOT_CAPTURED:
        assert result.tep is None


def test_every_fallback_reason_is_exercised():
    assert {p.values[2] for p in FALLBACK_CASES} == set(FallbackReason)


def test_reasons_are_the_digests_names():
    assert [str(r) for r in FallbackReason] == [
        "absent", "multiple-eno-options", "malformed-eno", "synack-without-eno",
        "role-conflict", "no-common-tep", "ack-without-eno", "handshake-not-captured"]


def test_malformed_detail_names_the_side():
    assert "A" in negotiate(syn(malformed_opt()), B_SYN, True).detail
    assert "B" in negotiate(A_SYN, syn(malformed_opt()), True).detail


def test_negotiate_success():
    result = negotiate(A_SYN, B_SYN, True)
    assert (result.status, result.reason, result.tep, result.resumed) == (
        EnoStatus.NEGOTIATED, None, 0x23, False)
    assert result.tep_byte == 0x23 and result.a_is_first and result.roles == ROLES_B_BIT


def test_last_valid_tep_in_b_syn_wins():
    syn_a = opt(T(0x21), T(0x23), T(0x24))
    syn_b = opt(B1, T(0x23), T(0x21), T(0x25))  # 0x25 is last but A never offered it
    assert negotiate(syn(syn_a), syn(syn_b), True).tep == 0x21
    assert choose_tep(syn_a, syn_b) == T(0x21)
    # B's order decides, not A's
    assert negotiate(syn(syn_a), syn(opt(B1, T(0x24), T(0x21))), True).tep == 0x21
    assert negotiate(syn(syn_a), syn(opt(B1, T(0x21), T(0x24))), True).tep == 0x24


def test_ack_not_captured_is_unknown():
    result = negotiate(A_SYN, B_SYN, None)
    assert result.status == EnoStatus.UNKNOWN
    assert result.reason == FallbackReason.HANDSHAKE_NOT_CAPTURED
    assert result.tep == 0x23


@pytest.mark.parametrize("b_first", [False, True])
def test_simultaneous_open_roles_by_b_bit(b_first):
    """Whichever SYN comes first, the host with b = 1 is B (RFC 8547 §4.3)."""
    plain, passive = opt(G(), T(0x21), T(0x23)), opt(B1, T(0x23))
    first, second = (passive, plain) if b_first else (plain, passive)
    result = negotiate(syn(first), syn(second), True, simultaneous=True)
    assert result.status == EnoStatus.NEGOTIATED and result.tep == 0x23
    assert result.a_is_first is (not b_first)


def test_roles_follow_b_even_when_the_active_opener_is_b():
    """An active opener configured with b = 1 against a SYN-ACK with b = 0: by the rule
    the b bits alone decide, so the passive opener is host A (its SYN-ACK breaks the
    passive opener's must-set-b rule, which the analyzer reports separately)."""
    result = negotiate(syn(opt(B1, T(0x23))), syn(opt(G(), T(0x23))), True)
    assert result.status == EnoStatus.NEGOTIATED and result.a_is_first is False


def test_b_bit_only_from_first_global():
    option = opt(G(), G(b=True), T(0x23))
    assert option.b_bit is False
    assert negotiate(syn(option), B_SYN, True).status == EnoStatus.NEGOTIATED


def test_pre_rfc_experimental_roles():
    """Both options experimental, no global suboption in the SYN-ACK: the 2016 drafts'
    handshake; judged by the drafts (passive opener is B), not as a role conflict."""
    a = decode_option(253, bytes.fromhex("454e2122"))
    b = decode_option(253, bytes.fromhex("454e21"))
    assert a is not None and b is not None
    result = negotiate(syn(a), syn(b), True)
    assert result.status == EnoStatus.NEGOTIATED and result.roles == ROLES_PRE_RFC
    rfc = negotiate(syn(opt(T(0x21), T(0x22))), syn(opt(T(0x21))), True)
    assert rfc.reason == FallbackReason.ROLE_CONFLICT


def test_pre_rfc_synack_with_the_application_aware_byte():
    """tcpcryptd 2016 appends its application-aware byte 0x02 (a = 1, b = 0) to the
    SYN-ACK when the application asks: still the drafts' handshake, not a conflict."""
    a = decode_option(253, bytes.fromhex("454e212202"))
    b = decode_option(253, bytes.fromhex("454e2102"))
    assert a is not None and b is not None
    result = negotiate(syn(a), syn(b), True)
    assert result.status == EnoStatus.NEGOTIATED and result.roles == ROLES_PRE_RFC
    assert result.tep == 0x21 and not result.resumed
    # b = 1 in an experimental SYN-ACK is an RFC-style handshake, judged by the RFC.
    b1 = decode_option(253, bytes.fromhex("454e0121"))
    assert b1 is not None
    assert negotiate(syn(a), syn(b1), True).roles != ROLES_PRE_RFC


@pytest.mark.parametrize("answer, tep", [("a1", 0x21), ("21", 0x21), ("2002", 0x20)])
def test_pre_rfc_resumption_shape(answer: str, tep: int) -> None:
    """tcpcryptd 2016 resumes a cached session by appending a v = 1 suboption with the
    session's identifier to its TEP list; a passive opener that has the session answers
    with that identifier byte alone. Under RFC 8547 the repetition makes no TEP valid, so
    only the pre-RFC dialect reads it as a resumption (frames from the first byte)."""
    resume = "a1" if tep == 0x21 else "a0"
    a = decode_option(253, bytes.fromhex(f"454e2122{resume}0102030405060708"))
    b = decode_option(253, bytes.fromhex(f"454e{answer}"))
    assert a is not None and b is not None
    result = negotiate(syn(a), syn(b), True)
    assert result.status == EnoStatus.NEGOTIATED and result.roles == ROLES_PRE_RFC
    assert result.resumed and result.pre_rfc_resume and result.tep == tep
    # The same shape in the RFC encoding is judged by the RFC: no valid TEP.
    a69 = decode_option(69, bytes.fromhex(f"2122{resume}0102030405060708"))
    b69 = decode_option(69, bytes.fromhex(f"01{answer}"))
    assert a69 is not None and b69 is not None
    assert not negotiate(syn(a69), syn(b69), True).pre_rfc_resume


def test_tcpcrypt_suboption_data_kinds():
    """RFC 8548 §3.2/§3.5: v = 1 with < 9 bytes is a fresh offer; 9..17 resumption;
    longer is invalid (the nonce is at most 8 bytes)."""
    assert tcpcrypt_suboption_kind(T(0x23)) == "fresh"
    assert tcpcrypt_suboption_kind(T(0x23, bytes(8))) == "fresh"
    assert tcpcrypt_suboption_kind(T(0x23, bytes(9))) == "resume"
    assert tcpcrypt_suboption_kind(T(0x23, bytes(17))) == "resume"
    assert tcpcrypt_suboption_kind(T(0x23, bytes(18))) == "invalid"


def test_tep_validity_rules():
    fresh_a = opt(T(0x23), T(0x24))
    assert tep_valid(fresh_a, opt(B1, T(0x23)), 0x23)
    assert not tep_valid(fresh_a, opt(B1, T(0x22)), 0x22)  # A did not send it
    # repetition is not defined by tcpcrypt: invalid (RFC 8547 §4.5 condition 3)
    assert not tep_valid(opt(T(0x23), T(0x23)), opt(B1, T(0x23)), 0x23)
    # data over 17 bytes: invalid
    assert not tep_valid(opt(T(0x23, bytes(18))), opt(B1, T(0x23)), 0x23)
    # B may only agree to resume what A proposed
    assert not tep_valid(opt(T(0x23)), opt(B1, T(0x23, bytes(9))), 0x23)
    assert tep_valid(opt(T(0x23, bytes(9))), opt(B1, T(0x23, bytes(12))), 0x23)
    # other TEPs' data rules are not ours to judge
    assert tep_valid(opt(T(0x30), T(0x30)), opt(B1, T(0x30, bytes(40))), 0x30)


def test_resumption_and_session_id_first_byte():
    half_a, half_b = bytes(range(9)), bytes(range(9, 18))
    syn_a = opt(T(0x21), T(0x23, half_a + b"\x01\x02", True))
    result = negotiate(syn(syn_a), syn(opt(B1, T(0x23, half_b))), True)
    assert result.status == EnoStatus.NEGOTIATED and result.resumed
    assert result.tep_byte == 0xA3  # B's byte, v bit included (RFC 8547 §5.1)
    # B declines with v = 0: fresh key exchange, first byte 0x23
    declined = negotiate(syn(syn_a), syn(opt(B1, T(0x23))), True)
    assert declined.status == EnoStatus.NEGOTIATED and not declined.resumed
    assert declined.tep_byte == 0x23
    # B answers v = 1 with 2 bytes (a plain offer): fresh, but the byte keeps v
    short = negotiate(syn(opt(T(0x23))), syn(opt(B1, T(0x23, b"\x07"))), True)
    assert not short.resumed and short.tep_byte == 0xA3
    # A's data was for another TEP
    other = negotiate(syn(opt(T(0x21, half_a, True), T(0x23))),
                      syn(opt(B1, T(0x23, half_b))), True)
    assert other.reason == FallbackReason.NO_COMMON_TEP
