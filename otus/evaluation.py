"""Evaluate a prediction against truth: the report behind ``otus evaluate``.

:func:`evaluate` turns two event samples into a JSON-ready report (per-observable metrics
of :mod:`otus.metrics`, global sliced Wasserstein, classifier AUC, pass rates);
:func:`markdown` renders it as a table in the style of the OTUS supplementary tables
(arXiv:2101.08944, W in GeV², χ²_R, KS), plus the triangular discrimination.

A prediction made of replicas (``otus unfold --replicas K``: a ``replica`` dataset) is
compared through its replica 0 (one complete unfolding, with its own bootstrap weights),
and each observable gains ``coverage``: the fraction of bins (≥5 truth entries) where the
mean over replicas lies within one standard deviation over replicas of the truth
(:func:`otus.metrics.coverage`; ≈ 0.68 for right uncertainties).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from otus import metrics as M
from otus.errors import OtusError
from otus.io.h5 import Events
from otus.physics.observables import observables

_HEAD = ("W", "chi2_r", "KS", "triangular")
_HEAD_MD = ("W [GeV²]", "χ²_R", "KS", "Δ_tri")


def infer_level(truth: Events, pred: Events, level: str | None = None) -> str:
    """The level to compare: ``level`` if given; else the level the prediction was made at
    when its provenance says (``otus unfold`` output → z, ``otus simulate`` → x; their files
    also carry the untouched input level); else x when both files hold x, else z."""
    has = {
        "z": (truth.z is not None, pred.z is not None),
        "x": (truth.x is not None, pred.x is not None),
    }
    if level is not None:
        if level not in has:
            raise OtusError(f"level must be 'x' or 'z', got {level!r}")
        t, p = has[level]
        if not (t and p):
            which = "truth" if not t else "prediction"
            raise OtusError(f"--level {level}: the {which} file holds no {level}")
        return level
    made = {"unfold": "z", "simulate": "x"}.get(_made_by(pred))
    if made is not None and all(has[made]):
        return made
    for lv in ("x", "z"):
        if all(has[lv]):
            return lv
    raise OtusError(
        "truth and prediction hold no common level (truth: "
        f"{'/'.join(k for k in has if has[k][0])}, prediction: "
        f"{'/'.join(k for k in has if has[k][1])})"
    )


def _made_by(ev: Events) -> str:
    settings = ev.provenance.get("settings", {}) if isinstance(ev.provenance, dict) else {}
    return str(settings.get("command", "")) if isinstance(settings, dict) else ""


def unfold_target(truth: Events, pred: Events, level: str) -> Events:
    """Truth restricted to the events an unfolder can see: when the prediction is an
    ``otus unfold`` output compared at z, only z of events whose x passes."""
    if (
        level == "z"
        and _made_by(pred) == "unfold"
        and truth.x_pass is not None
        and truth.x is not None
        and not truth.x_pass.all()
    ):
        return truth.subset(truth.x_pass)
    return truth


def rows_and_weights(ev: Events, level: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``level`` (passing events only for x) and their weights; errors when empty."""
    w = ev.weight if ev.weight is not None else np.ones(len(ev))
    if level == "z":
        if ev.z is None:
            raise OtusError(f"{name} holds no z")
        rows = ev.z
    else:
        if ev.x is None:
            raise OtusError(f"{name} holds no x")
        ok = ev.x_pass if ev.x_pass is not None else np.all(np.isfinite(ev.x), axis=1)
        rows, w = ev.x[ok], w[ok]
    if len(rows) == 0:
        raise OtusError(f"{name} holds no {'passing ' if level == 'x' else ''}events")
    bad = [i for i in range(rows.shape[1]) if not np.isfinite(rows[:, i]).any()]
    if bad:
        feats = ev.process.x_features if level == "x" else ev.process.z_features
        raise OtusError(f"{name}: column {feats[bad[0]]} holds no finite value")
    return np.asarray(rows, dtype=np.float64), np.asarray(w, dtype=np.float64)


