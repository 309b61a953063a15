"""Coverage of the truth by a replica band (otus.metrics.replica_band, coverage) on toys
with a known answer, and the bootstrap's Poisson counts (otus.models.replicas)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from otus.errors import OtusError
from otus.metrics import coverage, replica_band
from otus.models.replicas import poisson_counts

N, K, TOYS = 20_000, 50, 20
EDGES = np.linspace(-2.5, 2.5, 41)


def _expected() -> np.ndarray:
    """The expected histogram of N standard-normal events on EDGES."""
    cdf = np.array([0.5 * (1 + math.erf(e / math.sqrt(2))) for e in EDGES])
    return N * np.diff(cdf)


def _toy_coverage(shift: float) -> float:
    """Mean coverage over TOYS toys: each a Gaussian sample (shifted by ``shift``: a biased
    estimator) and K Poisson-bootstrap replicas of its histogram, against the expected one."""
    truth = _expected()
    out = []
    for toy in range(TOYS):
        x = np.random.default_rng(toy).standard_normal(N) + shift
        weights = [poisson_counts(toy, k, 0, 0, N) for k in range(K)]
        mean, std = replica_band([x] * K, weights, EDGES, normalize=False)
        out.append(coverage(truth, mean, std))
    return float(np.mean(out))


def test_bootstrap_band_covers_the_truth_68_percent_of_the_bins() -> None:
    # Per bin, the bootstrap σ estimates sqrt(N p (1 − p)) (p ≤ 0.04 here, so within 2 %) and
    # |observed − expected| ≤ σ holds with probability 0.683 for these Gaussian-like counts
    # (≥ 40 expected per bin); σ estimated from K = 50 replicas and the replicas' mean
    # (σ/√50 off the observation) move that by < 0.01. 20 toys × 40 bins = 800 nearly
    # independent bins: the binomial standard deviation of the fraction is
    # sqrt(0.68 · 0.32 / 800) = 0.0165, so ±0.06 is 3.6 σ.
    assert _toy_coverage(0.0) == pytest.approx(0.683, abs=0.06)


def test_biased_estimator_has_low_coverage() -> None:
    # A shift of 0.25 σ moves the counts of the bins off the peak by several times their
    # statistical error: only the bins near the peak and in the far tails stay covered.
    assert _toy_coverage(0.25) < 0.35


def test_coverage_counts_only_bins_with_enough_truth_entries() -> None:
    assert coverage([100, 100, 2], [105, 80, 50], [10, 10, 1]) == 0.5
    # Normalised histograms: the raw counts decide which bins qualify.
    t = np.array([0.5, 0.5])
    assert coverage(t, [0.5, 0.9], [0.01, 0.01], counts=[10, 4]) == 1.0
    assert math.isnan(coverage(t, t, [0.1, 0.1], counts=[1, 1]))
    with pytest.raises(OtusError, match="one shape"):
        coverage([1.0, 2.0], [1.0], [1.0])


def test_replica_band_normalises_each_replica_and_checks_its_inputs() -> None:
    mean, std = replica_band(
        [[0.5, 0.5, 1.5], [0.5, 1.5, np.nan]], [None, [1.0, 3.0, 5.0]], [0, 1, 2]
    )
    # replica 0: (2/3, 1/3); replica 1 (NaN dropped, weights 1, 3): (1/4, 3/4)
    np.testing.assert_allclose(mean, [(2 / 3 + 1 / 4) / 2, (1 / 3 + 3 / 4) / 2])
    np.testing.assert_allclose(std, np.std([[2 / 3, 1 / 3], [1 / 4, 3 / 4]], 0, ddof=1))
    one_mean, one_std = replica_band([[0.5]], [None], [0, 1])
    assert one_mean.tolist() == [1.0] and one_std.tolist() == [0.0]
    with pytest.raises(OtusError, match="one weight array"):
        replica_band([[0.5], [0.5]], [None], [0, 1])


def test_poisson_counts_are_poisson_1_and_independent_of_chunking() -> None:
    c = poisson_counts(7, 3, 0, 0, 200_000)
    assert c.mean() == pytest.approx(1.0, abs=0.01) and c.var() == pytest.approx(1.0, abs=0.02)
    assert np.mean(c == 0) == pytest.approx(math.exp(-1), abs=0.005)
    parts = [poisson_counts(7, 3, 0, a, min(a + 777, 5000)) for a in range(0, 5000, 777)]
    np.testing.assert_array_equal(np.concatenate(parts), c[:5000])
    np.testing.assert_array_equal(poisson_counts(7, 3, 0, 0, 5000), c[:5000])
    for other in (poisson_counts(8, 3, 0, 0, 5000), poisson_counts(7, 4, 0, 0, 5000)):
        assert abs(np.corrcoef(other, c[:5000])[0, 1]) < 0.05
    assert not np.array_equal(poisson_counts(7, 3, 1, 0, 5000), c[:5000])
