"""Distances between samples (SPEC §8): per observable, whole event, OT maps.

Every function takes two samples ``x`` (truth) and ``y`` (prediction) and optional event
weights ``wx``, ``wy`` (may be negative, e.g. NLO generators; only their normalised sums
matter). Non-finite entries are never silently used: the 1-D functions drop rows where the
value is NaN (non-passing events) and raise :class:`~otus.errors.OtusError` when nothing
finite is left.

Per observable (the OTUS supplementary tables, arXiv:2101.08944):

* :func:`w2` -- squared 2-Wasserstein distance of the 1-D distributions,
  :math:`W = \\int_0^1 (F_x^{-1}(t) - F_y^{-1}(t))^2\\,dt`; for equal unweighted samples
  this is the mean squared difference of the sorted samples (GeV² for momenta).
* :func:`chi2_r` -- reduced two-sample χ² over common bins (rule in :func:`common_bins`).
* :func:`ks` -- Kolmogorov-Smirnov statistic :math:`\\sup_t |F_x(t) - F_y(t)|`.
* :func:`triangular` -- triangular discrimination
  :math:`\\tfrac12 \\sum_i (p_i - q_i)^2/(p_i + q_i)` of the normalised histograms, in [0, 1].

Whole events: :func:`sliced_w2` (sliced Wasserstein, 1000 slices, p = 2) and
:func:`classifier_auc` (two-sample classifier test; 0.5 = indistinguishable). OT maps:
:func:`l2_uvp` (Korotin et al., arXiv:2106.01954). :func:`compare` applies the per-observable
metrics to every physics observable of a process (:mod:`otus.physics.observables`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from otus.errors import OtusError

METRICS = ("W", "chi2_r", "KS", "triangular")
MIN_ENTRIES = 5
DEFAULT_BINS = 50


# ----------------------------------------------------------------------------- helpers
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
    ok = np.isfinite(x)
    if not ok.any():
        raise OtusError(f"{name} holds no finite values (all NaN or inf)")
    x, w = x[ok], w[ok]
    if not w.sum() > 0:
        raise OtusError(f"{name} has a non-positive total weight ({w.sum():.4g})")
    return x, w


def _cdf_steps(values: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted values (along axis 0) and their cumulative normalised weights.

    With negative weights the cumulative sum may decrease; it is replaced by its running
    maximum clipped to [0, 1] (the monotone envelope), which is exact for non-negative
    weights.
    """
    order = np.argsort(values, axis=0, kind="stable")
    v = np.take_along_axis(values, order, axis=0)
    cw = np.cumsum(w[order], axis=0) / w.sum()
    cw = np.clip(np.maximum.accumulate(cw, axis=0), 0.0, 1.0)
    cw[-1] = 1.0
    return v, cw


def _w2_columns(u: np.ndarray, v: np.ndarray, wu: np.ndarray, wv: np.ndarray) -> np.ndarray:
    """Exact squared W2 between weighted empirical measures, column by column.

    ``u`` [n, k], ``v`` [m, k]: k independent 1-D problems solved at once by integrating the
    squared difference of the quantile functions over the merged cumulative-weight grid.
    """
    if len(u) == len(v) and np.all(wu == wu[0]) and np.all(wv == wv[0]) and wu[0] > 0 < wv[0]:
        return np.mean((np.sort(u, axis=0) - np.sort(v, axis=0)) ** 2, axis=0)  # fast path
    su, cu = _cdf_steps(u, wu)
    sv, cv = _cdf_steps(v, wv)
    k = u.shape[1]
    t = np.sort(np.concatenate([cu, cv], axis=0), axis=0)  # [n+m, k], last rows = 1
    dt = np.diff(t, axis=0, prepend=0.0)
    mid = t - 0.5 * dt
    off = np.arange(k) * 2.0  # flatten the k searches into one: columns live in [2j, 2j+1]

    def quant(s: np.ndarray, c: np.ndarray) -> np.ndarray:
        idx = np.searchsorted((c + off).T.ravel(), (mid + off).T.ravel(), side="left")
        idx = idx.reshape(k, -1).T - np.arange(k) * len(c)
        idx = np.clip(idx, 0, len(c) - 1)
        return np.take_along_axis(s, idx, axis=0)

    return np.sum(dt * (quant(su, cu) - quant(sv, cv)) ** 2, axis=0)


