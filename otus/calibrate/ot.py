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
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from otus._lightning import drop_tips
from otus.errors import InputFileError, OtusError, TrainingError
from otus.io.atomic import atomic_path
from otus.transport.icnn import ICNN, gradient
from otus.transport.ot_dual import (
    check_samples,
    conjugate,
    cycle_loss,
    f_loss,
    g_loss,
    g_regression_loss,
    transport,
    w2_estimates,
)
from otus.transport.sliced import random_projections, sliced_wasserstein

try:
    import pytorch_lightning as pl
except ImportError:  # the unified `lightning` package only
    import lightning.pytorch as pl  # type: ignore[no-redef]

if TYPE_CHECKING:
    from pytorch_lightning.core.optimizer import LightningOptimizer
    from pytorch_lightning.utilities.parsing import AttributeDict
    from torch.optim.lr_scheduler import LRScheduler

SOLVERS = ("minmax", "conjugate")

Batch = dict[str, Tensor]


def _opt(t: Tensor | None, idx: int | Tensor) -> Tensor | None:
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
                "cx": _opt(self.cx, ix),
                "cy": _opt(self.cy, iy),
                "wx": _opt(self.wx, ix),
                "wy": _opt(self.wy, iy),
            }
            yield {k: v for k, v in b.items() if v is not None}


class OTDual(pl.LightningModule):
    """Convex potentials ``f`` (target space) and ``g`` (source space) trained on the dual with
    manual optimisation and cosine-decayed Adam.

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

    def __init__(
        self,
        dim: int,
        *,
        cond_dim: int = 0,
        hidden: tuple[int, ...] = (64, 64, 64),
        lr: float = 1e-3,
        inner_steps: int = 10,
        strong_convexity: float = 1e-3,
        max_steps: int = 2000,
        solver: str = "minmax",
        conj_iters: int = 10,
        cycle: float = 0.0,
        clip_grad: float = 0.0,
        guard: float = 0.0,
        max_time: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if solver not in SOLVERS:
            raise OtusError(f"unknown OT solver {solver!r}; choose one of {', '.join(SOLVERS)}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.f = ICNN(dim, hidden, cond_dim=cond_dim, strong_convexity=strong_convexity, seed=seed)
        self.g = ICNN(
            dim, hidden, cond_dim=cond_dim, strong_convexity=strong_convexity, seed=seed + 1
        )
        self.best_score = math.inf
        self.best_state: dict[str, Tensor] | None = None
        self.best_step = -1
        self.history: list[dict[str, float]] = []
        self.step_count = 0  # f steps (Lightning's global_step counts every optimiser step)
        self.reverts = 0
        self._proj: Tensor | None = None
        self._t0: float | None = None

    @property
    def hp(self) -> AttributeDict:
        """The constructor's arguments (``hparams``), typed for attribute access."""
        return cast("AttributeDict", self.hparams)

    def _optimisers(self) -> tuple[list[LightningOptimizer], list[LRScheduler]]:
        """The (f, g) optimisers and their schedulers from :meth:`configure_optimizers`."""
        opts = cast("list[LightningOptimizer]", self.optimizers())
        return opts, cast("list[LRScheduler]", self.lr_schedulers())

    def progress(self) -> float:
        """Fraction of the training budget used (steps, or time with ``max_time``)."""
        hp = self.hp
        frac = self.step_count / hp.max_steps
        if hp.max_time > 0 and self._t0 is not None:
            frac = max(frac, (time.perf_counter() - self._t0) / hp.max_time)
        return min(frac, 1.0)

    def configure_optimizers(self) -> Any:
        hp = self.hp
        opts = [
            torch.optim.Adam(m.parameters(), lr=hp.lr, betas=(0.5, 0.9)) for m in (self.f, self.g)
        ]
        scheds = [
            torch.optim.lr_scheduler.LambdaLR(
                o, lambda _: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * self.progress()))
            )
            for o in opts
        ]
        return opts, scheds

    def _step(self, opt: Any, net: ICNN, loss: Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.hp.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), self.hp.clip_grad)
        opt.step()
        net.project_()

    def _g_step(
        self, opt_g: Any, x: Tensor, c: Tensor | None, w: Tensor | None, t_star: Tensor | None
    ) -> Tensor:
        if t_star is None:
            loss = g_loss(self.f, self.g, x, c, w)
        else:
            loss = g_regression_loss(self.g, x, t_star, c, w)
        if self.hp.cycle > 0:
            loss = loss + self.hp.cycle * cycle_loss(self.f, self.g, x, c, w)
        self._step(opt_g, self.g, loss)
        return loss

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        hp = self.hp
        if self._t0 is None:
            self._t0 = time.perf_counter()
        (opt_f, opt_g), (sched_f, sched_g) = self._optimisers()
        x, cx, wx = batch["x"], batch.get("cx"), batch.get("wx")
        xs, cs, ws = x[-1], _opt(cx, -1), _opt(wx, -1)
        self.f.requires_grad_(False)
        if hp.solver == "minmax":
            for k in range(x.shape[0]):
                loss_g = self._g_step(opt_g, x[k], _opt(cx, k), _opt(wx, k), None)
            t = gradient(self.g, xs, cs)
        else:
            t = conjugate(self.f, xs, cs, gradient(self.g, xs, cs), iters=hp.conj_iters)
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
        if hp.max_time > 0 and self.progress() >= 1.0:
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
                a.shape[1], 256, generator=torch.Generator().manual_seed(self.hp.seed)
            ).to(a.device)
        est["sliced_w2"] = float(
            sliced_wasserstein(a, b, a=wx, b=wy, projections=self._proj, root=False)
        )
        est["step"] = float(self.step_count)
        score = est["sliced_w2"]
        factor = self.hp.guard
        if (
            guard
            and self.best_state is not None
            and factor > 0
            and not score <= factor * self.best_score
        ):
            self._revert()
            est["reverted"] = 1.0
        self.history.append(est)
        if math.isfinite(score) and score < self.best_score:
            self.best_score, self.best_step = score, self.step_count
            self.best_state = copy.deepcopy(
                {k: v.detach().cpu() for k, v in self.state_dict().items()}
            )
        return est

    def _revert(self) -> None:
        """Divergence guard: back to the best state, fresh Adam moments, half the lr."""
        assert self.best_state is not None
        self.load_state_dict(self.best_state)
        self.reverts += 1
        for opt, sched in zip(*self._optimisers(), strict=True):
            opt.optimizer.state.clear()
            sched.base_lrs = [b * 0.5 for b in sched.base_lrs]


