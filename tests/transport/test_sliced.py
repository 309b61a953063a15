from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from otus.transport.sliced import random_projections, sliced_wasserstein, wasserstein_1d


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_distance_to_self_is_zero() -> None:
    x = torch.randn(200, 5, generator=_gen())
    w = torch.rand(200, generator=_gen(1))
    assert float(sliced_wasserstein(x, x, generator=_gen(2))) == 0.0
    assert float(sliced_wasserstein(x, x, a=w, b=w, p=1, generator=_gen(2))) == 0.0


@pytest.mark.parametrize("p", [1, 2])
def test_one_dimension_equals_exact_ot(p: int) -> None:
    rng = np.random.default_rng(3)
    u, v = rng.normal(0, 1, 37), rng.normal(0.5, 2, 53)
    a, b = rng.random(37), rng.random(53)
    got = wasserstein_1d(
        torch.from_numpy(u), torch.from_numpy(v), a=torch.from_numpy(a), b=torch.from_numpy(b), p=p
    )
    ref = ot.wasserstein_1d(u, v, a / a.sum(), b / b.sum(), p=p)
    exact = ot.emd2(a / a.sum(), b / b.sum(), np.abs(u[:, None] - v[None, :]) ** p)
    np.testing.assert_allclose(float(got), ref, rtol=1e-10)
    np.testing.assert_allclose(float(got), exact, rtol=1e-8)
    # The sliced distance in one dimension is the 1-D distance (the direction is ±1).
    sw = sliced_wasserstein(
        torch.from_numpy(u)[:, None],
        torch.from_numpy(v)[:, None],
        a=torch.from_numpy(a),
        b=torch.from_numpy(b),
        p=p,
        n_projections=4,
        generator=_gen(),
    )
    np.testing.assert_allclose(float(sw), exact ** (1 / p), rtol=1e-8)


@pytest.mark.parametrize("p", [1, 2])
def test_agrees_with_pot_for_same_projections(p: int) -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(0, 1, (120, 6)), rng.normal(1, 1.5, (80, 6))
    a, b = rng.random(120), rng.random(80)
    proj = random_projections(6, 50, generator=_gen(5), dtype=torch.float64)
    got = sliced_wasserstein(
        torch.from_numpy(x),
        torch.from_numpy(y),
        a=torch.from_numpy(a),
        b=torch.from_numpy(b),
        p=p,
        projections=proj,
    )
    ref = ot.sliced_wasserstein_distance(
        x, y, a / a.sum(), b / b.sum(), p=p, projections=proj.numpy()
    )
    np.testing.assert_allclose(float(got), ref, rtol=1e-10)
    pp = sliced_wasserstein(
        torch.from_numpy(x),
        torch.from_numpy(y),
        a=torch.from_numpy(a),
        b=torch.from_numpy(b),
        p=p,
        projections=proj,
        root=False,
    )
    np.testing.assert_allclose(float(pp), ref**p, rtol=1e-10)


def _t(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def test_negative_weights_cancel() -> None:
    # A negative-weight copy of an event cancels it: the sample equals one without both.
    x = torch.tensor([[0.0], [1.0], [1.0], [2.0], [5.0]], dtype=torch.float64)
    a = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    x2 = torch.tensor([[0.0], [1.0], [1.0], [2.0], [3.0]], dtype=torch.float64)
    a2 = torch.tensor([1.0, 2.0, -1.0, 1.0, 0.0], dtype=torch.float64)
    y = torch.tensor([[0.5], [1.5], [2.5]], dtype=torch.float64)
    d1 = wasserstein_1d(x[a > 0], y)
    d1b = wasserstein_1d(torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64), y)
    d2 = wasserstein_1d(x2, y, a=a2)
    torch.testing.assert_close(d2, d1b)
    assert float(d1) > 0


def test_negative_weight_cancels_a_different_value() -> None:
    # 0, 1, 5 with weights 1, 1, -1: F = 1 on [0, 1), 2 -> clipped 1 on [1, 5), so the
    # event at 5 cancels the one at 1 and the distribution is a point mass at 0.
    x, w = _t(0, 1, 5), _t(1, 1, -1)
    assert float(wasserstein_1d(x, _t(0), a=w)) == 0.0
    assert float(wasserstein_1d(x, _t(2), a=w)) == 4.0
    # 0, 1, 2 with weights 1, -1, 1: F = 1 on [0, 1), 0 on [1, 2); rearranged, F = 0 on a
    # gap of length 1, then 1: a point mass at 1 (the signed mean 0 - 1 + 2).
    assert float(wasserstein_1d(_t(0, 1, 2), _t(1), a=_t(1, -1, 1))) == 0.0
    # 0, 1, 2, 3 with weights 1, 1, -1, 1 (total 2): F = 1/2, 1, 1/2 on the three gaps;
    # rearranged 1/2 on a length 2, then 1: mass 1/2 at 0 and at 2. Against 0.5, 1.5, 2.5
    # W2² = 1/3·0.25 + 1/6·2.25 + 1/6·0.25 + 1/3·0.25 = 7/12.
    x, w = _t(0, 1, 2, 3), _t(1, 1, -1, 1)
    assert float(wasserstein_1d(x, _t(0, 2), a=w)) == pytest.approx(0.0, abs=1e-15)
    assert float(wasserstein_1d(x, _t(0.5, 1.5, 2.5), a=w)) == pytest.approx(7 / 12, rel=1e-14)


