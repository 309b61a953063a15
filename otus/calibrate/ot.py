"""ICNN optimal-transport calibration: a Lightning module for the Makkuva min-max dual.

:func:`fit_ot_map` trains convex potentials ``f`` (target) and ``g`` (source) on two samples
and returns an :class:`OTMap`, whose :meth:`OTMap.transport` moves source events by
:math:`\\nabla g` (Makkuva et al., arXiv:1908.10962; calibration use as in Pollard &
Windischhofer, arXiv:2107.08648). Training alternates ``inner_steps`` Adam steps on ``g`` with
one step on ``f``, each g step on a fresh source batch; validation logs the duality gap, the
two W2 estimates and a sliced-Wasserstein distance between the transported and the target
validation samples, and the state with the smallest such distance is kept (min-max training
can blow up, so the last state is not trusted).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from otus.errors import InputFileError, OtusError, TrainingError
from otus.io.atomic import atomic_path
from otus.transport.icnn import ICNN, gradient
from otus.transport.ot_dual import check_samples, f_loss, g_loss, transport, w2_estimates

Batch = dict[str, Tensor]


def _opt(t: Tensor | None, idx: Tensor) -> Tensor | None:
    return None if t is None else t[idx]


class TwoSampleBatches(IterableDataset):
    """Endless-by-epoch random batches: ``inner_steps`` source batches and one target batch.

    Sampling is uniform with replacement, from a seeded generator advanced per epoch.
    """

    def __init__(self, x: Tensor, y: Tensor, *, cx: Tensor | None, cy: Tensor | None,
                 wx: Tensor | None, wy: Tensor | None, batch_size: int, inner_steps: int,
                 steps_per_epoch: int, seed: int) -> None:
        self.x, self.y, self.cx, self.cy, self.wx, self.wy = x, y, cx, cy, wx, wy
        self.batch_size, self.inner_steps = batch_size, inner_steps
        self.steps_per_epoch, self.seed, self.epoch = steps_per_epoch, seed, 0

    def __iter__(self) -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(self.seed + 1_000_003 * self.epoch)
        self.epoch += 1
        for _ in range(self.steps_per_epoch):
            ix = torch.randint(len(self.x), (self.inner_steps, self.batch_size), generator=gen)
            iy = torch.randint(len(self.y), (self.batch_size,), generator=gen)
            b = {"x": self.x[ix], "y": self.y[iy], "cx": _opt(self.cx, ix),
                 "cy": _opt(self.cy, iy), "wx": _opt(self.wx, ix), "wy": _opt(self.wy, iy)}
            yield {k: v for k, v in b.items() if v is not None}


def sliced_w2(a: Tensor, b: Tensor, *, wa: Tensor | None = None, wb: Tensor | None = None,
              n_projections: int = 256, seed: int = 0) -> float:
    """Sliced :math:`W_2^2` (POT) between two samples, with fixed seeded projections.

    Negative weights are clipped to zero for this diagnostic only.
    """
    import ot

    def prob(w: Tensor | None, n: int) -> np.ndarray:
        if w is None:
            return np.full(n, 1.0 / n)
        p = np.clip(w.double().cpu().numpy(), 0.0, None)
        return p / p.sum()

    sw = ot.sliced_wasserstein_distance(
        a.double().cpu().numpy(), b.double().cpu().numpy(), prob(wa, len(a)), prob(wb, len(b)),
        n_projections=n_projections, p=2, seed=seed)
    return float(sw) ** 2


class OTDual(pl.LightningModule):
    """Convex potentials ``f`` (target space) and ``g`` (source space) trained by the min-max
    dual with manual optimisation: ``inner_steps`` g steps per f step, cosine-decayed Adam."""

    def __init__(self, dim: int, *, cond_dim: int = 0, hidden: tuple[int, ...] = (64, 64, 64),
                 lr: float = 1e-3, inner_steps: int = 10, strong_convexity: float = 1e-3,
                 max_steps: int = 2000, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        kw = {"cond_dim": cond_dim, "strong_convexity": strong_convexity}
        self.f = ICNN(dim, hidden, seed=seed, **kw)
        self.g = ICNN(dim, hidden, seed=seed + 1, **kw)
        self.best_score = math.inf
        self.best_state: dict[str, Tensor] | None = None
        self.best_step = -1
        self.history: list[dict[str, float]] = []
        self.step_count = 0  # f steps (Lightning's global_step counts every optimiser step)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        opts = [torch.optim.Adam(m.parameters(), lr=hp.lr, betas=(0.5, 0.9))
                for m in (self.f, self.g)]
        scheds = [torch.optim.lr_scheduler.LambdaLR(
            o, lambda s: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(s / hp.max_steps, 1.0))))
            for o in opts]
        return opts, scheds

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        opt_f, opt_g = self.optimizers()
        sched_f, sched_g = self.lr_schedulers()
        x, cx, wx = batch["x"], batch.get("cx"), batch.get("wx")
        self.f.requires_grad_(False)
        for k in range(x.shape[0]):
            loss_g = g_loss(self.f, self.g, x[k], _opt(cx, k), _opt(wx, k))
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss_g)
            opt_g.step()
            self.g.project_()
        self.f.requires_grad_(True)
        xs, cs, ws = x[-1], _opt(cx, -1), _opt(wx, -1)
        t = gradient(self.g, xs, cs)
        loss_f = f_loss(self.f, t, batch["y"], cx=cs, cy=batch.get("cy"), wx=ws,
                        wy=batch.get("wy"))
        opt_f.zero_grad(set_to_none=True)
        self.manual_backward(loss_f)
        opt_f.step()
        self.f.project_()
        sched_f.step()
        sched_g.step()
        self.step_count += 1
        if not (torch.isfinite(loss_f) and torch.isfinite(loss_g)):
            raise TrainingError(f"the min-max loss diverged at step {self.step_count} "
                                "(non-finite); lower the learning rate")
        self.log_dict({"loss_f": loss_f.detach(), "loss_g": loss_g.detach()}, prog_bar=False,
                      batch_size=len(batch["y"]))

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        x, y = batch["x"], batch["y"]
        cx, cy, wx, wy = (batch.get(k) for k in ("cx", "cy", "wx", "wy"))
        est = w2_estimates(self.f, self.g, x, y, cx=cx, cy=cy, wx=wx, wy=wy)
        t = transport(self.g, x, cx)
        a = t if cx is None else torch.cat([t, cx], 1)
        b = y if cy is None else torch.cat([y, cy], 1)
        est["sliced_w2"] = sliced_w2(a, b, wa=wx, wb=wy)
        est["step"] = float(self.step_count)
        self.history.append(est)
        self.log_dict({f"val_{k}": v for k, v in est.items() if k != "step"}, prog_bar=True,
                      batch_size=len(x))
        if math.isfinite(est["sliced_w2"]) and est["sliced_w2"] < self.best_score:
            self.best_score, self.best_step = est["sliced_w2"], self.step_count
            self.best_state = copy.deepcopy({k: v.detach().cpu()
                                             for k, v in self.state_dict().items()})


@dataclass
class OTMap:
    """A fitted transport map :math:`x \\mapsto s\\,\\nabla g((x - m)/s) + m`.

    ``shift``/``scale`` standardise the transported variables, ``cond_shift``/``cond_scale``
    the conditioning variables (statistics of the source training sample).
    """

    g: ICNN
    f: ICNN
    shift: Tensor
    scale: Tensor
    cond_shift: Tensor | None = None
    cond_scale: Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def _std(self, x: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor | None]:
        xs = (x - self.shift) / self.scale
        if c is None:
            return xs, None
        assert self.cond_shift is not None and self.cond_scale is not None
        return xs, (c - self.cond_shift) / self.cond_scale

    def transport(self, x: Tensor, c: Tensor | None = None, *, batch_size: int = 65536,
                  device: str | torch.device | None = None) -> Tensor:
        """Move source points ``x`` [N, D] (given ``c`` [N, C]); batched, on ``device``."""
        if x.ndim != 2 or x.shape[1] != self.g.dim:
            raise OtusError(f"dimension mismatch: the map transports {self.g.dim} features, "
                            f"got shape {tuple(x.shape)}")
        if (c is None) != (self.g.cond_dim == 0) or (c is not None and c.shape != (
                len(x), self.g.cond_dim)):
            raise OtusError(f"the map needs {self.g.cond_dim} conditioning variables per event")
        if not bool(torch.isfinite(x).all()) or (c is not None and not bool(
                torch.isfinite(c).all())):
            raise OtusError("input to transport holds NaN or inf")
        if device is not None:
            self.g.to(device)
        xs, cs = self._std(x.float(), None if c is None else c.float())
        t = transport(self.g, xs, cs, batch_size=batch_size)
        return t * self.scale + self.shift

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save atomically (a state dict plus the constructor arguments)."""
        state = {
            "dim": self.g.dim, "hidden": list(self.g.hidden), "cond_dim": self.g.cond_dim,
            "strong_convexity": self.g.strong_convexity,
            "g": self.g.state_dict(), "f": self.f.state_dict(),
            "shift": self.shift, "scale": self.scale,
            "cond_shift": self.cond_shift, "cond_scale": self.cond_scale, "info": self.info,
        }
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OTMap:
        p = Path(path)
        if not p.is_file():
            raise InputFileError(f"{p}: no such file")
        try:
            s = torch.load(p, map_location="cpu", weights_only=True)
            kw = {"cond_dim": s["cond_dim"], "strong_convexity": s["strong_convexity"]}
            g, f = ICNN(s["dim"], s["hidden"], **kw), ICNN(s["dim"], s["hidden"], **kw)
            g.load_state_dict(s["g"])
            f.load_state_dict(s["f"])
        except Exception as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise InputFileError(f"{p}: not an otus OT map ({type(err).__name__}: {first})"
                                 ) from None
        return cls(g.eval(), f.eval(), s["shift"], s["scale"], s["cond_shift"], s["cond_scale"],
                   s["info"])


