"""experiments.data_driven: every row of the table is made and judged (tiny sizes), and the
goals are marked."""

from __future__ import annotations

import json
from pathlib import Path

from experiments import data_driven


def test_data_driven_makes_every_row_and_marks_the_goals(tmp_path: Path) -> None:
    out = tmp_path / "dd.json"
    # 3000 events: the data's CR holds more than one training batch (512).
    argv = ["--events", "3000", "--test-events", "1500", "--budget", "00:00:00:03"]
    argv += ["--ft-budget", "00:00:00:02", "--reweight-epochs", "2", "--calibrate-steps", "5"]
    argv += ["--work", str(tmp_path), "--json", str(out), "--no-results"]
    assert data_driven.main(argv) == 0
    res = json.loads(out.read_text())
    assert set(res["calibrated"]) == {key for _, key in data_driven.ROWS}
    for row in res["calibrated"].values():
        for region in ("SR", "CR"):
            assert 0.3 < row[region]["auc"] <= 1.0
            assert row[region]["chi2_r[m_ee]"] >= 0
    assert set(res["unpaired"]) == {"unpaired", "unpaired_lumi"}
    assert set(res["response"]) == {"truth", "test", "ft", "ft_lumi", "floor"}
    for r in res["response"].values():
        assert 0.5 < r["median"] < 1.5 and 0 <= r["below_0.9"] + r["above_1.1"] <= 1
    # The fine-tuned run started from the MC run and kept the CR.
    prov = json.loads((tmp_path / "runs" / "ft" / "provenance.json").read_text())
    assert prov["settings"]["init"] == str(tmp_path / "runs" / "mc")
    # Goals are marked: a tiny training misses them.
    text = "\n".join(data_driven.markdown(res, data_driven.parse([])))
    assert "fine-tuned on data in the CR" in text and "✗" in text
    assert "| --luminosity |" in text
