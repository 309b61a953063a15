from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import StepPatch

from otus import plots


@pytest.fixture
def fig():  # type: ignore[no-untyped-def]
    f = plt.figure(figsize=(5, 5))
    yield f
    plt.close(f)


def _steps(ax):  # type: ignore[no-untyped-def]
    return [p for p in ax.patches if isinstance(p, StepPatch) and not p.get_fill()]


def test_hist_ratio_identical_samples_give_unit_ratio(fig, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    x = np.random.default_rng(0).normal(91, 3, 5000)
    ax, axr = plots.ratio_axes(fig)
    out = plots.hist_ratio(ax, axr, x, x, bins=30, label="m_ee [GeV]")
    assert out == (ax, axr)
    (ratio,) = _steps(axr)
    vals = ratio.get_data().values
    assert np.allclose(vals[np.isfinite(vals)], 1.0)
    truth, _ = _steps(ax)
    # unit area over all finite entries
    assert np.sum(truth.get_data().values * np.diff(truth.get_data().edges)) == pytest.approx(
        1.0, abs=0.01
    )
    assert axr.get_xlabel() == "m_ee [GeV]"
    fig.savefig(tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 1000


def test_hist_ratio_weights_and_nan(fig) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    t = rng.normal(0, 1, 4000)
    p = np.concatenate([rng.normal(0, 1, 4000), [np.nan] * 10])
    wp = np.concatenate([np.full(4000, 2.0), np.ones(10)])
    ax, axr = plots.ratio_axes(fig)
    plots.hist_ratio(ax, axr, t, p, wp=wp, bins=np.linspace(-3, 3, 13))
    (ratio,) = _steps(axr)
    assert np.all(np.abs(ratio.get_data().values - 1.0) < 0.3)


def test_mass_peak_zooms_on_peak(fig) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(2)
    m = np.concatenate([rng.normal(91.2, 2.5, 5000), rng.uniform(60, 120, 500)])
    ax, axr = plots.ratio_axes(fig)
    plots.mass_peak(ax, axr, m, m)
    lo, hi = axr.get_xlim()
    assert lo < 91.2 < hi and hi - lo < 30


def test_transport_2d_identity_on_diagonal(fig) -> None:  # type: ignore[no-untyped-def]
    a = np.random.default_rng(3).normal(0, 10, 3000)
    ax = fig.add_subplot()
    lim = (-60.0, 60.0)
    assert plots.transport_2d(ax, a, a, bins=20, xlabel="z", ylabel="x", range=(lim, lim)) is ax
    (mesh,) = ax.collections
    h = np.ma.filled(mesh.get_array(), np.nan).reshape(20, 20)
    off = ~np.eye(20, dtype=bool)
    assert np.all(np.isnan(h[off]))
    assert np.nansum(h) == 3000


def test_spread_draws_one_curve_per_input(fig) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(4)
    s = rng.normal([[10.0], [20.0], [30.0]], 1.0, (3, 200))
    ax = fig.add_subplot()
    assert plots.spread(ax, s, truth=[10.0, 20.0, 30.0], label="e+ pz [GeV]") is ax
    assert len(ax.patches) == 3
    assert len(ax.lines) == 3
    sigma = float(ax.get_legend_handles_labels()[1][0].split("σ = ")[1])
    assert sigma == pytest.approx(1.0, abs=0.15)