# ----------------------------------------------------------------------- 1-D metrics
def w2(x: Any, y: Any, *, wx: Any = None, wy: Any = None) -> float:
    """Squared 2-Wasserstein distance of two 1-D samples (the OTUS "W", units²).

    .. math:: W = \\int_0^1 \\big(F_x^{-1}(t) - F_y^{-1}(t)\\big)^2\\,dt

    For unweighted samples of equal size this is ``mean((sort(x) - sort(y))**2)``.

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
    x: Any, y: Any, *, wx: Any = None, wy: Any = None, bins: int = DEFAULT_BINS,
    min_entries: int = MIN_ENTRIES,
) -> np.ndarray:
    """Bin edges shared by both samples, each bin holding ≥ ``min_entries`` events of each.

    Rule: start from ``bins`` bins at the quantiles of the pooled sample (each sample
    weighted by |w| normalised to one, so both count equally); then sweep left to right,
    merging a bin into the next until it holds at least ``min_entries`` events (raw counts)
    from *both* samples; an underfilled last bin is merged into its left neighbour. The
    outer edges are the pooled minimum and maximum. May return a single bin.
    """
    x, wx = _sample(x, wx, "truth")
    y, wy = _sample(y, wy, "prediction")
    pooled = np.concatenate([x, y])
    pw = np.concatenate([np.abs(wx) / np.abs(wx).sum(), np.abs(wy) / np.abs(wy).sum()])
    order = np.argsort(pooled, kind="stable")
    cw = np.cumsum(pw[order])
    cw /= cw[-1]
    qs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    inner = pooled[order][np.clip(np.searchsorted(cw, qs), 0, len(pooled) - 1)]
    lo, hi = pooled.min(), pooled.max()
    edges = np.unique(np.concatenate([[lo], inner, [hi]]))
    if len(edges) < 2:
        return np.array([lo - 0.5, hi + 0.5])
    nx, _ = np.histogram(x, edges)
    ny, _ = np.histogram(y, edges)
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
    elif keep[-1] != edges[-1]:
        if len(keep) > 2:
            keep[-1] = edges[-1]  # merge the underfilled tail into the last full bin
        else:
            keep.append(edges[-1])
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
    distribution give χ²_R ≈ 1. NaN when fewer than two bins can be formed.
    """
    x, wx = _sample(x, wx, "truth")
    y, wy = _sample(y, wy, "prediction")
    edges = common_bins(x, y, wx=wx, wy=wy, bins=bins) if np.ndim(bins) == 0 else np.asarray(bins)
    if len(edges) < 3:
        return float("nan")
    px, py, vx, vy = _hists(x, y, wx, wy, edges)
    var = vx + vy
    ok = var > 0
    return float(np.sum((px[ok] - py[ok]) ** 2 / var[ok]) / (ok.sum() - 1)) if ok.sum() > 1 \
        else float("nan")


def triangular(
    x: Any, y: Any, *, wx: Any = None, wy: Any = None, bins: int | np.ndarray = DEFAULT_BINS
) -> float:
    """Triangular discrimination of the normalised histograms, in [0, 1].

    .. math:: \\Delta(p, q) = \\tfrac12 \\sum_i \\frac{(p_i - q_i)^2}{p_i + q_i}

    (Topsøe 2000; used for generative HEP models, e.g. arXiv:2106.00792). Same bins as
    :func:`chi2_r`; bins with :math:`p_i + q_i \\le 0` are skipped.
    """
    x, wx = _sample(x, wx, "truth")
    y, wy = _sample(y, wy, "prediction")
    edges = common_bins(x, y, wx=wx, wy=wy, bins=bins) if np.ndim(bins) == 0 else np.asarray(bins)
    px, py, _, _ = _hists(x, y, wx, wy, edges)
    s = px + py
    ok = s > 0
    return float(0.5 * np.sum((px[ok] - py[ok]) ** 2 / s[ok]))


