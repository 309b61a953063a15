"""``otus simulate``: parton-level events in, detector-level events out (decoder z → x)."""

from __future__ import annotations

import argparse
from typing import Any

from otus.cli._common import add_seed


def register(sub: Any) -> None:
    p = sub.add_parser(
        "simulate", help="simulate detector-level events with a trained run",
        description="Apply the stochastic decoder D(z) of a trained run. Input .h5 (z) or "
                    ".lhe[.gz]; output .h5 (paired z, x) or Delphes-layout .root.")
    p.add_argument("run", help="run folder from `otus fit`")
    p.add_argument("--input", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--repeats", type=int, default=1, help="stochastic samples per event")
    p.add_argument("--batch-size", type=int, default=65536)
    add_seed(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from otus.errors import OtusError
    from otus.models.api import load_run
    from otus.models.apply import simulate_file

    if args.repeats < 1 or args.batch_size < 1:
        raise OtusError("--repeats and --batch-size must be >= 1")
    sur = load_run(args.run)
    n = simulate_file(sur, args.input, args.out, seed=args.seed, repeats=args.repeats,
                      batch_size=args.batch_size)
    print(f"otus simulate: wrote {n} {sur.process.name} events to {args.out}")
    return 0
