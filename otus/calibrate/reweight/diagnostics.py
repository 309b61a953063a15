r"""Diagnostics of a reweighting: AUC before/after, weighted KS and χ²_R per feature, the
effective sample size, and weighted ratio plots.

The after-AUC comes from a *fresh* classifier (:func:`otus.metrics.classifier_auc`, trained
on one half and evaluated on the other) between data and the reweighted MC: 0.5 means the
reweighted MC cannot be told from data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from otus import metrics

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def effective_sample_size(w: np.ndarray) -> float:
    r"""Kish's effective sample size :math:`(\sum w)^2 / \sum w^2`."""
    w = np.asarray(w, np.float64)
    den = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / den if den > 0 else 0.0


def feature_table(
    x_mc: np.ndarray,
    x_data: np.ndarray,
    *,
    w_before: np.ndarray,
    w_after: np.ndarray,
    w_data: np.ndarray,
    names: Sequence[str],
) -> dict[str, dict[str, float]]:
    """Weighted KS and χ²_R between data and MC, before and after reweighting, per feature."""
    out: dict[str, dict[str, float]] = {}
    for i, n in enumerate(names):
        row: dict[str, float] = {}
        for tag, w in (("before", w_before), ("after", w_after)):
            row[f"ks_{tag}"] = float(metrics.ks(x_data[:, i], x_mc[:, i], wx=w_data, wy=w))
            row[f"chi2_r_{tag}"] = float(metrics.chi2_r(x_data[:, i], x_mc[:, i], wx=w_data, wy=w))
        out[n] = row
    return out


def auc_before_after(
    x_mc: np.ndarray,
    x_data: np.ndarray,
    *,
    w_before: np.ndarray,
    w_after: np.ndarray,
    w_data: np.ndarray,
    seed: int = 0,
    n_threads: int | None = None,
) -> dict[str, float]:
    """Classifier AUC (and its uncertainty) data vs MC, before and after, fresh classifiers."""
    a0, e0 = metrics.classifier_auc(
        x_data, x_mc, wx=w_data, wy=w_before, seed=seed, n_threads=n_threads
    )
    a1, e1 = metrics.classifier_auc(
        x_data, x_mc, wx=w_data, wy=w_after, seed=seed, n_threads=n_threads
    )
    return {
        "auc_before": float(a0),
        "auc_before_err": float(e0),
        "auc_after": float(a1),
        "auc_after_err": float(e1),
    }


def diagnose(
    x_mc: np.ndarray,
    x_data: np.ndarray,
    *,
    w_before: np.ndarray,
    w_after: np.ndarray,
    w_data: np.ndarray,
    names: Sequence[str],
    seed: int = 0,
    auc: bool = True,
    n_threads: int | None = None,
) -> dict[str, Any]:
    """All diagnostics of one region as a plain dict (JSON-ready)."""
    rep: dict[str, Any] = {
        "n_mc": len(x_mc),
        "n_data": len(x_data),
        "ess_before": effective_sample_size(w_before),
        "ess_after": effective_sample_size(w_after),
        "features": feature_table(
            x_mc, x_data, w_before=w_before, w_after=w_after, w_data=w_data, names=names
        ),
    }
    if auc:
        rep.update(
            auc_before_after(
                x_mc,
                x_data,
                w_before=w_before,
                w_after=w_after,
                w_data=w_data,
                seed=seed,
                n_threads=n_threads,
            )
        )
    return rep


def to_markdown(rep: dict[str, Any], *, title: str = "") -> str:
    """A Markdown summary of :func:`diagnose`'s report."""
    lines = [f"### {title}" if title else "", ""]
    lines.append(
        f"MC events {rep['n_mc']}, data events {rep['n_data']}; effective MC sample "
        f"size {rep['ess_before']:.0f} before, {rep['ess_after']:.0f} after."
    )
    if "auc_after" in rep:
        lines.append(
            f"Classifier AUC data vs MC: before {rep['auc_before']:.4f} "
            f"± {rep['auc_before_err']:.4f}, after {rep['auc_after']:.4f} "
            f"± {rep['auc_after_err']:.4f}."
        )
    lines += [
        "",
        "| feature | KS before | KS after | χ²_R before | χ²_R after |",
        "|---|---|---|---|---|",
    ]
    for n, r in rep["features"].items():
        lines.append(
            f"| {n} | {r['ks_before']:.4f} | {r['ks_after']:.4f} | "
            f"{r['chi2_r_before']:.2f} | {r['chi2_r_after']:.2f} |"
        )
    return "\n".join(lines).strip() + "\n"


def ratio_plot(
    ax_main: Axes,
    ax_ratio: Axes,
    mc: np.ndarray,
    data: np.ndarray,
    *,
    w_before: np.ndarray,
    w_after: np.ndarray,
    w_data: np.ndarray,
    bins: int = 40,
    label: str = "",
) -> Axes:
    """Weighted histograms of data, MC and reweighted MC, and their ratio to data.

    The data band is the weighted Poisson error :math:`\\sqrt{\\sum w^2}` per bin.
    Returns ``ax_main``.
    """
    lo, hi = np.quantile(np.concatenate([mc, data]), [0.001, 0.999])
    edges = np.linspace(lo, hi, bins + 1)
    width = np.diff(edges)
    hd, _ = np.histogram(data, edges, weights=w_data)
    ed = np.sqrt(np.histogram(data, edges, weights=np.square(w_data))[0])
    norm_d = float(np.sum(hd * width)) or 1.0
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax_main.errorbar(centres, hd / norm_d, ed / norm_d, fmt="ko", ms=3, label="data")
    with np.errstate(divide="ignore", invalid="ignore"):
        for w, style, name in ((w_before, "C0", "MC"), (w_after, "C3", "MC reweighted")):
            h, _ = np.histogram(mc, edges, weights=w)
            h = h / (float(np.sum(h * width)) or 1.0)
            ax_main.stairs(h, edges, color=style, label=name)
            ax_ratio.stairs(np.where(hd > 0, h / (hd / norm_d), np.nan), edges, color=style)
        rel = np.where(hd > 0, ed / hd, np.nan)
    ax_ratio.fill_between(
        edges,
        np.append(1 - rel, np.nan),
        np.append(1 + rel, np.nan),
        step="post",
        color="0.8",
        label="data stat.",
    )
    ax_ratio.axhline(1.0, color="k", lw=0.8)
    ax_ratio.set_ylim(0.8, 1.2)
    ax_ratio.set_ylabel("MC / data")
    ax_ratio.set_xlabel(label)
    ax_main.set_ylabel("normalised entries / bin width")
    ax_main.legend(frameon=False)
    return ax_main
