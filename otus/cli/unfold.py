"""``otus unfold``: detector-level events in, parton-level events out (encoder x → z)."""

from __future__ import annotations

from typing import Any

from otus.cli._common import add_apply_parser


def register(sub: Any) -> None:
    add_apply_parser(
        sub,
        "unfold",
        apply="unfold_file",
        help="unfold detector-level events with a trained run",
        description="Apply the stochastic encoder E(x) of a trained run to passing events. "
        "Input .h5 (x) or .root (Delphes or CMS NanoAOD, told apart by the tree name); output "
        ".h5 (paired z, x) or .lhe.gz.",
    )