def replica_labels(ev: Events, level: str) -> np.ndarray | None:
    """The replica index of each row :func:`rows_and_weights` returns (None without
    replicas)."""
    if ev.replica is None:
        return None
    if level == "x":
        assert ev.x is not None
        ok = ev.x_pass if ev.x_pass is not None else np.all(np.isfinite(ev.x), axis=1)
        return np.asarray(ev.replica[ok])
    return np.asarray(ev.replica)


def replica_coverage(
    process: Any,
    truth_rows: np.ndarray,
    pred_rows: np.ndarray,
    level: str,
    *,
    wt: np.ndarray,
    wp: np.ndarray,
    labels: np.ndarray,
    names: Any,
    bins: int = M.DEFAULT_BINS,
) -> dict[str, float]:
    """Per observable, the coverage of the truth by the replicas' ±1σ band (normalised
    histograms on the :func:`otus.metrics.common_bins` of truth and replica 0)."""
    ot, op = observables(process, truth_rows, level), observables(process, pred_rows, level)
    ks = np.unique(labels)
    out = {}
    for name in names:
        a, b = ot[name], op[name]
        fa = np.isfinite(a)
        first = labels == ks[0]
        edges = M.common_bins(a, b[first], wx=wt, wy=wp[first], bins=bins)
        th, _ = np.histogram(a[fa], edges, weights=wt[fa])
        counts, _ = np.histogram(a[fa][wt[fa] != 0], edges)
        mean, std = M.replica_band(
            [b[labels == k] for k in ks], [wp[labels == k] for k in ks], edges
        )
        out[name] = M.coverage(th / wt[fa].sum(), mean, std, counts=counts)
    return out


def auc_features(
    process: Any, truth_rows: np.ndarray, pred_rows: np.ndarray, level: str
) -> tuple[np.ndarray, np.ndarray]:
    """Classifier features of both samples: every physics observable (the stored
    four-momenta, pT, η, masses), so that the classifier sees mass peaks directly; columns
    constant in both samples (e.g. MET pz) are left out."""
    ot, op = observables(process, truth_rows, level), observables(process, pred_rows, level)
    keep = []
    for k in ot:
        both = np.concatenate([ot[k], op[k]])
        both = both[np.isfinite(both)]
        if len(both) and np.ptp(both) > 0:
            keep.append(k)
    return (np.column_stack([ot[k] for k in keep]), np.column_stack([op[k] for k in keep]))


def evaluate(
    truth: Events,
    pred: Events,
    *,
    level: str | None = None,
    use_weights: bool = True,
    seed: int = 0,
    n_projections: int = 1000,
    auc: bool = True,
    auc_max_events: int | None = 200_000,
    bins: int = M.DEFAULT_BINS,
) -> dict[str, Any]:
    """Compare ``pred`` with ``truth`` (one process) and return the report dictionary.

    Keys: ``process``, ``level``, ``n_truth``/``n_pred`` (events compared), ``pass_rate``
    (x only, weighted), ``global`` (``sliced_w2``, ``classifier_auc``,
    ``classifier_auc_err``) and ``observables`` (:func:`otus.metrics.compare`). A
    prediction with replicas adds ``replicas`` (K) and a ``coverage`` per observable; its
    other metrics use replica 0.
    """
    if truth.process.name != pred.process.name:
        raise OtusError(
            f"truth holds {truth.process.name} events but prediction holds "
            f"{pred.process.name} events"
        )
    proc = truth.process
    lv = infer_level(truth, pred, level)
    selected = lv == "z" and _made_by(pred) == "unfold" and truth.x_pass is not None
    truth = unfold_target(truth, pred, lv)
    t, wt = rows_and_weights(truth, lv, "truth")
    every = pred
    labels = replica_labels(pred, lv)
    if pred.replica is not None:
        pred = pred.subset(pred.replica == pred.replica.min())
    p, wp = rows_and_weights(pred, lv, "prediction")
    if not use_weights:
        wt, wp = np.ones(len(t)), np.ones(len(p))
    rep: dict[str, Any] = {
        "process": proc.name,
        "level": lv,
        "n_truth": len(t),
        "n_pred": len(p),
        "weighted": bool(use_weights and (np.ptp(wt) > 0 or np.ptp(wp) > 0)),
        "n_projections": n_projections,
        "truth_selection": "z of events whose x passes (the unfolder's target)"
        if selected
        else "all events"
        if lv == "z"
        else "passing events",
    }
    if lv == "x":
        rates = {}
        for name, ev in (("truth", truth), ("prediction", pred)):
            ok = np.asarray(ev.x_pass, dtype=bool)
            w = np.ones(len(ok)) if ev.weight is None or not use_weights else ev.weight
            rates[name] = float(np.sum(w[ok]) / np.sum(w))
        rep["pass_rate"] = rates
    glob: dict[str, float | None] = {
        "sliced_w2": M.sliced_w2(t, p, wx=wt, wy=wp, n_projections=n_projections, seed=seed),
    }
    if auc:
        ft, fp = auc_features(proc, t, p, lv)
        a, e = M.classifier_auc(ft, fp, wx=wt, wy=wp, seed=seed, max_events=auc_max_events)
        glob["classifier_auc"], glob["classifier_auc_err"] = a, e
    rep["global"] = glob
    rep["observables"] = M.compare(proc, t, p, lv, wt=wt, wp=wp, bins=bins)
    if labels is not None:
        pa, wpa = rows_and_weights(every, lv, "prediction")
        if not use_weights:
            wpa = np.ones(len(pa))
        rep["replicas"] = len(np.unique(labels))
        cov = replica_coverage(
            proc, t, pa, lv, wt=wt, wp=wpa, labels=labels, names=rep["observables"], bins=bins
        )
        for name, c in cov.items():
            rep["observables"][name]["coverage"] = c
    return rep


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, int):
        return str(v)
    a = abs(v)
    if 1e3 <= a < 1e6:
        return f"{v:.0f}"
    return f"{v:.3g}" if 1e-3 <= a < 1e3 or a == 0 else f"{v:.2e}"


