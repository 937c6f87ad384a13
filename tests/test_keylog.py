"""The tcpcrypt key log (digest section 3, v2): writer output, lenient reading, and
malformed lines that become warnings naming file and line (never echoing a secret)
while every valid line is still used."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpinc_analyze.keylog import KeyLog, KeyLogError, KeyLogWriter, parse_keylog
from tcpinc_analyze.tcpcrypt.keyschedule import generate_keypair

SS = "TCPCRYPT_SESSION_SECRET"
MK = "TCPCRYPT_MASTER_KEY"
EPH = "TCPCRYPT_EPHEMERAL_PRIVATE"
TK = "TCPCRYPT_TRAFFIC_KEYS"

RNG = random.Random(8547)
N_A = RNG.randbytes(32)
RESUME_ID = RNG.randbytes(18)
"""A resumed session's id is its full resume[i] (18 bytes)."""
SECRET = RNG.randbytes(32)
SECRET2 = RNG.randbytes(32)
MK0 = RNG.randbytes(32)
K16 = (RNG.randbytes(28), RNG.randbytes(28))
"""AES-128-GCM traffic keys: K (16) || NR (12)."""
K32 = (RNG.randbytes(44), RNG.randbytes(44))
"""AES-256-GCM / ChaCha20-Poly1305 traffic keys: K (32) || NR (12)."""
KEYPAIRS = [generate_keypair(tep, random.Random(tep)) for tep in (0x21, 0x22, 0x23, 0x24)]


class FlushCounter(io.StringIO):
    flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_writer_lines_read_back():
    out = FlushCounter()
    w = KeyLogWriter(out)
    w.comment("tcpcrypt key log\nsecond line")
    w.session_secret(N_A, SECRET)
    w.session_secret(RESUME_ID, SECRET2)
    for kp in KEYPAIRS:
        w.ephemeral_private(kp.public, kp.private)
    w.master_key(N_A, MK0)
    w.traffic_keys(N_A, *K16)
    w.traffic_keys(RESUME_ID, *K32)
    text = out.getvalue()
    lines = text.split("\n")
    assert lines[-1] == ""  # every line ends with a newline
    assert lines[0] == "# tcpcrypt key log" and lines[1] == "# second line"
    assert lines[2] == f"{SS} {N_A.hex()} {SECRET.hex()}"
    assert lines[-2] == f"{TK} {RESUME_ID.hex()} {K32[0].hex()} {K32[1].hex()}"
    assert f"{MK} {N_A.hex()} {MK0.hex()}" in lines
    assert out.flushes == 2 + len(KEYPAIRS) + 3  # flushed after each entry

    log = parse_keylog(text, "written.log")
    assert log.session_secrets == {N_A: SECRET, RESUME_ID: SECRET2}
    assert log.ephemeral_private == {kp.public: kp.private for kp in KEYPAIRS}
    assert log.master_keys == {N_A: MK0}
    assert log.traffic_keys == {N_A: K16, RESUME_ID: K32}
    assert (log.unknown_labels, log.duplicates, log.malformed) == (0, 0, [])
    assert len(log) == 2 + len(KEYPAIRS) + 3


def test_public_keys_match_whatever_their_encoding():
    """NIST keys may be logged compressed or uncompressed: lookups use the point."""
    from tcpinc_analyze.tcpcrypt.keyschedule import keypair_from_private

    p256 = KEYPAIRS[0]
    full = keypair_from_private(0x21, p256.private, compressed=False).public
    log = parse_keylog(f"{EPH} {full.hex()} {p256.private.hex()}\n")
    assert log.private_for(p256.public) == p256.private
    assert log.private_for(full) == p256.private


def test_writer_without_comments():
    out = io.StringIO()
    w = KeyLogWriter(out, comments=False)
    w.comment("hidden")
    w.session_secret(N_A, SECRET)
    assert "#" not in out.getvalue()
    assert parse_keylog(out.getvalue()).session_secrets == {N_A: SECRET}


def test_empty_comment_is_still_a_comment():
    out = io.StringIO()
    KeyLogWriter(out).comment("")
    assert out.getvalue() == "# \n"
    assert len(parse_keylog(out.getvalue())) == 0


def test_file_round_trip(tmp_path: Path):
    path = tmp_path / "keys.log"
    with path.open("w") as fh:
        w = KeyLogWriter(fh)
        w.comment("session 1")
        w.session_secret(N_A, SECRET)
    log = parse_keylog(path.read_text(), str(path))
    assert log.session_secrets == {N_A: SECRET}


ids = st.sampled_from([18, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n))
entries = st.one_of(
    st.tuples(st.just(SS), ids, st.binary(min_size=32, max_size=32)),
    st.tuples(st.just(MK), ids, st.binary(min_size=32, max_size=32)),
    st.tuples(st.just(EPH), st.sampled_from(KEYPAIRS)),
    st.tuples(st.just(TK), ids,
        st.sampled_from([28, 44]).flatmap(
            lambda n: st.tuples(st.binary(min_size=n, max_size=n),
                                st.binary(min_size=n, max_size=n)))),
    st.tuples(st.just("#"), st.text(max_size=30)),
)


