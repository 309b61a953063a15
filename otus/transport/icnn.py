"""Input-convex neural networks (ICNN) and their partially input-convex variant (PICNN).

A fully input-convex network (Amos, Xu & Kolter, arXiv:1609.07152) with input skip connections:

.. math::

    z_1 = \\sigma(A_1 x + b_1), \\qquad
    z_{k+1} = \\sigma(W_k^{+} z_k + A_{k+1} x + b_{k+1}), \\qquad
    g(x) = w^{+} \\cdot z_L + a \\cdot x + \\tfrac12 \\lVert L x \\rVert^2
           + \\tfrac{\\epsilon}{2} \\lVert x \\rVert^2 ,

with :math:`\\sigma` = softplus (convex, non-decreasing). ``g`` is convex in ``x`` because the
hidden-to-hidden weights :math:`W_k^{+}` and the output weights :math:`w^{+}` are non-negative:
the forward pass uses :math:`W^{+} = \\max(W, 0)`, so ``g`` is convex for any value of the
stored parameters, whatever the optimiser does (no penalty that can silently fail: one
computed on detached weights such as ``w.data`` has no gradient and enforces nothing), and
:meth:`ICNN.project_` (called after every optimiser step by the training module) clips the
stored weights to ``W >= 0`` so that no weight stays dead below zero. (A softplus
reparametrisation was tried first: its multiplicative Adam updates left the output weights,
which start at zero, unable to grow in a few thousand steps.)
The quadratic term makes ``g`` :math:`\\epsilon`-strongly convex, so :math:`\\nabla g` is
injective; it starts at :math:`L = I` with a near-zero network, i.e. :math:`\\nabla g \\approx
\\mathrm{id}` (the identity initialisation of Makkuva et al., arXiv:1908.10962).

With ``cond_dim > 0`` the network is *partially* input-convex (PICNN): a free MLP embeds the
conditioning variables ``c`` into :math:`u(c)`, which enters only through terms affine or
positively scaled in ``x`` — per-layer biases :math:`D_k u`, a linear term :math:`x \\cdot M u`
and a diagonal quadratic :math:`\\tfrac12 \\sum_i \\operatorname{softplus}(S u + s)_i x_i^2` —
so ``g(·, c)`` is convex in ``x`` for every ``c`` but arbitrary in ``c``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from otus.errors import ConfigError


def _inv_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class ICNN(nn.Module):
    """Convex potential :math:`g(x)` (or :math:`g(x; c)`, convex in ``x`` only).

    Args:
        dim: number of transported variables ``x``.
        hidden: widths of the hidden layers (at least one).
        cond_dim: number of conditioning variables ``c`` (0: fully input-convex).
        cond_hidden: width of the conditioning embedding MLP.
        strong_convexity: :math:`\\epsilon`, the fixed strong-convexity modulus.
        seed: seed of the parameter initialisation.

    Example::

        >>> g = ICNN(2, hidden=(16, 16), seed=0)
        >>> x = torch.randn(5, 2)
        >>> g(x).shape
        torch.Size([5])
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64, 64),
        *,
        cond_dim: int = 0,
        cond_hidden: int = 32,
        strong_convexity: float = 1e-3,
        seed: int = 0,
    ) -> None:
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if dim < 1 or not hidden or min(hidden) < 1 or cond_dim < 0 or strong_convexity < 0:
            raise ConfigError(
                f"ICNN needs dim >= 1, at least one hidden layer of width >= 1, cond_dim >= 0 "
                f"and strong_convexity >= 0 (got dim={dim}, hidden={hidden}, "
                f"cond_dim={cond_dim}, strong_convexity={strong_convexity})"
            )
        self.dim, self.hidden, self.cond_dim = dim, hidden, cond_dim
        self.strong_convexity = float(strong_convexity)
        gen = torch.Generator().manual_seed(seed)

        def randn(*shape: int, scale: float) -> nn.Parameter:
            return nn.Parameter(torch.randn(*shape, generator=gen) * scale)

        # Input skip connections A_k x + b_k into every layer (free sign).
        self.skip_w = nn.ParameterList([randn(h, dim, scale=1 / math.sqrt(dim)) for h in hidden])
        self.skip_b = nn.ParameterList([randn(h, scale=0.1) for h in hidden])
        # Hidden-to-hidden and output weights, used as max(W, 0). Hidden ones start at
        # |N(0, 1)| / width (pre-activations stay O(1)); the output weights start at zero, so
        # g = ½|x|² exactly and ∇g = id (identity initialisation).
        self.raw_hh = nn.ParameterList(
            [
                nn.Parameter(torch.randn(hout, hin, generator=gen).abs() / hin)
                for hin, hout in itertools.pairwise(hidden)
            ]
        )
        self.raw_out = nn.Parameter(torch.zeros(hidden[-1]))
        self.lin = nn.Parameter(torch.zeros(dim))
        self.quad = nn.Parameter(torch.eye(dim))  # L in ||L x||^2 / 2
        if cond_dim:
            self.embed = nn.Sequential(
                nn.Linear(cond_dim, cond_hidden),
                nn.SiLU(),
                nn.Linear(cond_hidden, cond_hidden),
                nn.SiLU(),
            )
            self.cond_bias = nn.ModuleList([nn.Linear(cond_hidden, h, bias=False) for h in hidden])
            self.cond_lin = nn.Linear(cond_hidden, dim, bias=False)
            self.cond_quad = nn.Linear(cond_hidden, dim)
            with torch.no_grad():  # seeded init, no global RNG
                for lin in self.embed:
                    if isinstance(lin, nn.Linear):
                        lin.weight.copy_(
                            torch.randn(lin.weight.shape, generator=gen)
                            / math.sqrt(lin.in_features)
                        )
                        lin.bias.zero_()
            for m in (*self.cond_bias, self.cond_lin, self.cond_quad):
                nn.init.zeros_(m.weight)
            nn.init.constant_(self.cond_quad.bias, _inv_softplus(1e-3))

    @torch.no_grad()
    def positive_weights(self) -> list[Tensor]:
        """The *stored* hidden-to-hidden and output weights (non-negative after
        :meth:`project_`; the forward pass clips them anyway)."""
        return [r.detach().clone() for r in self.raw_hh] + [self.raw_out.detach().clone()]

    @torch.no_grad()
    def project_(self) -> ICNN:
        """Project the stored hidden-to-hidden and output weights onto ``W >= 0``."""
        for r in (*self.raw_hh, self.raw_out):
            r.clamp_(min=0.0)
        return self

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """Potential values, shape [N], for ``x`` [N, dim] and ``c`` [N, cond_dim]."""
        if (c is None) != (self.cond_dim == 0):
            raise ConfigError(
                f"this ICNN has cond_dim={self.cond_dim}: pass c exactly when cond_dim > 0"
            )
        u = self.embed(c) if c is not None else None
        z: Tensor | None = None
        for k in range(len(self.hidden)):
            pre = F.linear(x, self.skip_w[k], self.skip_b[k])
            if z is not None:
                pre = pre + F.linear(z, self.raw_hh[k - 1].clamp(min=0.0))
            if u is not None:
                pre = pre + self.cond_bias[k](u)
            z = F.softplus(pre)
        assert z is not None
        out = z @ self.raw_out.clamp(min=0.0) + x @ self.lin
        lx = x @ self.quad.T
        out = out + 0.5 * (lx * lx).sum(-1) + 0.5 * self.strong_convexity * (x * x).sum(-1)
        if u is not None:
            out = out + (x * self.cond_lin(u)).sum(-1)
            out = out + 0.5 * (F.softplus(self.cond_quad(u)) * x * x).sum(-1)
        return out


def gradient(g: ICNN, x: Tensor, c: Tensor | None = None, *, create_graph: bool = False) -> Tensor:
    """:math:`\\nabla_x g(x; c)` by autograd, shape [N, dim].

    With ``create_graph`` the result is differentiable w.r.t. g's parameters (training).
    """
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(g(xg, c).sum(), xg, create_graph=create_graph)
    return grad