def markdown(report: dict[str, Any], *, title: str | None = None) -> str:
    """A Markdown rendering of :func:`evaluate`'s report: header lines and a metrics table."""
    lv = report["level"]
    lines = [f"## {title or 'otus evaluate'}: {report['process']}, level {lv}", ""]
    lines.append(
        f"- events compared: truth {report['n_truth']}, prediction {report['n_pred']}"
        f"{' (weighted)' if report.get('weighted') else ''}; truth: "
        f"{report.get('truth_selection', 'all events')}"
    )
    if "pass_rate" in report:
        pr = report["pass_rate"]
        lines.append(f"- pass rate: truth {pr['truth']:.3f}, prediction {pr['prediction']:.3f}")
    g = report["global"]
    lines.append(
        f"- sliced W2² ({report.get('n_projections', 1000)} slices, raw GeV features): "
        f"{_fmt(g['sliced_w2'])}"
    )
    if g.get("classifier_auc") is not None:
        lines.append(
            f"- classifier AUC (0.5 = indistinguishable): "
            f"{g['classifier_auc']:.4f} ± {g['classifier_auc_err']:.4f}"
        )
    k = report.get("replicas")
    if k:
        lines.append(
            f"- prediction: {k} replicas; metrics of replica 0, coverage of the truth by the "
            "replicas' mean ± σ (fraction of bins; ≈0.68 for right uncertainties)"
        )
    head, head_md = ((*_HEAD, "coverage"), (*_HEAD_MD, "coverage")) if k else (_HEAD, _HEAD_MD)
    lines += [
        "",
        "| observable | mean truth | mean pred | " + " | ".join(head_md) + " |",
        "|---|" + "---|" * (2 + len(head)),
    ]
    for name, m in report["observables"].items():
        cells = [_fmt(m.get("mean_truth")), _fmt(m.get("mean_pred"))]
        cells += [_fmt(m.get(c)) for c in head]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "W: squared 1-D Wasserstein distance (GeV²; unitless for η); χ²_R over "
        "common bins with ≥5 events of each sample; KS: Kolmogorov-Smirnov statistic; "
        "Δ_tri: triangular discrimination (0 = equal, 1 = disjoint).",
        "",
    ]
    return "\n".join(lines)


def json_ready(obj: Any) -> Any:
    """Replace non-finite floats by None and numpy scalars by Python ones (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