def all_1d(x: Any, y: Any, *, wx: Any = None, wy: Any = None,
           bins: int = DEFAULT_BINS) -> dict[str, float]:
    """The four per-observable metrics ``W``, ``chi2_r``, ``KS``, ``triangular`` at once."""
    x, wx = _sample(x, wx, "truth")
    y, wy = _sample(y, wy, "prediction")
    edges = common_bins(x, y, wx=wx, wy=wy, bins=bins)
    return {
        "W": w2(x, y, wx=wx, wy=wy),
        "chi2_r": chi2_r(x, y, wx=wx, wy=wy, bins=edges),
        "KS": ks(x, y, wx=wx, wy=wy),
        "triangular": triangular(x, y, wx=wx, wy=wy, bins=edges),
    }


# --------------------------------------------------------------------- whole events
def _events(X: Any, w: Any, name: str, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise OtusError(f"{name} must be a 2-D array [N, D], got shape {X.shape}")
    if dim is not None and X.shape[1] != dim:
        raise OtusError(f"{name} has {X.shape[1]} columns, truth has {dim}")
    w = _weights(w, len(X), f"weights of {name}")
    ok = np.all(np.isfinite(X), axis=1)
    if not ok.any():
        raise OtusError(f"{name} holds no event with finite values")
    X, w = X[ok], w[ok]
    if not w.sum() > 0:
        raise OtusError(f"{name} has a non-positive total weight ({w.sum():.4g})")
    return X, w


def sliced_w2(
    X: Any, Y: Any, *, n_projections: int = 1000, seed: int = 0, wx: Any = None,
    wy: Any = None, chunk: int = 64,
) -> float:
    """Squared sliced 2-Wasserstein distance of two event samples [N, D] (rows with NaN dropped).

    .. math:: SW_2^2(X, Y) = \\mathbb{E}_{\\theta \\sim U(S^{D-1})}\\,
              W_2^2(\\theta^\\top X, \\theta^\\top Y)

    estimated with ``n_projections`` directions drawn from ``np.random.default_rng(seed)``;
    each 1-D term is exact (weighted quantile functions, as :func:`w2`).
    """
    X, wx = _events(X, wx, "truth")
    Y, wy = _events(Y, wy, "prediction", X.shape[1])
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((X.shape[1], n_projections))
    theta /= np.linalg.norm(theta, axis=0, keepdims=True)
    vals = [
        _w2_columns(X @ theta[:, a:a + chunk], Y @ theta[:, a:a + chunk], wx, wy)
        for a in range(0, n_projections, chunk)
    ]
    return float(np.mean(np.concatenate(vals)))


def classifier_auc(
    X: Any, Y: Any, *, wx: Any = None, wy: Any = None, seed: int = 0,
    n_bootstrap: int = 100, max_events: int | None = 200_000, n_threads: int | None = None,
) -> tuple[float, float]:
    """Two-sample classifier test: ROC AUC of a classifier telling X from Y, ± its error.

    A histogram gradient-boosted classifier (scikit-learn) is fit on a random half of the
    standardised events, the classes weighted to equal total |weight|, with early stopping
    on a part of that half; the weighted AUC is measured on the other, held-out half. The
    error is the standard deviation over ``n_bootstrap`` resamplings of the held-out half.
    0.5 means the classifier cannot tell the samples apart (CaloChallenge's metric,
    arXiv:2106.05285). At most ``max_events`` events of each sample are used (a random
    subset, seeded). ``n_threads`` caps the OpenMP threads (1 avoids oversubscription on
    busy machines).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n_threads, user_api="openmp"):
        return _classifier_auc(X, Y, wx=wx, wy=wy, seed=seed, n_bootstrap=n_bootstrap,
                               max_events=max_events)


def _classifier_auc(X: Any, Y: Any, *, wx: Any, wy: Any, seed: int, n_bootstrap: int,
                    max_events: int | None) -> tuple[float, float]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

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
        raise OtusError(f"the classifier test needs ≥20 events per sample, got {len(X)} and {len(Y)}")
    F = np.concatenate([X, Y])
    lab = np.concatenate([np.zeros(len(X)), np.ones(len(Y))])
    w = np.concatenate([wx / np.abs(wx).sum(), wy / np.abs(wy).sum()]) * len(F) / 2
    mu, sd = F.mean(0), F.std(0)
    F = (F - mu) / np.where(sd > 0, sd, 1.0)
    perm = rng.permutation(len(F))
    tr, te = perm[: len(F) // 2], perm[len(F) // 2:]
    clf = HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.1, early_stopping=True, validation_fraction=0.2,
        n_iter_no_change=10, random_state=int(rng.integers(2**31)),
    )
    clf.fit(F[tr], lab[tr], sample_weight=w[tr])
    s = clf.predict_proba(F[te])[:, 1]
    lt, wt = lab[te], w[te]
    auc = float(roc_auc_score(lt, s, sample_weight=wt))
    boots = []
    for _ in range(n_bootstrap):
        b = rng.integers(0, len(te), len(te))
        if 0 < lt[b].sum() < len(b):
            boots.append(roc_auc_score(lt[b], s[b], sample_weight=wt[b]))
    err = float(np.std(boots)) if len(boots) > 1 else float("nan")
    return auc, err


def l2_uvp(pred: Any, truth: Any) -> float:
    """Unexplained variance percentage of a transport map with known truth (SPEC §8).

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


# ------------------------------------------------------------------------- per process
def compare(
    process: Any, truth_rows: Any, pred_rows: Any, level: str, *, wt: Any = None,
    wp: Any = None, bins: int = DEFAULT_BINS, observables: list[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Per-observable metrics between truth and prediction rows of one process.

    ``level`` is ``'z'`` or ``'x'``; rows are [N, Dz] or [N, Dx] (rows with NaN, i.e.
    non-passing events, are dropped per observable). Returns
    ``{observable: {"W", "chi2_r", "KS", "triangular", "mean_truth", "mean_pred"}}`` for every
    observable of :func:`otus.physics.observables.observables` (or the given subset).
    Observables constant in both samples (e.g. MET pz) are skipped.
    """
    from otus.physics.observables import observables as obs_fn
    from otus.processes import Process, get_process

    proc = process if isinstance(process, Process) else get_process(str(process))
    if level not in ("z", "x"):
        raise OtusError(f"level must be 'z' or 'x', got {level!r}")
    dim = proc.dz if level == "z" else proc.dx
    t = np.asarray(truth_rows, dtype=np.float64)
    p = np.asarray(pred_rows, dtype=np.float64)
    for name, a in (("truth", t), ("prediction", p)):
        if a.ndim != 2 or a.shape[1] != dim:
            raise OtusError(f"{name} rows have shape {a.shape}, expected [N, {dim}] for "
                            f"{proc.name} {level}")
        if len(a) == 0:
            raise OtusError(f"{name} is an empty sample")
    wt = _weights(wt, len(t), "truth weights")
    wp = _weights(wp, len(p), "prediction weights")
    ot, op = obs_fn(proc, t, level), obs_fn(proc, p, level)
    names = list(ot) if observables is None else observables
    out: dict[str, dict[str, float]] = {}
    for name in names:
        if name not in ot:
            raise OtusError(f"unknown observable {name!r} for {proc.name} {level}")
        a, b = ot[name], op[name]
        fa, fb = np.isfinite(a), np.isfinite(b)
        if not fa.any():
            raise OtusError(f"truth observable {name} holds no finite values")
        if not fb.any():
            raise OtusError(f"prediction observable {name} holds no finite values")
        if np.ptp(a[fa]) == 0 and np.ptp(b[fb]) == 0 and a[fa][0] == b[fb][0]:
            continue
        m = all_1d(a, b, wx=wt, wy=wp, bins=bins)
        m["mean_truth"] = float(np.average(a[fa], weights=wt[fa]))
        m["mean_pred"] = float(np.average(b[fb], weights=wp[fb]))
        out[name] = m
    return out
