"""Fidelity of a trained OTUS run on a held-out event file (SPEC §8, ANCHORS OTUS protocol).

The held-out file is split into halves A and B so that truth and prediction are
independent samples:

* simulation x vs x̃′ = D(z): passing x of A against D(z of B), truncated by the detector
  acceptance (like real data);
* unfolding z vs z̃ = E(x): z of A's passing events (what an unfolder of passing events can
  recover) against E(passing x of B); also against all z of A, reported as ``unfold_all``;
* autoencoder x vs x̃ = D(E(x)) on B's passing events against A's.

Prints and writes (``--out``) a JSON report: per-observable W, χ²_R, KS (otus.metrics), the
global sliced W2 on standardised rows, classifier AUCs and the simulation speed.

Usage::

    python experiments/evaluate_model.py RUN --test TEST.h5 [--out report.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from otus.evaluation import auc_features
from otus.io.h5 import read_events
from otus.metrics import classifier_auc, compare, sliced_w2
from otus.models.api import load_run
from otus.physics.selection import acceptance

HEADLINE = {
    "zee": ["m_ee", "e+_py", "e+_pz", "e+_E"],
    "ttbar": ["m_W_had", "m_t_had", "m_t_lep", "m_tt", "jet1_E"],
}
HEADLINE_Z = {
    "zee": ["m_ee", "e+_py", "e+_pz", "e+_E"],
    "ttbar": ["m_W_had", "m_t_had", "m_t_lep", "b_E"],
}


def _std_sw(a: np.ndarray, b: np.ndarray) -> float:
    mu, sd = a.mean(0), a.std(0) + 1e-9
    return sliced_w2((a - mu) / sd, (b - mu) / sd, n_projections=1000, seed=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("--test", required=True)
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--max-events", type=int, default=60000)
    ap.add_argument("--no-auc", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    sur = load_run(args.run)
    p = sur.process
    ev = read_events(args.test, p.name).subset(slice(0, args.max_events))
    n = len(ev)
    half = n // 2
    a, b = ev.subset(slice(0, half)), ev.subset(slice(half, 2 * half))
    xa = a.x[a.x_pass]
    za_pass = a.z[a.x_pass]
    xb = b.x[b.x_pass]

    t0 = time.perf_counter()
    xs, acc = sur.simulate(b.z, seed=args.seed, with_pass=True)
    t_sim = time.perf_counter() - t0
    xs_pass = xs[acc]
    zu = sur.unfold(xb, seed=args.seed + 1)
    xae = sur.simulate(zu, seed=args.seed + 2)
    xae = xae[np.asarray(acceptance(p, xae.astype(np.float64)), bool)]

    rep: dict[str, object] = {
        "run": args.run,
        "test": args.test,
        "events": 2 * half,
        "pass_rate_truth": float(a.x_pass.mean()),
        "pass_rate_D(z)": float(acc.mean()),
        "simulate_events_per_s": float(len(b.z) / t_sim),
    }
    sections = {
        "simulate": compare(p, xa, xs_pass, "x"),
        "autoencode": compare(p, xa, xae, "x"),
        "unfold": compare(p, za_pass, zu, "z"),
        "unfold_all": compare(p, a.z, zu, "z"),
    }
    rep.update(sections)
    rep["global_sw2"] = {
        "simulate": _std_sw(xa, xs_pass),
        "unfold": _std_sw(za_pass, zu),
        "autoencode": _std_sw(xa, xae),
    }
    if not args.no_auc:
        fa, fs = auc_features(p, xa, xs_pass, "x")
        auc, err = classifier_auc(fa, fs, seed=0, n_bootstrap=20, max_events=30000, n_threads=1)
        fz, fu = auc_features(p, za_pass, zu, "z")
        auc_u, err_u = classifier_auc(fz, fu, seed=0, n_bootstrap=20, max_events=30000, n_threads=1)
        rep["auc"] = {"simulate": [auc, err], "unfold": [auc_u, err_u]}
    lines = [f"{args.run} on {args.test} ({2 * half} events)"]
    for sec, names in (
        ("simulate", HEADLINE[p.name]),
        ("unfold", HEADLINE_Z[p.name]),
        ("autoencode", HEADLINE[p.name]),
    ):
        row = sections[sec]
        cells = [f"{k} {row[k]['chi2_r']:.2f}" for k in names if k in row]
        lines.append(f"  chi2_R {sec:10s}: " + ", ".join(cells))
    lines.append(
        "  global SW2 (standardised): "
        + ", ".join(f"{k} {v:.4f}" for k, v in rep["global_sw2"].items())
    )  # type: ignore[union-attr]
    if "auc" in rep:
        lines.append(
            "  AUC: " + ", ".join(f"{k} {v[0]:.3f}±{v[1]:.3f}" for k, v in rep["auc"].items())
        )  # type: ignore
    lines.append(
        f"  pass rate truth {rep['pass_rate_truth']:.3f}, pass rate of D(z) "
        f"{rep['pass_rate_D(z)']:.3f}, simulate {rep['simulate_events_per_s']:.3g} ev/s"
    )
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text(json.dumps(rep, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
