"""What does the classifier see? Two-sample AUCs of a zee run's simulation on subsets of
the observables (a diagnostic of the model-fidelity AUC; prints only).

Same halves as ``experiments.evaluate_model``: truth = passing x of half A of the test file,
prediction = D(z) of half B (passing as the model says). Prints the AUC of every single
observable, of every pair among (pT, η of both electrons, m_ee, pT(ee)), of the electrons'
azimuthal separation |Δφ| and of all observables together.

    python -m experiments.auc_probe RUN --test zee_test/events.h5
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from otus.io.h5 import read_events
from otus.metrics import classifier_auc
from otus.models.api import load_run
from otus.physics.observables import observables

PAIRS = ["e-_pt", "e-_eta", "e+_pt", "e+_eta", "m_ee", "pt_ee"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("--test", required=True)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--max-events", type=int, default=20000, help="per sample and AUC")
    args = ap.parse_args()
    sur = load_run(args.run)
    p = sur.process
    if p.name != "zee":
        raise SystemExit("auc_probe.py: zee runs only")
    ev = read_events(args.test, p.name)
    half = len(ev) // 2
    a, b = ev.subset(slice(0, half)), ev.subset(slice(half, 2 * half))
    xs, acc = sur.simulate(b.z, seed=args.seed, with_pass=True)
    ot, op = observables(p, a.x[a.x_pass], "x"), observables(p, xs[acc], "x")
    for o in (ot, op):
        dphi = np.arctan2(o["e-_py"], o["e-_px"]) - np.arctan2(o["e+_py"], o["e+_px"])
        o["abs_dphi"] = np.abs(np.mod(dphi + np.pi, 2 * np.pi) - np.pi)

    def auc(keys: list[str]) -> str:
        t = np.column_stack([ot[k] for k in keys])
        s = np.column_stack([op[k] for k in keys])
        v, e = classifier_auc(t, s, seed=0, n_bootstrap=5, max_events=args.max_events, n_threads=1)
        return f"{v:.3f} ± {e:.3f}"

    keys = [k for k in ot if k != "abs_dphi" and np.ptp(np.concatenate([ot[k], op[k]])) > 0]
    print(f"all observables: {auc(keys)}")
    for k in [*keys, "abs_dphi"]:
        print(f"{k}: {auc([k])}")
    for k1, k2 in itertools.combinations(PAIRS, 2):
        print(f"{k1} + {k2}: {auc([k1, k2])}")
    med_t, med_s = (float(np.median(np.pi - o["abs_dphi"])) for o in (ot, op))
    print(f"median π − |Δφ| [rad]: truth {med_t:.3f}, simulation {med_s:.3f}")


if __name__ == "__main__":
    main()
