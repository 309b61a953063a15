"""The min-max dual of quadratic optimal transport with convex potentials (Makkuva et al.).

For a source sample :math:`x \\sim P` (e.g. simulation) and a target :math:`y \\sim Q`
(e.g. data), Brenier's theorem gives the optimal map as the gradient of a convex potential.
With convex ``f`` on the target space and convex ``g`` on the source space
(Makkuva, Taghvaei, Oh & Lee, arXiv:1908.10962, eq. 5, roles of P and Q swapped so that the
transported source is :math:`\\nabla g(x)`):

.. math::

    \\tfrac12 W_2^2(P, Q) = \\tfrac12 E\\lVert x\\rVert^2 + \\tfrac12 E\\lVert y\\rVert^2
      - \\min_f \\max_g \\Big( E_Q[f(y)]
      + E_P\\big[\\langle x, \\nabla g(x)\\rangle - f(\\nabla g(x))\\big] \\Big).

The inner maximum over ``g`` evaluates the convex conjugate :math:`f^*(x)`; at the optimum
:math:`\\nabla g` pushes ``P`` onto ``Q``. Optional conditioning variables ``c`` ride along
unchanged (one OT problem per value of ``c``; the ``c`` marginals of both samples should agree).
Expectations are weighted means with the event weights (which may be negative).

Two ways to evaluate the inner maximum (the conjugate :math:`f^*`):

* ``minmax`` (Makkuva et al.): a few Adam steps on ``g`` per ``f`` step with
  :func:`g_loss`; ``f`` then sees :math:`\\nabla g(x)`, a biased stand-in for the argmax;
* ``conjugate`` (amortised conjugate, Amos, arXiv:2210.12153; the ``W2NeuralDual`` of
  OTT-JAX): :func:`conjugate` solves :math:`\\max_t \\langle x, t\\rangle - f(t)` per point,
  started at :math:`\\nabla g(x)`, so the ``f`` gradient is exact (Danskin), and ``g`` only
  learns to predict the argmax (:func:`g_regression_loss`).

:func:`cycle_loss` is the cycle-consistency regulariser of W2GN (Korotin et al.,
arXiv:1909.13082), :math:`E\\lVert \\nabla f(\\nabla g(x)) - x\\rVert^2`, which vanishes when
``g`` is the conjugate of ``f``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from otus.errors import OtusError
from otus.transport.icnn import ICNN, gradient


def weighted_mean(v: Tensor, w: Tensor | None) -> Tensor:
    """:math:`\\sum_i w_i v_i / \\sum_i w_i` (plain mean when ``w`` is None)."""
    if w is None:
        return v.mean()
    return (w * v).sum() / w.sum()


def g_loss(
    f: ICNN, g: ICNN, x: Tensor, cx: Tensor | None = None, wx: Tensor | None = None
) -> Tensor:
    """Loss minimised by ``g`` (the inner maximisation):
    :math:`-E_P[\\langle x, \\nabla g(x)\\rangle - f(\\nabla g(x))]`."""
    t = gradient(g, x, cx, create_graph=True)
    return -weighted_mean((x * t).sum(-1) - f(t, cx), wx)


def f_loss(
    f: ICNN,
    t: Tensor,
    y: Tensor,
    *,
    cx: Tensor | None = None,
    cy: Tensor | None = None,
    wx: Tensor | None = None,
    wy: Tensor | None = None,
) -> Tensor:
    """Loss minimised by ``f`` given transported source points ``t`` = ∇g(x) (no gradient to g):
    :math:`E_Q[f(y)] - E_P[f(\\nabla g(x))]`."""
    return weighted_mean(f(y, cy), wy) - weighted_mean(f(t.detach(), cx), wx)


def g_regression_loss(
    g: ICNN, x: Tensor, t_star: Tensor, cx: Tensor | None = None, wx: Tensor | None = None
) -> Tensor:
    """Amortisation loss of ``g``: :math:`E_P\\lVert \\nabla g(x) - t^*(x)\\rVert^2` with the
    conjugate argmax ``t_star`` (no gradient to it)."""
    t = gradient(g, x, cx, create_graph=True)
    return weighted_mean(((t - t_star.detach()) ** 2).sum(-1), wx)


def cycle_loss(
    f: ICNN, g: ICNN, x: Tensor, cx: Tensor | None = None, wx: Tensor | None = None
) -> Tensor:
    """W2GN cycle-consistency :math:`E_P\\lVert \\nabla f(\\nabla g(x)) - x\\rVert^2`
    (differentiable w.r.t. the parameters of both potentials that require grad)."""
    t = gradient(g, x, cx, create_graph=True)
    with torch.enable_grad():
        if not t.requires_grad:  # g frozen: still differentiate through f
            t = t.detach().requires_grad_(True)
        (back,) = torch.autograd.grad(f(t, cx).sum(), t, create_graph=True)
    return weighted_mean(((back - x) ** 2).sum(-1), wx)


def _precond(f: ICNN) -> Tensor:
    """Inverse Hessian of f's quadratic part, :math:`(L^T L + \\epsilon I)^{-1}`."""
    q = f.quad.detach()
    h = q.T @ q + f.strong_convexity * torch.eye(f.dim, device=q.device, dtype=q.dtype)
    return torch.linalg.inv(h.double()).to(q.dtype)


