r"""Classifier reweighting of simulation (MC) toward data, with k-fold training.

A classifier :math:`s(x)` separates data (label 1) from MC (label 0), trained with the event
weights in a weighted binary cross-entropy (negative weights enter the loss with their sign;
they are never dropped). With the two classes balanced to equal total weight, the optimum is
:math:`s = p_d/(p_d+p_m)`, so the density ratio is

.. math:: r(x) = \frac{p_{\rm data}(x)}{p_{\rm MC}(x)} = \frac{s}{1-s} = e^{\mathrm{logit}(x)},

and the MC weights become :math:`w' = w \cdot c \cdot \min(r, r_{\max})`, with :math:`c`
fixed on the training region so that :math:`\sum w' = \sum w_{\rm data}` (``normalise="data"``).
References: the likelihood-ratio trick, Cranmer et al. arXiv:1506.02169; DCTR,
Andreassen & Nachman arXiv:1907.08209.

k-fold: events are assigned to folds by a seeded 64-bit hash of their feature row, so the same
event always lands in the same fold. Model j is trained on all folds but j and weights the
events of fold j; an event seen in training is therefore weighted only by the model that did
not see it, also when the training file is re-read by ``apply``.

Ensembling (``repeats`` = R > 1): the k-fold training is repeated R times, each repeat with
its own fold assignment (a re-mix of the event hash) and its own network initialisations.
A training event's logit is the mean over the R repeats of the one model per repeat that did
not see it, so the k-fold guarantee holds for every term of the mean. Averaging logits (the
geometric mean of the ratios) rather than ratios keeps :math:`r>0` and damps the spread of the
networks where data are scarce. Events never seen in training get the mean logit of all
R·k models.

Calibration (``calibrate_logit``, default on): the mean logits are Platt-scaled,
:math:`\log r = a\,\bar\ell + b`, with (a, b) fitted by the balanced weighted BCE on the
out-of-fold logits of all training events. It corrects the early-stopped networks' slight
under-confidence (a ≈ 1.006-1.009 on the mixture closure) from held-out predictions only.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from otus.calibrate.reweight.classifier import (
    Classifier,
    fit_logit_calibration,
    predict_logit,
    train_classifier,
)
from otus.calibrate.reweight.clipping import ClipReport, clip_ratio
from otus.calibrate.reweight.config import ReweightConfig
from otus.errors import InputFileError, TrainingError


class OverlapWarning(UserWarning):
    """Data populate regions that the MC does not cover: reweighting cannot fix those."""


# ----------------------------------------------------------------------------- core pieces
def row_hash(features: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Seeded 64-bit hash [N] (as int64) of each row of ``features`` [N, F] (splitmix64 mix)."""
    bits = np.ascontiguousarray(features, dtype=np.float64).view(np.uint64)
    h = np.full(len(bits), _mix(np.array([seed], dtype=np.uint64))[0], dtype=np.uint64)
    for j in range(bits.shape[1]):
        h = _mix(h ^ bits[:, j])
    return h.view(np.int64)


def _mix(z: np.ndarray) -> np.ndarray:
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def fold_of(hashes: np.ndarray, k: int, *, repeat: int = 0) -> np.ndarray:
    """Fold index in [0, k) of each hashed event in k-fold repeat ``repeat`` (0, 1, ...).

    Repeat 0 uses the hash itself; a later repeat re-mixes it with the repeat number, so
    its folds are independent of those of the other repeats.
    """
    h = hashes.view(np.uint64)
    if repeat:
        h = _mix(h ^ _mix(np.array([repeat], dtype=np.uint64))[0])
    return (h % np.uint64(k)).astype(np.int64)


def fold_table(hashes: np.ndarray, k: int, repeats: int) -> np.ndarray:
    """Folds [N, R] of each hashed event in each of the R k-fold repeats."""
    return np.stack([fold_of(hashes, k, repeat=r) for r in range(repeats)], axis=1)


