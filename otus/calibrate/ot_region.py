r"""Region-consistent fit of an ICNN transport map (the ``region`` objective).

The min-max dual (:mod:`otus.calibrate.ot`) fits the OT map between the MC and the data
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
included, so the fit never returns a map worse on validation than no calibration.

With ``noise_dims`` > 0 the potential is also conditioned on standard-normal draws, fresh for
every event at every step (fixed draws for validation): a *stochastic* map, each draw's map
an OT map, that can smear as well as shift and stretch. A data sample with a worse
resolution than the MC is the MC convolved with extra noise; a deterministic map can match
the marginals in the region but not the extra spread of a pair mass, built from two
independently mismeasured objects.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
import torch
from torch import Tensor

from otus.calibrate.ot import OTMap, _stats, with_noise
from otus.calibrate.ot_events import feature_matrix, objects_of, rebuild_rows
from otus.calibrate.regions import region_for
from otus.errors import ConfigError, TrainingError
from otus.physics import fourvec as fv
from otus.physics.observables import observables
from otus.processes import Process
from otus.transport.icnn import ICNN, gradient
from otus.transport.sliced import random_projections, sliced_wasserstein

Groups = Sequence[tuple[Sequence[str], Sequence[str]]]


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


def fit_region_map(
    process: Process,
    x_mc: np.ndarray,
    w_mc: np.ndarray,
    x_data: np.ndarray,
    w_data: np.ndarray,
    *,
    groups: Groups,
    region: str,
    hidden: tuple[int, ...] = (64, 64, 64),
    steps: int = 300,
    lr: float = 3e-3,
    batch_size: int = 16384,
    n_projections: int = 64,
    val_fraction: float = 0.2,
    val_every: int = 25,
    strong_convexity: float = 1e-3,
    noise_dims: int = 0,
    accelerator: str = "cpu",
    seed: int = 0,
    progress: bool = False,
) -> OTMap:
    """Fit ``g`` so that the calibrated passing MC rows ``x_mc`` that land in ``region`` match
    the data rows ``x_data`` (already in ``region``). One map serves every group (per-object
    calibration: the objects' rows pooled; otherwise a single group). Returns an
    :class:`OTMap` whose ``info`` holds the validation history (``f`` is unused: identity).
    ``noise_dims``: standard-normal inputs of a stochastic map (0: deterministic).
    """
    if noise_dims < 0:
        raise ConfigError(f"noise dimensions must be >= 0, got {noise_dims}")
    if steps < 1 or batch_size < 2 or n_projections < 1 or val_every < 1:
        raise ConfigError("steps, val_every, projections >= 1 and batch size >= 2 needed")
    if not 0 < val_fraction < 1:
        raise ConfigError(f"validation fraction must be in (0, 1), got {val_fraction}")
    dev = _device(accelerator)
    in_region = region_for(region, process)
    dtype = torch.float32

    def t(a: Any) -> Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype, device=dev)

    x_mc = np.asarray(x_mc, dtype=np.float64)
    feats = [t(feature_matrix(process, x_mc, f)) for f, _ in groups]
    conds = [t(feature_matrix(process, x_mc, c)) for _, c in groups]
    dim, cond_dim = feats[0].shape[1], conds[0].shape[1]
    shift, scale = _stats(torch.cat(feats).cpu(), True)
    cshift = cscale = None
    if cond_dim:
        cshift, cscale = _stats(torch.cat(conds).cpu(), True)
    shift_d, scale_d = shift.to(dev), scale.to(dev)
    cshift_d = None if cshift is None else cshift.to(dev)
    cscale_d = None if cscale is None else cscale.to(dev)
    rows_mc = t(x_mc)
    wm, wd = t(w_mc), t(w_data)

    def objective_rows(p: Tensor, values: list[Tensor], cvals: list[Tensor]) -> Tensor:
        return torch.cat([*values, *cvals, pair_log_masses(process, p)], 1)

    x_data = np.asarray(x_data, dtype=np.float64)
    y = objective_rows(
        objects_of(process, t(x_data)),
        [t(feature_matrix(process, x_data, f)) for f, _ in groups],
        [t(feature_matrix(process, x_data, c)) for _, c in groups],
    )
    mu, sd = y.mean(0), y.std(0).clamp_min(1e-6)
    y = (y - mu) / sd
    n_obj = y.shape[1]

    d_c = cond_dim + noise_dims
    g = ICNN(dim, hidden, cond_dim=d_c, strong_convexity=strong_convexity, seed=seed).to(dev)
    f = ICNN(dim, hidden, cond_dim=d_c, strong_convexity=strong_convexity, seed=seed + 1)

    def calibrated(idx: Tensor, graph: bool, noise: torch.Generator) -> tuple[Tensor, Tensor]:
        """Standardised objective rows and weights of the calibrated MC rows ``idx`` that
        land in the region (noise draws from ``noise``, one per event and group)."""
        values: list[Tensor] = []
        moved_names: list[str] = []
        for (names, _), fk, ck in zip(groups, feats, conds, strict=True):
            xs = (fk[idx] - shift_d) / scale_d
            cs = None  # no conditioning features: no standardisation statistics either
            if cshift_d is not None and cscale_d is not None:
                cs = (ck[idx] - cshift_d) / cscale_d
            if noise_dims:
                cs = with_noise(cs, len(idx), noise_dims, noise).to(dev, dtype)
            moved = gradient(g, xs, cs, create_graph=graph) * scale_d + shift_d
            values.append(moved)
            moved_names += names
        r = rebuild_rows(process, rows_mc[idx], moved_names, torch.cat(values, 1))
        p = objects_of(process, r)
        rows = r.detach().double().cpu().numpy()
        keep = torch.as_tensor(in_region.mask(observables(process, rows, "x")), device=dev)
        a = (objective_rows(p, values, [ck[idx] for ck in conds]) - mu) / sd
        return a[keep], wm[idx][keep]

    gen = torch.Generator().manual_seed(seed)
    n_m, n_d = len(x_mc), len(y)
    perm_m, perm_d = torch.randperm(n_m, generator=gen), torch.randperm(n_d, generator=gen)
    nv_m, nv_d = max(1, round(val_fraction * n_m)), max(1, round(val_fraction * n_d))
    tr_m, va_m = perm_m[nv_m:].to(dev), perm_m[:nv_m].to(dev)
    tr_d, va_d = perm_d[nv_d:].to(dev), perm_d[:nv_d].to(dev)
    axes = torch.eye(n_obj, dtype=dtype)
    val_proj = torch.cat(
        [
            axes.repeat(1, 64),
            random_projections(n_obj, 256, generator=torch.Generator().manual_seed(seed + 7)),
        ],
        1,
    ).to(dev)

    def distance(a: Tensor, wa: Tensor, b: Tensor, wb: Tensor, proj: Tensor) -> Tensor:
        if len(a) < 2 or float(wa.sum()) <= 0:
            raise TrainingError(
                f"fewer than 2 calibrated MC events land in region {region!r}; "
                "lower the learning rate"
            )
        return sliced_wasserstein(a, b, a=wa, b=wb, projections=proj, root=False)

    @torch.no_grad()
    def validate(step: int, loss: float) -> dict[str, float]:
        a, wa = calibrated(va_m, False, torch.Generator().manual_seed(seed + 11))
        score = float(distance(a, wa, y[va_d], wd[va_d], val_proj))
        return {
            "step": float(step),
            "sliced_w2": score,
            "loss": loss,
            "n_region_val": float(len(a)),
        }

    opt = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.5, 0.9))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0)))
    )
    history = [validate(0, math.nan)]
    best = (history[0]["sliced_w2"], 0, copy.deepcopy(g.state_dict()))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="region fit", unit="step")
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        ib = (
            tr_m
            if len(tr_m) <= batch_size
            else tr_m[torch.randint(len(tr_m), (batch_size,), generator=gen).to(dev)]
        )
        jb = (
            tr_d
            if len(tr_d) <= batch_size
            else tr_d[torch.randint(len(tr_d), (batch_size,), generator=gen).to(dev)]
        )
        proj = torch.cat(
            [
                axes.repeat(1, max(1, n_projections // n_obj)),
                random_projections(n_obj, n_projections, generator=gen),
            ],
            1,
        ).to(dev)
        a, wa = calibrated(ib, True, gen)
        loss = distance(a, wa, y[jb], wd[jb], proj)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        g.project_()
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the region fit diverged at step {step} (non-finite loss); lower the learning rate"
            )
        if step % val_every == 0 or step == steps:
            h = validate(step, float(loss.detach()))
            history.append(h)
            if h["sliced_w2"] < best[0]:
                best = (h["sliced_w2"], step, copy.deepcopy(g.state_dict()))
            if bar is not None:
                bar.set_postfix(val=f"{h['sliced_w2']:.3g}")
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    g.load_state_dict(best[2])
    g.cpu().eval()
    pick = next(h for h in history if int(h["step"]) == best[1])
    info = {
        "objective": "region",
        "best_step": best[1],
        "best": pick,
        "last": history[-1],
        "identity": history[0],
        "history": history,
        "steps": steps,
        "steps_done": steps,
        "hidden": list(hidden),
        "lr": lr,
        "batch_size": batch_size,
        "n_projections": n_projections,
        "noise_dims": noise_dims,
        "seed": seed,
        "fit_s": time.perf_counter() - t0,
    }
    return OTMap(g, f.eval(), shift, scale, cshift, cscale, info, noise_dims)
