"""TCP-ENO option codec and negotiation (spec section 1), checked against a byte layout
written out in this file from the spec text rather than against the project's encoder."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpinc_analyze.eno import (
    ENCODING_EXPERIMENTAL,
    ENCODING_RFC,
    EnoOption,
    GeneralSuboption,
    Negotiation,
    Suboption,
    TepSuboption,
    choose_tep,
    decode_option,
    encode_option,
    encode_suboptions,
    negotiate,
    parse_suboptions,
    simultaneous_b_is_second,
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
    if isinstance(sub, GeneralSuboption):
        return bytes([sub.cs])
    if sub.data is None:
        return bytes([sub.tep])  # v = 0
    if sub.length_byte:
        return bytes([0x80 | (len(sub.data) - 1), 0x80 | sub.tep]) + sub.data
    return bytes([0x80 | sub.tep]) + sub.data


def spec_contents(subs: list[Suboption]) -> bytes:
    return b"".join(spec_bytes(s) for s in subs)


def expected_notes(subs: list[Suboption], base: int) -> list[tuple[str, int]]:
    """(code, offset) of every note a valid sequence must produce, per spec 1.1."""
    notes = []
    generals = 0
    pos = base
    for sub in subs:
        if isinstance(sub, GeneralSuboption):
            generals += 1
            if generals > 1:
                notes.append(("eno-extra-general", pos))
            if (sub.cs >> 3) & 3:
                notes.append(("eno-zz-set", pos))
            if (sub.cs >> 1) & 3 == 2:
                notes.append(("eno-aa-reserved", pos))
        pos += len(spec_bytes(sub))
    return sorted(notes)


# --- strategies ---------------------------------------------------------------------------

tep_ids = st.integers(0x20, 0x7F)
generals = st.builds(
    lambda b, aa, zz: GeneralSuboption.make(b=b, aa=aa, zz=zz),
    st.booleans(), st.integers(0, 3), st.integers(0, 3),
)


@st.composite
def suboption_lists(draw: st.DrawFn, budget: int = RFC_MAX_CONTENTS) -> list[Suboption]:
    """Valid SYN-form suboption sequences whose contents fit in ``budget`` bytes."""
    subs: list[Suboption] = []
    left = budget
    for _ in range(draw(st.integers(0, 14))):
        if left < 1:
            break
        choices = ["general", "tep"] + (["length"] if left >= 3 else [])
        kind = draw(st.sampled_from(choices))
        if kind == "general":
            subs.append(draw(generals))
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

    first_general = next((s for s in subs if isinstance(s, GeneralSuboption)), None)
    assert opt.general == first_general
    assert opt.b_bit == (bool(first_general.cs & 1) if first_general else False)
    assert opt.teps == [s for s in subs if isinstance(s, TepSuboption)]


@SETTINGS
@given(case=encoded_cases())
def test_rfc_form_of_any_encoding_is_the_rfc_encoding(case):
    encoding, kind, _prefix, subs = case
    wire = encode_option(subs, encoding=encoding, kind=kind)
    opt = decode_option(wire[0], wire[2:])
    assert opt is not None
    rfc = bytes([69, len(spec_contents(subs)) + 2]) + spec_contents(subs)
    assert opt.rfc_form() == rfc
    assert opt.rfc_form() == encode_option(subs)


def test_rfc_form_of_experimental_option_concrete():
    exp = bytes([253, 8, 0x45, 0x4E, 0x01, 0x21, 0x23, 0x24])
    opt = decode_option(exp[0], exp[2:])
    assert opt is not None and opt.encoding == ENCODING_EXPERIMENTAL
    assert opt.rfc_form() == bytes([69, 6, 0x01, 0x21, 0x23, 0x24])
    assert opt.suboptions == (GeneralSuboption(1), TepSuboption(0x21), TepSuboption(0x23),
                              TepSuboption(0x24))


@pytest.mark.parametrize(("b", "aa", "zz", "byte"), [
    (False, 0, 0, 0x00), (True, 0, 0, 0x01), (False, 1, 0, 0x02), (False, 2, 0, 0x04),
    (False, 3, 0, 0x06), (False, 0, 1, 0x08), (False, 0, 2, 0x10), (True, 3, 3, 0x1F),
])
def test_general_suboption_bits(b, aa, zz, byte):
    g = GeneralSuboption.make(b=b, aa=aa, zz=zz)
    assert g.cs == byte
    assert (g.b, g.aa, g.zz) == (b, aa, zz)


def test_only_first_general_counts():
    contents = bytes([0x00, 0x01, 0x21])
    opt = decode_option(69, contents, 10)
    assert opt is not None
    assert opt.general == GeneralSuboption(0)
    assert opt.b_bit is False
    assert [(f.code, f.offset) for f in opt.findings] == [("eno-extra-general", 13)]


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
        assert findings and findings[-1].code == "eno-malformed"
        assert findings[-1].severity == Severity.ERROR
    else:
        assert all(f.code != "eno-malformed" for f in findings)
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
    (bytes([0x00, 0x81, 0x85, 0xAA, 0xBB]), 2, (GeneralSuboption(0),), "followed by 0x85"),
    (bytes([0x81, 0x9F, 0xAA, 0xBB]), 1, (), "followed by 0x9f"),
    (bytes([0x21, 0x83, 0xA2, 0x01, 0x02]), 1, (TepSuboption(0x21),), "announces 4"),
    (bytes([0x9F, 0xA3]) + bytes(31), 0, (), "announces 32"),
])
def test_malformed_length_byte(contents, offset, subs_before, why):
    subs, findings, malformed = parse_suboptions(contents, BASE)
    assert malformed is True
    assert subs == subs_before
    assert [(f.code, f.offset) for f in findings] == [("eno-malformed", BASE + offset)]
    assert findings[0].severity == Severity.ERROR
    assert why in findings[0].message

    rfc = decode_option(69, contents, BASE)
    assert rfc is not None and rfc.malformed
    assert [(f.code, f.offset) for f in rfc.findings] == [("eno-malformed", BASE + 2 + offset)]
    exp = decode_option(254, b"\x45\x4e" + contents, BASE)
    assert exp is not None and exp.malformed
    assert [(f.code, f.offset) for f in exp.findings] == [("eno-malformed", BASE + 4 + offset)]


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
    assert exp.rfc_form() == b"\x45\x02"


@pytest.mark.parametrize("subs", [
    [TepSuboption(0x21, b"ab"), TepSuboption(0x22)],
    [TepSuboption(0x1F)],
    [TepSuboption(0x80)],
    [GeneralSuboption(0x20)],
    [TepSuboption(0x21, b"", True)],
    [TepSuboption(0x21, bytes(33), True)],
])
def test_encoder_rejects_invalid(subs):
    with pytest.raises(ValueError):
        encode_suboptions(subs)


# --- negotiation (spec 1.2) -----------------------------------------------------------------


def opt(*subs: Suboption) -> EnoOption:
    wire = encode_option(list(subs))
    decoded = decode_option(wire[0], wire[2:])
    assert decoded is not None
    return decoded


def malformed_opt() -> EnoOption:
    decoded = decode_option(69, bytes([0x21, 0x85]))
    assert decoded is not None and decoded.malformed
    return decoded


G = GeneralSuboption.make
T = TepSuboption
A_SYN = opt(T(0x21), T(0x23))
B_SYN = opt(T(0x23))

FALLBACK_CASES = [
    pytest.param(dict(syn_a=A_SYN, syn_b=B_SYN, ack_a_has_eno=True, handshake_seen=False),
                 EnoStatus.UNKNOWN, FallbackReason.HANDSHAKE_NOT_CAPTURED, id="not-captured"),
    pytest.param(dict(syn_a=None, syn_b=None, ack_a_has_eno=False),
                 EnoStatus.ABSENT, FallbackReason.NO_ENO_IN_SYN, id="no-eno-in-syn"),
    pytest.param(dict(syn_a=None, syn_b=B_SYN, ack_a_has_eno=True),
                 EnoStatus.ABSENT, FallbackReason.NO_ENO_IN_SYN, id="no-eno-in-syn-b-has"),
    pytest.param(dict(syn_a=A_SYN, syn_b=None, ack_a_has_eno=True),
                 EnoStatus.FALLBACK, FallbackReason.SYNACK_WITHOUT_ENO, id="synack-without"),
    pytest.param(dict(syn_a=A_SYN, syn_b=opt(T(0x22)), ack_a_has_eno=True),
                 EnoStatus.FALLBACK, FallbackReason.NO_COMMON_TEP, id="b-echoes-unoffered"),
    pytest.param(dict(syn_a=A_SYN, syn_b=opt(), ack_a_has_eno=True),
                 EnoStatus.FALLBACK, FallbackReason.NO_COMMON_TEP, id="b-echoes-nothing"),
    pytest.param(dict(syn_a=opt(G()), syn_b=opt(T(0x21)), ack_a_has_eno=True),
                 EnoStatus.FALLBACK, FallbackReason.NO_COMMON_TEP, id="a-offers-nothing"),
    pytest.param(dict(syn_a=malformed_opt(), syn_b=B_SYN, ack_a_has_eno=True),
                 EnoStatus.FALLBACK, FallbackReason.MALFORMED_OPTION, id="malformed-a"),
    pytest.param(dict(syn_a=A_SYN, syn_b=malformed_opt(), ack_a_has_eno=True),
                 EnoStatus.FALLBACK, FallbackReason.MALFORMED_OPTION, id="malformed-b"),
    pytest.param(dict(syn_a=A_SYN, syn_b=B_SYN, ack_a_has_eno=False),
                 EnoStatus.FALLBACK, FallbackReason.ACK_WITHOUT_ENO, id="ack-without"),
    pytest.param(dict(syn_a=opt(G(b=True), T(0x23)), syn_b=opt(G(b=True), T(0x23)),
                      ack_a_has_eno=True, simultaneous=True),
                 EnoStatus.FALLBACK, FallbackReason.ROLE_CONFLICT, id="simul-both-b"),
    pytest.param(dict(syn_a=opt(G(), T(0x23)), syn_b=opt(T(0x23)),
                      ack_a_has_eno=True, simultaneous=True),
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


def test_malformed_detail_names_the_side():
    assert "A" in negotiate(malformed_opt(), B_SYN, True).detail
    assert "B" in negotiate(A_SYN, malformed_opt(), True).detail


def test_negotiate_success():
    result = negotiate(A_SYN, B_SYN, True)
    assert result == Negotiation(EnoStatus.NEGOTIATED, None, 0x23, False)


def test_last_common_tep_in_b_syn_wins():
    syn_a = opt(T(0x21), T(0x23), T(0x24))
    syn_b = opt(T(0x23), T(0x21), T(0x25))  # 0x25 is last but A never offered it
    assert negotiate(syn_a, syn_b, True).tep == 0x21
    assert choose_tep(syn_a, syn_b) == T(0x21)
    # B's order decides, not A's
    assert negotiate(syn_a, opt(T(0x24), T(0x21)), True).tep == 0x21
    assert negotiate(syn_a, opt(T(0x21), T(0x24)), True).tep == 0x24


def test_empty_ack_option_is_enough():
    """``ack_a_has_eno`` is about presence: ``45 02`` in A's first ACK counts."""
    assert negotiate(A_SYN, B_SYN, True).status == EnoStatus.NEGOTIATED


