from __future__ import annotations

import json

import numpy as np
import pytest


def test_error_decomposition_and_calibration_bound(load_script) -> None:
    mod = load_script("reweight_error_anatomy")
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


def test_anatomy_writes_its_report(load_script, tmp_path) -> None:
    mod = load_script("reweight_error_anatomy")
    out = tmp_path / "anatomy.md"
    assert mod.main(["--events", "3000", "--epochs", "3", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| A and B, log-weights averaged |" in text
    assert (
        "Command: `PYTHONPATH=. python experiments/reweight_error_anatomy.py --events 3000" in text
    )
    res = json.loads(out.with_suffix(".json").read_text())
    assert set(res["weight_error"]) == {"A", "B", "A+B"}
    assert -1.0 <= res["decomposition"]["corr"] <= 1.0
    assert res["stage2_platt"][0] >= 0.0
