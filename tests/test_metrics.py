from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from otus import metrics as M
from otus.errors import OtusError
from otus.processes import TTBAR, ZEE
from otus.transport import sliced_wasserstein, wasserstein_1d


def _gauss(seed: int, n: int, mu: float = 0.0, sd: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(mu, sd, n)


# ------------------------------------------------------------------------------- W
def test_w2_is_mean_squared_difference_of_sorted_samples() -> None:
    x, y = _gauss(0, 500), _gauss(1, 500, 0.3, 1.7)
    assert M.w2(x, y) == pytest.approx(np.mean((np.sort(x) - np.sort(y)) ** 2), rel=1e-12)


def test_w2_gaussians_closed_form() -> None:
    # W2²(N(m1, s1²), N(m2, s2²)) = (m1 - m2)² + (s1 - s2)²
    x, y = _gauss(0, 200_000, 1.0, 2.0), _gauss(1, 150_000, -2.0, 3.0)
    assert M.w2(x, y) == pytest.approx(9.0 + 1.0, rel=0.02)


def test_w2_shift_gives_square_of_shift_and_self_is_zero() -> None:
    x = _gauss(2, 1000)
    assert M.w2(x, x + 4.0) == pytest.approx(16.0, rel=1e-9)
    assert M.w2(x, x) == 0.0


def test_w2_weighted_matches_pot_and_replication() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=300), rng.normal(0.5, 1.2, size=411)
    wx, wy = rng.uniform(0.1, 2, 300), rng.uniform(0.1, 2, 411)
    ref = ot.wasserstein_1d(x, y, wx / wx.sum(), wy / wy.sum(), p=2)
    assert M.w2(x, y, wx=wx, wy=wy) == pytest.approx(ref, rel=1e-9)
    # integer weights == repeated events
    k = rng.integers(1, 4, 300)
    assert M.w2(x, y, wx=k) == pytest.approx(M.w2(np.repeat(x, k), y), rel=1e-9)


def test_w2_negative_weights_that_cancel_duplicates() -> None:
    # a negative-weight event cancelling a positive one at the same value
    x = np.array([0.0, 1.0])
    y = np.array([0.0, 1.0, 1.0, 1.0])
    wy = np.array([1.0, 1.0, 1.0, -1.0])
    assert M.w2(x, y, wy=wy) == pytest.approx(0.0, abs=1e-12)
    assert M.ks(x, y, wy=wy) == pytest.approx(0.0, abs=1e-12)
    assert M.w2(x, y) > 0.1


def test_w2_is_the_training_loss_with_negative_weights() -> None:
    # The number shown is the number minimised: one kernel for the metric and the loss.
    x, wx, y = [0.0, 1.0, 2.0, 3.0], [1.0, 1.0, -1.0, 1.0], [0.5, 1.5, 2.5]

    def t(v: list[float] | list[list[float]]) -> torch.Tensor:
        return torch.tensor(v, dtype=torch.float64)

    loss_1d = float(wasserstein_1d(t(x), t(y), a=t(wx)))
    loss_sw = sliced_wasserstein(
        t(x)[:, None], t(y)[:, None], a=t(wx), projections=t([[1.0]]), root=False
    )
    assert M.w2(x, y, wx=wx) == loss_1d == float(loss_sw)
    # The negative weight at 2 merges the events at 1 and 3 into one at 2 (closed form in
    # tests/transport/test_sliced.py): mass 1/2 at 0 and at 2.
    assert M.w2(x, y, wx=wx) == pytest.approx(7 / 12, rel=1e-14)
    assert M.w2(x, [0.0, 2.0], wx=wx) == pytest.approx(0.0, abs=1e-15)


def test_sliced_w2_is_the_training_loss_for_the_same_directions() -> None:
    rng = np.random.default_rng(15)
    X, Y = rng.normal(size=(300, 4)), rng.normal(0.3, 1.2, size=(200, 4))
    wx = rng.uniform(0.2, 1.0, 300) * np.where(rng.random(300) < 0.2, -1.0, 1.0)
    theta = np.random.default_rng(3).standard_normal((4, 40))  # sliced_w2's directions
    theta /= np.linalg.norm(theta, axis=0, keepdims=True)
    loss = sliced_wasserstein(
        torch.from_numpy(X),
        torch.from_numpy(Y),
        a=torch.from_numpy(wx),
        projections=torch.from_numpy(theta),
        root=False,
    )
    assert M.sliced_w2(X, Y, wx=wx, n_projections=40, seed=3) == pytest.approx(
        float(loss), rel=1e-12
    )


def test_nan_values_are_dropped() -> None:
    x = np.array([0.0, 1.0, np.nan, 2.0])
    assert M.w2(x, [0.0, 1.0, 2.0]) == 0.0
    assert M.ks(x, [0.0, 1.0, 2.0]) == 0.0


