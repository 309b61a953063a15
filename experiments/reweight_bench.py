"""Closure benchmark of the classifier reweighter against hep_ml's GBReweighter.

(a) Analytic cases (the true density ratio is known): a correlated, shifted 4-D Gaussian
    and a 4-D two-component Gaussian mixture, each reweighted from a wider/unit Gaussian MC.
    Fit on a training sample, measured on an independent test sample of the same size.
(b) Physics: "data" = zee from ``otus generate`` with 10% worse resolution and a 1% energy
    scale (``--resolution-scale 1.1 --energy-scale 1.01``), MC = nominal; fit in the Z-peak
    CR (80 < m_ee < 100) on the first 70% of the events, checked on the CR of the last 30%
    and on the off-peak SR (m_ee < 80 or m_ee > 100) of all events (never seen in training).

Metrics (all on events the reweighter never saw): the mean relative weight error
E_MC|ŵ/w − 1| (both normalised to mean 1 over the test MC) where the truth is analytic; the
classifier AUC data vs (reweighted) MC from a fresh gradient-boosted classifier
(:func:`otus.metrics.classifier_auc`, held-out half, ± bootstrap error); the largest weighted
χ²_R and KS over the features; the effective sample size per event.

Run: ``python -m experiments.reweight_bench [--seeds 0,1,2] [--quick]``. Each seed is a row.
Writes a section of ``experiments/results/reweight.md`` per sample size and setting (a run
with non-default ``--k-folds`` etc. gets its own section: a variant). hep_ml is needed for
the GBReweighter rows only (``pip install hep_ml``; skipped with a message if missing).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import multivariate_normal

from experiments.common import (
    command,
    header,
    machine,
    now,
    results_path,
    table,
    work_dir,
    write_section,
)
from otus import metrics
from otus.calibrate.features import classifier_features, classifier_matrix
from otus.calibrate.regions import region_mask
from otus.calibrate.reweight.config import LOSS_NAMES, ReweightConfig
from otus.calibrate.reweight.diagnostics import effective_sample_size
from otus.calibrate.reweight.fit import fit_reweighter
from otus.io.h5 import read_events
from otus.processes import ZEE

CHI2_BINS = 50  # otus.metrics.chi2_r's default binning
CR, SR = "80 < m_ee < 100", "m_ee < 80 or m_ee > 100"


# ----------------------------------------------------------------------------- samples
def gaussian(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, Any]:
    """MC N(0, I4); data N(mu, S) with shifts, a wider and a narrower axis, a correlation."""
    mu = np.array([0.3, -0.2, 0.1, 0.0])
    s = np.diag([1.1, 0.9, 1.0, 1.2])
    s[0, 1] = s[1, 0] = 0.3
    mc_d, data_d = multivariate_normal(np.zeros(4), np.eye(4)), multivariate_normal(mu, s)
    return (
        mc_d.rvs(n, random_state=rng),
        data_d.rvs(n, random_state=rng),
        lambda x: np.exp(data_d.logpdf(x) - mc_d.logpdf(x)),
    )


def mixture(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, Any]:
    """MC N(0, 1.3² I4); data ½N(m, 0.6 I) + ½N(−m, 0.6 I) with m = (1, 1, 0.5, 0)."""
    m = np.array([1.0, 1.0, 0.5, 0.0])
    mc_d = multivariate_normal(np.zeros(4), 1.69 * np.eye(4))
    comps = [multivariate_normal(m, 0.6 * np.eye(4)), multivariate_normal(-m, 0.6 * np.eye(4))]
    pick = rng.random(n) < 0.5
    data = np.where(
        pick[:, None], comps[0].rvs(n, random_state=rng), comps[1].rvs(n, random_state=rng)
    )

    def ratio(x: np.ndarray) -> np.ndarray:
        return 0.5 * (comps[0].pdf(x) + comps[1].pdf(x)) / mc_d.pdf(x)

    return mc_d.rvs(n, random_state=rng), data, ratio


def zee_samples(workdir: Path, n: int, *, regenerate: bool) -> tuple[Path, Path]:
    """Generate (or reuse) the nominal MC and the modified-detector "data" zee samples."""
    from otus.generate import generate

    mc = workdir / f"zee_mc_n{n}_s11"
    data = workdir / f"zee_data_n{n}_s12_r1.1_e1.01"
    for d, seed, kw in ((mc, 11, {}), (data, 12, {"resolution_scale": 1.1, "energy_scale": 1.01})):
        if regenerate or not (d / "events.h5").is_file():
            print(f"generating {d} ...", flush=True)
            generate("zee", n, seed=seed, out_dir=d, progress=False, **kw)
    return mc / "events.h5", data / "events.h5"


# ----------------------------------------------------------------------------- methods
def otus_method(cfg: ReweightConfig):
    def fit(xm: np.ndarray, wm: np.ndarray, xd: np.ndarray, wd: np.ndarray):
        f = fit_reweighter(xm, wm, xd, wd, config=cfg)
        info = {"clipped": f.clip_report.n_clipped, "overlap_ok": f.overlap["ok"]}
        return (lambda x, w: w * f.multiplier(x)[0]), info

    return fit


def gb_method(seed: int):
    try:
        from hep_ml.reweight import GBReweighter
    except ImportError:
        return None

    def fit(xm: np.ndarray, wm: np.ndarray, xd: np.ndarray, wd: np.ndarray):
        # the settings of hep_ml's own demo notebook (demo_reweighting.ipynb)
        gb = GBReweighter(
            n_estimators=50,
            learning_rate=0.1,
            max_depth=3,
            min_samples_leaf=1000,
            gb_args={"subsample": 0.4, "random_state": seed},
        )
        gb.fit(xm, xd, original_weight=wm, target_weight=wd)
        return (lambda x, w: gb.predict_weights(x, original_weight=w)), {}

    return fit


# ----------------------------------------------------------------------------- metrics
def closure(
    xm: np.ndarray,
    wm: np.ndarray,
    xd: np.ndarray,
    wd: np.ndarray,
    *,
    names: list[str],
    seed: int,
    true_w: np.ndarray | None = None,
) -> dict[str, Any]:
    """AUC, max χ²_R / KS over features, ESS/N, and the weight error against the truth."""
    auc, err = metrics.classifier_auc(xd, xm, wx=wd, wy=wm, seed=seed, n_threads=1)
    chi = {n: metrics.chi2_r(xd[:, i], xm[:, i], wx=wd, wy=wm) for i, n in enumerate(names)}
    ks = {n: metrics.ks(xd[:, i], xm[:, i], wx=wd, wy=wm) for i, n in enumerate(names)}
    out = {
        "auc": auc,
        "auc_err": err,
        "chi2_r": chi,
        "ks": ks,
        "chi2_r_max": max(chi.values()),
        "ks_max": max(ks.values()),
        "ess_frac": effective_sample_size(wm) / len(wm),
    }
    if true_w is not None:
        # E_data|ŵ/w − 1| = Σ_MC |ŵ − w| / Σ_MC w: the relative error where the data live;
        # E_MC|ŵ/w − 1| also counts MC tails where the true ratio → 0 (mixture case).
        a, t = wm / wm.mean(), true_w / true_w.mean()
        out["rel_err"] = float(np.sum(np.abs(a - t)) / np.sum(t))
        out["rel_err_mc"] = float(np.mean(np.abs(a / t - 1)))
    return out


def weight_error(log_w: np.ndarray, log_true: np.ndarray) -> float:
    """E_data|ŵ/w − 1| from log-weights, both normalised to mean 1 over the test MC (the
    ``rel_err`` of :func:`closure`)."""
    a, t = np.exp(log_w - log_w.max()), np.exp(log_true - log_true.max())
    a, t = a / a.mean(), t / t.mean()
    return float(np.sum(np.abs(a - t)) / np.sum(t))


def run_analytic(name: str, maker, n: int, methods: dict[str, Any], seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    xm, xd, ratio = maker(n, rng)
    tm, td, _ = maker(n, rng)  # independent test sample
    ones = np.ones(n)
    true_w = ratio(tm)
    names = [f"x{i}" for i in range(xm.shape[1])]
    rows: dict[str, Any] = {
        "before": closure(tm, ones, td, ones, names=names, seed=seed),
        "truth": closure(tm, true_w, td, ones, names=names, seed=seed),
    }
    for label, meth in methods.items():
        t0 = time.perf_counter()
        apply, info = meth(xm, ones, xd, ones)
        w = apply(tm, ones)
        rows[label] = {
            **closure(tm, w, td, ones, names=names, seed=seed, true_w=true_w),
            "seconds": time.perf_counter() - t0,
            **info,
        }
        print(f"  {name} {label}: {_brief(rows[label])}", flush=True)
    return {"n_train": n, "n_test": n, "rows": rows}


CASES = {
    "gaussian": ("Gaussian, 4-D shifted/correlated", gaussian),
    "mixture": ("Gaussian mixture, 4-D", mixture),
}


def run_physics(
    mc_path: Path,
    data_path: Path,
    methods: dict[str, Any],
    seed: int,
    fit_features: list[str] | None = None,
) -> dict[str, Any]:
    """``fit_features``: the reweighters' inputs (default: the evaluation features)."""
    mc, data = read_events(mc_path, "zee"), read_events(data_path, "zee")
    names = list(classifier_features(ZEE))
    fit_names = list(fit_features) if fit_features else names
    res: dict[str, Any] = {
        "mc": str(mc_path),
        "data": str(data_path),
        "features": names,
        "fit_features": fit_names,
    }
    split = {}
    for tag, ev in (("mc", mc), ("data", data)):
        n = len(ev)
        train = np.arange(n) < int(0.7 * n)
        cr = region_mask(CR, ZEE, ev.x, ev.x_pass)
        sr = region_mask(SR, ZEE, ev.x, ev.x_pass)
        split[tag] = {"train": cr & train, "cr_test": cr & ~train, "sr": sr}
        res[f"n_{tag}"] = {k: int(v.sum()) for k, v in split[tag].items()}
    feats = {
        t: classifier_matrix(ZEE, np.where(ev.x_pass[:, None], ev.x, 0.0), names)
        for t, ev in (("mc", mc), ("data", data))
    }
    fit_feats = {
        t: classifier_matrix(ZEE, np.where(ev.x_pass[:, None], ev.x, 0.0), fit_names)
        for t, ev in (("mc", mc), ("data", data))
    }

    def fit_x(tag: str, part: str) -> np.ndarray:
        return fit_feats[tag][split[tag][part]]

    wts = {"mc": mc.weight, "data": data.weight}

    def sub(tag: str, part: str) -> tuple[np.ndarray, np.ndarray]:
        m = split[tag][part]
        return feats[tag][m], wts[tag][m]

    for region in ("cr_test", "sr"):
        xm, wm = sub("mc", region)
        xd, wd = sub("data", region)
        res[region] = {"before": closure(xm, wm, xd, wd, names=names, seed=seed)}
    _, wm_tr = sub("mc", "train")
    _, wd_tr = sub("data", "train")
    for label, meth in methods.items():
        t0 = time.perf_counter()
        apply, info = meth(fit_x("mc", "train"), wm_tr, fit_x("data", "train"), wd_tr)
        for region in ("cr_test", "sr"):
            xm, wm = sub("mc", region)
            xd, wd = sub("data", region)
            w = apply(fit_x("mc", region), wm)
            res[region][label] = {
                **closure(xm, w, xd, wd, names=names, seed=seed),
                **info,
                "yield_ratio": float(w.sum() / wd.sum()),
            }
            print(f"  zee {region} {label}: {_brief(res[region][label])}", flush=True)
        res[f"seconds_{label}"] = time.perf_counter() - t0
    return res