def _stats(a: Tensor, per_feature: bool) -> tuple[Tensor, Tensor]:
    m = a.mean(0)
    if per_feature:
        s = a.std(0).clamp_min(1e-12)
    else:  # one scale for all features keeps the Euclidean OT map optimal
        s = a.var(0).mean().sqrt().clamp_min(1e-12).expand(a.shape[1]).clone()
    return m, s


def gaussian_init(module: OTDual, xs: Tensor, ys: Tensor) -> None:
    """Start from the closed-form OT map between Gaussians fitted to both samples.

    :math:`T(x) = m_y + A (x - m_x)`, :math:`A = \\Sigma_x^{-1/2}(\\Sigma_x^{1/2}\\Sigma_y
    \\Sigma_x^{1/2})^{1/2}\\Sigma_x^{-1/2}`, i.e. :math:`g = \frac12 x^T A x + b\\cdot x` with
    :math:`b = m_y - A m_x`, and ``f`` its conjugate :math:`\frac12 (y-b)^T A^{-1} (y-b)`;
    the networks then only learn the non-linear remainder. Equal samples give the identity.
    """

    def sqrtm(m: Tensor) -> Tensor:
        ev, vec = torch.linalg.eigh(m)
        return (vec * ev.clamp_min(1e-12).sqrt()) @ vec.T

    xd, yd = xs.double(), ys.double()
    mx, my = xd.mean(0), yd.mean(0)
    sx = torch.cov(xd.T).reshape(xs.shape[1], -1) + 1e-9 * torch.eye(xs.shape[1])
    sy = torch.cov(yd.T).reshape(xs.shape[1], -1) + 1e-9 * torch.eye(xs.shape[1])
    rx = sqrtm(sx)
    rxi = torch.linalg.inv(rx)
    a = rxi @ sqrtm(rx @ sy @ rx) @ rxi
    a = 0.5 * (a + a.T)
    b = my - a @ mx
    ainv = torch.linalg.inv(a)
    eps = module.g.strong_convexity
    with torch.no_grad():
        # ||L x||^2 + eps ||x||^2 = x^T A x  =>  L = (A - eps I)^{1/2}
        module.g.quad.copy_(sqrtm(a - eps * torch.eye(len(a))).float())
        module.g.lin.copy_(b.float())
        module.f.quad.copy_(sqrtm(ainv - eps * torch.eye(len(a))).float())
        module.f.lin.copy_((-ainv @ b).float())


