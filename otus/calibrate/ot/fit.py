"""Fit an ICNN transport map between two samples with the min-max dual: :func:`fit_ot_map`.

:func:`fit_ot_map` trains convex potentials ``f`` (target) and ``g`` (source) on two samples
(:class:`~otus.calibrate.ot.dual.OTDual`) and returns an
:class:`~otus.calibrate.ot.map.OTMap`, whose :meth:`~otus.calibrate.ot.map.OTMap.transport`
moves source events by :math:`\\nabla g` (Makkuva et al., arXiv:1908.10962; calibration use
as in Pollard & Windischhofer, arXiv:2107.08648).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from otus.calibrate.ot.config import DualConfig, config_dict
from otus.calibrate.ot.dual import Batch, OTDual, TwoSampleBatches, gaussian_init, take
from otus.calibrate.ot.map import OTMap, standardisation
from otus.calibrate.training import fit, make_trainer
from otus.errors import TrainingError
from otus.transport.ot_dual import check_samples


def fit_ot_map(
    x: Tensor,
    y: Tensor,
    *,
    cx: Tensor | None = None,
    cy: Tensor | None = None,
    wx: Tensor | None = None,
    wy: Tensor | None = None,
    config: DualConfig | None = None,
    accelerator: str = "cpu",
    progress: bool = False,
) -> OTMap:
    """Fit the OT map from source ``x`` [N, D] to target ``y`` [M, D] (optionally given
    conditions ``cx`` [N, C], ``cy`` [M, C] and weights ``wx`` [N], ``wy`` [M]).

    Both samples are standardised with the source statistics (one isotropic scale unless
    ``config.per_feature_scale``; an isotropic scale keeps the Euclidean OT map exact), split
    into train/validation, and the best validation state (smallest sliced W2 between
    transported source and target) is returned. ``info`` holds the options, the history and
    the final diagnostics. Options: :class:`~otus.calibrate.ot.config.DualConfig`.
    """
    cfg = config or DualConfig()
    check_samples(x, y, cx=cx, cy=cy, wx=wx, wy=wy)
    x, y = x.float(), y.float()
    shift, scale = standardisation(x, per_feature=cfg.per_feature_scale)
    cshift = cscale = None
    if cx is not None and cy is not None:
        cshift, cscale = standardisation(cx.float(), per_feature=True)
        cx, cy = (cx.float() - cshift) / cscale, (cy.float() - cshift) / cscale
    xs, ys = (x - shift) / scale, (y - shift) / scale
    gen = torch.Generator().manual_seed(cfg.seed)

    def split(n: int) -> tuple[Tensor, Tensor]:
        perm = torch.randperm(n, generator=gen)
        nv = max(1, round(cfg.val_fraction * n)) if cfg.val_fraction > 0 else 0
        return perm[nv:], perm[:nv] if nv else perm

    (trx, vax), (try_, vay) = split(len(xs)), split(len(ys))
    wxf = None if wx is None else wx.float()
    wyf = None if wy is None else wy.float()
    train = TwoSampleBatches(
        xs[trx],
        ys[try_],
        cx=take(cx, trx),
        cy=take(cy, try_),
        wx=take(wxf, trx),
        wy=take(wyf, try_),
        batch_size=cfg.batch_size,
        inner_steps=cfg.inner_steps,
        steps_per_epoch=min(cfg.val_every, cfg.steps),
        seed=cfg.seed,
    )
    parts = {
        "x": xs[vax],
        "y": ys[vay],
        "cx": take(cx, vax),
        "cy": take(cy, vay),
        "wx": take(wxf, vax),
        "wy": take(wyf, vay),
    }
    val: Batch = {k: v for k, v in parts.items() if v is not None}
    module = OTDual(x.shape[1], cond_dim=0 if cx is None else cx.shape[1], config=cfg)
    if cfg.init == "gaussian":
        gaussian_init(module, xs[trx], ys[try_])
    trainer = make_trainer(
        max_epochs=max(1, math.ceil(cfg.steps / cfg.val_every)),
        accelerator=accelerator,
        progress=progress,
    )
    fit(
        trainer,
        module,
        DataLoader(train, batch_size=None),
        # A list is a map-style dataset to DataLoader, which is typed for Dataset only.
        DataLoader([val], batch_size=None, collate_fn=lambda b: b),  # type: ignore[arg-type]
    )
    if not module.history or module.history[-1]["step"] != module.step_count:
        # score the last state too (a time-limited run can stop between validations)
        dev = next(module.parameters()).device
        module.validate({k: v.to(dev) for k, v in val.items()}, guard=False)
    if module.best.state is None:
        raise TrainingError(
            "OT training produced no finite validation score; lower the learning rate"
        )
    module.best.restore(module)
    module.cpu().eval()
    best = next(h for h in module.history if int(h["step"]) == module.best.step)
    info = {
        **config_dict(cfg),
        "best_step": module.best.step,
        "best": best,
        "last": dict(module.history[-1]),
        "history": module.history,
        "reverts": module.reverts,
        "steps_done": module.step_count,
    }
    return OTMap(module.g, module.f, shift, scale, cshift, cscale, info)
