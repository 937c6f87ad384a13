"""The tcpcrypt key log (spec section 3): writer output, lenient reading, strict errors."""

from __future__ import annotations

import io
import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpinc_analyze.keylog import KeyLog, KeyLogError, KeyLogWriter, parse_keylog
from tcpinc_analyze.tcpcrypt.keyschedule import generate_keypair

SS = "TCPCRYPT_SESSION_SECRET"
EPH = "TCPCRYPT_EPHEMERAL_PRIVATE"
TK = "TCPCRYPT_TRAFFIC_KEYS"

RNG = random.Random(8547)
N_A = RNG.randbytes(32)
RESUME_ID = RNG.randbytes(9)
SECRET = RNG.randbytes(32)
SECRET2 = RNG.randbytes(32)
K16 = (RNG.randbytes(16), RNG.randbytes(16))
K32 = (RNG.randbytes(32), RNG.randbytes(32))
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
    w.traffic_keys(N_A, *K16)
    w.traffic_keys(RESUME_ID, *K32)
    text = out.getvalue()
    lines = text.split("\n")
    assert lines[-1] == ""  # every line ends with a newline
    assert lines[0] == "# tcpcrypt key log" and lines[1] == "# second line"
    assert lines[2] == f"{SS} {N_A.hex()} {SECRET.hex()}"
    assert lines[-2] == f"{TK} {RESUME_ID.hex()} {K32[0].hex()} {K32[1].hex()}"
    assert out.flushes == 2 + len(KEYPAIRS) + 2  # flushed after each entry

    log = parse_keylog(text, "written.log")
    assert log.session_secrets == {N_A: SECRET, RESUME_ID: SECRET2}
    assert log.ephemeral_private == {kp.public: kp.private for kp in KEYPAIRS}
    assert log.traffic_keys == {N_A: K16, RESUME_ID: K32}
    assert (log.unknown_labels, log.duplicates) == (0, 0)
    assert len(log) == 2 + len(KEYPAIRS) + 2


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


entries = st.one_of(
    st.tuples(st.just(SS), st.sampled_from([9, 32]).flatmap(
        lambda n: st.binary(min_size=n, max_size=n)), st.binary(min_size=32, max_size=32)),
    st.tuples(st.just(EPH), st.sampled_from(KEYPAIRS)),
    st.tuples(st.just(TK), st.sampled_from([9, 32]).flatmap(
        lambda n: st.binary(min_size=n, max_size=n)),
        st.sampled_from([16, 32]).flatmap(
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
        with pytest.raises(KeyLogError, match=re.escape("f.log:3:")):
            parse_keylog(f"# one{sep}two\n{entry}\n{SS} zz\n", "f.log")


# --- malformed lines -------------------------------------------------------------------------

P256 = KEYPAIRS[0]
MALFORMED = [
    pytest.param(f"{SS} {'zz' * 32} {SECRET.hex()}", "not hex", id="bad-hex-id"),
    pytest.param(f"{SS} {N_A.hex()} {SECRET.hex()[:-2]}0g", "not hex", id="bad-hex-ss"),
    pytest.param(f"{SS} {N_A.hex()[:-1]} {SECRET.hex()}", "not hex", id="odd-length"),
    pytest.param(f"{SS} 0x{N_A.hex()[2:]} {SECRET.hex()}", "not hex", id="0x-prefix"),
    pytest.param(f"{SS} {N_A.hex()}", "2 fields", id="ss-one-field"),
    pytest.param(f"{SS} {N_A.hex()} {SECRET.hex()} 00", "2 fields", id="ss-three-fields"),
    pytest.param(f"{SS}", "2 fields", id="ss-no-fields"),
    pytest.param(f"{SS} {N_A.hex()[2:]} {SECRET.hex()}", "31 bytes", id="ss-id-31"),
    pytest.param(f"{SS} {N_A.hex()} {SECRET.hex()[:32]}", "16 bytes", id="ss-16"),
    pytest.param(f"{EPH} {P256.public.hex()}", "2 fields", id="eph-one-field"),
    pytest.param(f"{EPH} {P256.public.hex()[2:]} {P256.private.hex()}", "64 bytes",
                 id="eph-pub-64"),
    pytest.param(f"{EPH} {P256.public.hex()} {P256.private.hex()[2:]}", "31 bytes",
                 id="eph-priv-31"),
    pytest.param(f"{TK} {N_A.hex()} {K16[0].hex()}", "3 fields", id="tk-two-fields"),
    pytest.param(f"{TK} {N_A.hex()} {K16[0].hex()} {K32[1].hex()}", "differ", id="tk-mixed"),
    pytest.param(f"{TK} {N_A.hex()} {'00' * 24} {'00' * 24}", "24 bytes", id="tk-24"),
    pytest.param(f"{TK} {'00' * 10} {K16[0].hex()} {K16[1].hex()}", "10 bytes", id="tk-id-10"),
]


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize(("line", "why"), MALFORMED)
def test_malformed_line_names_file_and_line(line, why, newline):
    good = f"{SS} {N_A.hex()} {SECRET.hex()}"
    text = newline.join(["# header", "", good, "UNKNOWN_LABEL x", line, good]) + newline
    with pytest.raises(KeyLogError) as info:
        parse_keylog(text, "/tmp/session keys.log")
    message = str(info.value)
    assert message.startswith("/tmp/session keys.log:5:"), message
    assert why in message
    assert isinstance(info.value, ValueError)


def test_malformed_first_line_default_name():
    with pytest.raises(KeyLogError, match=r"^<key log>:1: "):
        parse_keylog(f"{SS} nothex {SECRET.hex()}")
