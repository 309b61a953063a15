"""The OTUS LightningModule: losses, schedules, logging (OTUS: arXiv:2101.08944).

.. math::

    L = \\beta\\, r_{D(z)}\\, \\langle \\|f(x) - f(D(E(x)))\\|^2 \\rangle_{\\text{pass}}
      + \\lambda\\, \\mathrm{SW}_2^2(E(x), z) + \\tau\\, \\mathrm{SW}_2^2(D(z)|_{\\text{pass}}, x)
      + \\alpha(t)\\, [A(x, E(x)) + A(z, D(z))] + \\mu\\, M
      + \\kappa\\, \\mathrm{BCE}(\\varepsilon(z), \\text{pass flag})
      + \\rho\\, \\mathrm{ES}(D(z); x_z) + \\rho_u\\, \\mathrm{ES}(E(x_z); z) ,

with f the standardised loss-space features, "pass" the detector acceptance applied to
reconstructions (truncation, :func:`otus.physics.selection.acceptance`), r_{D(z)} the pass
rate of D(z) in the batch, A = 1 − cos between the reference particle's three-momenta of
input and output, and M the Minkowski penalty (only for free-energy outputs). Event
weights enter every term. α(t) follows the anchoring schedule in the config.

With the efficiency model (``net.efficiency``, :mod:`otus.models.efficiency`) the z batch
carries each event's pass flag: ε(z) learns P(pass | z) from it, the simulated events
D(z)|accepted enter the τ term with weights ε(z), and the prior target of the λ term is the
z of passing events (an unfolder of passing x must recover those), with r_{D(z)} the mean
of ε(z) over accepted reconstructions.

Fully unpaired training has no pass flags; with the data's integrated luminosity L and the
z sample's cross-section σ the data's yield gives the mean instead, ``data.pass_rate``
r = N_pass / (L·σ) (a yield replaces the z sample's pass flags where it has some: when
fine-tuning on data, those are the MC's): the κ term becomes KL(r ‖ ⟨ε(z)⟩) of the batch, and the τ term's
weights ε(z) keep their gradient, so the sliced-Wasserstein match of the ε-weighted D(z) to x
fixes the shape of ε; the prior target is z weighted by ε(z).

With ``data.region`` (fine-tuning on data in a control region, ``otus fit --init``), x holds
the data events inside the region, "accepted" also requires D(z) to land in it (the
selection redone on the simulated events at every step), and the prior target is z weighted
by its simulated probability to pass and land there.

Paired files (every generated sample: row i of z produced row i of x) allow supervised
terms (off by default, so that training stays unpaired): ρ = ``loss.paired``, the energy
score of each passing z event's own x under the decoder's conditional distribution, and
ρ_u = ``loss.paired_unfold``, that of z under the encoder's,

.. math::

    \\mathrm{ES}(D(z); x) = \\|f(x_1) - f(x)\\| - \\tfrac12 \\|f(x_1) - f(x_2)\\|,
    \\qquad x_{1,2} \\sim D(z) \\text{ accepted},

a strictly proper scoring rule (Gneiting & Raftery 2007; "engression", Shen & Meinshausen
arXiv:2307.00835): its expectation is minimal only when the decoder's p(x | z, pass) is the
detector's, so the noise keeps its spread (a squared error would collapse it to the mean).
The sliced-Wasserstein terms only see the marginals of x and z; this term teaches the
correlations inside an event (e.g. the two electrons' pT share the ISR recoil).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Timer

from otus._schedule import cosine_schedule
from otus.calibrate.regions import region_for
from otus.errors import TrainingError
from otus.models.config import Config, config_from_dict, config_process
from otus.models.coords import loss_features, minkowski_penalty, n_masses, n_peaks
from otus.models.efficiency import SIMULATE_RETRIES, TRAIN_RETRIES, Efficiency, draw_accepted
from otus.models.networks import Transport
from otus.physics import fourvec as fv
from otus.physics.selection import acceptance
from otus.transport.sliced import random_projections, sliced_wasserstein

Tensor = torch.Tensor
VAL_SEED = 20210122
# Optimizer steps in a row whose loss or gradient is not finite before training stops: a rare
# batch (a reconstruction at the edge of a coordinate map) costs one skipped step, as a
# mixed-precision gradient scaler skips one; a diverged model fails every step.
MAX_NONFINITE_IN_A_ROW = 10


def _modules(names: list[str]) -> str:
    """The modules that own the named parameters, e.g. 'decoder, efficiency'."""
    return ", ".join(dict.fromkeys(n.split(".")[0] for n in names))


def _wmean(v: Tensor, w: Tensor) -> Tensor:
    return (v * w).sum() / w.sum().clamp_min(1e-12)


def _norm(v: Tensor) -> Tensor:
    """Row norms with a finite gradient at 0 (two equal draws)."""
    return (v.pow(2).sum(-1) + 1e-12).sqrt()


def _one_minus_cos(a: Tensor, b: Tensor) -> Tensor:
    return 1.0 - torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-8)


def _sw_blocks(
    a: Tensor,
    b: Tensor,
    wa: Tensor,
    wb: Tensor,
    gen: torch.Generator,
    *,
    n_projections: int = 300,
    block: int = 100,
) -> Tensor:
    """SW2 with ``n_projections`` slices drawn in blocks: SW2² is the mean over slices of
    W2², so averaging the blocks' means is exact, and peak memory is that of one block.
    Validation only monitors training (nothing selects on it), so 300 slices: with 1000 it
    took about a fifth of a time-budgeted run's CPU time on the zee sample."""
    parts = [
        sliced_wasserstein(a, b, a=wa, b=wb, n_projections=block, generator=gen, root=False)
        for _ in range(n_projections // block)
    ]
    return torch.stack(parts).mean().sqrt()


class OtusModule(pl.LightningModule):
    """Stochastic encoder E: x → z and decoder D: z → x trained together."""

    # loss-space standardisation and mass-block scale (buffers, see __init__)
    fz_mu: Tensor
    fz_sd: Tensor
    fz_scale: Tensor
    fx_mu: Tensor
    fx_sd: Tensor
    fx_scale: Tensor

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.cfg: Config = config_from_dict(config)
        # non-finite steps (on_before_optimizer_step)
        self.skipped_steps = self._nonfinite_in_a_row = self._epoch_steps = 0
        self._epoch_skipped = 0
        self._bad_terms: list[str] = []
        self._bad_loss: float | None = None
        self.process = config_process(self.cfg)
        n = self.cfg.net
        kw: dict[str, Any] = {
            "hidden": n.hidden,
            "depth": n.depth,
            "noise_dim": n.noise_dim,
            "identity_bias": n.identity_bias,
            "coords": n.coords,
        }
        self.decoder = Transport(
            self.process,
            "decode",
            **{
                **kw,
                "hidden": n.decoder_hidden or n.hidden,
                "depth": n.decoder_depth or n.depth,
                "activation": n.decoder_activation,
            },
        )
        self.encoder = Transport(self.process, "encode", **kw)
        self.efficiency = (
            Efficiency(
                self.decoder.c_in.dim,
                n.efficiency_hidden,
                n.efficiency_fourier,
                self.decoder.c_in.eta_index,
            )
            if n.efficiency
            else None
        )
        fz = loss_features(
            self.process, "z", torch.zeros(1, self.process.dz), self.cfg.loss.features
        ).shape[1]
        fx = loss_features(
            self.process, "x", torch.ones(1, self.process.dx), self.cfg.loss.features
        ).shape[1]
        self._peaks: dict[str, int] = {}
        for name, d, level in (("fz", fz, "z"), ("fx", fx, "x")):
            self.register_buffer(f"{name}_mu", torch.zeros(d))
            self.register_buffer(f"{name}_sd", torch.ones(d))
            scale = torch.ones(d)
            feats = self.cfg.loss.features
            k = n_peaks(self.process, level, feats)
            if "masses" in feats:  # the mass block comes last, before the peak block
                scale[d - k - n_masses(self.process, level) : d - k] = self.cfg.loss.mass_scale
            scale[d - k :] = self.cfg.loss.mass_scale
            self.register_buffer(f"{name}_scale", scale, persistent=False)
            self._peaks[level] = k
        self.region = (
            region_for(self.cfg.data.region, self.process) if self.cfg.data.region else None
        )
        self._gen: torch.Generator | None = None

    # -- standardisation ---------------------------------------------------------------
    def set_statistics(self, st: dict[str, Tensor]) -> None:
        """Install statistics from :meth:`OtusDataModule.fit_statistics`."""
        self.decoder.set_standardisation(st["cz_mu"], st["cz_sd"], st["cx_mu"], st["cx_sd"])
        self.encoder.set_standardisation(st["cx_mu"], st["cx_sd"], st["cz_mu"], st["cz_sd"])
        for k in ("fz_mu", "fz_sd", "fx_mu", "fx_sd"):
            getattr(self, k).copy_(st[k])

    def features(self, level: str, p4: Tensor) -> Tensor:
        f = loss_features(self.process, level, p4, self.cfg.loss.features)
        if level == "z":
            f = (f - self.fz_mu) / self.fz_sd
        else:
            f = (f - self.fx_mu) / self.fx_sd
        k = self._peaks[level]
        if k:  # the peak block: flattened by the line's arctan (otus.models.coords)
            f = torch.cat([f[:, :-k], torch.atan(f[:, -k:])], dim=1)
        return f * (self.fz_scale if level == "z" else self.fx_scale)

    # -- the maps ------------------------------------------------------------------------
    def simulate(self, z: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        return self.decoder(z, generator=generator)

    def unfold(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        z = self.encoder(x, generator=generator)
        if self.cfg.net.balance_pt:
            z = fv.balance_transverse(z, self.process.z_masses)
        return z

    def efficiency_logit(self, z: Tensor) -> Tensor:
        """logit ε(z); requires ``net.efficiency``."""
        assert self.efficiency is not None
        d = self.decoder
        if not torch.is_grad_enabled() and d.c_in.kind == "ptetaphi":  # inference fast path
            return self.efficiency.logit_fast(d.c_in.encode_t(z.t().contiguous()), d.mu_in, d.sd_in)
        return self.efficiency((d.c_in.encode(z) - d.mu_in) / d.sd_in)

    def simulate_with_pass(
        self,
        z: Tensor,
        *,
        generator: torch.Generator | None = None,
        retries: int = SIMULATE_RETRIES,
    ) -> tuple[Tensor, Tensor]:
        """(x, x_pass) as a detector gives them: without the efficiency model, x = D(z) and
        x_pass its acceptance; with it, the event passes with probability ε(z) and its x is
        drawn from D(z) conditioned on the acceptance (see :mod:`otus.models.efficiency`)."""
        if self.efficiency is None:
            x = self.simulate(z, generator=generator)
            return x, acceptance(self.process, x)
        u = torch.rand(z.shape[0], generator=generator, dtype=z.dtype, device=z.device)
        keep = u < torch.sigmoid(self.efficiency_logit(z))
        x, acc = draw_accepted(
            self.process, lambda t: self.simulate(t, generator=generator), z, keep, retries
        )
        return x, keep & acc

    def in_region(self, x: Tensor) -> Tensor:
        """Rows of detector-level ``x`` inside ``data.region`` (all rows without one); the
        selection is redone on the simulated events at every step, a hard cut."""
        if self.region is None:
            return torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        with np.errstate(all="ignore"):
            keep = self.region.select(self.process, x.detach().cpu().numpy())
        return torch.from_numpy(keep).to(x.device)

    @property
    def learns_yield(self) -> bool:
        """ε(z) learnt from the data yield (``data.pass_rate``) rather than pass flags alone."""
        return self.efficiency is not None and self.cfg.data.pass_rate is not None

    def _simulated_batch(
        self,
        z: Tensor,
        wz: Tensor,
        generator: torch.Generator | None,
        retries: int,
        *,
        shape_grad: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
        """(D(z), accepted, weights, pass rate, ε-logits or None) for the τ term; "accepted"
        includes ``data.region``. With ``shape_grad`` the τ term's weights ε(z) keep their
        gradient, so the sliced-Wasserstein match of the ε-weighted D(z) to x shapes ε
        (fully unpaired training with a yield, :mod:`otus.models.efficiency`)."""
        if self.efficiency is None:
            x_sim = self.simulate(z, generator=generator)
            acc = acceptance(self.process, x_sim) & self.in_region(x_sim)
            return x_sim, acc, wz, acc.to(z.dtype).mean().detach(), None
        logit = self.efficiency_logit(z)
        eps = torch.sigmoid(logit)
        x_sim, acc = draw_accepted(
            self.process, lambda t: self.simulate(t, generator=generator), z, None, retries
        )
        acc = acc & self.in_region(x_sim)
        w = eps if shape_grad else eps.detach()
        return x_sim, acc, wz * w, _wmean(eps.detach() * acc.to(z.dtype), wz), logit

    # -- losses --------------------------------------------------------------------------
    def anchor_weight(self, epoch: int) -> float:
        lc = self.cfg.loss
        return lc.anchor if epoch < lc.anchor_until_epoch else lc.anchor_after

    def losses(
        self,
        z: Tensor,
        wz: Tensor,
        x: Tensor,
        wx: Tensor,
        *,
        generator: torch.Generator | None,
        n_projections: int,
        z_pass: Tensor | None = None,
        zx: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Every loss term for one batch of unpaired z and (passing) x events; ``z_pass``
        holds the z events' pass flags (1/0) for the efficiency model, ``zx`` (paired files)
        each z event's own detector-level row, used where the flag is 1."""
        p = self.process
        zero = x.new_zeros(())
        z_t = self.unfold(x, generator=generator)
        x_hat = self.simulate(z_t, generator=generator)
        acc_hat = acceptance(p, x_hat)
        x_sim, acc_sim, w_sim, pass_rate, logit = self._simulated_batch(
            z, wz, generator, TRAIN_RETRIES, shape_grad=self.learns_yield
        )
        fx = self.features("x", x)
        out: dict[str, Tensor] = {"pass_rate": pass_rate}
        if bool(acc_hat.any()):
            err = ((fx[acc_hat] - self.features("x", x_hat[acc_hat])) ** 2).mean(-1)
            out["data"] = pass_rate * _wmean(err, wx[acc_hat])
        else:
            out["data"] = zero
        # The data's yield, when given, trains ε (with the τ term's shape); pass flags of the
        # z sample (e.g. the MC's, when fine-tuning on data) train it only without one.
        if logit is not None and z_pass is not None and not self.learns_yield:
            bce = torch.nn.functional.binary_cross_entropy_with_logits(
                logit, z_pass.to(logit.dtype), reduction="none"
            )
            out["efficiency"] = _wmean(bce, wz)
            out["pass_rate_true"] = _wmean(z_pass.to(wz.dtype), wz).detach()
        if logit is not None and self.learns_yield:
            out["efficiency_yield"] = self._yield_term(logit, acc_sim, wz)
        z_prior, w_prior = self._prior_target(z, wz, z_pass, (w_sim * acc_sim).detach())
        fz = self.features("z", z_prior)
        out["prior"] = self._sw(self.features("z", z_t), fz, wx, w_prior, n_projections, generator)
        if int(acc_sim.sum()) >= 2:
            out["sim"] = self._sw(
                self.features("x", x_sim[acc_sim]), fx, w_sim[acc_sim], wx, n_projections, generator
            )
        else:
            out["sim"] = zero
        iz, ix = p.anchor
        out["anchor"] = _wmean(
            _one_minus_cos(x[:, 4 * ix : 4 * ix + 3], z_t[:, 4 * iz : 4 * iz + 3]), wx
        ) + _wmean(_one_minus_cos(z[:, 4 * iz : 4 * iz + 3], x_sim[:, 4 * ix : 4 * ix + 3]), wz)
        lc = self.cfg.loss
        if zx is not None and z_pass is not None and lc.uses_pairs:
            out.update(self._paired(z, wz, z_pass, zx, x_sim, acc_sim, generator))
        if self.decoder.c_out.has_free_energy or self.encoder.c_out.has_free_energy:
            out["minkowski"] = (
                minkowski_penalty(x_sim) + minkowski_penalty(x_hat) + minkowski_penalty(z_t)
            )
        out["loss"] = (
            lc.data * out["data"]
            + lc.prior * out["prior"]
            + lc.sim * out["sim"]
            + self.anchor_weight(self.current_epoch) * out["anchor"]
            + lc.minkowski * out.get("minkowski", zero)
            + lc.efficiency * (out.get("efficiency", zero) + out.get("efficiency_yield", zero))
            + lc.paired * out.get("paired", zero)
            + lc.paired_unfold * out.get("paired_unfold", zero)
        )
        return out

    def _paired(
        self,
        z: Tensor,
        wz: Tensor,
        z_pass: Tensor,
        zx: Tensor,
        x_sim: Tensor,
        acc_sim: Tensor,
        generator: torch.Generator | None,
    ) -> dict[str, Tensor]:
        """Energy scores of the passing pairs (z, x): ``paired``, x under D(z) (two accepted
        draws, the first shared with the τ term), and ``paired_unfold``, z under E(x) (two
        draws); each only when its weight is > 0."""
        sel = torch.nonzero(z_pass > 0.5).squeeze(1)
        zero = z.new_zeros(())
        if sel.numel() < 2:
            return {"paired": zero, "paired_unfold": zero}
        zs, xt, w = z[sel], zx[sel], wz[sel]
        out: dict[str, Tensor] = {}
        lc = self.cfg.loss
        if lc.paired > 0:
            x2, acc2 = draw_accepted(
                self.process,
                lambda t: self.simulate(t, generator=generator),
                zs,
                None,
                TRAIN_RETRIES,
            )
            ok = (acc_sim[sel] & acc2).to(w.dtype)
            f1, f2, ft = (self.features("x", v) for v in (x_sim[sel], x2, xt))
            out["paired"] = (
                _wmean(_norm(f1 - ft) - 0.5 * _norm(f1 - f2), w * ok) if bool(ok.any()) else zero
            )
        if lc.paired_unfold > 0:
            u1, u2 = self.unfold(xt, generator=generator), self.unfold(xt, generator=generator)
            g1, g2, gz = (self.features("z", v) for v in (u1, u2, zs))
            out["paired_unfold"] = _wmean(_norm(g1 - gz) - 0.5 * _norm(g1 - g2), w)
        return out

    def _yield_term(self, logit: Tensor, acc: Tensor, wz: Tensor) -> Tensor:
        """KL(r ‖ m) of two Bernoulli rates: r = ``data.pass_rate`` = N_pass / (L·σ), the
        fraction of z events the data say pass (and land in the region), and m the batch mean
        of ε(z) over accepted reconstructions; zero when they agree. This fixes the mean of
        ε(z), the τ term its shape."""
        r = float(self.cfg.data.pass_rate or 1.0)
        m = _wmean(torch.sigmoid(logit) * acc.to(logit.dtype), wz).clamp(1e-6, 1 - 1e-6)
        kl = r * torch.log(r / m)
        if r < 1:
            kl = kl + (1 - r) * torch.log((1 - r) / (1 - m))
        return kl

    def _prior_target(
        self, z: Tensor, wz: Tensor, z_pass: Tensor | None, w_sim: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The z the unfolder must recover, those of events that pass: with a region or an
        efficiency learnt from the yield, z weighted by the simulated probability to pass
        (and land in the region), ``w_sim``; with the efficiency model and pass flags, the
        passing events (when at least two are in the batch); otherwise all of them."""
        if w_sim is not None and (self.region is not None or self.learns_yield):
            return (z, w_sim) if float(w_sim.sum()) > 0 else (z, wz)
        if self.efficiency is None or z_pass is None:
            return z, wz
        sel = z_pass > 0.5
        return (z[sel], wz[sel]) if int(sel.sum()) >= 2 else (z, wz)

    def _sw(
        self,
        a: Tensor,
        b: Tensor,
        wa: Tensor,
        wb: Tensor,
        n: int,
        generator: torch.Generator | None,
    ) -> Tensor:
        """SW₂² over random slices, plus ``loss.axis_weight`` × the mean W₂² of the
        marginals (each loss feature, e.g. m_ee, as its own slice)."""
        d = a.shape[1]
        sw = sliced_wasserstein(
            a, b, a=wa, b=wb, root=False, projections=self._projections(d, n, generator, a)
        )
        aw = self.cfg.loss.axis_weight
        if aw > 0:
            eye = torch.eye(d, dtype=a.dtype, device=a.device)
            sw = sw + aw * sliced_wasserstein(a, b, a=wa, b=wb, root=False, projections=eye)
        return sw

    def _projections(
        self, d: int, n: int, generator: torch.Generator | None, like: Tensor
    ) -> Tensor:
        """n random directions, plus the d feature axes when ``loss.axis_projections``
        (so every marginal, e.g. m_ee, is matched explicitly)."""
        theta = random_projections(d, n, generator=generator, dtype=like.dtype, device=like.device)
        if self.cfg.loss.axis_projections:
            theta = torch.cat([torch.eye(d, dtype=like.dtype, device=like.device), theta], 1)
        return theta

    def _generator(self, stage: str) -> torch.Generator:
        if stage != "train":
            return torch.Generator(device=self.device).manual_seed(VAL_SEED)
        if self._gen is None or self._gen.device != self.device:
            self._gen = torch.Generator(device=self.device).manual_seed(
                self.cfg.seed * 1000 + self.global_rank + 1
            )
        return self._gen

    def on_train_epoch_start(self) -> None:
        # A fresh training generator per epoch, seeded by (seed, rank, epoch): a run resumed
        # from an epoch-end checkpoint draws the same noise and slices as an uninterrupted
        # run (tests/reliability/test_interrupt.py).
        base = self.cfg.seed * 1000 + self.global_rank + 1
        self._gen = torch.Generator(device=self.device).manual_seed(
            base * 1_000_003 + self.current_epoch
        )

    def _step(self, batch: tuple[Tensor, ...], stage: str) -> Tensor:
        zx = None
        if len(batch) in (5, 6):
            z, wz, zp, x, wx = batch[:5]
            z_pass = None if bool(torch.isnan(zp).any()) else zp.to(self.dtype)
            if len(batch) == 6:
                zx = batch[5].to(self.dtype)
        else:
            (z, wz, x, wx), z_pass = batch, None
        z, wz, x, wx = (t.to(self.dtype) for t in (z, wz, x, wx))
        gen = self._generator(stage)
        terms = self.losses(
            z,
            wz,
            x,
            wx,
            generator=gen,
            z_pass=z_pass,
            zx=zx,
            n_projections=self.cfg.loss.n_projections,
        )
        loss = terms["loss"]
        if stage == "train" and not bool(torch.isfinite(loss)):
            # its gradient is not finite either: on_before_optimizer_step skips the step
            self._bad_terms = [k for k, v in terms.items() if not bool(torch.isfinite(v))]
            self._bad_loss = float(loss.detach())
            return loss
        bs = int(x.shape[0])
        self.log_dict(
            {f"{stage}/{k}": v.detach() for k, v in terms.items()},
            on_step=stage == "train",
            on_epoch=True,
            batch_size=bs,
            prog_bar=False,
            sync_dist=stage != "train",
        )
        self.log(
            f"{stage}/anchor_weight",
            self.anchor_weight(self.current_epoch),
            on_step=False,
            on_epoch=True,
            batch_size=bs,
        )
        if stage != "train":
            with torch.no_grad():
                gen = self._generator(stage)
                x_sim, acc, w_sim, _, _ = self._simulated_batch(z, wz, gen, SIMULATE_RETRIES)
                sw_sim = _sw_blocks(
                    self.features("x", x_sim[acc]), self.features("x", x), w_sim[acc], wx, gen
                )
                zt, wt = self._prior_target(z, wz, z_pass, w_sim * acc)
                sw_unf = _sw_blocks(
                    self.features("z", self.unfold(x, generator=gen)),
                    self.features("z", zt),
                    wx,
                    wt,
                    gen,
                )
            self.log_dict(
                {f"{stage}/sw_sim": sw_sim, f"{stage}/sw_unfold": sw_unf},
                on_epoch=True,
                batch_size=bs,
                prog_bar=True,
                sync_dist=True,
            )
        return loss

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip a step whose gradient is not finite (a non-finite loss, or a finite loss
        through an operation at its singular point): Adam would otherwise turn every weight
        into NaN. Stops training after ``MAX_NONFINITE_IN_A_ROW`` such steps in a row, or
        after an epoch in which every step was skipped."""
        self._epoch_steps += 1
        bad = [
            name
            for name, q in self.named_parameters()
            if q.grad is not None and not bool(torch.isfinite(q.grad).all())
        ]
        if not bad:
            self._nonfinite_in_a_row = 0
            self._bad_terms, self._bad_loss = [], None
            return
        for q in self.parameters():
            q.grad = None  # Adam leaves parameters without a gradient alone
        self._nonfinite_in_a_row += 1
        self._epoch_skipped += 1
        self.skipped_steps += 1
        what = (
            f"the loss became {self._bad_loss} ({', '.join(self._bad_terms)})"
            if self._bad_loss is not None
            else f"a gradient became non-finite ({_modules(bad)})"
        )
        if self.skipped_steps == 1:
            print(
                f"otus fit: {what} at epoch {self.current_epoch}, step {self.global_step}; "
                f"that step is skipped ({MAX_NONFINITE_IN_A_ROW} in a row stop training)",
                file=sys.stderr,
                flush=True,
            )
        if self._nonfinite_in_a_row >= MAX_NONFINITE_IN_A_ROW:
            self._fail(what, f"{self._nonfinite_in_a_row} steps in a row")

    def on_train_epoch_end(self) -> None:
        steps, skipped = self._epoch_steps, self._epoch_skipped
        self._epoch_steps = self._epoch_skipped = 0
        self.log("train/skipped_steps", float(self.skipped_steps), on_epoch=True)
        if steps and skipped == steps:
            what = (
                f"the loss became {self._bad_loss}"
                if self._bad_loss is not None
                else "a gradient became non-finite"
            )
            self._fail(what, "every step of the epoch")

    def _fail(self, what: str, how_long: str) -> None:
        raise TrainingError(
            f"{what} at epoch {self.current_epoch}, step {self.global_step}, and stayed "
            f"non-finite for {how_long} (diverging; try a smaller optim.lr); training "
            f"stopped, the last good checkpoint is kept"
        )

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def budget_used(self) -> float:
        """Fraction of the training budget used: the epochs done of ``trainer.max_epochs``, or
        the training time of ``trainer.max_time`` when that is larger (so a run stopped by its
        time limit has annealed its learning rate, whatever the machine's speed)."""
        trainer = self._trainer
        if trainer is None:
            return 0.0
        max_epochs = self.cfg.trainer.max_epochs
        frac = trainer.current_epoch / max_epochs if max_epochs > 0 else 0.0
        for cb in getattr(trainer, "callbacks", []):
            if isinstance(cb, Timer):
                elapsed, left = cb.time_elapsed("train"), cb.time_remaining("train")
                if left is not None and elapsed + left > 0:
                    frac = max(frac, elapsed / (elapsed + left))
        return min(frac, 1.0)

    def configure_optimizers(self) -> Any:
        o = self.cfg.optim
        opt = torch.optim.Adam(self.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        if not o.cosine:
            return opt
        # Cosine decay to 2 % of the initial rate over the budget, updated every step.
        sched = cosine_schedule(opt, lambda _: self.budget_used())
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