@torch.no_grad()
def conjugate(
    f: ICNN,
    x: Tensor,
    c: Tensor | None = None,
    t0: Tensor | None = None,
    *,
    iters: int = 20,
    tol: float = 1e-5,
) -> Tensor:
    """Argmax :math:`t^*(x) = \\arg\\max_t \\langle x, t\\rangle - f(t; c)`, i.e.
    :math:`\\nabla f^*(x)`, per point.

    Preconditioned gradient steps :math:`t \\leftarrow t - \\alpha P (\\nabla f(t) - x)` with
    :math:`P^{-1}` the Hessian of f's quadratic part, and a per-point step size that halves
    when a step decreases neither :math:`f(t) - \\langle x, t\\rangle` nor the gradient norm
    (the step is then rejected) and grows back otherwise. Started at ``t0`` (e.g. :math:`\\nabla g(x)`), or at
    ``x``. No gradient flows to f's parameters (Danskin: the caller evaluates f at the result).

    Example::

        >>> f = ICNN(2, hidden=(8,), seed=0)  # f = |t|^2/2 (+ tiny): t* = x / (1 + eps)
        >>> x = torch.randn(4, 2)
        >>> bool(torch.allclose(conjugate(f, x), x / 1.001, atol=1e-5))
        True
    """
    p = _precond(f)
    t = (x if t0 is None else t0).detach().clone()
    alpha = torch.ones(len(x), 1, dtype=x.dtype, device=x.device)

    def obj_grad(tt: Tensor) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            tg = tt.detach().requires_grad_(True)
            val = f(tg, c)
            (gr,) = torch.autograd.grad(val.sum(), tg)
        return val.detach() - (x * tt).sum(-1), gr - x

    h, gr = obj_grad(t)
    for _ in range(iters):
        if float(gr.abs().max()) < tol:
            break
        t_new = t - alpha * (gr @ p)
        h_new, gr_new = obj_grad(t_new)
        # accept a decrease of the objective, or (near the optimum, where float32 cannot
        # resolve the objective) a smaller gradient
        ok = ((h_new < h) | (gr_new.norm(dim=-1) < 0.9 * gr.norm(dim=-1)))[:, None]
        t = torch.where(ok, t_new, t)
        h = torch.where(ok[:, 0], h_new, h)
        gr = torch.where(ok, gr_new, gr)
        alpha = torch.where(ok, (alpha * 1.5).clamp_max(1.0), alpha * 0.5)
    return t


@torch.no_grad()
def transport(g: ICNN, x: Tensor, c: Tensor | None = None, *, batch_size: int = 65536) -> Tensor:
    """Transported points :math:`\\nabla g(x)` in batches, on g's device; result on x's device.

    Example::

        >>> g = ICNN(3, hidden=(8,), seed=0)
        >>> transport(g, torch.zeros(10, 3)).shape
        torch.Size([10, 3])
    """
    dev = next(g.parameters()).device
    out = []
    for a in range(0, len(x), batch_size):
        xb = x[a : a + batch_size].to(dev)
        cb = None if c is None else c[a : a + batch_size].to(dev)
        out.append(gradient(g, xb, cb).to(x.device))
    return torch.cat(out) if out else x.new_zeros(0, x.shape[1])


