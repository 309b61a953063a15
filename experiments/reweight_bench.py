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

Run: ``PYTHONPATH=. python experiments/reweight_bench.py [--quick]``. hep_ml is needed for the
GBReweighter rows only (``pip install hep_ml``; skipped with a message if missing).
Writes ``experiments/results/reweight.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import multivariate_normal

from otus import metrics
from otus.calibrate.diagnostics import effective_sample_size
from otus.calibrate.features import default_features, feature_matrix
from otus.calibrate.regions import region_mask
from otus.calibrate.reweight import ReweightConfig, fit_reweighter
from otus.calibrate.reweight_config import LOSS_NAMES
from otus.io.h5 import read_events
from otus.processes import ZEE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import machine

ROOT = Path(__file__).resolve().parent.parent
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
    names = list(default_features(ZEE))
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
        t: feature_matrix(ZEE, np.where(ev.x_pass[:, None], ev.x, 0.0), names)
        for t, ev in (("mc", mc), ("data", data))
    }
    fit_feats = {
        t: feature_matrix(ZEE, np.where(ev.x_pass[:, None], ev.x, 0.0), fit_names)
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
def compare(a: dict[str, Any], b: dict[str, Any]) -> str:
    """otus (a) vs GBReweighter (b) on one row: AUC distance from 0.5 with its error
    (the two errors added in quadrature, conservative: both use the same data events),
    then the largest χ²_R against the statistical scatter of a difference of two χ²_R."""
    d = abs(a["auc"] - 0.5) - abs(b["auc"] - 0.5)
    sig = float(np.hypot(a["auc_err"], b["auc_err"]))
    auc = "better" if d < -2 * sig else "worse" if d > 2 * sig else "equal within errors"
    dc = a["chi2_r_max"] - b["chi2_r_max"]
    # χ²_R of one histogram of n bins scatters by √(2/(n−1)) when the shapes agree
    sc = float(np.sqrt(2.0) * np.sqrt(2.0 / (CHI2_BINS - 1)))
    chi = "better" if dc < -2 * sc else "worse" if dc > 2 * sc else "equal within its spread"
    return (
        f"AUC: {auc} (|AUC−0.5| otus − GB = {d:+.4f} ± {sig:.4f}); "
        f"max χ²_R: {chi} ({a['chi2_r_max']:.2f} vs {b['chi2_r_max']:.2f}, "
        f"difference {dc:+.2f} ± {sc:.2f})"
    )


def verdicts(res: dict[str, Any]) -> list[str]:
    """One line per goal of issue 5, computed from the tables above."""
    out = []
    for name, r in res["analytic"].items():
        o = r["rows"].get("otus")
        if o is None:
            continue
        out.append(
            f"- {name}: weight error {100 * o['rel_err']:.2f}% (goal ≤ 3%: "
            f"{'met' if o['rel_err'] <= 0.03 else 'MISSED'}); after-AUC {o['auc']:.4f} ± "
            f"{o['auc_err']:.4f} (goal ≤ 0.52: {'met' if o['auc'] <= 0.52 else 'MISSED'})"
        )
        if "GBReweighter" in r["rows"]:
            out.append(f"  - vs GBReweighter: {compare(o, r['rows']['GBReweighter'])}")
    p = res.get("physics")
    if p and "otus" in p["sr"]:
        o = p["sr"]["otus"]
        worst = max(o["chi2_r"], key=o["chi2_r"].__getitem__)
        out.append(
            f"- zee SR: after-AUC {o['auc']:.4f} ± {o['auc_err']:.4f} (goal ≤ 0.52: "
            f"{'met' if o['auc'] <= 0.52 else 'MISSED'}); largest χ²_R {o['chi2_r'][worst]:.2f} "
            f"({worst}; goal ≤ 1.5: {'met' if o['chi2_r_max'] <= 1.5 else 'MISSED'})"
        )
        for region in ("cr_test", "sr"):
            if "GBReweighter" in p[region]:
                out.append(
                    f"  - zee {region} vs GBReweighter: "
                    f"{compare(p[region]['otus'], p[region]['GBReweighter'])}"
                )
    return out


def _table(rows: dict[str, Any], analytic: bool) -> list[str]:
    head = "| method | AUC data vs MC | max χ²_R | max KS | ESS/N |"
    sep = "|---|---|---|---|---|"
    if analytic:
        head += " rel. weight error E_data(\\|ŵ/w−1\\|) | E_MC(\\|ŵ/w−1\\|) |"
        sep += "---|---|"
    out = [head, sep]
    for label, r in rows.items():
        line = (
            f"| {label} | {r['auc']:.4f} ± {r['auc_err']:.4f} | {r['chi2_r_max']:.2f} | "
            f"{r['ks_max']:.4f} | {r['ess_frac']:.3f} |"
        )
        if analytic:
            line += (
                f" {100 * r['rel_err']:.2f}% | {100 * r['rel_err_mc']:.2f}% |"
                if "rel_err" in r
                else " – | – |"
            )
        out.append(line)
    return out


def report(res: dict[str, Any], cmd: str) -> str:
    md = [
        "# Reweighting closure benchmark",
        "",
        f"Last command: `{cmd}` (each section names the command that produced it)  ",
        f"Machine: {res['machine']}  ",
        f"Date: {res['date']} (analytic part {res.get('analytic_date')}, physics part "
        f"{res.get('physics_date')}; a part skipped in a run is carried over from the last)  ",
        f"otus settings (this run): {res['otus_config']}  ",
        "GBReweighter: hep_ml demo settings (n_estimators=50, learning_rate=0.1, "
        "max_depth=3, min_samples_leaf=1000, subsample=0.4)"
        + ("" if res["gb"] else " — NOT RUN: hep_ml missing"),
        "",
        "All numbers on events the reweighters never saw. AUC from a fresh "
        "gradient-boosted classifier on a held-out half (± bootstrap); `before` = "
        "unweighted MC, `truth` = MC with the exact analytic ratio (the statistical floor).",
        "",
    ]
    for name, r in res["analytic"].items():
        md += [
            f"## (a) {name} (train {r['n_train']} + test {r['n_test']} events per sample)",
            "",
            f"Command: `{r.get('command', '(not recorded)')}`  ",
            f"Run {r.get('date', res.get('analytic_date'))}; otus settings "
            f"{r.get('otus_config', res['otus_config'])}; otus fit+apply "
            f"{r['rows'].get('otus', {}).get('seconds', float('nan')):.0f} s, GBReweighter "
            f"{r['rows'].get('GBReweighter', {}).get('seconds', float('nan')):.0f} s.",
            "",
            *_table(r["rows"], True),
            "",
        ]
    if "physics" in res:
        p = res["physics"]
        md += [
            "## (b) zee: data with 10% worse resolution and +1% energy scale",
            "",
            f"MC `{p['mc']}`, data `{p['data']}`; features {', '.join(p['features'])}"
            + (
                f" (reweighters fitted on {', '.join(p['fit_features'])})"
                if p.get("fit_features", p["features"]) != p["features"]
                else ""
            )
            + ". "
            f"Fit in the CR {CR!r} (first 70% of rows); events per region: MC "
            f"{p['n_mc']}, data {p['n_data']}.",
            "",
            f"Command: `{p.get('command', '(not recorded)')}`  ",
            f"Run {p.get('date', res.get('physics_date'))}; otus settings "
            f"{p.get('otus_config', res['otus_config'])}; fit+apply otus "
            f"{p.get('seconds_otus', float('nan')):.0f} s, GBReweighter "
            f"{p.get('seconds_GBReweighter', float('nan')):.0f} s.",
            "",
        ]
        for region, title in (("cr_test", "CR, held-out 30%"), ("sr", f"SR {SR!r}")):
            md += [f"### {title}", "", *_table(p[region], False), ""]
            md += [
                "χ²_R per feature: "
                + "; ".join(
                    f"{lab}: " + ", ".join(f"{k} {v:.2f}" for k, v in r["chi2_r"].items())
                    for lab, r in p[region].items()
                ),
                "",
            ]
            ylds = [
                f"{lab} {r['yield_ratio']:.4f}"
                for lab, r in p[region].items()
                if "yield_ratio" in r
            ]
            md += ["Yield MC/data after reweighting: " + ", ".join(ylds), ""]
        md += [
            "The SR lies outside the CR in m_ee: both reweighters hold the ratio at its CR-edge "
            "value there (otus clamps each feature to its training range; trees are constant "
            "outside it), so the SR rows measure that extrapolation. Data/MC shape differences "
            "that exist only off-peak (the resolution tails, the +1% scale on the falling "
            "spectrum above the peak) cannot be learnt in the CR and remain in m_ee.",
            "",
        ]
    elif res.get("physics_skipped"):
        md += ["## (b) zee", "", f"Not run: {res['physics_skipped']}", ""]
    md += [
        "## Goals (computed from the tables)",
        "",
        "Better/worse needs a difference beyond 2σ. AUC: σ adds both bootstrap errors in "
        "quadrature (conservative, the data events are shared); max χ²_R: σ = √2·√(2/49), "
        "the scatter of the difference of two χ²_R over 50 bins.",
        "",
        *verdicts(res),
        "",
    ]
    return "\n".join(md)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000, help="analytic: events per sample")
    ap.add_argument("--zee-events", type=int, default=60_000, help="zee: generated per sample")
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path("/work/scratch/rw"),
        help="cache for the generated zee samples",
    )
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--skip-physics", action="store_true")
    ap.add_argument("--skip-analytic", action="store_true")
    ap.add_argument(
        "--cases",
        default="gaussian,mixture",
        help="analytic cases to run (comma-separated; the others are carried over)",
    )
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
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "experiments/results/reweight.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cmd = "PYTHONPATH=. python experiments/reweight_bench.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    cmd = cmd.strip()
    if args.quick:
        args.events = 10_000
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
    cfg = ReweightConfig(
        seed=args.seed,
        **{k: v for k, v in opts.items() if v is not None},
    )
    methods: dict[str, Any] = {"otus": otus_method(cfg)}
    gb = gb_method(args.seed)
    if gb is None:
        print("hep_ml is not installed: skipping the GBReweighter rows", file=sys.stderr)
    else:
        methods["GBReweighter"] = gb
    res: dict[str, Any] = {
        "machine": machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "otus_config": {k: v for k, v in cfg.__dict__.items()},
        "gb": gb is not None,
        "analytic": {},
    }
    prev = (
        json.loads(args.out.with_suffix(".json").read_text())
        if args.out.with_suffix(".json").is_file()
        else {}
    )
    cases = [] if args.skip_analytic else [c.strip() for c in args.cases.split(",") if c]
    if unknown := set(cases) - set(CASES):
        ap.error(f"unknown --cases {sorted(unknown)}; choose from {sorted(CASES)}")
    res["analytic_date"] = res["date"] if cases else prev.get("analytic_date", prev.get("date"))
    for key, (name, maker) in CASES.items():
        if key in cases:
            print(f"(a) {name}", flush=True)
            res["analytic"][name] = run_analytic(name, maker, args.events, methods, args.seed)
            res["analytic"][name].update(
                date=res["date"], otus_config=res["otus_config"], command=cmd
            )
        elif name in prev.get("analytic", {}):  # keep the earlier run's section
            old = prev["analytic"][name]
            old.setdefault("date", prev.get("analytic_date", prev.get("date")))
            old.setdefault("otus_config", prev.get("otus_config"))
            res["analytic"][name] = old
    if not args.skip_physics:
        print("(b) zee", flush=True)
        args.workdir.mkdir(parents=True, exist_ok=True)
        mc, data = zee_samples(args.workdir, args.zee_events, regenerate=args.regenerate)
        res["physics"] = run_physics(
            mc,
            data,
            methods,
            args.seed,
            fit_features=args.fit_features.split(",") if args.fit_features else None,
        )
        res["physics"].update(date=res["date"], otus_config=res["otus_config"], command=cmd)
        res["physics_date"] = res["date"]
    elif prev.get("physics"):
        res["physics"], res["physics_date"] = prev["physics"], prev.get("physics_date")
        res["physics"].setdefault("date", res["physics_date"])
        res["physics"].setdefault("otus_config", prev.get("otus_config"))
    else:
        res["physics_skipped"] = "--skip-physics"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(res, cmd) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
