from __future__ import annotations

import numpy as np
import pytest

from experiments import reweight_error_anatomy as mod


def test_error_decomposition_and_calibration_bound() -> None:
    rng = np.random.default_rng(0)
    log_true = rng.normal(size=20000)
    # a constant offset is the free normalisation: no error
    assert mod.weight_error(log_true + 2.0, log_true) == pytest.approx(0.0, abs=1e-12)
    shared = 0.05 * np.sin(3 * log_true)
    ea = mod.log_errors(log_true + shared + 0.05 * rng.normal(size=20000), log_true)
    eb = mod.log_errors(log_true + shared + 0.05 * rng.normal(size=20000), log_true)
    dec = mod.decomposition(ea, eb, log_true)
    # systematic variance 0.05²/2 against 0.05² of noise per sample: correlation 1/3
    assert dec["corr"] == pytest.approx(1 / 3, abs=0.05)
    assert len(dec["octiles"]) == 8
    assert all(o["indep_rms"] == pytest.approx(0.05 / np.sqrt(2), rel=0.2) for o in dec["octiles"])
    # a distortion that is a function of the predicted log-ratio is removable by binning
    squeezed = 0.8 * log_true
    assert mod.weight_error(squeezed, log_true) > 0.1
    assert mod.binned_calibration_bound(squeezed, log_true) < 0.03
    # scatter that is not a function of the prediction is not
    noisy = log_true + 0.1 * rng.normal(size=20000)
    assert mod.binned_calibration_bound(noisy, log_true) > 0.6 * mod.weight_error(noisy, log_true)


def test_anatomy_writes_its_report(tmp_path) -> None:
    out = tmp_path / "reweight.md"
    assert mod.main(["--events", "3000", "--epochs", "3", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| A and B, log-weights averaged |" in text
    assert "- command: `python -m experiments.reweight_error_anatomy --events 3000" in text
    (row,) = [ln for ln in text.splitlines() if ln.startswith("| 0 |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert all(c.endswith("%") for c in cells[1:6])
    assert -1.0 <= float(cells[6]) <= 1.0  # correlation of the two errors
    assert float(cells[7]) >= 0.0  # the second reweighter's Platt slope
