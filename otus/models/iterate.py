"""Prior-independent unfolding: iterated posterior reweighting of the OTUS encoder.

The encoder of a run trained with pairs samples the training sample's posterior
p₀(z | x) ∝ p(x | z) ε(z) p₀(z): its answer leans toward the training sample's parton-level
spectrum p₀ (the prior). For another spectrum p the posterior is p₀(z | x) · p(z)/p₀(z), so
the encoder's draws need only a weight. As in iterative Bayesian unfolding (D'Agostini,
NIM A 362 (1995) 487) and OmniFold (Andreassen et al., arXiv:1911.09107), p is not known and
is iterated: the unfolded sample of one iteration is the prior of the next,

    r_t(z) = u_{t-1}(z) / p₀(z)    (a classifier of unfolded vs training z, passing events)
    q_t(z | x_i) ∝ E(z | x_i) · r_t(z)    (self-normalised over R draws per event)
    u_t = Σ_i w_i q_t(· | x_i).

The ratio is that of the passing events' spectra, p(z | pass)/p₀(z | pass) = p(z)/p₀(z) up to
a constant (ε(z) cancels), so the training prior is the z of the passing training events.
Each iteration trains one classifier from scratch (:func:`otus.calibrate.reweight.classifier.
train_classifier`); the networks of the run are not touched. Few iterations regularise, as
in IBU: the first moves most of the way, later ones follow the data's fluctuations.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from otus.calibrate.reweight.config import ReweightConfig
from otus.errors import OtusError
from otus.physics.observables import observables
from otus.processes import Process

if TYPE_CHECKING:
    from otus.models.api import Surrogate

# (x rows [N, Dx], seed, draws R) -> z rows [N·R, Dz], the draws of one event adjacent
Sampler = Callable[[np.ndarray, int, int], np.ndarray]


def prior_features(process: Process) -> tuple[str, ...]:
    """Parton-level classifier features: pT and η of each object and the card's observables
    (φ-free, like the detector-level defaults of :meth:`Process.default_features`)."""
    objs = tuple(f"{o}_{v}" for o in process.z_objects for v in ("pt", "eta"))
    return objs + tuple(process.observable_names("z")) + tuple(process.z_columns)


def feature_matrix(process: Process, z: np.ndarray) -> np.ndarray:
    """:func:`prior_features` of parton-level rows ``z`` [N, Dz] as a float64 matrix."""
    obs = observables(process, np.asarray(z, np.float64), "z")
    cols = [obs[n] for n in prior_features(process)]
    f = np.stack(cols, axis=1) if len(z) else np.zeros((0, len(cols)))
    return np.where(np.isfinite(f), f, 0.0)


@dataclass
class IterationReport:
    """What each iteration did: the classifier's largest log-ratio and the effective number
    of draws per event (Kish), averaged over events."""

    max_log_ratio: list[float] = field(default_factory=list)
    draws_effective: list[float] = field(default_factory=list)


# Iteration classifiers: one network, early stopping; a smaller net and fewer epochs than
# the reweighting defaults (the ratio of two smooth spectra, refitted each iteration).
ITERATION_CLASSIFIER = ReweightConfig(hidden=(32, 32), epochs=30, patience=4, ema_epochs=3.0)


def _softmax_rows(logw: np.ndarray) -> np.ndarray:
    a = np.exp(logw - logw.max(axis=1, keepdims=True))
    return a / a.sum(axis=1, keepdims=True)


def _choose(rng: np.random.Generator, prob: np.ndarray, k: int) -> np.ndarray:
    """``k`` draws (with replacement) per row of the row-stochastic ``prob`` [N, R]:
    column indices [N, k]."""
    cum = np.cumsum(prob, axis=1)
    u = rng.random((len(prob), k)) * cum[:, -1:]
    return np.minimum((u[:, :, None] > cum[:, None, :]).sum(axis=2), prob.shape[1] - 1)


def iterate_unfolding(
    sample: Sampler,
    x: np.ndarray,
    w_x: np.ndarray,
    f_prior: np.ndarray,
    w_prior: np.ndarray,
    features: Callable[[np.ndarray], np.ndarray],
    *,
    iterations: int,
    seed: int,
    repeats: int = 1,
    draws: int = 32,
    max_log_ratio: float = np.log(20.0),
    config: ReweightConfig = ITERATION_CLASSIFIER,
    report: IterationReport | None = None,
) -> np.ndarray:
    """Unfold passing rows ``x`` [N, Dx] (weights ``w_x``) with ``iterations`` rounds of
    prior reweighting (module docstring); ``iterations`` 0 returns the encoder's first
    ``repeats`` draws per event. ``f_prior`` [M, F] (weights ``w_prior``) are the
    :func:`feature_matrix` rows of the training sample's passing z; ``features`` maps z rows
    to the same features. Returns z rows [N·repeats, Dz], the repeats of one event adjacent.
    Per-event log-ratios are clipped to ±``max_log_ratio`` (draws outside the training
    prior's support are not blown up)."""
    from otus.calibrate.reweight.classifier import predict_logit, train_classifier

    if iterations < 0 or repeats < 1:
        raise OtusError("--iterations must be >= 0 and --repeats >= 1")
    n = len(x)
    if iterations == 0:
        return sample(x, seed, repeats)
    r = max(draws, repeats)
    z = sample(x, seed, r)  # [N·R, Dz]
    f = features(z)
    rng = np.random.default_rng([seed, 0x1BF])
    logw = np.zeros((n, r))
    for t in range(iterations):
        # The current unfolded sample u_{t-1}: two draws per event from q_{t-1}.
        pick = _choose(rng, _softmax_rows(logw), 2)
        rows = (np.arange(n)[:, None] * r + pick).ravel()
        w_u = np.repeat(np.asarray(w_x, np.float64) / 2.0, 2)
        net = train_classifier(
            f_prior, w_prior, f[rows], w_u, config=config, seed=seed + 1000 * (t + 1)
        )
        lg = predict_logit(net, f).reshape(n, r)
        lg = lg - np.median(lg)  # a constant cancels per event; keep the clip symmetric
        logw = np.clip(lg, -max_log_ratio, max_log_ratio)
        if report is not None:
            q = _softmax_rows(logw)
            report.max_log_ratio.append(float(np.abs(lg).max()))
            report.draws_effective.append(float(np.mean(1.0 / (q**2).sum(axis=1))))
    pick = _choose(rng, _softmax_rows(logw), repeats)
    rows = (np.arange(n)[:, None] * r + pick).ravel()
    return z[rows]


def training_z_path(run: Path) -> Path:
    """The parton-level file a run was trained on (``provenance.json``: ``z_data``, or the
    last of its inputs for runs that predate it)."""
    import json

    prov_path = run / "provenance.json"
    try:
        prov = json.loads(prov_path.read_text())
    except (OSError, ValueError):
        raise OtusError(f"{prov_path}: unreadable; give the training z file with --prior") from None
    z = prov.get("z_data") or (list(prov.get("inputs") or {}) or [None])[-1]
    if z is None or not Path(z).is_file():
        raise OtusError(
            f"{run}: its training z file {z!r} is not there; give it with --prior (the "
            f"parton-level events the run was trained on)"
        )
    return Path(z)


def training_prior(
    sur: Surrogate,
    path: str | os.PathLike[str] | None = None,
    *,
    limit: int = 200_000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Features and weights of the passing parton-level events of the training sample
    (``path``, default :func:`training_z_path`), at most ``limit`` rows (a seeded subset).
    Events pass by the file's detector flags; a file of z alone passes them through the
    run's own ε(z) and acceptance (:meth:`Surrogate.simulate`)."""
    from otus.io.h5 import iter_chunks

    src = Path(path) if path is not None else training_z_path(sur.run_dir)
    zs, ws = [], []
    for k, ev in enumerate(iter_chunks(src, 65536, sur.process.name)):
        if ev.z is None:
            raise OtusError(f"{src}: holds no parton-level z (the training prior)")
        assert ev.weight is not None
        if ev.x is not None:
            assert ev.x_pass is not None
            keep = ev.x_pass
        else:
            _, keep = sur.simulate(ev.z, seed=seed + 7919 * k, with_pass=True)
        zs.append(ev.z[keep])
        ws.append(ev.weight[keep])
    z, w = np.concatenate(zs), np.concatenate(ws)
    if len(z) == 0:
        raise OtusError(f"{src}: no passing events for the training prior")
    if len(z) > limit:
        idx = np.sort(np.random.default_rng([seed, 0x9E1]).choice(len(z), limit, replace=False))
        z, w = z[idx], w[idx]
    return feature_matrix(sur.process, z), w