def _brief(r: dict[str, Any]) -> str:
    s = f"AUC {r['auc']:.4f}±{r['auc_err']:.4f} χ²_R max {r['chi2_r_max']:.2f} KS max {r['ks_max']:.4f}"
    return s + (f" rel.err {100 * r['rel_err']:.2f}%" if "rel_err" in r else "")


# ----------------------------------------------------------------------------- report
def compare(a: dict[str, Any], b: dict[str, Any]) -> tuple[str, str]:
    """otus (a) vs GBReweighter (b) on one row: the AUC distance from 0.5 against its error
    (the two errors added in quadrature, conservative: both use the same data events), and
    the largest χ²_R against the statistical scatter of a difference of two χ²_R; each
    'better', 'worse' or 'equal' (a difference within 2σ)."""
    d = abs(a["auc"] - 0.5) - abs(b["auc"] - 0.5)
    sig = float(np.hypot(a["auc_err"], b["auc_err"]))
    auc = "better" if d < -2 * sig else "worse" if d > 2 * sig else "equal"
    dc = a["chi2_r_max"] - b["chi2_r_max"]
    # χ²_R of one histogram of n bins scatters by √(2/(n−1)) when the shapes agree
    sc = float(np.sqrt(2.0) * np.sqrt(2.0 / (CHI2_BINS - 1)))
    chi = "better" if dc < -2 * sc else "worse" if dc > 2 * sc else "equal"
    return auc, chi


