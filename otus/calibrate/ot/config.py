"""Options of the ICNN transport fits: the one home of their defaults (no torch import, so
the CLI reads them cheaply).

:class:`DualConfig` drives :func:`otus.calibrate.ot.fit.fit_ot_map` (the min-max dual) and
:class:`RegionConfig` :func:`otus.calibrate.ot.region.fit_region_map` (the region-consistent
objective). ``otus calibrate fit`` takes its defaults and help from these fields, and both
are saved with the fitted map (:func:`config_dict`). A bad value raises
:class:`~otus.errors.ConfigError` whose message starts with the field's name.

>>> DualConfig(steps=100).inner_steps
5
>>> DualConfig(steps=0)
Traceback (most recent call last):
...
otus.errors.ConfigError: steps must be >= 1, got 0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from otus.errors import ConfigError

SOLVERS = ("minmax", "conjugate")  # OTDual's inner solvers
INITS = ("gaussian", "identity")  # starting maps of the dual


def _at_least(owner: object, lowest: int, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        if value < lowest:
            raise ConfigError(f"{name} must be >= {lowest}, got {value}")


def _non_negative(owner: object, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        if not value >= 0:
            raise ConfigError(f"{name} must be >= 0, got {value}")


def _check_common(c: DualConfig | RegionConfig) -> None:
    """The options both objectives share: network, budget, learning rate."""
    if not c.hidden or min(c.hidden) < 1:
        raise ConfigError(f"hidden must be positive layer widths, got {c.hidden}")
    if not c.lr > 0:
        raise ConfigError(f"lr must be > 0, got {c.lr}")
    _non_negative(c, "strong_convexity")


@dataclass(frozen=True)
class DualConfig:
    """Options of the min-max dual fit (:func:`~otus.calibrate.ot.fit.fit_ot_map`,
    :class:`~otus.calibrate.ot.dual.OTDual`)."""

    # Defaults: the best CPU recipe of experiments/ot_bench.py (results/ot.md: L2-UVP 0.14 %
    # at D = 8 and 0.39 % at D = 16 in 10 minutes of one core, on pairs not used to tune it);
    # the budget is max_time, within which the learning rate anneals, or steps, whichever
    # comes first.
    hidden: tuple[int, ...] = (64, 64, 64)  # widths of the ICNN layers of f and g
    steps: int = 10000  # f steps
    batch_size: int = 1024  # events per step
    inner_steps: int = 5  # g steps per f step
    lr: float = 5e-3  # Adam learning rate, cosine-decayed to 2 %
    strong_convexity: float = 1e-3  # added to both potentials
    val_fraction: float = 0.2  # held out for validation (0: validate on the training set)
    val_every: int = 250  # f steps between validations (the best validated state is kept)
    # standardise each feature on its own (True) or with one isotropic scale, which keeps
    # the Euclidean OT map exact (per feature: L2-UVP 0.90 % instead of 0.39 % at D = 16)
    per_feature_scale: bool = False
    init: str = "gaussian"  # one of INITS: the Gaussian (linear) OT map or the identity
    solver: str = "minmax"  # one of SOLVERS
    conj_iters: int = 10  # conjugate-solver iterations per step
    cycle: float = 0.0  # weight of the W2GN cycle regulariser (0: off)
    clip_grad: float = 0.0  # max gradient norm per step (0: off)
    # revert to the best state (fresh Adam moments, half the lr) when a validation score
    # exceeds guard × the best one (0: off)
    guard: float = 3.0
    max_time: float = 600.0  # seconds of training at most (0: no limit)
    seed: int = 0

    def __post_init__(self) -> None:
        _at_least(self, 1, "steps", "inner_steps", "batch_size", "val_every", "conj_iters")
        _check_common(self)
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must lie in [0, 1), got {self.val_fraction}")
        if self.init not in INITS:
            raise ConfigError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.solver not in SOLVERS:
            raise ConfigError(f"solver must be one of {', '.join(SOLVERS)}, got {self.solver!r}")
        _non_negative(self, "cycle", "clip_grad", "guard", "max_time")


@dataclass(frozen=True)
class RegionConfig:
    """Options of the region-consistent fit (:func:`~otus.calibrate.ot.region.fit_region_map`)."""

    hidden: tuple[int, ...] = (64, 64, 64)  # widths of the ICNN layers of g
    steps: int = 300
    batch_size: int = 16384  # MC and data events per step
    lr: float = 3e-3  # Adam learning rate, cosine-decayed to 2 %
    # random directions of the sliced distance per step, besides the coordinate axes
    n_projections: int = 64
    val_fraction: float = 0.2  # held-out events
    val_every: int = 25  # steps between validations (the best validated state is kept)
    strong_convexity: float = 1e-3
    noise_dims: int = 0  # standard-normal inputs of a stochastic map (0: deterministic)
    seed: int = 0

    def __post_init__(self) -> None:
        _at_least(self, 1, "steps")
        _at_least(self, 2, "batch_size")
        _at_least(self, 1, "n_projections", "val_every")
        _check_common(self)
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must lie in (0, 1), got {self.val_fraction}")
        _non_negative(self, "noise_dims")


def config_dict(config: DualConfig | RegionConfig) -> dict[str, Any]:
    """The options as plain values (``hidden`` a list), for a map's ``info`` and JSON."""
    out = asdict(config)
    out["hidden"] = list(config.hidden)
    return out
