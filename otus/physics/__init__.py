"""Physics core: four-vectors, selections and observables."""

from otus.physics.fourvec import (
    delta_phi,
    delta_r,
    eta,
    from_ptetaphim,
    invariant_mass,
    mass,
    on_shell,
    phi,
    pt,
    to_ptetaphim,
)

__all__ = [
    "delta_phi",
    "delta_r",
    "eta",
    "from_ptetaphim",
    "invariant_mass",
    "mass",
    "on_shell",
    "phi",
    "pt",
    "to_ptetaphim",
]
