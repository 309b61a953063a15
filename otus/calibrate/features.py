"""Classifier features for reweighting, computed from detector-level rows x.

Default features per process (the φ-free x observables: azimuthal symmetry makes φ carry no
information, and raw px, py mix φ into every column):

- zee: pT and η of e− and e+, m_ee, pT of the pair;
- ttbar: pT and η of the electron and the four jets, MET, m_W_had, m_t_had, m_t_lep, m_tt.

Any name of :func:`otus.physics.observables.observables` may be chosen instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from otus.errors import ConfigError
from otus.physics.observables import observables
from otus.processes import Process


def default_features(process: Process) -> tuple[str, ...]:
    """The default feature names of ``process`` (see the module docstring)."""
    if process.name == "zee":
        return ("e-_pt", "e-_eta", "e+_pt", "e+_eta", "m_ee", "pt_ee")
    objs = [o for o in process.x_objects if o != "met"]
    return (
        *(f"{o}_{v}" for o in objs for v in ("pt", "eta")),
        "met_pt",
        "m_W_had",
        "m_t_had",
        "m_t_lep",
        "m_tt",
    )


def feature_matrix(
    process: Process, x: np.ndarray, names: Sequence[str] | None = None
) -> np.ndarray:
    """Features [N, F] (float64) of passing detector rows ``x`` [N, Dx] (no NaN allowed)."""
    names = tuple(names) if names else default_features(process)
    obs = observables(process, np.asarray(x, np.float64), "x")
    unknown = [n for n in names if n not in obs]
    if unknown:
        raise ConfigError(
            f"unknown features {unknown} for {process.name}; choose from {', '.join(sorted(obs))}"
        )
    return np.stack([obs[n] for n in names], axis=1) if len(x) else np.zeros((0, len(names)))
