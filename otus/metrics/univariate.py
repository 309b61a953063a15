"""Distances between two 1-D samples: W, χ²_R, KS, triangular discrimination.

Weights may be negative (NLO generators; for W the rule of
:mod:`otus.transport.sliced`); non-finite values (non-passing events) are
dropped; nothing finite left raises :class:`~otus.errors.OtusError`. See
:mod:`otus.metrics` for the definitions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from otus.errors import OtusError
from otus.transport.sliced import wasserstein_1d

METRICS = ("W", "chi2_r", "KS", "triangular")
MIN_ENTRIES = 5
DEFAULT_BINS = 50


def _weights(w: Any, n: int, name: str) -> np.ndarray:
    if w is None:
        return np.ones(n, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    if len(w) != n:
        raise OtusError(f"{name} has {len(w)} entries for {n} events")
    if not np.all(np.isfinite(w)):
        raise OtusError(f"{name} holds NaN or inf")
    return w


def _sample(x: Any, w: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """1-D sample and weights with non-finite values dropped; errors when nothing is left."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    w = _weights(w, len(x), f"weights of {name}")
    if len(x) == 0:
        raise OtusError(f"{name} is an empty sample")
    return keep_finite(x, w, np.isfinite(x), name, "finite values (all NaN or inf)")


def keep_finite(
    x: np.ndarray, w: np.ndarray, ok: np.ndarray, name: str, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """The rows ``ok`` of a sample and its weights; errors when none is left (``name`` holds
    no ``what``) or their total weight is not positive."""
    if not ok.any():
        raise OtusError(f"{name} holds no {what}")
    x, w = x[ok], w[ok]
    if not w.sum() > 0:
        raise OtusError(f"{name} has a non-positive total weight ({w.sum():.4g})")
    return x, w


def _w2_columns(u: np.ndarray, v: np.ndarray, wu: np.ndarray, wv: np.ndarray) -> np.ndarray:
    """Exact squared W2 between weighted samples ``u`` [n, k] and ``v`` [m, k], per column.

    The training loss's kernel, :func:`otus.transport.sliced.wasserstein_1d`, run in
    float64 without gradients (its docstring states the rule for negative weights).
    """

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.require(a, dtype=np.float64, requirements=["C", "W"]))

    with torch.no_grad():
        out = wasserstein_1d(tensor(u), tensor(v), a=tensor(wu), b=tensor(wv), p=2)
    return out.numpy()


def w2(x: Any, y: Any, *, wx: Any = None, wy: Any = None) -> float:
    """Squared 2-Wasserstein distance of two 1-D samples (the OTUS "W", units²).

    .. math:: W = \\int_0^1 \\big(F_x^{-1}(t) - F_y^{-1}(t)\\big)^2\\,dt

    For unweighted samples of equal size this is ``mean((sort(x) - sort(y))**2)``. The
    value is the training loss's :func:`otus.transport.wasserstein_1d` (in float64), whose
    docstring states the rule for negative weights.

    Example:
        >>> w2([0.0, 1.0], [2.0, 3.0])
        4.0
    """
    x, wx = _sample(x, wx, "truth")
    y, wy = _sample(y, wy, "prediction")
    return float(_w2_columns(x[:, None], y[:, None], wx, wy)[0])


def ks(x: Any, y: Any, *, wx: Any = None, wy: Any = None) -> float:
    """Weighted Kolmogorov-Smirnov statistic :math:`\\sup_t |F_x(t) - F_y(t)|`.

    Example:
        >>> ks([0.0, 1.0], [0.5, 2.0])
        0.5
    """
    x, wx = _sample(x, wx, "truth")
    y, wy = _sample(y, wy, "prediction")
    grid = np.unique(np.concatenate([x, y]))

    def cdf(s: np.ndarray, w: np.ndarray) -> np.ndarray:
        order = np.argsort(s, kind="stable")
        cw = np.concatenate([[0.0], np.cumsum(w[order])]) / w.sum()
        return cw[np.searchsorted(s[order], grid, side="right")]

    return float(np.max(np.abs(cdf(x, wx) - cdf(y, wy))))


