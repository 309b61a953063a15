"""Where the reweighter's weight error on the Gaussian-mixture closure comes from.

Three measurements, all against the analytic ratio of reweight_bench's mixture case:

1. Systematic or statistical. Two ensembles (the reweighter with its defaults) are fitted on
   independent training samples A and B and evaluated on one common test sample. The
   data-weighted correlation of their log-weight errors is the systematic (method) share of
   the error variance; the error of their averaged log-weights shows what a second
   independent sample of the same size would buy.
2. Calibration bound. The best per-bin shift of sample A's log-weights in 20 bins of its own
   predicted log-ratio, fitted on the test truth itself (a cheat, so an upper bound): what
   any recalibration of the logit (Platt, isotonic, splines) could still remove.
3. Detectability of the residual. A second reweighter fitted between the data and the MC
   reweighted by the first (its out-of-fold weights), with its own Platt scaling: a slope
   near 0 means a classifier finds no usable difference left in the training samples.

    python -m experiments.reweight_error_anatomy --seeds 0,2

Each seed is a row of the ``anatomy`` section of ``experiments/results/reweight.md``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.common import command, header, machine, results_path, table, write_section
from experiments.reweight_bench import mixture, weight_error
from otus.calibrate.reweight.config import ReweightConfig
from otus.calibrate.reweight.fit import fit_reweighter


def log_errors(log_w: np.ndarray, log_true: np.ndarray) -> np.ndarray:
    """Log-weight error, centred with the data weight (the normalisation is free)."""
    e = log_w - log_true
    return e - np.average(e, weights=np.exp(log_true - log_true.max()))


def decomposition(ea: np.ndarray, eb: np.ndarray, log_true: np.ndarray) -> dict[str, Any]:
    """Correlation of two log errors and their common/independent parts in octiles of the
    true log-ratio (octiles of the data weight)."""
    t = np.exp(log_true - log_true.max())

    def avg(v: np.ndarray, s: np.ndarray | slice = slice(None)) -> float:
        return float(np.average(v[s], weights=t[s]))

    corr = avg(ea * eb) / np.sqrt(avg(ea**2) * avg(eb**2))
    common, indep = 0.5 * (ea + eb), 0.5 * (ea - eb)
    edges = np.quantile(log_true, np.linspace(0, 1, 9), weights=t, method="inverted_cdf")
    idx = np.clip(np.digitize(log_true, edges[1:-1]), 0, 7)
    rows = []
    for k in range(8):
        s = idx == k
        rows.append(
            {
                "lo": float(edges[k]),
                "hi": float(edges[k + 1]),
                "common_bias": avg(common, s),
                "common_rms": float(np.sqrt(avg(common**2, s))),
                "indep_rms": float(np.sqrt(avg(indep**2, s))),
            }
        )
    return {"corr": float(corr), "octiles": rows}


def binned_calibration_bound(log_w: np.ndarray, log_true: np.ndarray, bins: int = 20) -> float:
    """Weight error after the best shift per quantile bin of log_w, fitted on the truth."""
    t = np.exp(log_true - log_true.max())
    edges = np.quantile(log_w, np.linspace(0, 1, bins + 1))
    idx = np.clip(np.digitize(log_w, edges[1:-1]), 0, bins - 1)
    out = log_w.copy()
    for k in range(bins):
        s = idx == k
        if s.any():
            out[s] += np.average(log_true[s] - log_w[s], weights=t[s])
    return weight_error(out, log_true)


def anatomy(seed: int, events: int, epochs: int | None) -> dict[str, Any]:
    """The three measurements for the samples of ``seed`` (see the module docstring)."""
    cfg = ReweightConfig(seed=seed, **({"epochs": epochs} if epochs else {}))
    n, ones = events, np.ones(events)
    # A is reweight_bench's training sample for seed, B the one for seed + 1
    xm_a, xd_a, ratio = mixture(n, np.random.default_rng(seed))
    xm_b, xd_b, _ = mixture(n, np.random.default_rng(seed + 1))
    tm, _, _ = mixture(n, np.random.default_rng(10_000 + seed))
    log_true = np.log(ratio(tm))
    t0 = time.perf_counter()
    fits = {}
    for tag, xm, xd in (("A", xm_a, xd_a), ("B", xm_b, xd_b)):
        fits[tag] = fit_reweighter(xm, ones, xd, ones, config=cfg)
        print(f"seed {seed}: sample {tag} fitted ({time.perf_counter() - t0:.0f} s)", flush=True)
    log_w = {tag: f.logit(tm) for tag, f in fits.items()}
    err = {tag: weight_error(lw, log_true) for tag, lw in log_w.items()}
    err["A+B"] = weight_error(0.5 * (log_w["A"] + log_w["B"]), log_true)
    dec = decomposition(
        log_errors(log_w["A"], log_true), log_errors(log_w["B"], log_true), log_true
    )
    # stage 2: data against the MC reweighted by A's out-of-fold ratio
    second = fit_reweighter(
        xm_a, fits["A"].mc_ratio, xd_a, ones, config=replace(cfg, seed=cfg.seed + 1000)
    )
    return {
        "seed": seed,
        "weight_error": err,
        "decomposition": dec,
        "calibration_bound": binned_calibration_bound(log_w["A"], log_true),
        "stage2_platt": second.calibration,
        "stage2_weight_error": weight_error(log_w["A"] + second.logit(tm), log_true),
        "seconds": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000, help="events per sample")
    ap.add_argument("--seeds", default="0", help="sample A = reweight_bench's seed; one row each")
    ap.add_argument("--epochs", type=int, default=None, help="otus: maximum epochs")
    ap.add_argument("--out", type=Path, default=results_path("reweight"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    runs = [anatomy(int(s), args.events, args.epochs) for s in args.seeds.split(",")]
    lines = header(
        f"Anatomy of the weight error (Gaussian mixture, {args.events:,} events per sample)",
        command=command("reweight_error_anatomy", argv),
        machine=machine(),
        notes=[f"otus settings: the defaults{f', epochs {args.epochs}' if args.epochs else ''}"],
    )
    write_section(args.out, "anatomy", lines + report(runs), title="Reweighting")
    return 0


def report(runs: list[dict[str, Any]]) -> list[str]:
    """The weight errors and the decomposition per seed, and the octile table."""
    lines = [
        "Weight error E_data|ŵ/w − 1| on one common test sample (seed 10000 + seed) of the "
        "reweighter fitted on sample A (reweight_bench's training sample of the seed), on an "
        "independent sample B (that of seed + 1), of the two log-weights averaged, of A after "
        "the best per-bin shift of its log-weights in 20 bins of itself (fitted on the truth: "
        "a bound for any recalibration), and of A times a second reweighter fitted on the "
        "A-reweighted MC. Correlation: of the A and B log-weight errors (data-weighted), the "
        "share of the error variance that is systematic (common to independent samples); the "
        "rest is the statistical scatter of the training sample. Slope: the second "
        "reweighter's Platt slope on its out-of-fold logits (0: its classifiers find no usable "
        "difference between the data and the reweighted MC).",
        "",
        *table(
            "seed | A | B | A and B, log-weights averaged | A, recalibration bound "
            "| A × second reweighter | correlation | second slope | s",
            (
                [
                    r["seed"],
                    *(f"{100 * r['weight_error'][k]:.2f}%" for k in ("A", "B", "A+B")),
                    f"{100 * r['calibration_bound']:.2f}%",
                    f"{100 * r['stage2_weight_error']:.2f}%",
                    f"{r['decomposition']['corr']:.2f}",
                    f"{r['stage2_platt'][0]:.3f}",
                    f"{r['seconds']:.0f}",
                ]
                for r in runs
            ),
        ),
        "",
        "Log-weight errors by octile of the true log-ratio (data-weighted octiles of the first "
        "seed): common bias / common rms of ½(e_A + e_B), rms of the independent part "
        "½(e_A − e_B).",
        "",
    ]
    octs = [r["decomposition"]["octiles"] for r in runs]
    rows = []
    for k, o in enumerate(octs[0]):
        rows.append(
            [f"[{o['lo']:.2f}, {o['hi']:.2f}]"]
            + [
                f"{x[k]['common_bias']:+.4f} / {x[k]['common_rms']:.4f} / {x[k]['indep_rms']:.4f}"
                for x in octs
            ]
        )
    lines += table(["true log r", *(f"seed {r['seed']}" for r in runs)], rows)
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
