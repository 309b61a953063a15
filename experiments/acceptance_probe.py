"""Why does a run's simulated pass rate miss? Its two factors on a held-out paired file
(a diagnostic; prints only).

A simulated event passes with probability ε(z) and then needs a decoder draw inside the
process's acceptance (up to ``SIMULATE_RETRIES`` redraws, :mod:`otus.models.efficiency`).
This prints, for the first ``--max-events`` rows: the mean ε(z) against the file's pass
flags, and the fraction of single decoder draws D(z) inside the acceptance, over all z and
over the z whose event passed.

    python -m experiments.acceptance_probe RUN --test TEST.h5 [RUN2 --test TEST2.h5 ...]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from otus.io.h5 import read_events
from otus.models.api import load_run
from otus.physics.selection import acceptance


def probe(run: str, test: str, max_events: int, seed: int) -> dict[str, float]:
    """Mean ε(z), the true pass rate, and the acceptance of single draws."""
    sur = load_run(run)
    m = sur.module.eval()
    ev = read_events(test, sur.process.name).subset(slice(0, max_events))
    if ev.x_pass is None:
        raise SystemExit(f"{test}: no pass flags; the probe needs a paired file")
    z = torch.as_tensor(np.asarray(ev.z), dtype=torch.float32)
    flags = torch.as_tensor(np.asarray(ev.x_pass, bool))
    with torch.no_grad():
        acc = acceptance(sur.process, m.simulate(z, generator=torch.Generator().manual_seed(seed)))
        eps = (
            torch.sigmoid(m.efficiency_logit(z)) if m.efficiency is not None else torch.ones(len(z))
        )
    return {
        "mean ε(z)": float(eps.mean()),
        "pass rate (flags)": float(flags.float().mean()),
        "draws accepted, all z": float(acc.float().mean()),
        "draws accepted, passing z": float(acc[flags].float().mean()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--test", nargs="+", required=True, help="one held-out file per run")
    ap.add_argument("--max-events", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if len(args.test) != len(args.runs):
        raise SystemExit("acceptance_probe: give one --test file per run")
    torch.set_num_threads(1)
    for run, test in zip(args.runs, args.test, strict=True):
        out = probe(run, test, args.max_events, args.seed)
        print(run + ": " + "; ".join(f"{k} {v:.3f}" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
