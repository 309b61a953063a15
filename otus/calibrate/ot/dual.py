"""The min-max dual as a Lightning module: convex potentials ``f`` (target) and ``g``
(source) trained on the losses of :mod:`otus.transport.ot_dual`.

Training alternates ``inner_steps`` Adam steps on ``g`` with one step on ``f``, each g step
on a fresh source batch (Makkuva et al., arXiv:1908.10962); validation logs the duality gap,
the two W2 estimates and a sliced-Wasserstein distance between the transported and the
target validation samples, and the state with the smallest such distance is kept
(:class:`otus.calibrate.training.KeepBest`: min-max training can blow up, so the last state
is not trusted).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import IterableDataset

from otus._schedule import cosine_schedule
from otus.calibrate.ot.config import DualConfig, config_dict
from otus.calibrate.training import KeepBest
from otus.errors import TrainingError
from otus.transport.icnn import ICNN, gradient
from otus.transport.ot_dual import (
    conjugate,
    cycle_loss,
    f_loss,
    g_loss,
    g_regression_loss,
    transport,
    w2_estimates,
)
from otus.transport.sliced import random_projections, sliced_wasserstein

if TYPE_CHECKING:
    from pytorch_lightning.core.optimizer import LightningOptimizer
    from torch.optim.lr_scheduler import LambdaLR

Batch = dict[str, Tensor]


def take(t: Tensor | None, idx: int | Tensor) -> Tensor | None:
    """``t[idx]``, or None for a missing (optional) tensor."""
    return None if t is None else t[idx]


class TwoSampleBatches(IterableDataset):
    """Endless-by-epoch random batches: ``inner_steps`` source batches and one target batch.

    Sampling is uniform with replacement, from a seeded generator advanced per epoch.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        *,
        cx: Tensor | None,
        cy: Tensor | None,
        wx: Tensor | None,
        wy: Tensor | None,
        batch_size: int,
        inner_steps: int,
        steps_per_epoch: int,
        seed: int,
    ) -> None:
        self.x, self.y, self.cx, self.cy, self.wx, self.wy = x, y, cx, cy, wx, wy
        self.batch_size, self.inner_steps = batch_size, inner_steps
        self.steps_per_epoch, self.seed, self.epoch = steps_per_epoch, seed, 0

    def __iter__(self) -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(self.seed + 1_000_003 * self.epoch)
        self.epoch += 1
        for _ in range(self.steps_per_epoch):
            ix = torch.randint(len(self.x), (self.inner_steps, self.batch_size), generator=gen)
            iy = torch.randint(len(self.y), (self.batch_size,), generator=gen)
            b = {
                "x": self.x[ix],
                "y": self.y[iy],
                "cx": take(self.cx, ix),
                "cy": take(self.cy, iy),
                "wx": take(self.wx, ix),
                "wy": take(self.wy, iy),
            }
            yield {k: v for k, v in b.items() if v is not None}


