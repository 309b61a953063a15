"""``otus simulate``: parton-level events in, detector-level events out (decoder z → x)."""

from __future__ import annotations

from typing import Any

from otus.cli._common import add_apply_parser


def register(sub: Any) -> None:
    add_apply_parser(
        sub,
        "simulate",
        apply="simulate_file",
        help="simulate detector-level events with a trained run",
        description="Apply the stochastic decoder D(z) of a trained run. Input .h5 (z) or "
        ".lhe[.gz]; output .h5 (paired z, x) or Delphes-layout .root.",
    )