def test_ack_not_captured_is_unknown():
    result = negotiate(A_SYN, B_SYN, None)
    assert result.status == EnoStatus.UNKNOWN
    assert result.reason == FallbackReason.HANDSHAKE_NOT_CAPTURED
    assert result.tep == 0x23


def test_simultaneous_open_with_one_b_bit_succeeds():
    syn_a = opt(G(), T(0x21), T(0x23))
    syn_b = opt(G(b=True), T(0x23))
    result = negotiate(syn_a, syn_b, True, simultaneous=True)
    assert result.status == EnoStatus.NEGOTIATED and result.tep == 0x23
    assert simultaneous_b_is_second(syn_a, syn_b) is True
    assert simultaneous_b_is_second(syn_b, syn_a) is False
    assert simultaneous_b_is_second(syn_a, syn_a) is None
    assert simultaneous_b_is_second(syn_b, syn_b) is None
    assert simultaneous_b_is_second(None, syn_b) is True
    assert simultaneous_b_is_second(None, None) is None


def test_b_bit_is_irrelevant_without_simultaneous_open():
    both = opt(G(b=True), T(0x23))
    assert negotiate(both, both, True).status == EnoStatus.NEGOTIATED


def test_b_bit_only_from_first_general():
    syn = opt(G(), G(b=True), T(0x23))
    assert syn.b_bit is False
    result = negotiate(syn, opt(G(b=True), T(0x23)), True, simultaneous=True)
    assert result.status == EnoStatus.NEGOTIATED


def test_resumption_needs_data_on_both_sides():
    resume_a, resume_b = bytes(range(9)), bytes(range(9, 18))
    syn_a = opt(T(0x21), T(0x23, resume_a, True))
    result = negotiate(syn_a, opt(T(0x23, resume_b, True)), True)
    assert result == Negotiation(EnoStatus.NEGOTIATED, None, 0x23, True)
    # trailing (no length byte) data counts too
    assert negotiate(opt(T(0x21), T(0x23, resume_a)), opt(T(0x23, resume_b)), True).resumed
    # B declines the resumption offer: full key exchange
    declined = negotiate(syn_a, opt(T(0x23)), True)
    assert declined.status == EnoStatus.NEGOTIATED and not declined.resumed
    # A's data was for another TEP
    other = negotiate(opt(T(0x21, resume_a, True), T(0x23)), opt(T(0x23, resume_b, True)), True)
    assert other.tep == 0x23 and not other.resumed
    # B carries data that A did not
    assert not negotiate(opt(T(0x23)), opt(T(0x23, resume_b, True)), True).resumed