def fit_ot_map(x: Tensor, y: Tensor, *, cx: Tensor | None = None, cy: Tensor | None = None,
               wx: Tensor | None = None, wy: Tensor | None = None,
               hidden: tuple[int, ...] = (64, 64, 64), steps: int = 2000, batch_size: int = 1024,
               inner_steps: int = 10, lr: float = 1e-3, strong_convexity: float = 1e-3,
               val_fraction: float = 0.2, val_every: int = 200, per_feature_scale: bool = False,
               init: str = "gaussian", accelerator: str = "cpu", seed: int = 0,
               progress: bool = False) -> OTMap:
    """Fit the OT map from source ``x`` [N, D] to target ``y`` [M, D] (optionally given ``c``).

    Both samples are standardised with the source statistics (one isotropic scale unless
    ``per_feature_scale``; an isotropic scale keeps the Euclidean OT map exact), split into
    train/validation, and the best validation state (smallest sliced W2 between transported
    source and target) is returned. ``info`` holds the history and final diagnostics.
    ``init``: ``"identity"`` (∇g = id, ∇f = id) or ``"gaussian"`` (:func:`gaussian_init`).
    """
    if init not in ("identity", "gaussian"):
        raise OtusError(f"unknown init {init!r}; choose identity or gaussian")
    check_samples(x, y, cx=cx, cy=cy, wx=wx, wy=wy)
    x, y = x.float(), y.float()
    shift, scale = _stats(x, per_feature_scale)
    cshift = cscale = None
    if cx is not None and cy is not None:
        cshift, cscale = _stats(cx.float(), True)
        cx, cy = (cx.float() - cshift) / cscale, (cy.float() - cshift) / cscale
    xs, ys = (x - shift) / scale, (y - shift) / scale
    gen = torch.Generator().manual_seed(seed)

    def split(n: int) -> tuple[Tensor, Tensor]:
        perm = torch.randperm(n, generator=gen)
        nv = max(1, round(val_fraction * n)) if val_fraction > 0 else 0
        return perm[nv:], perm[:nv] if nv else perm

    (trx, vax), (try_, vay) = split(len(xs)), split(len(ys))
    wxf = None if wx is None else wx.float()
    wyf = None if wy is None else wy.float()
    sub = _opt
    train = TwoSampleBatches(xs[trx], ys[try_], cx=sub(cx, trx), cy=sub(cy, try_),
                             wx=sub(wxf, trx), wy=sub(wyf, try_), batch_size=batch_size,
                             inner_steps=inner_steps, steps_per_epoch=min(val_every, steps),
                             seed=seed)
    val = {"x": xs[vax], "y": ys[vay], "cx": sub(cx, vax), "cy": sub(cy, vay),
           "wx": sub(wxf, vax), "wy": sub(wyf, vay)}
    val = {k: v for k, v in val.items() if v is not None}
    module = OTDual(x.shape[1], cond_dim=0 if cx is None else cx.shape[1], hidden=tuple(hidden),
                    lr=lr, inner_steps=inner_steps, strong_convexity=strong_convexity,
                    max_steps=steps, seed=seed)
    if init == "gaussian":
        gaussian_init(module, xs[trx], ys[try_])
    trainer = pl.Trainer(
        max_epochs=max(1, math.ceil(steps / val_every)), accelerator=accelerator, devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
        num_sanity_val_steps=0, check_val_every_n_epoch=1, deterministic=False,
    )
    trainer.fit(module, DataLoader(train, batch_size=None),
                DataLoader([val], batch_size=None, collate_fn=lambda b: b))
    if module.best_state is None:
        raise TrainingError("OT training produced no finite validation score; "
                            "lower the learning rate")
    module.load_state_dict(module.best_state)
    module.cpu().eval()
    final = {k: v for k, v in module.history[-1].items()} if module.history else {}
    best = next(h for h in module.history if int(h["step"]) == module.best_step)
    info = {"best_step": module.best_step, "best": best, "last": final,
            "history": module.history, "steps": steps, "hidden": list(hidden),
            "inner_steps": inner_steps, "batch_size": batch_size, "lr": lr, "seed": seed,
            "per_feature_scale": per_feature_scale, "init": init}
    return OTMap(module.g, module.f, shift, scale, cshift, cscale, info)