# ------------------------------------------------------------------------------ KS
def test_ks_matches_scipy_and_weights_replicate() -> None:
    from scipy.stats import ks_2samp

    x, y = _gauss(4, 700), _gauss(5, 900, 0.2)
    assert M.ks(x, y) == pytest.approx(ks_2samp(x, y).statistic, rel=1e-12)
    k = np.random.default_rng(6).integers(1, 5, 700)
    assert M.ks(x, y, wx=k) == pytest.approx(ks_2samp(np.repeat(x, k), y).statistic, rel=1e-12)


# --------------------------------------------------------------------- chi2 / bins
def test_chi2_r_identical_distributions_near_one() -> None:
    vals = [M.chi2_r(_gauss(10 + i, 20_000), _gauss(50 + i, 20_000)) for i in range(20)]
    assert np.mean(vals) == pytest.approx(1.0, abs=0.15)


def test_chi2_r_unequal_sizes_and_weights_near_one() -> None:
    rng = np.random.default_rng(7)
    vals = []
    for i in range(20):
        x, y = _gauss(100 + i, 30_000), _gauss(200 + i, 10_000)
        w = rng.uniform(0.5, 1.5, 30_000)
        vals.append(M.chi2_r(x, y, wx=w))
    assert np.mean(vals) == pytest.approx(1.0, abs=0.15)


def test_chi2_r_and_triangular_grow_with_shift() -> None:
    x = _gauss(8, 20_000)
    near, far = _gauss(9, 20_000, 0.05), _gauss(9, 20_000, 0.5)
    assert M.chi2_r(x, far) > 10 * M.chi2_r(x, near)
    assert M.triangular(x, far) > M.triangular(x, near)
    assert 0.0 <= M.triangular(x, x) < 1e-12
    # disjoint supports: triangular discrimination reaches 1, χ²_R cannot be formed
    assert M.triangular(x, x + 100.0) == pytest.approx(1.0)
    assert np.isnan(M.chi2_r(x, x + 100.0))


def test_common_bins_have_five_entries_each_side() -> None:
    x, y = _gauss(11, 137), _gauss(12, 60, 1.0)
    edges = M.common_bins(x, y, bins=40)
    nx, _ = np.histogram(x, edges)
    ny, _ = np.histogram(y, edges)
    assert len(edges) >= 3
    assert (nx >= 5).all() and (ny >= 5).all()
    assert edges[0] == min(x.min(), y.min()) and edges[-1] == max(x.max(), y.max())


def test_common_bins_underfilled_tail_joins_the_only_full_bin() -> None:
    x = np.arange(8.0)  # 8 events: one bin of ≥5 each side, then a tail of 3
    edges = M.common_bins(x, x, bins=8)
    assert edges.tolist() == [0.0, 7.0]
    assert np.isnan(M.chi2_r(x, x, bins=8))


def test_chi2_r_nan_for_constant_column() -> None:
    assert np.isnan(M.chi2_r(np.zeros(100), np.zeros(100)))


# ---------------------------------------------------------------------- whole events
def test_sliced_w2_shift_closed_form_and_self() -> None:
    rng = np.random.default_rng(13)
    X = rng.normal(size=(5_000, 4))
    d = np.array([1.0, -2.0, 0.0, 2.0])
    # E_theta (theta·d)² = |d|² / D for theta uniform on the sphere
    assert M.sliced_w2(X, X + d, n_projections=2000) == pytest.approx(9.0 / 4, rel=0.1)
    assert M.sliced_w2(X, X) == pytest.approx(0.0, abs=1e-12)


def test_sliced_w2_weighted_path_agrees_with_replication() -> None:
    rng = np.random.default_rng(14)
    X, Y = rng.normal(size=(200, 3)), rng.normal(size=(150, 3)) + 0.5
    k = rng.integers(1, 3, 200)
    a = M.sliced_w2(X, Y, wx=k, n_projections=50, seed=3)
    b = M.sliced_w2(np.repeat(X, k, axis=0), Y, n_projections=50, seed=3)
    assert a == pytest.approx(b, rel=1e-9)


def test_weighted_auc_matches_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(20)
    s = np.round(rng.normal(size=500), 1)  # with ties
    y = rng.integers(0, 2, 500)
    w = rng.uniform(0.1, 3.0, 500)
    assert M.weighted_auc(s, y) == pytest.approx(roc_auc_score(y, s), rel=1e-12)
    assert M.weighted_auc(s, y, w) == pytest.approx(roc_auc_score(y, s, sample_weight=w), rel=1e-12)
    with pytest.raises(OtusError, match="both classes"):
        M.weighted_auc(s, np.zeros(500))