def common_bins(
    x: Any,
    y: Any,
    *,
    wx: Any = None,
    wy: Any = None,
    bins: int = DEFAULT_BINS,
    min_entries: int = MIN_ENTRIES,
) -> np.ndarray:
    """Bin edges shared by both samples, each bin holding ≥ ``min_entries`` events of each.

    Rule: start from ``bins`` bins at the quantiles of the pooled sample (each sample
    weighted by |w| normalised to one, so both count equally); then sweep left to right,
    merging a bin into the next until it holds at least ``min_entries`` events (raw counts
    of events with non-zero weight) from *both* samples; an underfilled last bin is merged
    into its left neighbour. The outer edges are the pooled minimum and maximum. May return
    a single bin.
    """
    x, wx = _sample(x, wx, "truth")
    y, wy = _sample(y, wy, "prediction")
    pooled = np.concatenate([x, y])
    lo, hi = pooled.min(), pooled.max()
    pw = np.concatenate([np.abs(wx) / np.abs(wx).sum(), np.abs(wy) / np.abs(wy).sum()])
    order = np.argsort(pooled, kind="stable")
    cw = np.cumsum(pw[order])
    cw /= cw[-1]
    qs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    inner = pooled[order][np.clip(np.searchsorted(cw, qs), 0, len(pooled) - 1)]
    edges = np.unique(np.concatenate([[lo], inner, [hi]]))
    if len(edges) < 2:
        return np.array([lo - 0.5, hi + 0.5])
    nx, _ = np.histogram(x[wx != 0], edges)
    ny, _ = np.histogram(y[wy != 0], edges)
    keep = [edges[0]]
    ax = ay = 0
    for i in range(len(nx)):
        ax += nx[i]
        ay += ny[i]
        if ax >= min_entries and ay >= min_entries:
            keep.append(edges[i + 1])
            ax = ay = 0
    if len(keep) == 1:
        keep.append(edges[-1])
    else:
        keep[-1] = edges[-1]  # an underfilled tail joins the last full bin
    return np.asarray(keep, dtype=np.float64)


