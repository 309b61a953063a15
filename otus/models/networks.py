"""Stochastic encoder and decoder networks (plain ``nn.Module``).

A :class:`StochasticMLP` maps standardised coordinates s to an output shift, with noise of
learned, input-dependent scale injected at the input (OTUS, arXiv:2101.08944):

.. math::

    \\varepsilon = \\mu(s) + \\mathrm{softplus}(\\sigma(s)) \\odot \\xi, \\quad
    \\xi \\sim \\mathcal N(0, I), \\qquad  \\Delta = f([s, \\varepsilon]).

A :class:`Transport` wraps it between two event levels (z → x decoder, x → z encoder): it
converts four-momenta to coordinates (:mod:`otus.models.coords`), standardises them with
statistics fit on the training split (buffers, so they travel in the checkpoint), adds the
*identity bias* (the output starts from the matching input object, x ≈ z + Δ) and converts
back to four-momenta that are on mass shell by construction.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from otus.models.coords import Coordinates
from otus.physics import fourvec as fv
from otus.processes import Process

Tensor = torch.Tensor


# Hidden activations (parameter-free, so the choice does not change the state dict). ReLU is
# several times cheaper than SiLU on a CPU; SiLU is smooth (results/speed.md, fidelity.md).
ACTIVATIONS = {
    "silu": (nn.SiLU, torch.nn.functional.silu),
    "relu": (nn.ReLU, torch.nn.functional.relu),
}


class _Residual(nn.Module):
    def __init__(self, width: int, activation: str = "silu") -> None:
        super().__init__()
        module, self.act = ACTIVATIONS[activation]
        self.f = nn.Sequential(nn.Linear(width, width), module(), nn.Linear(width, width))

    def forward(self, h: Tensor) -> Tensor:
        return self.act(h + self.f(h))

    def linears(self) -> tuple[nn.Linear, nn.Linear]:
        return cast(nn.Linear, self.f[0]), cast(nn.Linear, self.f[2])


class StochasticMLP(nn.Module):
    """Residual MLP with learned, input-dependent noise injected at the input."""

    def __init__(
        self,
        d_in: int,
        d_out: int,
        *,
        hidden: int = 128,
        depth: int = 2,
        noise_dim: int = 4,
        activation: str = "silu",
    ) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        self.activation = activation
        self.act = ACTIVATIONS[activation][1]
        self.noise_mu = nn.Linear(d_in, noise_dim)
        self.noise_scale = nn.Linear(d_in, noise_dim)
        self.inp = nn.Linear(d_in + noise_dim, hidden)
        self.blocks = nn.Sequential(
            *[_Residual(hidden, activation) for _ in range(max(depth - 1, 0))]
        )
        self.out = nn.Linear(hidden, d_out)
        nn.init.zeros_(self.out.weight)  # start at the identity bias
        nn.init.zeros_(self.out.bias)

    def forward(self, s: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        xi = torch.randn(
            s.shape[0], self.noise_dim, generator=generator, dtype=s.dtype, device=s.device
        )
        eps = self.noise_mu(s) + nn.functional.softplus(self.noise_scale(s)) * xi
        h = self.act(self.inp(torch.cat([s, eps], dim=-1)))
        return self.out(self.blocks(h))


class Transport(nn.Module):
    """One direction of the autoencoder: four-momenta of one level → the other's.

    Without autograd (``torch.no_grad`` / ``torch.inference_mode``) and in ``ptetaphi``
    coordinates, :meth:`forward` takes :meth:`_forward_fast` (same result up to rounding);
    ``fast_inference = False`` (class or instance) keeps the reference path, for benchmarks.
    """

    fast_inference = True
    mu_in: Tensor  # standardisation buffers (set_standardisation)
    sd_in: Tensor
    mu_out: Tensor
    sd_out: Tensor

    def __init__(
        self,
        process: Process,
        direction: str,
        *,
        hidden: int,
        depth: int,
        noise_dim: int,
        identity_bias: bool = True,
        coords: str = "ptetaphi",
        activation: str = "silu",
    ) -> None:
        super().__init__()
        if direction not in ("decode", "encode"):
            raise ValueError(f"direction must be 'decode' or 'encode', got {direction!r}")
        src, dst = ("z", "x") if direction == "decode" else ("x", "z")
        self.c_in = Coordinates(process, src, coords)
        self.c_out = Coordinates(process, dst, coords)
        self.identity_bias = identity_bias
        self.sources, self.sorted_group = process.bias_sources(direction)
        self.net = StochasticMLP(
            self.c_in.dim,
            self.c_out.dim,
            hidden=hidden,
            depth=depth,
            noise_dim=noise_dim,
            activation=activation,
        )
        for name, d in (("in", self.c_in.dim), ("out", self.c_out.dim)):
            self.register_buffer(f"mu_{name}", torch.zeros(d))
            self.register_buffer(f"sd_{name}", torch.ones(d))

    def set_standardisation(
        self, mu_in: Tensor, sd_in: Tensor, mu_out: Tensor, sd_out: Tensor
    ) -> None:
        for name, v in (("mu_in", mu_in), ("sd_in", sd_in), ("mu_out", mu_out), ("sd_out", sd_out)):
            getattr(self, name).copy_(v)

    def _bias_p4(self, p4: Tensor) -> Tensor:
        p = fv.objects(p4)
        if self.sorted_group:
            grp = torch.tensor(self.sorted_group, device=p.device)
            q = p[:, grp]
            order = torch.argsort(fv.pt(q), dim=1, descending=True)
            q = torch.gather(q, 1, order[..., None].expand(-1, -1, 4))
            p = p.index_copy(1, grp, q)
        return p[:, self.sources].reshape(p.shape[0], -1)

    def forward(self, p4: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Map input four-momenta rows [N, 4n_in] to output rows [N, 4n_out]."""
        if (
            self.fast_inference
            and not torch.is_grad_enabled()
            and self.c_in.kind == "ptetaphi" == self.c_out.kind
        ):
            return self._forward_fast(p4, generator=generator)
        s = (self.c_in.encode(p4) - self.mu_in) / self.sd_in
        delta = self.net(s, generator=generator)
        if self.identity_bias:
            base = (self.c_out.encode(self._bias_p4(p4)) - self.mu_out) / self.sd_out
            delta = delta + base
        c = self.c_out.wrap(delta * self.sd_out + self.mu_out)
        return self.c_out.decode(c)

    # -- inference fast path ------------------------------------------------------------
    def _folded(self) -> list[Tensor]:
        """Weights for :meth:`_forward_fast`, feature-major (y = W x + b on columns x), with
        the standardisation folded in: the first layers see raw coordinates c (s = (c − μ)/σ
        becomes W/σ and b − W μ/σ), the last one returns Δ σ_out (+ μ_out without the
        identity bias), so that c_out = out + c_bias."""
        net, d_in = self.net, self.c_in.dim
        w_first = torch.cat([net.noise_mu.weight, net.noise_scale.weight, net.inp.weight[:, :d_in]])
        b_first = torch.cat([net.noise_mu.bias, net.noise_scale.bias, net.inp.bias])
        w = w_first / self.sd_in
        b = b_first - w @ self.mu_in
        wo = net.out.weight * self.sd_out[:, None]
        bo = net.out.bias * self.sd_out + (0.0 if self.identity_bias else self.mu_out)
        blocks = []
        for blk in net.blocks:
            l1, l2 = cast(_Residual, blk).linears()
            blocks += [l1.weight, l1.bias[:, None], l2.weight, l2.bias[:, None]]
        return [w, b[:, None], net.inp.weight[:, d_in:].contiguous(), *blocks, wo, bo[:, None]]

    def _forward_fast(
        self, p4: Tensor, *, generator: torch.Generator | None = None, tile: int = 2048
    ) -> Tensor:
        """Inference-only :meth:`forward` (no autograd), equal up to float rounding and with
        the same noise draws: feature-major coordinates, standardisation folded into the
        weights, and the MLP run over row tiles that stay in cache with in-place
        activations."""
        n = p4.shape[0]
        xi = torch.randn(
            n, self.net.noise_dim, generator=generator, dtype=p4.dtype, device=p4.device
        ).t()
        pt = p4.t().contiguous()
        c = self.c_in.encode_t(pt)
        if not self.identity_bias:
            c_out = c.new_zeros(self.c_out.dim, n)
        elif (
            self.sorted_group
            or self.sources != list(range(len(self.c_in.objects)))
            or self.c_in.objects != self.c_out.objects
        ):
            c_out = self.c_out.encode_t(self._bias_p4(p4).t().contiguous())
        else:
            c_out = c.clone()
        w, b, w_eps, *blocks, wo, bo = self._folded()
        k = self.net.noise_dim
        c_out.add_(bo)
        act = self.net.act  # the network's activation (SiLU or ReLU), applied in place
        for a in range(0, n, tile):
            y = torch.addmm(b, w, c[:, a : a + tile])
            eps = torch.nn.functional.softplus(y[k : 2 * k]).mul_(xi[:, a : a + tile]).add_(y[:k])
            h = act(y[2 * k :].addmm_(w_eps, eps), inplace=True)
            for i in range(0, len(blocks), 4):
                w1, b1, w2, b2 = blocks[i : i + 4]
                r = act(torch.addmm(b1, w1, h), inplace=True)
                h = act(h.addmm_(w2, r).add_(b2), inplace=True)
            c_out[:, a : a + tile].addmm_(wo, h)
        return self.c_out.decode_t(self.c_out.wrap_(c_out)).t().contiguous()
