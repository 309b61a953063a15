"""`otus demo --tiny`: the whole chain end to end at smoke-test sizes (the report's every
section is there with numbers, and the plots it embeds exist)."""

from __future__ import annotations

import re
from pathlib import Path

from otus.cli import main


def test_tiny_demo_writes_a_complete_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--tiny", "--out", str(out), "--seed", "1"]) == 0
    md = (out / "report.md").read_text()
    for head in ("## Stages", "## Simulation", "## Unfolding", "## Calibration"):
        assert head in md
    assert re.search(r"Classifier two-sample AUC 0\.\d+", md)
    for row in ("| uncalibrated |", "| reweighted |", "| ICNN-calibrated |"):
        assert row in md
    figs = re.findall(r"!\[[^]]*\]\(([^)]+)\)", md)
    assert len(figs) >= 4 and all((out / f).is_file() for f in figs)
    assert (out / "report.html").stat().st_size > (out / "report.md").stat().st_size
