"""Generator validation: the rate and pass rates of ``otus generate`` on one core, and its
physics on the committed samples (issue 2 acceptance). Writes the ``generate`` section of
``experiments/results/generate.md``.

    python -m experiments.validate_generate [--zee 20000] [--ttbar 1000] [--closure-events N]

Rates: each process generated once in this single process (one core: numpy/BLAS threads
pinned to 1), per CPU second of this process (``time.process_time``, the per-core rate,
robust to other jobs sharing the machine) and per wall-clock second; both include Pythia's
initialisation and writing all three output files.

Physics: reads ``data/zee`` and ``data/ttbar`` (see data/README.md), fits the parton-level
Z line shape, measures the ISR recoil, measures the electron efficiency and pT resolution of
the detector against the Delphes CMS card formulas on freshly generated zee events (truth
particles are needed, so these are generated here with a fixed seed), and the ttbar mass
peaks with the documented jet assignment.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from experiments.common import (  # noqa: E402
    DATA,
    command,
    header,
    machine,
    results_path,
    table,
    work_dir,
    write_section,
)
from otus.generate import generate  # noqa: E402
from otus.generate.pythia import PTJ_MIN, PTL_MIN, PythiaSource  # noqa: E402
from otus.generate.reconstruct import reconstruct  # noqa: E402
from otus.generate.validate import card_closure, electron_response, fit_breit_wigner  # noqa: E402
from otus.io.h5 import read_events  # noqa: E402
from otus.physics import fourvec as fv  # noqa: E402
from otus.physics.observables import observables  # noqa: E402
from otus.processes import TTBAR, ZEE  # noqa: E402


def rate(process: str, n: int, seed: int) -> list[str]:
    """One row of the rate table: ``otus generate process`` for ``n`` events."""
    with work_dir(None, "generate") as tmp:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        s = generate(process, n, seed=seed, out_dir=tmp / "out", progress=False)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return [
        process,
        str(n),
        f"{cpu:.1f}",
        f"{wall:.1f}",
        f"{n / cpu:.0f}",
        f"{n / wall:.0f}",
        f"{n / s['tries']:.3f}",
        f"{s['pass_rate']:.3f}",
    ]


def _q(a: np.ndarray) -> str:
    q1, q2, q3 = np.percentile(a, [25, 50, 75])
    return f"{q2:.1f} [{q1:.1f}, {q3:.1f}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zee", type=int, default=20_000, help="zee events for the rate")
    ap.add_argument("--ttbar", type=int, default=1_000, help="ttbar events for the rate")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--closure-events", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=results_path("generate"))
    args = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    rates = [rate(p, n, args.seed) for p, n in (("zee", args.zee), ("ttbar", args.ttbar))]
    lines = header(
        "`otus generate`: rate and pass rates on one core",
        command=command("validate_generate", argv),
        machine=machine("1 thread"),
        notes=[
            f"load average (1 min) before / after the rates: {load0:.1f} / "
            f"{os.getloadavg()[0]:.1f} (wall-clock rates are lower than CPU rates on a busy "
            "machine)",
            "times include Pythia initialisation and writing `events.h5`, `parton.lhe.gz`, "
            "`delphes.root`",
        ],
    )
    lines += table(
        "process | events | CPU s | wall s | events / CPU s | events / wall s "
        "| generator-cut efficiency | detector pass rate",
        rates,
    )
    lines += [
        "",
        "Generator-cut efficiency: accepted / generated hard processes (MadGraph default run "
        f"card: leptons pT > {PTL_MIN:g} GeV, |η| < 2.5; light quarks pT > {PTJ_MIN:g} GeV, "
        "|η| < 5; ΔR > 0.4); vetoed events are never showered. Detector pass rate: SPEC §5 "
        "selection (zee: exactly one e⁻ and one e⁺; ttbar: exactly one electron, no muon, "
        "exactly four jets with pT > 20 GeV, |η| < 2.5). zee: ISR + FSR shower, no MPI, no "
        "hadronisation. ttbar: ISR + FSR shower and hadronisation, no MPI "
        "(otus/generate/pythia.py).",
        "",
    ]

    zee = read_events(Path(args.data) / "zee" / "events.h5", "zee")
    pz = fv.objects(zee.z.astype(np.float64), 2)
    m = fv.invariant_mass(pz[:, 0], pz[:, 1])
    mass, width = fit_breit_wigner(m)
    px = fv.objects(zee.x[zee.x_pass].astype(np.float64), 2)
    pair_x = fv.pt(px[:, 0] + px[:, 1])
    mx = fv.invariant_mass(px[:, 0], px[:, 1])
    lines += [
        f"### zee (`data/zee`, {len(zee)} events)",
        "",
        f"- parton m_ee: fit (Breit-Wigner + flat, 81-101 GeV): M = {mass:.2f} GeV, "
        f"Γ = {width:.2f} GeV (PDG: 91.19, 2.50); range [{m.min():.1f}, {m.max():.1f}] GeV; "
        f"fraction below 80 GeV (γ* continuum and Z tail) {np.mean(m < 80):.3f}",
        f"- parton pair pT: max {fv.pt(pz[:, 0] + pz[:, 1]).max():.2e} GeV; detector pair pT "
        f"(passing events) median [quartiles] {_q(pair_x)} GeV, mean {pair_x.mean():.1f} GeV",
        f"- detector m_ee (passing) median [quartiles] {_q(mx)} GeV; pass rate "
        f"{zee.x_pass.mean():.3f}",
        "",
    ]

    src = PythiaSource(ZEE, args.seed)
    _, _, particles = src.next_batch(args.closure_events)
    reco = reconstruct(particles, np.random.default_rng([args.seed, 1]))
    rows = card_closure(electron_response(particles, reco))
    lines += [
        f"### Electron response vs Delphes CMS card ({args.closure_events} fresh zee events, "
        f"seed {args.seed}, truth electrons pT > 20 GeV)",
        "",
        "| quantity | abs(η) | electrons | measured | card | measured/card − 1 |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["eta"]  # type: ignore[misc]
        meas, card = float(r["measured"]), float(r["card"])  # type: ignore[arg-type]
        lines.append(
            f"| {r['quantity']} | {lo}-{hi} | {r['n']} | {meas:.4f} | {card:.4f} | "
            f"{meas / card - 1:+.3f} |"
        )
    lines += [
        "",
        "Efficiency (isolated): truth electrons with truth isolation below half the card's "
        "cut; (all) also includes the loss from the card's isolation requirement "
        "(ΔR < 0.5, pT ratio ≤ 0.12).",
        "",
    ]

    tt = read_events(Path(args.data) / "ttbar" / "events.h5", "ttbar")
    ox = observables(TTBAR, tt.x[tt.x_pass], "x")
    oz = observables(TTBAR, tt.z, "z")
    lines += [
        f"### ttbar (`data/ttbar`, {len(tt)} events, pass rate {tt.x_pass.mean():.3f})",
        "",
        "| mass | parton median [quartiles] | detector (passing) median [quartiles] |",
        "|---|---|---|",
    ]
    for k in ("m_W_had", "m_t_had", "m_t_lep", "m_tt"):
        lines.append(f"| {k} | {_q(oz[k])} | {_q(ox[k])} |")
    lines += ["", "Detector-level jet assignment: otus/physics/observables.py.", ""]
    write_section(args.out, "generate", lines, title="Generator validation")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
