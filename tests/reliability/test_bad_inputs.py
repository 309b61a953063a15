"""Every reader and command refuses each malformed input of the table in ``rel_cases``
with a one-line message naming the file and problem, exit 2, and no output left behind.
Each case records its category (``python -m experiments.reliability_table`` counts them)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import rel_cases_cmds  # noqa: F401  (adds the command cases)
from rel_cases import CASES, GOOD, Case, Good, run_case
from rel_samples import Samples, samples_fixture  # noqa: F401 (fixture)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused(
    case: Case, tmp_path: Path, samples: Samples, capsys, record_property
) -> None:
    record_property("category", case.category)
    out = run_case(case, tmp_path, samples, stderr=lambda: capsys.readouterr().err)
    assert out.ok, out.detail


@pytest.mark.parametrize("good", GOOD, ids=[f"{g.category}/{g.name}" for g in GOOD])
def test_unusual_valid_input_is_accepted(
    good: Good, tmp_path: Path, samples: Samples, record_property
) -> None:
    record_property("category", f"(valid edge case) {good.category}")
    assert good.check(good.make(tmp_path, samples)())


def test_table_covers_every_category() -> None:
    counts = Counter(c.category for c in CASES)
    assert len(counts) >= 10 and min(counts.values()) >= 2, counts
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"
