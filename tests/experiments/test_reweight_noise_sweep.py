from __future__ import annotations

import numpy as np

from experiments import reweight_noise_sweep as mod


def test_stats_measure_the_peak_bias() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 4))
    dist = np.linalg.norm(x, axis=1)
    log_true = -0.5 * dist**2
    # constants cancel (the weights are normalised)
    np.testing.assert_allclose(mod.stats(log_true + 3.0, log_true, dist), 0.0, atol=1e-12)
    # a ratio flattened toward its mean: low at the peak, high away from it
    err, near, far = mod.stats(0.9 * log_true, log_true, dist)
    assert err > 0.01 and near < 0 < far


def test_sweep_writes_a_table(tmp_path) -> None:
    out = tmp_path / "reweight.md"
    assert mod.main(["--events", "3000", "--only", "0", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| batch 2048, lr 2e-3, 60 epochs, patience 6 (the defaults) | 0 |" in text
    assert "- command: `python -m experiments.reweight_noise_sweep --events 3000" in text
    assert "<!-- begin noise sweep -->" in text
