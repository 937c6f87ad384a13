"""Fuzzing every reader and writer of the command line with damaged samples.

Each case takes a sample, damages it one way (random byte flips, bytes flipped inside
one packet's link/IP/TCP headers, truncation, or a corrupted record length: a pcap
record's captured/original length, a pcapng block's leading or trailing length or an
enhanced packet block's captured length) and runs one command on it: analyze (JSON,
details), verify, conformance, decrypt with -o and --pcap-out, inject-secrets,
extract-secrets. A case passes when the command returns 0, 1 or 2 and raises nothing
(a traceback is the failure this hunts).

The test suite runs a fixed seed and a bounded number of cases (test_fuzz_cli.py); by
hand, ``python tests/fuzz_cli.py --cases 5000 --seed 7`` runs more and prints a summary.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import shutil
import sys
import tempfile
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from tcpinc_analyze.capture.reader import (  # noqa: E402
    CaptureError,
    Record,
    SecretsBlock,
    open_input,
    read_capture,
)
from tcpinc_analyze.cli import main  # noqa: E402
from tcpinc_analyze.synth.catalog import load_catalog  # noqa: E402

SAMPLES = ROOT / "samples"
MUTATIONS = ("flip", "header", "truncate", "length")


@dataclass(frozen=True)
class Sample:
    name: str
    capture: Path
    keys: Path | None
    pcapng: bool
    records: tuple[tuple[int, int], ...]
    """(record offset, captured length) of every record, from the intact file."""


def samples() -> list[Sample]:
    found = []
    for entry in load_catalog(SAMPLES):
        capture = SAMPLES / entry["capture"]
        keys = SAMPLES / entry["keylog"] if entry["keylog"] else None
        stream = open_input(str(capture))
        try:
            recs = tuple((r.offset, len(r.data)) for r in read_capture(stream, str(capture))
                         if isinstance(r, Record | SecretsBlock) and r.offset is not None
                         and isinstance(r, Record))
        finally:
            stream.close()
        found.append(Sample(entry["name"], capture, keys, capture.suffix == ".pcapng", recs))
    return found


def mutate(sample: Sample, kind: str, rng: random.Random) -> bytes:
    """The sample's bytes damaged one way."""
    data = bytearray(sample.capture.read_bytes())
    if kind == "flip":
        for _ in range(rng.randint(1, 12)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "header":
        offset, caplen = rng.choice(sample.records)
        start = offset + (28 if sample.pcapng else 16)  # EPB body / pcap record data
        for _ in range(rng.randint(1, 4)):
            at = start + rng.randrange(max(1, min(caplen, 80)))
            if at < len(data):
                data[at] = rng.randrange(256)
    elif kind == "truncate":
        del data[rng.randrange(1, len(data)):]
    else:
        offset, caplen = rng.choice(sample.records)
        value = rng.choice([0, 1, 3, caplen - 1, caplen + 1, caplen + 4, 0xFFFF, 1 << 20,
                            1 << 30, 0xFFFFFFFF, rng.randrange(1 << 32)]) & 0xFFFFFFFF
        if sample.pcapng:
            block_len = int.from_bytes(data[offset + 4:offset + 8], "little")
            field = rng.choice([offset + 4, offset + block_len - 4, offset + 20])
        else:
            field = rng.choice([offset + 8, offset + 12])
        if field + 4 <= len(data):
            data[field:field + 4] = value.to_bytes(4, "little")
    return bytes(data)


COMMANDS: dict[str, Callable[[Path, Path | None, Path, bool], list[str]]] = {
    "analyze-json": lambda c, k, d, ng: ["analyze", str(c), "--format", "json",
                                         *(["--keylog", str(k)] if k else [])],
    "analyze-details": lambda c, k, d, ng: ["analyze", str(c), "--details",
                                            *(["--keylog", str(k)] if k else [])],
    "verify": lambda c, k, d, ng: ["verify", str(c), *(["--keylog", str(k)] if k else [])],
    "conformance": lambda c, k, d, ng: ["conformance", str(c), "--format", "json",
                                        *(["--keylog", str(k)] if k else [])],
    "decrypt": lambda c, k, d, ng: ["decrypt", str(c), "-o", str(d / "plain"), "--pcap-out",
                                    str(d / ("plain.pcapng" if ng else "plain.pcap")),
                                    *(["--keylog", str(k)] if k else [])],
    "inject-secrets": lambda c, k, d, ng: ["inject-secrets", str(c), "--keylog",
                                           str(k or SAMPLES / "gap.keys"), "--all", "-o",
                                           str(d / "with-keys.pcapng")],
    "extract-secrets": lambda c, k, d, ng: ["extract-secrets", str(c), "-o",
                                            str(d / "keys.txt")],
}


@dataclass
class Outcome:
    case: str
    status: int | None
    error: str | None


def run_case(sample: Sample, kind: str, command: str, seed: int, work: Path) -> Outcome:
    """One damaged capture through one command, in process (what the console script
    runs); the outcome records the exit status or the traceback."""
    rng = random.Random(f"{seed}:{sample.name}:{kind}:{command}")
    folder = work / f"{sample.name}-{kind}-{command}-{seed}"
    folder.mkdir(parents=True)
    capture = folder / sample.capture.name
    capture.write_bytes(mutate(sample, kind, rng))
    argv = COMMANDS[command](capture, sample.keys, folder, sample.pcapng)
    case = f"seed {seed}: {sample.name} {kind} | tcpinc-analyze {' '.join(argv[:1])} ..."
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(argv)
    except SystemExit as exc:  # argparse: a usage error is exit 2 as well
        status = exc.code if isinstance(exc.code, int) else 2
    except (Exception, RecursionError) as exc:  # noqa: BLE001 - what the fuzzer hunts
        return Outcome(case, None, "".join(traceback.format_exception(exc)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if "Traceback" in err.getvalue():
        return Outcome(case, status, err.getvalue())
    return Outcome(case, status, None)


def cases(count: int, seed: int) -> list[tuple[Sample, str, str, int]]:
    """``count`` (sample, mutation, command, seed) tuples covering every sample, every
    mutation and every command before repeating any combination's sample."""
    pool = samples()
    rng = random.Random(seed)
    out = []
    commands = list(COMMANDS)
    for n in range(count):
        sample = pool[n % len(pool)]
        kind = MUTATIONS[(n // len(pool)) % len(MUTATIONS)]
        command = commands[(n + n // len(pool)) % len(commands)]
        out.append((sample, kind, command, rng.randrange(1 << 30)))
    return out


def run(count: int, seed: int) -> list[Outcome]:
    with tempfile.TemporaryDirectory(prefix="tcpinc-fuzz-") as tmp:
        return [run_case(s, k, c, n, Path(tmp)) for s, k, c, n in cases(count, seed)]


def _main() -> int:
    parser = argparse.ArgumentParser(description="Fuzz the readers and writers of the CLI.")
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=29)
    args = parser.parse_args()
    outcomes = run(args.cases, args.seed)
    statuses = Counter(o.status for o in outcomes)
    bad = [o for o in outcomes if o.error is not None or o.status not in (0, 1, 2, 3)]
    print(f"{len(outcomes)} cases, exit statuses {dict(sorted(statuses.items(), key=str))}, "
          f"{sum(o.error is not None for o in outcomes)} tracebacks")
    for outcome in bad[:20]:
        print(f"--- {outcome.case} (status {outcome.status})\n{outcome.error}")
    return 1 if bad else 0


if __name__ == "__main__":
    _ = CaptureError  # the readers' own error type, for anyone reading this file
    sys.exit(_main())