def variant(cfg: dict[str, Any], fit_features: list[str] | None = None) -> str:
    """The settings of a run that differ from today's defaults ('defaults' when none)."""
    ref = {k: v for k, v in ReweightConfig().__dict__.items() if k != "seed"}
    diff = [
        f"{k}={','.join(map(str, v)) if isinstance(v, list | tuple) else v}"
        for k, v in cfg.items()
        if k in ref and list(np.atleast_1d(v)) != list(np.atleast_1d(ref[k]))
    ]
    if fit_features:
        diff.append(f"fit_features={','.join(fit_features)}")
    return ", ".join(diff) or "defaults"


def _pct(v: float) -> str:
    return f"{100 * v:.2f}%"


def analytic_table(runs: list[dict[str, Any]]) -> list[str]:
    """One row per (case, seed), then the mean over seeds of each case with several."""
    rows = []
    for case in dict.fromkeys(r["case"] for r in runs):
        mine = [r for r in runs if r["case"] == case]
        for r in mine:
            o, t, gb = r["rows"]["otus"], r["rows"]["truth"], r["rows"].get("GBReweighter")
            rows.append(
                [
                    case,
                    r["seed"],
                    _pct(o["rel_err"]),
                    _pct(gb["rel_err"]) if gb else "–",
                    f"{r['rows']['before']['auc']:.3f}",
                    f"{o['auc']:.4f} ± {o['auc_err']:.4f}",
                    f"{gb['auc']:.4f}" if gb else "–",
                    f"{t['auc']:.4f}",
                    f"{o['chi2_r_max']:.2f} / {gb['chi2_r_max']:.2f}" if gb else "–",
                    f"{t['chi2_r_max']:.2f}",
                    f"{o['ess_frac']:.3f} / {t['ess_frac']:.3f}",
                    f"{o['seconds']:.0f}",
                ]
            )
        if len(mine) > 1:
            err = np.array([r["rows"]["otus"]["rel_err"] for r in mine])
            auc = np.array([r["rows"]["otus"]["auc"] for r in mine])
            rows.append(
                [f"**{case}: mean ± s.d. of {len(mine)} seeds**", "–"]
                + [f"**{_pct(err.mean())} ± {_pct(err.std(ddof=1))}**", "", ""]
                + [f"{auc.mean():.4f} ± {auc.std(ddof=1):.4f}"]
                + [""] * 6
            )
    return table(
        "case | seed | weight error otus | weight error GB | AUC before | AUC otus | AUC GB "
        "| AUC truth | max χ²_R otus / GB | max χ²_R truth | ESS/N otus / truth | otus fit s",
        rows,
    )


