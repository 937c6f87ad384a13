"""The conformance checklist (`tcpinc-analyze conformance`): every rule held, violated or
not observable, per connection, with the exit status an implementer's CI can gate on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcpinc_analyze.analysis.run import analyze_file
from tcpinc_analyze.cli import main
from tcpinc_analyze.conformance import HELD, NOT_OBSERVABLE, RULES, VIOLATED, check
from tcpinc_analyze.decryption import DecryptionContext
from tcpinc_analyze.fieldspec import EXPERTS
from tcpinc_analyze.keylog import load_keylogs

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def checklist(name: str, *, keys: bool = True) -> list[dict]:
    capture = next(SAMPLES.glob(f"{name}.pcap*"))
    log = load_keylogs([str(SAMPLES / f"{name}.keys")] if keys else [], use_env=False).log
    result = analyze_file(str(capture), decryption=DecryptionContext(log))
    return [{r.rule.code: r for r in check(report)} for report in result.reports]


def test_every_rule_has_an_expert_info_and_an_rfc_section():
    codes = [rule.code for rule in RULES]
    assert len(codes) == len(set(codes))
    for rule in RULES:
        assert rule.code in EXPERTS, rule.code
        assert rule.rfc.startswith(("RFC 8547 §", "RFC 8548 §"))
        assert rule.level in ("MUST", "SHOULD")


def test_clean_connection_holds_every_observable_rule():
    (rules,) = checklist("x25519-chacha20")
    assert not [c for c, r in rules.items() if r.status == VIOLATED]
    for code in ("eno-multiple-syn", "eno-synack-no-explicit-b", "eno-ack-missing",
                 "init-no-psh", "init-ignored-nonempty", "frame-tag-failed",
                 "fin-without-finp", "frames-after-finp", "plaintext-reserved-bits"):
        assert rules[code].status == HELD, code
    assert rules["init-no-psh"].packets  # the packet that showed it
    # nothing in this capture can show these
    assert rules["pubkey-uncompressed"].status == NOT_OBSERVABLE  # X25519 keys
    assert rules["rekey-not-answered"].status == NOT_OBSERVABLE  # no rekey
    assert rules["resume-duplicate-suboption"].status == NOT_OBSERVABLE
    assert "no resumption suboption" in rules["resume-duplicate-suboption"].reason


def test_rules_that_need_keys_are_not_observable_without_them():
    (rules,) = checklist("x25519-chacha20", keys=False)
    for code in ("plaintext-reserved-bits", "frame-tag-failed", "fin-without-finp",
                 "frames-after-finp"):
        assert rules[code].status == NOT_OBSERVABLE
        assert "needs keys" in rules[code].reason
    assert rules["frame-reserved-bits"].status == HELD  # cres is in the clear


def test_broken_implementation_violates_what_it_breaks():
    conns = checklist("conformance-violations")
    expected = json.loads((SAMPLES / "conformance-violations.expected.json").read_text())
    for rules, truth in zip(conns, expected["connections"], strict=True):
        want = {f["code"] for f in truth["findings"] if f.get("conformance")}
        got = {c for c, r in rules.items() if r.status == VIOLATED}
        assert got == want, truth["id"]
        for code in got:
            assert rules[code].packets and rules[code].messages


def test_rekey_rules_hold_where_hosts_answer():
    (rules,) = checklist("rekey-both-directions")
    assert rules["rekey-not-answered"].status == HELD
    assert len(rules["rekey-not-answered"].packets) >= 3  # three answers, seen by ACKs


def test_command_exit_status_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conformance", str(SAMPLES / "x25519-chacha20.pcap"), "--keylog",
                 str(SAMPLES / "x25519-chacha20.keys")]) == 0
    out = capsys.readouterr().out
    assert "0 violated" in out and "0 rule violations" in out
    assert main(["conformance", str(SAMPLES / "conformance-violations.pcap"), "--keylog",
                 str(SAMPLES / "conformance-violations.keys"), "--format", "json"]) == 1
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 10
    rules = {r["code"]: r for r in records[2]["rules"]}
    assert rules["rekey-not-answered"]["status"] == "violated"
    assert rules["rekey-not-answered"]["rfc"] == "RFC 8548 §3.8"
    assert set(rules["rekey-not-answered"]) >= {"code", "rfc", "level", "rule", "status",
                                                 "packets", "reason", "messages"}
    # a SHOULD violation alone fails only with --strict
    assert main(["conformance", str(SAMPLES / "eno-edge-cases.pcap"), "--keylog",
                 str(SAMPLES / "eno-edge-cases.keys")]) == 1  # eno-vacuous-reply, a MUST
    capsys.readouterr()


def test_should_rules_count_only_with_strict(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from tcpinc_analyze.synth.sample import generate
    from tcpinc_analyze.synth.scenarios import (
        AEAD_AES_128_GCM,
        PASSIVE,
        TEP_P256,
        TEP_X25519,
        EnoSpec,
        Scenario,
        TepSuboption,
        tcpcrypt_plan,
    )

    def plans(rng):  # noqa: ANN001, ANN202
        return [tcpcrypt_plan(rng, TEP_X25519, AEAD_AES_128_GCM, size=500,
                              eno_a=EnoSpec([TepSuboption(TEP_P256), TepSuboption(TEP_X25519)]),
                              eno_b=EnoSpec([PASSIVE, TepSuboption(TEP_P256),
                                             TepSuboption(TEP_X25519)]),
                              expect_findings=("eno-synack-multiple-teps",))]

    path = tmp_path / "should.pcap"
    path.write_bytes(generate(Scenario("t", "t", plans, seed=5)).capture)
    assert main(["conformance", str(path)]) == 0
    assert main(["conformance", str(path), "--strict"]) == 1
    assert "eno-synack-multiple-teps" in capsys.readouterr().out
