from __future__ import annotations

import numpy as np
import pytest
import torch

from otus.physics import fourvec as fv


def _random(n: int = 100, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pt = rng.uniform(5, 100, n)
    eta = rng.uniform(-3, 3, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    m = rng.uniform(0, 50, n)
    return np.stack([pt, eta, phi, m], axis=1)


def test_round_trip_numpy_and_torch() -> None:
    k = _random()
    p = fv.from_ptetaphim(k[:, 0], k[:, 1], k[:, 2], k[:, 3])
    np.testing.assert_allclose(fv.to_ptetaphim(p), k, rtol=1e-9, atol=1e-6)
    t = torch.tensor(k)
    pt_ = fv.from_ptetaphim(t[:, 0], t[:, 1], t[:, 2], t[:, 3])
    assert isinstance(pt_, torch.Tensor)
    np.testing.assert_allclose(pt_.numpy(), p, rtol=1e-12)


def test_closed_forms() -> None:
    # A Z at rest decaying back to back: each lepton has E = m/2, the pair has mass m.
    m = 91.1876
    e1 = np.array([m / 2, 0, 0, m / 2])
    e2 = np.array([-m / 2, 0, 0, m / 2])
    assert fv.invariant_mass(e1, e2) == pytest.approx(m)
    assert fv.pt(e1) == pytest.approx(m / 2)
    assert fv.eta(e1) == pytest.approx(0.0)
    assert fv.phi(e2) == pytest.approx(np.pi)
    # eta = asinh(pz/pt): at 45 degrees, eta = ln(1 + sqrt 2).
    assert fv.eta(np.array([1.0, 0, 1.0, np.sqrt(2)])) == pytest.approx(np.log(1 + np.sqrt(2)))
    # Massless particle: rapidity equals pseudorapidity.
    q = np.array([3.0, 4.0, 12.0, 13.0])
    assert fv.rapidity(q) == pytest.approx(fv.eta(q))


def test_on_shell_exact_mass() -> None:
    rng = np.random.default_rng(1)
    p3 = rng.normal(0, 50, (1000, 3))
    p = fv.on_shell(p3, 4.7)
    np.testing.assert_allclose(fv.mass(p), 4.7, rtol=1e-6)
    t = fv.on_shell(torch.tensor(p3, requires_grad=True), 4.7)
    t[..., 3].sum().backward()


def test_delta_r_wraps_phi() -> None:
    assert fv.delta_phi(np.pi - 0.1, -np.pi + 0.1) == pytest.approx(-0.2)
    assert fv.delta_r(0.0, np.pi - 0.1, 0.0, -np.pi + 0.1) == pytest.approx(0.2)
    # dphi = 4 wraps to 4 - 2 pi
    assert fv.delta_r(1.0, 0.5, -2.0, -3.5) == pytest.approx(np.hypot(3.0, 4.0 - 2 * np.pi))


def test_objects_shape_check() -> None:
    assert fv.objects(np.zeros((3, 8))).shape == (3, 2, 4)
    with pytest.raises(ValueError, match="expected 12 features"):
        fv.objects(np.zeros((3, 8)), 3)


def test_balance_transverse_zeroes_the_total_pt_and_keeps_masses() -> None:
    g = np.random.default_rng(5)
    n = 100
    p = fv.from_ptetaphim(
        g.uniform(10, 80, (n, 3)),
        g.uniform(-2, 2, (n, 3)),
        g.uniform(-3, 3, (n, 3)),
        np.array([0.000511, 4.7, 80.4]),
    )
    flat = p.reshape(n, 12)
    for arr in (flat, torch.tensor(flat)):
        out = fv.balance_transverse(arr, [0.000511, np.nan, 80.4])
        q = np.asarray(fv.objects(out))
        np.testing.assert_allclose(q[..., :2].sum(1), 0.0, atol=1e-9)
        np.testing.assert_allclose(q[..., 2], p[..., 2])  # pz untouched
        np.testing.assert_allclose(fv.mass(q), fv.mass(p), rtol=1e-6, atol=1e-6)
        # the share is equal: every object moved by the same (px, py)
        d = q[..., :2] - p[..., :2]
        np.testing.assert_allclose(d[:, 0], d[:, 2], atol=1e-9)
    # an already balanced event is unchanged
    bal = fv.balance_transverse(flat)
    np.testing.assert_allclose(fv.balance_transverse(bal), bal, rtol=1e-12, atol=1e-9)