def _signed(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.2, 1.0, n) * np.where(rng.random(n) < 0.2, -1.0, 1.0)
    return torch.from_numpy(rng.normal(0, 1, n)), torch.from_numpy(w)


def test_signed_weights_identities() -> None:
    x, a = _signed(80, 0)
    y, b = _signed(60, 1)
    assert float(wasserstein_1d(x, x, a=a, b=a)) == 0.0
    # The rule treats both directions alike: negating all values changes nothing ...
    d = wasserstein_1d(x, y + 0.3, a=a, b=b)
    torch.testing.assert_close(wasserstein_1d(-x, -y - 0.3, a=a, b=b), d, rtol=1e-12, atol=0)
    # ... and keeps the signed mean while 0 <= F <= 1: W2(mu, delta_c) = E(X - c)², so two
    # points c give the mean. Every tenth event of a sorted sample is negative and smaller
    # than its positive neighbours, so F dips (the rearrangement acts) but stays in [0, 1].
    rng = np.random.default_rng(5)
    xs = torch.from_numpy(np.sort(rng.normal(0, 1, 80)))
    ws = torch.from_numpy(rng.uniform(0.5, 1.0, 80))
    ws[10::10] = -torch.from_numpy(rng.uniform(0.2, 0.45, 7))
    w0, w1 = (float(wasserstein_1d(xs, _t(c), a=ws)) for c in (0.0, 1.0))
    assert (1.0 + w0 - w1) / 2 == pytest.approx(float((ws * xs).sum() / ws.sum()), rel=1e-10)


def test_unit_weights_are_the_mean_squared_difference_of_sorted_samples() -> None:
    x, y = torch.randn(50, 3, generator=_gen(0)), torch.randn(50, 3, generator=_gen(1))
    want = (torch.sort(x, 0).values - torch.sort(y, 0).values).pow(2).mean(0)
    torch.testing.assert_close(wasserstein_1d(x, y), want, rtol=0, atol=0)
    # The general merged-grid path (weights that need a gradient) gives the same numbers.
    a = torch.full((50,), 2.0, requires_grad=True)
    torch.testing.assert_close(wasserstein_1d(x, y, a=a), want, rtol=1e-5, atol=1e-6)


def test_gradients_reach_values_and_weights_with_negative_weights() -> None:
    x, a = _signed(12, 2)
    y, b = _signed(9, 3)
    x.requires_grad_(True)
    a.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda u, w: wasserstein_1d(u, y, a=w, b=b), (x, a))
    wasserstein_1d(x, y, a=a, b=b).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_weight_gradient_at_a_level_tie_is_a_one_sided_derivative() -> None:
    # Unit weights on 2 and 4 points: the CDF levels 0.5 and 1 of both sides coincide, where
    # W_2^2 has a kink in the weights; the gradient must be the derivative from one side.
    x = torch.tensor([0.0, 1.0], dtype=torch.float64)
    y = torch.tensor([0.3, 0.7, 2.0, 2.5], dtype=torch.float64)
    b = torch.ones(4, dtype=torch.float64)
    a = torch.ones(2, dtype=torch.float64, requires_grad=True)
    wasserstein_1d(x, y, a=a, b=b).backward()
    assert a.grad is not None
    f0, h = float(wasserstein_1d(x, y, a=a.detach(), b=b)), 1e-6
    for i in range(2):
        e = torch.zeros(2, dtype=torch.float64)
        e[i] = h
        right = (float(wasserstein_1d(x, y, a=a.detach() + e, b=b)) - f0) / h
        left = (f0 - float(wasserstein_1d(x, y, a=a.detach() - e, b=b))) / h
        assert min(abs(float(a.grad[i]) - left), abs(float(a.grad[i]) - right)) < 1e-4


def test_randomness_is_injected_and_reproducible() -> None:
    x, y = torch.randn(50, 4, generator=_gen(0)), torch.randn(60, 4, generator=_gen(1)) + 1
    d1 = sliced_wasserstein(x, y, generator=_gen(7), n_projections=10)
    d2 = sliced_wasserstein(x, y, generator=_gen(7), n_projections=10)
    d3 = sliced_wasserstein(x, y, generator=_gen(8), n_projections=10)
    assert float(d1) == float(d2) and float(d1) != float(d3)


def test_dtype_follows_input_and_gradients_flow() -> None:
    x = torch.randn(30, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(40, 3, dtype=torch.float64) + 2
    a = torch.rand(30, dtype=torch.float64, requires_grad=True)
    d = sliced_wasserstein(x, y, a=a, generator=_gen(), root=False)
    assert d.dtype == torch.float64
    d.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert a.grad is not None and a.grad.abs().sum() > 0


def test_bad_arguments() -> None:
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="same d"):
        sliced_wasserstein(x, torch.randn(10, 2))
    with pytest.raises(ValueError, match="projections must be"):
        sliced_wasserstein(x, x, projections=torch.randn(2, 5))
    with pytest.raises(ValueError, match="positive total weight"):
        sliced_wasserstein(x, x, a=-torch.ones(10))
    with pytest.raises(ValueError, match="shape"):
        sliced_wasserstein(x, x, a=torch.ones(3))
    with pytest.raises(ValueError, match="at least one sample"):
        sliced_wasserstein(x, x[:0])
    with pytest.raises(ValueError, match="same L"):
        wasserstein_1d(x, torch.randn(10, 2))
    with pytest.raises(ValueError, match="p must be"):
        wasserstein_1d(x, x, p=0.5)
