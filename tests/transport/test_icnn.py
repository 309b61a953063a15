from __future__ import annotations

import pytest
import torch

from otus.errors import ConfigError, OtusError
from otus.transport.icnn import ICNN, gradient
from otus.transport.ot_dual import check_samples, transport, w2_estimates

torch.set_num_threads(1)


def _midpoint_violation(
    g: ICNN, n: int = 4000, seed: int = 1, scale: float = 3.0, c: torch.Tensor | None = None
) -> float:
    """max over random pairs of g((a+b)/2) - (g(a)+g(b))/2 (<= 0 for a convex g), in float64
    so that float32 rounding of large values of g is not taken for a violation."""
    import copy

    g = copy.deepcopy(g).double()
    c = None if c is None else c.double()
    gen = torch.Generator().manual_seed(seed)
    a = scale * torch.randn(n, g.dim, generator=gen, dtype=torch.float64)
    b = scale * torch.randn(n, g.dim, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        v = g(0.5 * (a + b), c) - 0.5 * (g(a, c) + g(b, c))
    return float(v.max())


@pytest.mark.parametrize("cond_dim", [0, 2])
def test_convex_at_init(cond_dim: int) -> None:
    g = ICNN(3, (16, 16, 16), cond_dim=cond_dim, seed=0)
    gen = torch.Generator().manual_seed(2)
    c = torch.randn(4000, cond_dim, generator=gen) if cond_dim else None
    assert _midpoint_violation(g, c=c) <= 1e-5


@pytest.mark.parametrize("cond_dim", [0, 2])
@pytest.mark.parametrize("project", [True, False])
def test_convexity_survives_adversarial_training(cond_dim: int, project: bool) -> None:
    """Adam steps that *reward* concavity cannot break convexity: the forward pass clips
    W to max(W, 0) (a penalty on w.data would fail here), and with the projection after
    every step (as in training) the stored weights stay non-negative too."""
    g = ICNN(2, (16, 16), cond_dim=cond_dim, seed=3)
    with torch.no_grad():
        g.raw_out.fill_(0.1)  # start away from the pure quadratic, so every weight matters
    opt = torch.optim.Adam(g.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(0)
    before = [w.clone() for w in g.positive_weights()]
    for _ in range(60):
        a, b = torch.randn(256, 2, generator=gen), torch.randn(256, 2, generator=gen)
        c = torch.randn(256, cond_dim, generator=gen) if cond_dim else None
        loss = -(g(0.5 * (a + b), c) - 0.5 * (g(a, c) + g(b, c))).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if project:
            g.project_()
    after = g.positive_weights()
    assert any(float((w - w0).abs().max()) > 0.01 for w, w0 in zip(after, before, strict=True))
    if project:
        assert all(float(w.min()) >= 0 for w in after)
    else:  # the optimiser did push stored weights negative; the network stays convex anyway
        assert any(float(w.min()) < 0 for w in after)
    c = torch.randn(4000, cond_dim, generator=gen) if cond_dim else None
    assert _midpoint_violation(g, c=c) <= 1e-5


def test_partially_convex_depends_on_condition() -> None:
    g = ICNN(2, (8,), cond_dim=1, seed=0)
    for p in (g.cond_lin.weight, g.cond_bias[0].weight):
        torch.nn.init.normal_(p, generator=torch.Generator().manual_seed(0))
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(1))
    t0 = gradient(g, x, torch.zeros(50, 1))
    t1 = gradient(g, x, torch.ones(50, 1))
    assert float((t0 - t1).abs().max()) > 1e-2


def test_identity_initialisation() -> None:
    g = ICNN(4, (32, 32), seed=0, strong_convexity=0.0)
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(gradient(g, x), x, atol=1e-6)


def test_gradient_is_differentiable_and_reaches_every_parameter() -> None:
    g = ICNN(3, (8, 8), cond_dim=2, seed=0)
    x, c = torch.randn(10, 3), torch.randn(10, 2)
    with torch.no_grad():
        g.raw_out.fill_(0.1)  # away from the identity start, every weight matters
    gradient(g, x, c, create_graph=True).pow(2).sum().backward()
    missing = [n for n, p in g.named_parameters() if p.grad is None]
    assert not missing


def test_transport_batches_agree() -> None:
    g = ICNN(3, (8,), seed=0)
    x = torch.randn(1000, 3)
    assert torch.allclose(transport(g, x, batch_size=64), transport(g, x), atol=1e-6)


def test_w2_estimates_at_identity_are_zero() -> None:
    """f = g = ½|x|² is the optimal pair for a sample and itself: both estimates are 0."""
    g = ICNN(2, (4,), seed=0, strong_convexity=0.0)
    with torch.no_grad():
        g.raw_out.fill_(-60.0)  # network term ~ 0, only ½|x|² remains
    x = torch.randn(500, 2)
    est = w2_estimates(g, g, x, x)
    assert abs(est["w2_primal"]) < 1e-8
    assert abs(est["w2_dual"]) < 1e-4


def test_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="hidden layer"):
        ICNN(2, ())
    g = ICNN(2, (4,))
    with pytest.raises(ConfigError, match="cond_dim=0"):
        g(torch.zeros(3, 2), torch.zeros(3, 1))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"y": torch.zeros(5, 3)}, "dimension mismatch: source has 2 features, target has 3"),
        ({"x": torch.tensor([[0.0, float("nan")], [1.0, 1.0]])}, "source features hold NaN"),
        ({"cx": torch.zeros(5, 1)}, "conditioning variables must be given for both"),
        (
            {"cx": torch.zeros(5, 1), "cy": torch.zeros(5, 2)},
            "source has 1 conditioning variables, target has 2",
        ),
        ({"wy": -torch.ones(5)}, "target weights sum to -5"),
    ],
)
def test_bad_samples(kw: dict, match: str) -> None:
    args = {"x": torch.zeros(5, 2), "y": torch.zeros(5, 2), **kw}
    x, y = args.pop("x"), args.pop("y")
    with pytest.raises(OtusError, match=match):
        check_samples(x, y, **args)