class OTDual(pl.LightningModule):
    """Convex potentials ``f`` (target space) and ``g`` (source space) trained on the dual with
    manual optimisation and Adam, its learning rate cosine-decayed to 2 %
    (:func:`otus._schedule.cosine_floor`). Options: :class:`DualConfig`.

    ``solver="minmax"``: ``inner_steps`` g steps (:func:`g_loss`) per f step (Makkuva et al.).
    ``solver="conjugate"``: per step, the conjugate argmax is solved from :math:`\\nabla g`
    (:func:`conjugate`, ``conj_iters`` iterations), f takes an exact-gradient step and g
    ``inner_steps`` regression steps toward the argmax (amortised conjugate, Amos 2022).
    ``cycle``: weight of the W2GN cycle regulariser added to the g loss. ``clip_grad``: max
    gradient norm per step (0: off). ``guard``: after a validation whose score exceeds
    ``guard`` × the best one, the best state is restored, the Adam moments are reset and the
    learning rate halved (min-max training can blow up; 0: off). ``max_time`` > 0: stop
    after that many seconds of training, the lr schedule then following the larger of the
    step and the time fractions.
    """

    def __init__(self, dim: int, *, cond_dim: int = 0, config: DualConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or DualConfig()
        self.save_hyperparameters({"dim": dim, "cond_dim": cond_dim, **config_dict(cfg)})
        self.automatic_optimization = False
        sc = cfg.strong_convexity
        self.f = ICNN(dim, cfg.hidden, cond_dim=cond_dim, strong_convexity=sc, seed=cfg.seed)
        self.g = ICNN(dim, cfg.hidden, cond_dim=cond_dim, strong_convexity=sc, seed=cfg.seed + 1)
        self.best = KeepBest()
        self.history: list[dict[str, float]] = []
        self.step_count = 0  # f steps (Lightning's global_step counts every optimiser step)
        self.reverts = 0
        self._proj: Tensor | None = None
        self._t0: float | None = None

    def _optimisers(self) -> tuple[list[LightningOptimizer], list[LambdaLR]]:
        """The (f, g) optimisers and their schedulers from :meth:`configure_optimizers`."""
        opts = cast("list[LightningOptimizer]", self.optimizers())
        return opts, cast("list[LambdaLR]", self.lr_schedulers())

    def progress(self) -> float:
        """Fraction of the training budget used (steps, or time with ``max_time``)."""
        cfg = self.config
        frac = self.step_count / cfg.steps
        if cfg.max_time > 0 and self._t0 is not None:
            frac = max(frac, (time.perf_counter() - self._t0) / cfg.max_time)
        return min(frac, 1.0)

    def configure_optimizers(self) -> tuple[list[torch.optim.Optimizer], list[LambdaLR]]:
        lr = self.config.lr
        opts: list[torch.optim.Optimizer] = [
            torch.optim.Adam(m.parameters(), lr=lr, betas=(0.5, 0.9)) for m in (self.f, self.g)
        ]
        return opts, [cosine_schedule(o, lambda _: self.progress()) for o in opts]

    def _step(self, opt: LightningOptimizer, net: ICNN, loss: Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.config.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), self.config.clip_grad)
        opt.step()
        net.project_()

    def _g_step(
        self,
        opt_g: LightningOptimizer,
        x: Tensor,
        c: Tensor | None,
        w: Tensor | None,
        t_star: Tensor | None,
    ) -> Tensor:
        if t_star is None:
            loss = g_loss(self.f, self.g, x, c, w)
        else:
            loss = g_regression_loss(self.g, x, t_star, c, w)
        if self.config.cycle > 0:
            loss = loss + self.config.cycle * cycle_loss(self.f, self.g, x, c, w)
        self._step(opt_g, self.g, loss)
        return loss

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        cfg = self.config
        if self._t0 is None:
            self._t0 = time.perf_counter()
        (opt_f, opt_g), (sched_f, sched_g) = self._optimisers()
        x, cx, wx = batch["x"], batch.get("cx"), batch.get("wx")
        xs, cs, ws = x[-1], take(cx, -1), take(wx, -1)
        self.f.requires_grad_(False)
        if cfg.solver == "minmax":
            for k in range(x.shape[0]):
                loss_g = self._g_step(opt_g, x[k], take(cx, k), take(wx, k), None)
            t = gradient(self.g, xs, cs)
        else:
            t = conjugate(self.f, xs, cs, gradient(self.g, xs, cs), iters=cfg.conj_iters)
            for _ in range(x.shape[0]):
                loss_g = self._g_step(opt_g, xs, cs, ws, t)
        self.f.requires_grad_(True)
        loss_f = f_loss(self.f, t, batch["y"], cx=cs, cy=batch.get("cy"), wx=ws, wy=batch.get("wy"))
        self._step(opt_f, self.f, loss_f)
        sched_f.step()
        sched_g.step()
        self.step_count += 1
        if not (torch.isfinite(loss_f) and torch.isfinite(loss_g)):
            raise TrainingError(
                f"the OT dual loss diverged at step {self.step_count} "
                "(non-finite); lower the learning rate"
            )
        self.log_dict(
            {"loss_f": loss_f.detach(), "loss_g": loss_g.detach()},
            prog_bar=False,
            batch_size=len(batch["y"]),
        )
        if cfg.max_time > 0 and self.progress() >= 1.0:
            self.trainer.should_stop = True

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        est = self.validate(batch)
        self.log_dict(
            {f"val_{k}": v for k, v in est.items() if k != "step"},
            prog_bar=True,
            batch_size=len(batch["x"]),
        )

    @torch.no_grad()
    def validate(self, batch: Batch, *, guard: bool = True) -> dict[str, float]:
        """Score the current state on the validation batch, keep the best state, and (with
        ``guard``) revert a diverged one; returns the diagnostics appended to ``history``."""
        x, y = batch["x"], batch["y"]
        cx, cy, wx, wy = (batch.get(k) for k in ("cx", "cy", "wx", "wy"))
        est = w2_estimates(self.f, self.g, x, y, cx=cx, cy=cy, wx=wx, wy=wy)
        t = transport(self.g, x, cx)
        a = t if cx is None else torch.cat([t, cx], 1)
        b = y if cy is None else torch.cat([y, cy], 1)
        if self._proj is None:  # fixed directions: scores comparable across validations
            self._proj = random_projections(
                a.shape[1], 256, generator=torch.Generator().manual_seed(self.config.seed)
            ).to(a.device)
        est["sliced_w2"] = float(
            sliced_wasserstein(a, b, a=wx, b=wy, projections=self._proj, root=False)
        )
        est["step"] = float(self.step_count)
        score = est["sliced_w2"]
        factor = self.config.guard
        if (
            guard
            and self.best.state is not None
            and factor > 0
            and not score <= factor * self.best.score
        ):
            self._revert()
            est["reverted"] = 1.0
        self.history.append(est)
        self.best.update(score, self.step_count, self)
        return est

    def _revert(self) -> None:
        """Divergence guard: back to the best state, fresh Adam moments, half the lr."""
        self.best.restore(self)
        self.reverts += 1
        for opt, sched in zip(*self._optimisers(), strict=True):
            opt.optimizer.state.clear()
            sched.base_lrs = [b * 0.5 for b in sched.base_lrs]


def gaussian_init(module: OTDual, xs: Tensor, ys: Tensor) -> None:
    """Start from the closed-form OT map between Gaussians fitted to both samples.

    :math:`T(x) = m_y + A (x - m_x)`, :math:`A = \\Sigma_x^{-1/2}(\\Sigma_x^{1/2}\\Sigma_y
    \\Sigma_x^{1/2})^{1/2}\\Sigma_x^{-1/2}`, i.e. :math:`g = \\frac12 x^T A x + b\\cdot x` with
    :math:`b = m_y - A m_x`, and ``f`` its conjugate :math:`\\frac12 (y-b)^T A^{-1} (y-b)`;
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