@settings(max_examples=100, deadline=None)
@given(items=st.lists(entries, max_size=12), crlf=st.booleans(), upper=st.booleans())
def test_written_entries_parse_back(items, crlf, upper):
    out = io.StringIO()
    w = KeyLogWriter(out)
    expected = KeyLog()
    for item in items:
        if item[0] == SS:
            w.session_secret(item[1], item[2])
            target, key, value = expected.session_secrets, item[1], item[2]
        elif item[0] == MK:
            w.master_key(item[1], item[2])
            target, key, value = expected.master_keys, item[1], item[2]
        elif item[0] == EPH:
            w.ephemeral_private(item[1].public, item[1].private)
            target, key, value = expected.ephemeral_private, item[1].public, item[1].private
        elif item[0] == TK:
            w.traffic_keys(item[1], *item[2])
            target, key, value = expected.traffic_keys, item[1], item[2]
        else:
            w.comment(item[1])
            continue
        expected.duplicates += key in target
        target[key] = value
    text = out.getvalue()
    if crlf:
        text = text.replace("\n", "\r\n")
    if upper:  # only the entry lines: comments keep their text
        text = "\n".join(line if line.startswith("#") else line.upper()
                         for line in text.split("\n"))
    assert parse_keylog(text) == expected


def test_lenient_formatting():
    text = (
        "\r\n"
        "   \r\n"
        "# a comment\r\n"
        f"  {SS}   {N_A.hex().upper()}\t{SECRET.hex()}  \r\n"
        "\t# indented comment\r\n"
        f"{TK} {RESUME_ID.hex()} {K16[0].hex().upper()} {K16[1].hex()}\r\n"
        f"{EPH} {KEYPAIRS[2].public.hex()} {KEYPAIRS[2].private.hex()}"  # no final newline
    )
    log = parse_keylog(text, "crlf.log")
    assert log.session_secrets == {N_A: SECRET}
    assert log.traffic_keys == {RESUME_ID: K16}
    assert log.ephemeral_private == {KEYPAIRS[2].public: KEYPAIRS[2].private}


def test_unknown_labels_are_counted_not_fatal():
    text = (
        "CLIENT_RANDOM 00 11\n"
        "TCPCRYPT_FUTURE_THING this is not hex at all\n"
        f"{SS} {N_A.hex()} {SECRET.hex()}\n"
        "tcpcrypt_session_secret lowercase label is another label\n"
    )
    log = parse_keylog(text)
    assert log.unknown_labels == 3
    assert log.session_secrets == {N_A: SECRET}


def test_duplicates_are_counted():
    text = (
        f"{SS} {N_A.hex()} {SECRET.hex()}\n"
        f"{SS} {N_A.hex()} {SECRET.hex()}\n"
        f"{SS} {N_A.hex()} {SECRET2.hex()}\n"
        f"{TK} {N_A.hex()} {K16[0].hex()} {K16[1].hex()}\n"  # same id, other table
    )
    log = parse_keylog(text)
    assert log.duplicates == 2
    assert list(log.session_secrets) == [N_A]
    assert log.traffic_keys == {N_A: K16}


def test_into_merges_files():
    log = parse_keylog(f"{SS} {N_A.hex()} {SECRET.hex()}\n", "one.log")
    same = parse_keylog(f"{TK} {N_A.hex()} {K32[0].hex()} {K32[1].hex()}\n", "two.log", log)
    assert same is log
    assert log.session_secrets == {N_A: SECRET} and log.traffic_keys == {N_A: K32}


def test_only_newlines_end_lines():
    """Characters that str.splitlines() also breaks at stay inside their line."""
    entry = f"{SS} {N_A.hex()} {SECRET.hex()}"
    for sep in ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"):
        log = parse_keylog(f"# commented out:{sep}{entry}\n")
        assert len(log) == 0 and log.unknown_labels == 0, repr(sep)
        log = parse_keylog(f"# one{sep}two\n{entry}\n{SS} zz\n", "f.log")
        assert len(log.malformed) == 1 and log.malformed[0].startswith("f.log:3:")


# --- malformed lines: warnings, never fatal, never echoing a secret -------------------------