# ----------------------------------------------------------------------------- fit / apply
@dataclass
class ReweightFit:
    """A fitted k-fold reweighter and its out-of-fold results on the training sample."""

    config: ReweightConfig
    features: tuple[str, ...]
    models: list[Classifier]  # R·k models; model r·k + j is trained without fold j of repeat r
    norm: float  # c, the overall normalisation
    train_hashes: np.ndarray  # sorted int64 hashes of the training events (MC and data)
    train_folds: np.ndarray  # folds [N, R] of each of train_hashes in each repeat
    mc_ratio: np.ndarray  # out-of-fold r of each training MC event (before clipping)
    mc_weights: np.ndarray  # new MC weights w * c * min(r, clip)
    data_ratio: np.ndarray  # out-of-fold r of each data event (overlap diagnostic)
    clip_report: ClipReport
    overlap: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    calibration: tuple[float, float] = (1.0, 0.0)  # Platt (a, b): log r = a·mean logit + b

    def logit(self, x: np.ndarray) -> np.ndarray:
        """log r for events x [N, F]: a·ℓ + b with (a, b) the Platt calibration and ℓ, for a
        training event, the mean over the repeats of the model that did not see it, else the
        mean over all R·k models."""
        k = self.config.k_folds
        h = row_hash(x, seed=self.config.seed)
        n_train = len(self.train_hashes)
        pos = np.searchsorted(self.train_hashes, h).clip(0, max(n_train - 1, 0))
        seen = (self.train_hashes[pos] == h) if n_train else np.zeros(len(h), bool)
        out = np.zeros(len(x))
        if (~seen).any():
            out[~seen] = np.mean([predict_logit(m, x[~seen]) for m in self.models], axis=0)
        if seen.any():
            folds = self.train_folds[pos[seen]]  # [n_seen, R]
            xs, acc = x[seen], np.zeros(int(seen.sum()))
            for r in range(folds.shape[1]):
                for j in range(k):
                    sel = folds[:, r] == j
                    if sel.any():
                        acc[sel] += predict_logit(self.models[r * k + j], xs[sel])
            out[seen] = acc / folds.shape[1]
        a, b = self.calibration
        return a * out + b

    def multiplier(self, x: np.ndarray) -> tuple[np.ndarray, ClipReport]:
        """The factor c·min(r, clip) [N] that multiplies the weights of events x [N, F]."""
        r, rep = clip_ratio(_exp_ratio(self.logit(x)), clip=self.config.clip)
        return self.norm * r, rep

    def to_dict(self) -> dict[str, Any]:
        """Plain content for ``torch.save`` that ``torch.load(weights_only=True)`` reads."""
        cfg = asdict(self.config)
        cfg["hidden"] = list(cfg["hidden"])
        return {
            "format": "otus-reweight-1",
            "config": cfg,
            "features": list(self.features),
            "norm": float(self.norm),
            "states": [m.state_dict() for m in self.models],
            "train_hashes": torch.as_tensor(self.train_hashes),
            "train_folds": torch.as_tensor(self.train_folds),
            "meta": dict(self.meta),
            "calibration": list(self.calibration),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReweightFit:
        cfg = dict(d["config"])
        cfg["hidden"] = tuple(cfg["hidden"])
        config = ReweightConfig(**cfg)
        models = []
        for st in d["states"]:
            m = Classifier(len(d["features"]), config.hidden)
            m.load_state_dict(st)
            models.append(m.eval())
        empty = np.zeros(0)
        folds = d["train_folds"].numpy()
        return cls(
            config,
            tuple(d["features"]),
            models,
            float(d["norm"]),
            d["train_hashes"].numpy(),
            folds.reshape(len(folds), -1),  # a 1-D table: one repeat (older files)
            empty,
            empty,
            empty,
            ClipReport.none(),
            {},
            dict(d.get("meta", {})),
            _pair(d.get("calibration", (1.0, 0.0))),  # older files: none
        )


def _pair(v: Sequence[float]) -> tuple[float, float]:
    a, b = v
    return float(a), float(b)


def _exp_ratio(logit: np.ndarray) -> np.ndarray:
    """r = exp(logit), in float64; an overflow is an error, never silently replaced."""
    with np.errstate(over="ignore"):
        r = np.exp(np.asarray(logit, np.float64))
    if not np.all(np.isfinite(r)):
        raise TrainingError(
            f"{int(np.sum(~np.isfinite(r)))} classifier ratios are not finite "
            "(logit beyond 709); the classifier has separated the samples"
        )
    return r


def fit_reweighter(
    x_mc: np.ndarray,
    w_mc: np.ndarray,
    x_data: np.ndarray,
    w_data: np.ndarray,
    *,
    features: tuple[str, ...] | None = None,
    config: ReweightConfig | None = None,
) -> ReweightFit:
    """Fit the k-fold reweighter on features x_mc [N, F], x_data [M, F] with weights.

    Returns out-of-fold ratios and new weights of the MC events, the normalisation c,
    a clipping report and an overlap report (an :class:`OverlapWarning` is issued when more
    than ``overlap_tolerance`` of the data weight has r > ``overlap_ratio``).
    """
    cfg = config or ReweightConfig()
    x_mc, x_data = np.asarray(x_mc, np.float64), np.asarray(x_data, np.float64)
    w_mc, w_data = np.asarray(w_mc, np.float64), np.asarray(w_data, np.float64)
    _check_inputs(x_mc, w_mc, x_data, w_data, cfg)
    names = tuple(features) if features else tuple(f"f{i}" for i in range(x_mc.shape[1]))
    h_mc, h_data = row_hash(x_mc, seed=cfg.seed), row_hash(x_data, seed=cfg.seed)
    k, n_rep = cfg.k_folds, cfg.repeats
    f_mc, f_data = fold_table(h_mc, k, n_rep), fold_table(h_data, k, n_rep)
    for name, f in (("MC", f_mc), ("data", f_data)):
        if min(np.bincount(f[:, r], minlength=k).min() for r in range(n_rep)) == 0:
            raise InputFileError(f"too few {name} events ({len(f)}) for {k} folds")
    models: list[Classifier] = []
    logit_mc, logit_data = np.zeros(len(x_mc)), np.zeros(len(x_data))
    for r in range(n_rep):
        for j in range(k):
            tm, td = f_mc[:, r] != j, f_data[:, r] != j
            net = train_classifier(
                x_mc[tm], w_mc[tm], x_data[td], w_data[td], config=cfg, seed=_seed(cfg, r, j)
            )
            models.append(net)
            logit_mc[~tm] += predict_logit(net, x_mc[~tm]) / n_rep
            logit_data[~td] += predict_logit(net, x_data[~td]) / n_rep
    calib = (
        fit_logit_calibration(logit_mc, w_mc, logit_data, w_data, loss=cfg.loss)
        if cfg.calibrate_logit
        else (1.0, 0.0)
    )
    logit_mc, logit_data = (calib[0] * lg + calib[1] for lg in (logit_mc, logit_data))
    r_mc, r_data = _exp_ratio(logit_mc), _exp_ratio(logit_data)
    r_clip, rep = clip_ratio(r_mc, clip=cfg.clip, weights=w_mc)
    norm = _normalisation(w_mc, r_clip, w_data, cfg.normalise)
    hashes = np.concatenate([h_mc, h_data])
    folds = np.concatenate([f_mc, f_data])
    order = np.argsort(hashes, kind="stable")
    return ReweightFit(
        cfg,
        names,
        models,
        norm,
        hashes[order],
        folds[order],
        r_mc,
        w_mc * norm * r_clip,
        r_data,
        rep,
        overlap_report(r_data, w_data, x_mc, x_data, config=cfg, names=names),
        calibration=calib,
    )


def _seed(cfg: ReweightConfig, repeat: int, fold: int) -> int:
    """Training seed of model (repeat, fold); repeat 0 keeps the seeds of a plain k-fold."""
    return cfg.seed * 1000 + repeat * cfg.k_folds + fold


def _normalisation(w_mc: np.ndarray, r: np.ndarray, w_data: np.ndarray, mode: str) -> float:
    tot = float(np.sum(w_mc * r))
    if mode == "none":
        return 1.0
    if not tot > 0:
        raise TrainingError(f"the reweighted MC sums to {tot:g}; cannot normalise")
    return float(np.sum(w_data if mode == "data" else w_mc)) / tot


def _check_inputs(
    x_mc: np.ndarray, w_mc: np.ndarray, x_data: np.ndarray, w_data: np.ndarray, cfg: ReweightConfig
) -> None:
    for name, x, w in (("MC", x_mc, w_mc), ("data", x_data, w_data)):
        if x.ndim != 2 or len(x) == 0:
            raise InputFileError(f"the {name} sample is empty (no events in the region?)")
        if w.shape != (len(x),):
            raise InputFileError(f"the {name} weights have shape {w.shape}, expected ({len(x)},)")
        if not np.all(np.isfinite(x)) or not np.all(np.isfinite(w)):
            raise InputFileError(f"the {name} features or weights hold NaN or inf")
        if not np.any(w != 0):
            raise InputFileError(f"all {name} weights are zero")
    if x_mc.shape[1] != x_data.shape[1]:
        raise InputFileError(f"MC has {x_mc.shape[1]} features but data has {x_data.shape[1]}")


def overlap_report(
    r_data: np.ndarray,
    w_data: np.ndarray,
    x_mc: np.ndarray,
    x_data: np.ndarray,
    *,
    config: ReweightConfig,
    names: tuple[str, ...],
) -> dict[str, Any]:
    """How much of the data lies where the MC has (almost) no support; warns if too much.

    Two measures: the data weight fraction whose out-of-fold ratio exceeds
    ``overlap_ratio`` (the classifier is sure the event is data), and, per feature, the
    data weight fraction outside the MC range.
    """
    wabs = np.abs(w_data)
    frac = float(np.sum(wabs[r_data > config.overlap_ratio]) / np.sum(wabs))
    lo, hi = x_mc.min(0), x_mc.max(0)
    outside = {
        n: float(np.sum(wabs[(x_data[:, i] < lo[i]) | (x_data[:, i] > hi[i])]) / np.sum(wabs))
        for i, n in enumerate(names)
    }
    worst = max(outside, key=outside.__getitem__)
    ok = frac <= config.overlap_tolerance and outside[worst] <= config.overlap_tolerance
    if not ok:
        warnings.warn(
            f"supports do not overlap: {100 * frac:.2f}% of the data weight has ratio "
            f"> {config.overlap_ratio:g} and {100 * outside[worst]:.2f}% lies outside the MC "
            f"range of {worst}; reweighting cannot create events there",
            OverlapWarning,
            stacklevel=3,
        )
    return {
        "data_frac_high_ratio": frac,
        "ratio_threshold": config.overlap_ratio,
        "data_frac_outside_mc_range": outside,
        "ok": ok,
    }