def analytic_goals(runs: list[dict[str, Any]]) -> list[str]:
    """One line per case: the goals of issue 5 and the comparison with GBReweighter."""
    out = []
    for case in dict.fromkeys(r["case"] for r in runs):
        mine = [r["rows"] for r in runs if r["case"] == case]
        err = np.mean([m["otus"]["rel_err"] for m in mine])
        auc = max(m["otus"]["auc"] for m in mine)
        line = (
            f"- {case}: weight error {_pct(err)} (mean; goal ≤ 3%: "
            f"{'met' if err <= 0.03 else 'MISSED'}); after-AUC ≤ {auc:.4f} (goal ≤ 0.52: "
            f"{'met' if auc <= 0.52 else 'MISSED'})"
        )
        vs = [compare(m["otus"], m["GBReweighter"]) for m in mine if "GBReweighter" in m]
        if vs:
            line += (
                f"; vs GBReweighter, AUC better in {sum(v[0] == 'better' for v in vs)} of "
                f"{len(vs)} seeds (worse in {sum(v[0] == 'worse' for v in vs)}), max χ²_R "
                f"better in {sum(v[1] == 'better' for v in vs)} (worse in "
                f"{sum(v[1] == 'worse' for v in vs)})"
            )
        out.append(line)
    return out


