"""Four-vector algebra on numpy arrays and torch tensors.

Four-momenta are arrays whose last axis is (px, py, pz, E) in GeV. Every function works on
numpy arrays and on torch tensors alike (the result has the input's type, dtype and device),
so the same code serves analysis and differentiable losses. For awkward-array analysis code
use the ``vector`` package instead (see :mod:`otus.physics.selection`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:  # torch is a hard dependency of otus, but keep this module importable without it
    import torch
except ImportError:  # pragma: no cover
    torch = None  # type: ignore[assignment]

Array = Any  # np.ndarray | torch.Tensor


def _is_torch(a: Array) -> bool:
    return torch is not None and isinstance(a, torch.Tensor)


def _xp(a: Array) -> Any:
    return torch if _is_torch(a) else np


def namespace(a: Array) -> Any:
    """The module (numpy or torch) whose functions apply to ``a``."""
    return _xp(a)


def stack(parts: list[Array], like: Array) -> Array:
    """Stack along a new last axis, in ``like``'s library."""
    return _stack(parts, like)


def _stack(parts: list[Array], like: Array) -> Array:
    return torch.stack(parts, dim=-1) if _is_torch(like) else np.stack(parts, axis=-1)


def _clip_min(a: Array, lo: float) -> Array:
    return a.clamp(min=lo) if _is_torch(a) else np.maximum(a, lo)


def pt(p: Array) -> Array:
    """Transverse momentum :math:`\\sqrt{p_x^2 + p_y^2}`."""
    return _xp(p).sqrt(p[..., 0] ** 2 + p[..., 1] ** 2)


def p3(p: Array) -> Array:
    """Magnitude of the three-momentum."""
    return _xp(p).sqrt(p[..., 0] ** 2 + p[..., 1] ** 2 + p[..., 2] ** 2)


def phi(p: Array) -> Array:
    """Azimuth in (-π, π]."""
    return _xp(p).arctan2(p[..., 1], p[..., 0])


def eta(p: Array) -> Array:
    """Pseudorapidity :math:`\\operatorname{asinh}(p_z / p_T)`; finite for p_T > 0."""
    xp = _xp(p)
    return xp.arcsinh(p[..., 2] / _clip_min(pt(p), 1e-12))


def rapidity(p: Array) -> Array:
    """Rapidity :math:`\\frac12 \\ln\\frac{E + p_z}{E - p_z}`."""
    xp = _xp(p)
    num = _clip_min(p[..., 3] + p[..., 2], 1e-12)
    den = _clip_min(p[..., 3] - p[..., 2], 1e-12)
    return 0.5 * xp.log(num / den)


def mass2(p: Array) -> Array:
    """Minkowski square :math:`E^2 - |\\vec p|^2` (may be slightly negative from rounding)."""
    return p[..., 3] ** 2 - p[..., 0] ** 2 - p[..., 1] ** 2 - p[..., 2] ** 2


def mass(p: Array) -> Array:
    """Invariant mass; negative :math:`m^2` from rounding is clipped to zero."""
    return _xp(p).sqrt(_clip_min(mass2(p), 0.0))


def invariant_mass(*ps: Array) -> Array:
    """Invariant mass of the sum of the given four-momenta."""
    total = ps[0]
    for q in ps[1:]:
        total = total + q
    return mass(total)


def from_ptetaphim(pt_: Array, eta_: Array, phi_: Array, m: Array | float) -> Array:
    """Four-momenta (px, py, pz, E) from (pT, η, φ, m)."""
    xp = _xp(pt_)
    px = pt_ * xp.cos(phi_)
    py = pt_ * xp.sin(phi_)
    pz = pt_ * xp.sinh(eta_)
    e = xp.sqrt(px**2 + py**2 + pz**2 + m**2)
    return _stack([px, py, pz, e], pt_)


def to_ptetaphim(p: Array) -> Array:
    """(pT, η, φ, m) from (px, py, pz, E)."""
    return _stack([pt(p), eta(p), phi(p), mass(p)], p)


def on_shell(p3vec: Array, m: Array | float) -> Array:
    """Complete three-momenta [..., 3] to four-momenta with :math:`E = \\sqrt{|\\vec p|^2 + m^2}`.

    This is the Minkowski constraint by construction: the result has mass ``m`` exactly
    (up to floating-point rounding).
    """
    xp = _xp(p3vec)
    e = xp.sqrt(p3vec[..., 0] ** 2 + p3vec[..., 1] ** 2 + p3vec[..., 2] ** 2 + m**2)
    if _is_torch(p3vec):
        return torch.cat([p3vec, e.unsqueeze(-1)], dim=-1)
    return np.concatenate([p3vec, e[..., None]], axis=-1)


def delta_phi(phi1: Array, phi2: Array) -> Array:
    """φ1 − φ2 wrapped into [-π, π)."""
    d = phi1 - phi2
    return (d + np.pi) % (2 * np.pi) - np.pi


def delta_r(eta1: Array, phi1: Array, eta2: Array, phi2: Array) -> Array:
    """:math:`\\Delta R = \\sqrt{\\Delta\\eta^2 + \\Delta\\phi^2}`."""
    return _xp(eta1).sqrt((eta1 - eta2) ** 2 + delta_phi(phi1, phi2) ** 2)


def objects(flat: Array, n: int | None = None) -> Array:
    """View [N, 4n] feature rows as [N, n, 4] four-momenta."""
    n = flat.shape[-1] // 4 if n is None else n
    if flat.shape[-1] != 4 * n:
        raise ValueError(f"expected {4 * n} features (n={n} objects), got {flat.shape[-1]}")
    return flat.reshape(*flat.shape[:-1], n, 4)


def balance_transverse(flat: Array, masses: Array | None = None) -> Array:
    """Rows [N, 4n] with the total transverse momentum removed: every object gives up an
    equal share (px, py) of the sum and keeps its pz and mass; E is recomputed on shell
    with ``masses`` [n] where given (NaN entries: the object's own mass).

    Leading-order parton events have exactly zero total pT; a stochastic unfolder cannot
    land on that manifold by itself, this projection puts it there.
    """
    xp = _xp(flat)
    p = objects(flat)
    n = p.shape[-2]
    m2 = _clip_min(mass2(p), 0.0)
    if masses is not None:
        known = xp.asarray(np.nan_to_num(np.asarray(masses, dtype=np.float64), nan=-1.0))
        if _is_torch(flat):
            known = known.to(dtype=flat.dtype, device=flat.device)
        m2 = xp.where(known >= 0, known**2, m2)
    total = p[..., 0:2].sum(-2)[..., None, :] / n
    pxy = p[..., 0:2] - total
    pz = p[..., 2]
    e = xp.sqrt(pxy[..., 0] ** 2 + pxy[..., 1] ** 2 + pz**2 + m2)
    return _stack([pxy[..., 0], pxy[..., 1], pz, e], p).reshape(flat.shape)
