r"""Region-consistent fit of an ICNN transport map (the ``region`` objective).

The min-max dual (:mod:`otus.calibrate.ot.fit`) fits the OT map between the MC and the data
events *inside* a control region. When the region is cut on an observable that the map
moves (m_ee from the calibrated pT), the two samples are truncated differently: the data's
region holds the events that land there under the data's response, the MC's region those
that land there under the nominal one, and the map between the two truncated samples is not
the map between the full distributions (it keeps the cut edges in place).

Here the map :math:`T = \nabla g` (``g`` an ICNN, so :math:`T` is the OT map from the MC to
its image :math:`T_\#\mathrm{MC}`) is fitted directly so that *the calibrated MC events that
land in the region* match the data events in the region, the template ("line-shape") method
of electron calibration with Z→ee, with the ICNN maps as the template family. The loss is the
sliced Wasserstein distance :math:`\mathrm{SW}_2^2` between the two weighted samples on the
transported features, the conditions and the log invariant mass of every object pair (what a
mass window is cut on), each standardised with the data's statistics; the projections are
the coordinate axes (exact 1-D W2 of every marginal) plus fresh random directions each step.
The region selection is redone on the calibrated events at every step; it is a hard cut (no
gradient flows through it), the gradient comes from the moved values of the selected events,
which carry the shapes inside the region. The map starts at the identity; the state with the
smallest validation distance (held-out events, fixed directions) is kept, the identity
included, so the fit never returns a map worse on validation than no calibration. The fit
follows the idiom of the dual (:mod:`otus.calibrate.training`): a Lightning module with manual
optimisation, one epoch per validation period, the cosine learning rate with a floor.

With ``noise_dims`` > 0 the potential is also conditioned on standard-normal draws, fresh for
every event at every step (fixed draws for validation): a *stochastic* map, each draw's map
an OT map, that can smear as well as shift and stretch. A data sample with a worse
resolution than the MC is the MC convolved with extra noise; a deterministic map can match
the marginals in the region but not the extra spread of a pair mass, built from two
independently mismeasured objects.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from itertools import combinations
from typing import TYPE_CHECKING, cast

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from otus._schedule import cosine_schedule
from otus.calibrate.features import objects_of, rebuild_rows, transport_matrix
from otus.calibrate.ot.config import RegionConfig, config_dict
from otus.calibrate.ot.map import OTMap, standardisation
from otus.calibrate.regions import Region, region_for
from otus.calibrate.training import KeepBest, fit, make_trainer
from otus.errors import ConfigError, TrainingError
from otus.physics import fourvec as fv
from otus.physics.observables import observables
from otus.processes import Process
from otus.transport.icnn import ICNN, gradient
from otus.transport.sliced import random_projections, sliced_wasserstein

if TYPE_CHECKING:
    from pytorch_lightning.core.optimizer import LightningOptimizer
    from torch.optim.lr_scheduler import LambdaLR

Groups = Sequence[tuple[Sequence[str], Sequence[str]]]
Batch = dict[str, Tensor]


def pair_log_masses(process: Process, p: Tensor) -> Tensor:
    """log m of every pair of non-MET objects, [N, pairs] (torch, differentiable)."""
    idx = [i for i, o in enumerate(process.x_objects) if o != "met"]
    cols = [
        torch.log(fv.invariant_mass(p[:, i], p[:, j]).clamp_min(1e-3))
        for i, j in combinations(idx, 2)
    ]
    return torch.stack(cols, 1) if cols else p.new_zeros((len(p), 0))


def _device(accelerator: str) -> torch.device:
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    if accelerator in ("gpu", "cuda"):
        raise ConfigError(f"accelerator {accelerator!r}: no CUDA device available")
    return torch.device("cpu")


class RegionBatches(IterableDataset):
    """The random draws of each training step, all from one generator: MC and data index
    batches (all training events when they fit in a batch), the step's projections (the
    coordinate axes and fresh random directions) and, for a stochastic map, the noise draws of
    each group. ``steps`` in all, at most ``steps_per_epoch`` per epoch."""

    def __init__(
        self,
        tr_m: Tensor,
        tr_d: Tensor,
        *,
        config: RegionConfig,
        n_obj: int,
        n_groups: int,
        gen: torch.Generator,
    ) -> None:
        self.tr_m, self.tr_d, self.cfg, self.gen = tr_m, tr_d, config, gen
        self.axes = torch.eye(n_obj).repeat(1, max(1, config.n_projections // n_obj))
        self.n_obj, self.n_groups, self.done = n_obj, n_groups, 0

    def _rows(self, idx: Tensor) -> Tensor:
        bs = self.cfg.batch_size
        if len(idx) <= bs:
            return idx
        return idx[torch.randint(len(idx), (bs,), generator=self.gen)]

    def __iter__(self) -> Iterator[Batch]:
        cfg = self.cfg
        for _ in range(min(cfg.val_every, cfg.steps - self.done)):
            self.done += 1
            ib, jb = self._rows(self.tr_m), self._rows(self.tr_d)
            proj = random_projections(self.n_obj, cfg.n_projections, generator=self.gen)
            b = {"ib": ib, "jb": jb, "proj": torch.cat([self.axes, proj], 1)}
            if cfg.noise_dims:
                b["noise"] = torch.stack(
                    [
                        torch.randn(len(ib), cfg.noise_dims, generator=self.gen)
                        for _ in range(self.n_groups)
                    ]
                )
            yield b


class RegionFit(pl.LightningModule):
    """The potential ``g`` of a region-consistent map and its objective (module doc).

    ``feats``/``conds``: per group, the MC rows' transported features and conditions;
    ``rows_mc`` the MC detector rows, ``y`` the data's standardised objective rows;
    ``validation``: the held-out MC and data rows and the fixed projections.
    """

    def __init__(
        self,
        process: Process,
        groups: Groups,
        region: Region,
        *,
        feats: list[Tensor],
        conds: list[Tensor],
        rows_mc: Tensor,
        w_mc: Tensor,
        y: Tensor,
        w_data: Tensor,
        objective_scale: tuple[Tensor, Tensor],
        validation: tuple[Tensor, Tensor, Tensor],
        config: RegionConfig,
    ) -> None:
        super().__init__()
        self.config = cfg = config
        self.automatic_optimization = False
        self.process, self.groups, self.region = process, groups, region
        self.feats, self.conds, self.rows_mc, self.w_mc = feats, conds, rows_mc, w_mc
        self.y, self.w_data = y, w_data
        self.mu, self.sd = objective_scale
        dim, cond_dim = feats[0].shape[1], conds[0].shape[1]
        self.shift, self.scale = standardisation(torch.cat(feats).cpu(), per_feature=True)
        self.cshift: Tensor | None = None
        self.cscale: Tensor | None = None
        if cond_dim:
            self.cshift, self.cscale = standardisation(torch.cat(conds).cpu(), per_feature=True)
        self.g = ICNN(
            dim,
            cfg.hidden,
            cond_dim=cond_dim + cfg.noise_dims,
            strong_convexity=cfg.strong_convexity,
            seed=cfg.seed,
        ).to(rows_mc.device)
        self.best = KeepBest()
        self.history: list[dict[str, float]] = []
        self.step_count = 0
        self.last_loss = math.nan
        self.val_m, self.val_d, self.val_proj = validation

    def calibrated(self, idx: Tensor, graph: bool, noise: Tensor | None) -> tuple[Tensor, Tensor]:
        """Standardised objective rows and weights of the calibrated MC rows ``idx`` that
        land in the region (``noise`` [groups, N, noise_dims]: the stochastic map's draws)."""
        dev = self.rows_mc.device
        shift, scale = self.shift.to(dev), self.scale.to(dev)
        values: list[Tensor] = []
        moved_names: list[str] = []
        for k, ((names, _), fk, ck) in enumerate(
            zip(self.groups, self.feats, self.conds, strict=True)
        ):
            xs = (fk[idx] - shift) / scale
            cs = None  # no conditioning features: no standardisation statistics either
            if self.cshift is not None and self.cscale is not None:
                cs = (ck[idx] - self.cshift.to(dev)) / self.cscale.to(dev)
            if noise is not None:
                u = noise[k].to(dev, xs.dtype)
                cs = u if cs is None else torch.cat([cs, u], 1)
            moved = gradient(self.g, xs, cs, create_graph=graph) * scale + shift
            values.append(moved)
            moved_names += names
        r = rebuild_rows(self.process, self.rows_mc[idx], moved_names, torch.cat(values, 1))
        p = objects_of(self.process, r)
        rows = r.detach().double().cpu().numpy()
        keep = torch.as_tensor(self.region.mask(observables(self.process, rows, "x")), device=dev)
        obj = objective_rows(self.process, p, values, [ck[idx] for ck in self.conds])
        return ((obj - self.mu) / self.sd)[keep], self.w_mc[idx][keep]

    def distance(self, a: Tensor, wa: Tensor, jb: Tensor, proj: Tensor) -> Tensor:
        """Sliced W2² between calibrated MC rows ``a`` and the data rows ``jb``."""
        if len(a) < 2 or float(wa.sum()) <= 0:
            raise TrainingError(
                f"fewer than 2 calibrated MC events land in region {self.region.expr!r}; "
                "lower the learning rate"
            )
        return sliced_wasserstein(
            a, self.y[jb], a=wa, b=self.w_data[jb], projections=proj, root=False
        )

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Score the current state on the held-out events (fixed draws and directions), keep
        the best state; returns the entry appended to ``history``."""
        gen = torch.Generator().manual_seed(self.config.seed + 11)
        k = self.config.noise_dims
        noise = (
            torch.stack([torch.randn(len(self.val_m), k, generator=gen) for _ in self.groups])
            if k
            else None
        )
        a, wa = self.calibrated(self.val_m, False, noise)
        h = {
            "step": float(self.step_count),
            "sliced_w2": float(self.distance(a, wa, self.val_d, self.val_proj)),
            "loss": self.last_loss,
            "n_region_val": float(len(a)),
        }
        self.history.append(h)
        self.best.update(h["sliced_w2"], self.step_count, self)
        return h

    def configure_optimizers(
        self,
    ) -> tuple[list[torch.optim.Optimizer], list[LambdaLR]]:
        opt = torch.optim.Adam(self.g.parameters(), lr=self.config.lr, betas=(0.5, 0.9))
        steps = self.config.steps
        return [opt], [cosine_schedule(opt, lambda s: min(s / steps, 1.0))]

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        opt = cast("LightningOptimizer", self.optimizers())
        sched = cast("LambdaLR", self.lr_schedulers())
        a, wa = self.calibrated(batch["ib"], True, batch.get("noise"))
        loss = self.distance(a, wa, batch["jb"], batch["proj"])
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt.step()
        sched.step()
        self.g.project_()
        self.step_count += 1
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the region fit diverged at step {self.step_count} (non-finite loss); "
                "lower the learning rate"
            )
        self.last_loss = float(loss.detach())

    def validation_step(self, batch: int, batch_idx: int) -> None:
        h = self.validate()
        self.log("val_sliced_w2", h["sliced_w2"], prog_bar=True, batch_size=1)


def objective_rows(
    process: Process, p: Tensor, values: list[Tensor], cvals: list[Tensor]
) -> Tensor:
    """The compared columns: transported features, conditions, log pair masses."""
    return torch.cat([*values, *cvals, pair_log_masses(process, p)], 1)


def fit_region_map(
    process: Process,
    x_mc: np.ndarray,
    w_mc: np.ndarray,
    x_data: np.ndarray,
    w_data: np.ndarray,
    *,
    groups: Groups,
    region: str,
    config: RegionConfig | None = None,
    accelerator: str = "cpu",
    progress: bool = False,
) -> OTMap:
    """Fit ``g`` so that the calibrated passing MC rows ``x_mc`` that land in ``region`` match
    the data rows ``x_data`` (already in ``region``). One map serves every group (per-object
    calibration: the objects' rows pooled; otherwise a single group). Returns an
    :class:`OTMap` whose ``info`` holds the options and the validation history (``f`` is
    unused: identity). Options: :class:`~otus.calibrate.ot.config.RegionConfig`.
    """
    cfg = config or RegionConfig()
    dev = _device(accelerator)
    in_region = region_for(region, process)

    def t(a: np.ndarray) -> Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=torch.float32, device=dev)

    x_mc = np.asarray(x_mc, dtype=np.float64)
    x_data = np.asarray(x_data, dtype=np.float64)
    y = objective_rows(
        process,
        objects_of(process, t(x_data)),
        [t(transport_matrix(process, x_data, f)) for f, _ in groups],
        [t(transport_matrix(process, x_data, c)) for _, c in groups],
    )
    mu, sd = y.mean(0), y.std(0).clamp_min(1e-6)
    gen = torch.Generator().manual_seed(cfg.seed)
    n_m, n_d, n_obj = len(x_mc), len(y), y.shape[1]
    perm_m, perm_d = torch.randperm(n_m, generator=gen), torch.randperm(n_d, generator=gen)
    nv_m = max(1, round(cfg.val_fraction * n_m))
    nv_d = max(1, round(cfg.val_fraction * n_d))
    val_proj = torch.cat(
        [
            torch.eye(n_obj).repeat(1, 64),
            random_projections(n_obj, 256, generator=torch.Generator().manual_seed(cfg.seed + 7)),
        ],
        1,
    )
    module = RegionFit(
        process,
        groups,
        in_region,
        feats=[t(transport_matrix(process, x_mc, f)) for f, _ in groups],
        conds=[t(transport_matrix(process, x_mc, c)) for _, c in groups],
        rows_mc=t(x_mc),
        w_mc=t(w_mc),
        y=(y - mu) / sd,
        w_data=t(w_data),
        objective_scale=(mu, sd),
        validation=(perm_m[:nv_m].to(dev), perm_d[:nv_d].to(dev), val_proj.to(dev)),
        config=cfg,
    )
    module.validate()  # the identity: a fit never returns a map worse than no calibration
    identity = module.history[0]
    batches = RegionBatches(
        perm_m[nv_m:], perm_d[nv_d:], config=cfg, n_obj=n_obj, n_groups=len(groups), gen=gen
    )
    t0 = time.perf_counter()
    trainer = make_trainer(
        max_epochs=math.ceil(cfg.steps / cfg.val_every),
        accelerator="gpu" if dev.type == "cuda" else "cpu",
        progress=progress,
        quiet=True,  # as the hand-written loop it replaced: no device summary on stderr
    )
    fit(
        trainer,
        module,
        DataLoader(batches, batch_size=None),
        # one dummy batch: validation scores the held-out events the module holds
        DataLoader([0], batch_size=None),  # type: ignore[arg-type]
    )
    if module.best.state is None:
        raise TrainingError(
            "the region fit produced no finite validation score; lower the learning rate"
        )
    module.best.restore(module)
    g = module.g.cpu().eval()
    f = ICNN(
        g.dim,
        cfg.hidden,
        cond_dim=g.cond_dim,
        strong_convexity=cfg.strong_convexity,
        seed=cfg.seed + 1,
    )
    info = {
        **config_dict(cfg),
        "objective": "region",
        "best_step": module.best.step,
        "best": next(h for h in module.history if int(h["step"]) == module.best.step),
        "last": module.history[-1],
        "identity": identity,
        "history": module.history,
        "steps_done": module.step_count,
        "fit_s": time.perf_counter() - t0,
    }
    return OTMap(
        g, f.eval(), module.shift, module.scale, module.cshift, module.cscale, info, cfg.noise_dims
    )
