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

    PYTHONPATH=. python experiments/reweight_error_anatomy.py --seed 0 \\
        --out experiments/results/reweight_error_anatomy_seed0.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import machine
from reweight_bench import mixture, weight_error

from otus.calibrate.reweight import ReweightConfig, fit_reweighter

ROOT = Path(__file__).resolve().parents[1]


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000, help="events per sample")
    ap.add_argument("--seed", type=int, default=0, help="sample A = reweight_bench's --seed")
    ap.add_argument("--epochs", type=int, default=None, help="otus: maximum epochs")
    ap.add_argument("--out", type=Path, default=ROOT / "experiments/results/anatomy.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cmd = "PYTHONPATH=. python experiments/reweight_error_anatomy.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    cfg = ReweightConfig(seed=args.seed, **({"epochs": args.epochs} if args.epochs else {}))
    n, ones = args.events, np.ones(args.events)
    # A is reweight_bench's training sample for --seed, B the one for --seed + 1
    xm_a, xd_a, ratio = mixture(n, np.random.default_rng(args.seed))
    xm_b, xd_b, _ = mixture(n, np.random.default_rng(args.seed + 1))
    tm, _, _ = mixture(n, np.random.default_rng(10_000 + args.seed))
    log_true = np.log(ratio(tm))
    t0 = time.perf_counter()
    fits = {}
    for tag, xm, xd in (("A", xm_a, xd_a), ("B", xm_b, xd_b)):
        fits[tag] = fit_reweighter(xm, ones, xd, ones, config=cfg)
        print(f"sample {tag} fitted ({time.perf_counter() - t0:.0f} s)", flush=True)
    log_w = {tag: f.logit(tm) for tag, f in fits.items()}
    err = {tag: weight_error(lw, log_true) for tag, lw in log_w.items()}
    err["A+B"] = weight_error(0.5 * (log_w["A"] + log_w["B"]), log_true)
    dec = decomposition(
        log_errors(log_w["A"], log_true), log_errors(log_w["B"], log_true), log_true
    )
    bound = binned_calibration_bound(log_w["A"], log_true)
    # stage 2: data against the MC reweighted by A's out-of-fold ratio
    second = fit_reweighter(
        xm_a, fits["A"].mc_ratio, xd_a, ones, config=replace(cfg, seed=cfg.seed + 1000)
    )
    err_two = weight_error(log_w["A"] + second.logit(tm), log_true)
    print(f"stage 2 fitted ({time.perf_counter() - t0:.0f} s)", flush=True)
    res = {
        "command": cmd,
        "machine": machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "events": n,
        "otus_config": dict(cfg.__dict__),
        "weight_error": err,
        "decomposition": dec,
        "calibration_bound": bound,
        "platt": {tag: f.calibration for tag, f in fits.items()},
        "stage2_platt": second.calibration,
        "stage2_weight_error": err_two,
        "seconds": time.perf_counter() - t0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(res) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    print(f"wrote {args.out}")
    return 0


def report(r: dict[str, Any]) -> str:
    e, d = r["weight_error"], r["decomposition"]
    a2, b2 = r["stage2_platt"]
    lines = [
        "# Anatomy of the reweighter's weight error (Gaussian mixture, 4-D)",
        "",
        f"Command: `{r['command'].strip()}`  ",
        f"Machine: {r['machine']}  ",
        f"Date: {r['date']}; {r['events']} events per sample; {r['seconds']:.0f} s  ",
        f"otus settings: {r['otus_config']}",
        "",
        "Weight error E_data|ŵ/w − 1| on one common test sample (seed 10000 + --seed):",
        "",
        "| fitted on | weight error |",
        "|---|---|",
        f"| sample A (reweight_bench's training sample of --seed) | {100 * e['A']:.2f}% |",
        f"| sample B (an independent one, that of --seed + 1) | {100 * e['B']:.2f}% |",
        f"| A and B, log-weights averaged | {100 * e['A+B']:.2f}% |",
        f"| A, best per-bin shift of its log-weights in 20 bins of itself (fitted on the "
        f"truth: a bound for any recalibration) | {100 * r['calibration_bound']:.2f}% |",
        f"| A times a second reweighter fitted on the A-reweighted MC | "
        f"{100 * r['stage2_weight_error']:.2f}% |",
        "",
        f"- Correlation of the A and B log-weight errors (data-weighted): **{d['corr']:.2f}**, "
        "the share of the error variance that is systematic (the method's, common to "
        "independent samples); the rest is the statistical scatter of the training sample.",
        f"- The second reweighter's Platt slope on its out-of-fold logits: **{a2:.3f}** "
        f"(shift {b2:+.3f}); 0 means its classifiers find no usable difference between the "
        "data and the reweighted MC.",
        "",
        "Log-weight errors by octile of the true log-ratio (data-weighted octiles): the common "
        "part ½(e_A + e_B) and the independent part ½(e_A − e_B).",
        "",
        "| true log r | common bias | common rms | independent rms |",
        "|---|---|---|---|",
    ]
    for o in d["octiles"]:
        lines.append(
            f"| [{o['lo']:.2f}, {o['hi']:.2f}] | {o['common_bias']:+.4f} | "
            f"{o['common_rms']:.4f} | {o['indep_rms']:.4f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
