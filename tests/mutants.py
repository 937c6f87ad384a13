"""Deliberate bugs (mutations), one or more per core module, and the test that must catch
each (issue 17, item 5). Not collected by pytest; run it by hand from the project root:

    python tests/mutants.py            # every mutant
    python tests/mutants.py wire eno   # some, by label

Each mutant replaces one exact piece of source (it must occur exactly once), runs the
named tests with ``-x``, and restores the file (and the samples, for the one mutant that
regenerates them, as the audit in issue 17 did). Best run in a copy of the tree, since
it edits the sources while it runs. A mutant "survives" when the tests
still pass: the script then exits 1. Nothing here touches anything outside the tree.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    label: str
    module: str
    path: str
    old: str
    new: str
    what: str
    tests: tuple[str, ...]
    regenerate: bool = False
    """Regenerate the synthetic samples with the mutant (the product's own generator
    then agrees with the product: only independent expectations can catch it)."""


MUTANTS = [
    Mutant("wire", "wire.py (RFC formulas)", "tcpinc_analyze/wire.py",
           "return cprf(mk, bytes((CONST_KEY_A,)), n), cprf(mk, bytes((CONST_KEY_B,)), n)",
           "return cprf(mk, bytes((CONST_KEY_B,)), n), cprf(mk, bytes((CONST_KEY_A,)), n)",
           "key constants A and B swapped, samples regenerated",
           ("tests/test_independent_readback.py::test_sample_reads_back_with_test_local_code"
            "[x25519-chacha20]",), regenerate=True),
    Mutant("eno", "eno.py (negotiation)", "tcpinc_analyze/eno.py",
           "        if tep_valid(syn_a, syn_b, sub.tep):\n            chosen = sub",
           "        if tep_valid(syn_a, syn_b, sub.tep):\n            chosen = chosen or sub",
           "the first valid TEP of B's option wins instead of the last (RFC 8547 §4.5)",
           ("tests/test_eno.py",)),
    Mutant("keyschedule", "tcpcrypt/keyschedule.py", "tcpinc_analyze/tcpcrypt/keyschedule.py",
           "self._master.append(next_master_key(self._master[-1]))",
           "self._master.append(self._master[-1])",
           "a rekey keeps mk[j] instead of deriving mk[j+1]",
           ("tests/test_decrypt.py::test_sample_decrypts_as_expected[rekey-both-directions]",)),
    Mutant("frames", "tcpcrypt/frames.py", "tcpinc_analyze/tcpcrypt/frames.py",
           "return (self._nr_int ^ offset).to_bytes(AEAD_NONCE_LEN, \"big\")",
           "return (self._nr_int ^ (offset + 1)).to_bytes(AEAD_NONCE_LEN, \"big\")",
           "frame nonce off by one (frame_ID + 1)",
           ("tests/test_decrypt.py::test_sample_decrypts_as_expected[x25519-chacha20]",)),
    Mutant("reassembly", "tcp/reassembly.py", "tcpinc_analyze/tcp/reassembly.py",
           "            payload = payload[self.next - off:]\n",
           "            payload = payload[self.next - off + 1:]\n",
           "a retransmission straddling delivered bytes is trimmed one byte too many",
           ("tests/test_reassembly.py",)),
    Mutant("reassembly-buffered", "tcp/reassembly.py", "tcpinc_analyze/tcp/reassembly.py",
           "            if not conflict and held[lo - start:hi - start]",
           "            if False and held[lo - start:hi - start]",
           "a conflicting copy of a buffered segment is not compared",
           ("tests/test_reassembly.py",)),
    Mutant("decryption", "decryption.py", "tcpinc_analyze/decryption.py",
           "REKEY_LOOKAHEAD = 3\n", "REKEY_LOOKAHEAD = 0\n",
           "resync after a gap tries only the current key generation",
           ("tests/test_decryption_units.py",)),
    Mutant("decryption-lost", "decryption.py", "tcpinc_analyze/decryption.py",
           "        lost = parser.incomplete_frames if parser is not None else 0\n",
           "        lost = min(parser.incomplete_frames, 1) if parser is not None else 0\n",
           "lost frames capped at 1 after a gap",
           ("tests/test_decryption_units.py",)),
    Mutant("decryption-fin", "decryption.py", "tcpinc_analyze/decryption.py",
           "    if dec.fin_seen or not dec.ok:\n        return\n",
           "    if not dec.ok:\n        return\n",
           "a missing-FINp finding on every decrypted direction",
           ("tests/test_decryption_units.py",)),
    Mutant("stream-resync", "tcpcrypt/stream.py", "tcpinc_analyze/tcpcrypt/stream.py",
           "        pos = self.scan\n", "        pos = 0\n",
           "the resync search starts over on every segment (quadratic)",
           ("tests/test_decryption_units.py",)),
    Mutant("keylog", "keylog.py", "tcpinc_analyze/keylog.py",
           "key, value = values[0], (values[1], values[2])",
           "key, value = values[0], (values[2], values[1])",
           "logged traffic keys k_ab and k_ba read in the wrong order",
           ("tests/test_decrypt.py::test_sample_decrypts_as_expected"
            "[p521-aes256-traffic-keys]",)),
    Mutant("pcapng", "capture/reader.py (pcapng)", "tcpinc_analyze/capture/reader.py",
           "                iface.ts_den = 10 ** res\n",
           "                iface.ts_den = 10 ** (res + 1)\n",
           "pcapng if_tsresol read one decimal place off",
           ("tests/test_pcapng_timestamps.py",)),
    Mutant("decode-fragments", "capture/decode.py", "tcpinc_analyze/capture/decode.py",
           "        elif not have.count(1, offset, stop):", "        elif True:",
           "an overlapping IP fragment overwrites bytes that already arrived",
           ("tests/test_fragments.py",)),
    Mutant("engine", "analysis/engine.py", "tcpinc_analyze/analysis/engine.py",
           "        if len(self.live) >= self.limits.max_connections:",
           "        if len(self.live) > self.limits.max_connections:",
           "the connection table holds one more than its limit",
           ("tests/test_flow_table.py",)),
    Mutant("report", "analysis/report.py", "tcpinc_analyze/analysis/report.py",
           "        \"frames\": {\"ab\": ab.frames + ab.incomplete_frames if ab else 0,\n"
           "                   \"ba\": ba.frames + ba.incomplete_frames if ba else 0},",
           "        \"frames\": {\"ab\": ab.frames if ab else 0,\n"
           "                   \"ba\": ba.frames if ba else 0},",
           "frames cut by a gap left out of the frame count",
           ("tests/test_decryption_units.py",)),
    Mutant("luagen", "wireshark/luagen.py", "tcpinc_analyze/wireshark/luagen.py",
           "    vals = f\"VALS.{f['values']}\" if f.get(\"values\") and ftype in _UINT_TYPES "
           "else \"nil\"",
           "    vals = \"nil\"",
           "the Lua field declarations lose their value names",
           ("tests/test_wireshark.py",)),
]


def run(mutant: Mutant) -> tuple[bool, str, float]:
    """(killed, first failing test or '', seconds)."""
    path = ROOT / mutant.path
    source = path.read_text()
    if source.count(mutant.old) != 1:
        raise SystemExit(f"{mutant.label}: the text to mutate occurs "
                         f"{source.count(mutant.old)} times in {mutant.path}")
    start = time.perf_counter()
    samples = ({p: p.read_bytes() for p in (ROOT / "samples").iterdir() if p.is_file()}
               if mutant.regenerate else {})
    try:
        path.write_text(source.replace(mutant.old, mutant.new))
        if mutant.regenerate:
            subprocess.run([sys.executable, "-m", "tcpinc_analyze.cli", "synth", "--catalog",
                            "samples"], cwd=ROOT, check=True, capture_output=True)
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p",
                               "no:cacheprovider", *mutant.tests], cwd=ROOT,
                              capture_output=True, text=True, timeout=1800)
    finally:
        path.write_text(source)
        for sample, data in samples.items():
            sample.write_bytes(data)
    failed = next((line.split(" ", 1)[1].split(" - ")[0] for line in proc.stdout.splitlines()
                   if line.startswith("FAILED ")), "")
    return proc.returncode != 0, failed, time.perf_counter() - start


def main(labels: list[str]) -> int:
    chosen = [m for m in MUTANTS if not labels or m.label in labels]
    survivors = 0
    print("| module | mutation | caught by | killed |")
    print("|---|---|---|---|")
    for mutant in chosen:
        killed, failed, _secs = run(mutant)
        survivors += not killed
        print(f"| {mutant.module} | {mutant.what} | `{failed or ' '.join(mutant.tests)}` | "
              f"{'yes' if killed else '**NO**'} |", flush=True)
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
