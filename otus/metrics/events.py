"""Distances between whole-event samples and OT maps: sliced Wasserstein, classifier
two-sample AUC, L2-UVP."""

from __future__ import annotations

from typing import Any

import numpy as np

from otus.errors import OtusError
from otus.metrics.univariate import _w2_columns, _weights, keep_finite


def _events(X: Any, w: Any, name: str, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise OtusError(f"{name} must be a 2-D array [N, D], got shape {X.shape}")
    if dim is not None and X.shape[1] != dim:
        raise OtusError(f"{name} has {X.shape[1]} columns, truth has {dim}")
    w = _weights(w, len(X), f"weights of {name}")
    return keep_finite(X, w, np.all(np.isfinite(X), axis=1), name, "event with finite values")


def sliced_w2(
    X: Any,
    Y: Any,
    *,
    n_projections: int = 1000,
    seed: int = 0,
    wx: Any = None,
    wy: Any = None,
    chunk: int | None = None,
) -> float:
    """Squared sliced 2-Wasserstein distance of two event samples [N, D] (rows with NaN dropped).

    .. math:: SW_2^2(X, Y) = \\mathbb{E}_{\\theta \\sim U(S^{D-1})}\\,
              W_2^2(\\theta^\\top X, \\theta^\\top Y)

    estimated with ``n_projections`` directions drawn from ``np.random.default_rng(seed)``;
    each 1-D term is exact (weighted quantile functions, as :func:`w2`). Projections are
    processed in blocks of ``chunk`` (by default sized to bound memory).
    """
    X, wx = _events(X, wx, "truth")
    Y, wy = _events(Y, wy, "prediction", X.shape[1])
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((X.shape[1], n_projections))
    theta /= np.linalg.norm(theta, axis=0, keepdims=True)
    if chunk is None:  # keep each block of projected values near 2·10⁷ numbers (≈160 MB)
        chunk = int(np.clip(2e7 // (len(X) + len(Y)), 1, 64))
    vals = [
        _w2_columns(X @ theta[:, a : a + chunk], Y @ theta[:, a : a + chunk], wx, wy)
        for a in range(0, n_projections, chunk)
    ]
    return float(np.mean(np.concatenate(vals)))


def classifier_auc(
    X: Any,
    Y: Any,
    *,
    wx: Any = None,
    wy: Any = None,
    seed: int = 0,
    n_bootstrap: int = 100,
    max_events: int | None = 200_000,
    n_threads: int | None = None,
) -> tuple[float, float]:
    """Two-sample classifier test: ROC AUC of a classifier telling X from Y, ± its error.

    A histogram gradient-boosted classifier (scikit-learn) is fit on a random half of the
    events (features replaced by their weighted-quantile bin indices), the classes weighted to equal total |weight|, with early stopping
    on a part of that half; the weighted AUC is measured on the other, held-out half. The
    error is the standard deviation over ``n_bootstrap`` resamplings of the held-out half.
    0.5 means the classifier cannot tell the samples apart (CaloChallenge's metric,
    arXiv:2106.05285). At most ``max_events`` events of each sample are used (a random
    subset, seeded). Exact duplicates shared by both samples bias the AUC below 0.5 (a
    memorised training copy votes against its held-out twin). ``n_threads`` caps the OpenMP threads (1 avoids oversubscription on
    busy machines).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n_threads, user_api="openmp"):
        return _classifier_auc(
            X, Y, wx=wx, wy=wy, seed=seed, n_bootstrap=n_bootstrap, max_events=max_events
        )


def weighted_auc(score: Any, label: Any, weight: Any = None) -> float:
    """ROC AUC with event weights: the weighted Mann-Whitney statistic, ties counted half.

    .. math:: \\mathrm{AUC} = \\frac{\\sum_{i \\in 1} \\sum_{j \\in 0} w_i w_j
              \\,[s_i > s_j] + \\tfrac12 [s_i = s_j]}{\\sum_{i \\in 1} w_i \\sum_{j \\in 0} w_j}

    Example:
        >>> weighted_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        0.75
    """
    s = np.asarray(score, dtype=np.float64)
    y = np.asarray(label).astype(bool)
    w = np.ones_like(s) if weight is None else np.asarray(weight, dtype=np.float64)
    _, inv = np.unique(s, return_inverse=True)
    wn = np.bincount(inv, weights=np.where(y, 0.0, w))
    wp = np.bincount(inv, weights=np.where(y, w, 0.0))
    below = np.cumsum(wn) - wn
    den = wp.sum() * wn.sum()
    if den == 0:
        raise OtusError("the AUC needs events of both classes with non-zero total weight")
    return float(np.sum(wp * (below + 0.5 * wn)) / den)


def _quantile_codes(
    F: np.ndarray, w: np.ndarray, fit_rows: np.ndarray, n_bins: int = 255
) -> np.ndarray:
    """Replace every feature by its weighted-quantile bin index (edges from ``fit_rows``).

    This is the binning the gradient-boosted trees apply anyway; doing it here, vectorised,
    avoids scikit-learn's slow per-quantile weighted percentile path.
    """
    out = np.empty_like(F)
    qs = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    for j in range(F.shape[1]):
        col = F[fit_rows, j]
        order = np.argsort(col, kind="stable")
        cw = np.cumsum(w[fit_rows][order])
        edges = np.unique(np.interp(qs * cw[-1], cw, col[order]))
        out[:, j] = np.searchsorted(edges, F[:, j], side="right")
    return out


def _classifier_auc(
    X: Any, Y: Any, *, wx: Any, wy: Any, seed: int, n_bootstrap: int, max_events: int | None
) -> tuple[float, float]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, wx = _events(X, wx, "truth")
    Y, wy = _events(Y, wy, "prediction", X.shape[1])
    rng = np.random.default_rng(seed)
    if max_events is not None:
        if len(X) > max_events:
            i = rng.choice(len(X), max_events, replace=False)
            X, wx = X[i], wx[i]
        if len(Y) > max_events:
            i = rng.choice(len(Y), max_events, replace=False)
            Y, wy = Y[i], wy[i]
    if min(len(X), len(Y)) < 20:
        raise OtusError(
            f"the classifier test needs ≥20 events per sample, got {len(X)} and {len(Y)}"
        )
    F = np.concatenate([X, Y])
    lab = np.concatenate([np.zeros(len(X)), np.ones(len(Y))])
    w = np.concatenate([wx / np.abs(wx).sum(), wy / np.abs(wy).sum()]) * len(F) / 2
    perm = rng.permutation(len(F))
    tr, te = perm[: len(F) // 2], perm[len(F) // 2 :]
    F = _quantile_codes(F, np.abs(w), tr)
    clf = HistGradientBoostingClassifier(
        max_iter=200,
        learning_rate=0.1,
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=10,
        random_state=int(rng.integers(2**31)),
    )
    clf.fit(F[tr], lab[tr], sample_weight=w[tr])
    s = clf.predict_proba(F[te])[:, 1]
    lt, wt = lab[te], w[te]
    auc = weighted_auc(s, lt, wt)
    boots = []
    for _ in range(n_bootstrap):
        b = rng.integers(0, len(te), len(te))
        if 0 < lt[b].sum() < len(b):
            boots.append(weighted_auc(s[b], lt[b], wt[b]))
    err = float(np.std(boots)) if len(boots) > 1 else float("nan")
    return auc, err


def l2_uvp(pred: Any, truth: Any) -> float:
    """Unexplained variance percentage of a transport map with known truth.

    .. math:: \\mathcal{L}^2\\text{-UVP} = 100\\,
              \\frac{\\mathbb{E}\\lVert \\hat T(x) - T^*(x)\\rVert^2}{\\operatorname{Var} T^*(x)}

    with Var the total variance (trace of the covariance) of the true images
    (Korotin et al., arXiv:2106.01954). ``pred`` and ``truth`` are [N, D] images of the
    same N points.
    """
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    p = p[:, None] if p.ndim == 1 else p
    t = t[:, None] if t.ndim == 1 else t
    if p.shape != t.shape or p.ndim != 2:
        raise OtusError(f"pred {p.shape} and truth {t.shape} must be equal [N, D] arrays")
    if len(t) < 2:
        raise OtusError("l2_uvp needs at least two points")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(t))):
        raise OtusError("l2_uvp inputs hold NaN or inf")
    var = float(np.sum(t.var(axis=0)))
    if var <= 0:
        raise OtusError("the true images have zero variance; L2-UVP is undefined")
    return float(100.0 * np.mean(np.sum((p - t) ** 2, axis=1)) / var)