P256 = KEYPAIRS[0]
MALFORMED = [
    pytest.param(f"{SS} {'zz' * 32} {SECRET.hex()}", "field 2 (id)", id="bad-hex-id"),
    pytest.param(f"{SS} {N_A.hex()} {SECRET.hex()[:-2]}0g", "field 3 (session secret): "
                 "character 64 is not a hex digit", id="bad-hex-ss"),
    pytest.param(f"{SS} {N_A.hex()[:-1]} {SECRET.hex()}", "odd number", id="odd-length"),
    pytest.param(f"{SS} 0x{N_A.hex()[2:]} {SECRET.hex()}", "not a hex digit", id="0x-prefix"),
    pytest.param(f"{SS} {N_A.hex()}", "takes 2 fields", id="ss-one-field"),
    pytest.param(f"{SS} {N_A.hex()} {SECRET.hex()} 00", "takes 2 fields", id="ss-three-fields"),
    pytest.param(f"{SS}", "takes 2 fields", id="ss-no-fields"),
    pytest.param(f"{SS} {N_A.hex()[2:]} {SECRET.hex()}", "is 31 bytes, expected 18 or 32",
                 id="ss-id-31"),
    pytest.param(f"{SS} {N_A.hex()[:18]} {SECRET.hex()}", "is 9 bytes", id="ss-id-9-v1"),
    pytest.param(f"{SS} {N_A.hex()} {SECRET.hex()[:32]}", "is 16 bytes", id="ss-16"),
    pytest.param(f"{MK} {N_A.hex()} {MK0.hex()[:40]}", "field 3 (master key) is 20 bytes",
                 id="mk-20"),
    pytest.param(f"{EPH} {P256.public.hex()}", "takes 2 fields", id="eph-one-field"),
    pytest.param(f"{EPH} {P256.public.hex()[4:]} {P256.private.hex()}",
                 "field 2 (public key) is 31 bytes", id="eph-pub-31"),
    pytest.param(f"{EPH} {P256.public.hex()} {P256.private.hex()[2:]}", "is 31 bytes",
                 id="eph-priv-31"),
    pytest.param(f"{TK} {N_A.hex()} {K16[0].hex()}", "takes 3 fields", id="tk-two-fields"),
    pytest.param(f"{TK} {N_A.hex()} {K16[0].hex()} {K32[1].hex()}", "differ", id="tk-mixed"),
    pytest.param(f"{TK} {N_A.hex()} {'00' * 16} {'00' * 16}", "is 16 bytes, expected 28 or 44",
                 id="tk-v1-no-nr"),
    pytest.param(f"{TK} {'00' * 10} {K16[0].hex()} {K16[1].hex()}", "10 bytes", id="tk-id-10"),
]


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize(("line", "why"), MALFORMED)
def test_malformed_line_is_a_warning_naming_file_and_line(line, why, newline):
    good = f"{SS} {N_A.hex()} {SECRET.hex()}"
    good2 = f"{MK} {RESUME_ID.hex()} {MK0.hex()}"
    text = newline.join(["# header", "", good, "UNKNOWN_LABEL x", line, good2]) + newline
    log = parse_keylog(text, "/tmp/session keys.log")
    assert len(log.malformed) == 1
    message = log.malformed[0]
    assert message.startswith("/tmp/session keys.log:5: TCPCRYPT_"), message
    assert why in message
    assert "skipped" in message
    # every valid line, before and after the bad one, is still used
    assert log.session_secrets == {N_A: SECRET}
    assert log.master_keys == {RESUME_ID: MK0}


@pytest.mark.parametrize("secret", [SECRET, MK0, K32[0], P256.private])
def test_messages_never_echo_secret_fields(secret):
    """A malformed line names the field, its column and the fault, never its value."""
    bad = secret.hex()[:-1] + "z"
    lines = [f"{SS} {N_A.hex()} {bad}", f"{MK} {N_A.hex()} {bad}",
             f"{TK} {N_A.hex()} {bad} {bad}", f"{EPH} {P256.public.hex()} {bad}"]
    log = parse_keylog("\n".join(lines) + "\n", "k.log")
    assert len(log.malformed) == 4
    for message in log.malformed:
        assert secret.hex()[:8] not in message and bad[:8] not in message


def test_partial_last_line_of_a_log_being_written():
    text = f"{SS} {N_A.hex()} {SECRET.hex()}\n{SS} {N_A.hex()[:20]}"
    log = parse_keylog(text, "live.log")
    assert log.session_secrets == {N_A: SECRET}
    assert log.malformed == ["live.log:2: TCPCRYPT_SESSION_SECRET takes 2 fields (<id> "
                             "<session secret>), got 1; line skipped"]


def test_unreadable_file_is_an_error(tmp_path: Path):
    from tcpinc_analyze.keylog import load_keylogs

    with pytest.raises(KeyLogError, match="cannot read key log"):
        load_keylogs([str(tmp_path / "missing.keys")], use_env=False)
    bad = tmp_path / "bad.keys"
    bad.write_text(f"{SS} xx {SECRET.hex()}\n{SS} {N_A.hex()} {SECRET.hex()}\n")
    loaded = load_keylogs([str(bad)], use_env=False)
    assert loaded.log.session_secrets == {N_A: SECRET}
    assert any(w.startswith(f"{bad}:1:") for w in loaded.warnings)
