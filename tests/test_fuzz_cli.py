"""Issue 10.29: fuzzed runs of every sample through every reader and writer report no
traceback and only the exit statuses 0, 1 and 2. A fixed seed and a bounded number of
cases keep the suite quick; ``python tests/fuzz_cli.py --cases N`` runs more."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fuzz_cli  # noqa: E402

CASES = fuzz_cli.cases(len(fuzz_cli.samples()) * len(fuzz_cli.MUTATIONS), seed=29)


@pytest.mark.parametrize(("sample", "kind", "command", "seed"), CASES,
                         ids=[f"{s.name}-{k}-{c}" for s, k, c, _ in CASES])
def test_damaged_sample_through_the_cli(tmp_path: Path, sample: fuzz_cli.Sample, kind: str,
                                        command: str, seed: int) -> None:
    outcome = fuzz_cli.run_case(sample, kind, command, seed, tmp_path)
    assert outcome.error is None, f"{outcome.case}\n{outcome.error}"
    assert outcome.status in (0, 1, 2, 3), outcome.case  # 3: nothing to output


def test_fuzz_script_runs_from_the_command_line() -> None:
    proc = subprocess.run([sys.executable, str(Path(fuzz_cli.__file__)), "--cases", "7",
                           "--seed", "3"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "7 cases" in proc.stdout and "0 tracebacks" in proc.stdout
