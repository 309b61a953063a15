"""``otus simulate`` (decoder z → x) and ``otus unfold`` (encoder x → z): a trained run
applied to an event file, chunk by chunk (:mod:`otus.models.apply`)."""

from __future__ import annotations

import argparse
from typing import Any

from otus.cli._common import add_seed


def register(sub: Any) -> None:
    add_apply_parser(
        sub,
        "simulate",
        apply="simulate_file",
        help="simulate detector-level events with a trained run",
        description="Apply the stochastic decoder D(z) of a trained run. Input .h5 (z) or "
        ".lhe[.gz]; output .h5 (paired z, x) or Delphes-layout .root.",
    )
    add_apply_parser(
        sub,
        "unfold",
        apply="unfold_file",
        help="unfold detector-level events with a trained run",
        description="Apply the stochastic encoder E(x) of a trained run to passing events. "
        "Input .h5 (x) or .root (Delphes or CMS NanoAOD, told apart by the tree name); output "
        ".h5 (paired z, x) or .lhe.gz.",
    )


def add_apply_parser(sub: Any, name: str, *, help: str, description: str, apply: str) -> None:
    """``otus simulate`` and ``otus unfold``: a trained run applied to an event file with
    ``otus.models.apply.<apply>``."""
    p = sub.add_parser(name, help=help, description=description)
    p.add_argument("run", help="run folder from `otus fit`")
    p.add_argument("--input", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--repeats", type=int, default=1, help="stochastic samples per event")
    p.add_argument("--batch-size", type=int, default=65536)
    if name == "unfold":
        p.add_argument(
            "--iterations",
            type=int,
            default=0,
            metavar="N",
            help="N iterations that remove the answer's dependence on the training sample's "
            "parton-level spectrum: the unfolded events get weights that make the run's "
            "simulator fold them back onto the input, as iterative Bayesian unfolding "
            "iterates (the event weights of the output change); 0: the plain encoder E(x)",
        )
        p.add_argument(
            "--acceleration",
            type=float,
            default=None,
            metavar="A",
            help="exponent of each iteration's weight update (1: plain EM as in IBU; the "
            "default 2 moves about as far per iteration as two plain ones; at most 4)",
        )
        p.add_argument(
            "--full-phase-space",
            action="store_true",
            help="weight each unfolded event by 1/ε(z), the run's learnt probability to pass "
            "the detector: the full parton-level distribution instead of that of the passing "
            "events (the default; the output's provenance says which)",
        )
        p.add_argument(
            "--replicas",
            type=int,
            default=0,
            metavar="K",
            help="K replicas of the unfolding for uncertainties: replica k uses bootstrap "
            "member k of RUN (otus fit --replicas) and Poisson(1)-resampled input weights; "
            "output .h5 with every event once per replica and a 'replica' dataset",
        )
    add_seed(p)

    def run(args: argparse.Namespace) -> int:
        from otus.errors import OtusError
        from otus.models import apply as ap
        from otus.models.api import load_run

        if args.repeats < 1 or args.batch_size < 1:
            raise OtusError("--repeats and --batch-size must be >= 1")
        extra = {}
        if getattr(args, "replicas", 0):
            if args.replicas < 0:
                raise OtusError(f"--replicas must be >= 0, got {args.replicas}")
            extra["replicas"] = args.replicas
        if getattr(args, "iterations", 0):
            extra["iterations"] = args.iterations
        if getattr(args, "acceleration", None) is not None:
            extra["acceleration"] = args.acceleration
        if getattr(args, "full_phase_space", False):
            extra["full_phase_space"] = True
        sur = load_run(args.run)
        n = getattr(ap, apply)(
            sur,
            args.input,
            args.out,
            seed=args.seed,
            repeats=args.repeats,
            batch_size=args.batch_size,
            **extra,
        )
        what = ""
        if name == "unfold":
            space = "full" if args.full_phase_space else "passing-event"
            what = f" (the {space} parton-level distribution)"
        print(f"otus {name}: wrote {n} {sur.process.name} events to {args.out}{what}")
        return 0

    p.set_defaults(func=run)