def test_classifier_auc_identical_and_shifted() -> None:
    rng = np.random.default_rng(15)
    X, Y = rng.normal(size=(4000, 3)), rng.normal(size=(4000, 3))
    auc, err = M.classifier_auc(X, Y, n_bootstrap=30, n_threads=1)
    assert 0 < err < 0.05
    assert abs(auc - 0.5) < 3 * err + 0.02
    auc2, _ = M.classifier_auc(X, Y + 1.0, n_bootstrap=30, n_threads=1)
    # optimal AUC for a unit shift along (1,1,1): Phi(|d|/sqrt(2)), |d| = sqrt(3)
    from scipy.stats import norm

    assert auc2 == pytest.approx(norm.cdf(np.sqrt(3) / np.sqrt(2)), abs=0.03)


def test_classifier_auc_weights_undo_a_reweighting() -> None:
    rng = np.random.default_rng(16)
    X = rng.normal(size=(6000, 1))
    Y = rng.normal(0.7, 1.0, size=(6000, 1))
    # weights w = p_X / p_Y make Y look like X
    w = np.exp(-0.5 * Y[:, 0] ** 2 + 0.5 * (Y[:, 0] - 0.7) ** 2)
    raw, _ = M.classifier_auc(X, Y, n_bootstrap=5, n_threads=1)
    fixed, err = M.classifier_auc(X, Y, wy=w, n_bootstrap=30, n_threads=1)
    assert raw > 0.65
    assert abs(fixed - 0.5) < 3 * err + 0.02


def test_l2_uvp() -> None:
    rng = np.random.default_rng(17)
    t = rng.normal(size=(1000, 2)) * [1.0, 3.0]
    assert M.l2_uvp(t, t) == 0.0
    # predicting the mean explains nothing: 100 %
    assert M.l2_uvp(np.broadcast_to(t.mean(0), t.shape), t) == pytest.approx(100.0)
    with pytest.raises(OtusError, match="equal"):
        M.l2_uvp(t[:, :1], t)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("fn", [M.w2, M.ks, M.chi2_r, M.triangular])
def test_bad_1d_inputs(fn) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(OtusError, match="empty"):
        fn([], [1.0, 2.0])
    with pytest.raises(OtusError, match="no finite values"):
        fn([np.nan, np.nan], [1.0, 2.0])
    with pytest.raises(OtusError, match="2 entries for 3"):
        fn([1.0, 2.0, 3.0], [1.0, 2.0], wx=[1.0, 1.0])
    with pytest.raises(OtusError, match="non-positive total weight"):
        fn([1.0, 2.0], [1.0, 2.0], wy=[1.0, -1.0])


def test_bad_event_inputs() -> None:
    X = np.zeros((10, 3))
    with pytest.raises(OtusError, match="2 columns, truth has 3"):
        M.sliced_w2(X, np.zeros((10, 2)))
    with pytest.raises(OtusError, match="no event with finite"):
        M.classifier_auc(X, np.full((10, 3), np.nan))


# ----------------------------------------------------------------------------- compare
def _zee_rows(seed: int, n: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pt = rng.uniform(20, 60, (n, 2))
    phi = rng.uniform(-np.pi, np.pi, (n, 2))
    eta = rng.normal(0, 1, (n, 2))
    px, py, pz = pt * np.cos(phi) + shift, pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2)
    return np.stack([px, py, pz, e], -1).reshape(n, 8)


def test_compare_zee_observables_and_shift() -> None:
    t, p = _zee_rows(0, 3000), _zee_rows(1, 3000)
    res = M.compare(ZEE, t, p, "x")
    assert {"e+_py", "e+_pz", "e+_E", "m_ee", "e-_pt", "e-_eta"} <= set(res)
    assert set(res["m_ee"]) >= set(M.METRICS)
    shifted = M.compare("zee", t, t + np.tile([3.0, 0, 0, 0], 2), "x", observables=["e+_px"])
    assert shifted["e+_px"]["W"] == pytest.approx(9.0, rel=1e-9)
    assert shifted["e+_px"]["KS"] > 0.02


def test_compare_ttbar_skips_constant_met_pz_and_checks_dims() -> None:
    rng = np.random.default_rng(2)
    rows = np.abs(rng.normal(30, 10, (500, 24)))
    rows[:, 6] = 0.0  # met pz
    rows[:, 3::4] = np.linalg.norm(rows.reshape(500, 6, 4)[..., :3], axis=-1) + 5.0
    res = M.compare(TTBAR, rows, rows[::-1], "x")
    assert "met_pz" not in res and "m_tt" in res
    with pytest.raises(OtusError, match=r"expected \[N, 24\]"):
        M.compare(TTBAR, rows, rows[:, :8], "x")
    with pytest.raises(OtusError, match="empty"):
        M.compare(TTBAR, rows, rows[:0], "x")
    bad = rows.copy()
    bad[:, 0] = np.nan
    with pytest.raises(OtusError, match="prediction observable e-_px holds no finite"):
        M.compare(TTBAR, rows, bad, "x")