def zee_table(runs: list[dict[str, Any]]) -> list[str]:
    """One row per (seed, region, method)."""
    rows = []
    for r in runs:
        for region, label in (("cr_test", "CR, held-out 30%"), ("sr", "SR")):
            for method, m in r[region].items():
                worst = max(m["chi2_r"], key=m["chi2_r"].__getitem__)
                rows.append(
                    [
                        r["seed"],
                        label,
                        method,
                        f"{m['auc']:.4f} ± {m['auc_err']:.4f}",
                        f"{m['chi2_r_max']:.2f} ({worst})",
                        f"{m['ks_max']:.4f}",
                        f"{m['ess_frac']:.3f}",
                        f"{m['yield_ratio']:.3f}" if "yield_ratio" in m else "–",
                    ]
                )
    return table(
        "seed | region | method | AUC data vs MC | max χ²_R (feature) | max KS | ESS/N "
        "| yield MC/data",
        rows,
    )


def zee_goals(runs: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in runs:
        o = r["sr"]["otus"]
        line = (
            f"- seed {r['seed']}, SR: after-AUC {o['auc']:.4f} ± {o['auc_err']:.4f} (goal ≤ "
            f"0.52: {'met' if o['auc'] <= 0.52 else 'MISSED'}); largest χ²_R "
            f"{o['chi2_r_max']:.2f} (goal ≤ 1.5: {'met' if o['chi2_r_max'] <= 1.5 else 'MISSED'})"
        )
        if "GBReweighter" in r["sr"]:
            auc, chi = compare(o, r["sr"]["GBReweighter"])
            line += f"; vs GBReweighter: AUC {auc}, max χ²_R {chi}"
        out.append(line)
    return out


def analytic_section(runs: list[dict[str, Any]], meta: dict[str, Any]) -> tuple[str, list[str]]:
    """(key, lines) of the analytic closure section of one setting and sample size."""
    n, var = runs[0]["n"], meta["variant"]
    lines = header(
        f"Closure on analytic ratios, {n:,} + {n:,} events per sample ({var})",
        command=meta["command"],
        machine=meta["machine"],
        date=meta["date"],
        notes=[f"otus settings: {meta['config']}", _gb_note(meta)],
    )
    lines += [
        "Weight error E_data|ŵ/w − 1| against the analytic ratio and AUC data vs MC on an "
        "independent test sample; `truth` = MC weighted by the exact ratio (the statistical "
        "floor). ESS/N: effective sample size per event.",
        "",
        *analytic_table(runs),
        "",
        *analytic_goals(runs),
    ]
    return f"analytic {n} {var}", lines


def zee_section(runs: list[dict[str, Any]], meta: dict[str, Any]) -> tuple[str, list[str]]:
    """(key, lines) of the zee section of one setting and sample size."""
    p, var = runs[0], meta["variant"]
    lines = header(
        f"zee, data with 10% worse resolution and +1% energy scale, "
        f"{meta['zee_events']:,} events per sample ({var})",
        command=meta["command"],
        machine=meta["machine"],
        date=meta["date"],
        notes=[f"otus settings: {meta['config']}", _gb_note(meta)],
    )
    lines += [
        f"Features {', '.join(p['features'])}; fitted on {', '.join(p['fit_features'])} in the "
        f"CR {CR!r} (first 70% of the rows); events per region MC {p['n_mc']}, data "
        f"{p['n_data']}. The SR lies outside the CR in m_ee: both reweighters hold the ratio "
        "at its CR-edge value there (otus clamps each feature to its training range; trees "
        "are constant outside it), so the SR rows measure that extrapolation.",
        "",
        *zee_table(runs),
        "",
        *zee_goals(runs),
    ]
    return f"zee {meta['zee_events']} {var}", lines


GB_SETTINGS = (
    "GBReweighter: hep_ml demo settings (n_estimators=50, learning_rate=0.1, max_depth=3, "
    "min_samples_leaf=1000, subsample=0.4)"
)


def _gb_note(meta: dict[str, Any]) -> str:
    return GB_SETTINGS + ("" if meta.get("gb", True) else " — not run: hep_ml is not installed")


def _run_seed(
    seed: int,
    opts: dict[str, Any],
    cases: list[str],
    args: argparse.Namespace,
    work: Path,
    fit_features: list[str] | None,
    analytic: list[dict[str, Any]],
    physics: list[dict[str, Any]],
) -> None:
    """The analytic cases and the zee closure of one seed, appended to the lists."""
    methods: dict[str, Any] = {"otus": otus_method(ReweightConfig(seed=seed, **opts))}
    gb = gb_method(seed)
    if gb is None:
        print("hep_ml is not installed: skipping the GBReweighter rows", file=sys.stderr)
    else:
        methods["GBReweighter"] = gb
    for key in cases:
        name, maker = CASES[key]
        print(f"(a) {name}, seed {seed}", flush=True)
        r = run_analytic(name, maker, args.events, methods, seed)
        analytic.append({"case": name, "seed": seed, "n": args.events, **r})
    if not args.skip_physics:
        print(f"(b) zee, seed {seed}", flush=True)
        mc, data = zee_samples(work, args.zee_events, regenerate=args.regenerate)
        r = run_physics(mc, data, methods, seed, fit_features=fit_features)
        physics.append({"seed": seed, **r})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000, help="analytic: events per sample")
    ap.add_argument("--zee-events", type=int, default=60_000, help="zee: generated per sample")
    ap.add_argument("--work", type=Path, default=None, help="cache of the zee samples")
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--skip-physics", action="store_true")
    ap.add_argument(
        "--cases", default="gaussian,mixture", help="analytic cases (comma-separated; '' none)"
    )
    ap.add_argument("--seeds", default="0", help="comma-separated seeds: one row each")
    ap.add_argument("--k-folds", type=int, default=None, help="otus: k of the k-fold training")
    ap.add_argument("--repeats", type=int, default=None, help="otus: k-fold repeats (ensemble)")
    ap.add_argument("--batch-size", type=int, default=None, help="otus: batch size")
    ap.add_argument("--epochs", type=int, default=None, help="otus: maximum epochs")
    ap.add_argument("--lr", type=float, default=None, help="otus: learning rate")
    ap.add_argument("--patience", type=int, default=None, help="otus: early-stop patience")
    ap.add_argument("--hidden", default=None, help="otus: hidden widths, e.g. 32,32,32")
    ap.add_argument(
        "--fit-features",
        default=None,
        help="zee: the reweighters' inputs, e.g. e-_pt,e-_eta,e+_pt,e+_eta "
        "(default: the evaluation features)",
    )
    ap.add_argument("--val-fraction", type=float, default=None, help="otus: early-stop split")
    ap.add_argument(
        "--ema-epochs",
        type=float,
        default=None,
        help="otus: horizon (epochs) of the classifier's weight average",
    )
    ap.add_argument(
        "--no-logit-calibration",
        action="store_true",
        help="otus: skip the Platt scaling of the ensemble logit",
    )
    ap.add_argument("--loss", choices=LOSS_NAMES, default=None, help="otus: classifier loss")
    ap.add_argument("--quick", action="store_true", help="small samples (a smoke run)")
    ap.add_argument("--out", type=Path, default=results_path("reweight"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        args.events = 10_000
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    opts: dict[str, Any] = {  # None: ReweightConfig's default
        "k_folds": args.k_folds,
        "repeats": args.repeats,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "lr": args.lr,
        "patience": args.patience,
        "val_fraction": args.val_fraction,
        "ema_epochs": args.ema_epochs,
        "calibrate_logit": False if args.no_logit_calibration else None,
        "loss": args.loss,
    }
    if args.hidden:
        opts["hidden"] = tuple(int(v) for v in args.hidden.split(","))
    opts = {k: v for k, v in opts.items() if v is not None}
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if unknown := set(cases) - set(CASES):
        ap.error(f"unknown --cases {sorted(unknown)}; choose from {sorted(CASES)}")
    fit_features = args.fit_features.split(",") if args.fit_features else None
    cfg = {k: v for k, v in ReweightConfig(**opts).__dict__.items() if k != "seed"}
    meta = {
        "command": command("reweight_bench", argv),
        "machine": machine(),
        "date": now(),
        "config": cfg,
        "variant": variant(cfg),
        "zee_events": args.zee_events,
        "gb": gb_method(0) is not None,
    }
    analytic, physics = [], []
    with work_dir(args.work, "reweight") as work:
        for seed in seeds:
            _run_seed(seed, opts, cases, args, work, fit_features, analytic, physics)
    if analytic:
        write_section(args.out, *analytic_section(analytic, meta), title="Reweighting")
    if physics:
        zmeta = {**meta, "variant": variant(cfg, fit_features)}
        write_section(args.out, *zee_section(physics, zmeta), title="Reweighting")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
