"""Sliced Wasserstein distance between weighted samples, in torch.

.. math::

    \\mathrm{SW}_p(\\mu, \\nu) = \\Big( \\frac1L \\sum_{l=1}^{L}
        W_p^p(\\theta_l^\\top\\mu, \\theta_l^\\top\\nu) \\Big)^{1/p},
    \\qquad
    W_p^p(u, v) = \\int_0^1 |F_u^{-1}(t) - F_v^{-1}(t)|^p \\, dt ,

with unit directions :math:`\\theta_l` (Bonneel et al. 2015; Kolouri et al.,
arXiv:1804.01947). The 1-D distance is evaluated exactly on the merged grid of cumulative
weight levels of both samples, so unequal sample sizes and event weights are handled
without resampling. The convention (root taken, directions uniform on the sphere) is POT's
``ot.sliced_wasserstein_distance``; ``root=False`` returns :math:`\\mathrm{SW}_p^p`, the
smoother quantity to minimise.

Negative event weights: the cumulative weight is computed with signs, divided by the total
(which must be positive), made non-decreasing with a running minimum taken from the right
and clipped to [0, 1]. A sample with only positive weights is treated exactly; where
negative weights make the signed CDF decrease, the negative weight cancels the nearest
preceding positive weight along the projection (among equal values, negative weights are
ordered last), so an event and its negative-weight copy cancel exactly.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def random_projections(
    d: int,
    n_projections: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Directions uniform on the unit sphere, shape [d, n_projections] (POT's layout)."""
    g_device = generator.device if generator is not None else device
    theta = torch.randn(d, n_projections, generator=generator, dtype=dtype, device=g_device)
    theta = theta / theta.norm(dim=0, keepdim=True).clamp_min(1e-12)
    return theta.to(device) if device is not None else theta


def _cdf_levels(w: Tensor) -> Tensor:
    """Cumulative normalised weight per column of w [n, L] (already sorted), in [0, 1]."""
    total = w.sum(0, keepdim=True)
    c = torch.cumsum(w, 0) / total
    if bool((w < 0).any()):
        # Running minimum from the right: a negative weight cancels preceding positive ones.
        c = torch.flip(torch.cummin(torch.flip(c, [0]), 0).values, [0])
    c = c.clamp(0.0, 1.0)
    # Force the last level to exactly 1 so that both grids end together.
    return torch.cat([c[:-1], torch.ones_like(c[-1:])], 0)


def _check_weights(w: Tensor | None, n: int, like: Tensor, name: str) -> Tensor:
    if w is None:
        return torch.full((n,), 1.0 / n, dtype=like.dtype, device=like.device)
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(f"{name} must have shape [{n}], got {tuple(w.shape)}")
    w = w.to(dtype=like.dtype, device=like.device)
    if not bool(w.sum() > 0):
        raise ValueError(f"{name} must have a positive total weight")
    return w


def _uniform(w: Tensor) -> bool:
    return not w.requires_grad and bool((w == w[0]).all())


def _sort(u: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """Sort columns of u; among ties, negative-weight rows come after the others."""
    if not bool((w < 0).any()):
        return torch.sort(u, dim=0)
    order = torch.argsort((w < 0).to(torch.int8), stable=True)
    us, ui = torch.sort(u[order], dim=0, stable=True)
    return us, order[ui]


def wasserstein_1d(
    u: Tensor, v: Tensor, *, a: Tensor | None = None, b: Tensor | None = None, p: float = 2
) -> Tensor:
    """Exact :math:`W_p^p` between 1-D samples, column by column.

    Args:
        u: [n, L] samples (L independent 1-D problems, e.g. projections).
        v: [m, L] samples.
        a, b: weights [n], [m] (default uniform); normalised internally.
        p: exponent ≥ 1.

    Returns:
        [L] tensor of :math:`W_p^p` (no root, like POT's ``wasserstein_1d``).
    """
    if u.ndim == 1:
        return wasserstein_1d(u[:, None], v[:, None], a=a, b=b, p=p)[0]
    n, m = u.shape[0], v.shape[0]
    if n == 0 or m == 0:
        raise ValueError("sliced_wasserstein needs at least one sample on each side")
    a = _check_weights(a, n, u, "a")
    b = _check_weights(b, m, u, "b")
    if n == m and _uniform(a) and _uniform(b):  # equal masses: match sorted samples
        us_, vs_ = torch.sort(u, dim=0).values, torch.sort(v, dim=0).values
        return (us_ - vs_).abs().pow(p).mean(0)
    us, ui = _sort(u, a)
    vs, vi = _sort(v, b)
    cu = _cdf_levels(a[ui])
    cv = _cdf_levels(b[vi])
    levels, _ = torch.sort(torch.cat([cu, cv], 0), dim=0)  # [n+m, L]
    delta = torch.diff(levels, dim=0, prepend=torch.zeros_like(levels[:1]))
    # Quantile at the right end of each interval: first index whose level reaches it.
    lt = levels.T.contiguous()
    iu = torch.searchsorted(cu.T.contiguous(), lt).clamp_max(n - 1).T
    iv = torch.searchsorted(cv.T.contiguous(), lt).clamp_max(m - 1).T
    qu = torch.gather(us, 0, iu)
    qv = torch.gather(vs, 0, iv)
    return (delta * (qu - qv).abs().pow(p)).sum(0)


def sliced_wasserstein(
    x: Tensor,
    y: Tensor,
    *,
    a: Tensor | None = None,
    b: Tensor | None = None,
    n_projections: int = 128,
    p: float = 2,
    projections: Tensor | None = None,
    generator: torch.Generator | None = None,
    root: bool = True,
) -> Tensor:
    """Sliced Wasserstein distance :math:`\\mathrm{SW}_p` between weighted samples.

    Args:
        x: [n, d] samples of the first distribution.
        y: [m, d] samples of the second (m may differ from n).
        a, b: event weights [n], [m]; may be negative (see the module docstring).
        n_projections: number of random directions when ``projections`` is not given.
        p: exponent (1 or 2 typically).
        projections: [d, L] directions to use (POT's layout); overrides ``n_projections``.
        generator: source of the random directions (for reproducible results).
        root: return :math:`\\mathrm{SW}_p` (POT's convention) or, if False, its p-th power.

    Returns:
        A scalar tensor with the dtype and device of ``x``; differentiable in x, y, a, b.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(100, 3, generator=g)
        >>> float(sliced_wasserstein(x, x, generator=g))
        0.0
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must be [n, d] and [m, d] with the same d, got {tuple(x.shape)}, "
            f"{tuple(y.shape)}"
        )
    if p < 1:
        raise ValueError(f"p must be >= 1, got {p}")
    y = y.to(dtype=x.dtype, device=x.device)
    if projections is None:
        if n_projections < 1:
            raise ValueError(f"n_projections must be >= 1, got {n_projections}")
        projections = random_projections(
            x.shape[1], n_projections, generator=generator, dtype=x.dtype, device=x.device
        )
    elif projections.ndim != 2 or projections.shape[0] != x.shape[1]:
        raise ValueError(f"projections must be [d={x.shape[1]}, L], got {tuple(projections.shape)}")
    projections = projections.to(dtype=x.dtype, device=x.device)
    w = wasserstein_1d(x @ projections, y @ projections, a=a, b=b, p=p).mean()
    return w.pow(1.0 / p) if root else w