@dataclass
class OTMap:
    """A fitted transport map :math:`x \\mapsto s\\,\\nabla g((x - m)/s) + m`.

    ``shift``/``scale`` standardise the transported variables, ``cond_shift``/``cond_scale``
    the conditioning variables (statistics of the source training sample).

    ``noise_dims`` > 0 (a stochastic map, fitted by the region objective): ``g`` is also
    conditioned on that many standard-normal draws per event, so each event is moved by one
    of a family of OT maps :math:`\nabla_x g(x; c, u)`, convex in x for every draw u. It
    can add the smearing that a worse resolution in the data needs, which no deterministic
    map can; the draws come from the ``generator`` given to :meth:`transport`.
    """

    g: ICNN
    f: ICNN
    shift: Tensor
    scale: Tensor
    cond_shift: Tensor | None = None
    cond_scale: Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)
    noise_dims: int = 0

    @property
    def n_conditions(self) -> int:
        """Conditioning variables the caller supplies (the noise draws excluded)."""
        return self.g.cond_dim - self.noise_dims

    def _std(self, x: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor | None]:
        xs = (x - self.shift) / self.scale
        if c is None:
            return xs, None
        assert self.cond_shift is not None and self.cond_scale is not None
        return xs, (c - self.cond_shift) / self.cond_scale

    def transport(
        self,
        x: Tensor,
        c: Tensor | None = None,
        *,
        batch_size: int = 65536,
        device: str | torch.device | None = None,
        refine: int = 0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Move source points ``x`` [N, D] (given ``c`` [N, C]); batched, on ``device``.

        ``refine`` > 0: polish :math:`\\nabla g(x)` by that many conjugate iterations of ``f``
        (:func:`otus.transport.ot_dual.conjugate`), i.e. move by :math:`\\nabla f^*`.
        A stochastic map (``noise_dims`` > 0) draws its noise from ``generator`` (a fresh
        one seeded 0 if None, so a call is reproducible).
        """
        if x.ndim != 2 or x.shape[1] != self.g.dim:
            raise OtusError(
                f"dimension mismatch: the map transports {self.g.dim} features, "
                f"got shape {tuple(x.shape)}"
            )
        nc = self.n_conditions
        if (c is None) != (nc == 0) or (c is not None and c.shape != (len(x), nc)):
            raise OtusError(f"the map needs {nc} conditioning variables per event")
        if not bool(torch.isfinite(x).all()) or (
            c is not None and not bool(torch.isfinite(c).all())
        ):
            raise OtusError("input to transport holds NaN or inf")
        if device is not None:
            self.g.to(device)
        xs, cs = self._std(x.float(), None if c is None else c.float())
        if self.noise_dims:
            if refine > 0:
                raise OtusError("refine needs the dual's f; a stochastic map has none")
            gen = generator if generator is not None else torch.Generator().manual_seed(0)
            cs = with_noise(cs, len(xs), self.noise_dims, gen)
        t = transport(self.g, xs, cs, batch_size=batch_size)
        if refine > 0:
            dev = next(self.f.parameters()).device if device is None else device
            self.f.to(dev)
            t = (
                torch.cat(
                    [
                        conjugate(
                            self.f,
                            xs[a : a + batch_size].to(dev),
                            None if cs is None else cs[a : a + batch_size].to(dev),
                            t[a : a + batch_size].to(dev),
                            iters=refine,
                        ).to(t.device)
                        for a in range(0, len(xs), batch_size)
                    ]
                )
                if len(xs)
                else t
            )
        return t * self.scale + self.shift

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save atomically (a state dict plus the constructor arguments)."""
        state = {
            "dim": self.g.dim,
            "hidden": list(self.g.hidden),
            "cond_dim": self.g.cond_dim,
            "strong_convexity": self.g.strong_convexity,
            "g": self.g.state_dict(),
            "f": self.f.state_dict(),
            "shift": self.shift,
            "scale": self.scale,
            "cond_shift": self.cond_shift,
            "cond_scale": self.cond_scale,
            "info": self.info,
            "noise_dims": self.noise_dims,
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
            raise InputFileError(
                f"{p}: not an otus OT map ({type(err).__name__}: {first})"
            ) from None
        return cls(
            g.eval(),
            f.eval(),
            s["shift"],
            s["scale"],
            s["cond_shift"],
            s["cond_scale"],
            s["info"],
            int(s.get("noise_dims", 0)),  # maps saved before stochastic maps existed: 0
        )


def with_noise(c: Tensor | None, n: int, noise_dims: int, gen: torch.Generator) -> Tensor:
    """Standardised conditions ``c`` [n, C] (or None) with ``noise_dims`` standard-normal
    columns from ``gen`` appended: the inputs of a stochastic map's potential."""
    u = torch.randn(n, noise_dims, generator=gen)
    if c is None:
        return u
    return torch.cat([c, u.to(c.device, c.dtype)], 1)


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


def fit_ot_map(
    x: Tensor,
    y: Tensor,
    *,
    cx: Tensor | None = None,
    cy: Tensor | None = None,
    wx: Tensor | None = None,
    wy: Tensor | None = None,
    hidden: tuple[int, ...] = (64, 64, 64),
    steps: int = 2000,
    batch_size: int = 1024,
    inner_steps: int = 5,
    lr: float = 1e-3,
    strong_convexity: float = 1e-3,
    val_fraction: float = 0.2,
    val_every: int = 200,
    per_feature_scale: bool = False,
    init: str = "gaussian",
    solver: str = "minmax",
    conj_iters: int = 10,
    cycle: float = 0.0,
    clip_grad: float = 0.0,
    guard: float = 3.0,
    max_time: float = 0.0,
    accelerator: str = "cpu",
    seed: int = 0,
    progress: bool = False,
) -> OTMap:
    """Fit the OT map from source ``x`` [N, D] to target ``y`` [M, D] (optionally given ``c``).

    Both samples are standardised with the source statistics (one isotropic scale unless
    ``per_feature_scale``; an isotropic scale keeps the Euclidean OT map exact), split into
    train/validation, and the best validation state (smallest sliced W2 between transported
    source and target) is returned. ``info`` holds the history and final diagnostics.
    ``init``: ``"identity"`` (∇g = id, ∇f = id) or ``"gaussian"`` (:func:`gaussian_init`).
    ``solver``, ``conj_iters``, ``cycle``, ``clip_grad``, ``guard``, ``max_time``: see
    :class:`OTDual`.
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
    train = TwoSampleBatches(
        xs[trx],
        ys[try_],
        cx=sub(cx, trx),
        cy=sub(cy, try_),
        wx=sub(wxf, trx),
        wy=sub(wyf, try_),
        batch_size=batch_size,
        inner_steps=inner_steps,
        steps_per_epoch=min(val_every, steps),
        seed=seed,
    )
    parts = {
        "x": xs[vax],
        "y": ys[vay],
        "cx": sub(cx, vax),
        "cy": sub(cy, vay),
        "wx": sub(wxf, vax),
        "wy": sub(wyf, vay),
    }
    val: Batch = {k: v for k, v in parts.items() if v is not None}
    module = OTDual(
        x.shape[1],
        cond_dim=0 if cx is None else cx.shape[1],
        hidden=tuple(hidden),
        lr=lr,
        inner_steps=inner_steps,
        strong_convexity=strong_convexity,
        max_steps=steps,
        solver=solver,
        conj_iters=conj_iters,
        cycle=cycle,
        clip_grad=clip_grad,
        guard=guard,
        max_time=max_time,
        seed=seed,
    )
    if init == "gaussian":
        gaussian_init(module, xs[trx], ys[try_])
    drop_tips()
    trainer = pl.Trainer(
        max_epochs=max(1, math.ceil(steps / val_every)),
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=1,
        deterministic=False,
    )
    trainer.fit(
        module,
        DataLoader(train, batch_size=None),
        # A list is a map-style dataset to DataLoader, which is typed for Dataset only.
        DataLoader([val], batch_size=None, collate_fn=lambda b: b),  # type: ignore[arg-type]
    )
    if not module.history or module.history[-1]["step"] != module.step_count:
        # score the last state too (a time-limited run can stop between validations)
        dev = next(module.parameters()).device
        module.validate({k: v.to(dev) for k, v in val.items()}, guard=False)
    if module.best_state is None:
        raise TrainingError(
            "OT training produced no finite validation score; lower the learning rate"
        )
    module.load_state_dict(module.best_state)
    module.cpu().eval()
    final = {k: v for k, v in module.history[-1].items()} if module.history else {}
    best = next(h for h in module.history if int(h["step"]) == module.best_step)
    info = {
        "best_step": module.best_step,
        "best": best,
        "last": final,
        "history": module.history,
        "steps": steps,
        "hidden": list(hidden),
        "inner_steps": inner_steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "per_feature_scale": per_feature_scale,
        "init": init,
        "solver": solver,
        "conj_iters": conj_iters,
        "cycle": cycle,
        "clip_grad": clip_grad,
        "guard": guard,
        "reverts": module.reverts,
        "steps_done": module.step_count,
        "max_time": max_time,
    }
    return OTMap(module.g, module.f, shift, scale, cshift, cscale, info)
