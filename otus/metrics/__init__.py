"""Distances between samples: per observable, whole event, OT maps.

Every function takes two samples ``x`` (truth) and ``y`` (prediction) and optional event
weights ``wx``, ``wy`` (may be negative, e.g. NLO generators; only their normalised sums
matter). Non-finite entries are never silently used: the 1-D functions drop rows where the
value is NaN (non-passing events) and raise :class:`~otus.errors.OtusError` when nothing
finite is left.

Per observable (the OTUS supplementary tables, arXiv:2101.08944):

* :func:`w2` -- squared 2-Wasserstein distance of the 1-D distributions,
  :math:`W = \\int_0^1 (F_x^{-1}(t) - F_y^{-1}(t))^2\\,dt`; for equal unweighted samples
  this is the mean squared difference of the sorted samples (GeV² for momenta). Computed by
  the training loss's kernel, :func:`otus.transport.wasserstein_1d`, which also states the
  rule for negative weights.
* :func:`chi2_r` -- reduced two-sample χ² over common bins (rule in :func:`common_bins`).
* :func:`ks` -- Kolmogorov-Smirnov statistic :math:`\\sup_t |F_x(t) - F_y(t)|`.
* :func:`triangular` -- triangular discrimination
  :math:`\\tfrac12 \\sum_i (p_i - q_i)^2/(p_i + q_i)` of the normalised histograms, in [0, 1].

Whole events: :func:`sliced_w2` (sliced Wasserstein, 1000 slices, p = 2) and
:func:`classifier_auc` (two-sample classifier test; 0.5 = indistinguishable). OT maps:
:func:`l2_uvp` (Korotin et al., arXiv:2106.01954). Uncertainties of unfolded histograms from
replicas: :func:`replica_band` (mean ± std over replicas) and :func:`coverage` (fraction of
bins whose ±1σ band covers the truth). :func:`compare` applies the per-observable
metrics to every physics observable of a process (:mod:`otus.physics.observables`).
"""

from otus.metrics.compare import compare
from otus.metrics.events import classifier_auc, l2_uvp, sliced_w2, weighted_auc
from otus.metrics.univariate import (
    DEFAULT_BINS,
    METRICS,
    MIN_ENTRIES,
    all_1d,
    chi2_r,
    common_bins,
    coverage,
    ks,
    replica_band,
    triangular,
    w2,
)

__all__ = [
    "DEFAULT_BINS",
    "METRICS",
    "MIN_ENTRIES",
    "all_1d",
    "chi2_r",
    "classifier_auc",
    "common_bins",
    "compare",
    "coverage",
    "ks",
    "l2_uvp",
    "replica_band",
    "sliced_w2",
    "triangular",
    "w2",
    "weighted_auc",
]
