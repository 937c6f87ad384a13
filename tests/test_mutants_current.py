"""The deliberate bugs in tests/mutants.py still name code that exists: a mutant whose
text no longer occurs exactly once cannot be run, and the proof it gives would rot
silently as the code changes."""

from __future__ import annotations

import pytest
from mutants import MUTANTS, ROOT


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.label for m in MUTANTS])
def test_mutant_text_occurs_exactly_once(mutant) -> None:  # noqa: ANN001
    source = (ROOT / mutant.path).read_text()
    assert source.count(mutant.old) == 1, f"{mutant.label}: {mutant.path}"
    for test in mutant.tests:
        assert (ROOT / test.split("::")[0]).is_file(), test
