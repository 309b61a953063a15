"""Is the encoder a posterior sampler? The calibration of E(x)'s draws per event.

For paired events (z, x) the probability integral transform u = P(draw < z_true | x), over R
draws of E(x) per event, is uniform when E samples the posterior p(z | x); a U-shaped
histogram means draws far narrower than the posterior (a near-deterministic transport map),
whose unfolding follows the training prior and cannot be reweighted per event. Printed for
each observable: the median per-event standard deviation of the draws, the robust spread
(half the 16-84 % range) of z_true − mean(draws), and the PIT histogram in 5 bins.

    python -m experiments.unfold_calibration RUN --test PAIRED.h5 [--events 5000 --draws 32]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def calibration(run: str, test: str, events: int, draws: int, seed: int) -> list[str]:
    from otus.io.h5 import read_events
    from otus.models.api import load_run
    from otus.physics.observables import observables

    sur = load_run(run)
    p = sur.process
    ev = read_events(test, p.name)
    assert ev.x is not None and ev.x_pass is not None and ev.z is not None
    x, z = ev.x[ev.x_pass][:events], ev.z[ev.x_pass][:events]
    zs = sur.unfold(x, seed=seed, repeats=draws)
    o_draw, o_true = observables(p, zs, "z"), observables(p, z, "z")
    lines = [
        f"run {run}, {len(x)} passing events of {test}, {draws} draws each",
        "",
        "| observable | median draw σ | spread of truth − mean draw | PIT, 5 bins |",
        "|---|---|---|---|",
    ]
    for name in p.observable_names("z") + tuple(f"{o}_pt" for o in p.z_objects):
        d = o_draw[name].reshape(-1, draws)
        t = o_true[name]
        if np.ptp(t) == 0:
            continue
        res = t - d.mean(1)
        spread = np.subtract(*np.percentile(res, [84, 16])) / 2
        pit = np.histogram((d < t[:, None]).mean(1), bins=5, range=(0, 1))[0]
        lines.append(
            f"| {name} | {np.median(d.std(1)):.3g} | {spread:.3g} | {' '.join(map(str, pit))} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("--test", required=True, help="paired event file (z and x)")
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--draws", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    print("\n".join(calibration(a.run, a.test, a.events, a.draws, a.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