@torch.no_grad()
def w2_estimates(
    f: ICNN,
    g: ICNN,
    x: Tensor,
    y: Tensor,
    *,
    cx: Tensor | None = None,
    cy: Tensor | None = None,
    wx: Tensor | None = None,
    wy: Tensor | None = None,
    batch_size: int = 65536,
) -> dict[str, float]:
    """Two estimates of :math:`W_2^2` and their gap.

    ``w2_dual`` = :math:`E\\lVert x\\rVert^2 + E\\lVert y\\rVert^2 - 2(E_Q f(y) + E_P[\\langle x,
    \\nabla g\\rangle - f(\\nabla g)])`, ``w2_primal`` = :math:`E_P\\lVert x - \\nabla g(x)\\rVert^2`
    (the cost of the learned map), ``duality_gap`` = primal − dual; both agree at the optimum.
    """
    t = transport(g, x, cx, batch_size=batch_size)
    fy = torch.cat(
        [
            f(y[a : a + batch_size], None if cy is None else cy[a : a + batch_size])
            for a in range(0, len(y), batch_size)
        ]
    )
    ft = torch.cat(
        [
            f(t[a : a + batch_size], None if cx is None else cx[a : a + batch_size])
            for a in range(0, len(t), batch_size)
        ]
    )
    conj = (x * t).sum(-1) - ft
    dual = (
        weighted_mean((x * x).sum(-1), wx)
        + weighted_mean((y * y).sum(-1), wy)
        - 2 * (weighted_mean(fy, wy) + weighted_mean(conj, wx))
    )
    primal = weighted_mean(((x - t) ** 2).sum(-1), wx)
    return {"w2_dual": float(dual), "w2_primal": float(primal), "duality_gap": float(primal - dual)}


def check_samples(
    x: Tensor,
    y: Tensor,
    *,
    cx: Tensor | None = None,
    cy: Tensor | None = None,
    wx: Tensor | None = None,
    wy: Tensor | None = None,
    names: tuple[str, str] = ("source", "target"),
) -> None:
    """Raise :class:`OtusError` (one line) on shapes, NaNs or weights that make no sense."""
    src, tgt = names
    for name, a in ((src, x), (tgt, y)):
        if a.ndim != 2 or len(a) < 2:
            raise OtusError(f"{name} sample must be [N >= 2, D], got shape {tuple(a.shape)}")
    if x.shape[1] != y.shape[1]:
        raise OtusError(
            f"dimension mismatch: {src} has {x.shape[1]} features, {tgt} has {y.shape[1]}"
        )
    if (cx is None) != (cy is None):
        raise OtusError(f"conditioning variables must be given for both {src} and {tgt}")
    for name, a, c, w in ((src, x, cx, wx), (tgt, y, cy, wy)):
        if c is not None and (c.ndim != 2 or len(c) != len(a)):
            raise OtusError(
                f"{name} conditioning has shape {tuple(c.shape)}, expected [{len(a)}, C]"
            )
        for what, arr in (("features", a), ("conditioning variables", c), ("weights", w)):
            if arr is not None and not bool(torch.isfinite(arr).all()):
                bad = int((~torch.isfinite(arr.reshape(len(arr), -1))).any(-1).sum())
                raise OtusError(f"{name} {what} hold NaN or inf in {bad} rows")
        if w is not None:
            if w.shape != (len(a),):
                raise OtusError(f"{name} weights have shape {tuple(w.shape)}, expected ({len(a)},)")
            if float(w.sum()) <= 0:
                raise OtusError(f"{name} weights sum to {float(w.sum()):.4g}, must be positive")
    if cx is not None and cy is not None and cx.shape[1] != cy.shape[1]:
        raise OtusError(
            f"dimension mismatch: {src} has {cx.shape[1]} conditioning variables, "
            f"{tgt} has {cy.shape[1]}"
        )
