"""``otus generate PROCESS --events N --seed S --out DIR [--detector NAME]``: the built-in
generator."""

from __future__ import annotations

import argparse
from typing import Any

from otus.cli._common import PROCESS_HELP, add_seed


def register(sub: Any) -> None:
    from otus.generate.zoo import DETECTORS

    p = sub.add_parser(
        "generate",
        help="generate paired parton/detector events (Pythia 8 + a parametric detector)",
        description="Built-in MadGraph+Delphes stand-in: writes DIR/parton.lhe.gz, "
        "DIR/delphes.root and DIR/events.h5 (paired row by row).",
    )
    p.add_argument("process", help=PROCESS_HELP)
    p.add_argument("--events", "-n", type=int, required=True, help="number of events")
    add_seed(p)
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument(
        "--detector",
        default="cms",
        metavar="NAME",
        help="detector model (default cms): "
        + "; ".join(f"{name}: {d.summary}" for name, d in DETECTORS.items()),
    )
    p.add_argument(
        "--resolution-scale",
        type=float,
        default=1.0,
        help="multiply every detector resolution (default 1.0 = the card)",
    )
    p.add_argument(
        "--energy-scale",
        type=float,
        default=1.0,
        help="multiply every reconstructed momentum (default 1.0)",
    )
    p.add_argument(
        "--efficiency-scale",
        type=float,
        default=1.0,
        help="multiply the identification efficiencies (default 1.0)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from otus.generate import generate

    s = generate(
        args.process,
        args.events,
        seed=args.seed,
        out_dir=args.out,
        resolution_scale=args.resolution_scale,
        energy_scale=args.energy_scale,
        efficiency_scale=args.efficiency_scale,
        detector=args.detector,
        progress=True,
    )
    print(
        f"otus generate: {s['n_events']} {s['process']} events ({s['detector']} detector) "
        f"in {args.out} "
        f"(pass rate {s['pass_rate']:.3f}, {s['rate']:.0f} events/s)"
    )
    return 0
