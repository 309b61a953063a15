"""experiments.unfold_bench: every otus row, the stress variants, the replica coverage and
the prior-dependence table are made (tiny sizes; the peers' environment is absent here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from experiments import unfold_bench as ub


def test_variant_weights_move_the_line_shape() -> None:
    m = np.array([85.0, 91.1876, 92.19, 97.0])
    obs = {"m_ee": m, "y_ee": np.zeros(4), "e-_eta": np.zeros(4), "e+_eta": np.zeros(4)}
    assert np.all(ub.variant_weight("nominal", obs) == 1)
    shift = ub.variant_weight("shift", obs)
    assert shift[0] < 1 < shift[2]  # events move from below the pole to above it
    narrow = ub.variant_weight("narrow", obs)
    assert narrow[1] == pytest.approx(1 / 0.95**2) and narrow[3] < narrow[1]


def test_fixed_bin_metrics() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 20000), rng.normal(0, 1, 20000)
    e = np.linspace(-3, 3, 31)
    pa, va = ub._hist(a, np.ones_like(a), e)
    pb, vb = ub._hist(b, np.ones_like(b), e)
    assert pa.sum() == pytest.approx(1.0)  # the overflow is in the outer bins
    assert 0.4 < ub.chi2_fixed(pa, va, pb, vb) < 2.0  # one distribution: χ²_R ≈ 1
    pc, vc = ub._hist(b + 0.2, np.ones_like(b), e)
    assert ub.chi2_fixed(pa, va, pc, vc) > 10
    w1, err = ub.w1_boot(a, np.ones_like(a), b + 0.2, np.ones_like(b))
    assert w1 == pytest.approx(2.0, abs=0.2) and 0 < err < 0.3
    assert ub._wmedian(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 5.0])) == 3.0


def test_unfold_bench_makes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "ub.json"
    argv = ["--events", "3000", "--pool-events", "3000", "--budget", "00:00:00:03"]
    argv += ["--replicas", "2", "--iterations", "1", "--peers-python", str(tmp_path / "none")]
    argv += ["--work", str(tmp_path), "--json", str(out), "--no-results"]
    assert ub.main(argv) == 0
    res = json.loads(out.read_text())["results"]
    assert set(res) == {*ub.VARIANTS, "steps"}
    assert len(res["steps"]) == 3 and all(n > 0 for n in res["steps"])  # nominal + 2 replicas
    for v in ub.VARIANTS:
        for m in ("none", "otus", "otus_iter1"):
            row = res[v][m]
            assert set(row["chi2"]) == set(ub.OBS) and all(c >= 0 for c in row["chi2"].values())
        assert 0.3 < res[v]["otus"]["auc"][0] <= 1.0
        rp = res[v]["replicas"]
        assert rp["k"] == 2 and 0 <= rp["otus_coverage"] <= 1
    # The most iterated unfolding has replicas on the nominal and shift variants only.
    assert "otus_iter1_coverage" in res["shift"]["replicas"]
    assert "otus_iter1_coverage" not in res["shape"]["replicas"]
    d = res["shift"]["truth"]["median_m_ee"] - res["nominal"]["truth"]["median_m_ee"]
    assert 0.3 < d < 1.5  # the shift variant's line shape moved up
    a = ub.parse(argv)
    text = "\n".join(ub.markdown(res, a, {"x": 1.0}))
    assert "otus --iterations 1" in text and "fraction recovered" in text
