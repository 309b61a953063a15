"""Classifier features for reweighting, computed from detector-level rows x.

Default features (the φ-free x observables: azimuthal symmetry makes φ carry no information,
and raw px, py mix φ into every column): pT and η of each object, the pT of missing ET, and
the observables of the process card — for zee pT and η of e− and e+, m_ee, pT of the pair.

Any name of :func:`otus.physics.observables.observables` may be chosen instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from otus.errors import ConfigError
from otus.physics.observables import observables
from otus.processes import Process


def default_features(process: Process) -> tuple[str, ...]:
    """The default feature names of ``process`` (see :meth:`Process.default_features`)."""
    return process.default_features()


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
