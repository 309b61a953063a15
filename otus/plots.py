"""Plots for evaluation: histograms with ratio panels, transport maps, decoder spread.

Every plotting function takes matplotlib ``Axes`` and returns them; only the CLI saves
files. The HEP look comes from mplhep's CMS style when mplhep is installed and from
:func:`hep_style` otherwise. Statistical bands are ±1σ with σ² = Σw² per bin, or, for a
prediction made of replicas (``otus unfold --replicas``), the standard deviation over them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TRUTH_COLOR = "black"
PRED_COLOR = "#d62728"


def hep_style() -> dict[str, Any]:
    """rcParams for a HEP look (inward ticks on all sides, no grid, sans-serif, large labels)."""
    try:
        import mplhep

        style = mplhep.style.CMS
        return dict(style) if isinstance(style, dict) else {}
    except ImportError:
        pass
    return {
        "font.size": 12,
        "axes.labelsize": 13,
        "legend.fontsize": 11,
        "legend.frameon": False,
        "xtick.direction": "in",
        "ytick.direction": "in",
        "xtick.top": True,
        "ytick.right": True,
        "xtick.minor.visible": True,
        "ytick.minor.visible": True,
        "xtick.major.size": 6,
        "ytick.major.size": 6,
        "xtick.minor.size": 3,
        "ytick.minor.size": 3,
        "axes.linewidth": 1.0,
        "figure.dpi": 100,
        "savefig.dpi": 120,
    }


def ratio_axes(fig: Any) -> tuple[Any, Any]:
    """Main and ratio panels (3:1, shared x) on ``fig``."""
    gs = fig.add_gridspec(
        2, 1, height_ratios=(3, 1), hspace=0.05, left=0.16, right=0.96, bottom=0.1, top=0.93
    )
    ax = fig.add_subplot(gs[0])
    axr = fig.add_subplot(gs[1], sharex=ax)
    ax.tick_params(labelbottom=False)
    return ax, axr


def _finite(a: Any, w: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    w = np.ones_like(a) if w is None else np.asarray(w, dtype=np.float64).reshape(-1)
    ok = np.isfinite(a)
    return a[ok], w[ok]


def auto_range(*samples: Any, q: float = 0.002) -> tuple[float, float]:
    """A plotting range holding all but a fraction ``q`` of each sample (tails cut)."""
    lo, hi = np.inf, -np.inf
    for s in samples:
        s = np.asarray(s, dtype=np.float64)
        s = s[np.isfinite(s)]
        if len(s):
            lo = min(lo, float(np.quantile(s, q / 2)))
            hi = max(hi, float(np.quantile(s, 1 - q / 2)))
    if not np.isfinite(lo) or not hi > lo:
        lo, hi = (lo - 0.5, lo + 0.5) if np.isfinite(lo) else (0.0, 1.0)
    return lo, hi


def _density(
    a: np.ndarray, w: np.ndarray, edges: np.ndarray, total: float
) -> tuple[np.ndarray, np.ndarray]:
    h, _ = np.histogram(a, edges, weights=w)
    v, _ = np.histogram(a, edges, weights=w**2)
    width = np.diff(edges)
    return h / total / width, np.sqrt(v) / total / width


def hist_ratio(
    ax_main: Any,
    ax_ratio: Any,
    truth: Any,
    pred: Any,
    *,
    wt: Any = None,
    wp: Any = None,
    bins: int | np.ndarray = 50,
    range: tuple[float, float] | None = None,
    label: str = "",
    truth_label: str = "truth",
    pred_label: str = "prediction",
    logy: bool = False,
    replica: Any = None,
) -> tuple[Any, Any]:
    """Normalised histograms of truth and prediction and their ratio prediction/truth.

    Both histograms are normalised to unit area over *all* finite entries (so events
    outside ``range`` lower the curves instead of being renormalised away). Shaded bands are
    the statistical ±1σ of each sample; the ratio band combines both in quadrature. With
    ``replica`` (the replica index of each ``pred`` entry) the prediction is the mean of the
    replicas' histograms and its band their standard deviation
    (:func:`otus.metrics.replica_band`).
    """
    t, wt = _finite(truth, wt)
    labels = None
    if replica is not None:
        labels = np.asarray(replica).reshape(-1)[np.isfinite(np.asarray(pred, float).reshape(-1))]
    p, wp = _finite(pred, wp)
    edges = (
        np.asarray(bins)
        if np.ndim(bins)
        else np.linspace(*(range or auto_range(t, p)), int(bins) + 1)
    )
    ht, et = _density(t, wt, edges, wt.sum())
    hp, ep = _density(p, wp, edges, wp.sum())
    if labels is not None:
        from otus.metrics import replica_band

        ks = np.unique(labels)
        hp, ep = replica_band([p[labels == k] for k in ks], [wp[labels == k] for k in ks], edges)
        hp, ep = hp / np.diff(edges), ep / np.diff(edges)
        pred_label = f"{pred_label}, mean ± σ of {len(ks)} replicas"
    for h, e, c, lab, fill in (
        (ht, et, TRUTH_COLOR, truth_label, False),
        (hp, ep, PRED_COLOR, pred_label, True),
    ):
        ax_main.stairs(h, edges, color=c, lw=1.5, label=lab)
        ax_main.stairs(
            h + e, edges, baseline=h - e, fill=True, color=c, alpha=0.25 if fill else 0.15, lw=0
        )
    ax_main.set_ylabel("normalised entries / bin width")
    ax_main.legend(loc="best")
    if logy:
        ax_main.set_yscale("log")
    else:
        ax_main.set_ylim(bottom=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(ht > 0, hp / ht, np.nan)
        re = np.where(
            ht > 0, r * np.sqrt((et / ht) ** 2 + (ep / np.where(hp > 0, hp, 1)) ** 2), np.nan
        )
        rt = np.where(ht > 0, et / ht, np.nan)
    ax_ratio.stairs(1 + rt, edges, baseline=1 - rt, fill=True, color=TRUTH_COLOR, alpha=0.15, lw=0)
    ax_ratio.stairs(r, edges, color=PRED_COLOR, lw=1.5)
    ax_ratio.stairs(r + re, edges, baseline=r - re, fill=True, color=PRED_COLOR, alpha=0.25, lw=0)
    ax_ratio.axhline(1.0, color=TRUTH_COLOR, lw=0.8, ls="--")
    ax_ratio.set_ylim(0.5, 1.5)
    ax_ratio.set_ylabel("pred / truth")
    ax_ratio.set_xlabel(label)
    ax_ratio.set_xlim(edges[0], edges[-1])
    return ax_main, ax_ratio


def mass_peak(
    ax_main: Any,
    ax_ratio: Any,
    truth: Any,
    pred: Any,
    *,
    wt: Any = None,
    wp: Any = None,
    label: str = "m [GeV]",
    window: float = 0.6,
    bins: int = 60,
    **kw: Any,
) -> tuple[Any, Any]:
    """:func:`hist_ratio` zoomed on the peak: the narrowest interval holding a fraction
    ``window`` of the truth, widened by a factor 2.5 around its centre."""
    t, _ = _finite(truth, wt)
    s = np.sort(t)
    k = max(1, int(window * len(s)))
    i = int(np.argmin(s[k - 1 :] - s[: len(s) - k + 1])) if len(s) >= k else 0
    lo, hi = s[i], s[min(i + k - 1, len(s) - 1)]
    c, h = 0.5 * (lo + hi), 1.25 * max(hi - lo, 1e-3)
    return hist_ratio(
        ax_main,
        ax_ratio,
        truth,
        pred,
        wt=wt,
        wp=wp,
        bins=bins,
        range=(max(c - h, 0.0) if lo >= 0 else c - h, c + h),
        label=label,
        **kw,
    )


def transport_2d(
    ax: Any,
    a: Any,
    b: Any,
    *,
    weights: Any = None,
    bins: int = 80,
    xlabel: str = "",
    ylabel: str = "",
    diagonal: bool = True,
    range: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> Any:
    """2-D histogram (log colour scale) of paired values ``a`` → ``b``, e.g. z vs x or
    z vs D(z) for one feature; the dashed diagonal marks the identity map."""
    from matplotlib.colors import LogNorm

    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    w = np.ones_like(a) if weights is None else np.asarray(weights, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b, w = a[ok], b[ok], w[ok]
    if range is None:
        lo, hi = auto_range(a, b)
        range = ((lo, hi), (lo, hi))
    h, xe, ye = np.histogram2d(a, b, bins=bins, range=range, weights=w)
    h = np.where(h > 0, h, np.nan)
    vmax = np.nanmax(h) if np.isfinite(h).any() else 1.0
    vmin = max(np.nanmin(h) if np.isfinite(h).any() else 1.0, vmax * 1e-4)
    m = ax.pcolormesh(
        xe, ye, h.T, norm=LogNorm(vmin=vmin, vmax=vmax), cmap="viridis", rasterized=True
    )
    ax.figure.colorbar(m, ax=ax, label="events")
    if diagonal:
        lo = max(xe[0], ye[0])
        hi = min(xe[-1], ye[-1])
        ax.plot([lo, hi], [lo, hi], color="white", lw=1.0, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax


def spread(
    ax: Any,
    samples: Any,
    *,
    truth: Any = None,
    bins: int = 40,
    label: str = "",
    max_curves: int = 6,
) -> Any:
    """The decoder's spread for fixed z: for each of several fixed inputs, the histogram of
    repeated stochastic outputs of one observable.

    ``samples`` is [n_inputs, repeats]; ``truth`` ([n_inputs], optional) marks the paired
    true value of each input with a dotted line of the same colour.
    """
    s = np.atleast_2d(np.asarray(samples, dtype=np.float64))[:max_curves]
    lo, hi = auto_range(s.ravel(), q=0.0)
    if truth is not None:
        tv = np.asarray(truth, dtype=np.float64).reshape(-1)[: len(s)]
        lo, hi = min(lo, np.nanmin(tv)), max(hi, np.nanmax(tv))
    pad = 0.05 * (hi - lo)
    edges = np.linspace(lo - pad, hi + pad, bins + 1)
    colors = [f"C{i}" for i in np.arange(len(s)) % 10]
    for i, row in enumerate(s):
        row = row[np.isfinite(row)]
        sd = float(np.std(row)) if len(row) else float("nan")
        ax.hist(
            row, edges, histtype="step", color=colors[i], lw=1.4, label=f"input {i}: σ = {sd:.3g}"
        )
        if truth is not None:
            ax.axvline(tv[i], color=colors[i], ls=":", lw=1.2)
    ax.set_xlabel(label)
    ax.set_ylabel("repeats / bin")
    ax.legend(loc="best", fontsize="small")
    return ax
