"""Every shipped sample read back with test-local code only (``rfc_reference``).

For each capture, ``rfc_reference`` reads the packets (dpkt, a small pcapng walker),
reassembles each direction by sequence number (first copy wins), negotiates ENO by
RFC 8547 §4.1-§4.6, parses Init1/Init2 by RFC 8548 §4.1/§5, derives the keys from the
sample's key log by RFC 8548 §3.3-§3.5 (ss[0] from a private key via ECDH and the
transcript; the resumption chain; mk[0]; generation-0 traffic keys), and opens every
frame with ``cryptography``'s AEADs. Its per-connection results must equal both
``X.expected.json`` and what the product reports: ENO status, roles, negotiated TEP,
AEAD, where the keys came from, the session ID, the nonce-offset reading, frame and
rekey counts, per-direction ok/failed/undecryptable/lost counts and the sha256 of the
application data.

Samples covered: every entry of ``samples/catalog.json`` except the two below. That is
wider than "samples whose key log holds a session secret for every tcpcrypt
connection": connections keyed by a private key, a master key or traffic keys are
decrypted too (their session ID must then be absent for master/traffic keys), and a
tcpcrypt connection without any usable key (``conformance-violations`` connection 3,
an all-zero X25519 key and no Init2) is checked to have nothing decrypted.

Excluded, and why:
- ``tcpcryptd-2016-http-get`` and ``tcpcryptd-2016-fallback-no-eno-synack``: external
  captures of the 2016 userland tcpcryptd, which speaks the pre-RFC drafts (one-byte
  sym_cipher identifiers, uncompressed points, no global suboption in its SYN-ACK). No
  keys exist for them, and this reader implements the RFCs only: by RFC 8547 §4.3 the
  first is a role conflict, which the project deliberately labels as a dialect instead.

Frame counts where the capture lost bytes (``gap``, ``snaplen``): a frame whose header
lies in bytes that were never captured cannot be seen, so the number of frames inside
a hole is not determined by the capture. For these two samples the reader's counts are
a lower bound (a frame cut by the hole, plus at least one frame starting inside it when
the following frame starts after the hole); ``ok``/``failed``/``sha256`` must still be
equal, and ``frames`` must equal ok + failed + lost + undecryptable in every report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rfc_reference as R

from tcpinc_analyze.analysis.run import analyze_file
from tcpinc_analyze.decryption import DecryptionContext
from tcpinc_analyze.keylog import parse_keylog

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
CATALOG = json.loads((SAMPLES / "catalog.json").read_text())["samples"]
EXCLUDED = {
    "tcpcryptd-2016-http-get": "pre-RFC 2016 tcpcryptd dialect, no keys",
    "tcpcryptd-2016-fallback-no-eno-synack": "pre-RFC 2016 tcpcryptd dialect, no keys",
}
HOLES = {"gap", "snaplen"}
"""Samples whose captures miss bytes: frame counts from the capture are lower bounds."""
INCLUDED = [e for e in CATALOG if e["name"] not in EXCLUDED]


def test_every_catalog_sample_is_covered_or_excluded_by_name() -> None:
    names = {e["name"] for e in CATALOG}
    assert set(EXCLUDED) <= names
    assert len(INCLUDED) + len(EXCLUDED) == len(CATALOG)


def _keylog(entry: dict) -> str:
    path = SAMPLES / entry["keylog"] if entry.get("keylog") else None
    return path.read_text() if path is not None and path.exists() else ""


def _mine_view(res: R.TcpcryptResult, eno: R.EnoOutcome) -> dict:
    view = {
        "a": R.endpoint_text(res.a),
        "b": R.endpoint_text(res.b),
        "negotiated_tep": res.tep if eno.status == "negotiated" else None,
        "resumed": res.resumed,
        "aead": res.aead,
        "keys_from": res.keys_from,
        "session_id": res.session_id.hex() if res.session_id else None,
        "nonce_offset_base": res.nonce_offset_base,
        "frames": {"ab": res.ab.frames, "ba": res.ba.frames},
        "rekeys": {"ab": res.ab.rekeys, "ba": res.ba.rekeys},
    }
    if res.keys_from is not None:
        view["decrypted"] = {
            key: {"ok": d.ok, "failed": d.failed, "lost": d.lost,
                  "undecryptable": d.undecryptable, "sha256": d.sha256}
            for key, d in (("ab", res.ab), ("ba", res.ba))}
    else:
        view["decrypted"] = None
    if res.init1 is not None:
        view["init1"] = {"length": len(res.init1.raw), "sym_ciphers": res.init1.ciphers,
                         "ignored_len": len(res.init1.ignored)}
        view["init2"] = {"length": len(res.init2.raw), "sym_cipher": res.init2.ciphers[0],
                         "ignored_len": len(res.init2.ignored)}
    return view


def _their_view(conn: dict, like: dict) -> dict:
    """The same fields out of an expected.json connection or a product report."""
    t = conn["tcpcrypt"]
    view = {
        "a": conn["a"],
        "b": conn["b"],
        "negotiated_tep": conn["eno"]["negotiated_tep"],
        "resumed": t["resumed"],
        "aead": t["aead"],
        "keys_from": t["keys_from"],
        "session_id": t["session_id"],
        "nonce_offset_base": t.get("nonce_offset_base"),
        "frames": t["frames"],
        "rekeys": t["rekeys"],
        "decrypted": ({key: {k: t["decrypted"][key][k] for k in like["decrypted"][key]}
                       for key in ("ab", "ba")} if t.get("decrypted") else None),
    }
    for name in ("init1", "init2"):
        if name in like:
            view[name] = {k: t[name][k] for k in like[name]}
    return view


def _split_counts(view: dict) -> tuple[dict, dict]:
    """(view without frames/lost, {direction: (frames, lost, ok+failed+undecryptable)})."""
    view = json.loads(json.dumps(view))
    counts = {}
    for key in ("ab", "ba"):
        frames = view["frames"].pop(key)
        d = view["decrypted"][key]
        counts[key] = (frames, d.pop("lost"), d["ok"] + d["failed"] + d["undecryptable"])
    return view, counts


@pytest.mark.parametrize("entry", INCLUDED, ids=[e["name"] for e in INCLUDED])
def test_sample_reads_back_with_test_local_code(entry: dict) -> None:
    name = entry["name"]
    keylog = _keylog(entry)
    mine = R.read_capture(str(SAMPLES / entry["capture"]), keylog)
    exp = json.loads((SAMPLES / entry["expected"]).read_text())["connections"]
    result = analyze_file(str(SAMPLES / entry["capture"]),
                          decryption=DecryptionContext(parse_keylog(keylog)))
    prod = [r.to_json() for r in result.reports]
    assert len(mine.conns) == len(exp) == len(prod), (len(mine.conns), len(exp), len(prod))

    problems = []
    for i, (eno, res, e, p) in enumerate(zip(mine.enos, mine.tcpcrypt, exp, prod,
                                             strict=True)):
        status = eno.status if res is None or eno.status != "unknown" else "unknown"
        if not (status == e["eno"]["status"] == p["eno"]["status"]):
            problems.append(f"conn {i}: ENO status mine {status}, expected "
                            f"{e['eno']['status']}, product {p['eno']['status']}")
        if (res is None, e["tcpcrypt"] is None, p["tcpcrypt"] is None) not in \
                ((True, True, True), (False, False, False)):
            problems.append(f"conn {i}: tcpcrypt ran? mine {res is not None}, expected "
                            f"{e['tcpcrypt'] is not None}, product {p['tcpcrypt'] is not None}")
            continue
        if res is None:
            continue
        if res.keys_from is not None:
            assert res.ab.ok + res.ba.ok > 0 or name == "wrong-key", \
                f"{name} conn {i}: the test-local reader decrypted nothing"
        if res.keys_from in ("master_key", "traffic_keys"):
            assert res.session_id is None
        mv = _mine_view(res, eno)
        ev, pv = _their_view(e, mv), _their_view(p, mv)
        if name in HOLES:
            mv, mc = _split_counts(mv)
            ev, ec = _split_counts(ev)
            pv, pc = _split_counts(pv)
            for key in ("ab", "ba"):
                for who, (frames, lost, seen) in (("expected", ec[key]), ("product", pc[key])):
                    if frames != seen + lost:
                        problems.append(f"conn {i} {key}: {who} says {frames} frames but "
                                        f"{seen} decrypted/failed/undecryptable + {lost} lost")
                    if lost < mc[key][1] or frames < mc[key][0]:
                        problems.append(
                            f"conn {i} {key}: {who} says {frames} frames / {lost} lost; the "
                            f"capture shows at least {mc[key][0]} frames / {mc[key][1]} lost")
                if ec[key][:2] != pc[key][:2]:
                    problems.append(f"conn {i} {key}: frames/lost expected {ec[key][:2]}, "
                                    f"product {pc[key][:2]}")
        for who, view in (("expected", ev), ("product", pv)):
            for k in mv:
                if mv[k] != view[k]:
                    problems.append(f"conn {i} {k}: test-local {mv[k]} != {who} {view[k]}")
    assert not problems, f"{name}:\n" + "\n".join(problems)