def _hists(
    x: np.ndarray, y: np.ndarray, wx: np.ndarray, wy: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Normalised weighted histograms and their variances (Σw² per bin / (Σw)²)."""
    hx, _ = np.histogram(x, edges, weights=wx)
    hy, _ = np.histogram(y, edges, weights=wy)
    vx, _ = np.histogram(x, edges, weights=wx**2)
    vy, _ = np.histogram(y, edges, weights=wy**2)
    sx, sy = wx.sum(), wy.sum()
    return hx / sx, hy / sy, vx / sx**2, vy / sy**2


def chi2_r(
    x: Any, y: Any, *, wx: Any = None, wy: Any = None, bins: int | np.ndarray = DEFAULT_BINS
) -> float:
    """Reduced two-sample χ² over common bins (:func:`common_bins` when ``bins`` is an int).

    .. math:: \\chi^2_R = \\frac{1}{n-1}\\sum_i \\frac{(\\hat X_i - \\hat Y_i)^2}
              {\\sigma^2_{X,i} + \\sigma^2_{Y,i}}

    with :math:`\\hat X_i` the histogram normalised to unit sum and
    :math:`\\sigma^2_{X,i} = \\sum_{j\\in i} w_j^2 / (\\sum_j w_j)^2`. For unweighted samples of
    equal size this is the OTUS :math:`\\sum (X-Y)^2/(X+Y)/(n-1)`; samples from one
    distribution give χ²_R ≈ 1. NaN when fewer than two bins can be formed. The merging
    rule makes χ²_R blind where one sample has (almost) no events, e.g. disjoint supports:
    read it together with W, KS and the triangular discrimination.
    """
    x, wx = _sample(x, wx, "truth")
    y, wy = _sample(y, wy, "prediction")
    edges = (
        common_bins(x, y, wx=wx, wy=wy, bins=int(bins))
        if np.ndim(bins) == 0  # type: ignore[arg-type]
        else np.asarray(bins)
    )
    if len(edges) < 3:
        return float("nan")
    px, py, vx, vy = _hists(x, y, wx, wy, edges)
    var = vx + vy
    ok = var > 0
    return (
        float(np.sum((px[ok] - py[ok]) ** 2 / var[ok]) / (ok.sum() - 1))
        if ok.sum() > 1
        else float("nan")
    )


def triangular(
    x: Any, y: Any, *, wx: Any = None, wy: Any = None, bins: int | np.ndarray = DEFAULT_BINS
) -> float:
    """Triangular discrimination of the normalised histograms, in [0, 1].

    .. math:: \\Delta(p, q) = \\tfrac12 \\sum_i \\frac{(p_i - q_i)^2}{p_i + q_i}

    (Topsøe 2000; used for generative HEP models, e.g. arXiv:2106.00792). With an int
    ``bins``: the pooled-quantile bins of :func:`common_bins` *without* the ≥5-entries
    merging (empty bins are harmless here, and merging would hide disjoint supports);
    bins with :math:`p_i + q_i \\le 0` are skipped.
    """
    x, wx = _sample(x, wx, "truth")
    y, wy = _sample(y, wy, "prediction")
    edges = (
        common_bins(x, y, wx=wx, wy=wy, bins=int(bins), min_entries=0)  # type: ignore[arg-type]
        if np.ndim(bins) == 0
        else np.asarray(bins)
    )
    px, py, _, _ = _hists(x, y, wx, wy, edges)
    s = px + py
    ok = s > 0
    return float(0.5 * np.sum((px[ok] - py[ok]) ** 2 / s[ok]))


def all_1d(
    x: Any, y: Any, *, wx: Any = None, wy: Any = None, bins: int = DEFAULT_BINS
) -> dict[str, float]:
    """The four per-observable metrics ``W``, ``chi2_r``, ``KS``, ``triangular`` at once."""
    x, wx = _sample(x, wx, "truth")
    y, wy = _sample(y, wy, "prediction")
    return {
        "W": w2(x, y, wx=wx, wy=wy),
        "chi2_r": chi2_r(x, y, wx=wx, wy=wy, bins=bins),
        "KS": ks(x, y, wx=wx, wy=wy),
        "triangular": triangular(x, y, wx=wx, wy=wy, bins=bins),
    }


def replica_band(
    samples_per_replica: Any,
    weights_per_replica: Any,
    edges: Any,
    *,
    normalize: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over replicas of one observable's histogram.

    .. math:: \\bar h_i = \\frac1K \\sum_k h^{(k)}_i, \\qquad
              \\sigma_i^2 = \\frac1{K-1} \\sum_k \\big(h^{(k)}_i - \\bar h_i\\big)^2

    The uncertainty of an unfolded histogram (SPEC §8): the spread of K replicas of the
    unfolding (bootstrap members, ``otus unfold --replicas``), not the Poisson counts of
    the unfolded events. With K = 1 the standard deviation is 0.

    Args:
        samples_per_replica: K 1-D samples (non-finite values dropped).
        weights_per_replica: K weight arrays of the same lengths (None: unit weights).
        edges: the bin edges [B + 1].
        normalize: divide each replica's histogram by its total weight of finite entries
            (shapes, as the other metrics compare), else weighted counts.

    Returns:
        (mean [B], std [B]).

    >>> mean, std = replica_band([[0.5, 1.5], [0.5, 0.5]], [None, None], [0, 1, 2])
    >>> mean.tolist(), std.round(4).tolist()
    ([0.75, 0.25], [0.3536, 0.3536])
    """
    edges = np.asarray(edges, dtype=np.float64)
    samples = list(samples_per_replica)
    weights = list(weights_per_replica)
    if not samples or len(weights) != len(samples):
        raise OtusError(
            f"replica_band needs one weight array (or None) per replica, got {len(samples)} "
            f"samples and {len(weights)} weight arrays"
        )
    hists = []
    for k, (x, w) in enumerate(zip(samples, weights, strict=True)):
        x, w = _sample(x, w, f"replica {k}")
        h, _ = np.histogram(x, edges, weights=w)
        hists.append(h / w.sum() if normalize else h)
    arr = np.asarray(hists, dtype=np.float64)
    std = arr.std(0, ddof=1) if len(arr) > 1 else np.zeros(arr.shape[1])
    return arr.mean(0), std


def coverage(
    truth_hist: Any,
    mean: Any,
    std: Any,
    *,
    min_count: int = MIN_ENTRIES,
    counts: Any = None,
) -> float:
    """Fraction of bins where the replica band covers the truth: :math:`|\\bar h_i - t_i|
    \\le \\sigma_i`, over bins holding ≥ ``min_count`` truth entries.

    ``counts`` are the truth entries per bin (default: ``truth_hist`` itself, when it holds
    counts). For Gaussian uncertainties that are right, ≈ 0.68; lower means the band is too
    narrow or the estimate biased. The truth's own statistical error is not included: compare
    with a truth sample much larger than the unfolded one. NaN when no bin qualifies.

    >>> coverage([100, 100, 2], [105, 80, 2], [10, 10, 1])
    0.5
    """
    t = np.asarray(truth_hist, dtype=np.float64)
    m, s = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    n = t if counts is None else np.asarray(counts, dtype=np.float64)
    if not t.shape == m.shape == s.shape == n.shape:
        raise OtusError(
            f"coverage: truth {t.shape}, mean {m.shape}, std {s.shape} and counts {n.shape} "
            "must have one shape"
        )
    ok = n >= min_count
    if not ok.any():
        return float("nan")
    return float(np.mean(np.abs(m[ok] - t[ok]) <= s[ok]))
